//! GPT-2 (`GPT2LMHeadModel`) with a KV cache: pre-LayerNorm blocks, `Conv1D` weights stored
//! `[in, out]`, the LM head tied to the token embeddings, tanh GELU.
//!
//! The token embedding matrix of real GPT-2 (50257 x 768 f32 = 154 MB) is larger than WebGPU's
//! default 128 MiB storage-binding limit, so it is kept in row chunks no larger than the
//! device's limit: the lookup gathers from each chunk and the LM head concatenates the chunks'
//! logits.
//!
//! `loader.rs` holds the Hugging Face names: loading (with the chunking), export, and the
//! whole-checkpoint constructor.

mod loader;

use burn::nn::{Embedding, Linear};
use burn::prelude::*;
use burn::tensor::DType;

use super::config::{Activation, Gpt2Config};
use super::kernels::{attention, heads_into_cache, linear_activate, linear_residual};
use super::layers::{LayerNorm, VocabRows};

#[derive(Module, Debug)]
pub struct Gpt2Block {
    pub ln_1: LayerNorm,
    /// Query, key and value: `[d, 3d]`.
    pub c_attn: Linear,
    pub c_proj: Linear,
    pub ln_2: LayerNorm,
    pub c_fc: Linear,
    pub mlp_proj: Linear,
    pub n_head: usize,
    #[module(skip)]
    pub activation: Activation,
}

/// Keys and values of the tokens seen so far, per layer, in buffers of `capacity` positions
/// `[b, heads, capacity, head_dim]` (zeros past `len`). A step writes its positions into the
/// buffers in place and attends over the whole buffer with the unused positions masked, so the
/// kernels see one shape until the buffer grows (by [`CACHE_BLOCK`] positions): nothing is copied
/// per token and a GPU compiles (and tunes) once per block.
#[derive(Debug, Clone, Default)]
pub struct KvCache {
    pub layers: Vec<(Tensor<4>, Tensor<4>)>,
    len: usize,
}

/// The KV cache grows by this many positions at a time.
pub const CACHE_BLOCK: usize = 64;

impl KvCache {
    /// How many positions the cache holds.
    pub fn len(&self) -> usize {
        self.len
    }

    /// Records that the buffers now hold `len` positions (after a step wrote them).
    pub(crate) fn set_len(&mut self, len: usize) {
        self.len = len;
    }

    pub fn is_empty(&self) -> bool {
        self.len == 0
    }

    /// How many positions the buffers have room for.
    pub fn capacity(&self) -> usize {
        self.layers.first().map_or(0, |(k, _)| k.dims()[2])
    }

    /// The buffers' type: f32, or f16 for a decoder in half precision.
    pub fn dtype(&self) -> Option<DType> {
        self.layers.first().map(|(k, _)| k.dtype())
    }

    /// Makes room for `total` positions in `layers` buffers of `[b, heads, _, head_dim]` in
    /// `dtype` (the model's activations): a multiple of [`CACHE_BLOCK`], at most `limit`
    /// (unless `total` is larger).
    pub(crate) fn reserve(
        &mut self,
        total: usize,
        limit: usize,
        dims: [usize; 3],
        layers: usize,
        (device, dtype): (&Device, DType),
    ) {
        let old = self.capacity();
        let same_type = self.dtype().is_none_or(|t| t == dtype);
        if total <= old && self.layers.len() == layers && same_type {
            return;
        }
        let [b, h, dh] = dims;
        let capacity = total.next_multiple_of(CACHE_BLOCK).min(limit.max(total));
        let grow = |t: Tensor<4>| -> Tensor<4> {
            let t = super::kernels::cast_to(t, dtype);
            let more = Tensor::zeros([b, h, capacity - t.dims()[2], dh], (device, dtype));
            Tensor::cat(vec![t, more], 2)
        };
        if self.layers.len() == layers {
            self.layers = std::mem::take(&mut self.layers)
                .into_iter()
                .map(|(k, v)| (grow(k), grow(v)))
                .collect();
        } else {
            let empty = || Tensor::<4>::zeros([b, h, capacity, dh], (device, dtype));
            self.layers = (0..layers).map(|_| (empty(), empty())).collect();
            self.len = 0;
        }
    }
}

impl Gpt2Block {
    /// `cache`: this layer's key and value buffers, holding `past` positions; `mask_bias`
    /// `[1, 1, t, capacity]` hides the positions a query may not see (later ones and unused ones)
    /// with the most negative f32. `x` (the residual stream) in f32; what the products and
    /// attention read in `dtype` (f16 in half precision, [`Gpt2::activation_dtype`]).
    fn forward(
        &self,
        x: Tensor<3>,
        cache: (Tensor<4>, Tensor<4>),
        past: usize,
        mask_bias: Tensor<4>,
        dtype: DType,
    ) -> (Tensor<3>, (Tensor<4>, Tensor<4>)) {
        let dh = x.dims()[2] / self.n_head;
        let (q, k, v) = heads_into_cache(
            &self.c_attn,
            self.ln_1.forward_to(x.clone(), dtype),
            self.n_head,
            cache,
            past,
        );
        let context = attention(q, k.clone(), v.clone(), 1.0 / (dh as f64).sqrt(), mask_bias);
        let x = linear_residual(&self.c_proj, context, x, None);
        let inner = linear_activate(
            &self.c_fc,
            self.ln_2.forward_to(x.clone(), dtype),
            self.activation,
        );
        (linear_residual(&self.mlp_proj, inner, x, None), (k, v))
    }
}

#[derive(Module, Debug)]
pub struct Gpt2 {
    /// Token embeddings (= the LM head), in row chunks.
    pub wte: VocabRows,
    pub wpe: Embedding,
    pub blocks: Vec<Gpt2Block>,
    pub ln_f: LayerNorm,
    #[module(skip)]
    pub config: Gpt2Config,
}

impl Gpt2 {
    /// Runs `ids` `[b, t]` after the cached positions; returns the final hidden states
    /// (after `ln_f`) `[b, t, d]` and extends the cache.
    pub fn forward(&self, ids: Tensor<2, Int>, cache: &mut KvCache) -> Tensor<3> {
        let states = self.forward_states(ids, cache, false);
        states.into_iter().last().expect("states")
    }

    /// Every hidden state as transformers reports them: the embeddings, each block's output, and
    /// the last one after `ln_f`.
    pub fn hidden_states(&self, ids: Tensor<2, Int>) -> Vec<Tensor<3>> {
        self.forward_states(ids, &mut KvCache::default(), true)
    }

    fn forward_states(
        &self,
        ids: Tensor<2, Int>,
        cache: &mut KvCache,
        all: bool,
    ) -> Vec<Tensor<3>> {
        let [b, t] = ids.dims();
        let past = cache.len();
        let device = ids.device();
        let positions =
            Tensor::<1, Int>::arange(past as i64..(past + t) as i64, &device).reshape([1, t]);
        let dtype = self.activation_dtype();
        // The residual stream in f32 whatever the token table's type (the positions' is f32).
        let mut x = self.wte.lookup(ids, DType::F32) + self.wpe.forward(positions);
        let heads = self.config.n_head;
        let dims = [b, heads, self.config.n_embd / heads];
        cache.reserve(
            past + t,
            self.config.n_positions,
            dims,
            self.blocks.len(),
            (&device, dtype),
        );
        let capacity = cache.capacity();
        // Query i (absolute position past + i) sees keys 0..=past + i.
        let mask_bias = Tensor::<4>::zeros([1, 1, t, capacity], &device).mask_fill(
            Tensor::<2, Bool>::tril_mask([t, capacity], past as i64, &device)
                .reshape([1, 1, t, capacity]),
            f32::MIN,
        );
        let mut states = Vec::new();
        let layers = std::mem::take(&mut cache.layers);
        let mut next_cache = Vec::with_capacity(self.blocks.len());
        for (block, kv) in self.blocks.iter().zip(layers) {
            if all {
                states.push(x.clone());
            }
            let (y, kv) = block.forward(x, kv, past, mask_bias.clone(), dtype);
            next_cache.push(kv);
            x = y;
        }
        cache.layers = next_cache;
        cache.len = past + t;
        states.push(self.ln_f.forward(x));
        states
    }

    /// The type of the activations the products and attention read, the KV cache's: f16 for
    /// matrices kept so ([`super::weights::Precision`]), else f32 (the residual stream and the
    /// hidden states are f32 either way).
    pub fn activation_dtype(&self) -> DType {
        super::kernels::activation_dtype(self.wte.dtype())
    }

    /// Next-token logits `[b, t, vocab]` (f32) from final hidden states.
    pub fn logits(&self, hidden: Tensor<3>) -> Tensor<3> {
        let [b, t, d] = hidden.dims();
        self.wte
            .project(hidden.reshape([b * t, d]))
            .reshape([b, t, self.config.vocab_size])
    }

    /// Logits of the last position only: `[b, vocab]`.
    pub fn last_logits(&self, hidden: Tensor<3>) -> Tensor<2> {
        let [b, t, _] = hidden.dims();
        self.logits(hidden.narrow(1, t - 1, 1))
            .reshape([b, self.config.vocab_size])
    }
}
