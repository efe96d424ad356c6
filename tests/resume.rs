//! Runs that survive a reload: a run stopped part-way and resumed from its last checkpoint ends
//! with the weights, the evaluations and the step count of one that never stopped (full, LoRA and
//! head-only modes, dropout on). One test in its own binary: dropout draws from the backend's
//! generator, which tests running beside it would draw from too.

mod common;

use std::future::Future;
use std::pin::Pin;

use burn::prelude::*;
use common::*;
use tunelab::hub::ModelFiles;
use tunelab::model::bert::SequenceClassifier;
use tunelab::model::layers::Exporter;
use tunelab::train::checkpoint::Checkpoint;
use tunelab::train::{
    classifier_for_training, default_pooling, fine_tune_from, LoraSettings, Mode, Outcome,
    TrainEvent, TrainHooks, TrainingArgs,
};

/// Keeps every checkpoint (as bytes, as the browser stores them) and stops the run after
/// `stop_after` steps, when set.
#[derive(Default)]
struct Keep {
    checkpoints: Vec<Vec<u8>>,
    saved_events: usize,
    steps: usize,
    stop_after: Option<usize>,
}

impl TrainHooks for Keep {
    fn event(&mut self, e: &TrainEvent) {
        match e {
            TrainEvent::Log { step, .. } => self.steps = *step,
            TrainEvent::Progress {
                phase: tunelab::train::Phase::Training,
                done,
                ..
            } => self.steps = *done,
            TrainEvent::Saved { .. } => self.saved_events += 1,
            _ => {}
        }
    }
    fn cancelled(&self) -> bool {
        self.stop_after.is_some_and(|n| self.steps >= n)
    }
    fn keeps_checkpoints(&self) -> bool {
        true
    }
    fn checkpoint(&mut self, c: Checkpoint) -> Pin<Box<dyn Future<Output = bool> + '_>> {
        self.checkpoints.push(c.to_bytes());
        Box::pin(async { true })
    }
}

/// Every weight of a classifier, by name (LoRA's adapters merged).
fn weights(m: &SequenceClassifier) -> Vec<(String, Vec<f32>)> {
    let mut out = Exporter::default();
    m.clone().merge_lora().export(&mut out);
    block_on(out.read())
        .unwrap()
        .into_iter()
        .map(|(n, (_, v))| (n, v))
        .collect()
}

fn run(
    files: &ModelFiles,
    args: &TrainingArgs,
    hooks: &mut Keep,
    resume: Option<&Checkpoint>,
) -> tunelab::train::TrainResult {
    let dev = Device::flex();
    let (train, test) = toy_data();
    let pooling = default_pooling(files, args.mode);
    let (model, _) =
        classifier_for_training(files, &train.label_names, args, pooling, &dev).unwrap();
    let tok = files.tokenizer().unwrap();
    block_on(fine_tune_from(
        model, &tok, &train, &test, args, &dev, hooks, resume,
    ))
    .unwrap()
}

#[test]
fn a_run_resumed_from_its_checkpoint_ends_as_one_that_never_stopped() {
    // tiny-bert as it comes: dropout 0.1 in the encoder and the head.
    let files = ModelFiles::from_dir(fixture_model("tiny-bert")).unwrap();
    for mode in [Mode::Full, Mode::Lora, Mode::Head] {
        let args = TrainingArgs {
            mode,
            num_train_epochs: 3,
            per_device_train_batch_size: 4,
            learning_rate: 1e-2,
            logging_steps: 1,
            save_steps: 2,
            lora: LoraSettings {
                r: 4,
                ..LoraSettings::default()
            },
            ..TrainingArgs::default()
        };
        let mut whole = Keep::default();
        let uninterrupted = run(&files, &args, &mut whole, None);
        assert_eq!(uninterrupted.outcome, Outcome::Completed);
        // 12 examples in batches of 4: 3 steps an epoch. Stopped during the second epoch.
        let mut first = Keep {
            stop_after: Some(5),
            ..Keep::default()
        };
        let stopped = run(&files, &args, &mut first, None);
        assert_eq!(stopped.outcome, Outcome::Cancelled, "{mode:?}");
        assert_eq!(first.saved_events, first.checkpoints.len());
        let last = Checkpoint::from_bytes(first.checkpoints.last().expect("a checkpoint")).unwrap();
        let (epoch, batch) = match mode {
            // Every 2 steps within an epoch (step 2 of epoch 1, step 4 = batch 1 of epoch 2),
            // and after epoch 1 (step 3).
            Mode::Full | Mode::Lora => (2, 1),
            // After each epoch only.
            Mode::Head => (2, 0),
        };
        assert_eq!((last.epoch, last.batch), (epoch, batch), "{mode:?}");
        assert_eq!(last.history.len(), 1, "epoch 1's evaluation is kept");
        let mut second = Keep::default();
        let resumed = run(&files, &args, &mut second, Some(&last));
        assert_eq!(resumed.outcome, Outcome::Completed);
        assert_eq!(resumed.steps, uninterrupted.steps, "{mode:?}: steps");
        assert_eq!(
            resumed.history, uninterrupted.history,
            "{mode:?}: evaluations"
        );
        let (a, b) = (weights(&uninterrupted.model), weights(&resumed.model));
        assert_eq!(a.len(), b.len());
        let mut worst = 0f32;
        for ((name, x), (_, y)) in a.iter().zip(&b) {
            let d = max_abs_diff(x, y);
            assert!(d <= 1e-6, "{mode:?} {name}: {d:e}");
            worst = worst.max(d);
        }
        // And the run did learn: the weights moved from the base's.
        let mut fresh = Keep::default();
        let one_epoch = TrainingArgs {
            num_train_epochs: 1,
            ..args.clone()
        };
        let early = run(&files, &one_epoch, &mut fresh, None);
        assert!(
            weights(&early.model)
                .iter()
                .zip(&a)
                .any(|((_, x), (_, y))| max_abs_diff(x, y) > 1e-4),
            "{mode:?}: training moved the weights"
        );
        eprintln!("{mode:?}: resumed from epoch {epoch} batch {batch}; largest weight difference {worst:e}");
    }
}
