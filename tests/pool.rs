//! Work spread over helper engines (`tunelab::pool`): classification, head mode's feature
//! extraction and the evaluations give, bit for bit, what one engine alone gives, whichever lane
//! computed which batch, and when a helper fails mid-job. The helpers here are models in the
//! same process; in the browser they are Web Workers (e2e "engine workers").

mod common;

use std::rc::Rc;

use burn::prelude::*;
use common::*;
use tunelab::data::{parse_table, stratified_split, Dataset, TableOptions};
use tunelab::hub::ModelFiles;
use tunelab::pipelines::TextClassifier;
use tunelab::pool::{Files, Helpers, InProcess, Sharing};
use tunelab::train::{
    classifier_for_training, default_pooling, fine_tune, Mode, Phase, TrainEvent, TrainHooks,
    TrainResult, TrainingArgs,
};

/// The first `n` movie reviews, split 75/25 (stratified).
fn reviews(n: usize) -> (Dataset, Dataset) {
    let bytes = read(root().join("tests/data/movie_reviews.csv"));
    let table = parse_table(&bytes, &TableOptions::default()).unwrap();
    let (data, _) = table.to_dataset(0, 1).unwrap();
    let first: Vec<usize> = (0..n).map(|i| i * (data.len() / n)).collect();
    let data = data.subset(&first);
    let split = stratified_split(&data.labels, data.num_classes(), 0.25, 42).unwrap();
    (data.subset(&split.train), data.subset(&split.test))
}

/// Collects events; spreads over `helpers` when there are some.
struct Hooks {
    events: Vec<TrainEvent>,
    sharing: Option<Rc<Sharing>>,
}

impl TrainHooks for Hooks {
    fn event(&mut self, e: &TrainEvent) {
        self.events.push(e.clone());
    }
    fn sharing(&self) -> Option<Rc<Sharing>> {
        self.sharing.clone()
    }
}

/// One run at a time: the CPU device's random generator (dropout) is the process's, and the
/// runs compared here must draw the same numbers.
static DEVICE_RNG: std::sync::Mutex<()> = std::sync::Mutex::new(());

fn run(args: &TrainingArgs, helpers: Option<Rc<InProcess>>) -> (TrainResult, Vec<TrainEvent>) {
    let _one_at_a_time = DEVICE_RNG.lock().unwrap_or_else(|e| e.into_inner());
    let dev = Device::flex();
    let files = ModelFiles::from_dir(fixture_model("tiny-bert")).unwrap();
    let (train, test) = reviews(48);
    let tok = files.tokenizer().unwrap();
    let pooling = default_pooling(&files, args.mode);
    let (model, _) =
        classifier_for_training(&files, &train.label_names, args, pooling, &dev).unwrap();
    let mut hooks = Hooks {
        events: Vec::new(),
        sharing: helpers.map(|h| {
            Rc::new(Sharing {
                helpers: h as Rc<dyn Helpers>,
                base: Rc::new(files.clone()),
            })
        }),
    };
    let result = block_on(fine_tune(
        model, &tok, &train, &test, args, &dev, &mut hooks,
    ))
    .unwrap();
    (result, hooks.events)
}

fn head_weights(r: &TrainResult) -> Vec<f32> {
    block_on(tunelab::model::read_f32(
        r.model.head.classifier.weight.val(),
    ))
    .unwrap()
}

fn evaluations(events: &[TrainEvent]) -> Vec<String> {
    events
        .iter()
        .filter(|e| matches!(e, TrainEvent::Evaluated { .. }))
        .map(|e| format!("{e:?}"))
        .collect()
}

#[test]
fn head_mode_features_spread_over_helpers_are_one_engines_even_when_a_helper_fails() {
    let args = TrainingArgs {
        num_train_epochs: 2,
        per_device_eval_batch_size: 4,
        ..TrainingArgs::defaults_for(Mode::Head)
    };
    let (alone, alone_events) = run(&args, None);
    let dev = Device::flex();
    let two = Rc::new(InProcess::new(2, &dev));
    let (spread, spread_events) = run(&args, Some(two.clone()));
    // 36 training and 12 test texts in batches of 4: 12 batches, some on each lane.
    let served: Vec<usize> = two.served.iter().map(|c| c.get()).collect();
    assert!(
        served.iter().all(|&n| n > 0),
        "every helper worked: {served:?}"
    );
    assert!(
        served.iter().sum::<usize>() < 12,
        "and this engine too: {served:?}"
    );
    assert_eq!(two.sent.get(), 2, "the base model went once to each helper");
    assert_eq!(head_weights(&spread), head_weights(&alone));
    assert_eq!(evaluations(&spread_events), evaluations(&alone_events));
    // Progress counts every text once, in order, to the total.
    let extracted: Vec<usize> = spread_events
        .iter()
        .filter_map(|e| match e {
            TrainEvent::Progress {
                phase: Phase::Extracting,
                done,
                total,
                ..
            } => Some(*done).filter(|_| *total == 48),
            _ => None,
        })
        .collect();
    assert!(extracted.windows(2).all(|w| w[0] < w[1]), "{extracted:?}");
    assert_eq!(extracted.last(), Some(&48));

    // Helper 0 fails after its first batch: its work is done elsewhere, nothing changes.
    let failing = Rc::new(InProcess::new(2, &dev));
    failing.fail_after.set(Some(1));
    let (recovered, recovered_events) = run(&args, Some(failing.clone()));
    // (Its second request in flight may have finished before the first failure.)
    assert!((1..=2).contains(&failing.served[0].get()));
    assert!(failing.served[1].get() > 0);
    assert_eq!(head_weights(&recovered), head_weights(&alone));
    assert_eq!(evaluations(&recovered_events), evaluations(&alone_events));
}

#[test]
fn full_mode_evaluation_spread_over_helpers_is_one_engines() {
    let args = TrainingArgs {
        mode: Mode::Full,
        num_train_epochs: 2,
        per_device_train_batch_size: 8,
        per_device_eval_batch_size: 2,
        learning_rate: 1e-3,
        ..TrainingArgs::default()
    };
    let (alone, alone_events) = run(&args, None);
    let dev = Device::flex();
    let helpers = Rc::new(InProcess::new(1, &dev));
    let (spread, spread_events) = run(&args, Some(helpers.clone()));
    assert!(helpers.served[0].get() > 0);
    // The weights change every epoch: each evaluation sends them anew.
    assert_eq!(helpers.sent.get(), 2);
    // The helpers' weights went through the export (safetensors) and back: equal values, but
    // laid out as loaded rather than as the optimiser left them, so sums may round
    // differently in the last bits: the loss agrees to 1e-8, the predictions exactly.
    let scores = |events: &[TrainEvent]| -> Vec<(f64, tunelab::train::Metrics)> {
        events
            .iter()
            .filter_map(|e| match e {
                TrainEvent::Evaluated { loss, metrics, .. } => Some((*loss, metrics.clone())),
                _ => None,
            })
            .collect()
    };
    let (a, b) = (scores(&alone_events), scores(&spread_events));
    assert_eq!(a.len(), 2);
    assert_eq!(b.len(), 2);
    for ((la, ma), (lb, mb)) in a.iter().zip(&b) {
        assert!((la - lb).abs() < 1e-8, "loss {la} alone, {lb} spread");
        assert_eq!(ma, mb);
    }
    // Training itself is untouched by the helpers.
    assert_eq!(head_weights(&spread), head_weights(&alone));
}

#[test]
fn classification_spread_over_helpers_is_one_engines() {
    let dev = Device::flex();
    let files = ModelFiles::from_dir(fixture_model("tiny-bert")).unwrap();
    let classifier = TextClassifier::load(&files, &dev).unwrap();
    let (train, _) = reviews(200);
    let texts: Vec<&str> = train.texts.iter().map(|t| &**t).collect();
    let alone = block_on(classifier.logits(&texts)).unwrap();
    let helpers = InProcess::new(3, &dev);
    let replica = classifier.replica(Files::Bytes(Rc::new(files)));
    let spread = block_on(classifier.logits_spread(&texts, &helpers, &replica)).unwrap();
    assert_eq!(spread.len(), texts.len());
    for (a, b) in alone.iter().zip(&spread) {
        // Batched differently (by length across all texts, not per group): padding differs,
        // masked positions do not count.
        assert_close("logits", b, a, 1e-5);
    }
    assert!(helpers.served.iter().all(|c| c.get() > 0));
    // The same texts again: the helpers hold the model and are not sent it twice.
    block_on(classifier.logits_spread(&texts, &helpers, &replica)).unwrap();
    assert_eq!(helpers.sent.get(), 3);
}

#[test]
fn prompt_evaluation_spread_over_helpers_is_one_engines_with_and_without_calibration() {
    use tunelab::pool::{Build, Replica, RowsOf};
    use tunelab::prompt::{LabelScorer, LanguageModel, Template};
    let dev = Device::flex();
    let files = ModelFiles::from_dir(fixture_model("tiny-gpt2")).unwrap();
    let lm = LanguageModel::load(&files, &dev, u64::MAX).unwrap();
    let (train, _) = reviews(40);
    let files = Rc::new(files);
    for calibrate in [false, true] {
        let mut scorer = LabelScorer::new(
            Template::default(),
            vec!["negative".into(), "positive".into()],
            vec!["bad".into(), "good".into()],
        );
        scorer.calibrate = calibrate;
        let alone = block_on(scorer.clone().evaluate(&lm, &train, &mut |_, _| true)).unwrap();
        let helpers = InProcess::new(2, &dev);
        let replica = Replica::new(
            Files::Bytes(files.clone()),
            Build::Scorer(scorer.clone()),
            RowsOf::Labels,
            0,
        );
        let mut seen = Vec::new();
        let spread = block_on(scorer.evaluate_spread(
            &lm,
            &train,
            &helpers,
            &replica,
            &mut |done, total| {
                seen.push((done, total));
                true
            },
        ))
        .unwrap();
        assert_eq!(spread, alone, "calibrate: {calibrate}");
        assert!(helpers.served.iter().all(|c| c.get() > 0));
        assert_eq!(seen.last(), Some(&(train.len(), train.len())));
        // Stopped after a few rows: the metrics cover the rows scored, fewer than all.
        let mut calls = 0;
        let stopped =
            block_on(
                scorer.evaluate_spread(&lm, &train, &helpers, &replica, &mut |_, _| {
                    calls += 1;
                    calls < 4
                }),
            )
            .unwrap();
        let n = stopped.predicted.len();
        assert!((4..train.len()).contains(&n), "{n} rows scored");
        assert_eq!(stopped.metrics.count, n);
    }
}
