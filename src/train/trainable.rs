//! What fine-tuning updates: the whole classifier (full mode), or only its head on features the
//! frozen encoder computes once (head mode). [`Trainable`] gives the loop one step, one
//! evaluation and the final model for either.

use burn::prelude::*;

use super::args::{Mode, TrainingArgs};
use super::batches::{
    by_length, cross_entropy, evaluate_model, index_tensor, loss_and_predictions,
};
use super::events::{Phase, TrainEvent, TrainHooks};
use super::optim::{AdamW, AdamWSettings};
use crate::clock::now_ms;
use crate::data::{Dataset, Text};
use crate::device::pad_multiple;
use crate::error::Error;
use crate::model::bert::{ClassifierHead, EncoderInput, SequenceClassifier};
use crate::model::read_f32;
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

// One value per run (moved through each step): the size difference does not matter. Cloning
// shares the weights' buffers (the trainer keeps the last checked weights that way).
#[allow(clippy::large_enum_variant)]
#[derive(Clone)]
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

    /// One step on the training examples `batch` at learning rate `lr`: the loss,
    /// backpropagation and the optimiser's update, all queued on the device without waiting for
    /// it. Returns the batch's loss and the gradient norm before clipping, both still on the
    /// device: the trainer reads them (and checks that they are finite) every few steps.
    pub fn step(
        self,
        optimizer: &mut AdamW,
        lr: f64,
        batch: &[usize],
        train: &Dataset,
        env: &Env<'_>,
    ) -> Result<(Self, Tensor<1>, Tensor<1>), Error> {
        let labels: Vec<usize> = batch.iter().map(|&i| train.labels[i]).collect();
        let targets = index_tensor(&labels, &env.autodiff);
        Ok(match self {
            Self::Full(model) => {
                let texts: Vec<&str> = batch.iter().map(|&i| &*train.texts[i]).collect();
                let encoded = env.tokenizer.encode_batch_padded(
                    &texts,
                    env.args.max_length,
                    pad_multiple(&env.autodiff),
                )?;
                let input = EncoderInput::new(&encoded, &env.autodiff);
                let loss = cross_entropy(model.forward(&input), targets);
                let value = loss.clone().inner();
                let (model, norm) = optimizer.step(lr, model, loss);
                (Self::Full(model), value, norm)
            }
            Self::Head {
                head,
                train_features,
                test_features,
            } => {
                let x = train_features
                    .clone()
                    .select(0, index_tensor(batch, env.device));
                let loss = cross_entropy(head.forward(Tensor::from_inner(x)), targets);
                let value = loss.clone().inner();
                let (head, norm) = optimizer.step(lr, head, loss);
                let next = Self::Head {
                    head,
                    train_features,
                    test_features,
                };
                (next, value, norm)
            }
        })
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
                let (loss_sum, preds) = loss_and_predictions(logits, &test.labels).await?;
                Ok((loss_sum / test.len().max(1) as f64, preds))
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
    texts: &[Text],
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
        let batch: Vec<&str> = chunk.iter().map(|&i| &*texts[i]).collect();
        let encoded =
            env.tokenizer
                .encode_batch_padded(&batch, args.max_length, pad_multiple(device))?;
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
