//! BERT-family encoders (BERT, DistilBERT, RoBERTa, XLM-RoBERTa, and BERT-shaped
//! sentence-transformers checkpoints such as all-MiniLM-L6-v2) with their heads: sequence classification, masked LM, and
//! sentence embeddings (CLS or attention-masked mean pooling, optional L2 normalisation).
//!
//! Post-LayerNorm transformer layers as in transformers' `BertLayer` / DistilBERT's
//! `TransformerBlock`; query, key and value are fused into one matmul.
//!
//! - this file: the encoder (embeddings and layers) and the poolings;
//! - `heads.rs`: the pooler, the classification head and the masked-LM head;
//! - `layout.rs`: where BERT, DistilBERT and RoBERTa keep each tensor and dropout key, side by side;
//! - `loader.rs`: loading and export along those layouts, and the whole-checkpoint constructors.

mod heads;
mod layout;
mod loader;
mod lora;

use burn::nn::{Dropout, Embedding, Linear};
use burn::prelude::*;

pub use super::config::Pooling;
use super::config::{Activation, EncoderConfig};
use super::kernels;
use super::kernels::{
    activate, attention, attention_probs, dropout, embedding, linear_activate, linear_residual,
    split_heads, split_qkv,
};
use super::layers::{rope_tables, rotary, LayerNorm, Rope};
use super::lora::{adapted, LinearLora};

pub use heads::{ClassifierHead, HeadStyle, MaskedLm, Pooler, SequenceClassifier, TokenClassifier};
pub use loader::{init_linear, HeadInit};
pub use lora::{
    default_targets as default_lora_targets, modules_to_save as lora_modules_to_save,
    AdapterSource, LoraFacts, PEFT_PREFIX,
};

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

/// Dropout probabilities, all zero for inference. [`DropoutRates::from_config`] reads a
/// checkpoint's.
#[derive(Debug, Clone, Copy, Default)]
pub struct DropoutRates {
    pub hidden: f64,
    pub attention: f64,
    pub classifier: f64,
    /// After the embeddings (ModernBERT's `embedding_dropout`; the others use `hidden`).
    pub embedding: f64,
    /// Inside ModernBERT's gated MLP (`mlp_dropout`).
    pub mlp: f64,
}

/// How a layer arranges its attention and feed-forward blocks.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Block {
    /// BERT: `norm(x + attn(x))`, then `norm(x + ffn(x))` with `ffn = out(act(in(x)))`.
    PostNorm,
    /// ModernBERT: `x + attn(norm(x))` with rotary positions, then `x + ffn(norm(x))` with the
    /// gated `ffn = out(act(input) * gate)`; `sliding`: attention within the window only.
    PreNormGated { sliding: bool },
}

#[derive(Module, Debug)]
pub struct EncoderLayer {
    /// Query, key and value fused: `[d, 3d]`.
    pub qkv: Linear,
    pub attn_out: Linear,
    /// After attention (post-norm) or before it (pre-norm; ModernBERT's first layer has none).
    pub attn_norm: Option<LayerNorm>,
    pub ffn_in: Linear,
    pub ffn_out: Linear,
    pub ffn_norm: LayerNorm,
    pub attn_dropout: Dropout,
    pub dropout: Dropout,
    /// Inside the gated feed-forward block (pre-norm layers).
    pub ffn_dropout: Dropout,
    pub num_heads: usize,
    #[module(skip)]
    pub activation: Activation,
    #[module(skip)]
    pub block: Block,
    /// LoRA adapters on the layer's linear layers, while they train unmerged.
    pub lora: Option<LayerLora>,
}

/// The LoRA adapters of one layer, one [`LinearLora`] per linear layer (query, key and value as
/// the fused layer's parts).
#[derive(Module, Debug)]
pub struct LayerLora {
    pub qkv: LinearLora,
    pub attn_out: LinearLora,
    pub ffn_in: LinearLora,
    pub ffn_out: LinearLora,
}

/// What every layer of one forward pass shares: the padding bias, and for ModernBERT the rotary
/// tables and the sliding window's bias, each `[.., t, ..]` for this batch.
#[derive(Clone)]
pub struct LayerInputs {
    /// `[b, 1, 1, t]`: 0 for tokens, a large negative for padding.
    pub padding: Tensor<4>,
    /// (cos, sin) `[1, 1, t, dh]` of the global and of the sliding-window layers.
    pub rope: Option<[Rope; 2]>,
    /// `[b, 1, t, t]`: the padding and the window, when the window hides anything.
    pub window: Option<Tensor<4>>,
}

impl EncoderLayer {
    /// `x`: `[b, t, d]`.
    pub fn forward(&self, x: Tensor<3>, inputs: &LayerInputs) -> Tensor<3> {
        match self.block {
            Block::PostNorm => self.post_norm(x, inputs.padding.clone()),
            Block::PreNormGated { sliding } => self.pre_norm(x, inputs, sliding),
        }
    }

    /// Scaled dot-product attention of the heads, merged back to `[b, t, d]`.
    fn attend(&self, q: Tensor<4>, k: Tensor<4>, v: Tensor<4>, bias: Tensor<4>) -> Tensor<3> {
        let [b, h, t, dh] = q.dims();
        let scale = 1.0 / (dh as f64).sqrt();
        if q.device().is_autodiff() {
            // Training: the attention dropout sits between the softmax and the values.
            let probs = attention_probs(q.matmul(k.swap_dims(2, 3)), scale, bias);
            let probs = dropout(&self.attn_dropout, probs);
            probs.matmul(v).swap_dims(1, 2).reshape([b, t, h * dh])
        } else {
            attention(q, k, v, scale, bias)
        }
    }

    /// What the layer's products write for its attention and its feed-forward block's inner
    /// activations: f16 outside training for matrices kept so (an inference pipeline in half
    /// precision on a GPU, [`kernels::activation_dtype`]) in a post-norm layer without
    /// adapters, else `x`'s type. The residual stream stays `x`'s (f32).
    fn inner_dtype(&self, x: &Tensor<3>) -> burn::tensor::DType {
        if x.device().is_autodiff() || self.lora.is_some() || self.block != Block::PostNorm {
            return x.dtype();
        }
        kernels::activation_dtype(self.ffn_in.weight.val().dtype())
    }

    /// The adapters of one of the layer's linear layers, when it has any.
    fn lora_of(&self, pick: fn(&LayerLora) -> &LinearLora) -> Option<&LinearLora> {
        self.lora.as_ref().map(pick).filter(|l| l.active())
    }

    /// Queries, keys and values `[b, h, t, dh]`.
    fn heads(&self, x: Tensor<3>) -> (Tensor<4>, Tensor<4>, Tensor<4>) {
        match self.lora_of(|l| &l.qkv) {
            Some(lora) => split_qkv(adapted(&self.qkv, Some(lora), x), self.num_heads),
            None => split_heads(&self.qkv, x, self.num_heads),
        }
    }

    /// `residual + dropout(lin(x))` (the attention output or the feed-forward output), with the
    /// layer's adapters `lora` when it has any.
    fn residual(
        &self,
        lin: &Linear,
        lora: Option<&LinearLora>,
        x: Tensor<3>,
        residual: Tensor<3>,
        dropout: Option<&Dropout>,
    ) -> Tensor<3> {
        match lora {
            None => linear_residual(lin, x, residual, dropout),
            Some(lora) => {
                let y = adapted(lin, Some(lora), x);
                residual
                    + match dropout {
                        Some(d) => kernels::dropout(d, y),
                        None => y,
                    }
            }
        }
    }

    /// The feed-forward block's input layer (no activation: ModernBERT's gated input).
    fn ffn_input(&self, x: Tensor<3>) -> Tensor<3> {
        adapted(&self.ffn_in, self.lora_of(|l| &l.ffn_in), x)
    }

    /// Self-attention of `x` (post-norm layers: no rotary positions), merged to `[b, t, d]`. In
    /// training on a GPU the fused query/key/value output goes to one attention op
    /// ([`kernels::qkv_attention`]) without being split into heads.
    fn self_attention(&self, x: Tensor<3>, mask_bias: Tensor<4>) -> Tensor<3> {
        if !x.device().is_autodiff()
            && kernels::self_attention_enabled()
            && !crate::device::on_cpu(&x.device())
        {
            // Inference on a GPU: one attention kernel on the fused output (f16 in half
            // precision).
            let qkv = match self.lora_of(|l| &l.qkv) {
                None => {
                    let dtype = self.inner_dtype(&x);
                    kernels::linear_to(&self.qkv, x, None, dtype)
                }
                Some(lora) => adapted(&self.qkv, Some(lora), x),
            };
            let d = qkv.dims()[2] / 3;
            let scale = 1.0 / ((d / self.num_heads.max(1)) as f64).sqrt();
            return match kernels::self_attention(qkv, self.num_heads, scale, &mask_bias) {
                Ok(context) => context,
                Err(qkv) => {
                    let (q, k, v) = split_qkv(qkv, self.num_heads);
                    self.attend(q, k, v, mask_bias)
                }
            };
        }
        if !x.device().is_autodiff() || !kernels::fused_kernels_enabled() {
            let (q, k, v) = self.heads(x);
            return self.attend(q, k, v, mask_bias);
        }
        let qkv = adapted(&self.qkv, self.lora_of(|l| &l.qkv), x);
        let d = qkv.dims()[2] / 3;
        let scale = 1.0 / ((d / self.num_heads.max(1)) as f64).sqrt();
        match kernels::qkv_attention(qkv, self.num_heads, scale, &mask_bias, &self.attn_dropout) {
            Ok(context) => context,
            Err(qkv) => {
                let (q, k, v) = split_qkv(qkv, self.num_heads);
                self.attend(q, k, v, mask_bias)
            }
        }
    }

    fn post_norm(&self, x: Tensor<3>, mask_bias: Tensor<4>) -> Tensor<3> {
        let context = self.self_attention(x.clone(), mask_bias);
        let x = self.residual(
            &self.attn_out,
            self.lora_of(|l| &l.attn_out),
            context,
            x,
            Some(&self.dropout),
        );
        let x = match &self.attn_norm {
            Some(norm) => norm.forward(x),
            None => x,
        };
        let inner = match self.lora_of(|l| &l.ffn_in) {
            None => {
                let dtype = self.inner_dtype(&x);
                if dtype == x.dtype() {
                    linear_activate(&self.ffn_in, x.clone(), self.activation)
                } else {
                    kernels::linear_to(&self.ffn_in, x.clone(), Some(self.activation), dtype)
                }
            }
            Some(_) => activate(self.ffn_input(x.clone()), self.activation),
        };
        let x = self.residual(
            &self.ffn_out,
            self.lora_of(|l| &l.ffn_out),
            inner,
            x,
            Some(&self.dropout),
        );
        self.ffn_norm.forward(x)
    }

    fn pre_norm(&self, x: Tensor<3>, inputs: &LayerInputs, sliding: bool) -> Tensor<3> {
        let normed = match &self.attn_norm {
            Some(norm) => norm.forward(x.clone()),
            None => x.clone(),
        };
        let (q, k, v) = self.heads(normed);
        let (q, k) = match &inputs.rope {
            Some(tables) => {
                let table = &tables[usize::from(sliding)];
                (rotary(q, table), rotary(k, table))
            }
            None => (q, k),
        };
        let bias = match (&inputs.window, sliding) {
            (Some(window), true) => window.clone(),
            _ => inputs.padding.clone(),
        };
        let context = self.attend(q, k, v, bias);
        let x = self.residual(
            &self.attn_out,
            self.lora_of(|l| &l.attn_out),
            context,
            x,
            Some(&self.dropout),
        );
        let inner = self.ffn_input(self.ffn_norm.forward(x.clone()));
        let width = inner.dims()[2] / 2;
        let input = inner.clone().narrow(2, 0, width);
        let gate = inner.narrow(2, width, width);
        let gated = dropout(&self.ffn_dropout, activate(input, self.activation) * gate);
        self.residual(&self.ffn_out, self.lora_of(|l| &l.ffn_out), gated, x, None)
    }
}

/// The encoder body: embeddings and transformer layers (BERT's pooler is kept by the heads).
#[derive(Module, Debug)]
pub struct Encoder {
    pub word_embeddings: Embedding,
    /// A learned position table (ModernBERT has none: its positions are rotary).
    pub position_embeddings: Option<Embedding>,
    /// BERT's; DistilBERT has none.
    pub token_type_embeddings: Option<Embedding>,
    pub embeddings_norm: LayerNorm,
    pub embeddings_dropout: Dropout,
    pub layers: Vec<EncoderLayer>,
    /// After the last layer (ModernBERT's `final_norm`).
    pub final_norm: Option<LayerNorm>,
    #[module(skip)]
    pub config: EncoderConfig,
}

impl Encoder {
    /// The rows of the position table: `0..t` (`[1, t]`, the same for every input), or RoBERTa's
    /// (`create_position_ids_from_input_ids`): padding tokens take `pad_token_id`, the others
    /// count up from `pad_token_id + 1`, skipping padding wherever it stands.
    fn positions(&self, input_ids: &Tensor<2, Int>) -> Tensor<2, Int> {
        let [_, t] = input_ids.dims();
        let device = input_ids.device();
        if !self.config.family.is_roberta() {
            // One row, broadcast over the batch when added.
            return Tensor::<1, Int>::arange(0..t as i64, &device).reshape([1, t]);
        }
        let pad = self.config.pad_token_id as i64;
        let real = input_ids.clone().not_equal_elem(pad).int();
        (real.clone().cumsum(1) * real).add_scalar(pad)
    }

    fn embed(&self, input: &EncoderInput) -> Tensor<3> {
        let mut x = embedding(&self.word_embeddings, input.input_ids.clone());
        if let Some(table) = &self.position_embeddings {
            x = x + embedding(table, self.positions(&input.input_ids));
        }
        if let Some(types) = &self.token_type_embeddings {
            x = x + embedding(types, input.token_type_ids.clone());
        }
        dropout(&self.embeddings_dropout, self.embeddings_norm.forward(x))
    }

    /// `[b, 1, 1, t]`: 0 where attended, the most negative f32 where padded (as transformers).
    fn mask_bias(mask: &Tensor<2, Int>) -> Tensor<4> {
        let [b, t] = mask.dims();
        (mask.clone().float().neg() + 1.0)
            .mul_scalar(f32::MIN)
            .reshape([b, 1, 1, t])
    }

    /// What the layers share for this batch (see [`LayerInputs`]).
    fn layer_inputs(&self, input: &EncoderInput) -> LayerInputs {
        let padding = Self::mask_bias(&input.attention_mask);
        let Some(modern) = &self.config.modern else {
            return LayerInputs {
                padding,
                rope: None,
                window: None,
            };
        };
        let [_, t] = input.input_ids.dims();
        let device = input.input_ids.device();
        let dh = self.config.hidden_size / self.config.num_heads.max(1);
        let rope = [
            rope_tables(modern.global_theta, dh, 0, t, &device),
            rope_tables(modern.local_theta, dh, 0, t, &device),
        ];
        // The window hides keys farther than `half_window` from the query; shorter inputs see
        // every key.
        let window = (t > modern.half_window + 1).then(|| {
            let w = modern.half_window;
            let bias: Vec<f32> = (0..t * t)
                .map(|i| {
                    let (q, k) = (i / t, i % t);
                    if q.abs_diff(k) <= w {
                        0.0
                    } else {
                        f32::MIN
                    }
                })
                .collect();
            let window = Tensor::<4>::from_data(TensorData::new(bias, [1, 1, t, t]), &device);
            // [b, 1, t, t]: the window's rows for each example's padding.
            (window + padding.clone()).clamp_min(f32::MIN)
        });
        LayerInputs {
            padding,
            rope: Some(rope),
            window,
        }
    }

    /// The last hidden state `[b, t, d]` (after ModernBERT's final norm).
    pub fn forward(&self, input: &EncoderInput) -> Tensor<3> {
        let inputs = self.layer_inputs(input);
        let mut x = self.embed(input);
        for layer in &self.layers {
            x = layer.forward(x, &inputs);
        }
        match &self.final_norm {
            Some(norm) => norm.forward(x),
            None => x,
        }
    }

    /// Every hidden state: the embeddings' output, then each layer's, the last one after
    /// ModernBERT's final norm (as transformers' `hidden_states`).
    pub fn hidden_states(&self, input: &EncoderInput) -> Vec<Tensor<3>> {
        let inputs = self.layer_inputs(input);
        let mut states = vec![self.embed(input)];
        for layer in &self.layers {
            let next = layer.forward(states[states.len() - 1].clone(), &inputs);
            states.push(next);
        }
        if let Some(norm) = &self.final_norm {
            let last = states.pop().expect("the embeddings' state at least");
            states.push(norm.forward(last));
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
