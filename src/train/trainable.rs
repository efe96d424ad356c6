//! What fine-tuning updates: the whole classifier (full mode), or only its head on features the
//! frozen encoder computes once (head mode). [`Trainable`] gives the loop one step, one
//! evaluation and the final model for either.

use burn::prelude::*;

use super::args::{Mode, TrainingArgs};
use std::rc::Rc;

use super::batches::{cross_entropy, index_tensor, loss_and_predictions, losses_and_predictions};
use super::checkpoint::OptimState;
use super::events::{Phase, TrainEvent, TrainHooks};
use super::export::export_classifier;
use super::optim::{AdamW, AdamWSettings};
use crate::clock::now_ms;
use crate::data::{Dataset, Text};
use crate::device::pad_multiple;
use crate::error::Error;
use crate::hub::ModelFiles;
use crate::model::bert::{AdapterSource, ClassifierHead, EncoderInput, SequenceClassifier};
use crate::pool::{chunks_by_length, spread, Build, Files, Lane, Replica, RowsOf, Sharing, Watch};
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
    /// Other engines to spread feature extraction and evaluation over.
    pub sharing: Option<Rc<Sharing>>,
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
        match env.args.mode {
            Mode::Full => return Ok(Some(Self::Full(model.clone().train()))),
            Mode::Lora => {
                let (model, _) = model
                    .clone()
                    .train()
                    .frozen_for_lora()
                    .with_lora(&env.args.lora, AdapterSource::Fresh(env.args.seed))?;
                return Ok(Some(Self::Full(model)));
            }
            Mode::Head => {}
        }
        let total = train.len() + test.len();
        let mut done = 0;
        // The helpers build the same frozen encoder (and pooler) from the base model's files.
        let replica = helpers(env).map(|s| {
            Replica::new(
                Files::Bytes(s.base.clone()),
                Build::Training {
                    labels: train.label_names.clone(),
                    pooling: model.pooling,
                    seed: env.args.seed,
                },
                RowsOf::Features,
                env.args.max_length,
            )
        });
        let replica = replica.as_ref();
        let Some(train_features) =
            extract_features(model, &train.texts, replica, env, hooks, &mut done, total).await?
        else {
            return Ok(None);
        };
        let Some(test_features) =
            extract_features(model, &test.texts, replica, env, hooks, &mut done, total).await?
        else {
            return Ok(None);
        };
        Ok(Some(Self::Head {
            head: model.head.clone().train(),
            train_features,
            test_features,
        }))
    }

    /// Puts a checkpoint's weights and optimiser state back (see [`AdamW::restore`]).
    pub fn restore(self, optimizer: &mut AdamW, state: &OptimState) -> Result<Self, Error> {
        let restored = match self {
            Self::Full(model) => optimizer.restore(model, state).map(Self::Full),
            Self::Head {
                head,
                train_features,
                test_features,
            } => optimizer.restore(head, state).map(|head| Self::Head {
                head,
                train_features,
                test_features,
            }),
        };
        restored.map_err(Error::Usage)
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
        hooks: &mut dyn TrainHooks,
    ) -> Result<(f64, Vec<usize>), Error> {
        match self {
            // LoRA's adapters merged: the plain model's speed, on every engine.
            Self::Full(model) => evaluate_full(&model.valid().merge_lora(), test, env, hooks).await,
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

    /// The trained classifier: the whole model (LoRA's adapters still apart), or `base` with the
    /// trained head.
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

/// Reports a spread's rows as training progress; head mode's extraction stops on a cancel.
struct Progress<'h> {
    hooks: &'h mut dyn TrainHooks,
    phase: Phase,
    /// Rows reported before this spread, and in all.
    before: usize,
    total: usize,
    start: f64,
    cancellable: bool,
}

impl Watch for Progress<'_> {
    fn done(&mut self, rows: usize) {
        self.hooks.event(&TrainEvent::Progress {
            phase: self.phase,
            done: self.before + rows,
            total: self.total,
            elapsed_s: (now_ms() - self.start) / 1000.0,
        });
    }
    fn cancelled(&self) -> bool {
        self.cancellable && self.hooks.cancelled()
    }
}

/// The helpers of the run, when there are any.
fn helpers<'e>(env: &'e Env<'_>) -> Option<&'e Rc<Sharing>> {
    env.sharing.as_ref().filter(|s| s.helpers.count() > 0)
}

/// Pooled features of every text (frozen encoder, inference mode), `[n, d]` on the device;
/// `None` if cancelled. `done` of `total` texts are reported as extracted. With helpers (and
/// their `replica` of the model) the chunks are spread over them: the features are the same.
async fn extract_features(
    model: &SequenceClassifier,
    texts: &[Text],
    replica: Option<&Rc<Replica>>,
    env: &Env<'_>,
    hooks: &mut dyn TrainHooks,
    done: &mut usize,
    total: usize,
) -> Result<Option<Tensor<2>>, Error> {
    let (args, device) = (env.args, env.device);
    let (order, chunks) = chunks_by_length(
        env.tokenizer,
        texts,
        args.max_length,
        args.per_device_eval_batch_size,
    )?;
    let local = Lane {
        model,
        tokenizer: env.tokenizer,
        rows: RowsOf::Features,
        max_length: args.max_length,
        device,
    };
    let mut watch = Progress {
        hooks,
        phase: Phase::Extracting,
        before: *done,
        total,
        start: env.start,
        cancellable: true,
    };
    let pool = helpers(env).zip(replica).map(|(s, r)| (&*s.helpers, r));
    let spread = spread(&local, pool, &chunks, &mut watch).await?;
    let Some(rows) = spread.complete() else {
        return Ok(None);
    };
    *done += texts.len();
    if texts.is_empty() {
        return Ok(Some(Tensor::zeros([0, 0], device)));
    }
    let d = rows[0].len() / chunks[0].len();
    let sorted = Tensor::from_data(TensorData::new(rows.concat(), [texts.len(), d]), device);
    // Back to the original order.
    let mut inverse = vec![0usize; order.len()];
    for (pos, &i) in order.iter().enumerate() {
        inverse[i] = pos;
    }
    Ok(Some(sorted.select(0, index_tensor(&inverse, device))))
}

/// The classifier's mean loss and predictions on `test` (inference mode), its batches spread
/// over the helpers when there are any: they are sent the weights as they are now.
async fn evaluate_full(
    model: &SequenceClassifier,
    test: &Dataset,
    env: &Env<'_>,
    hooks: &mut dyn TrainHooks,
) -> Result<(f64, Vec<usize>), Error> {
    let args = env.args;
    let (order, chunks) = chunks_by_length(
        env.tokenizer,
        &test.texts,
        args.max_length,
        args.per_device_eval_batch_size,
    )?;
    let replica = match helpers(env) {
        Some(s) => {
            let config = s.base.config()?;
            let files = export_classifier(model, &config, &test.label_names, &s.base).await?;
            Some(Replica::new(
                Files::Bytes(Rc::new(ModelFiles::from_entries(files))),
                Build::Checkpoint,
                RowsOf::Logits,
                args.max_length,
            ))
        }
        None => None,
    };
    let local = Lane {
        model,
        tokenizer: env.tokenizer,
        rows: RowsOf::Logits,
        max_length: args.max_length,
        device: env.device,
    };
    let mut watch = Progress {
        hooks,
        phase: Phase::Evaluating,
        before: 0,
        total: test.len(),
        start: env.start,
        cancellable: false,
    };
    let pool = helpers(env)
        .zip(replica.as_ref())
        .map(|(s, r)| (&*s.helpers, r));
    let rows = spread(&local, pool, &chunks, &mut watch)
        .await?
        .complete()
        .unwrap_or_default();
    let k = model.num_labels();
    let mut loss_sum = 0.0;
    let mut preds = vec![0usize; test.len()];
    let size = args.per_device_eval_batch_size.max(1);
    for (c, values) in rows.iter().enumerate() {
        let rows_of = &order[c * size..(c * size + chunks[c].len())];
        let labels: Vec<usize> = rows_of.iter().map(|&i| test.labels[i]).collect();
        let (sum, p) = losses_and_predictions(values, k, &labels);
        loss_sum += sum;
        for (&i, class) in rows_of.iter().zip(p) {
            preds[i] = class;
        }
    }
    Ok((loss_sum / test.len().max(1) as f64, preds))
}
