//! The fine-tuning loop, as transformers' `Trainer` runs it: shuffled batches with dynamic padding,
//! AdamW with a linear schedule and gradient clipping, loss logged every `logging_steps`,
//! evaluation with accuracy, precision, recall and F1 after each epoch. Progress goes out as
//! events; the loop pauses between steps so that a browser can stay responsive and cancel.

use burn::prelude::*;

use super::args::TrainingArgs;
use super::optim::AdamWSettings;
use super::trainable::{Env, Step, Trainable};
use crate::clock::now_ms;
use crate::data::Dataset;
use crate::error::Error;
use crate::metrics::{evaluate, Average, Metrics};
use crate::model::bert::SequenceClassifier;
use crate::model::read_f32;
use crate::rng::Rng;
use crate::text::TextTokenizer;

use super::events::{Outcome, Phase, TrainEvent, TrainHooks};

/// What training produced.
pub struct TrainResult {
    /// The model for inference (no autodiff), with the last good weights.
    pub model: SequenceClassifier,
    pub outcome: Outcome,
    /// Evaluation after each finished epoch.
    pub history: Vec<(usize, f64, Metrics)>,
    pub steps: usize,
}

/// What the loop has done so far.
#[derive(Default)]
struct Tally {
    steps: usize,
    /// Time spent in training steps (not in extraction or evaluation).
    train_ms: f64,
    /// Loss sum and count since the last log.
    window: (f64, usize),
    /// Evaluation after each finished epoch.
    history: Vec<(usize, f64, Metrics)>,
}

/// Fine-tunes `model` (loaded for inference on `device`) on `train`, evaluating on `test` after
/// each epoch.
pub async fn fine_tune(
    model: SequenceClassifier,
    tokenizer: &TextTokenizer,
    train: &Dataset,
    test: &Dataset,
    args: &TrainingArgs,
    device: &Device,
    hooks: &mut dyn TrainHooks,
) -> Result<TrainResult, Error> {
    args.validate().map_err(Error::Usage)?;
    if train.is_empty() {
        return Err(Error::Usage("the training set is empty".into()));
    }
    if model.num_labels() != train.num_classes() {
        return Err(Error::Usage(format!(
            "the model has {} outputs but the data has {} classes",
            model.num_labels(),
            train.num_classes()
        )));
    }
    let start = now_ms();
    let steps_per_epoch = train.len().div_ceil(args.per_device_train_batch_size);
    let total_steps = steps_per_epoch * args.num_train_epochs;
    let average = Average::default_for(&train.label_names);
    hooks.event(&TrainEvent::Started {
        mode: args.mode,
        train_examples: train.len(),
        test_examples: test.len(),
        epochs: args.num_train_epochs,
        total_steps,
    });
    device.seed(args.seed);
    let env = Env {
        tokenizer,
        args,
        device,
        autodiff: device.clone().autodiff(),
        start,
    };
    let mut rng = Rng::new(args.seed);
    let mut tally = Tally::default();

    let Some(mut trainable) = Trainable::new(&model, train, test, &env, hooks).await? else {
        // Cancelled while head mode extracted the features.
        return Ok(tally.finish(model, Outcome::Cancelled, &env, total_steps, hooks));
    };
    let mut optimizer = trainable.optimizer(AdamWSettings {
        beta1: args.adam_beta1,
        beta2: args.adam_beta2,
        epsilon: args.adam_epsilon,
        weight_decay: args.weight_decay,
        decay_bias_and_norm: false,
        max_grad_norm: args.max_grad_norm,
    });
    let mut outcome = Outcome::Completed;
    'epochs: for epoch in 1..=args.num_train_epochs {
        let mut order: Vec<usize> = (0..train.len()).collect();
        rng.shuffle(&mut order);
        for batch in order.chunks(args.per_device_train_batch_size) {
            if hooks.cancelled() {
                outcome = Outcome::Cancelled;
                break 'epochs;
            }
            let t0 = now_ms();
            let lr = args.learning_rate_at(tally.steps, total_steps);
            let (next, step) = trainable
                .step(&mut optimizer, lr, batch, train, &env)
                .await?;
            trainable = next;
            let (loss, grad_norm) = match step {
                Step::Taken { loss, grad_norm } => (loss, grad_norm),
                Step::NonFinite(loss) => {
                    outcome = Outcome::Diverged(format!(
                        "the loss became {} at step {} (epoch {epoch}): training stopped and the \
                         weights before that step were kept; try a lower learning rate",
                        if loss.is_nan() { "NaN" } else { "infinite" },
                        tally.steps + 1
                    ));
                    break 'epochs;
                }
            };
            tally.steps += 1;
            tally.train_ms += now_ms() - t0;
            tally.window.0 += loss;
            tally.window.1 += 1;
            let step = tally.steps;
            if step % args.logging_steps == 0 || step == total_steps {
                let grad_norm = read_f32(grad_norm).await?[0] as f64;
                hooks.event(&TrainEvent::Log {
                    step,
                    epoch: step as f64 / steps_per_epoch as f64,
                    loss: tally.window.0 / tally.window.1 as f64,
                    learning_rate: lr,
                    grad_norm,
                });
                tally.window = (0.0, 0);
            }
            hooks.event(&TrainEvent::Progress {
                phase: Phase::Training,
                done: step,
                total: total_steps,
                elapsed_s: env.elapsed_s(),
            });
            hooks.pause().await;
        }
        // Evaluation at the end of each epoch.
        if !test.is_empty() {
            hooks.event(&TrainEvent::Progress {
                phase: Phase::Evaluating,
                done: 0,
                total: test.len(),
                elapsed_s: env.elapsed_s(),
            });
            let (loss, preds) = trainable.evaluate(test, &env).await?;
            let metrics = evaluate(&test.labels, &preds, &train.label_names, average);
            hooks.event(&TrainEvent::Evaluated {
                epoch,
                step: tally.steps,
                loss,
                metrics: metrics.clone(),
            });
            tally.history.push((epoch, loss, metrics));
            hooks.pause().await;
        }
    }
    let model = trainable.into_model(model);
    Ok(tally.finish(model, outcome, &env, total_steps, hooks))
}

impl Tally {
    /// Reports the end of the run and hands back its result.
    fn finish(
        self,
        model: SequenceClassifier,
        outcome: Outcome,
        env: &Env<'_>,
        total_steps: usize,
        hooks: &mut dyn TrainHooks,
    ) -> TrainResult {
        let examples =
            self.steps.min(total_steps) as f64 * env.args.per_device_train_batch_size as f64;
        hooks.event(&TrainEvent::Finished {
            outcome: outcome.clone(),
            steps: self.steps,
            elapsed_s: env.elapsed_s(),
            train_examples_per_s: if self.train_ms > 0.0 {
                examples / (self.train_ms / 1000.0)
            } else {
                0.0
            },
        });
        TrainResult {
            model,
            outcome,
            history: self.history,
            steps: self.steps,
        }
    }
}
