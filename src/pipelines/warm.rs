//! Warming a model's GPU kernels while the user reads: right after a load on WebGPU the engine
//! runs each pipeline once on made-up text, in the background, so that the user's first request
//! does not wait for the browser to compile the shaders (on an H200 a fresh process took 1.1–1.2 s
//! for MiniLM's first call against 4–5 ms for the next, `benches/results/h200-2026-11-28`).
//!
//! Each warm-up takes each of the GPU's paths an encoder's request can take: a text of a few
//! tokens (attention in one kernel, as for a decoded token), a short text (the row kernel, the
//! attention's probabilities kernel) and a batch of more rows than the row kernel takes (the tiled
//! kernel, as a list of texts takes). The results are dropped; an error is returned for the caller
//! to ignore (a warm-up that fails costs nothing but the warmth).

use crate::error::Error;
use crate::model::gpt2::KvCache;
use crate::model::kernels::{argmax_rows, FEW_ROWS};
use crate::model::read_i64;
use crate::pipelines::{Embedder, FillMask, Tagger, TextClassifier};
use crate::prompt::LanguageModel;

/// A text of at most [`FUSED_ATTENTION_MAX_QUERIES`](crate::model::kernels::FUSED_ATTENTION_MAX_QUERIES)
/// tokens with a classifier's special tokens.
pub const TINY: &str = "Fine.";

/// One short sentence.
pub const SHORT: &str = "A few words to warm the kernels up.";

/// Sentences of about 30 tokens each (32 once padded on a GPU), enough of them for more rows in
/// one batch than [`FEW_ROWS`] (the row kernel's limit).
pub fn batch() -> Vec<String> {
    let rows_each = 32;
    (0..FEW_ROWS / rows_each + 2)
        .map(|i| {
            format!(
                "Sentence number {i} of the warm-up batch is a little longer, so that every \
                 text in it fills a block of tokens on the way to the encoder."
            )
        })
        .collect()
}

/// The encoder pipelines' warm-up inputs, one call each: [`TINY`], [`SHORT`], [`batch`].
fn encoder_inputs() -> [Vec<String>; 3] {
    [vec![TINY.into()], vec![SHORT.into()], batch()]
}

fn refs(texts: &[String]) -> Vec<&str> {
    texts.iter().map(|t| &**t).collect()
}

pub async fn classifier(m: &TextClassifier) -> Result<(), Error> {
    for texts in encoder_inputs() {
        m.logits(&refs(&texts)).await?;
    }
    Ok(())
}

pub async fn tagger(m: &Tagger) -> Result<(), Error> {
    for texts in encoder_inputs() {
        m.token_tags(&refs(&texts)).await?;
    }
    Ok(())
}

pub async fn embedder(m: &Embedder) -> Result<(), Error> {
    for texts in encoder_inputs() {
        m.embed(&refs(&texts)).await?;
    }
    Ok(())
}

pub async fn fill_mask(m: &FillMask) -> Result<(), Error> {
    m.fill_mask(&format!("{}.", m.mask_token), 5).await?;
    m.fill_mask(
        &format!("A few {} to warm the kernels up.", m.mask_token),
        5,
    )
    .await?;
    Ok(())
}

/// A language model: a prompt's prefill and one greedy decoding step on the KV cache.
pub async fn language_model(lm: &LanguageModel) -> Result<(), Error> {
    let prompt: Vec<u32> = lm
        .tokenizer
        .encode(SHORT, false)?
        .into_iter()
        .take(lm.max_positions().saturating_sub(1).max(1))
        .collect();
    let mut cache = KvCache::default();
    let next = read_i64(argmax_rows(lm.step(&prompt, &mut cache))).await?;
    let next = next.first().map_or(0, |&t| t.max(0) as u32);
    read_i64(argmax_rows(lm.step(&[next], &mut cache))).await?;
    Ok(())
}
