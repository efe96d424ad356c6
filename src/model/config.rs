//! Hugging Face `config.json` for the architectures Tunelab runs: BERT (and BERT-shaped
//! sentence-transformers checkpoints such as all-MiniLM-L6-v2), DistilBERT, RoBERTa,
//! XLM-RoBERTa and GPT-2.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};
use serde_json::Value;

use super::ModelError;
use crate::math::human_bytes;

/// The architecture family named by `model_type`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub enum Family {
    Bert,
    DistilBert,
    /// `roberta`: BERT's layers under `roberta.`, positions counted from `pad_token_id + 1`, and
    /// a two-layer classification head.
    Roberta,
    /// `xlm-roberta`: RoBERTa's architecture (and checkpoint layout) with a SentencePiece
    /// vocabulary.
    XlmRoberta,
    /// `modernbert`: pre-norm layers without biases, rotary positions, a gated GELU MLP,
    /// attention alternating between global and a sliding window, a final norm.
    ModernBert,
    Gpt2,
    /// `llama` (SmolLM2 too): RMSNorm, rotary positions, a SwiGLU MLP, grouped-query attention.
    Llama,
    /// `qwen2`: Llama's architecture with biases on the query, key and value projections.
    Qwen2,
    /// `qwen3`: Llama's with an RMSNorm on each head's queries and keys, and its own head size.
    Qwen3,
}

impl Family {
    /// RoBERTa and XLM-RoBERTa.
    pub fn is_roberta(self) -> bool {
        matches!(self, Self::Roberta | Self::XlmRoberta)
    }

    /// The `architectures` name of this family's masked language model.
    pub fn masked_lm_architecture(self) -> &'static str {
        match self {
            Self::DistilBert => "DistilBertForMaskedLM",
            Self::Roberta => "RobertaForMaskedLM",
            Self::XlmRoberta => "XLMRobertaForMaskedLM",
            Self::ModernBert => "ModernBertForMaskedLM",
            Self::Bert | Self::Gpt2 | Self::Llama | Self::Qwen2 | Self::Qwen3 => "BertForMaskedLM",
        }
    }

    /// The `architectures` name of this family's sequence classifier.
    pub fn classifier_architecture(self) -> &'static str {
        match self {
            Self::DistilBert => "DistilBertForSequenceClassification",
            Self::Roberta => "RobertaForSequenceClassification",
            Self::XlmRoberta => "XLMRobertaForSequenceClassification",
            Self::ModernBert => "ModernBertForSequenceClassification",
            Self::Bert | Self::Gpt2 | Self::Llama | Self::Qwen2 | Self::Qwen3 => {
                "BertForSequenceClassification"
            }
        }
    }
}

/// What the checkpoint's `architectures` entry says the weights are for.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Task {
    /// A bare encoder (`BertModel`, `DistilBertModel`): embeddings, no head.
    Base,
    /// `*ForSequenceClassification`: a classification head with `id2label`.
    SequenceClassification,
    /// `BertForMaskedLM` / `DistilBertForMaskedLM`: fill-mask.
    MaskedLm,
    /// `*ForTokenClassification`: a label per token (named entities).
    TokenClassification,
    /// `GPT2LMHeadModel`: next-token prediction.
    CausalLm,
}

/// The sizes of a BERT-family encoder, with DistilBERT's names mapped onto BERT's.
#[derive(Debug, Clone, PartialEq)]
pub struct EncoderConfig {
    pub family: Family,
    pub vocab_size: usize,
    pub hidden_size: usize,
    pub num_layers: usize,
    pub num_heads: usize,
    pub intermediate_size: usize,
    pub max_position_embeddings: usize,
    /// 0 for DistilBERT (no token type embeddings); 1 for RoBERTa.
    pub type_vocab_size: usize,
    pub layer_norm_eps: f64,
    pub activation: Activation,
    pub pad_token_id: u32,
    /// ModernBERT's settings (`None` for the BERT-shaped families).
    pub modern: Option<ModernBertConfig>,
}

/// What ModernBERT's `config.json` adds to the sizes, with transformers' defaults.
#[derive(Debug, Clone, PartialEq)]
pub struct ModernBertConfig {
    /// Per layer: attends within the sliding window (`sliding_attention`), else globally.
    pub sliding: Vec<bool>,
    /// Keys at most this far from the query are seen in a sliding-window layer
    /// (`local_attention / 2`).
    pub half_window: usize,
    /// Rotary base of the global and of the sliding-window layers.
    pub global_theta: f64,
    pub local_theta: f64,
    pub norm_bias: bool,
    pub attention_bias: bool,
    pub mlp_bias: bool,
    pub classifier_bias: bool,
    pub classifier_activation: Activation,
    pub classifier_pooling: Pooling,
    pub decoder_bias: bool,
}

/// The sizes of a GPT-2 decoder.
#[derive(Debug, Clone, PartialEq)]
pub struct Gpt2Config {
    pub vocab_size: usize,
    pub n_positions: usize,
    pub n_embd: usize,
    pub n_layer: usize,
    pub n_head: usize,
    pub n_inner: usize,
    pub layer_norm_epsilon: f64,
    pub activation: Activation,
    pub bos_token_id: u32,
    pub eos_token_id: u32,
}

/// The sizes of a Llama-family decoder (Llama, SmolLM2, Qwen2, Qwen2.5, Qwen3).
#[derive(Debug, Clone, PartialEq)]
pub struct LlamaConfig {
    pub family: Family,
    pub vocab_size: usize,
    pub hidden_size: usize,
    pub num_layers: usize,
    pub num_heads: usize,
    /// Heads of the keys and values (grouped-query attention: fewer than `num_heads`).
    pub num_kv_heads: usize,
    pub head_dim: usize,
    pub intermediate_size: usize,
    pub rms_norm_eps: f64,
    pub rope_theta: f64,
    /// How the rotary frequencies are scaled for a longer context (`rope_type`).
    pub rope_scaling: RopeScaling,
    pub max_positions: usize,
    /// Biases on the query, key and value projections (Qwen2's; Llama's `attention_bias` puts
    /// one on the output projection too).
    pub qkv_bias: bool,
    pub o_bias: bool,
    pub mlp_bias: bool,
    /// Qwen3's RMSNorm of each head's queries and keys.
    pub qk_norm: bool,
    /// The LM head is the token embeddings (no `lm_head.weight`).
    pub tie_word_embeddings: bool,
    pub bos_token_id: Option<u32>,
    /// Generation stops at any of these.
    pub eos_token_ids: Vec<u32>,
}

impl LlamaConfig {
    /// How many weights the decoder has.
    pub fn parameters(&self) -> u64 {
        let d = self.hidden_size as u64;
        let q = (self.num_heads * self.head_dim) as u64;
        let kv = (self.num_kv_heads * self.head_dim) as u64;
        let i = self.intermediate_size as u64;
        let dh = self.head_dim as u64;
        let biases = if self.qkv_bias { q + 2 * kv } else { 0 }
            + if self.o_bias { d } else { 0 }
            + if self.mlp_bias { 2 * i + d } else { 0 }
            + if self.qk_norm { 2 * dh } else { 0 };
        let layer = 2 * d + d * q + 2 * d * kv + q * d + 3 * d * i + biases;
        let head = if self.tie_word_embeddings {
            0
        } else {
            self.vocab_size as u64 * d
        };
        self.vocab_size as u64 * d + self.num_layers as u64 * layer + d + head
    }

    fn check(&self) -> Result<(), ModelError> {
        check_sizes(&[
            ("vocab_size", self.vocab_size, 1, MAX_VOCAB),
            ("hidden_size", self.hidden_size, 1, MAX_WIDTH),
            ("num_hidden_layers", self.num_layers, 1, MAX_LAYERS),
            ("num_attention_heads", self.num_heads, 1, MAX_HEADS),
            ("num_key_value_heads", self.num_kv_heads, 1, MAX_HEADS),
            ("head_dim", self.head_dim, 2, MAX_WIDTH),
            ("intermediate_size", self.intermediate_size, 1, MAX_WIDTH),
            (
                "max_position_embeddings",
                self.max_positions,
                1,
                MAX_POSITIONS,
            ),
        ])?;
        if !self.num_heads.is_multiple_of(self.num_kv_heads) {
            return Err(ModelError::Config(format!(
                "{} attention heads do not share {} key/value heads evenly",
                self.num_heads, self.num_kv_heads
            )));
        }
        if !self.head_dim.is_multiple_of(2) {
            return Err(ModelError::Config(format!(
                "head_dim {} is odd: rotary positions pair its halves",
                self.head_dim
            )));
        }
        check_eps("rms_norm_eps", self.rms_norm_eps)
    }
}

/// Scaled rotary positions, as transformers' `ROPE_INIT_FUNCTIONS` compute them
/// (`modeling_rope_utils.py`).
#[derive(Debug, Clone, PartialEq)]
pub enum RopeScaling {
    /// `default`: `inv_freq = 1 / theta^(2j / dh)`.
    None,
    /// `linear`: every frequency divided by `factor`.
    Linear { factor: f64 },
    /// `llama3` (Llama 3.1 and later): frequencies with a wavelength past
    /// `original / low_freq_factor` divided by `factor`, those under `original / high_freq_factor`
    /// kept, the band between smoothed from one to the other.
    Llama3 {
        factor: f64,
        low_freq_factor: f64,
        high_freq_factor: f64,
        original: f64,
    },
    /// `yarn`: a ramp between interpolated (`/ factor`) and kept frequencies over the dimensions
    /// between the `beta_fast` and `beta_slow` rotations of the original context; cos and sin
    /// scaled by `attention_factor`.
    Yarn {
        factor: f64,
        attention_factor: f64,
        beta_fast: f64,
        beta_slow: f64,
        original: f64,
        truncate: bool,
    },
}

/// The rotary scaling `params` (transformers 5's `rope_parameters`, or 4's `rope_scaling` with
/// `type` or `rope_type`) ask for; `max_positions` stands in for an absent
/// `original_max_position_embeddings`, as transformers does.
fn rope_scaling(params: &Value, max_positions: usize) -> Result<RopeScaling, ModelError> {
    let kind = params
        .get("rope_type")
        .or_else(|| params.get("type"))
        .and_then(Value::as_str)
        .unwrap_or("default");
    let num = |key: &str| params.get(key).and_then(Value::as_f64);
    let need = |key: &str| {
        num(key).ok_or_else(|| {
            ModelError::Config(format!("rope_type \"{kind}\" needs \"{key}\" (a number)"))
        })
    };
    let original = num("original_max_position_embeddings").unwrap_or(max_positions as f64);
    if num("partial_rotary_factor").is_some_and(|p| p != 1.0) {
        return Err(ModelError::Unsupported(
            "partial_rotary_factor below 1 is not supported".into(),
        ));
    }
    let scaling = match kind {
        "default" => RopeScaling::None,
        "linear" => RopeScaling::Linear {
            factor: need("factor")?,
        },
        "llama3" => RopeScaling::Llama3 {
            factor: need("factor")?,
            low_freq_factor: need("low_freq_factor")?,
            high_freq_factor: need("high_freq_factor")?,
            original,
        },
        "yarn" => {
            let factor = num("factor").unwrap_or(max_positions as f64 / original);
            let mscale = |scale: f64, m: f64| {
                if scale <= 1.0 {
                    1.0
                } else {
                    0.1 * m * scale.ln() + 1.0
                }
            };
            let attention_factor = match (
                num("attention_factor"),
                num("mscale"),
                num("mscale_all_dim"),
            ) {
                (Some(a), _, _) => a,
                (None, Some(m), Some(all)) if m != 0.0 && all != 0.0 => {
                    mscale(factor, m) / mscale(factor, all)
                }
                _ => mscale(factor, 1.0),
            };
            RopeScaling::Yarn {
                factor,
                attention_factor,
                beta_fast: num("beta_fast").filter(|b| *b != 0.0).unwrap_or(32.0),
                beta_slow: num("beta_slow").filter(|b| *b != 0.0).unwrap_or(1.0),
                original,
                truncate: params
                    .get("truncate")
                    .and_then(Value::as_bool)
                    .unwrap_or(true),
            }
        }
        other => {
            return Err(ModelError::Unsupported(format!(
                "rope_type \"{other}\" is not supported (default, linear, llama3 and yarn rotary \
                 positions are)"
            )))
        }
    };
    let factor_ok = match &scaling {
        RopeScaling::None => true,
        RopeScaling::Linear { factor }
        | RopeScaling::Llama3 { factor, .. }
        | RopeScaling::Yarn { factor, .. } => factor.is_finite() && *factor > 0.0,
    };
    if !factor_ok {
        return Err(ModelError::Config(format!(
            "rope_type \"{kind}\": \"factor\" must be a positive number"
        )));
    }
    Ok(scaling)
}

/// A Llama-family `config.json`: rotary settings (`rope_parameters` of transformers 5, or
/// `rope_theta` / `rope_scaling`), refusing what is not computed (scaled or sliding-window
/// attention, another activation).
fn llama_config(f: &Fields, family: Family) -> Result<LlamaConfig, ModelError> {
    let hidden = f.usize("hidden_size")?;
    let heads = f.usize("num_attention_heads")?;
    let rope = f.0.get("rope_parameters").filter(|v| !v.is_null());
    let scaling = f.0.get("rope_scaling").filter(|v| !v.is_null());
    let max_positions = f.usize_or("max_position_embeddings", 2048)?;
    // transformers 5 writes one `rope_parameters`; 4 wrote `rope_scaling` beside `rope_theta`.
    let rope_scaling = match rope.or(scaling) {
        Some(params) => self::rope_scaling(params, max_positions)?,
        None => RopeScaling::None,
    };
    let rope_theta = match rope
        .and_then(|r| r.get("rope_theta"))
        .and_then(Value::as_f64)
    {
        Some(t) => t,
        None => f.f64_or("rope_theta", 10_000.0)?,
    };
    if f.0.get("use_sliding_window").and_then(Value::as_bool) == Some(true) {
        return Err(ModelError::Unsupported(
            "sliding-window attention (use_sliding_window) is not supported".into(),
        ));
    }
    let act = f.str_or("hidden_act", "silu");
    if act != "silu" {
        return Err(ModelError::Unsupported(format!(
            "hidden_act \"{act}\" is not supported (silu is)"
        )));
    }
    let attention_bias = f.0.get("attention_bias").and_then(Value::as_bool) == Some(true);
    let eos_token_ids = match f.0.get("eos_token_id") {
        Some(Value::Array(ids)) => ids
            .iter()
            .filter_map(Value::as_u64)
            .filter_map(|id| u32::try_from(id).ok())
            .collect(),
        Some(Value::Number(n)) => n
            .as_u64()
            .and_then(|id| u32::try_from(id).ok())
            .into_iter()
            .collect(),
        _ => Vec::new(),
    };
    Ok(LlamaConfig {
        family,
        vocab_size: f.usize("vocab_size")?,
        hidden_size: hidden,
        num_layers: f.usize("num_hidden_layers")?,
        num_heads: heads,
        num_kv_heads: f.usize_or("num_key_value_heads", heads)?,
        head_dim: f.usize_or("head_dim", hidden / heads.max(1))?,
        intermediate_size: f.usize("intermediate_size")?,
        rms_norm_eps: f.f64_or("rms_norm_eps", 1e-6)?,
        rope_theta,
        rope_scaling,
        max_positions,
        qkv_bias: family == Family::Qwen2 || attention_bias,
        o_bias: family == Family::Llama && attention_bias,
        mlp_bias: f.0.get("mlp_bias").and_then(Value::as_bool) == Some(true),
        qk_norm: family == Family::Qwen3,
        tie_word_embeddings: f
            .0
            .get("tie_word_embeddings")
            .and_then(Value::as_bool)
            .unwrap_or(false),
        bos_token_id: f
            .0
            .get("bos_token_id")
            .and_then(Value::as_u64)
            .map(|id| id as u32),
        eos_token_ids,
    })
}

/// The most memory an encoder's weights may need as f32 (it trains in the engine's memory, with
/// its gradients and AdamW's moments beside): WebAssembly's 32-bit memory holds 4 GiB in all,
/// and the downloaded file and the page need their share. Checked on `config.json` before
/// anything is allocated. Decoders are held to `memory::Footprint` instead.
pub const MAX_MODEL_BYTES: u64 = 2 << 30;

/// Sizes past these are a broken or hostile `config.json`, not a model (the largest real ones are
/// far below: 256k-token vocabularies, 16k-wide layers, 128 layers).
const MAX_VOCAB: usize = 4_000_000;
const MAX_WIDTH: usize = 65_536;
const MAX_LAYERS: usize = 512;
const MAX_HEADS: usize = 1_024;
const MAX_POSITIONS: usize = 1 << 20;

/// The dropout probabilities the supported configs may carry; each must lie in [0, 1).
const DROPOUT_KEYS: [&str; 13] = [
    "embedding_dropout",
    "mlp_dropout",
    "hidden_dropout_prob",
    "attention_probs_dropout_prob",
    "classifier_dropout",
    "dropout",
    "attention_dropout",
    "seq_classif_dropout",
    "qa_dropout",
    "resid_pdrop",
    "embd_pdrop",
    "attn_pdrop",
    "summary_first_dropout",
];

/// Each `(key, value, least, most)` within its bounds, or an error naming the first that is not.
fn check_sizes(sizes: &[(&str, usize, usize, usize)]) -> Result<(), ModelError> {
    for &(key, value, least, most) in sizes {
        if value < least || value > most {
            return Err(ModelError::Config(format!(
                "\"{key}\" is {value}: it must be between {least} and {most}"
            )));
        }
    }
    Ok(())
}

impl EncoderConfig {
    /// Where the position of the first token lies in the position table: RoBERTa counts
    /// positions from `pad_token_id + 1` (padding takes `pad_token_id`), the others from 0.
    pub fn first_position(&self) -> usize {
        if self.family.is_roberta() {
            self.pad_token_id as usize + 1
        } else {
            0
        }
    }

    /// The most tokens (special tokens included) one input may have: the position table's
    /// rows from [`Self::first_position`] on (RoBERTa's 514 give 512).
    pub fn max_tokens(&self) -> usize {
        self.max_position_embeddings
            .saturating_sub(self.first_position())
    }

    /// How many weights the encoder has (embeddings and layers; a head adds at most a layer's
    /// worth).
    pub fn parameters(&self) -> u64 {
        let d = self.hidden_size as u64;
        let i = self.intermediate_size as u64;
        if self.modern.is_some() {
            // Weights only (the biases, when there are any, are a rounding error): the token
            // table and its norm, per layer two norms, Wqkv, Wo, Wi (gate and input) and Wo,
            // then the final norm and the head's dense layer and norm.
            let layer = 2 * d + 4 * d * d + 3 * d * i;
            return self.vocab_size as u64 * d + d + self.num_layers as u64 * layer + d * d + 2 * d;
        }
        let tables = (self.vocab_size + self.max_position_embeddings + self.type_vocab_size) as u64;
        let layer = 4 * (d * d + d) + 2 * d + (d * i + i) + (i * d + d) + 2 * d;
        tables * d + 2 * d + self.num_layers as u64 * layer + d * d + d
    }

    fn check(&self) -> Result<(), ModelError> {
        let names = match self.family {
            Family::DistilBert => ["vocab_size", "dim", "n_layers", "n_heads", "hidden_dim"],
            _ => [
                "vocab_size",
                "hidden_size",
                "num_hidden_layers",
                "num_attention_heads",
                "intermediate_size",
            ],
        };
        check_sizes(&[
            (names[0], self.vocab_size, 1, MAX_VOCAB),
            (names[1], self.hidden_size, 1, MAX_WIDTH),
            (names[2], self.num_layers, 1, MAX_LAYERS),
            (names[3], self.num_heads, 1, MAX_HEADS),
            (names[4], self.intermediate_size, 1, MAX_WIDTH),
            (
                "max_position_embeddings",
                self.max_position_embeddings,
                1,
                MAX_POSITIONS,
            ),
            ("type_vocab_size", self.type_vocab_size, 0, MAX_VOCAB),
        ])?;
        if self.max_tokens() == 0 {
            return Err(ModelError::Config(format!(
                "\"max_position_embeddings\" is {} but RoBERTa's positions start at \
                 pad_token_id + 1 = {}: no input would fit",
                self.max_position_embeddings,
                self.first_position()
            )));
        }
        check_eps("layer_norm_eps", self.layer_norm_eps)
    }
}

impl Gpt2Config {
    /// How many weights GPT-2 has (the LM head is the token embeddings).
    pub fn parameters(&self) -> u64 {
        let d = self.n_embd as u64;
        let i = self.n_inner as u64;
        let layer = 2 * d + (3 * d * d + 3 * d) + (d * d + d) + 2 * d + (d * i + i) + (i * d + d);
        (self.vocab_size + self.n_positions) as u64 * d + self.n_layer as u64 * layer + 2 * d
    }

    fn check(&self) -> Result<(), ModelError> {
        check_sizes(&[
            ("vocab_size", self.vocab_size, 1, MAX_VOCAB),
            ("n_embd", self.n_embd, 1, MAX_WIDTH),
            ("n_layer", self.n_layer, 1, MAX_LAYERS),
            ("n_head", self.n_head, 1, MAX_HEADS),
            ("n_inner", self.n_inner, 1, MAX_WIDTH),
            ("n_positions", self.n_positions, 1, MAX_POSITIONS),
        ])?;
        check_eps("layer_norm_epsilon", self.layer_norm_epsilon)
    }
}

fn check_eps(key: &str, eps: f64) -> Result<(), ModelError> {
    if eps.is_finite() && eps > 0.0 && eps < 1.0 {
        Ok(())
    } else {
        Err(ModelError::Config(format!(
            "\"{key}\" is {eps}: it must be a small positive number"
        )))
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Activation {
    /// Exact GELU with erf (`gelu`).
    Gelu,
    /// The tanh approximation (`gelu_new`, `gelu_pytorch_tanh`).
    GeluTanh,
    Relu,
}

impl Activation {
    fn parse(name: &str) -> Result<Self, ModelError> {
        match name {
            "gelu" => Ok(Self::Gelu),
            "gelu_new" | "gelu_pytorch_tanh" | "gelu_fast" => Ok(Self::GeluTanh),
            "relu" => Ok(Self::Relu),
            other => Err(ModelError::Config(format!(
                "activation \"{other}\" is not supported (gelu, gelu_new, relu are)"
            ))),
        }
    }
}

/// A parsed `config.json`: the architecture plus everything the file holds, kept so that a
/// fine-tuned model can be saved with the original fields intact.
#[derive(Debug, Clone)]
pub struct ModelConfig {
    pub arch: Arch,
    pub task: Task,
    /// Label names by class index, from `id2label` (empty when the file has none).
    pub id2label: Vec<String>,
    /// The whole file as read.
    pub raw: serde_json::Map<String, Value>,
}

#[derive(Debug, Clone, PartialEq)]
pub enum Arch {
    Encoder(EncoderConfig),
    Gpt2(Gpt2Config),
    Llama(LlamaConfig),
}

impl ModelConfig {
    /// Parses `config.json` text.
    pub fn from_json(text: &str) -> Result<Self, ModelError> {
        let value: Value = serde_json::from_str(text)
            .map_err(|e| ModelError::Config(format!("config.json is not valid JSON: {e}")))?;
        let Value::Object(raw) = value else {
            return Err(ModelError::Config(
                "config.json is not a JSON object".into(),
            ));
        };
        let model_type = raw
            .get("model_type")
            .and_then(Value::as_str)
            .ok_or_else(|| ModelError::Config("config.json has no \"model_type\"".into()))?;
        let family = match model_type {
            "bert" => Family::Bert,
            "distilbert" => Family::DistilBert,
            "roberta" => Family::Roberta,
            "xlm-roberta" => Family::XlmRoberta,
            "modernbert" => Family::ModernBert,
            "llama" => Family::Llama,
            "qwen2" => Family::Qwen2,
            "qwen3" => Family::Qwen3,
            "gpt2" => Family::Gpt2,
            other => {
                return Err(ModelError::Unsupported(format!(
                    "model_type \"{other}\" is not supported: Tunelab runs bert, distilbert, \
                     roberta, xlm-roberta, modernbert, gpt2, llama, qwen2 and qwen3 checkpoints"
                )))
            }
        };
        let architecture = raw
            .get("architectures")
            .and_then(Value::as_array)
            .and_then(|a| a.first())
            .and_then(Value::as_str)
            .map(str::to_string);
        let task = task_of(family, architecture.as_deref())?;
        let f = Fields(&raw);
        let arch = match family {
            Family::Bert | Family::Roberta | Family::XlmRoberta => Arch::Encoder(EncoderConfig {
                family,
                vocab_size: f.usize("vocab_size")?,
                hidden_size: f.usize("hidden_size")?,
                num_layers: f.usize("num_hidden_layers")?,
                num_heads: f.usize("num_attention_heads")?,
                intermediate_size: f.usize("intermediate_size")?,
                max_position_embeddings: f.usize_or("max_position_embeddings", 512)?,
                type_vocab_size: f.usize_or("type_vocab_size", 2)?,
                layer_norm_eps: f.f64_or("layer_norm_eps", 1e-12)?,
                activation: Activation::parse(f.str_or("hidden_act", "gelu"))?,
                pad_token_id: f
                    .token_id_or("pad_token_id", if family.is_roberta() { 1 } else { 0 })?,
                modern: None,
            }),
            Family::ModernBert => {
                let layers = f.usize("num_hidden_layers")?;
                Arch::Encoder(EncoderConfig {
                    family,
                    vocab_size: f.usize_or("vocab_size", 50368)?,
                    hidden_size: f.usize_or("hidden_size", 768)?,
                    num_layers: layers,
                    num_heads: f.usize_or("num_attention_heads", 12)?,
                    intermediate_size: f.usize_or("intermediate_size", 1152)?,
                    max_position_embeddings: f.usize_or("max_position_embeddings", 8192)?,
                    type_vocab_size: 0,
                    layer_norm_eps: f.f64_or("norm_eps", 1e-5)?,
                    activation: Activation::parse(f.str_or("hidden_activation", "gelu"))?,
                    pad_token_id: f.token_id_or("pad_token_id", 50283)?,
                    modern: Some(modern_bert(&f, layers)?),
                })
            }
            // With `sinusoidal_pos_embds` the table is still saved as position_embeddings, so
            // loading it as a learned table gives the same numbers.
            Family::DistilBert => Arch::Encoder(EncoderConfig {
                modern: None,
                family,
                vocab_size: f.usize("vocab_size")?,
                hidden_size: f.usize("dim")?,
                num_layers: f.usize("n_layers")?,
                num_heads: f.usize("n_heads")?,
                intermediate_size: f.usize("hidden_dim")?,
                max_position_embeddings: f.usize_or("max_position_embeddings", 512)?,
                type_vocab_size: 0,
                layer_norm_eps: 1e-12,
                activation: Activation::parse(f.str_or("activation", "gelu"))?,
                pad_token_id: f.token_id_or("pad_token_id", 0)?,
            }),
            Family::Gpt2 => {
                let n_embd = f.usize("n_embd")?;
                Arch::Gpt2(Gpt2Config {
                    vocab_size: f.usize("vocab_size")?,
                    n_positions: f.usize_or("n_positions", 1024)?,
                    n_embd,
                    n_layer: f.usize("n_layer")?,
                    n_head: f.usize("n_head")?,
                    n_inner: f.usize_or("n_inner", n_embd.saturating_mul(4))?,
                    layer_norm_epsilon: f.f64_or("layer_norm_epsilon", 1e-5)?,
                    activation: Activation::parse(f.str_or("activation_function", "gelu_new"))?,
                    bos_token_id: f.token_id_or("bos_token_id", 50256)?,
                    eos_token_id: f.token_id_or("eos_token_id", 50256)?,
                })
            }
            Family::Llama | Family::Qwen2 | Family::Qwen3 => Arch::Llama(llama_config(&f, family)?),
        };
        match &arch {
            Arch::Encoder(e) => e.check()?,
            Arch::Gpt2(g) => g.check()?,
            Arch::Llama(l) => l.check()?,
        }
        for key in DROPOUT_KEYS {
            if let Some(p) = raw.get(key).and_then(Value::as_f64) {
                if !(0.0..1.0).contains(&p) {
                    return Err(ModelError::Config(format!(
                        "\"{key}\" is {p}: a dropout probability must be at least 0 and below 1"
                    )));
                }
            }
        }
        // A decoder is held to what it needs where it would run (`memory::Footprint`, by the
        // engine once it knows the backend; here only what fits nowhere, not even on WebGPU).
        if let Arch::Encoder(e) = &arch {
            let bytes = 4 * e.parameters();
            if bytes > MAX_MODEL_BYTES {
                return Err(ModelError::Unsupported(format!(
                    "this model needs ~{} for its weights; this browser holds at most {}",
                    human_bytes(bytes as f64),
                    human_bytes(MAX_MODEL_BYTES as f64)
                )));
            }
            if e.num_heads == 0 || e.hidden_size % e.num_heads != 0 {
                return Err(ModelError::Config(format!(
                    "hidden size {} is not divisible by {} attention heads",
                    e.hidden_size, e.num_heads
                )));
            }
        }
        if let Arch::Gpt2(g) = &arch {
            if g.n_head == 0 || g.n_embd % g.n_head != 0 {
                return Err(ModelError::Config(format!(
                    "n_embd {} is not divisible by {} heads",
                    g.n_embd, g.n_head
                )));
            }
        }
        let id2label = parse_id2label(&raw)?;
        let config = Self {
            arch,
            task,
            id2label,
            raw,
        };
        if let Some(f) = super::memory::Footprint::for_decoder(&config, None, true) {
            f.check(0).map_err(ModelError::Unsupported)?;
        }
        Ok(config)
    }

    pub fn family(&self) -> Family {
        match &self.arch {
            Arch::Encoder(e) => e.family,
            Arch::Gpt2(_) => Family::Gpt2,
            Arch::Llama(l) => l.family,
        }
    }

    pub fn llama(&self) -> Option<&LlamaConfig> {
        match &self.arch {
            Arch::Llama(l) => Some(l),
            _ => None,
        }
    }

    pub fn encoder(&self) -> Option<&EncoderConfig> {
        match &self.arch {
            Arch::Encoder(e) => Some(e),
            Arch::Gpt2(_) | Arch::Llama(_) => None,
        }
    }

    pub fn gpt2(&self) -> Option<&Gpt2Config> {
        match &self.arch {
            Arch::Gpt2(g) => Some(g),
            Arch::Encoder(_) | Arch::Llama(_) => None,
        }
    }

    /// The label name for class `i`: `id2label` when present, else `LABEL_i` as transformers does.
    pub fn label(&self, i: usize) -> String {
        self.id2label
            .get(i)
            .cloned()
            .unwrap_or_else(|| format!("LABEL_{i}"))
    }

    /// `config.json` for a sequence classifier with these labels, keeping every other field.
    pub fn for_classification(&self, labels: &[String]) -> serde_json::Map<String, Value> {
        let mut raw = self.raw.clone();
        let arch = self.family().classifier_architecture();
        raw.insert("architectures".into(), Value::from(vec![arch]));
        raw.extend(label_maps(labels));
        let problem = if labels.len() == 1 {
            "regression"
        } else {
            "single_label_classification"
        };
        raw.insert("problem_type".into(), Value::from(problem));
        raw
    }
}

/// `id2label` (`{"0": name}`) and `label2id` (`{name: 0}`) as config.json writes them.
pub fn label_maps(labels: &[String]) -> serde_json::Map<String, Value> {
    let id2label: serde_json::Map<String, Value> = labels
        .iter()
        .enumerate()
        .map(|(i, l)| (i.to_string(), Value::from(l.as_str())))
        .collect();
    let label2id: serde_json::Map<String, Value> = labels
        .iter()
        .enumerate()
        .map(|(i, l)| (l.clone(), Value::from(i)))
        .collect();
    serde_json::Map::from_iter([
        ("id2label".to_string(), Value::Object(id2label)),
        ("label2id".to_string(), Value::Object(label2id)),
    ])
}

/// Every `architectures` name Tunelab loads, for error messages.
pub const SUPPORTED_ARCHITECTURES: &str = "BertModel, BertForSequenceClassification, \
    BertForMaskedLM, BertForTokenClassification, DistilBertModel, \
    DistilBertForSequenceClassification, DistilBertForMaskedLM, DistilBertForTokenClassification, \
    RobertaModel, RobertaForSequenceClassification, RobertaForMaskedLM, \
    RobertaForTokenClassification, XLMRobertaModel, XLMRobertaForSequenceClassification, \
    XLMRobertaForMaskedLM, XLMRobertaForTokenClassification, ModernBertModel, \
    ModernBertForSequenceClassification, ModernBertForMaskedLM, GPT2LMHeadModel, \
    LlamaForCausalLM, Qwen2ForCausalLM and Qwen3ForCausalLM";

fn task_of(family: Family, architecture: Option<&str>) -> Result<Task, ModelError> {
    let Some(name) = architecture else {
        return Ok(match family {
            Family::Gpt2 | Family::Llama | Family::Qwen2 | Family::Qwen3 => Task::CausalLm,
            _ => Task::Base,
        });
    };
    let task = match (family, name) {
        (Family::Bert, "BertModel")
        | (Family::DistilBert, "DistilBertModel")
        | (Family::Roberta, "RobertaModel")
        | (Family::XlmRoberta, "XLMRobertaModel")
        | (Family::ModernBert, "ModernBertModel") => Task::Base,
        (Family::Bert, "BertForSequenceClassification")
        | (Family::DistilBert, "DistilBertForSequenceClassification")
        | (Family::Roberta, "RobertaForSequenceClassification")
        | (Family::XlmRoberta, "XLMRobertaForSequenceClassification")
        | (Family::ModernBert, "ModernBertForSequenceClassification") => {
            Task::SequenceClassification
        }
        (Family::Bert, "BertForMaskedLM")
        | (Family::Bert, "BertForPreTraining")
        | (Family::DistilBert, "DistilBertForMaskedLM")
        | (Family::Roberta, "RobertaForMaskedLM")
        | (Family::XlmRoberta, "XLMRobertaForMaskedLM")
        | (Family::ModernBert, "ModernBertForMaskedLM") => Task::MaskedLm,
        (Family::Bert, "BertForTokenClassification")
        | (Family::DistilBert, "DistilBertForTokenClassification")
        | (Family::Roberta, "RobertaForTokenClassification")
        | (Family::XlmRoberta, "XLMRobertaForTokenClassification") => Task::TokenClassification,
        (Family::Gpt2, "GPT2LMHeadModel")
        | (Family::Gpt2, "GPT2Model")
        | (Family::Llama, "LlamaForCausalLM")
        | (Family::Qwen2, "Qwen2ForCausalLM")
        | (Family::Qwen3, "Qwen3ForCausalLM") => Task::CausalLm,
        (_, other) => {
            return Err(ModelError::Unsupported(format!(
                "architecture \"{other}\" is not supported ({SUPPORTED_ARCHITECTURES} are)"
            )))
        }
    };
    Ok(task)
}

fn parse_id2label(raw: &serde_json::Map<String, Value>) -> Result<Vec<String>, ModelError> {
    let Some(Value::Object(map)) = raw.get("id2label") else {
        return Ok(Vec::new());
    };
    let mut by_index = BTreeMap::new();
    for (k, v) in map {
        let i: usize = k
            .parse()
            .map_err(|_| ModelError::Config(format!("id2label key \"{k}\" is not an integer")))?;
        let name = v
            .as_str()
            .ok_or_else(|| ModelError::Config(format!("id2label[{k}] is not a string")))?;
        by_index.insert(i, name.to_string());
    }
    let n = by_index.len();
    if by_index.keys().copied().ne(0..n) {
        return Err(ModelError::Config(
            "id2label keys must be 0, 1, ... n-1 without gaps".into(),
        ));
    }
    Ok(by_index.into_values().collect())
}

/// ModernBERT's settings, in transformers 5's form (`layer_types`, `rope_parameters`) or the
/// Hub's older one (`global_attn_every_n_layers`, `global_rope_theta`, `local_rope_theta`).
fn modern_bert(f: &Fields, layers: usize) -> Result<ModernBertConfig, ModelError> {
    let sliding = match f.0.get("layer_types").and_then(Value::as_array) {
        Some(types) => {
            let sliding: Vec<bool> = types
                .iter()
                .map(|t| match t.as_str() {
                    Some("sliding_attention") => Ok(true),
                    Some("full_attention") => Ok(false),
                    _ => Err(ModelError::Config(format!(
                        "layer_types holds {t}: ModernBERT's layers are full_attention or \
                         sliding_attention"
                    ))),
                })
                .collect::<Result<_, _>>()?;
            if sliding.len() != layers {
                return Err(ModelError::Config(format!(
                    "layer_types names {} layers, num_hidden_layers is {layers}",
                    sliding.len()
                )));
            }
            sliding
        }
        None => {
            let every = f.usize_or("global_attn_every_n_layers", 3)?.max(1);
            (0..layers).map(|i| i % every != 0).collect()
        }
    };
    let rope = f.0.get("rope_parameters");
    let theta = |kind: &str, old: &str, default: f64| -> Result<f64, ModelError> {
        if let Some(params) = rope.and_then(|r| r.get(kind)) {
            if let Some(kind_of) = params.get("rope_type").and_then(Value::as_str) {
                if kind_of != "default" {
                    return Err(ModelError::Unsupported(format!(
                        "rope_type \"{kind_of}\" is not supported (default rotary positions are)"
                    )));
                }
            }
            if let Some(t) = params.get("rope_theta").and_then(Value::as_f64) {
                return Ok(t);
            }
        }
        f.f64_or(old, default)
    };
    let flag = |key: &str, default: bool| f.0.get(key).and_then(Value::as_bool).unwrap_or(default);
    let pooling = match f.str_or("classifier_pooling", "cls") {
        "cls" => Pooling::Cls,
        "mean" => Pooling::Mean,
        other => {
            return Err(ModelError::Config(format!(
                "classifier_pooling \"{other}\" is not supported (cls and mean are)"
            )))
        }
    };
    if f.0.get("rope_scaling").is_some_and(|v| !v.is_null()) {
        return Err(ModelError::Unsupported(
            "rope_scaling is not supported for ModernBERT".into(),
        ));
    }
    Ok(ModernBertConfig {
        sliding,
        half_window: f.usize_or("local_attention", 128)? / 2,
        global_theta: theta("full_attention", "global_rope_theta", 160_000.0)?,
        local_theta: theta("sliding_attention", "local_rope_theta", 10_000.0)?,
        norm_bias: flag("norm_bias", false),
        attention_bias: flag("attention_bias", false),
        mlp_bias: flag("mlp_bias", false),
        classifier_bias: flag("classifier_bias", false),
        classifier_activation: Activation::parse(f.str_or("classifier_activation", "gelu"))?,
        classifier_pooling: pooling,
        decoder_bias: flag("decoder_bias", true),
    })
}

struct Fields<'a>(&'a serde_json::Map<String, Value>);

impl Fields<'_> {
    fn usize(&self, key: &str) -> Result<usize, ModelError> {
        match self.0.get(key) {
            // `usize::try_from`: on wasm32 a value past 2^32 must be refused, not wrapped.
            Some(v) => v
                .as_u64()
                .and_then(|x| usize::try_from(x).ok())
                .ok_or_else(|| {
                    ModelError::Config(format!(
                        "\"{key}\" must be a non-negative integer that fits this machine, got {v}"
                    ))
                }),
            None => Err(ModelError::Config(format!("config.json has no \"{key}\""))),
        }
    }
    fn usize_or(&self, key: &str, default: usize) -> Result<usize, ModelError> {
        match self.0.get(key) {
            None | Some(Value::Null) => Ok(default),
            Some(_) => self.usize(key),
        }
    }
    /// A token id (`pad_token_id`, ...): below 2^32, as the tokenizer's ids are.
    fn token_id_or(&self, key: &str, default: u32) -> Result<u32, ModelError> {
        let id = self.usize_or(key, default as usize)?;
        u32::try_from(id).map_err(|_| {
            ModelError::Config(format!("\"{key}\" is {id}: a token id must be below 2^32"))
        })
    }
    fn f64_or(&self, key: &str, default: f64) -> Result<f64, ModelError> {
        match self.0.get(key) {
            None | Some(Value::Null) => Ok(default),
            Some(v) => v
                .as_f64()
                .ok_or_else(|| ModelError::Config(format!("\"{key}\" must be a number, got {v}"))),
        }
    }
    fn str_or<'b>(&'b self, key: &str, default: &'b str) -> &'b str {
        self.0.get(key).and_then(Value::as_str).unwrap_or(default)
    }
}

/// How a sequence of hidden states becomes one vector.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub enum Pooling {
    /// The first token (`[CLS]`), through BERT's pooler when the model has one.
    Cls,
    /// The mean over real tokens (sentence-transformers).
    Mean,
}
