//! Sentence embeddings, as sentence-transformers' `encode`: the encoder, pooling (mean or CLS),
//! then optional L2 normalisation, following the folder's sentence-transformers settings; and
//! their similarity (the folder's `similarity_fn_name`, cosine by default) for sentence
//! similarity and semantic search.

use burn::prelude::*;

use super::{batched_rows, default_max_length, encoder_config};
use crate::error::Error;
use crate::hub::ModelFiles;
use crate::model::bert::{first_token, l2_normalize, mean_pool, Encoder, Pooling};
use crate::model::weights::Precision;
use crate::pipelines::similarity::Similarity;
use crate::text::TextTokenizer;

/// What a sentence-transformers folder declares: `modules.json` (is there a `Normalize`
/// module?), `1_Pooling/config.json` (CLS or mean), `sentence_bert_config.json`
/// (`max_seq_length`) and `config_sentence_transformers.json` (`similarity_fn_name`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct SentenceTransformers {
    pub pooling: Pooling,
    pub normalize: bool,
    pub similarity: Similarity,
}

/// The pooling `1_Pooling/config.json` names, in either of sentence-transformers' formats
/// (`"pooling_mode": "cls"`, or one `pooling_mode_*` flag set); `Err` names one Tunelab does
/// not compute (max, mean_sqrt_len_tokens, weightedmean, lasttoken).
fn pooling_of(config: &serde_json::Value) -> Result<Pooling, String> {
    let mode = match config.get("pooling_mode").and_then(|v| v.as_str()) {
        Some(mode) => mode.to_string(),
        None => config
            .as_object()
            .into_iter()
            .flatten()
            .find(|(k, v)| k.starts_with("pooling_mode_") && v.as_bool() == Some(true))
            .map(|(k, _)| k["pooling_mode_".len()..].to_string())
            .unwrap_or_else(|| "mean_tokens".into()),
    };
    match mode.as_str() {
        "cls" | "cls_token" => Ok(Pooling::Cls),
        "mean" | "mean_tokens" => Ok(Pooling::Mean),
        other => Err(format!(
            "this sentence-transformers model pools with \"{other}\" (1_Pooling/config.json); \
             Tunelab computes cls and mean pooling"
        )),
    }
}

impl SentenceTransformers {
    /// The settings when the folder has a `modules.json`, else `None`: mean pooling when
    /// `1_Pooling/config.json` is absent. Use [`Self::check`] for a pooling Tunelab lacks.
    pub fn of(files: &ModelFiles) -> Option<Self> {
        let modules = files.json("modules.json")?;
        let types: Vec<&str> = modules
            .as_array()?
            .iter()
            .filter_map(|m| m.get("type")?.as_str())
            .collect();
        let normalize = types.iter().any(|t| t.ends_with(".Normalize"));
        let pooling = files
            .json("1_Pooling/config.json")
            .and_then(|p| pooling_of(&p).ok())
            .unwrap_or(Pooling::Mean);
        let similarity = files
            .json("config_sentence_transformers.json")
            .and_then(|c| c.get("similarity_fn_name")?.as_str().map(String::from))
            .and_then(|name| Similarity::parse(&name))
            .unwrap_or(Similarity::Cosine);
        Some(Self {
            pooling,
            normalize,
            similarity,
        })
    }

    /// An error when the folder asks for a pooling or similarity function Tunelab does not
    /// compute (rather than silently computing another).
    pub fn check(files: &ModelFiles) -> Result<(), Error> {
        if files.json("modules.json").is_none() {
            return Ok(());
        }
        if let Some(p) = files.json("1_Pooling/config.json") {
            pooling_of(&p).map_err(Error::Usage)?;
        }
        let named = files
            .json("config_sentence_transformers.json")
            .and_then(|c| c.get("similarity_fn_name")?.as_str().map(String::from));
        if let Some(name) = named {
            if Similarity::parse(&name).is_none() {
                return Err(Error::usage(format!(
                    "this sentence-transformers model compares with \"{name}\" \
                     (config_sentence_transformers.json); Tunelab computes cosine, dot, \
                     euclidean and manhattan"
                )));
            }
        }
        Ok(())
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
    /// How two embeddings compare (sentence-transformers' `similarity_fn_name`).
    pub similarity: Similarity,
    pub max_length: usize,
    pub device: Device,
}

impl Embedder {
    /// Loads any BERT-family checkpoint; pooling and normalisation follow its
    /// sentence-transformers files when present (mean pooling, no normalisation otherwise).
    /// On a GPU that computes in f16, in half precision ([`Precision::Auto`]).
    pub fn load(files: &ModelFiles, device: &Device) -> Result<Self, Error> {
        Self::load_with(files, device, Precision::Auto)
    }

    /// [`Embedder::load`] in `precision`.
    pub fn load_with(
        files: &ModelFiles,
        device: &Device,
        precision: Precision,
    ) -> Result<Self, Error> {
        let config = files.config()?;
        let enc = encoder_config(&config)?.clone();
        SentenceTransformers::check(files)?;
        let tokenizer = files.tokenizer()?;
        let encoder = Encoder::from_checkpoint(files.checkpoint()?, &enc, device, precision)?;
        let st = SentenceTransformers::of(files).unwrap_or(SentenceTransformers {
            pooling: Pooling::Mean,
            normalize: false,
            similarity: Similarity::Cosine,
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
            similarity: st.similarity,
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
