//! Sentence embeddings, as sentence-transformers' `encode`: the encoder, pooling (mean or CLS),
//! then optional L2 normalisation, following the folder's sentence-transformers settings.

use burn::prelude::*;

use super::{batched_rows, default_max_length, encoder_config};
use crate::error::Error;
use crate::hub::ModelFiles;
use crate::model::bert::{first_token, l2_normalize, mean_pool, Encoder, Pooling};
use crate::text::TextTokenizer;

/// What a sentence-transformers folder declares: `modules.json` (is there a `Normalize`
/// module?), `1_Pooling/config.json` (CLS or mean) and `sentence_bert_config.json`
/// (`max_seq_length`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct SentenceTransformers {
    pub pooling: Pooling,
    pub normalize: bool,
}

impl SentenceTransformers {
    /// The settings when the folder has a `modules.json`, else `None`.
    pub fn of(files: &ModelFiles) -> Option<Self> {
        let modules = files.json("modules.json")?;
        let types: Vec<&str> = modules
            .as_array()?
            .iter()
            .filter_map(|m| m.get("type")?.as_str())
            .collect();
        let normalize = types.iter().any(|t| t.ends_with(".Normalize"));
        let pooling = match files.json("1_Pooling/config.json") {
            Some(p) if p.get("pooling_mode_cls_token").and_then(|v| v.as_bool()) == Some(true) => {
                Pooling::Cls
            }
            _ => Pooling::Mean,
        };
        Some(Self { pooling, normalize })
    }

    /// `sentence_bert_config.json`'s `max_seq_length`, when the folder has one.
    pub fn max_seq_length(files: &ModelFiles) -> Option<usize> {
        let config = files.json("sentence_bert_config.json")?;
        config.get("max_seq_length")?.as_u64().map(|n| n as usize)
    }
}

/// Sentence embeddings from any BERT-family encoder.
pub struct Embedder {
    pub encoder: Encoder,
    pub tokenizer: TextTokenizer,
    pub pooling: Pooling,
    pub normalize: bool,
    pub max_length: usize,
    pub device: Device,
}

impl Embedder {
    /// Loads any BERT-family checkpoint; pooling and normalisation follow its
    /// sentence-transformers files when present (mean pooling, no normalisation otherwise).
    pub fn load(files: &ModelFiles, device: &Device) -> Result<Self, Error> {
        let config = files.config()?;
        let enc = encoder_config(&config)?.clone();
        let tokenizer = files.tokenizer()?;
        let encoder = Encoder::from_checkpoint(&files.weights, &enc, device)?;
        let st = SentenceTransformers::of(files).unwrap_or(SentenceTransformers {
            pooling: Pooling::Mean,
            normalize: false,
        });
        let limit = default_max_length(&enc);
        let max_length = SentenceTransformers::max_seq_length(files)
            .unwrap_or(limit)
            .min(limit);
        Ok(Self {
            encoder,
            tokenizer,
            pooling: st.pooling,
            normalize: st.normalize,
            max_length,
            device: device.clone(),
        })
    }

    /// One vector per text.
    pub async fn embed(&self, texts: &[&str]) -> Result<Vec<Vec<f32>>, Error> {
        batched_rows(
            &self.tokenizer,
            texts,
            32,
            self.max_length,
            &self.device,
            |input| {
                let hidden = self.encoder.forward(input);
                let pooled = match self.pooling {
                    Pooling::Mean => mean_pool(hidden, &input.attention_mask),
                    Pooling::Cls => first_token(hidden),
                };
                if self.normalize {
                    l2_normalize(pooled)
                } else {
                    pooled
                }
            },
        )
        .await
    }
}
