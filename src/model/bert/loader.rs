//! Hugging Face names: loading the encoder and its heads from a checkpoint, exporting them back
//! under the same names, and initialising a new head as transformers does.
//!
//! BERT, DistilBERT and RoBERTa compute the same thing under different names; `layout.rs` lists every
//! difference side by side (`BERT`, `DISTILBERT`), and both loading and export here read names
//! from it (composed along the module tree: `w.pp(l.layers).pp(i).pp(l.query)`).

use burn::module::Param;
use burn::nn::{DropoutConfig, Linear};
use burn::prelude::*;

use super::layout::layout;
use super::{
    Block, ClassifierHead, DropoutRates, Encoder, EncoderLayer, MaskedLm, Pooler, Pooling,
    SequenceClassifier, TokenClassifier,
};
use crate::model::config::{EncoderConfig, Family, ModernBertConfig};
use crate::model::layers::{Exporter, LayerNorm};
use crate::model::weights::{Precision, WeightFiles, WeightPath, Weights};
use crate::model::{ModelConfig, ModelError};

impl DropoutRates {
    /// The rates the checkpoint's config.json trains with (transformers' defaults otherwise).
    pub fn from_config(raw: &serde_json::Map<String, serde_json::Value>, family: Family) -> Self {
        let l = layout(family);
        let get = |k: &str| raw.get(k).and_then(|v| v.as_f64());
        let hidden = get(l.hidden_dropout.0).unwrap_or(l.hidden_dropout.1);
        let modern = family == Family::ModernBert;
        Self {
            hidden,
            attention: get(l.attention_dropout.0).unwrap_or(l.attention_dropout.1),
            classifier: get(l.classifier_dropout.0)
                .unwrap_or(l.classifier_dropout.1.unwrap_or(hidden)),
            embedding: if modern {
                get("embedding_dropout").unwrap_or(0.0)
            } else {
                hidden
            },
            mlp: if modern {
                get("mlp_dropout").unwrap_or(0.0)
            } else {
                0.0
            },
        }
    }
}

/// A `[d_in, d_out]` linear layer initialised as transformers does (normal weights with std
/// `init_std`, zero bias), from a seeded generator.
pub fn init_linear(
    rng: &mut crate::rng::Rng,
    d_in: usize,
    d_out: usize,
    init_std: f64,
    device: &Device,
) -> Linear {
    let values: Vec<f32> = (0..d_in * d_out)
        .map(|_| (rng.normal() * init_std) as f32)
        .collect();
    // normal_() on the [out, in] matrix, stored here as [in, out].
    let weight = Tensor::<2>::from_data(TensorData::new(values, [d_out, d_in]), device).transpose();
    // Built directly: burn's `LinearConfig::init` would first draw weights from the backend's
    // random generator, moving the dropout masks of whatever runs next on the device.
    Linear {
        weight: Param::from_tensor(weight),
        bias: Some(Param::from_tensor(Tensor::zeros([d_out], device))),
    }
}

/// A ModernBERT LayerNorm: with its bias only when `norm_bias` is set.
fn modern_norm(at: &WeightPath, d: usize, eps: f64, bias: bool) -> LayerNorm {
    if bias {
        at.layer_norm(d, eps)
    } else {
        at.layer_norm_without_bias(d, eps)
    }
}

/// A new LayerNorm as torch initialises it (weight 1, bias 0; the bias fixed when it has none).
fn fresh_norm(d: usize, eps: f64, bias: bool, device: &Device) -> LayerNorm {
    let beta = Param::from_tensor(Tensor::zeros([d], device));
    LayerNorm {
        gamma: Param::from_tensor(Tensor::ones([d], device)),
        beta: if bias {
            beta
        } else {
            beta.set_require_grad(false)
        },
        epsilon: eps,
        with_bias: bias,
    }
}

/// Where a classifier's head comes from.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum HeadInit {
    /// The checkpoint's `classifier` (and DistilBERT's `pre_classifier`); missing ones are
    /// reported by [`Weights::finish`].
    Checkpoint,
    /// A new head initialised as transformers does, from this seed (a missing BERT pooler too).
    Fresh(u64),
}

impl Encoder {
    /// The architecture prefix of the family's checkpoints.
    pub fn prefix(family: Family) -> &'static str {
        layout(family).prefix
    }

    /// Loads the layers, then the embeddings: the matrices in f16 where
    /// [`Weights::keep_half`] holds (an inference pipeline in half precision on a GPU), which
    /// ends with the encoder, so that a head loaded after it is f32 (burn's `Linear` runs it).
    pub fn load(w: &Weights, config: &EncoderConfig, dropout: DropoutRates) -> Self {
        let encoder = Self::load_encoder(w, config, dropout);
        w.keep_half(Precision::F32);
        encoder
    }

    fn load_encoder(w: &Weights, config: &EncoderConfig, dropout: DropoutRates) -> Self {
        if let Some(modern) = &config.modern {
            return Self::load_modern(w, config, modern, dropout);
        }
        let l = layout(config.family);
        let d = config.hidden_size;
        let eps = config.layer_norm_eps;
        let layers = (0..config.num_layers)
            .map(|i| {
                let at = w.pp(l.layers).pp(i);
                EncoderLayer {
                    qkv: at.fused_linear(&l.qkv(), d, d),
                    attn_out: at.pp(l.attn_out).linear(d, d),
                    attn_norm: Some(at.pp(l.attn_norm).layer_norm(d, eps)),
                    ffn_in: at.pp(l.ffn_in).linear(d, config.intermediate_size),
                    ffn_out: at.pp(l.ffn_out).linear(config.intermediate_size, d),
                    ffn_norm: at.pp(l.ffn_norm).layer_norm(d, eps),
                    attn_dropout: DropoutConfig::new(dropout.attention).init(),
                    dropout: DropoutConfig::new(dropout.hidden).init(),
                    ffn_dropout: DropoutConfig::new(0.0).init(),
                    num_heads: config.num_heads,
                    activation: config.activation,
                    block: Block::PostNorm,
                    lora: None,
                }
            })
            .collect();
        let emb = w.pp("embeddings");
        let token_type_embeddings = l
            .token_types
            .filter(|_| config.type_vocab_size > 0)
            .map(|name| emb.pp(name).embedding(config.type_vocab_size, d));
        let word_embeddings = emb.pp("word_embeddings").embedding(config.vocab_size, d);
        let position_embeddings = emb
            .pp("position_embeddings")
            .embedding(config.max_position_embeddings, d);
        Self {
            word_embeddings,
            position_embeddings: Some(position_embeddings),
            token_type_embeddings,
            embeddings_norm: emb.pp("LayerNorm").layer_norm(d, eps),
            embeddings_dropout: DropoutConfig::new(dropout.embedding).init(),
            layers,
            final_norm: None,
            config: config.clone(),
        }
    }

    /// ModernBERT's encoder: `embeddings.tok_embeddings` and `embeddings.norm`, then per layer
    /// `attn_norm` (not in the first), `attn.Wqkv`, `attn.Wo`, `mlp_norm`, `mlp.Wi` (input and
    /// gate), `mlp.Wo`, then `final_norm`; biases only where the config asks for them.
    fn load_modern(
        w: &Weights,
        config: &EncoderConfig,
        modern: &ModernBertConfig,
        dropout: DropoutRates,
    ) -> Self {
        let d = config.hidden_size;
        let inner = config.intermediate_size;
        let norm = |at: WeightPath| modern_norm(&at, d, config.layer_norm_eps, modern.norm_bias);
        let layers = (0..config.num_layers)
            .map(|i| {
                let at = w.pp("layers").pp(i);
                EncoderLayer {
                    qkv: at
                        .pp("attn.Wqkv")
                        .linear_with(d, 3 * d, modern.attention_bias),
                    attn_out: at.pp("attn.Wo").linear_with(d, d, modern.attention_bias),
                    attn_norm: (i > 0).then(|| norm(at.pp("attn_norm"))),
                    ffn_in: at.pp("mlp.Wi").linear_with(d, 2 * inner, modern.mlp_bias),
                    ffn_out: at.pp("mlp.Wo").linear_with(inner, d, modern.mlp_bias),
                    ffn_norm: norm(at.pp("mlp_norm")),
                    attn_dropout: DropoutConfig::new(dropout.attention).init(),
                    dropout: DropoutConfig::new(dropout.attention).init(),
                    ffn_dropout: DropoutConfig::new(dropout.mlp).init(),
                    num_heads: config.num_heads,
                    activation: config.activation,
                    block: Block::PreNormGated {
                        sliding: modern.sliding[i],
                    },
                    lora: None,
                }
            })
            .collect();
        let emb = w.pp("embeddings");
        Self {
            word_embeddings: emb.pp("tok_embeddings").embedding(config.vocab_size, d),
            position_embeddings: None,
            token_type_embeddings: None,
            embeddings_norm: norm(emb.pp("norm")),
            embeddings_dropout: DropoutConfig::new(dropout.embedding).init(),
            layers,
            final_norm: Some(norm(w.pp("final_norm"))),
            config: config.clone(),
        }
    }

    /// ModernBERT's tensors with transformers' names, under `model.`.
    fn export_modern(&self, out: &mut Exporter) {
        let mut base = out.pp("model");
        let mut emb = base.pp("embeddings");
        emb.pp("tok_embeddings").embedding(&self.word_embeddings);
        emb.pp("norm").layer_norm(&self.embeddings_norm);
        let mut layers = base.pp("layers");
        for (i, layer) in self.layers.iter().enumerate() {
            let mut at = layers.pp(i);
            at.pp("attn.Wqkv").linear(&layer.qkv);
            at.pp("attn.Wo").linear(&layer.attn_out);
            if let Some(norm) = &layer.attn_norm {
                at.pp("attn_norm").layer_norm(norm);
            }
            at.pp("mlp_norm").layer_norm(&layer.ffn_norm);
            at.pp("mlp.Wi").linear(&layer.ffn_in);
            at.pp("mlp.Wo").linear(&layer.ffn_out);
        }
        if let Some(norm) = &self.final_norm {
            base.pp("final_norm").layer_norm(norm);
        }
    }

    /// Writes the encoder's tensors with their HF names, under the family's prefix.
    pub fn export(&self, out: &mut Exporter) {
        if self.config.modern.is_some() {
            return self.export_modern(out);
        }
        let l = layout(self.config.family);
        let mut base = out.pp(l.prefix);
        let mut emb = base.pp("embeddings");
        emb.pp("word_embeddings").embedding(&self.word_embeddings);
        if let Some(table) = &self.position_embeddings {
            emb.pp("position_embeddings").embedding(table);
        }
        if let (Some(t), Some(name)) = (&self.token_type_embeddings, l.token_types) {
            emb.pp(name).embedding(t);
        }
        emb.pp("LayerNorm").layer_norm(&self.embeddings_norm);
        let mut layers = base.pp(l.layers);
        for (i, layer) in self.layers.iter().enumerate() {
            let mut at = layers.pp(i);
            at.fused_linear(&l.qkv(), &layer.qkv);
            at.pp(l.attn_out).linear(&layer.attn_out);
            if let Some(norm) = &layer.attn_norm {
                at.pp(l.attn_norm).layer_norm(norm);
            }
            at.pp(l.ffn_in).linear(&layer.ffn_in);
            at.pp(l.ffn_out).linear(&layer.ffn_out);
            at.pp(l.ffn_norm).layer_norm(&layer.ffn_norm);
        }
    }
}

impl SequenceClassifier {
    /// The encoder, then the head: BERT's pooler, DistilBERT's `pre_classifier`, the
    /// `classifier`. A fresh head draws from `Rng::new(seed)` in that order (the pooler only
    /// when the checkpoint lacks it).
    pub fn load(
        w: &Weights,
        config: &EncoderConfig,
        raw: &serde_json::Map<String, serde_json::Value>,
        num_labels: usize,
        pooling: Pooling,
        dropout: DropoutRates,
        head: HeadInit,
    ) -> Self {
        let l = layout(config.family);
        let d = config.hidden_size;
        let encoder = Encoder::load(w, config, dropout);
        let (has_head, seed) = match head {
            HeadInit::Checkpoint => (true, 0),
            HeadInit::Fresh(seed) => (false, seed),
        };
        let init_std = raw
            .get("initializer_range")
            .and_then(|v| v.as_f64())
            .unwrap_or(0.02);
        let mut rng = crate::rng::Rng::new(seed);
        let device = w.device().clone();
        let pooler = match (l.pooler, pooling) {
            (Some(name), Pooling::Cls) => {
                let at = w.pp(name);
                let fresh = !at.contains("weight");
                Some(Pooler {
                    dense: if at.contains("weight") {
                        at.linear(d, d)
                    } else {
                        init_linear(&mut rng, d, d, init_std, &device)
                    },
                    lora: None,
                    fresh,
                })
            }
            _ => None,
        };
        if has_head {
            let head =
                ClassifierHead::from_weights(w, config, pooling, num_labels, dropout.classifier);
            return Self {
                encoder,
                pooler,
                head,
                pooling,
            };
        }
        // ModernBERT's head (dense, activation, norm) serves either pooling, and comes from
        // the checkpoint whenever it is there: its masked-LM checkpoints carry the same
        // `head.*`, which transformers reuses under a new classifier.
        let (pre_classifier, norm, activation) = match &config.modern {
            Some(m) => {
                let at = w.pp("head.dense");
                let dense = if at.contains("weight") {
                    at.linear_with(d, d, m.classifier_bias)
                } else {
                    let mut dense = init_linear(&mut rng, d, d, init_std, &device);
                    if !m.classifier_bias {
                        dense.bias = None;
                    }
                    dense
                };
                let at = w.pp("head.norm");
                let norm = if at.contains("weight") {
                    modern_norm(&at, d, config.layer_norm_eps, m.norm_bias)
                } else {
                    fresh_norm(d, config.layer_norm_eps, m.norm_bias, &device)
                };
                (Some(dense), Some(norm), m.classifier_activation)
            }
            None => {
                let pre = match (l.pre_classifier, pooling) {
                    (Some(_), Pooling::Cls) => Some(init_linear(&mut rng, d, d, init_std, &device)),
                    _ => None,
                };
                (pre, None, config.activation)
            }
        };
        let classifier = init_linear(&mut rng, d, num_labels, init_std, &device);
        Self {
            encoder,
            pooler,
            head: ClassifierHead {
                pre_classifier,
                norm,
                dropout: DropoutConfig::new(dropout.classifier).init(),
                classifier,
                style: l.head_style,
                activation,
            },
            pooling,
        }
    }

    /// The tensors of a transformers checkpoint of this classifier.
    pub fn export(&self, out: &mut Exporter) {
        let l = layout(self.encoder.config.family);
        self.encoder.export(out);
        if let (Some(p), Some(name)) = (&self.pooler, l.pooler) {
            out.pp(l.prefix).pp(name).linear(&p.dense);
        }
        self.head
            .export(self.encoder.config.family, &mut out.pp(""));
    }
}

impl ClassifierHead {
    /// A checkpoint's head (BERT's `classifier`, DistilBERT's `pre_classifier` and
    /// `classifier`, RoBERTa's `classifier.dense` and `classifier.out_proj`, ModernBERT's
    /// `head.dense`, `head.norm` and `classifier`) with `num_labels` outputs.
    pub fn from_weights(
        w: &Weights,
        config: &EncoderConfig,
        pooling: Pooling,
        num_labels: usize,
        dropout: f64,
    ) -> Self {
        let l = layout(config.family);
        let d = config.hidden_size;
        let (pre_classifier, norm, activation) = match &config.modern {
            Some(m) => (
                Some(w.pp("head.dense").linear_with(d, d, m.classifier_bias)),
                Some(modern_norm(
                    &w.pp("head.norm"),
                    d,
                    config.layer_norm_eps,
                    m.norm_bias,
                )),
                m.classifier_activation,
            ),
            None => {
                let pre = match (l.pre_classifier, pooling) {
                    (Some(name), Pooling::Cls) => Some(w.pp(name).linear(d, d)),
                    _ => None,
                };
                (pre, None, config.activation)
            }
        };
        Self {
            pre_classifier,
            norm,
            dropout: DropoutConfig::new(dropout).init(),
            classifier: w.pp(l.classifier).linear(d, num_labels),
            style: l.head_style,
            activation,
        }
    }

    /// The head's tensors under their transformers names, below `out`.
    pub fn export(&self, family: Family, out: &mut crate::model::layers::ExportPath) {
        let l = layout(family);
        if let (Some(pre), Some(name)) = (&self.pre_classifier, l.pre_classifier) {
            out.pp(name).linear(pre);
        }
        if let Some(norm) = &self.norm {
            out.pp("head.norm").layer_norm(norm);
        }
        out.pp(l.classifier).linear(&self.classifier);
    }
}

impl MaskedLm {
    pub fn load(w: &Weights, config: &EncoderConfig) -> Self {
        Self::load_with(w, config, DropoutRates::default())
    }

    /// For masked-LM training: the encoder with `dropout`, and the checkpoint's masked-LM head,
    /// or (a bare encoder such as all-MiniLM-L6-v2) a new one as transformers initialises it —
    /// the transform from `Rng::new(seed)` with std `initializer_range`, the norm at ones and
    /// zeros, the bias at zeros — with the decoder tied to the word embeddings.
    pub fn load_for_training(
        w: &Weights,
        config: &EncoderConfig,
        raw: &serde_json::Map<String, serde_json::Value>,
        dropout: DropoutRates,
        seed: u64,
    ) -> Self {
        let l = layout(config.family);
        if w.pp(l.mlm_transform).contains("weight") {
            return Self::load_with(w, config, dropout);
        }
        let d = config.hidden_size;
        let device = w.device().clone();
        let init_std = raw
            .get("initializer_range")
            .and_then(|v| v.as_f64())
            .unwrap_or(0.02);
        let encoder = Encoder::load(w, config, dropout);
        let mut transform = init_linear(&mut crate::rng::Rng::new(seed), d, d, init_std, &device);
        let (norm, activation) = match &config.modern {
            Some(m) => {
                if !m.classifier_bias {
                    transform.bias = None;
                }
                (
                    fresh_norm(d, config.layer_norm_eps, m.norm_bias, &device),
                    m.classifier_activation,
                )
            }
            None => (
                fresh_norm(d, config.layer_norm_eps, true, &device),
                config.activation,
            ),
        };
        Self {
            encoder,
            transform,
            norm,
            bias: Param::from_tensor(Tensor::zeros([config.vocab_size], &device)),
            activation,
        }
    }

    fn load_with(w: &Weights, config: &EncoderConfig, dropout: DropoutRates) -> Self {
        let l = layout(config.family);
        let d = config.hidden_size;
        let encoder = Encoder::load(w, config, dropout);
        if let Some(m) = &config.modern {
            let bias = if m.decoder_bias {
                w.tensor(l.mlm_bias, [config.vocab_size])
            } else {
                Tensor::zeros([config.vocab_size], w.device())
            };
            return Self {
                encoder,
                transform: w.pp(l.mlm_transform).linear_with(d, d, m.classifier_bias),
                norm: modern_norm(&w.pp(l.mlm_norm), d, config.layer_norm_eps, m.norm_bias),
                bias: Param::from_tensor(bias),
                activation: m.classifier_activation,
            };
        }
        let transform = w.pp(l.mlm_transform).linear(d, d);
        let norm = w.pp(l.mlm_norm).layer_norm(d, config.layer_norm_eps);
        let bias = w.tensor(l.mlm_bias, [config.vocab_size]);
        let activation = config.activation;
        Self {
            encoder,
            transform,
            norm,
            bias: Param::from_tensor(bias),
            activation,
        }
    }
}

impl MaskedLm {
    /// The tensors of a transformers `*ForMaskedLM` checkpoint (the decoder is tied to the word
    /// embeddings, so transformers saves it once, as they are).
    pub fn export(&self, out: &mut Exporter) {
        let l = layout(self.encoder.config.family);
        self.encoder.export(out);
        out.pp(l.mlm_transform).linear(&self.transform);
        out.pp(l.mlm_norm).layer_norm(&self.norm);
        out.put(l.mlm_bias, self.bias.val());
    }
}

// Whole-checkpoint constructors: open the safetensors bytes with the family's prefix, load, and
// report every missing, mis-shaped or unexpected tensor at once.

fn encoder_of(config: &ModelConfig) -> Result<&EncoderConfig, ModelError> {
    config
        .encoder()
        .ok_or_else(|| ModelError::Unsupported("a GPT-2 checkpoint is not an encoder".into()))
}

impl Encoder {
    /// The bare encoder of a checkpoint, for inference, in `precision` on a GPU.
    pub fn from_checkpoint<'a>(
        bytes: impl Into<WeightFiles<'a>>,
        config: &EncoderConfig,
        device: &Device,
        precision: Precision,
    ) -> Result<Self, ModelError> {
        Weights::load(
            bytes,
            Self::prefix(config.family),
            config.parameters(),
            device,
            |w| {
                w.keep_half(precision);
                Self::load(w, config, DropoutRates::default())
            },
        )
    }
}

impl SequenceClassifier {
    /// A `*ForSequenceClassification` checkpoint with its own head, for inference. The number
    /// of labels is the classifier's (its weight's shape), else `id2label`'s. The encoder in
    /// `precision` on a GPU, the head f32.
    pub fn from_checkpoint<'a>(
        bytes: impl Into<WeightFiles<'a>>,
        config: &ModelConfig,
        pooling: Pooling,
        device: &Device,
        precision: Precision,
    ) -> Result<Self, ModelError> {
        let enc = encoder_of(config)?;
        Weights::load(
            bytes,
            Encoder::prefix(enc.family),
            enc.parameters(),
            device,
            |w| {
                let num_labels = w
                    .pp(layout(enc.family).classifier)
                    .shape_of("weight")
                    .and_then(|s| s.first().copied())
                    .filter(|&n| n > 0)
                    .unwrap_or(config.id2label.len().max(2));
                let inference = DropoutRates::default();
                w.keep_half(precision);
                Self::load(
                    w,
                    enc,
                    &config.raw,
                    num_labels,
                    pooling,
                    inference,
                    HeadInit::Checkpoint,
                )
            },
        )
    }

    /// A classifier to fine-tune on `num_labels` classes: the checkpoint's encoder, and its head
    /// or a fresh one as `head` says.
    pub fn for_training<'a>(
        bytes: impl Into<WeightFiles<'a>>,
        config: &ModelConfig,
        num_labels: usize,
        pooling: Pooling,
        dropout: DropoutRates,
        head: HeadInit,
        device: &Device,
    ) -> Result<Self, ModelError> {
        let enc = encoder_of(config)?;
        Weights::load(
            bytes,
            Encoder::prefix(enc.family),
            enc.parameters(),
            device,
            |w| Self::load(w, enc, &config.raw, num_labels, pooling, dropout, head),
        )
    }
}

impl TokenClassifier {
    /// A `*ForTokenClassification` checkpoint, for inference: every family names its head
    /// `classifier` (RoBERTa's too, unlike its sequence classifier). The number of labels is the
    /// head's (its weight's shape), else `id2label`'s. The encoder in `precision` on a GPU, the
    /// head f32.
    pub fn from_checkpoint<'a>(
        bytes: impl Into<WeightFiles<'a>>,
        config: &ModelConfig,
        device: &Device,
        precision: Precision,
    ) -> Result<Self, ModelError> {
        let enc = encoder_of(config)?;
        Weights::load(
            bytes,
            Encoder::prefix(enc.family),
            enc.parameters(),
            device,
            |w| {
                let head = w.pp("classifier");
                let num_labels = head
                    .shape_of("weight")
                    .and_then(|s| s.first().copied())
                    .filter(|&n| n > 0)
                    .unwrap_or(config.id2label.len().max(2));
                w.keep_half(precision);
                let encoder = Encoder::load(w, enc, DropoutRates::default());
                Self {
                    encoder,
                    classifier: head.linear(enc.hidden_size, num_labels),
                }
            },
        )
    }
}

impl MaskedLm {
    /// A checkpoint to continue masked-LM training on (see [`MaskedLm::load_for_training`]).
    pub fn for_training<'a>(
        bytes: impl Into<WeightFiles<'a>>,
        config: &ModelConfig,
        dropout: DropoutRates,
        seed: u64,
        device: &Device,
    ) -> Result<Self, ModelError> {
        let enc = encoder_of(config)?;
        Weights::load(
            bytes,
            Encoder::prefix(enc.family),
            enc.parameters(),
            device,
            |w| Self::load_for_training(w, enc, &config.raw, dropout, seed),
        )
    }

    /// A `*ForMaskedLM` checkpoint, for inference: the encoder in `precision` on a GPU, the
    /// head f32.
    pub fn from_checkpoint<'a>(
        bytes: impl Into<WeightFiles<'a>>,
        config: &EncoderConfig,
        device: &Device,
        precision: Precision,
    ) -> Result<Self, ModelError> {
        Weights::load(
            bytes,
            Encoder::prefix(config.family),
            config.parameters(),
            device,
            |w| {
                w.keep_half(precision);
                Self::load(w, config)
            },
        )
    }
}
