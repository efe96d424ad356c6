//! What the UI calls, as transformers' pipelines, one file each: text classification
//! ([`classify`]), zero-shot classification by NLI ([`zero_shot`]), sentence embeddings
//! ([`embed`]) with similarity and semantic search ([`similarity`]), token classification
//! ([`ner`]) and fill-mask ([`fill_mask`]), each loaded from
//! a model folder's [`ModelFiles`](crate::hub::ModelFiles). Prompting a language model (generation,
//! label scoring) lives in [`crate::prompt`].

#[cfg(feature = "engine")]
pub mod classify;
#[cfg(feature = "engine")]
pub mod embed;
#[cfg(feature = "engine")]
pub mod fill_mask;
pub mod ner;
pub mod similarity;
#[cfg(feature = "engine")]
pub mod warm;
pub mod zero_shot;

#[cfg(feature = "engine")]
pub use classify::TextClassifier;
#[cfg(feature = "engine")]
pub use embed::{Embedder, SentenceTransformers};
#[cfg(feature = "engine")]
pub use fill_mask::FillMask;
#[cfg(feature = "engine")]
pub use ner::Tagger;

#[cfg(feature = "engine")]
use burn::prelude::*;

#[cfg(feature = "engine")]
use crate::device::pad_multiple;
#[cfg(feature = "engine")]
use crate::error::Error;
#[cfg(feature = "engine")]
use crate::model::bert::{EncoderInput, Pooling};
#[cfg(feature = "engine")]
use crate::model::{read_f32, EncoderConfig, ModelConfig};
#[cfg(feature = "engine")]
use crate::text::TextTokenizer;

/// The longest input an encoder takes (capped at 512 as BERT tokenizers are).
#[cfg(feature = "engine")]
pub fn default_max_length(config: &EncoderConfig) -> usize {
    config.max_tokens().min(512)
}

/// The encoder sizes of a config, or an error saying what the model is instead.
#[cfg(feature = "engine")]
pub fn encoder_config(config: &ModelConfig) -> Result<&EncoderConfig, Error> {
    config.encoder().ok_or_else(|| {
        Error::usage(
            "this is a language model, not an encoder: it generates text and scores labels \
             by prompting",
        )
    })
}

/// The pooling a checkpoint's classification head reads: Tunelab's `tunelab_pooling`,
/// ModernBERT's `classifier_pooling`, else the first token.
#[cfg(feature = "engine")]
pub fn checkpoint_pooling(config: &ModelConfig) -> Pooling {
    tunelab_pooling(config)
        .or_else(|| Some(config.encoder()?.modern.as_ref()?.classifier_pooling))
        .unwrap_or(Pooling::Cls)
}

/// The pooling a Tunelab-trained head uses, from `config.json`'s `tunelab_pooling`.
#[cfg(feature = "engine")]
pub fn tunelab_pooling(config: &ModelConfig) -> Option<Pooling> {
    match config.raw.get("tunelab_pooling")?.as_str()? {
        "mean" => Some(Pooling::Mean),
        "cls" => Some(Pooling::Cls),
        _ => None,
    }
}

/// How many texts [`batched_rows`] tokenizes, sorts and reads back at a time.
#[cfg(feature = "engine")]
const TEXTS_PER_READ: usize = 256;

/// On a GPU, [`batched_rows`] fills batches up to this many (padded) tokens rather than a fixed
/// number of texts: fewer, larger batches launch fewer kernels, and the attention scores of one
/// batch stay small (8,192 tokens × 12 heads × 512 positions × 4 bytes = 200 MB at most).
#[cfg(feature = "engine")]
pub const GPU_BATCH_TOKENS: usize = 8192;

/// Splits rows sorted by length (`lens`, ascending) into batches: on the CPU (`multiple` 1) of
/// `batch_size` rows; on a GPU of as many rows as fit in [`GPU_BATCH_TOKENS`] once padded to the
/// batch's longest row rounded up to `multiple`, but at least `batch_size` rows where they fit.
#[cfg(feature = "engine")]
fn plan_batches(lens: &[usize], batch_size: usize, multiple: usize) -> Vec<std::ops::Range<usize>> {
    let batch_size = batch_size.max(1);
    if multiple <= 1 {
        return (0..lens.len())
            .step_by(batch_size)
            .map(|s| s..(s + batch_size).min(lens.len()))
            .collect();
    }
    let mut out = Vec::new();
    let mut start = 0;
    while start < lens.len() {
        let mut end = start + 1;
        while end < lens.len() {
            let padded = lens[end].max(1).next_multiple_of(multiple);
            if (end + 1 - start) * padded > GPU_BATCH_TOKENS.max(batch_size * padded) {
                break;
            }
            end += 1;
        }
        out.push(start..end);
        start = end;
    }
    out
}

/// Runs texts through an encoder in batches of `batch_size` (truncated at `max_length`):
/// `forward` maps a batch to one row per text, read back as f32, in the order of `texts`.
///
/// Texts are tokenized a few hundred at a time and batched by length, so that a batch pads only
/// to its own longest text (rounded up to the device's [`pad_multiple`]; on a GPU batches are
/// filled up to [`GPU_BATCH_TOKENS`]); the rows of all those batches come back in one read, so
/// the device is not stopped after every batch.
#[cfg(feature = "engine")]
pub async fn batched_rows(
    tokenizer: &TextTokenizer,
    texts: &[&str],
    batch_size: usize,
    max_length: usize,
    device: &Device,
    forward: impl Fn(&EncoderInput) -> Tensor<2>,
) -> Result<Vec<Vec<f32>>, Error> {
    let encode =
        |range: std::ops::Range<usize>| Ok(tokenizer.encode_batch(&texts[range], max_length)?);
    batched_rows_of(texts.len(), encode, batch_size, device, forward).await
}

/// [`batched_rows`] over `count` inputs of any kind (single texts, sentence pairs):
/// `encode(range)` encodes the inputs in `range`, padded to their longest.
#[cfg(feature = "engine")]
pub async fn batched_rows_of(
    count: usize,
    encode: impl Fn(std::ops::Range<usize>) -> Result<crate::text::EncodedBatch, Error>,
    batch_size: usize,
    device: &Device,
    forward: impl Fn(&EncoderInput) -> Tensor<2>,
) -> Result<Vec<Vec<f32>>, Error> {
    let multiple = pad_multiple(device);
    let mut out: Vec<Vec<f32>> = vec![Vec::new(); count];
    for g in 0..count.div_ceil(TEXTS_PER_READ) {
        let range = g * TEXTS_PER_READ..((g + 1) * TEXTS_PER_READ).min(count);
        let encoded = encode(range.clone())?;
        let mut order: Vec<usize> = (0..range.len()).collect();
        order.sort_by_key(|&i| encoded.row_len(i));
        let lens: Vec<usize> = order.iter().map(|&i| encoded.row_len(i)).collect();
        let parts: Vec<Tensor<2>> = plan_batches(&lens, batch_size, multiple)
            .into_iter()
            .map(|range| {
                let batch = encoded.select_rows(&order[range], multiple);
                forward(&EncoderInput::new(&batch, device))
            })
            .collect();
        let rows = if parts.len() == 1 {
            parts.into_iter().next().expect("one part")
        } else {
            Tensor::cat(parts, 0)
        };
        let width = rows.dims()[1];
        let values = read_f32(rows).await?;
        for (&i, row) in order.iter().zip(values.chunks(width.max(1))) {
            out[g * TEXTS_PER_READ + i] = row.to_vec();
        }
    }
    Ok(out)
}

#[cfg(test)]
#[cfg(feature = "engine")]
mod tests {
    use super::plan_batches;

    #[test]
    fn batches_are_fixed_on_the_cpu_and_filled_by_tokens_on_a_gpu() {
        let lens: Vec<usize> = (1..=100).collect();
        let cpu = plan_batches(&lens, 32, 1);
        assert_eq!(cpu, vec![0..32, 32..64, 64..96, 96..100]);
        let short = vec![10usize; 300];
        // 8,192 tokens at 32 per row: 256 rows.
        assert_eq!(plan_batches(&short, 32, 32), vec![0..256, 256..300]);
        let long = vec![500usize; 40];
        // 512-token rows: 16 fit, but never fewer than the batch size asked for.
        assert_eq!(plan_batches(&long, 32, 32), vec![0..32, 32..40]);
        let gpu = plan_batches(&lens, 8, 32);
        assert_eq!(gpu.first().map(|r| r.start), Some(0));
        assert_eq!(gpu.last().map(|r| r.end), Some(100));
        assert!(gpu.windows(2).all(|w| w[0].end == w[1].start));
    }
}

/// One candidate for a mask, as `pipeline("fill-mask")` reports it.
#[derive(Debug, Clone, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct MaskCandidate {
    pub score: f32,
    pub token: u32,
    pub token_str: String,
    /// The text with this token in place of the mask.
    pub sequence: String,
}
