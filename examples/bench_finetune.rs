//! Fine-tuning quality and speed with the real all-MiniLM-L6-v2 on tests/data/movie_reviews.csv
//! (stratified 80/20 split, seed 42), on burn's CPU backend (native):
//! - head: encoder frozen, features (mean pooling) extracted once, a linear head trained on the
//!   whole training split;
//! - full: every weight, on 2,000 stratified training examples, 3 epochs, batch 8, lr 5e-5,
//!   max length 128 (transformers' Trainer settings);
//! - lora: the same run with LoRA (r 8, alpha 16, dropout 0.1 on query and value, the head in
//!   full) at LoRA's default rate 5e-4.
//!
//! `LEARNING_RATE`, `LORA_R` and `LORA_TARGETS` (comma-separated layer names) override the
//! defaults.
//!
//! - mlm: domain adaptation, then head-only training: masked-LM training of the encoder on the
//!   training split's texts (no labels; `MLM_EXAMPLES` of them, default 2,000, one epoch, batch 8,
//!   lr 5e-5, max length 128), held-out perplexity before and after (200 test texts), then
//!   head-only training as `head` on the base and on the adapted encoder, accuracy of each.
//!
//! Each run ends with the process's peak resident memory (`VmHWM`): run one mode per process to
//! compare them.
//!
//!     cargo run --example bench_finetune -- [head|full|lora|both]
//!
//! For speed alone, a shorter full run: `FULL_EXAMPLES=400 FULL_EPOCHS=1 TEST_EXAMPLES=64`
//! (`benches/trainer_cpu.py` runs HF's Trainer on the same settings).

use burn::prelude::*;
use tunelab::data::{import_dataset, stratified_sample, stratified_split, TableOptions};
use tunelab::hub::ModelFiles;
use tunelab::train::{
    classifier_for_training, default_pooling, fine_tune, Mode, Outcome, TrainEvent, TrainHooks,
    TrainingArgs,
};

include!("common/bench.rs");

/// Prints progress; remembers when training started (after any feature extraction) and the
/// loop's own count of training examples per second.
#[derive(Default)]
struct Print {
    training_started: Option<std::time::Instant>,
    training_secs: f64,
    train_examples_per_s: f64,
}

impl TrainHooks for Print {
    fn event(&mut self, e: &TrainEvent) {
        match e {
            TrainEvent::Progress { phase: tunelab::train::Phase::Training, .. } if self.training_started.is_none() => {
                self.training_started = Some(std::time::Instant::now());
            }
            TrainEvent::Finished { train_examples_per_s, .. } => {
                self.training_secs = self.training_started.map_or(0.0, |t| t.elapsed().as_secs_f64());
                self.train_examples_per_s = *train_examples_per_s;
            }
            TrainEvent::Log { step, epoch, loss, .. } if step % 100 == 0 => {
                eprintln!("  step {step} (epoch {epoch:.2}): loss {loss:.4}")
            }
            TrainEvent::Evaluated { epoch, loss, metrics, .. } => eprintln!(
                "  epoch {epoch}: eval loss {loss:.4}, accuracy {:.4}, precision {:.4}, recall {:.4}, F1 {:.4}",
                metrics.accuracy, metrics.precision, metrics.recall, metrics.f1
            ),
            TrainEvent::Progress { phase: tunelab::train::Phase::Extracting, done, total, elapsed_s } if done % 2048 < 32 => {
                eprintln!("  extracting features: {done}/{total} ({elapsed_s:.0} s)")
            }
            _ => {}
        }
    }
}

fn run(mode: Mode) {
    let dir = models_dir().join("all-MiniLM-L6-v2");
    let files = ModelFiles::from_dir(&dir).expect("all-MiniLM-L6-v2 (run scripts/setup-test.sh)");
    let csv = std::fs::read(concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/tests/data/movie_reviews.csv"
    ))
    .unwrap();
    let (data, _) = import_dataset(&csv, &TableOptions::default(), None, None).unwrap();
    let split = stratified_split(&data.labels, data.num_classes(), 0.2, 42).unwrap();
    let (mut train, mut test) = (data.subset(&split.train), data.subset(&split.test));
    if let Ok(n) = std::env::var("TEST_EXAMPLES") {
        test = stratified_sample(&test, n.parse().expect("TEST_EXAMPLES: a number"), 42);
    }
    let args = match mode {
        Mode::Head => TrainingArgs::head_defaults(),
        Mode::Full | Mode::Lora => {
            train = stratified_sample(&train, env_or("FULL_EXAMPLES", 2000), 42);
            TrainingArgs {
                num_train_epochs: env_or("FULL_EPOCHS", 3),
                per_device_train_batch_size: 8,
                max_length: 128,
                ..TrainingArgs::defaults_for(mode)
            }
        }
    };
    let mut args = args;
    if let Ok(lr) = std::env::var("LEARNING_RATE") {
        args.learning_rate = lr.parse().expect("LEARNING_RATE: a number");
    }
    args.lora.r = env_or("LORA_R", args.lora.r);
    if let Ok(t) = std::env::var("LORA_TARGETS") {
        args.lora.target_modules = t.split(',').map(|s| s.trim().to_string()).collect();
    }
    let args = args;
    let device = Device::flex();
    let tokenizer = files.tokenizer().unwrap();
    let pooling = default_pooling(&files, mode);
    let (model, _) =
        classifier_for_training(&files, &train.label_names, &args, pooling, &device).unwrap();
    eprintln!(
        "{mode:?}: {} training / {} test examples, pooling {pooling:?}, {args:?}",
        train.len(),
        test.len()
    );
    let start = std::time::Instant::now();
    let mut hooks = Print::default();
    let result = pollster::block_on(fine_tune(
        model, &tokenizer, &train, &test, &args, &device, &mut hooks,
    ))
    .unwrap();
    let wall = start.elapsed().as_secs_f64();
    assert_eq!(result.outcome, Outcome::Completed);
    let (_, _, m) = result.history.last().unwrap();
    let examples =
        (result.steps * args.per_device_train_batch_size).min(train.len() * args.num_train_epochs);
    println!(
        "{:?} fine-tuning: test accuracy {:.4}, precision {:.4}, recall {:.4}, F1 {:.4} ({} train / {} test, {} epochs, batch {}, lr {})",
        mode, m.accuracy, m.precision, m.recall, m.f1, train.len(), test.len(), args.num_train_epochs, args.per_device_train_batch_size, args.learning_rate
    );
    println!(
        "{mode:?} fine-tuning: wall time {wall:.1} s (loading, extraction, training, evaluation), {:.1} training examples/s over the whole run",
        examples as f64 / wall
    );
    println!(
        "{mode:?} fine-tuning: optimisation steps alone: {:.1} training examples/s; from the first step to the end (with per-epoch evaluation): {:.2} s",
        hooks.train_examples_per_s, hooks.training_secs
    );
    println!(
        "{mode:?} fine-tuning: peak resident memory {}",
        peak_memory()
    );
}

/// Masked-LM training on the training texts, then head-only training on the base and on the
/// adapted encoder.
fn domain_then_head() {
    use tunelab::model::bert::{DropoutRates, MaskedLm};
    use tunelab::train::mlm::{export_masked_lm, pre_train};
    let dir = models_dir().join("all-MiniLM-L6-v2");
    let files = ModelFiles::from_dir(&dir).expect("all-MiniLM-L6-v2 (run scripts/setup-test.sh)");
    let csv = std::fs::read(concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/tests/data/movie_reviews.csv"
    ))
    .unwrap();
    let (data, _) = import_dataset(&csv, &TableOptions::default(), None, None).unwrap();
    let split = stratified_split(&data.labels, data.num_classes(), 0.2, 42).unwrap();
    let (train, test) = (data.subset(&split.train), data.subset(&split.test));
    let device = Device::flex();
    let config = files.config().unwrap();
    let args = TrainingArgs {
        num_train_epochs: 1,
        per_device_train_batch_size: 8,
        learning_rate: 5e-5,
        max_length: 128,
        ..TrainingArgs::default()
    };
    let texts = &train.texts[..env_or("MLM_EXAMPLES", 2000).min(train.len())];
    let held_out = &test.texts[..200.min(test.len())];
    let model = MaskedLm::for_training(
        &files.weights,
        &config,
        DropoutRates::from_config(&config.raw, config.family()),
        42,
        &device,
    )
    .unwrap();
    let tokenizer = files.tokenizer().unwrap();
    let t0 = std::time::Instant::now();
    let result = pollster::block_on(pre_train(
        model,
        &tokenizer,
        texts,
        held_out,
        &args,
        0.15,
        &device,
        &mut Print::default(),
    ))
    .unwrap();
    let (before, after) = result.perplexities();
    println!(
        "MLM domain step: {} texts, 1 epoch, batch 8, lr 5e-5: held-out perplexity {before:.2} -> {after:.2} ({:.0} s)",
        texts.len(),
        t0.elapsed().as_secs_f64()
    );
    let adapted = ModelFiles::from_entries(
        pollster::block_on(export_masked_lm(&result.model, &files)).unwrap(),
    );
    for (name, base) in [
        ("base all-MiniLM-L6-v2", &files),
        ("encoder after the MLM step", &adapted),
    ] {
        let args = TrainingArgs::head_defaults();
        let pooling = default_pooling(base, Mode::Head);
        let (model, _) =
            classifier_for_training(base, &train.label_names, &args, pooling, &device).unwrap();
        let tokenizer = base.tokenizer().unwrap();
        let result = pollster::block_on(fine_tune(
            model,
            &tokenizer,
            &train,
            &test,
            &args,
            &device,
            &mut Print::default(),
        ))
        .unwrap();
        let (_, _, m) = result.history.last().unwrap();
        println!(
            "head-only on the {name}: test accuracy {:.4}, F1 {:.4} ({} train / {} test, pooling {pooling:?}, {} epochs, batch {}, lr {})",
            m.accuracy, m.f1, train.len(), test.len(), args.num_train_epochs, args.per_device_train_batch_size, args.learning_rate
        );
    }
}

/// The process's peak resident memory (Linux's `VmHWM`), or "unknown".
fn peak_memory() -> String {
    std::fs::read_to_string("/proc/self/status")
        .ok()
        .and_then(|s| {
            s.lines()
                .find(|l| l.starts_with("VmHWM:"))
                .map(|l| l["VmHWM:".len()..].trim().to_string())
        })
        .unwrap_or_else(|| "unknown".into())
}

/// A number from the environment, or `default`.
fn env_or(name: &str, default: usize) -> usize {
    std::env::var(name).map_or(default, |v| {
        v.parse().unwrap_or_else(|_| panic!("{name}: a number"))
    })
}

fn main() {
    let which = std::env::args().nth(1).unwrap_or_else(|| "both".into());
    println!("machine: {}", machine());
    println!("backend: burn Flex (CPU), native, f32; model all-MiniLM-L6-v2; data tests/data/movie_reviews.csv");
    if which == "head" || which == "both" {
        run(Mode::Head);
    }
    if which == "full" || which == "both" {
        run(Mode::Full);
    }
    if which == "lora" {
        run(Mode::Lora);
    }
    if which == "mlm" {
        domain_then_head();
    }
}
