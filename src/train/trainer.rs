//! The fine-tuning loop, as transformers' `Trainer` runs it: shuffled batches with dynamic padding,
//! AdamW with a linear schedule and gradient clipping, loss logged every `logging_steps`,
//! evaluation with accuracy, precision, recall and F1 after each epoch. Progress goes out as
//! events; the loop pauses between steps so that a browser can stay responsive and cancel.

use burn::prelude::*;

use super::args::{Mode, TrainingArgs};
use super::checkpoint::{step_seed, Checkpoint};
use super::optim::{AdamW, AdamWSettings};
use super::trainable::{Env, Trainable};
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
    fine_tune_from(model, tokenizer, train, test, args, device, hooks, None).await
}

/// [`fine_tune`], resumed from `resume` when given: `model`, the data and `args` must be the
/// run's own (the checkpoint holds where it stood and what it learned, not its setting).
#[allow(clippy::too_many_arguments)]
pub async fn fine_tune_from(
    model: SequenceClassifier,
    tokenizer: &TextTokenizer,
    train: &Dataset,
    test: &Dataset,
    args: &TrainingArgs,
    device: &Device,
    hooks: &mut dyn TrainHooks,
    resume: Option<&Checkpoint>,
) -> Result<TrainResult, Error> {
    args.validate().map_err(Error::Usage)?;
    if train.is_empty() {
        return Err(Error::Usage("the training set is empty".into()));
    }
    let positions = model.encoder.config.max_tokens();
    if args.max_length > positions {
        return Err(Error::Usage(format!(
            "the maximum length is {} tokens but this model reads at most {positions}: set it to \
             {positions} or less",
            args.max_length
        )));
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
    crate::device::seed(device, args.seed);
    let env = Env {
        tokenizer,
        args,
        device,
        autodiff: device.clone().autodiff(),
        start,
        sharing: hooks.sharing(),
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
    let (first_epoch, done_batches) = match resume {
        Some(c) => {
            trainable = trainable.restore(&mut optimizer, &c.optimizer)?;
            tally.steps = c.steps;
            tally.history = c.history.clone();
            tally.train_ms = c.train_ms;
            // The host hears of the evaluations before the checkpoint again.
            for (epoch, loss, metrics) in &c.history {
                hooks.event(&TrainEvent::Evaluated {
                    epoch: *epoch,
                    step: epoch * steps_per_epoch,
                    loss: *loss,
                    metrics: metrics.clone(),
                });
            }
            hooks.event(&TrainEvent::Progress {
                phase: Phase::Training,
                done: c.steps,
                total: total_steps,
                elapsed_s: env.elapsed_s(),
            });
            (c.epoch, c.batch)
        }
        None => (1, 0),
    };
    let keep = hooks.keeps_checkpoints();
    let mut outcome = Outcome::Completed;
    // The weights at the last check, and the step they were taken at: what a NaN falls back to.
    let mut last_good = (trainable.clone(), tally.steps);
    let mut pending = Pending::default();
    'epochs: for epoch in 1..=args.num_train_epochs {
        // Every epoch's shuffle is drawn, so that a resumed run batches as the first did.
        let mut order: Vec<usize> = (0..train.len()).collect();
        rng.shuffle(&mut order);
        if epoch < first_epoch {
            continue;
        }
        let batches: Vec<&[usize]> = order.chunks(args.per_device_train_batch_size).collect();
        for (b, batch) in batches.iter().enumerate() {
            if epoch == first_epoch && b < done_batches {
                continue;
            }
            let cancelled = hooks.cancelled();
            let t0 = now_ms();
            if !cancelled {
                // Dropout's masks for this step from the run's seed and the step alone.
                crate::device::seed(&env.autodiff, step_seed(args.seed, tally.steps));
                let lr = args.learning_rate_at(tally.steps, total_steps);
                let (next, loss, grad_norm) =
                    trainable.step(&mut optimizer, lr, batch, train, &env)?;
                trainable = next;
                tally.steps += 1;
                pending.push(loss, grad_norm, lr);
            }
            let step = tally.steps;
            let log = !cancelled && (step % args.logging_steps == 0 || step == total_steps);
            // Checkpoints within an epoch (its end keeps one after the evaluation).
            let save = keep
                && !cancelled
                && args.mode != Mode::Head
                && args.save_steps > 0
                && step % args.save_steps == 0
                && b + 1 < batches.len();
            // The device runs ahead of the loop: its results are read (and checked) only to log,
            // to save, at the end of an epoch, and when cancelled.
            let checked = if log || save || cancelled || b + 1 == batches.len() {
                Some(pending.check(step).await?)
            } else {
                None
            };
            tally.train_ms += now_ms() - t0;
            if let Some(checked) = checked {
                if let Some((bad_step, loss)) = checked.non_finite {
                    let (good, good_step) = last_good;
                    trainable = good;
                    tally.steps = good_step;
                    outcome =
                        Outcome::Diverged(diverged(loss, bad_step, good_step, steps_per_epoch));
                    break 'epochs;
                }
                last_good = (trainable.clone(), step);
                tally.window.0 += checked.loss_sum;
                tally.window.1 += checked.losses;
                if log {
                    hooks.event(&TrainEvent::Log {
                        step,
                        epoch: step as f64 / steps_per_epoch as f64,
                        loss: tally.window.0 / tally.window.1.max(1) as f64,
                        learning_rate: checked.learning_rate,
                        grad_norm: checked.grad_norm,
                    });
                    tally.window = (0.0, 0);
                }
            }
            if cancelled {
                outcome = Outcome::Cancelled;
                break 'epochs;
            }
            if save {
                checkpoint(&optimizer, epoch, b + 1, &tally, hooks).await?;
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
            let (loss, preds) = trainable.evaluate(test, &env, hooks).await?;
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
        if keep && epoch < args.num_train_epochs {
            checkpoint(&optimizer, epoch + 1, 0, &tally, hooks).await?;
        }
    }
    let model = trainable.into_model(model);
    Ok(tally.finish(model, outcome, &env, total_steps, hooks))
}

/// Hands the hooks a checkpoint of the run at batch `batch` of epoch `epoch`.
async fn checkpoint(
    optimizer: &AdamW,
    epoch: usize,
    batch: usize,
    tally: &Tally,
    hooks: &mut dyn TrainHooks,
) -> Result<(), Error> {
    let Some(state) = optimizer.state().await? else {
        return Ok(());
    };
    let kept = hooks
        .checkpoint(Checkpoint {
            epoch,
            batch,
            steps: tally.steps,
            history: tally.history.clone(),
            train_ms: tally.train_ms,
            optimizer: state,
        })
        .await;
    if kept {
        hooks.event(&TrainEvent::Saved {
            step: tally.steps,
            epoch,
        });
    }
    Ok(())
}

/// What the user reads when the loss at `bad_step` was `loss` (NaN or infinite) and the weights
/// of `good_step` were kept.
fn diverged(loss: f64, bad_step: usize, good_step: usize, steps_per_epoch: usize) -> String {
    let kept = if good_step + 1 == bad_step {
        "the weights before that step were kept".to_string()
    } else {
        format!("the weights of step {good_step} (the last check before it) were kept")
    };
    format!(
        "the loss became {} at step {bad_step} (epoch {}): training stopped and {kept}; try a \
         lower learning rate",
        if loss.is_nan() { "NaN" } else { "infinite" },
        (bad_step - 1) / steps_per_epoch + 1,
    )
}

/// The steps queued since the last check: their losses and the last gradient norm, still on the
/// device.
#[derive(Default)]
struct Pending {
    losses: Vec<Tensor<1>>,
    grad_norm: Option<Tensor<1>>,
    learning_rate: f64,
}

/// What a check read back.
struct Checked {
    loss_sum: f64,
    losses: usize,
    grad_norm: f64,
    learning_rate: f64,
    /// The first step whose loss was NaN or infinite, and that loss.
    non_finite: Option<(usize, f64)>,
}

impl Pending {
    fn push(&mut self, loss: Tensor<1>, grad_norm: Tensor<1>, learning_rate: f64) {
        self.losses.push(loss);
        self.grad_norm = Some(grad_norm);
        self.learning_rate = learning_rate;
    }

    /// Reads the pending losses and the last gradient norm in one readback (`step` is the last
    /// step taken) and empties the queue.
    async fn check(&mut self, step: usize) -> Result<Checked, Error> {
        let losses = std::mem::take(&mut self.losses);
        let n = losses.len();
        let Some(norm) = self.grad_norm.take() else {
            return Ok(Checked {
                loss_sum: 0.0,
                losses: 0,
                grad_norm: 0.0,
                learning_rate: self.learning_rate,
                non_finite: None,
            });
        };
        let mut parts = losses;
        parts.push(norm);
        let values = read_f32(Tensor::cat(parts, 0)).await?;
        let first_step = step + 1 - n;
        let non_finite = values[..n]
            .iter()
            .position(|x| !x.is_finite())
            .map(|i| (first_step + i, values[i] as f64));
        Ok(Checked {
            loss_sum: values[..n].iter().map(|&x| x as f64).sum(),
            losses: n,
            grad_norm: values[n] as f64,
            learning_rate: self.learning_rate,
            non_finite,
        })
    }
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
