//! The fine-tuning loop, as transformers' `Trainer` runs it: shuffled batches with dynamic padding,
//! AdamW with a linear schedule and gradient clipping, loss logged every `logging_steps`,
//! evaluation with accuracy, precision, recall and F1 after each epoch. Progress goes out as
//! events; the loop pauses between steps so that a browser can stay responsive and cancel.

use std::future::Future;
use std::pin::Pin;

use burn::prelude::*;
use burn::tensor::activation;
use serde::{Deserialize, Serialize};

use super::args::{Mode, TrainingArgs};
use super::metrics::{evaluate, Average, Metrics};
use super::optim::{AdamW, AdamWSettings};
use crate::clock::now_ms;
use crate::data::Dataset;
use crate::model::bert::{ClassifierHead, EncoderInput, SequenceClassifier};
use crate::model::{read_f32, read_i64};
use crate::pipeline::Error;
use crate::rng::Rng;
use crate::text::TextTokenizer;

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub enum Phase {
    /// Head mode: running the frozen encoder once over the data.
    Extracting,
    Training,
    Evaluating,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub enum Outcome {
    Completed,
    /// Stopped by the user between steps; the weights are those of the last finished step.
    Cancelled,
    /// The loss became NaN or infinite; the weights are those before that step.
    Diverged(String),
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub enum TrainEvent {
    Started {
        mode: Mode,
        train_examples: usize,
        test_examples: usize,
        epochs: usize,
        total_steps: usize,
    },
    Progress {
        phase: Phase,
        done: usize,
        total: usize,
        elapsed_s: f64,
    },
    /// Mean training loss since the previous log, as the Trainer logs it.
    Log {
        step: usize,
        epoch: f64,
        loss: f64,
        learning_rate: f64,
        grad_norm: f64,
    },
    Evaluated {
        epoch: usize,
        step: usize,
        loss: f64,
        metrics: Metrics,
    },
    Finished {
        outcome: Outcome,
        steps: usize,
        elapsed_s: f64,
        /// Training examples processed per second (excluding evaluation and extraction).
        train_examples_per_s: f64,
    },
}

/// Where the loop reports to, and how it yields.
pub trait TrainHooks {
    fn event(&mut self, event: &TrainEvent);
    /// Checked between steps.
    fn cancelled(&self) -> bool {
        false
    }
    /// Lets the host run (a browser processes messages here). Natively: nothing.
    fn pause(&mut self) -> Pin<Box<dyn Future<Output = ()> + '_>> {
        Box::pin(async {})
    }
}

/// Hooks that collect events (tests, benchmarks).
#[derive(Default)]
pub struct Collect {
    pub events: Vec<TrainEvent>,
    /// Cancel once this many steps have been logged as progress.
    pub cancel_after_steps: Option<usize>,
}

impl TrainHooks for Collect {
    fn event(&mut self, event: &TrainEvent) {
        self.events.push(event.clone());
    }
    fn cancelled(&self) -> bool {
        let Some(limit) = self.cancel_after_steps else {
            return false;
        };
        self.events
            .iter()
            .filter(|e| {
                matches!(
                    e,
                    TrainEvent::Progress {
                        phase: Phase::Training,
                        ..
                    }
                )
            })
            .count()
            >= limit
    }
}

/// What training produced.
pub struct TrainResult {
    /// The model for inference (no autodiff), with the last good weights.
    pub model: SequenceClassifier,
    pub outcome: Outcome,
    /// Evaluation after each finished epoch.
    pub history: Vec<(usize, f64, Metrics)>,
    pub steps: usize,
}

/// Mean cross-entropy of logits `[n, k]` against class indices.
pub fn cross_entropy(logits: Tensor<2>, targets: Tensor<1, Int>) -> Tensor<1> {
    let [n, _] = logits.dims();
    activation::log_softmax(logits, 1)
        .gather(1, targets.reshape([n, 1]))
        .mean()
        .neg()
}

fn index_tensor(idx: &[usize], device: &Device) -> Tensor<1, Int> {
    let v: Vec<i32> = idx.iter().map(|&i| i as i32).collect();
    Tensor::from_data(TensorData::new(v, [idx.len()]), device)
}

/// The classifier's predictions and mean loss on a dataset (inference mode).
pub async fn evaluate_model(
    model: &SequenceClassifier,
    tokenizer: &TextTokenizer,
    data: &Dataset,
    batch_size: usize,
    max_length: usize,
    device: &Device,
) -> Result<(f64, Vec<usize>), Error> {
    let mut loss_sum = 0.0;
    let mut preds = Vec::with_capacity(data.len());
    let order = by_length(tokenizer, &data.texts, max_length)?;
    let mut sorted_preds = vec![0usize; data.len()];
    for chunk in order.chunks(batch_size) {
        let texts: Vec<&str> = chunk.iter().map(|&i| data.texts[i].as_str()).collect();
        let labels: Vec<usize> = chunk.iter().map(|&i| data.labels[i]).collect();
        let batch = tokenizer.encode_batch(&texts, max_length)?;
        let logits = model.forward(&EncoderInput::new(&batch, device));
        let loss = cross_entropy(logits.clone(), index_tensor(&labels, device));
        loss_sum += read_f32(loss).await?[0] as f64 * chunk.len() as f64;
        let p = read_i64(logits.argmax(1)).await?;
        for (&i, &c) in chunk.iter().zip(&p) {
            sorted_preds[i] = c as usize;
        }
    }
    preds.extend(sorted_preds);
    Ok((loss_sum / data.len().max(1) as f64, preds))
}

/// Indices sorted by token length (batches of similar lengths pad little).
fn by_length(
    tokenizer: &TextTokenizer,
    texts: &[String],
    max_length: usize,
) -> Result<Vec<usize>, Error> {
    let mut lens = Vec::with_capacity(texts.len());
    for t in texts {
        lens.push(tokenizer.encode(t, true)?.len().min(max_length));
    }
    let mut order: Vec<usize> = (0..texts.len()).collect();
    order.sort_by_key(|&i| lens[i]);
    Ok(order)
}

/// Pooled features of every text (frozen encoder, inference mode), `[n, d]` on the device.
async fn extract_features(
    model: &SequenceClassifier,
    tokenizer: &TextTokenizer,
    texts: &[String],
    args: &TrainingArgs,
    device: &Device,
    hooks: &mut dyn TrainHooks,
    done: &mut usize,
    total: usize,
    start: f64,
) -> Result<Option<Tensor<2>>, Error> {
    let order = by_length(tokenizer, texts, args.max_length)?;
    let mut parts: Vec<Tensor<2>> = Vec::new();
    for chunk in order.chunks(args.per_device_eval_batch_size) {
        if hooks.cancelled() {
            return Ok(None);
        }
        let batch: Vec<&str> = chunk.iter().map(|&i| texts[i].as_str()).collect();
        let encoded = tokenizer.encode_batch(&batch, args.max_length)?;
        let f = model.features(&EncoderInput::new(&encoded, device));
        // Force the work now so progress is real (and memory stays bounded).
        let d = f.dims()[1];
        let values = read_f32(f).await?;
        parts.push(Tensor::from_data(
            TensorData::new(values, [chunk.len(), d]),
            device,
        ));
        *done += chunk.len();
        hooks.event(&TrainEvent::Progress {
            phase: Phase::Extracting,
            done: *done,
            total,
            elapsed_s: (now_ms() - start) / 1000.0,
        });
        hooks.pause().await;
    }
    if parts.is_empty() {
        return Ok(Some(Tensor::zeros([0, 0], device)));
    }
    // Back to the original order.
    let sorted = Tensor::cat(parts, 0);
    let mut inverse = vec![0usize; order.len()];
    for (pos, &i) in order.iter().enumerate() {
        inverse[i] = pos;
    }
    Ok(Some(sorted.select(0, index_tensor(&inverse, device))))
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
    let labels = train.label_names.clone();
    let average = Average::default_for(&labels);
    hooks.event(&TrainEvent::Started {
        mode: args.mode,
        train_examples: train.len(),
        test_examples: test.len(),
        epochs: args.num_train_epochs,
        total_steps,
    });
    device.seed(args.seed);
    let autodiff = device.clone().autodiff();
    let settings = AdamWSettings {
        beta1: args.adam_beta1,
        beta2: args.adam_beta2,
        epsilon: args.adam_epsilon,
        weight_decay: args.weight_decay,
        decay_bias_and_norm: false,
        max_grad_norm: args.max_grad_norm,
    };
    let mut rng = Rng::new(args.seed);
    let mut history = Vec::new();
    let mut step = 0usize;
    let mut train_ms = 0.0;
    let mut outcome = Outcome::Completed;
    let mut window = (0.0f64, 0usize);

    // Head mode works on cached features; full mode on the whole model.
    let mut features: Option<(Tensor<2>, Tensor<2>)> = None;
    if args.mode == Mode::Head {
        let total = train.len() + test.len();
        let mut done = 0;
        let f_train = extract_features(
            &model,
            tokenizer,
            &train.texts,
            args,
            device,
            hooks,
            &mut done,
            total,
            start,
        )
        .await?;
        let f_test = match f_train {
            Some(_) => {
                extract_features(
                    &model,
                    tokenizer,
                    &test.texts,
                    args,
                    device,
                    hooks,
                    &mut done,
                    total,
                    start,
                )
                .await?
            }
            None => None,
        };
        match (f_train, f_test) {
            (Some(a), Some(b)) => features = Some((a, b)),
            _ => outcome = Outcome::Cancelled,
        }
    }
    let (mut full, mut head): (Option<SequenceClassifier>, Option<ClassifierHead>) = match args.mode
    {
        Mode::Full => (Some(model.clone().train()), None),
        Mode::Head => (None, Some(model.head.clone().train())),
    };
    let mut optimizer = match (&full, &head) {
        (Some(m), _) => AdamW::new(m, settings),
        (_, Some(h)) => AdamW::new(h, settings),
        _ => unreachable!(),
    };
    let train_targets = |idx: &[usize]| {
        index_tensor(
            &idx.iter().map(|&i| train.labels[i]).collect::<Vec<_>>(),
            &autodiff,
        )
    };

    'epochs: for epoch in 1..=args.num_train_epochs {
        if outcome != Outcome::Completed {
            break;
        }
        let mut order: Vec<usize> = (0..train.len()).collect();
        rng.shuffle(&mut order);
        for batch in order.chunks(args.per_device_train_batch_size) {
            if hooks.cancelled() {
                outcome = Outcome::Cancelled;
                break 'epochs;
            }
            let t0 = now_ms();
            let lr = args.learning_rate_at(step, total_steps);
            let targets = train_targets(batch);
            let loss = match (&full, &head, &features) {
                (Some(m), _, _) => {
                    let texts: Vec<&str> = batch.iter().map(|&i| train.texts[i].as_str()).collect();
                    let encoded = tokenizer.encode_batch(&texts, args.max_length)?;
                    cross_entropy(m.forward(&EncoderInput::new(&encoded, &autodiff)), targets)
                }
                (_, Some(h), Some((f_train, _))) => {
                    let x = f_train.clone().select(0, index_tensor(batch, device));
                    cross_entropy(h.forward(Tensor::from_inner(x)), targets)
                }
                _ => unreachable!(),
            };
            let loss_value = read_f32(loss.clone()).await?[0] as f64;
            if !loss_value.is_finite() {
                outcome = Outcome::Diverged(format!(
                    "the loss became {} at step {} (epoch {epoch}): training stopped and the \
                     weights before that step were kept; try a lower learning rate",
                    if loss_value.is_nan() {
                        "NaN"
                    } else {
                        "infinite"
                    },
                    step + 1
                ));
                break 'epochs;
            }
            let grad_norm = if let Some(m) = full.take() {
                let (m, n) = optimizer.step(lr, m, loss);
                full = Some(m);
                n
            } else {
                let h = head.take().expect("head");
                let (h, n) = optimizer.step(lr, h, loss);
                head = Some(h);
                n
            };
            step += 1;
            train_ms += now_ms() - t0;
            window.0 += loss_value;
            window.1 += 1;
            if step % args.logging_steps == 0 || step == total_steps {
                let grad_norm = read_f32(grad_norm).await?[0] as f64;
                hooks.event(&TrainEvent::Log {
                    step,
                    epoch: step as f64 / steps_per_epoch as f64,
                    loss: window.0 / window.1 as f64,
                    learning_rate: lr,
                    grad_norm,
                });
                window = (0.0, 0);
            }
            hooks.event(&TrainEvent::Progress {
                phase: Phase::Training,
                done: step,
                total: total_steps,
                elapsed_s: (now_ms() - start) / 1000.0,
            });
            hooks.pause().await;
        }
        // Evaluation at the end of each epoch.
        if !test.is_empty() {
            hooks.event(&TrainEvent::Progress {
                phase: Phase::Evaluating,
                done: 0,
                total: test.len(),
                elapsed_s: (now_ms() - start) / 1000.0,
            });
            let (loss, preds) = match (&full, &head, &features) {
                (Some(m), _, _) => {
                    evaluate_model(
                        &m.valid(),
                        tokenizer,
                        test,
                        args.per_device_eval_batch_size,
                        args.max_length,
                        device,
                    )
                    .await?
                }
                (_, Some(h), Some((_, f_test))) => {
                    let logits = h.valid().forward(f_test.clone());
                    let targets = index_tensor(&test.labels, device);
                    let loss = read_f32(cross_entropy(logits.clone(), targets)).await?[0] as f64;
                    let p = read_i64(logits.argmax(1)).await?;
                    (loss, p.into_iter().map(|c| c as usize).collect())
                }
                _ => unreachable!(),
            };
            let metrics = evaluate(&test.labels, &preds, &labels, average);
            hooks.event(&TrainEvent::Evaluated {
                epoch,
                step,
                loss,
                metrics: metrics.clone(),
            });
            history.push((epoch, loss, metrics));
            hooks.pause().await;
        }
    }

    let model = match (full, head) {
        (Some(m), _) => m.valid(),
        (_, Some(h)) => {
            let mut m = model;
            m.head = h.valid();
            m
        }
        _ => unreachable!(),
    };
    let elapsed_s = (now_ms() - start) / 1000.0;
    let examples = step.min(total_steps) as f64 * args.per_device_train_batch_size as f64;
    hooks.event(&TrainEvent::Finished {
        outcome: outcome.clone(),
        steps: step,
        elapsed_s,
        train_examples_per_s: if train_ms > 0.0 {
            examples / (train_ms / 1000.0)
        } else {
            0.0
        },
    });
    Ok(TrainResult {
        model,
        outcome,
        history,
        steps: step,
    })
}
