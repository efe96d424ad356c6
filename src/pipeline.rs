//! What the UI calls, as transformers' pipelines: text classification, sentence embeddings and
//! fill-mask, each loaded from Hugging Face files.

use std::collections::BTreeMap;

use burn::prelude::*;
use burn::tensor::activation;
use serde::{Deserialize, Serialize};

use crate::model::bert::{
    first_token, l2_normalize, mean_pool, DropoutRates, Encoder, EncoderInput, HeadInit, MaskedLm,
    Pooling, SequenceClassifier,
};
use crate::model::weights::Weights;
use crate::model::{read_f32, EncoderConfig, ModelConfig, ModelError, Task};
use crate::text::{TextError, TextTokenizer};

/// Any error the engine reports to the user.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum Error {
    #[error(transparent)]
    Model(#[from] ModelError),
    #[error(transparent)]
    Text(#[from] TextError),
    #[error(transparent)]
    Data(#[from] crate::data::DataError),
    #[error("{0}")]
    Usage(String),
}

/// The files of a Hugging Face model folder, as bytes.
#[derive(Debug, Clone, Default)]
pub struct ModelFiles {
    pub config: Vec<u8>,
    pub tokenizer: Vec<u8>,
    pub weights: Vec<u8>,
    /// Optional files by path (`modules.json`, `1_Pooling/config.json`, ...).
    pub extra: BTreeMap<String, Vec<u8>>,
}

impl ModelFiles {
    /// Reads a model folder from disk (native only: tests, benchmarks, tools).
    #[cfg(not(target_arch = "wasm32"))]
    pub fn from_dir(dir: impl AsRef<std::path::Path>) -> std::io::Result<Self> {
        let dir = dir.as_ref();
        let read = |name: &str| std::fs::read(dir.join(name));
        let mut extra = BTreeMap::new();
        for name in OPTIONAL_FILES {
            if let Ok(bytes) = read(name) {
                extra.insert(name.to_string(), bytes);
            }
        }
        Ok(Self {
            config: read("config.json")?,
            tokenizer: read("tokenizer.json")?,
            weights: read("model.safetensors")?,
            extra,
        })
    }

    /// Puts a file in by its path in the folder.
    pub fn insert(&mut self, name: &str, bytes: Vec<u8>) {
        match name {
            "config.json" => self.config = bytes,
            "tokenizer.json" => self.tokenizer = bytes,
            "model.safetensors" => self.weights = bytes,
            other => {
                self.extra.insert(other.to_string(), bytes);
            }
        }
    }

    /// A file by its path in the folder, if present.
    pub fn get(&self, name: &str) -> Option<&[u8]> {
        match name {
            "config.json" => Some(&self.config),
            "tokenizer.json" => Some(&self.tokenizer),
            "model.safetensors" => Some(&self.weights),
            other => self.extra.get(other).map(Vec::as_slice),
        }
    }

    /// A folder's files from (path, bytes) pairs.
    pub fn from_entries(entries: impl IntoIterator<Item = (String, Vec<u8>)>) -> Self {
        let mut files = Self::default();
        for (name, bytes) in entries {
            files.insert(&name, bytes);
        }
        files
    }

    pub fn config(&self) -> Result<ModelConfig, Error> {
        let text = std::str::from_utf8(&self.config)
            .map_err(|_| ModelError::Config("config.json is not UTF-8 text".into()))?;
        Ok(ModelConfig::from_json(text)?)
    }

    pub fn tokenizer(&self) -> Result<TextTokenizer, Error> {
        Ok(TextTokenizer::from_bytes(&self.tokenizer)?)
    }

    /// The sentence-transformers pipeline the folder declares, if any: (pooling, normalize).
    pub fn sentence_transformers(&self) -> Option<(Pooling, bool)> {
        let modules: serde_json::Value =
            serde_json::from_slice(self.extra.get("modules.json")?).ok()?;
        let types: Vec<&str> = modules
            .as_array()?
            .iter()
            .filter_map(|m| m.get("type")?.as_str())
            .collect();
        let normalize = types.iter().any(|t| t.ends_with(".Normalize"));
        let pooling = self
            .extra
            .get("1_Pooling/config.json")
            .and_then(|b| serde_json::from_slice::<serde_json::Value>(b).ok())
            .map(|p| {
                if p.get("pooling_mode_cls_token").and_then(|v| v.as_bool()) == Some(true) {
                    Pooling::Cls
                } else {
                    Pooling::Mean
                }
            })
            .unwrap_or(Pooling::Mean);
        Some((pooling, normalize))
    }
}

/// Files a model folder may hold beyond the three required ones.
pub const OPTIONAL_FILES: &[&str] = &[
    "modules.json",
    "1_Pooling/config.json",
    "sentence_bert_config.json",
    "tokenizer_config.json",
    "special_tokens_map.json",
    "generation_config.json",
];

/// The longest input an encoder takes (capped at 512 as BERT tokenizers are).
pub fn default_max_length(config: &EncoderConfig) -> usize {
    config.max_position_embeddings.min(512)
}

pub fn encoder_config(config: &ModelConfig) -> Result<&EncoderConfig, Error> {
    config
        .encoder()
        .ok_or_else(|| Error::Usage("this is a GPT-2 model: use it on the Prompt page".into()))
}

/// One label with its probability.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct LabelScore {
    pub label: String,
    pub score: f32,
}

/// A text classifier: `pipeline("text-classification")` with `top_k=None`.
pub struct TextClassifier {
    pub model: SequenceClassifier,
    pub tokenizer: TextTokenizer,
    pub config: ModelConfig,
    pub labels: Vec<String>,
    pub max_length: usize,
    pub device: Device,
}

impl TextClassifier {
    /// Loads a `*ForSequenceClassification` checkpoint (its own head and `id2label`).
    pub fn load(files: &ModelFiles, device: &Device) -> Result<Self, Error> {
        let config = files.config()?;
        let enc = encoder_config(&config)?.clone();
        if config.task != Task::SequenceClassification {
            return Err(Error::Usage(
                "this checkpoint has no classification head: fine-tune it first, or pick a \
                 *ForSequenceClassification model"
                    .into(),
            ));
        }
        let tokenizer = files.tokenizer()?;
        let w = Weights::from_bytes(&files.weights, Encoder::prefix(enc.family), device)?;
        let num_labels = classifier_outputs(&w).unwrap_or(config.id2label.len().max(2));
        let pooling = tunelab_pooling(&config).unwrap_or(Pooling::Cls);
        let model = SequenceClassifier::load(
            &w,
            &enc,
            &config.raw,
            num_labels,
            pooling,
            DropoutRates::default(),
            HeadInit::Checkpoint,
        );
        w.finish()?;
        let labels = (0..num_labels).map(|i| config.label(i)).collect();
        Ok(Self {
            model,
            tokenizer,
            max_length: default_max_length(&enc),
            labels,
            config,
            device: device.clone(),
        })
    }

    /// Logits `[n, labels]` for texts.
    pub async fn logits(&self, texts: &[&str]) -> Result<Vec<Vec<f32>>, Error> {
        let mut out = Vec::with_capacity(texts.len());
        for chunk in texts.chunks(16) {
            let batch = self.tokenizer.encode_batch(chunk, self.max_length)?;
            let input = EncoderInput::new(&batch, &self.device);
            let logits = read_f32(self.model.forward(&input)).await?;
            out.extend(logits.chunks(self.labels.len()).map(<[f32]>::to_vec));
        }
        Ok(out)
    }

    /// Every label with its probability for each text, most probable first.
    pub async fn classify(&self, texts: &[&str]) -> Result<Vec<Vec<LabelScore>>, Error> {
        let logits = self.logits(texts).await?;
        Ok(logits
            .iter()
            .map(|row| ranked(&softmax(row), &self.labels))
            .collect())
    }
}

/// The number of outputs of the checkpoint's classifier, read from the file's shapes.
fn classifier_outputs(w: &Weights) -> Option<usize> {
    w.shape_of("classifier.weight").map(|s| s[0])
}

/// The pooling a Tunelab-trained head uses, from `config.json`'s `tunelab_pooling`.
pub fn tunelab_pooling(config: &ModelConfig) -> Option<Pooling> {
    match config.raw.get("tunelab_pooling")?.as_str()? {
        "mean" => Some(Pooling::Mean),
        "cls" => Some(Pooling::Cls),
        _ => None,
    }
}

/// Numerically stable softmax.
pub fn softmax(logits: &[f32]) -> Vec<f32> {
    let max = logits.iter().copied().fold(f32::NEG_INFINITY, f32::max);
    let exps: Vec<f32> = logits.iter().map(|&x| (x - max).exp()).collect();
    let sum: f32 = exps.iter().sum();
    exps.iter().map(|e| e / sum).collect()
}

fn ranked(probs: &[f32], labels: &[String]) -> Vec<LabelScore> {
    let mut scores: Vec<LabelScore> = probs
        .iter()
        .zip(labels)
        .map(|(&score, label)| LabelScore {
            label: label.clone(),
            score,
        })
        .collect();
    scores.sort_by(|a, b| b.score.total_cmp(&a.score));
    scores
}

/// Sentence embeddings, as sentence-transformers' `encode` (pooling, then optional L2 norm).
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
        let w = Weights::from_bytes(&files.weights, Encoder::prefix(enc.family), device)?;
        let encoder = Encoder::load(&w, &enc, DropoutRates::default());
        w.finish()?;
        let (pooling, normalize) = files
            .sentence_transformers()
            .unwrap_or((Pooling::Mean, false));
        let max_length = files
            .extra
            .get("sentence_bert_config.json")
            .and_then(|b| serde_json::from_slice::<serde_json::Value>(b).ok())
            .and_then(|v| v.get("max_seq_length")?.as_u64())
            .map(|n| n as usize)
            .unwrap_or(default_max_length(&enc))
            .min(default_max_length(&enc));
        Ok(Self {
            encoder,
            tokenizer,
            pooling,
            normalize,
            max_length,
            device: device.clone(),
        })
    }

    /// One vector per text.
    pub async fn embed(&self, texts: &[&str]) -> Result<Vec<Vec<f32>>, Error> {
        let mut out = Vec::with_capacity(texts.len());
        for chunk in texts.chunks(32) {
            let batch = self.tokenizer.encode_batch(chunk, self.max_length)?;
            let input = EncoderInput::new(&batch, &self.device);
            let hidden = self.encoder.forward(&input);
            let mut pooled = match self.pooling {
                Pooling::Mean => mean_pool(hidden, &input.attention_mask),
                Pooling::Cls => first_token(hidden),
            };
            if self.normalize {
                pooled = l2_normalize(pooled);
            }
            let d = pooled.dims()[1];
            let values = read_f32(pooled).await?;
            out.extend(values.chunks(d).map(<[f32]>::to_vec));
        }
        Ok(out)
    }
}

/// Cosine similarity of two vectors.
pub fn cosine(a: &[f32], b: &[f32]) -> f32 {
    let dot: f32 = a.iter().zip(b).map(|(x, y)| x * y).sum();
    let na: f32 = a.iter().map(|x| x * x).sum::<f32>().sqrt();
    let nb: f32 = b.iter().map(|x| x * x).sum::<f32>().sqrt();
    dot / (na * nb).max(1e-12)
}

/// One candidate for a `[MASK]`, as `pipeline("fill-mask")` reports it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct MaskCandidate {
    pub score: f32,
    pub token: u32,
    pub token_str: String,
    /// The text with this token in place of the mask.
    pub sequence: String,
}

/// Fill-mask with a masked-LM checkpoint.
pub struct FillMask {
    pub model: MaskedLm,
    pub tokenizer: TextTokenizer,
    pub mask_id: u32,
    pub mask_token: String,
    pub max_length: usize,
    pub device: Device,
}

impl FillMask {
    pub fn load(files: &ModelFiles, device: &Device) -> Result<Self, Error> {
        let config = files.config()?;
        let enc = encoder_config(&config)?.clone();
        if config.task != Task::MaskedLm {
            return Err(Error::Usage(
                "fill-mask needs a masked-LM checkpoint (BertForMaskedLM, DistilBertForMaskedLM)"
                    .into(),
            ));
        }
        let tokenizer = files.tokenizer()?;
        let (mask_token, mask_id) = ["[MASK]", "<mask>"]
            .iter()
            .find_map(|t| tokenizer.token_to_id(t).map(|id| (t.to_string(), id)))
            .ok_or_else(|| Error::Usage("the tokenizer has no [MASK] token".into()))?;
        let w = Weights::from_bytes(&files.weights, Encoder::prefix(enc.family), device)?;
        let model = MaskedLm::load(&w, &enc);
        w.finish()?;
        Ok(Self {
            model,
            tokenizer,
            mask_id,
            mask_token,
            max_length: default_max_length(&enc),
            device: device.clone(),
        })
    }

    /// The `k` most likely tokens for each mask of `text`, in mask order.
    pub async fn fill_mask(&self, text: &str, k: usize) -> Result<Vec<Vec<MaskCandidate>>, Error> {
        let batch = self.tokenizer.encode_batch(&[text], self.max_length)?;
        let ids = batch.row_ids(0);
        let positions: Vec<(usize, usize)> = ids
            .iter()
            .enumerate()
            .filter(|(_, &id)| id == self.mask_id)
            .map(|(p, _)| (0, p))
            .collect();
        if positions.is_empty() {
            return Err(Error::Usage(format!(
                "the text has no {} token to fill",
                self.mask_token
            )));
        }
        let input = EncoderInput::new(&batch, &self.device);
        let logits = self.model.logits_at_positions(&input, &positions);
        let probs = activation::softmax(logits, 1);
        let vocab = probs.dims()[1];
        let probs = read_f32(probs).await?;
        let mut out = Vec::with_capacity(positions.len());
        for (m, &(_, pos)) in positions.iter().enumerate() {
            let row = &probs[m * vocab..(m + 1) * vocab];
            let mut best: Vec<usize> = (0..vocab).collect();
            let k = k.min(vocab);
            best.select_nth_unstable_by(k.saturating_sub(1), |&a, &b| row[b].total_cmp(&row[a]));
            best.truncate(k);
            best.sort_by(|&a, &b| row[b].total_cmp(&row[a]));
            let mut candidates = Vec::with_capacity(k);
            for id in best {
                let mut filled = ids.clone();
                filled[pos] = id as u32;
                candidates.push(MaskCandidate {
                    score: row[id],
                    token: id as u32,
                    token_str: self.tokenizer.decode(&[id as u32], false)?,
                    sequence: self.tokenizer.decode(&filled, true)?,
                });
            }
            out.push(candidates);
        }
        Ok(out)
    }
}
