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

use burn::prelude::*;

use crate::error::Error;
use crate::model::bert::{EncoderInput, Pooling};
use crate::model::{read_f32, EncoderConfig, ModelConfig};
use crate::text::TextTokenizer;

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

/// Runs texts through an encoder in batches of `batch_size` (tokenized and padded per batch,
/// truncated at `max_length`): `forward` maps a batch to one row per text, read back as f32.
pub async fn batched_rows(
    tokenizer: &TextTokenizer,
    texts: &[&str],
    batch_size: usize,
    max_length: usize,
    device: &Device,
    forward: impl Fn(&EncoderInput) -> Tensor<2>,
) -> Result<Vec<Vec<f32>>, Error> {
    let mut out = Vec::with_capacity(texts.len());
    for chunk in texts.chunks(batch_size) {
        let batch = tokenizer.encode_batch(chunk, max_length)?;
        let rows = forward(&EncoderInput::new(&batch, device));
        let width = rows.dims()[1];
        let values = read_f32(rows).await?;
        out.extend(values.chunks(width.max(1)).map(<[f32]>::to_vec));
    }
    Ok(out)
}
