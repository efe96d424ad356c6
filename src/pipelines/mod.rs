//! What the UI calls, as transformers' pipelines, one file each: text classification
//! ([`classify`]), sentence embeddings ([`embed`]) and fill-mask ([`fill_mask`]), each loaded from
//! a model folder's [`ModelFiles`](crate::hub::ModelFiles). Prompting a language model (generation,
//! label scoring) lives in [`crate::prompt`].

pub mod classify;
pub mod embed;
pub mod fill_mask;

pub use classify::TextClassifier;
pub use embed::{Embedder, SentenceTransformers};
pub use fill_mask::{FillMask, MaskCandidate};

use crate::error::Error;
use crate::model::bert::Pooling;
use crate::model::{EncoderConfig, ModelConfig};

/// The longest input an encoder takes (capped at 512 as BERT tokenizers are).
pub fn default_max_length(config: &EncoderConfig) -> usize {
    config.max_position_embeddings.min(512)
}

/// The encoder sizes of a config, or an error saying what the model is instead.
pub fn encoder_config(config: &ModelConfig) -> Result<&EncoderConfig, Error> {
    config.encoder().ok_or_else(|| {
        Error::usage(
            "this is a GPT-2 language model, not an encoder: it generates text and scores labels \
             by prompting",
        )
    })
}

/// The pooling a Tunelab-trained head uses, from `config.json`'s `tunelab_pooling`.
pub fn tunelab_pooling(config: &ModelConfig) -> Option<Pooling> {
    match config.raw.get("tunelab_pooling")?.as_str()? {
        "mean" => Some(Pooling::Mean),
        "cls" => Some(Pooling::Cls),
        _ => None,
    }
}
