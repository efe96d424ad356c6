//! What fine-tuning updates: the whole classifier (full mode), or only its head on features the
//! frozen encoder computes once (head mode). [`Trainable`] gives the loop one step, one
//! evaluation and the final model for either.

use burn::prelude::*;

use super::args::{Mode, TrainingArgs};
use super::batches::{by_length, cross_entropy, evaluate_model, index_tensor};
use super::events::{Phase, TrainEvent, TrainHooks};
use super::optim::{AdamW, AdamWSettings};
use crate::clock::now_ms;
use crate::data::Dataset;
use crate::error::Error;
use crate::model::bert::{ClassifierHead, EncoderInput, SequenceClassifier};
use crate::model::{read_f32, read_i64};
use crate::text::TextTokenizer;

/// What a run shares with every step: the tokenizer, the arguments, where tensors go, and when
/// it started (for the events' elapsed times).
pub(super) struct Env<'a> {
    pub tokenizer: &'a TextTokenizer,
    pub args: &'a TrainingArgs,
    /// Inference.
    pub device: &'a Device,
    /// The same device with autodiff, for training.
    pub autodiff: Device,
    /// `now_ms()` at the start.
    pub start: f64,
}

impl Env<'_> {
    pub fn elapsed_s(&self) -> f64 {
        (now_ms() - self.start) / 1000.0
    }
}

// One value per run (moved through each step): the size difference does not matter.
#[allow(clippy::large_enum_variant)]
pub(super) enum Trainable {
    /// Every weight, on the autodiff device.
    Full(SequenceClassifier),
    /// The head alone (on the autodiff device), on the pooled features `[n, d]` of the
    /// training and test texts (on the inference device).
    Head {
        head: ClassifierHead,
        train_features: Tensor<2>,
        test_features: Tensor<2>,
    },
}

/// The result of one training step.
#[allow(clippy::large_enum_variant)]
pub(super) enum Step {
    /// The model was updated; the batch's loss and the gradient norm before clipping (on the
    /// device).
    Taken { loss: f64, grad_norm: Tensor<1> },
    /// The loss was NaN or infinite: nothing was updated.
    NonFinite(f64),
}

impl Trainable {
    /// The trainable part of `model` for `env.args.mode`. Head mode first runs the frozen encoder
    /// over the training, then the test texts (reporting progress); `None` if it was cancelled
    /// meanwhile.
    pub async fn new(
        model: &SequenceClassifier,
        train: &Dataset,
        test: &Dataset,
        env: &Env<'_>,
        hooks: &mut dyn TrainHooks,
    ) -> Result<Option<Self>, Error> {
        if env.args.mode == Mode::Full {
            return Ok(Some(Self::Full(model.clone().train())));
        }
        let total = train.len() + test.len();
        let mut done = 0;
        let Some(train_features) =
            extract_features(model, &train.texts, env, hooks, &mut done, total).await?
        else {
            return Ok(None);
        };
        let Some(test_features) =
            extract_features(model, &test.texts, env, hooks, &mut done, total).await?
        else {
            return Ok(None);
        };
        Ok(Some(Self::Head {
            head: model.head.clone().train(),
            train_features,
            test_features,
        }))
    }

    /// AdamW over the trainable parameters.
    pub fn optimizer(&self, settings: AdamWSettings) -> AdamW {
        match self {
            Self::Full(model) => AdamW::new(model, settings),
            Self::Head { head, .. } => AdamW::new(head, settings),
        }
    }

    /// One step on the training examples `batch` at learning rate `lr`: the loss, then (when it
    /// is finite) backpropagation and the optimiser's update.
    pub async fn step(
        self,
        optimizer: &mut AdamW,
        lr: f64,
        batch: &[usize],
        train: &Dataset,
        env: &Env<'_>,
    ) -> Result<(Self, Step), Error> {
        let labels: Vec<usize> = batch.iter().map(|&i| train.labels[i]).collect();
        let targets = index_tensor(&labels, &env.autodiff);
        let loss = match &self {
            Self::Full(model) => {
                let texts: Vec<&str> = batch.iter().map(|&i| train.texts[i].as_str()).collect();
                let encoded = env.tokenizer.encode_batch(&texts, env.args.max_length)?;
                let input = EncoderInput::new(&encoded, &env.autodiff);
                cross_entropy(model.forward(&input), targets)
            }
            Self::Head {
                head,
                train_features,
                ..
            } => {
                let x = train_features
                    .clone()
                    .select(0, index_tensor(batch, env.device));
                cross_entropy(head.forward(Tensor::from_inner(x)), targets)
            }
        };
        let loss_value = read_f32(loss.clone()).await?[0] as f64;
        if !loss_value.is_finite() {
            return Ok((self, Step::NonFinite(loss_value)));
        }
        let (next, grad_norm) = match self {
            Self::Full(model) => {
                let (model, norm) = optimizer.step(lr, model, loss);
                (Self::Full(model), norm)
            }
            Self::Head {
                head,
                train_features,
                test_features,
            } => {
                let (head, norm) = optimizer.step(lr, head, loss);
                let next = Self::Head {
                    head,
                    train_features,
                    test_features,
                };
                (next, norm)
            }
        };
        let step = Step::Taken {
            loss: loss_value,
            grad_norm,
        };
        Ok((next, step))
    }

    /// The mean loss and the predictions on `test` (inference mode).
    pub async fn evaluate(
        &self,
        test: &Dataset,
        env: &Env<'_>,
    ) -> Result<(f64, Vec<usize>), Error> {
        match self {
            Self::Full(model) => {
                evaluate_model(
                    &model.valid(),
                    env.tokenizer,
                    test,
                    env.args.per_device_eval_batch_size,
                    env.args.max_length,
                    env.device,
                )
                .await
            }
            Self::Head {
                head,
                test_features,
                ..
            } => {
                let logits = head.valid().forward(test_features.clone());
                let targets = index_tensor(&test.labels, env.device);
                let loss = read_f32(cross_entropy(logits.clone(), targets)).await?[0] as f64;
                let preds = read_i64(logits.argmax(1)).await?;
                Ok((loss, preds.into_iter().map(|c| c as usize).collect()))
            }
        }
    }

    /// The trained classifier for inference: the whole model, or `base` with the trained head.
    pub fn into_model(self, base: SequenceClassifier) -> SequenceClassifier {
        match self {
            Self::Full(model) => model.valid(),
            Self::Head { head, .. } => SequenceClassifier {
                head: head.valid(),
                ..base
            },
        }
    }
}

/// Pooled features of every text (frozen encoder, inference mode), `[n, d]` on the device;
/// `None` if cancelled. `done` of `total` texts are reported as extracted.
async fn extract_features(
    model: &SequenceClassifier,
    texts: &[String],
    env: &Env<'_>,
    hooks: &mut dyn TrainHooks,
    done: &mut usize,
    total: usize,
) -> Result<Option<Tensor<2>>, Error> {
    let (args, device) = (env.args, env.device);
    let order = by_length(env.tokenizer, texts, args.max_length)?;
    let mut parts: Vec<Tensor<2>> = Vec::new();
    for chunk in order.chunks(args.per_device_eval_batch_size) {
        if hooks.cancelled() {
            return Ok(None);
        }
        let batch: Vec<&str> = chunk.iter().map(|&i| texts[i].as_str()).collect();
        let encoded = env.tokenizer.encode_batch(&batch, args.max_length)?;
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
            elapsed_s: env.elapsed_s(),
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
