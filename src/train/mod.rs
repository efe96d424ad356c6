//! Fine-tuning: arguments, the optimiser, the training loop and its metrics.

pub mod args;
pub mod export;
pub mod metrics;
pub mod optim;
pub mod trainer;

pub use args::{Mode, TrainingArgs};
pub use metrics::{evaluate, Average, ClassMetrics, Metrics};
pub use trainer::{fine_tune, Collect, Outcome, Phase, TrainEvent, TrainHooks, TrainResult};

use burn::prelude::*;

use crate::model::bert::{DropoutRates, Encoder, HeadInit, Pooling, SequenceClassifier};
use crate::model::weights::Weights;
use crate::model::{ModelConfig, Task};
use crate::pipeline::{encoder_config, Error, ModelFiles};

/// The pooling a new head uses: for head-only training on a sentence-transformers checkpoint,
/// its own pooling (the features it was trained to produce); otherwise transformers'
/// `*ForSequenceClassification` ([CLS] through BERT's pooler).
pub fn default_pooling(files: &ModelFiles, mode: Mode) -> Pooling {
    match (mode, files.sentence_transformers()) {
        (Mode::Head, Some((pooling, _))) => pooling,
        _ => Pooling::Cls,
    }
}

/// A classifier ready to fine-tune on `labels`: the checkpoint's encoder with its head when it
/// has one for the same labels, else a new head initialised from `args.seed`.
pub fn classifier_for_training(
    files: &ModelFiles,
    labels: &[String],
    args: &TrainingArgs,
    pooling: Pooling,
    device: &Device,
) -> Result<(SequenceClassifier, ModelConfig), Error> {
    let config = files.config()?;
    let enc = encoder_config(&config)?.clone();
    let w = Weights::from_bytes(&files.weights, Encoder::prefix(enc.family), device)?;
    let same_head = config.task == Task::SequenceClassification
        && config.id2label.len() == labels.len()
        && config.id2label.iter().zip(labels).all(|(a, b)| a == b)
        && crate::pipeline::tunelab_pooling(&config).unwrap_or(Pooling::Cls) == pooling;
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
    let model =
        SequenceClassifier::load(&w, &enc, &config.raw, labels.len(), pooling, dropout, head);
    w.finish()?;
    Ok((model, config))
}
