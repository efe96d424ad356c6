//! Fine-tuning: arguments, the optimiser, the training loop, and saving the result.

#[cfg(feature = "engine")]
pub mod adapter;
pub mod args;
#[cfg(feature = "engine")]
pub mod batches;
pub mod card;
pub mod checkpoint;
pub mod events;
#[cfg(feature = "engine")]
pub mod export;
#[cfg(feature = "engine")]
pub mod mlm;
#[cfg(feature = "engine")]
pub mod optim;
pub mod script;
#[cfg(feature = "engine")]
mod trainable;
#[cfg(feature = "engine")]
pub mod trainer;

pub use crate::metrics::{evaluate, Average, ClassMetrics, Metrics};
pub use args::{LoraSettings, Mode, TrainingArgs};
pub use events::{Outcome, Phase, TrainEvent, TrainHooks};
#[cfg(feature = "engine")]
pub use trainer::{fine_tune, fine_tune_from, TrainResult};

#[cfg(feature = "engine")]
use burn::prelude::*;

#[cfg(feature = "engine")]
use crate::error::Error;
#[cfg(feature = "engine")]
use crate::hub::ModelFiles;
#[cfg(feature = "engine")]
use crate::model::bert::{DropoutRates, HeadInit, Pooling, SequenceClassifier};
#[cfg(feature = "engine")]
use crate::model::{ModelConfig, Task};
#[cfg(feature = "engine")]
use crate::pipelines::{checkpoint_pooling, encoder_config, SentenceTransformers};

/// The pooling a new head uses: for head-only training on a sentence-transformers checkpoint,
/// its own pooling (the features it was trained to produce); otherwise transformers'
/// `*ForSequenceClassification` ([CLS] through BERT's pooler; ModernBERT's
/// `classifier_pooling`).
#[cfg(feature = "engine")]
pub fn default_pooling(files: &ModelFiles, mode: Mode) -> Pooling {
    match (mode, SentenceTransformers::of(files)) {
        (Mode::Head, Some(st)) => st.pooling,
        _ => files
            .config()
            .map(|c| checkpoint_pooling(&c))
            .unwrap_or(Pooling::Cls),
    }
}

/// A classifier ready to fine-tune on `labels`: the checkpoint's encoder with its head when it
/// has one for the same labels, else a new head initialised from `args.seed`.
#[cfg(feature = "engine")]
pub fn classifier_for_training(
    files: &ModelFiles,
    labels: &[String],
    args: &TrainingArgs,
    pooling: Pooling,
    device: &Device,
) -> Result<(SequenceClassifier, ModelConfig), Error> {
    let config = files.config()?;
    let enc = encoder_config(&config)?.clone();
    let same_head = config.task == Task::SequenceClassification
        && config.id2label.len() == labels.len()
        && config.id2label.iter().zip(labels).all(|(a, b)| a == b)
        && checkpoint_pooling(&config) == pooling;
    let dropout = if args.dropout {
        DropoutRates::from_config(&config.raw, enc.family)
    } else {
        DropoutRates::default()
    };
    let head = if same_head {
        HeadInit::Checkpoint
    } else {
        HeadInit::Fresh(args.seed)
    };
    let model = SequenceClassifier::for_training(
        files.checkpoint()?,
        &config,
        labels.len(),
        pooling,
        dropout,
        head,
        device,
    )?;
    Ok((model, config))
}
