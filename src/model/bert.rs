//! BERT-family encoders (BERT, DistilBERT, and BERT-shaped sentence-transformers checkpoints
//! such as all-MiniLM-L6-v2) with their heads: sequence classification, masked LM, and
//! sentence embeddings (CLS or attention-masked mean pooling, optional L2 normalisation).
//!
//! Post-LayerNorm transformer layers as in transformers' `BertLayer` / DistilBERT's
//! `TransformerBlock`; query, key and value are fused into one matmul.

use burn::module::Param;
use burn::nn::{Dropout, DropoutConfig, Embedding, LayerNorm, Linear, LinearConfig};
use burn::prelude::*;
use burn::tensor::activation;

use super::config::{Activation, EncoderConfig, Family};
use super::layers::{self, Exporter};
use super::weights::Weights;

/// Token ids, attention mask and token types of a batch, on the device.
#[derive(Debug, Clone)]
pub struct EncoderInput {
    /// `[batch, seq]`
    pub input_ids: Tensor<2, Int>,
    /// `[batch, seq]`, 1 for real tokens, 0 for padding.
    pub attention_mask: Tensor<2, Int>,
    /// `[batch, seq]`; ignored by DistilBERT.
    pub token_type_ids: Tensor<2, Int>,
}

impl EncoderInput {
    /// Uploads an encoded batch.
    pub fn new(batch: &crate::text::EncodedBatch, device: &Device) -> Self {
        let shape = [batch.batch, batch.seq_len];
        let up = |v: &[u32]| {
            let v: Vec<i32> = v.iter().map(|&x| x as i32).collect();
            Tensor::<2, Int>::from_data(TensorData::new(v, shape), device)
        };
        Self {
            input_ids: up(&batch.input_ids),
            attention_mask: up(&batch.attention_mask),
            token_type_ids: up(&batch.token_type_ids),
        }
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

fn activate<const D: usize>(x: Tensor<D>, act: Activation) -> Tensor<D> {
    match act {
        Activation::Gelu => activation::gelu(x),
        Activation::GeluTanh => activation::gelu_approximate(x),
        Activation::Relu => activation::relu(x),
    }
}

#[derive(Module, Debug)]
pub struct EncoderLayer {
    /// Query, key and value fused: `[d, 3d]`.
    pub qkv: Linear,
    pub attn_out: Linear,
    pub attn_norm: LayerNorm,
    pub ffn_in: Linear,
    pub ffn_out: Linear,
    pub ffn_norm: LayerNorm,
    pub attn_dropout: Dropout,
    pub dropout: Dropout,
    pub num_heads: usize,
    #[module(skip)]
    pub activation: Activation,
}

impl EncoderLayer {
    /// `x`: `[b, t, d]`; `mask_bias`: `[b, 1, 1, t]` (0 for tokens, a large negative for padding).
    pub fn forward(&self, x: Tensor<3>, mask_bias: Tensor<4>) -> Tensor<3> {
        let [b, t, d] = x.dims();
        let h = self.num_heads;
        let dh = d / h;
        let qkv = self.qkv.forward(x.clone());
        let heads = |i: usize| {
            qkv.clone()
                .narrow(2, i * d, d)
                .reshape([b, t, h, dh])
                .swap_dims(1, 2)
        };
        let (q, k, v) = (heads(0), heads(1), heads(2));
        let scores = q
            .matmul(k.swap_dims(2, 3))
            .mul_scalar(1.0 / (dh as f64).sqrt())
            + mask_bias;
        let probs = self.attn_dropout.forward(activation::softmax(scores, 3));
        let context = probs.matmul(v).swap_dims(1, 2).reshape([b, t, d]);
        let attn = self.dropout.forward(self.attn_out.forward(context));
        let x = self.attn_norm.forward(x + attn);
        let inner = activate(self.ffn_in.forward(x.clone()), self.activation);
        let out = self.dropout.forward(self.ffn_out.forward(inner));
        self.ffn_norm.forward(x + out)
    }
}

/// The encoder body: embeddings and transformer layers (BERT's pooler is kept by the heads).
#[derive(Module, Debug)]
pub struct Encoder {
    pub word_embeddings: Embedding,
    pub position_embeddings: Embedding,
    pub token_type_embeddings: Option<Embedding>,
    pub embeddings_norm: LayerNorm,
    pub embeddings_dropout: Dropout,
    pub layers: Vec<EncoderLayer>,
    #[module(skip)]
    pub config: EncoderConfig,
}

/// HF names of one layer's tensors for each family.
struct LayerNames {
    q: String,
    k: String,
    v: String,
    attn_out: String,
    attn_norm: String,
    ffn_in: String,
    ffn_out: String,
    ffn_norm: String,
}

fn layer_names(family: Family, i: usize) -> LayerNames {
    match family {
        Family::DistilBert => {
            let p = format!("transformer.layer.{i}");
            LayerNames {
                q: format!("{p}.attention.q_lin"),
                k: format!("{p}.attention.k_lin"),
                v: format!("{p}.attention.v_lin"),
                attn_out: format!("{p}.attention.out_lin"),
                attn_norm: format!("{p}.sa_layer_norm"),
                ffn_in: format!("{p}.ffn.lin1"),
                ffn_out: format!("{p}.ffn.lin2"),
                ffn_norm: format!("{p}.output_layer_norm"),
            }
        }
        _ => {
            let p = format!("encoder.layer.{i}");
            LayerNames {
                q: format!("{p}.attention.self.query"),
                k: format!("{p}.attention.self.key"),
                v: format!("{p}.attention.self.value"),
                attn_out: format!("{p}.attention.output.dense"),
                attn_norm: format!("{p}.attention.output.LayerNorm"),
                ffn_in: format!("{p}.intermediate.dense"),
                ffn_out: format!("{p}.output.dense"),
                ffn_norm: format!("{p}.output.LayerNorm"),
            }
        }
    }
}

/// Dropout probabilities, all zero for inference.
#[derive(Debug, Clone, Copy, Default)]
pub struct DropoutRates {
    pub hidden: f64,
    pub attention: f64,
    pub classifier: f64,
}

impl DropoutRates {
    /// The rates the checkpoint's config.json trains with (transformers' defaults otherwise).
    pub fn from_config(raw: &serde_json::Map<String, serde_json::Value>, family: Family) -> Self {
        let get = |k: &str, d: f64| raw.get(k).and_then(|v| v.as_f64()).unwrap_or(d);
        match family {
            Family::DistilBert => Self {
                hidden: get("dropout", 0.1),
                attention: get("attention_dropout", 0.1),
                classifier: get("seq_classif_dropout", 0.2),
            },
            _ => {
                let hidden = get("hidden_dropout_prob", 0.1);
                Self {
                    hidden,
                    attention: get("attention_probs_dropout_prob", 0.1),
                    classifier: get("classifier_dropout", hidden),
                }
            }
        }
    }
}

impl Encoder {
    /// The architecture prefix of the family's checkpoints.
    pub fn prefix(family: Family) -> &'static str {
        match family {
            Family::DistilBert => "distilbert.",
            _ => "bert.",
        }
    }

    pub fn load(w: &Weights, config: &EncoderConfig, dropout: DropoutRates) -> Self {
        let d = config.hidden_size;
        let eps = config.layer_norm_eps;
        let layers = (0..config.num_layers)
            .map(|i| {
                let n = layer_names(config.family, i);
                EncoderLayer {
                    qkv: layers::fused_linear(w, &[&n.q, &n.k, &n.v], d, d),
                    attn_out: layers::linear(w, &n.attn_out, d, d),
                    attn_norm: layers::layer_norm(w, &n.attn_norm, d, eps),
                    ffn_in: layers::linear(w, &n.ffn_in, d, config.intermediate_size),
                    ffn_out: layers::linear(w, &n.ffn_out, config.intermediate_size, d),
                    ffn_norm: layers::layer_norm(w, &n.ffn_norm, d, eps),
                    attn_dropout: DropoutConfig::new(dropout.attention).init(),
                    dropout: DropoutConfig::new(dropout.hidden).init(),
                    num_heads: config.num_heads,
                    activation: config.activation,
                }
            })
            .collect();
        let token_type_embeddings = (config.type_vocab_size > 0).then(|| {
            layers::embedding(
                w,
                "embeddings.token_type_embeddings",
                config.type_vocab_size,
                d,
            )
        });
        Self {
            word_embeddings: layers::embedding(
                w,
                "embeddings.word_embeddings",
                config.vocab_size,
                d,
            ),
            position_embeddings: layers::embedding(
                w,
                "embeddings.position_embeddings",
                config.max_position_embeddings,
                d,
            ),
            token_type_embeddings,
            embeddings_norm: layers::layer_norm(w, "embeddings.LayerNorm", d, eps),
            embeddings_dropout: DropoutConfig::new(dropout.hidden).init(),
            layers,
            config: config.clone(),
        }
    }

    /// Writes the encoder's tensors with their HF names (under `prefix`, e.g. `"bert."`).
    pub fn export(&self, prefix: &str, out: &mut Exporter) {
        let p = |s: &str| format!("{prefix}{s}");
        out.embedding(&p("embeddings.word_embeddings"), &self.word_embeddings);
        out.embedding(
            &p("embeddings.position_embeddings"),
            &self.position_embeddings,
        );
        if let Some(t) = &self.token_type_embeddings {
            out.embedding(&p("embeddings.token_type_embeddings"), t);
        }
        out.layer_norm(&p("embeddings.LayerNorm"), &self.embeddings_norm);
        for (i, layer) in self.layers.iter().enumerate() {
            let n = layer_names(self.config.family, i);
            out.fused_linear(&[&p(&n.q), &p(&n.k), &p(&n.v)], &layer.qkv);
            out.linear(&p(&n.attn_out), &layer.attn_out);
            out.layer_norm(&p(&n.attn_norm), &layer.attn_norm);
            out.linear(&p(&n.ffn_in), &layer.ffn_in);
            out.linear(&p(&n.ffn_out), &layer.ffn_out);
            out.layer_norm(&p(&n.ffn_norm), &layer.ffn_norm);
        }
    }

    fn embed(&self, input: &EncoderInput) -> Tensor<3> {
        let [_, t] = input.input_ids.dims();
        let device = input.input_ids.device();
        let positions = Tensor::<1, Int>::arange(0..t as i64, &device).reshape([1, t]);
        let mut x = self.word_embeddings.forward(input.input_ids.clone())
            + self.position_embeddings.forward(positions);
        if let Some(types) = &self.token_type_embeddings {
            x = x + types.forward(input.token_type_ids.clone());
        }
        self.embeddings_dropout
            .forward(self.embeddings_norm.forward(x))
    }

    /// `[b, 1, 1, t]`: 0 where attended, the most negative f32 where padded (as transformers).
    fn mask_bias(mask: &Tensor<2, Int>) -> Tensor<4> {
        let [b, t] = mask.dims();
        (mask.clone().float().neg() + 1.0)
            .mul_scalar(f32::MIN)
            .reshape([b, 1, 1, t])
    }

    /// The last hidden state `[b, t, d]`.
    pub fn forward(&self, input: &EncoderInput) -> Tensor<3> {
        let bias = Self::mask_bias(&input.attention_mask);
        let mut x = self.embed(input);
        for layer in &self.layers {
            x = layer.forward(x, bias.clone());
        }
        x
    }

    /// Every hidden state: the embeddings' output, then each layer's.
    pub fn hidden_states(&self, input: &EncoderInput) -> Vec<Tensor<3>> {
        let bias = Self::mask_bias(&input.attention_mask);
        let mut states = vec![self.embed(input)];
        for layer in &self.layers {
            let next = layer.forward(states[states.len() - 1].clone(), bias.clone());
            states.push(next);
        }
        states
    }
}

/// The first token's hidden state: `[b, t, d]` -> `[b, d]`.
pub fn first_token(hidden: Tensor<3>) -> Tensor<2> {
    let [b, _, d] = hidden.dims();
    hidden.narrow(1, 0, 1).reshape([b, d])
}

/// Mean over real tokens (sentence-transformers' `Pooling(mean)`): `[b, t, d]` -> `[b, d]`.
pub fn mean_pool(hidden: Tensor<3>, mask: &Tensor<2, Int>) -> Tensor<2> {
    let [b, t, d] = hidden.dims();
    let m = mask.clone().float().reshape([b, t, 1]);
    let summed = (hidden * m.clone()).sum_dim(1).reshape([b, d]);
    let counts = m.sum_dim(1).reshape([b, 1]).clamp_min(1e-9);
    summed / counts
}

/// Row-wise L2 normalisation (`torch.nn.functional.normalize`, eps 1e-12).
pub fn l2_normalize(x: Tensor<2>) -> Tensor<2> {
    let norm = x.clone().square().sum_dim(1).sqrt().clamp_min(1e-12);
    x / norm
}

/// BERT's pooler: `tanh(dense(h[:, 0]))`.
#[derive(Module, Debug)]
pub struct Pooler {
    pub dense: Linear,
}

impl Pooler {
    pub fn forward(&self, hidden: Tensor<3>) -> Tensor<2> {
        self.dense.forward(first_token(hidden)).tanh()
    }
}

/// The trainable head of a sequence classifier: DistilBERT's `pre_classifier` + ReLU when
/// present, dropout, then the `classifier` linear layer.
#[derive(Module, Debug)]
pub struct ClassifierHead {
    pub pre_classifier: Option<Linear>,
    pub dropout: Dropout,
    pub classifier: Linear,
}

impl ClassifierHead {
    /// Logits `[b, labels]` from pooled features `[b, d]`.
    pub fn forward(&self, features: Tensor<2>) -> Tensor<2> {
        let x = match &self.pre_classifier {
            Some(pre) => activation::relu(pre.forward(features)),
            None => features,
        };
        self.classifier.forward(self.dropout.forward(x))
    }

    pub fn num_labels(&self) -> usize {
        self.classifier.weight.dims()[1]
    }
}

/// A sequence classifier: `BertForSequenceClassification` (pooler -> dropout -> classifier),
/// `DistilBertForSequenceClassification` (h[:,0] -> pre_classifier -> ReLU -> dropout ->
/// classifier), or, with mean pooling, a linear head on sentence-transformers features.
#[derive(Module, Debug)]
pub struct SequenceClassifier {
    pub encoder: Encoder,
    /// BERT's pooler (part of the base model, `bert.pooler`).
    pub pooler: Option<Pooler>,
    pub head: ClassifierHead,
    #[module(skip)]
    pub pooling: Pooling,
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
    let mut l = LinearConfig::new(d_in, d_out).init(device);
    l.weight = Param::from_tensor(weight);
    l.bias = Some(Param::from_tensor(Tensor::zeros([d_out], device)));
    l
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

impl SequenceClassifier {
    pub fn load(
        w: &Weights,
        config: &EncoderConfig,
        raw: &serde_json::Map<String, serde_json::Value>,
        num_labels: usize,
        pooling: Pooling,
        dropout: DropoutRates,
        head: HeadInit,
    ) -> Self {
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
        let pooler = match (config.family, pooling) {
            (Family::Bert, Pooling::Cls) => Some(Pooler {
                dense: if w.contains("pooler.dense.weight") {
                    layers::linear(w, "pooler.dense", d, d)
                } else {
                    init_linear(&mut rng, d, d, init_std, &device)
                },
            }),
            _ => None,
        };
        let pre_classifier =
            (config.family == Family::DistilBert && pooling == Pooling::Cls).then(|| {
                if has_head {
                    layers::linear(w, "pre_classifier", d, d)
                } else {
                    init_linear(&mut rng, d, d, init_std, &device)
                }
            });
        let classifier = if has_head {
            layers::linear(w, "classifier", d, num_labels)
        } else {
            init_linear(&mut rng, d, num_labels, init_std, &device)
        };
        Self {
            encoder,
            pooler,
            head: ClassifierHead {
                pre_classifier,
                dropout: DropoutConfig::new(dropout.classifier).init(),
                classifier,
            },
            pooling,
        }
    }

    /// The pooled features the head reads (BERT: `pooler_output`; DistilBERT: `h[:, 0]`;
    /// mean pooling: the masked mean). Head-only training caches these.
    pub fn features(&self, input: &EncoderInput) -> Tensor<2> {
        let hidden = self.encoder.forward(input);
        match (self.pooling, &self.pooler) {
            (Pooling::Mean, _) => mean_pool(hidden, &input.attention_mask),
            (Pooling::Cls, Some(p)) => p.forward(hidden),
            (Pooling::Cls, None) => first_token(hidden),
        }
    }

    pub fn forward(&self, input: &EncoderInput) -> Tensor<2> {
        self.head.forward(self.features(input))
    }

    pub fn num_labels(&self) -> usize {
        self.head.num_labels()
    }

    /// The tensors of a transformers checkpoint of this classifier.
    pub fn export(&self, out: &mut Exporter) {
        let prefix = Encoder::prefix(self.encoder.config.family);
        self.encoder.export(prefix, out);
        if let Some(p) = &self.pooler {
            out.linear(&format!("{prefix}pooler.dense"), &p.dense);
        }
        if let Some(pre) = &self.head.pre_classifier {
            out.linear("pre_classifier", pre);
        }
        out.linear("classifier", &self.head.classifier);
    }
}

/// `BertForMaskedLM` / `DistilBertForMaskedLM`: transform, activation, LayerNorm, then the
/// decoder tied to the word embeddings plus a bias.
#[derive(Module, Debug)]
pub struct MaskedLm {
    pub encoder: Encoder,
    pub transform: Linear,
    pub norm: LayerNorm,
    pub bias: Param<Tensor<1>>,
}

impl MaskedLm {
    pub fn load(w: &Weights, config: &EncoderConfig) -> Self {
        let d = config.hidden_size;
        let encoder = Encoder::load(w, config, DropoutRates::default());
        let (transform, norm, bias) = match config.family {
            Family::DistilBert => (
                layers::linear(w, "vocab_transform", d, d),
                layers::layer_norm(w, "vocab_layer_norm", d, config.layer_norm_eps),
                w.tensor("vocab_projector.bias", [config.vocab_size]),
            ),
            _ => (
                layers::linear(w, "cls.predictions.transform.dense", d, d),
                layers::layer_norm(
                    w,
                    "cls.predictions.transform.LayerNorm",
                    d,
                    config.layer_norm_eps,
                ),
                w.tensor("cls.predictions.bias", [config.vocab_size]),
            ),
        };
        Self {
            encoder,
            transform,
            norm,
            bias: Param::from_tensor(bias),
        }
    }

    /// Vocabulary logits `[n, vocab]` at the given hidden states `[n, d]`.
    pub fn logits_at(&self, hidden: Tensor<2>) -> Tensor<2> {
        let h = activate(
            self.transform.forward(hidden),
            self.encoder.config.activation,
        );
        let h = self.norm.forward(h);
        let vocab = self.encoder.word_embeddings.weight.val();
        h.matmul(vocab.transpose()) + self.bias.val().unsqueeze::<2>()
    }

    /// Logits at the `(row, position)` pairs of the batch: `[n, vocab]`.
    pub fn logits_at_positions(
        &self,
        input: &EncoderInput,
        positions: &[(usize, usize)],
    ) -> Tensor<2> {
        let hidden = self.encoder.forward(input);
        let [b, t, d] = hidden.dims();
        let flat = hidden.reshape([b * t, d]);
        let index: Vec<i32> = positions.iter().map(|&(r, p)| (r * t + p) as i32).collect();
        let n = index.len();
        let index = Tensor::<1, Int>::from_data(TensorData::new(index, [n]), &flat.device());
        self.logits_at(flat.select(0, index))
    }
}
