//! Llama-family decoders (`LlamaForCausalLM`, SmolLM2's too; `Qwen2ForCausalLM`,
//! `Qwen3ForCausalLM`) with the same KV cache as GPT-2: RMSNorm before attention and before the
//! SwiGLU MLP, rotary positions, grouped-query attention (fewer key/value heads than query
//! heads), Qwen2's query/key/value biases, Qwen3's per-head RMSNorm of queries and keys, and the
//! LM head tied to the token embeddings or its own.
//!
//! Hugging Face names: `model.embed_tokens`, `model.layers.{i}.input_layernorm`,
//! `self_attn.{q,k,v,o}_proj`, `self_attn.{q,k}_norm`, `post_attention_layernorm`,
//! `mlp.{gate,up,down}_proj`, `model.norm`, `lm_head`.

use burn::module::Param;
use burn::nn::Linear;
use burn::prelude::*;
use burn::tensor::DType;

use super::config::LlamaConfig;
use super::gpt2::KvCache;
use super::kernels::{self, attention, linear, linear_residual};
use super::layers::{rope_tables_scaled, rotary, Rope, VocabRows};
use super::weights::{Precision, WeightFiles, WeightPath, Weights};
use super::ModelError;

/// `x / sqrt(mean(x²) + eps) * weight` over the last dimension.
#[derive(Module, Debug)]
pub struct RmsNorm {
    pub weight: Param<Tensor<1>>,
    #[module(skip)]
    pub eps: f64,
}

impl RmsNorm {
    pub fn forward<const D: usize>(&self, x: Tensor<D>) -> Tensor<D> {
        kernels::rms_norm(x, self.weight.val(), self.eps)
    }

    /// [`RmsNorm::forward`] written in `dtype` ([`kernels::norm_into`]).
    pub fn forward_to<const D: usize>(&self, x: Tensor<D>, dtype: DType) -> Tensor<D> {
        kernels::norm_into(x, self.weight.val(), None, self.eps, dtype)
    }
}

#[derive(Module, Debug)]
pub struct LlamaLayer {
    pub input_norm: RmsNorm,
    pub q_proj: Linear,
    pub k_proj: Linear,
    pub v_proj: Linear,
    pub o_proj: Linear,
    pub q_norm: Option<RmsNorm>,
    pub k_norm: Option<RmsNorm>,
    pub post_norm: RmsNorm,
    pub gate_proj: Linear,
    pub up_proj: Linear,
    pub down_proj: Linear,
    pub heads: usize,
    pub kv_heads: usize,
    pub head_dim: usize,
}

/// `[b, t, n * dh]` as `[b, n, t, dh]`, after `norm` (Qwen3's per-head RMSNorm) where there is
/// one: it normalises each head's last dimension, taken while the heads are still contiguous.
fn heads(x: Tensor<3>, n: usize, dh: usize, norm: Option<&RmsNorm>) -> Tensor<4> {
    let [b, t, _] = x.dims();
    let x = x.reshape([b, t, n, dh]);
    let x = match norm {
        Some(norm) => norm.forward(x),
        None => x,
    };
    x.swap_dims(1, 2)
}

impl LlamaLayer {
    /// `cache`: this layer's key and value buffers `[b, kv_heads, capacity, dh]` holding `past`
    /// positions; `rope`: the (cos, sin) tables of the positions `past..past + t`; `mask_bias`
    /// `[1, 1, t, capacity]` hides later and unused positions. `x` (the residual stream) in
    /// f32; what the products and attention read in `dtype` ([`Llama::activation_dtype`]).
    fn forward(
        &self,
        x: Tensor<3>,
        cache: (Tensor<4>, Tensor<4>),
        past: usize,
        rope: &Rope,
        mask_bias: Tensor<4>,
        dtype: DType,
    ) -> (Tensor<3>, (Tensor<4>, Tensor<4>)) {
        let [b, t, _] = x.dims();
        let dh = self.head_dim;
        let h = self.input_norm.forward_to(x.clone(), dtype);
        let q = heads(
            linear(&self.q_proj, h.clone()),
            self.heads,
            dh,
            self.q_norm.as_ref(),
        );
        let k = heads(
            linear(&self.k_proj, h.clone()),
            self.kv_heads,
            dh,
            self.k_norm.as_ref(),
        );
        let v = heads(linear(&self.v_proj, h), self.kv_heads, dh, None);
        let q = rotary(q, rope);
        let k = rotary(k, rope);
        let (kb, vb) = cache;
        let range = [0..b, 0..self.kv_heads, past..past + t, 0..dh];
        let kb = kb.slice_assign(range.clone(), k);
        let vb = vb.slice_assign(range, v);
        // Grouped-query attention: the key/value heads as they are (`attention` repeats them
        // only where its kernel does not read them by group).
        let context = attention(
            q,
            kb.clone(),
            vb.clone(),
            1.0 / (dh as f64).sqrt(),
            mask_bias,
        );
        let x = linear_residual(&self.o_proj, context, x, None);
        let m = self.post_norm.forward_to(x.clone(), dtype);
        let gated = kernels::gated_linear(&self.up_proj, m.clone(), linear(&self.gate_proj, m));
        (linear_residual(&self.down_proj, gated, x, None), (kb, vb))
    }
}

#[derive(Module, Debug)]
pub struct Llama {
    /// Token embeddings `[vocab, d]`, in row chunks that fit a storage binding.
    pub embed_tokens: VocabRows,
    pub layers: Vec<LlamaLayer>,
    pub norm: RmsNorm,
    /// `[vocab, d]` as stored, in row chunks; `None` when tied to the token embeddings.
    pub lm_head: Option<VocabRows>,
    #[module(skip)]
    pub config: LlamaConfig,
}

impl Llama {
    pub const PREFIX: &'static str = "model.";

    /// Runs `ids` `[b, t]` after the cached positions; returns the final hidden states (after
    /// the last norm) `[b, t, d]` and extends the cache.
    pub fn forward(&self, ids: Tensor<2, Int>, cache: &mut KvCache) -> Tensor<3> {
        let [b, t] = ids.dims();
        let past = cache.len();
        let device = ids.device();
        let c = &self.config;
        let dtype = self.activation_dtype();
        cache.reserve(
            past + t,
            c.max_positions,
            [b, c.num_kv_heads, c.head_dim],
            self.layers.len(),
            (&device, dtype),
        );
        let capacity = cache.capacity();
        // Query i (absolute position past + i) sees keys 0..=past + i.
        let mask_bias = Tensor::<4>::zeros([1, 1, t, capacity], &device).mask_fill(
            Tensor::<2, Bool>::tril_mask([t, capacity], past as i64, &device)
                .reshape([1, 1, t, capacity]),
            f32::MIN,
        );
        let rope = rope_tables_scaled(c.rope_theta, &c.rope_scaling, c.head_dim, past, t, &device);
        // The residual stream in f32 whatever the table's type.
        let mut x = self.embed_tokens.lookup(ids, DType::F32);
        let layers = std::mem::take(&mut cache.layers);
        let mut next = Vec::with_capacity(self.layers.len());
        for (layer, kv) in self.layers.iter().zip(layers) {
            let (y, kv) = layer.forward(x, kv, past, &rope, mask_bias.clone(), dtype);
            next.push(kv);
            x = y;
        }
        cache.layers = next;
        cache.set_len(past + t);
        self.norm.forward(x)
    }

    /// The type of the activations the products and attention read, the KV cache's: f16 for
    /// matrices kept so ([`super::weights::Precision`]), else f32 (the residual stream and the
    /// hidden states are f32 either way).
    pub fn activation_dtype(&self) -> DType {
        kernels::activation_dtype(self.embed_tokens.dtype())
    }

    /// Next-token logits `[b, t, vocab]` (f32) from final hidden states.
    pub fn logits(&self, hidden: Tensor<3>) -> Tensor<3> {
        let [b, t, d] = hidden.dims();
        let head = self.lm_head.as_ref().unwrap_or(&self.embed_tokens);
        head.project(hidden.reshape([b * t, d]))
            .reshape([b, t, self.config.vocab_size])
    }

    /// Logits of the last position only: `[b, vocab]`.
    pub fn last_logits(&self, hidden: Tensor<3>) -> Tensor<2> {
        let [b, t, _] = hidden.dims();
        self.logits(hidden.narrow(1, t - 1, 1))
            .reshape([b, self.config.vocab_size])
    }

    fn load(w: &Weights, c: &LlamaConfig, max_binding_bytes: u64, precision: Precision) -> Self {
        // On a GPU that computes in f16, matrices in f16 (with `Precision::Auto`); on the CPU
        // each output's weights stay one row, for decoding's dot products.
        w.keep_half(precision);
        w.keep_output_rows();
        let d = c.hidden_size;
        let (q, kv) = (c.num_heads * c.head_dim, c.num_kv_heads * c.head_dim);
        let norm = |at: WeightPath, n: usize| RmsNorm {
            weight: Param::from_tensor(at.tensor("weight", [n])),
            eps: c.rms_norm_eps,
        };
        let layers = (0..c.num_layers)
            .map(|i| {
                let at = w.pp("layers").pp(i);
                let attn = at.pp("self_attn");
                LlamaLayer {
                    input_norm: norm(at.pp("input_layernorm"), d),
                    q_proj: attn.pp("q_proj").linear_with(d, q, c.qkv_bias),
                    k_proj: attn.pp("k_proj").linear_with(d, kv, c.qkv_bias),
                    v_proj: attn.pp("v_proj").linear_with(d, kv, c.qkv_bias),
                    o_proj: attn.pp("o_proj").linear_with(q, d, c.o_bias),
                    q_norm: c.qk_norm.then(|| norm(attn.pp("q_norm"), c.head_dim)),
                    k_norm: c.qk_norm.then(|| norm(attn.pp("k_norm"), c.head_dim)),
                    post_norm: norm(at.pp("post_attention_layernorm"), d),
                    gate_proj: at.pp("mlp.gate_proj").linear_with(
                        d,
                        c.intermediate_size,
                        c.mlp_bias,
                    ),
                    up_proj: at
                        .pp("mlp.up_proj")
                        .linear_with(d, c.intermediate_size, c.mlp_bias),
                    down_proj: at.pp("mlp.down_proj").linear_with(
                        c.intermediate_size,
                        d,
                        c.mlp_bias,
                    ),
                    heads: c.num_heads,
                    kv_heads: c.num_kv_heads,
                    head_dim: c.head_dim,
                }
            })
            .collect();
        let table = [c.vocab_size, d];
        let lm_head = (!c.tie_word_embeddings).then(|| {
            w.pp("lm_head")
                .vocab_rows("weight", table, max_binding_bytes)
        });
        Self {
            embed_tokens: w
                .pp("embed_tokens")
                .vocab_rows("weight", table, max_binding_bytes),
            layers,
            norm: norm(w.pp("norm"), d),
            lm_head,
            config: c.clone(),
        }
    }

    /// A `*ForCausalLM` checkpoint, reporting every missing, mis-shaped or unexpected tensor;
    /// the token embeddings (and an untied head) in row chunks of at most `max_binding_bytes`
    /// (`u64::MAX` where there is no limit), in `precision` on a GPU.
    pub fn from_checkpoint<'a>(
        bytes: impl Into<WeightFiles<'a>>,
        config: &LlamaConfig,
        max_binding_bytes: u64,
        device: &Device,
        precision: Precision,
    ) -> Result<Self, ModelError> {
        Weights::load(bytes, Self::PREFIX, config.parameters(), device, |w| {
            Self::load(w, config, max_binding_bytes, precision)
        })
    }
}
