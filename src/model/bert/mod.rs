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

use burn::nn::{Dropout, Embedding, Linear};
use burn::prelude::*;

pub use super::config::Pooling;
use super::config::{Activation, EncoderConfig};
use super::kernels::{attention, attention_probs, linear_activate, linear_residual, split_heads};
use super::layers::LayerNorm;

pub use heads::{ClassifierHead, HeadStyle, MaskedLm, Pooler, SequenceClassifier, TokenClassifier};
pub use loader::{init_linear, HeadInit};

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
        let dh = d / self.num_heads;
        let (q, k, v) = split_heads(&self.qkv, x.clone(), self.num_heads);
        let scale = 1.0 / (dh as f64).sqrt();
        let context = if x.device().is_autodiff() {
            // Training: the attention dropout sits between the softmax and the values.
            let probs = attention_probs(q.matmul(k.swap_dims(2, 3)), scale, mask_bias);
            let probs = self.attn_dropout.forward(probs);
            probs.matmul(v).swap_dims(1, 2).reshape([b, t, d])
        } else {
            attention(q, k, v, scale, mask_bias)
        };
        let x = self.attn_norm.forward(linear_residual(
            &self.attn_out,
            context,
            x,
            Some(&self.dropout),
        ));
        let inner = linear_activate(&self.ffn_in, x.clone(), self.activation);
        let x = linear_residual(&self.ffn_out, inner, x, Some(&self.dropout));
        self.ffn_norm.forward(x)
    }
}

/// The encoder body: embeddings and transformer layers (BERT's pooler is kept by the heads).
#[derive(Module, Debug)]
pub struct Encoder {
    pub word_embeddings: Embedding,
    pub position_embeddings: Embedding,
    /// BERT's; DistilBERT has none.
    pub token_type_embeddings: Option<Embedding>,
    pub embeddings_norm: LayerNorm,
    pub embeddings_dropout: Dropout,
    pub layers: Vec<EncoderLayer>,
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
        let positions = self.positions(&input.input_ids);
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
