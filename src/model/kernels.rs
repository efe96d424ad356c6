//! The engine's own GPU kernels, where burn composes many launches or picks a slow kernel for the
//! shape: layer norm (burn: two reductions and seven element-wise kernels), the attention softmax
//! with its scale and mask, decoding's whole attention, the bias with GELU/ReLU or with the
//! residual, the query/key/value split written into the KV cache, a matmul for few rows, and
//! greedy decoding's argmax. Measured on an H200 (`bench_gpu probe`, README): cutting launches
//! 4x alone moved decoding from 52 to 58 tokens/s; the row matmul (burn's tiled matmul takes
//! ~150 µs on one row) and the argmax (2 ms over 50,257 logits) took it to ~236.
//!
//! Each function here computes the same as the composition it replaces, and uses the kernel only
//! where one applies: an f32 tensor on burn's cubecl backend (WebGPU in the browser, burn-wgpu
//! natively with the `gpu` feature). Outside autodiff the inference kernels in `cube`; inside
//! training's graph on a GPU the kernels of `cube::train`, each with its backward kernel (layer
//! norm, the attention from the fused query/key/value output, the linear layers' bias, activation,
//! dropout and residual, AdamW). On the CPU backend the entry points go to `flex`'s kernels (in
//! training's graph too, with their own backward steps); burn's fusion builds take the composition.
//! The wasm tests `fused_kernels_on_webgpu_match_the_composed_ops` and
//! `gpu_kernels_in_webgpu_training_give_burns_outputs_and_gradients` compare them with burn's
//! composition on the CPU.
//!
//! The inference kernels a decoder uses (norms, rotary positions, the query/key/value split into
//! the KV cache, decoding's attention, the row and tiled products) take their activations in f32
//! or f16 (a decoder in half precision, [`activation_dtype`]): they read f16 as f32, compute in
//! f32 and write their output's type, which may differ from the input's (a norm writing f16 for
//! the products from the f32 residual stream, an LM head writing f32 logits). Where a kernel
//! declines f16 activations, the composition runs on f32 copies.
//!
//! Natively, `TUNELAB_FUSED_KERNELS=0` turns them off, so that `examples/bench_gpu.rs` can measure
//! what they gain in one binary.

use burn::nn::{Dropout, Embedding, Linear};
use burn::prelude::*;
use burn::tensor::DType;
use burn::tensor::{activation, module};

use super::config::Activation;
use super::flex;

pub use super::flex::composed;

/// Layer norm over the last dimension: `(x - mean) / sqrt(var + eps) * gamma + beta`.
pub fn layer_norm<const D: usize>(
    x: Tensor<D>,
    gamma: Tensor<1>,
    beta: Tensor<1>,
    eps: f64,
) -> Tensor<D> {
    #[cfg(feature = "webgpu")]
    if let Some(out) = cube::layer_norm(&x, &gamma, &beta, eps) {
        return out;
    }
    if let Some(dtype) = half_type(&x) {
        return layer_norm(x.cast(DType::F32), gamma, beta, eps).cast(dtype);
    }
    #[cfg(feature = "webgpu")]
    let x = match cube::train::layer_norm(x, &gamma, &beta, eps) {
        Ok(out) => return out,
        Err(x) => x,
    };
    let x = match flex::layer_norm(x, &gamma, &beta, eps) {
        Ok(out) => return out,
        Err(x) => x,
    };
    let x = match flex::tracked::layer_norm(x, &gamma, &beta, eps) {
        Ok(out) => return out,
        Err(x) => x,
    };
    burn::tensor::module::layer_norm(x, gamma, Some(beta), eps)
}

/// [`layer_norm`] (with `beta`) or [`rms_norm`] (without) written in `dtype` whatever `x`'s: a
/// decoder in half precision keeps its residual stream in f32 and gives its products their
/// input in f16 (on a GPU one kernel, where it applies; else the norm, then a cast).
pub fn norm_into<const D: usize>(
    x: Tensor<D>,
    gamma: Tensor<1>,
    beta: Option<Tensor<1>>,
    eps: f64,
    dtype: DType,
) -> Tensor<D> {
    #[cfg(feature = "webgpu")]
    if let Some(out) = cube::norm(&x, &gamma, beta.as_ref(), eps, Some(dtype)) {
        return out;
    }
    let y = match beta {
        Some(beta) => layer_norm(x, gamma, beta, eps),
        None => rms_norm(x, gamma, eps),
    };
    cast_to(y, dtype)
}

/// RMSNorm over the last dimension (Llama's, Qwen's): `x / sqrt(mean(x²) + eps) * weight`; on a
/// GPU one kernel (the composition launches seven).
pub fn rms_norm<const D: usize>(x: Tensor<D>, weight: Tensor<1>, eps: f64) -> Tensor<D> {
    #[cfg(feature = "webgpu")]
    if let Some(out) = cube::rms_norm(&x, &weight, eps) {
        return out;
    }
    if let Some(dtype) = half_type(&x) {
        return rms_norm(x.cast(DType::F32), weight, eps).cast(dtype);
    }
    let x = match flex::rms_norm(x, &weight, eps) {
        Ok(out) => return out,
        Err(x) => x,
    };
    let scale = x
        .clone()
        .square()
        .mean_dim(D - 1)
        .add_scalar(eps)
        .sqrt()
        .recip();
    x * scale * weight.unsqueeze()
}

/// Rotary positions on `x` `[b, heads, t, dh]` (any strides) with the tables `cos`, `sin`
/// `[1, 1, t, dh]`: `x * cos + rotate_half(x) * sin` (`rotate_half`: the halves of the last
/// dimension swapped, the second negated). On a GPU one kernel (the composition launches six).
pub fn rotary(x: Tensor<4>, cos: &Tensor<4>, sin: &Tensor<4>) -> Tensor<4> {
    #[cfg(feature = "webgpu")]
    if let Some(out) = cube::rotary(&x, cos, sin) {
        return out;
    }
    if let Some(dtype) = half_type(&x) {
        return rotary(x.cast(DType::F32), cos, sin).cast(dtype);
    }
    let half = x.dims()[3] / 2;
    let first = x.clone().narrow(3, 0, half);
    let second = x.clone().narrow(3, half, half);
    let rotated = Tensor::cat(vec![second.neg(), first], 3);
    x * cos.clone() + rotated * sin.clone()
}

/// `x`'s type when it is not f32: activations in half precision ([`activation_dtype`]) that a
/// kernel declined, which the composition then takes in f32 (burn's ops would mix the two).
fn half_type<const D: usize>(x: &Tensor<D>) -> Option<DType> {
    (x.dtype() != DType::F32).then(|| x.dtype())
}

/// The type of a decoder's activations that only products and attention read (a norm's output,
/// the queries, keys and values, the KV cache, the attention's output, the MLP's inner
/// activations) for matrices in `weights`' type: f16 where they are (a GPU that computes in it,
/// [`super::weights::Precision`]) and the engine's kernels are on, which read f16 as f32, sum,
/// normalise and take softmaxes in f32, and write f16; else f32. The residual stream between
/// the blocks stays f32: rounded at every block it doubled the error on the golden decoders'
/// logits (0.9–1.3e-2 with f16 weights alone, 1.2–2.5e-2 with it in f16 too, on lavapipe).
pub fn activation_dtype(weights: DType) -> DType {
    if weights == DType::F16 && fused_kernels_enabled() {
        DType::F16
    } else {
        DType::F32
    }
}

/// `t` in `dtype` (no launch where it is already).
pub fn cast_to<const D: usize>(t: Tensor<D>, dtype: DType) -> Tensor<D> {
    if t.dtype() == dtype {
        t
    } else {
        t.cast(dtype)
    }
}

/// `t` in f32: a weight kept in f16 ([`super::weights::Weights::keep_half`]) converted for the
/// ops that take f32 only; an f32 tensor as it is.
pub fn as_f32<const D: usize>(t: Tensor<D>) -> Tensor<D> {
    if t.dtype() == DType::F32 {
        t
    } else {
        t.cast(DType::F32)
    }
}

/// Each key/value head repeated for the query heads that share it: `[b, kv, n, dh]` ->
/// `[b, kv * groups, n, dh]` (transformers' `repeat_kv`, for grouped-query attention).
pub fn repeat_kv(x: Tensor<4>, groups: usize) -> Tensor<4> {
    if groups <= 1 {
        return x;
    }
    let [b, kv, n, dh] = x.dims();
    x.unsqueeze_dim::<5>(2)
        .expand([b, kv, groups, n, dh])
        .reshape([b, kv * groups, n, dh])
}

/// Attention probabilities: `softmax(scores * scale + bias)` over the last dimension, `scores`
/// `[b, h, t, n]`, `bias` broadcast to it (`[b, 1, 1, n]` for padding, `[1, 1, t, n]` for a
/// causal mask; a large negative where a key is hidden).
pub fn attention_probs(scores: Tensor<4>, scale: f64, bias: Tensor<4>) -> Tensor<4> {
    #[cfg(feature = "webgpu")]
    if let Some(out) = cube::attention_probs(&scores, scale, &bias) {
        return out;
    }
    #[cfg(feature = "webgpu")]
    let scores = match cube::train::attention_probs(scores, scale, &bias) {
        Ok(out) => return out,
        Err(scores) => scores,
    };
    let scores = match flex::attention_probs(scores, scale, &bias) {
        Ok(out) => return out,
        Err(scores) => scores,
    };
    let scores = match flex::tracked::attention_probs(scores, scale, &bias) {
        Ok(out) => return out,
        Err(scores) => scores,
    };
    activation::softmax(scores.mul_scalar(scale) + bias, 3)
}

/// `e`'s rows at `ids` `[b, t]` (burn's `Embedding::forward`), in training on the CPU by the
/// engine's op ([`flex::tracked::embedding`]).
pub fn embedding(e: &Embedding, ids: Tensor<2, Int>) -> Tensor<3> {
    match flex::tracked::embedding(e.weight.val(), &ids) {
        Ok(out) => out,
        Err(_) => e.forward(ids),
    }
}

/// Dropout as burn's `Dropout::forward` (the identity outside training), on the CPU in training
/// by the engine's one-pass op ([`flex::tracked::dropout`]).
pub fn dropout<const D: usize>(d: &Dropout, x: Tensor<D>) -> Tensor<D> {
    if !d.training.is_enabled() || !x.device().is_autodiff() || d.prob == 0.0 {
        return x;
    }
    #[cfg(feature = "webgpu")]
    let x = match cube::train::epilogue(x, None, None, d.prob, None) {
        Ok(out) => return out,
        Err(x) => x,
    };
    match flex::tracked::dropout(x, d.prob) {
        Ok(out) => out,
        Err(x) => d.forward(x),
    }
}

/// A SwiGLU's `silu(gate) * up(x)`: on a GPU the up projection's row kernel multiplies by the
/// activated gate as it writes (one launch, where burn's SiLU and the product took three).
pub fn gated_linear<const D: usize>(up: &Linear, x: Tensor<D>, gate: Tensor<D>) -> Tensor<D> {
    #[cfg(feature = "webgpu")]
    if cube::applies(&x) {
        let bias = up.bias.as_ref().map(|b| b.val());
        if let Some(out) = cube::gated_rows(&x, &up.weight.val(), bias.as_ref(), &gate) {
            return out;
        }
    }
    burn::tensor::activation::silu(gate) * linear(up, x)
}

/// `residual + dropout(lin(x))`: on a GPU the matmul, then the bias and the residual in one
/// kernel (the kernels run only outside training, where dropout is the identity).
pub fn linear_residual<const D: usize>(
    lin: &Linear,
    x: Tensor<D>,
    residual: Tensor<D>,
    dropout: Option<&Dropout>,
) -> Tensor<D> {
    let x = match fused_linear(lin, x, Some(&residual), None) {
        Ok(out) => return out,
        Err(x) => x,
    };
    let x = match graph_linear(lin, x, Some(&residual), None, dropout) {
        Ok(out) => return out,
        Err(x) => x,
    };
    let y = plain_linear(lin, x);
    residual
        + match dropout {
            Some(d) => self::dropout(d, y),
            None => y,
        }
}

/// `act(lin(x))`: on a GPU the matmul, then the bias and the activation in one kernel.
pub fn linear_activate<const D: usize>(lin: &Linear, x: Tensor<D>, act: Activation) -> Tensor<D> {
    let x = match fused_linear(lin, x, None, Some(act)) {
        Ok(out) => return out,
        Err(x) => x,
    };
    match graph_linear(lin, x, None, Some(act), None) {
        Ok(out) => out,
        Err(x) => activate(plain_linear(lin, x), act),
    }
}

/// `act(lin(x))` (`lin(x)` without `act`) written in `dtype` whatever `x`'s type: an encoder in
/// half precision writes its queries, keys and values and its feed-forward block's inner
/// activations in f16 from its f32 residual stream. On a GPU one kernel where it applies, else
/// the layer, then a cast.
pub fn linear_to<const D: usize>(
    lin: &Linear,
    x: Tensor<D>,
    act: Option<Activation>,
    dtype: DType,
) -> Tensor<D> {
    #[cfg(feature = "webgpu")]
    if x.dtype() != dtype && cube::applies(&x) {
        let bias = lin.bias.as_ref().map(|b| b.val());
        if let Some(out) = cube::linear_rows_into(&x, &lin.weight.val(), bias.as_ref(), act, dtype)
        {
            return out;
        }
    }
    let y = match act {
        Some(a) => linear_activate(lin, x, a),
        None => linear(lin, x),
    };
    cast_to(y, dtype)
}

/// `act(lin(x))` or `lin(x) + residual` where the engine's kernels apply: on a GPU
/// [`matmul_rows`] (a weight kept in f16 read as it is), then the bias with the activation or
/// the residual in one kernel; on the CPU [`cpu_linear`]. `x` back elsewhere (training).
#[allow(clippy::result_large_err)] // gives its input back
fn fused_linear<const D: usize>(
    lin: &Linear,
    x: Tensor<D>,
    residual: Option<&Tensor<D>>,
    act: Option<Activation>,
) -> Result<Tensor<D>, Tensor<D>> {
    #[cfg(feature = "webgpu")]
    if cube::applies(&x) {
        let bias = lin.bias.as_ref().map(|b| b.val());
        if let Some(out) = cube::linear_rows(&x, &lin.weight.val(), bias.as_ref(), residual, act) {
            return Ok(out);
        }
        if let Some(dtype) = half_type(&x) {
            // Half-precision activations the kernel declined: the rest in f32, the output in
            // the residual's type (a decoder's residual stream, f32) or else in `x`'s.
            let dtype = residual.map_or(dtype, |r| r.dtype());
            let residual = residual.map(|r| cast_to(r.clone(), DType::F32));
            return fused_linear(lin, x.cast(DType::F32), residual.as_ref(), act)
                .map(|y| y.cast(dtype))
                .map_err(|x| x.cast(dtype));
        }
        let y = matmul_rows(x, lin.weight.val());
        let y = match &lin.bias {
            Some(bias) => match cube::add_bias(&y, &bias.val(), residual, act) {
                Some(out) => return Ok(out),
                None => y + bias.val().unsqueeze(),
            },
            None => y,
        };
        let y = match act {
            Some(a) => activate(y, a),
            None => y,
        };
        return Ok(match residual {
            Some(r) => r.clone() + y,
            None => y,
        });
    }
    cpu_linear(lin, x, residual, act)
}

/// In training's graph on a GPU, `residual + dropout(act(lin(x)))` (each part optional): one
/// matrix product of all the rows (burn's, with its backward), then the rest in one kernel
/// ([`cube::train::epilogue`]). `x` back elsewhere.
#[allow(clippy::result_large_err)] // gives its input back
fn graph_linear<const D: usize>(
    lin: &Linear,
    x: Tensor<D>,
    residual: Option<&Tensor<D>>,
    act: Option<Activation>,
    dropout: Option<&Dropout>,
) -> Result<Tensor<D>, Tensor<D>> {
    #[cfg(feature = "webgpu")]
    {
        let w = lin.weight.val();
        let [k, n] = w.dims();
        let mut dims = x.dims();
        let bias = lin.bias.as_ref().map(|b| b.val());
        let prob = dropout
            .filter(|d| d.training.is_enabled())
            .map_or(0.0, |d| d.prob);
        if dims[D - 1] != k
            || w.dtype() != DType::F32
            || !cube::train::epilogue_fits(&x, bias.as_ref(), prob, residual, n)
        {
            return Err(x);
        }
        let rows = dims[..D - 1].iter().product::<usize>();
        dims[D - 1] = n;
        let x = x.reshape([rows, k]);
        let y = match cube::train::matmul(&x, &w) {
            Some(y) => y,
            None => x.matmul(w),
        }
        .reshape(dims);
        Ok(cube::train::epilogue(y, bias.as_ref(), act, prob, residual)
            .unwrap_or_else(|_| unreachable!("epilogue_fits said the kernel applies")))
    }
    #[cfg(not(feature = "webgpu"))]
    {
        let _ = (lin, residual, act, dropout);
        Err(x)
    }
}

/// On the CPU, `act(lin(x))` or `lin(x) + residual` as one matmul over all rows, then the bias
/// with the activation or the residual in one pass ([`flex::add_bias`]); `x` back where the CPU
/// kernels do not apply (another backend, training).
#[allow(clippy::result_large_err)] // gives its input back
fn cpu_linear<const D: usize>(
    lin: &Linear,
    x: Tensor<D>,
    residual: Option<&Tensor<D>>,
    act: Option<Activation>,
) -> Result<Tensor<D>, Tensor<D>> {
    if !flex::applies(&x) {
        return Err(x);
    }
    let Some(bias) = &lin.bias else {
        // A linear without bias (ModernBERT's): the one product, then the activation or the
        // residual.
        let y = rows_times(x, lin.weight.val());
        let y = match act {
            Some(a) => activate(y, a),
            None => y,
        };
        return Ok(match residual {
            Some(r) => r.clone() + y,
            None => y,
        });
    };
    let y = rows_times(x, lin.weight.val());
    Ok(match flex::add_bias(y, &bias.val(), residual, act) {
        Ok(out) => out,
        Err(y) => {
            let y = y + bias.val().unsqueeze();
            let y = match act {
                Some(a) => activate(y, a),
                None => y,
            };
            match residual {
                Some(r) => r.clone() + y,
                None => y,
            }
        }
    })
}

/// `x` `[.., k]` times `w` `[k, n]` as one matrix product of all the rows: burn's `linear` makes
/// a batch of one product per leading index and copies a transposed weight for it at every call.
fn rows_times<const D: usize>(x: Tensor<D>, w: Tensor<2>) -> Tensor<D> {
    let mut dims = x.dims();
    let k = dims[D - 1];
    let rows = dims[..D - 1].iter().product::<usize>();
    dims[D - 1] = w.dims()[1];
    let x = x.reshape([rows, k]);
    // In wasm the engine's packed product beats the gemm crate's `simd128` kernels (1.2-1.3x at
    // the encoder's shapes: `scripts/bench.sh wasm`), the weight packed once and kept;
    // natively gemm's AVX2 kernels win, and on a few rows (decoding) a packed copy of each
    // weight would cost memory for little.
    #[cfg(target_arch = "wasm32")]
    if rows >= PACKED_MIN_ROWS {
        if let Some(y) = flex::matmul_weight(&x, &w) {
            return y.reshape(dims);
        }
    }
    if let Some(y) = flex::matmul_transposed_weight(&x, &w) {
        return y.reshape(dims);
    }
    x.matmul(w).reshape(dims)
}

/// From this many rows on, a matmul in wasm takes the engine's packed product.
#[cfg(target_arch = "wasm32")]
const PACKED_MIN_ROWS: usize = 16;

/// `lin(x)`; on the CPU the matmul, then the bias added in place; on a GPU [`matmul_rows`]
/// (a weight kept in f16 read as it is), then the bias.
pub fn linear<const D: usize>(lin: &Linear, x: Tensor<D>) -> Tensor<D> {
    match fused_linear(lin, x, None, None) {
        Ok(out) => out,
        Err(x) => plain_linear(lin, x),
    }
}

/// `lin(x)` where the fused kernels do not apply: in training on the CPU the engine's op
/// ([`flex::tracked::linear`]), elsewhere burn's.
pub fn plain_linear<const D: usize>(lin: &Linear, x: Tensor<D>) -> Tensor<D> {
    let x = match graph_linear(lin, x, None, None, None) {
        Ok(out) => return out,
        Err(x) => x,
    };
    let Some(bias) = &lin.bias else {
        return lin.forward(x);
    };
    match flex::tracked::linear(x, lin.weight.val(), bias.val()) {
        Ok(out) => out,
        Err(x) => lin.forward(x),
    }
}

/// Attention of `q` `[b, h, t, dh]` over `k`, `v` `[b, h / groups, n, dh]` (grouped-query
/// attention: each key/value head serves `groups` query heads) with `bias` broadcast to
/// `[b, h, t, n]`: `softmax(q kᵀ * scale + bias) v`, returned as `[b, t, h * dh]` (heads merged).
/// On a GPU one kernel does it all, reading each key/value head for its group: for few queries
/// (decoding) a cube per query, its units over the keys; for more (a prompt, an encoder's
/// rotary heads) a unit per query with an online softmax (natively `TUNELAB_QKV_ATTENTION=0`
/// keeps those as below). Elsewhere the heads are repeated ([`repeat_kv`]) and two matmuls go
/// around [`attention_probs`].
pub fn attention(
    q: Tensor<4>,
    k: Tensor<4>,
    v: Tensor<4>,
    scale: f64,
    bias: Tensor<4>,
) -> Tensor<3> {
    let [b, h, t, dh] = q.dims();
    #[cfg(feature = "webgpu")]
    if t <= FUSED_ATTENTION_MAX_QUERIES {
        if let Some(out) = cube::attention(&q, &k, &v, scale, &bias) {
            return out;
        }
    } else if let Some(out) = cube::attention_rows(&q, &k, &v, scale, &bias) {
        return out;
    }
    // Half-precision activations: the products and softmax below in f32 (burn's matmul would
    // sum in f16).
    if let Some(dtype) = half_type(&q) {
        let f32 = |x: Tensor<4>| cast_to(x, DType::F32);
        return attention(f32(q), f32(k), f32(v), scale, bias).cast(dtype);
    }
    let groups = h / k.dims()[1].max(1);
    let (k, v) = (repeat_kv(k, groups), repeat_kv(v, groups));
    if let Some(out) = flex::attention(&q, &k, &v, scale, &bias) {
        return out;
    }
    let probs = attention_probs(q.matmul(k.swap_dims(2, 3)), scale, bias);
    probs.matmul(v).swap_dims(1, 2).reshape([b, t, h * dh])
}

/// Self-attention in training's graph from `qkv` `[b, t, 3d]` (a layer's fused query/key/value
/// output, biases added): `dropout(softmax(q kᵀ * scale + bias)) v` per head, heads merged to
/// `[b, t, d]`. On a GPU one kernel forward and two backward ([`cube::train::qkv_attention`]);
/// `qkv` back elsewhere (the CPU, outside training), for [`split_qkv`] and the composition.
#[allow(clippy::result_large_err)] // gives its input back
pub fn qkv_attention(
    qkv: Tensor<3>,
    heads: usize,
    scale: f64,
    bias: &Tensor<4>,
    dropout: &Dropout,
) -> Result<Tensor<3>, Tensor<3>> {
    #[cfg(feature = "webgpu")]
    {
        let prob = if dropout.training.is_enabled() {
            dropout.prob
        } else {
            0.0
        };
        cube::train::qkv_attention(qkv, heads, scale, bias, prob)
    }
    #[cfg(not(feature = "webgpu"))]
    {
        let _ = (heads, scale, bias, dropout);
        Err(qkv)
    }
}

/// Self-attention outside training from `qkv` `[b, t, 3d]` (a layer's fused query/key/value
/// output, biases added): `softmax(q kᵀ * scale + bias) v` per head, heads merged to `[b, t, d]`,
/// `bias` broadcast to `[b, heads, t, t]`. On a GPU one kernel reading the heads where they lie
/// (an encoder's attention was the head split, two matmuls around the probabilities kernel and
/// the merge of the heads: five launches and a `[b, heads, t, t]` matrix); `qkv` back elsewhere
/// (the CPU, training), for [`split_qkv`] and [`attention`].
#[allow(clippy::result_large_err)] // gives its input back
pub fn self_attention(
    qkv: Tensor<3>,
    heads: usize,
    scale: f64,
    bias: &Tensor<4>,
) -> Result<Tensor<3>, Tensor<3>> {
    #[cfg(feature = "webgpu")]
    if let Some(out) = cube::qkv_attention(&qkv, heads, scale, bias) {
        return Ok(out);
    }
    let _ = (heads, scale, bias);
    Err(qkv)
}

/// Whether [`self_attention`] is worth asking for: the fused kernels on (natively
/// `TUNELAB_QKV_ATTENTION=0` keeps an encoder's attention as split heads and [`attention`], for
/// the benchmark's comparison). Its kernel runs on a GPU only.
pub fn self_attention_enabled() -> bool {
    #[cfg(feature = "webgpu")]
    return fused_kernels_enabled() && cube::qkv_attention_enabled();
    #[cfg(not(feature = "webgpu"))]
    false
}

/// Queries, keys and values `[b, heads, t, dh]` from `lin` (query, key and value fused, `[d, 3d]`)
/// applied to `x` `[b, t, d]`, the keys and values written into the cache buffers `cache`
/// `[b, heads, capacity, dh]` at positions `past..past + t`. Returns the queries and the updated
/// buffers. On a GPU the matmul, then one kernel that adds the bias, splits the heads and writes
/// the cache in place.
pub fn heads_into_cache(
    lin: &Linear,
    x: Tensor<3>,
    heads: usize,
    cache: (Tensor<4>, Tensor<4>),
    past: usize,
) -> (Tensor<4>, Tensor<4>, Tensor<4>) {
    #[cfg(feature = "webgpu")]
    if let Some(bias) = &lin.bias {
        if cube::applies(&x) {
            let y = matmul_rows(x, lin.weight.val());
            return match cube::heads_into_cache(&y, &bias.val(), heads, cache, past) {
                Ok(done) => done,
                Err(cache) => {
                    let bias = cast_to(bias.val(), y.dtype());
                    split_heads_into(y + bias.unsqueeze(), heads, cache, past)
                }
            };
        }
    }
    split_heads_into(linear(lin, x), heads, cache, past)
}

/// Queries, keys and values `[b, heads, t, dh]` from `lin` (query, key and value fused, `[d, 3d]`)
/// applied to `x` `[b, t, d]`: [`heads_into_cache`] with fresh buffers of `t` positions.
pub fn split_heads(lin: &Linear, x: Tensor<3>, heads: usize) -> (Tensor<4>, Tensor<4>, Tensor<4>) {
    #[cfg(feature = "webgpu")]
    if let Some(bias) = &lin.bias {
        if cube::applies(&x) {
            let [b, t, d] = x.dims();
            let shape = [b, heads, t, d / heads.max(1)];
            let options = (&x.device(), x.dtype());
            let buffers = (Tensor::empty(shape, options), Tensor::empty(shape, options));
            let y = matmul_rows(x, lin.weight.val());
            return match cube::heads_into_cache(&y, &bias.val(), heads, buffers, 0) {
                Ok(done) => done,
                Err(_) => {
                    let bias = cast_to(bias.val(), y.dtype());
                    split_qkv(y + bias.unsqueeze(), heads)
                }
            };
        }
    }
    split_qkv(linear(lin, x), heads)
}

/// `qkv` `[b, t, 3d]` (bias added) as queries, keys and values `[b, heads, t, dh]` (views).
pub fn split_qkv(qkv: Tensor<3>, heads: usize) -> (Tensor<4>, Tensor<4>, Tensor<4>) {
    if let Some(views) = flex::split_qkv(&qkv, heads) {
        return views;
    }
    let [b, t, d3] = qkv.dims();
    let d = d3 / 3;
    let dh = d / heads;
    let part = |i: usize| {
        qkv.clone()
            .narrow(2, i * d, d)
            .reshape([b, t, heads, dh])
            .swap_dims(1, 2)
    };
    (part(0), part(1), part(2))
}

/// [`heads_into_cache`] composed: `qkv` `[b, t, 3d]` with its bias added.
fn split_heads_into(
    qkv: Tensor<3>,
    heads: usize,
    cache: (Tensor<4>, Tensor<4>),
    past: usize,
) -> (Tensor<4>, Tensor<4>, Tensor<4>) {
    let [b, t, d3] = qkv.dims();
    let dh = d3 / 3 / heads;
    let (q, k_new, v_new) = split_qkv(qkv, heads);
    let (pk, pv) = cache;
    let at = [0..b, 0..heads, past..past + t, 0..dh];
    let k = pk.slice_assign(at.clone(), k_new);
    let v = pv.slice_assign(at, v_new);
    (q, k, v)
}

/// `x` `[.., k]` times `w` `[k, n]` (any strides: a transposed view is read as it is). On a GPU,
/// when `x` has few rows (decoding's one token, a short prompt), one kernel made for that shape:
/// burn's tiled matmul (without autotune) leaves most of a GPU idle on a single row.
pub fn matmul_rows<const D: usize>(x: Tensor<D>, w: Tensor<2>) -> Tensor<D> {
    #[cfg(feature = "webgpu")]
    if let Some(out) = cube::matmul_rows(&x, &w) {
        return out;
    }
    if let Some(dtype) = half_type(&x) {
        return matmul_rows(x.cast(DType::F32), w).cast(dtype);
    }
    // A weight kept in f16 ([`super::weights::Weights::keep_half`]) where the row kernel does
    // not apply (a long prompt): burn's matmul in f32, on a converted copy.
    let w = as_f32(w);
    if flex::applies(&x) {
        return rows_times(x, w);
    }
    module::linear(x, w, None)
}

/// [`matmul_rows`] with the product in f32 whatever `x`'s type: an LM head's logits, which f16
/// would round by up to 0.03 at GPT-2's magnitudes.
pub fn matmul_rows_f32<const D: usize>(x: Tensor<D>, w: Tensor<2>) -> Tensor<D> {
    #[cfg(feature = "webgpu")]
    if let Some(out) = cube::matmul_rows_f32(&x, &w) {
        return out;
    }
    matmul_rows(cast_to(x, DType::F32), w)
}

/// [`matmul_rows`]'s kernel whatever the number of rows, for the benchmark's comparison; `None`
/// where it does not apply.
pub fn row_kernel_matmul<const D: usize>(x: Tensor<D>, w: Tensor<2>) -> Option<Tensor<D>> {
    #[cfg(feature = "webgpu")]
    return cube::matmul_rows_up_to(&x, &w, usize::MAX);
    #[cfg(not(feature = "webgpu"))]
    {
        let _ = (x, w);
        None
    }
}

/// `x` `[m, k]` times `w` `[k, n]` (either a transposed view) by the GPU's tiled kernel with
/// output tiles `tile` wide (64, the engine's, or 128) whatever the number of rows, for the
/// benchmark's comparison; `None` where it does not apply.
pub fn tiled_matmul(x: Tensor<2>, w: Tensor<2>, tile: usize) -> Option<Tensor<2>> {
    #[cfg(feature = "webgpu")]
    return cube::tiled_matmul(&x, &w, tile);
    #[cfg(not(feature = "webgpu"))]
    {
        let _ = (x, w, tile);
        None
    }
}

/// The index of the largest value of each row of `x` `[b, n]` (the first of equal maxima, as
/// torch's `argmax`), as `[b, 1]`: greedy decoding's next token. On a GPU one kernel, a cube per
/// row (burn's reduction took about 2 ms for GPT-2's 50,257 logits on an H200).
pub fn argmax_rows(x: Tensor<2>) -> Tensor<2, Int> {
    #[cfg(feature = "webgpu")]
    if let Some(out) = cube::argmax_rows(&x) {
        return out;
    }
    x.argmax(1)
}

/// Up to this many rows, [`matmul_rows`] takes the row kernel. Measured on an NVIDIA H200
/// (`scripts/bench-gpu-remote.sh`, `benches/results/h200-2026-11-27/run6-*`): against burn's
/// matmul it takes 31–38 µs instead of about 150 for `[1, 768] x [768, 3072]` and 76–87 instead
/// of 188–198 for `[128, 384] x [384, 1536]`; with 256 here GPT-2's 64-token prefill took 10.7 ms instead of
/// 27.7, and MiniLM's 1x128 embedding did not change.
pub const FEW_ROWS: usize = 256;

/// Up to this many queries per head, [`attention`] is one kernel (a cube per query, reading all
/// keys): decoding's one token, not a whole batch of sequences, where matmuls do better.
pub const FUSED_ATTENTION_MAX_QUERIES: usize = 4;

/// AdamW's step over the optimiser's flat buffers on a GPU, in two kinds of kernel
/// ([`cube::train::adamw`]).
#[cfg(feature = "webgpu")]
pub use cube::train::{adamw as gpu_adamw, SlotGrad};

/// Whether the fused kernels are on for GPU tensors (natively `TUNELAB_FUSED_KERNELS=0` turns
/// them off); they never apply on the CPU.
pub fn fused_kernels_enabled() -> bool {
    #[cfg(feature = "webgpu")]
    return cube::enabled();
    #[cfg(not(feature = "webgpu"))]
    false
}

/// The feed-forward activation (`hidden_act` / `activation_function`).
pub fn activate<const D: usize>(x: Tensor<D>, act: Activation) -> Tensor<D> {
    #[cfg(feature = "webgpu")]
    if let Some(out) = cube::activate(&x, act) {
        return out;
    }
    if let Some(dtype) = half_type(&x) {
        return activate(x.cast(DType::F32), act).cast(dtype);
    }
    #[cfg(feature = "webgpu")]
    let x = match cube::train::epilogue(x, None, Some(act), 0.0, None) {
        Ok(out) => return out,
        Err(x) => x,
    };
    let x = match flex::activate(x, act) {
        Ok(out) => return out,
        Err(x) => x,
    };
    let x = match flex::tracked::activate(x, act) {
        Ok(out) => return out,
        Err(x) => x,
    };
    match act {
        Activation::Gelu => activation::gelu(x),
        Activation::GeluTanh => activation::gelu_approximate(x),
        Activation::Relu => activation::relu(x),
    }
}

#[cfg(feature = "webgpu")]
mod cube {
    use burn::tensor::{DType, Int, Tensor as Burn};
    use burn_cubecl::kernel::into_contiguous;
    use burn_cubecl::ops::numeric::empty_device_dtype;
    use burn_cubecl::tensor::CubeTensor;
    use burn_cubecl::CubeBackend;
    use cubecl::prelude::*;

    use crate::model::config::Activation;

    pub mod gemm;
    pub mod train;

    /// Units per cube for the row kernels: a power of two (the tree reduction needs one), capped
    /// by what the device allows.
    const ROW_UNITS: u32 = 128;

    /// Whether the kernels are on (natively `TUNELAB_FUSED_KERNELS=0` turns them off).
    pub fn enabled() -> bool {
        crate::model::flex::fused_kernels_allowed()
    }

    /// The cubecl tensor under `x` when the kernels apply: f32, on the cubecl backend, without
    /// autodiff (with burn's fusion on, the primitive is a fusion handle and this says no).
    fn strided<const D: usize>(x: &Burn<D>) -> Option<CubeTensor> {
        if !enabled() || x.is_autodiff() || x.dtype() != DType::F32 {
            return None;
        }
        x.clone().try_into_primitive::<CubeBackend>().ok()
    }

    /// [`strided`] for the kernels that take activations or weights in either precision: f32, or
    /// f16 (a model in half precision on a device that computes in it,
    /// [`super::activation_dtype`]). Each reads them as f32.
    fn strided_act<const D: usize>(x: &Burn<D>) -> Option<CubeTensor> {
        if x.dtype() != DType::F16 {
            return strided(x);
        }
        if !enabled() || x.is_autodiff() {
            return None;
        }
        x.clone().try_into_primitive::<CubeBackend>().ok()
    }

    /// The kernels' element type for a float tensor of `dtype` (f32 or f16).
    pub(super) fn elem_type(dtype: DType) -> Option<ElemType> {
        match dtype {
            DType::F32 => Some(ElemType::Float(cubecl::ir::FloatKind::F32)),
            DType::F16 => Some(ElemType::Float(cubecl::ir::FloatKind::F16)),
            _ => None,
        }
    }

    /// [`strided`], made contiguous.
    fn primitive<const D: usize>(x: &Burn<D>) -> Option<CubeTensor> {
        strided(x).map(into_contiguous)
    }

    /// Whether the kernels apply to `x` (without copying it): f32, or f16 activations for the
    /// kernels that take them.
    pub fn applies<const D: usize>(x: &Burn<D>) -> bool {
        strided_act(x).is_some()
    }

    fn wrap<const D: usize>(t: CubeTensor) -> Burn<D> {
        Burn::from_primitive::<CubeBackend>(t)
    }

    fn empty_like(t: &CubeTensor) -> CubeTensor {
        empty_device_dtype(
            t.client.clone(),
            t.device.clone(),
            t.meta.shape().clone(),
            t.dtype,
        )
    }

    /// One cube per row (a 2-D grid past 65,535 rows), `units` units per cube.
    fn row_launch(t: &CubeTensor, rows: usize) -> (CubeCount, CubeDim, u32) {
        let max = t.client.properties().hardware.max_units_per_cube.max(1);
        let mut units = ROW_UNITS.min(max);
        if !units.is_power_of_two() {
            units = units.next_power_of_two() >> 1;
        }
        let rows = rows as u32;
        let count = if rows <= 65_535 {
            CubeCount::Static(rows.max(1), 1, 1)
        } else {
            CubeCount::Static(65_535, rows.div_ceil(65_535), 1)
        };
        (count, CubeDim::new_1d(units), units)
    }

    /// The sum (or with `max`, the largest) of `acc[0..CUBE_DIM]` (a power of two), seen by
    /// every unit. `acc` is free for reuse once every unit has passed the `sync_cube` that follows
    /// the call.
    #[cube]
    fn cube_reduce(acc: &mut Shared<[f32]>, #[comptime] max: bool) -> f32 {
        sync_cube();
        let mut active = CUBE_DIM;
        while active > 1 {
            active /= 2;
            if UNIT_POS < active {
                let other = acc[(UNIT_POS + active) as usize];
                if comptime![max] {
                    acc[UNIT_POS as usize] = f32::max(acc[UNIT_POS as usize], other);
                } else {
                    acc[UNIT_POS as usize] += other;
                }
            }
            sync_cube();
        }
        acc[0]
    }

    /// `bias`'s stride along `dim`, 0 where it is broadcast (size 1).
    #[cube]
    fn broadcast_stride(bias: &Tensor<f32>, #[comptime] dim: usize) -> usize {
        select(bias.shape(dim) == 1, 0, bias.stride(dim))
    }

    /// Whether `bias` broadcasts to `dims` (each of its sizes equal or 1).
    fn broadcasts_to(bias: &Burn<4>, dims: [usize; 4]) -> bool {
        dims.iter().zip(bias.dims()).all(|(&s, m)| m == s || m == 1)
    }

    /// One row's layer norm (`centred`: `(x - mean) / sqrt(var + eps) * gamma + beta`) or RMSNorm
    /// (`x / sqrt(mean(x²) + eps) * gamma`; `beta` unread).
    #[cube(launch_unchecked)]
    fn norm_kernel<A: Float, O: Float>(
        input: &Tensor<A>,
        gamma: &Tensor<f32>,
        beta: &Tensor<f32>,
        output: &mut Tensor<O>,
        rows: usize,
        eps: f32,
        #[comptime] units: usize,
        #[comptime] centred: bool,
        #[define(A, O)] _types: [ElemType; 2],
    ) {
        let row = CUBE_POS;
        if row >= rows {
            terminate!();
        }
        let d = input.shape(input.rank() - 1);
        let base = row * d;
        let unit = UNIT_POS as usize;
        let mut acc = Shared::<[f32]>::new_slice(units);

        let mut mean = 0.0f32;
        if comptime![centred] {
            let mut sum = 0.0f32;
            let mut i = unit;
            while i < d {
                sum += f32::cast_from(input[base + i]);
                i += units;
            }
            acc[unit] = sum;
            mean = cube_reduce(&mut acc, false) / f32::cast_from(d);
            sync_cube();
        }

        let mut squares = 0.0f32;
        let mut i = unit;
        while i < d {
            let c = f32::cast_from(input[base + i]) - mean;
            squares += c * c;
            i += units;
        }
        acc[unit] = squares;
        let var = cube_reduce(&mut acc, false) / f32::cast_from(d);
        let denom = f32::sqrt(var + eps);

        let mut i = unit;
        while i < d {
            let y = (f32::cast_from(input[base + i]) - mean) / denom * gamma[i];
            if comptime![centred] {
                output[base + i] = O::cast_from(y + beta[i]);
            } else {
                output[base + i] = O::cast_from(y);
            }
            i += units;
        }
    }

    /// [`norm_kernel`] over the last dimension of `x`: a layer norm with `beta`, else RMSNorm;
    /// written in `out` (f32 or f16), else in `x`'s type.
    pub fn norm<const D: usize>(
        x: &Burn<D>,
        gamma: &Burn<1>,
        beta: Option<&Burn<1>>,
        eps: f64,
        out: Option<DType>,
    ) -> Option<Burn<D>> {
        let input = strided_act(x).map(into_contiguous)?;
        let gamma = primitive(gamma)?;
        let dims = x.dims();
        let d = dims[D - 1];
        if d == 0 || gamma.meta.shape().num_elements() != d {
            return None;
        }
        let centred = beta.is_some();
        // RMSNorm reads no beta: gamma stands in for the binding.
        let beta = match beta {
            Some(b) => primitive(b).filter(|b| b.meta.shape().num_elements() == d)?,
            None => gamma.clone(),
        };
        let rows = dims.iter().product::<usize>() / d;
        let out = out.unwrap_or(input.dtype);
        let types = [elem_type(input.dtype)?, elem_type(out)?];
        let output = empty_device_dtype(
            input.client.clone(),
            input.device.clone(),
            input.meta.shape().clone(),
            out,
        );
        let (count, dim, units) = row_launch(&input, rows);
        unsafe {
            norm_kernel::launch_unchecked(
                &input.client.clone(),
                count,
                dim,
                input.into_tensor_arg(),
                gamma.into_tensor_arg(),
                beta.into_tensor_arg(),
                output.clone().into_tensor_arg(),
                rows,
                eps as f32,
                units as usize,
                centred,
                types,
            )
        };
        Some(wrap(output))
    }

    pub fn layer_norm<const D: usize>(
        x: &Burn<D>,
        gamma: &Burn<1>,
        beta: &Burn<1>,
        eps: f64,
    ) -> Option<Burn<D>> {
        norm(x, gamma, Some(beta), eps, None)
    }

    pub fn rms_norm<const D: usize>(x: &Burn<D>, weight: &Burn<1>, eps: f64) -> Option<Burn<D>> {
        norm(x, weight, None, eps, None)
    }

    /// `x * cos + rotate_half(x) * sin`, `x` `[b, h, t, dh]` read through its strides, the
    /// output contiguous.
    #[cube(launch_unchecked)]
    fn rotary_kernel<A: Float>(
        x: &Tensor<A>,
        cos: &Tensor<f32>,
        sin: &Tensor<f32>,
        output: &mut Tensor<A>,
        #[define(A)] _a_type: ElemType,
    ) {
        let i = ABSOLUTE_POS;
        if i >= output.len() {
            terminate!();
        }
        let dh = output.shape(3);
        let t = output.shape(2);
        let heads = output.shape(1);
        let e = i % dh;
        let p = (i / dh) % t;
        let h = (i / (dh * t)) % heads;
        let b = i / (dh * t * heads);
        let half = dh / 2;
        let base = b * x.stride(0) + h * x.stride(1) + p * x.stride(2);
        // rotate_half: element e takes -x[e + half] in the first half, x[e - half] in the second.
        let sign = select(e < half, -1.0f32, 1.0f32);
        let other = sign * f32::cast_from(x[base + ((e + half) % dh) * x.stride(3)]);
        let c = p * dh + e;
        output[i] =
            A::cast_from(f32::cast_from(x[base + e * x.stride(3)]) * cos[c] + other * sin[c]);
    }

    pub fn rotary(x: &Burn<4>, cos: &Burn<4>, sin: &Burn<4>) -> Option<Burn<4>> {
        let [b, h, t, dh] = x.dims();
        if cos.dims() != [1, 1, t, dh] || sin.dims() != [1, 1, t, dh] || dh % 2 != 0 {
            return None;
        }
        let input = strided_act(x)?;
        let a_type = elem_type(input.dtype)?;
        let (cos, sin) = (primitive(cos)?, primitive(sin)?);
        let n = b * h * t * dh;
        if n == 0 {
            return None;
        }
        let output = empty_device_dtype(
            input.client.clone(),
            input.device.clone(),
            [b, h, t, dh].into(),
            input.dtype,
        );
        let dim = CubeDim::new(&input.client, n);
        let count = cubecl::calculate_cube_count_elemwise(&input.client, n, dim);
        unsafe {
            rotary_kernel::launch_unchecked(
                &input.client.clone(),
                count,
                dim,
                input.into_tensor_arg(),
                cos.into_tensor_arg(),
                sin.into_tensor_arg(),
                output.clone().into_tensor_arg(),
                a_type,
            )
        };
        Some(wrap(output))
    }

    #[cube(launch_unchecked)]
    fn attention_probs_kernel(
        scores: &Tensor<f32>,
        bias: &Tensor<f32>,
        output: &mut Tensor<f32>,
        rows: usize,
        scale: f32,
        #[comptime] units: usize,
    ) {
        let row = CUBE_POS;
        if row >= rows {
            terminate!();
        }
        let heads = scores.shape(1);
        let queries = scores.shape(2);
        let n = scores.shape(3);
        let b = row / (heads * queries);
        let h = (row / queries) % heads;
        let q = row % queries;
        let s3 = broadcast_stride(bias, 3usize);
        let bias_base = b * broadcast_stride(bias, 0usize)
            + h * broadcast_stride(bias, 1usize)
            + q * broadcast_stride(bias, 2usize);
        let base = row * n;
        let unit = UNIT_POS as usize;
        let mut acc = Shared::<[f32]>::new_slice(units);

        let mut top = f32::new(f32::MIN);
        let mut j = unit;
        while j < n {
            top = f32::max(top, scores[base + j] * scale + bias[bias_base + j * s3]);
            j += units;
        }
        acc[unit] = top;
        let top = cube_reduce(&mut acc, true);
        sync_cube();

        let mut sum = 0.0f32;
        let mut j = unit;
        while j < n {
            sum += f32::exp(scores[base + j] * scale + bias[bias_base + j * s3] - top);
            j += units;
        }
        acc[unit] = sum;
        let sum = cube_reduce(&mut acc, false);

        let mut j = unit;
        while j < n {
            let e = f32::exp(scores[base + j] * scale + bias[bias_base + j * s3] - top);
            output[base + j] = e / sum;
            j += units;
        }
    }

    pub fn attention_probs(scores: &Burn<4>, scale: f64, bias: &Burn<4>) -> Option<Burn<4>> {
        let [b, h, t, n] = scores.dims();
        if !broadcasts_to(bias, [b, h, t, n]) || n == 0 {
            return None;
        }
        let input = primitive(scores)?;
        let bias = primitive(bias)?;
        Some(wrap(softmax_launch(input, bias, scale)))
    }

    /// [`attention_probs_kernel`] on `scores` (contiguous) with `bias` broadcast to it.
    fn softmax_launch(input: CubeTensor, bias: CubeTensor, scale: f64) -> CubeTensor {
        let dims = input.meta.shape();
        let rows = dims.num_elements() / dims[dims.num_dims() - 1].max(1);
        let output = empty_like(&input);
        let (count, dim, units) = row_launch(&input, rows);
        unsafe {
            attention_probs_kernel::launch_unchecked(
                &input.client.clone(),
                count,
                dim,
                input.into_tensor_arg(),
                bias.into_tensor_arg(),
                output.clone().into_tensor_arg(),
                rows,
                scale as f32,
                units as usize,
            )
        };
        output
    }

    /// erf by Abramowitz and Stegun 7.1.26 (error below 1.5e-7), as burn's own kernels compute
    /// it on WebGPU, where WGSL has no erf.
    #[cube]
    fn erf(x: f32) -> f32 {
        let a = f32::abs(x);
        let t = 1.0f32 / (1.0f32 + 0.327_591_1f32 * a);
        let poly = ((((1.061_405_4f32 * t - 1.453_152f32) * t + 1.421_413_7f32) * t
            - 0.284_496_74f32)
            * t
            + 0.254_829_6f32)
            * t;
        let e = 1.0f32 - poly * f32::exp(-a * a);
        select(x < 0.0f32, -e, e)
    }

    fn elementwise<const D: usize>(
        x: &Burn<D>,
        bias: Option<&Burn<1>>,
        residual: Option<&Burn<D>>,
        act: Option<Activation>,
    ) -> Option<Burn<D>> {
        let input = primitive(x)?;
        let n = input.meta.shape().num_elements();
        let d = x.dims()[D - 1];
        if n == 0 {
            return None;
        }
        let bias = match bias {
            Some(b) if b.dims()[0] == d => Some(primitive(b)?),
            Some(_) => return None,
            None => None,
        };
        let residual = match residual {
            Some(r) if r.dims() == x.dims() => Some(primitive(r)?),
            Some(_) => return None,
            None => None,
        };
        let output = empty_like(&input);
        let dim = CubeDim::new(&input.client, n);
        let count = cubecl::calculate_cube_count_elemwise(&input.client, n, dim);
        let (with_bias, with_residual) = (bias.is_some(), residual.is_some());
        // An unused argument still needs a binding: the input stands in.
        let bias = bias.unwrap_or_else(|| input.clone());
        let residual = residual.unwrap_or_else(|| input.clone());
        // Training's epilogue without its dropout: `act(y + bias)` or `y + bias + residual` (the
        // callers never ask for both).
        unsafe {
            train::epilogue_kernel::launch_unchecked(
                &input.client.clone(),
                count,
                dim,
                input.clone().into_tensor_arg(),
                bias.into_tensor_arg(),
                residual.into_tensor_arg(),
                output.clone().into_tensor_arg(),
                0,
                0,
                0,
                1.0,
                train::kind_of(act),
                with_bias,
                false,
                with_residual,
            )
        };
        Some(wrap(output))
    }

    pub fn activate<const D: usize>(x: &Burn<D>, act: Activation) -> Option<Burn<D>> {
        elementwise(x, None, None, Some(act))
    }

    /// `residual + (y + bias)`, or `act(y + bias)`.
    pub fn add_bias<const D: usize>(
        y: &Burn<D>,
        bias: &Burn<1>,
        residual: Option<&Burn<D>>,
        act: Option<Activation>,
    ) -> Option<Burn<D>> {
        elementwise(y, Some(bias), residual, act)
    }

    /// One cube per query row `(b, h, i)`: the scores against every key (kept in shared memory),
    /// their softmax, and the weighted sum of the values, written as `[b, t, h, dh]`.
    #[cube(launch_unchecked)]
    fn attention_kernel<A: Float>(
        q: &Tensor<A>,
        k: &Tensor<A>,
        v: &Tensor<A>,
        bias: &Tensor<f32>,
        output: &mut Tensor<A>,
        rows: usize,
        scale: f32,
        #[comptime] units: usize,
        #[comptime] keys: usize,
        #[define(A)] _a_type: ElemType,
    ) {
        let row = CUBE_POS;
        if row >= rows {
            terminate!();
        }
        let heads = q.shape(1);
        let queries = q.shape(2);
        let dh = q.shape(3);
        let b = row / (heads * queries);
        let h = (row / queries) % heads;
        let i = row % queries;
        let q_base = b * q.stride(0) + h * q.stride(1) + i * q.stride(2);
        // Grouped-query attention: query head h reads key/value head h / (heads / kv heads).
        let kv_h = h / (heads / k.shape(1));
        let k_base = b * k.stride(0) + kv_h * k.stride(1);
        let v_base = b * v.stride(0) + kv_h * v.stride(1);
        let s3 = broadcast_stride(bias, 3usize);
        let bias_base = b * broadcast_stride(bias, 0usize)
            + h * broadcast_stride(bias, 1usize)
            + i * broadcast_stride(bias, 2usize);
        let unit = UNIT_POS as usize;
        let mut acc = Shared::<[f32]>::new_slice(units);
        let mut scores = Shared::<[f32]>::new_slice(keys);

        let mut top = f32::new(f32::MIN);
        let mut j = unit;
        while j < keys {
            let mut dot = 0.0f32;
            for e in 0..dh {
                dot += f32::cast_from(q[q_base + e * q.stride(3)])
                    * f32::cast_from(k[k_base + j * k.stride(2) + e * k.stride(3)]);
            }
            let s = dot * scale + bias[bias_base + j * s3];
            scores[j] = s;
            top = f32::max(top, s);
            j += units;
        }
        acc[unit] = top;
        let top = cube_reduce(&mut acc, true);
        sync_cube();

        let mut sum = 0.0f32;
        let mut j = unit;
        while j < keys {
            let e = f32::exp(scores[j] - top);
            scores[j] = e;
            sum += e;
            j += units;
        }
        acc[unit] = sum;
        let sum = cube_reduce(&mut acc, false);

        let out_base = ((b * queries + i) * heads + h) * dh;
        let mut e = unit;
        while e < dh {
            let mut c = 0.0f32;
            for j in 0..keys {
                c += scores[j] * f32::cast_from(v[v_base + j * v.stride(2) + e * v.stride(3)]);
            }
            output[out_base + e] = A::cast_from(c / sum);
            e += units;
        }
    }

    /// `y + bias` (`y` `[b, t, 3d]`) split into heads: the queries into `q` `[b, heads, t, dh]`,
    /// the keys and values into the cache buffers at positions `past..`.
    #[cube(launch_unchecked)]
    fn heads_into_cache_kernel<A: Float>(
        y: &Tensor<A>,
        bias: &Tensor<f32>,
        q: &mut Tensor<A>,
        k: &mut Tensor<A>,
        v: &mut Tensor<A>,
        past: usize,
        #[define(A)] _a_type: ElemType,
    ) {
        let i = ABSOLUTE_POS;
        if i >= y.len() {
            terminate!();
        }
        let heads = q.shape(1);
        let t = q.shape(2);
        let dh = q.shape(3);
        let d3 = y.shape(2);
        let d = d3 / 3;
        let col = i % d3;
        let row = i / d3;
        let pos = row % t;
        let b = row / t;
        let value = A::cast_from(f32::cast_from(y[i]) + bias[col]);
        let part = col / d;
        let c = col % d;
        let h = c / dh;
        let e = c % dh;
        if part == 0 {
            q[((b * heads + h) * t + pos) * dh + e] = value;
        } else if part == 1 {
            let at =
                b * k.stride(0) + h * k.stride(1) + (past + pos) * k.stride(2) + e * k.stride(3);
            k[at] = value;
        } else {
            let at =
                b * v.stride(0) + h * v.stride(1) + (past + pos) * v.stride(2) + e * v.stride(3);
            v[at] = value;
        }
    }

    /// The queries and the updated buffers, or the buffers back where the kernel does not apply
    /// (a buffer shared with another tensor is not written in place).
    #[allow(clippy::type_complexity, clippy::result_large_err)]
    pub fn heads_into_cache(
        y: &Burn<3>,
        bias: &Burn<1>,
        heads: usize,
        cache: (Burn<4>, Burn<4>),
        past: usize,
    ) -> Result<(Burn<4>, Burn<4>, Burn<4>), (Burn<4>, Burn<4>)> {
        let [b, t, d3] = y.dims();
        let (kb, kv) = (&cache.0, &cache.1);
        let dh = d3 / 3 / heads.max(1);
        let fits = d3 % 3 == 0
            && heads > 0
            && (d3 / 3) % heads == 0
            && bias.dims()[0] == d3
            && kb.dims() == kv.dims()
            && kb.dims()[0] == b
            && kb.dims()[1] == heads
            && kb.dims()[3] == dh
            && past + t <= kb.dims()[2];
        if !fits {
            return Err(cache);
        }
        let (Some(input), Some(bias_t)) = (strided_act(y).map(into_contiguous), primitive(bias))
        else {
            return Err(cache);
        };
        let Some(a_type) = elem_type(input.dtype) else {
            return Err(cache);
        };
        if !applies(&cache.0)
            || !applies(&cache.1)
            || cache.0.dtype() != input.dtype
            || cache.1.dtype() != input.dtype
        {
            return Err(cache);
        }
        // Taken without a clone, so that a buffer nothing else holds can be written in place.
        let (k, v) = cache;
        let (Ok(k), Ok(v)) = (
            k.try_into_primitive::<CubeBackend>(),
            v.try_into_primitive::<CubeBackend>(),
        ) else {
            unreachable!("applies() said both are cubecl tensors");
        };
        if !k.can_mut() || !v.can_mut() {
            return Err((wrap(k), wrap(v)));
        }
        let q = empty_device_dtype(
            input.client.clone(),
            input.device.clone(),
            [b, heads, t, dh].into(),
            input.dtype,
        );
        let n = input.meta.shape().num_elements();
        let dim = CubeDim::new(&input.client, n);
        let count = cubecl::calculate_cube_count_elemwise(&input.client, n, dim);
        unsafe {
            heads_into_cache_kernel::launch_unchecked(
                &input.client.clone(),
                count,
                dim,
                input.into_tensor_arg(),
                bias_t.into_tensor_arg(),
                q.clone().into_tensor_arg(),
                k.clone().into_tensor_arg(),
                v.clone().into_tensor_arg(),
                past,
                a_type,
            )
        };
        Ok((wrap(q), wrap(k), wrap(v)))
    }

    /// `output` `[m, n]` = `x` `[m, k]` (contiguous) times `w` `[k, n]` (any strides). Each cube
    /// computes `cols` output columns for all `m` rows, its units splitting the `k` sum into
    /// `slices` and adding the parts up in shared memory. The 32 lanes of a unit group run along
    /// whichever of `w`'s dimensions is contiguous (`k_lanes`: along `k`), so reads coalesce.
    /// `w` is f32, or f16 (a weight kept in half precision: each element read as f32).
    ///
    /// The linear layer's epilogue on the way out (as [`train::epilogue_kernel`] computes it):
    /// `residual + act(y + bias)`, each part where its flag says (`kind` 3: no activation); or,
    /// `gated`, `act(y + bias) * silu(residual)` (the residual binding holds a SwiGLU's gate).
    #[allow(clippy::too_many_arguments)]
    #[cube(launch_unchecked)]
    fn matmul_rows_kernel<W: Float, A: Float, O: Float>(
        x: &Tensor<A>,
        w: &Tensor<W>,
        bias: &Tensor<f32>,
        residual: &Tensor<O>,
        output: &mut Tensor<O>,
        rows: usize,
        #[comptime] m: usize,
        #[comptime] units: usize,
        #[comptime] k_lanes: bool,
        #[comptime] kind: u32,
        #[comptime] with_bias: bool,
        #[comptime] with_residual: bool,
        #[comptime] gated: bool,
        #[define(W, A, O)] _types: [ElemType; 3],
    ) {
        let k = w.shape(0);
        let n = w.shape(1);
        // This cube's block of `m` rows (the grid's second dimension).
        let first = CUBE_POS_Y as usize * m;
        let unit = UNIT_POS as usize;
        // Lanes along n: column unit % 32, slice unit / 32; along k the other way round.
        let cols = comptime![if k_lanes { units / 32 } else { 32 }];
        let slices = comptime![if k_lanes { 32 } else { units / 32 }];
        let c_div = comptime![if k_lanes { 32usize } else { 1usize }];
        let s_div = comptime![if k_lanes { 1usize } else { 32usize }];
        let c = (unit / c_div) % cols;
        let s = (unit / s_div) % slices;
        let col = CUBE_POS_X as usize * cols + c;
        let valid = col < n;
        let ws0 = w.stride(0);
        let ws1 = w.stride(1);
        let mut acc = Shared::<[f32]>::new_slice(m * units);
        #[unroll]
        for r in 0..m {
            let mut sum = 0.0f32;
            if valid && first + r < rows {
                let base = (first + r) * k;
                let mut kk = s;
                while kk < k {
                    sum += f32::cast_from(x[base + kk]) * f32::cast_from(w[kk * ws0 + col * ws1]);
                    kk += slices;
                }
            }
            acc[(r * slices + s) * cols + c] = sum;
        }
        sync_cube();
        if s == 0 && valid {
            #[unroll]
            for r in 0..m {
                if first + r < rows {
                    let mut total = 0.0f32;
                    for j in 0..slices {
                        total += acc[(r * slices + j) * cols + c];
                    }
                    let at = (first + r) * n + col;
                    output[at] = O::cast_from(gemm::finish(
                        total,
                        col,
                        at,
                        bias,
                        residual,
                        kind,
                        with_bias,
                        with_residual,
                        gated,
                    ));
                }
            }
        }
    }

    /// Rows per cube of the row kernel.
    const ROW_BLOCK: usize = 8;

    /// The most rows the row kernel takes ([`super::FEW_ROWS`]; natively
    /// `TUNELAB_ROWS_KERNEL_MAX` overrides it, for the benchmark).
    fn rows_kernel_max() -> usize {
        #[cfg(not(target_arch = "wasm32"))]
        {
            static MAX: std::sync::OnceLock<usize> = std::sync::OnceLock::new();
            *MAX.get_or_init(|| {
                std::env::var("TUNELAB_ROWS_KERNEL_MAX")
                    .ok()
                    .and_then(|v| v.parse().ok())
                    .unwrap_or(super::FEW_ROWS)
            })
        }
        #[cfg(target_arch = "wasm32")]
        super::FEW_ROWS
    }

    pub fn matmul_rows<const D: usize>(x: &Burn<D>, w: &Burn<2>) -> Option<Burn<D>> {
        matmul_rows_up_to(x, w, rows_kernel_max())
    }

    pub fn matmul_rows_up_to<const D: usize>(
        x: &Burn<D>,
        w: &Burn<2>,
        most: usize,
    ) -> Option<Burn<D>> {
        linear_rows_up_to(x, w, None, None, None, false, most, None)
    }

    /// [`matmul_rows`] written in f32 whatever `x`'s precision: an LM head's logits.
    pub fn matmul_rows_f32<const D: usize>(x: &Burn<D>, w: &Burn<2>) -> Option<Burn<D>> {
        linear_rows_up_to(
            x,
            w,
            None,
            None,
            None,
            false,
            rows_kernel_max(),
            Some(DType::F32),
        )
    }

    pub fn tiled_matmul(x: &Burn<2>, w: &Burn<2>, tile: usize) -> Option<Burn<2>> {
        let a = gemm::Operand::of(strided(x)?)?;
        let b = gemm::Operand::of(strided_act(w)?)?;
        let shape = [a.rows, b.cols];
        gemm::gemm_tiled(&a, &b, gemm::Epilogue::default(), &shape, tile, DType::F32).map(wrap)
    }

    /// A linear layer in one launch where the row kernel applies: `residual + act(x w + bias)`
    /// (each part optional).
    pub fn linear_rows<const D: usize>(
        x: &Burn<D>,
        w: &Burn<2>,
        bias: Option<&Burn<1>>,
        residual: Option<&Burn<D>>,
        act: Option<Activation>,
    ) -> Option<Burn<D>> {
        linear_rows_up_to(x, w, bias, residual, act, false, rows_kernel_max(), None)
    }

    /// [`linear_rows`] without a residual, written in `out`.
    pub fn linear_rows_into<const D: usize>(
        x: &Burn<D>,
        w: &Burn<2>,
        bias: Option<&Burn<1>>,
        act: Option<Activation>,
        out: DType,
    ) -> Option<Burn<D>> {
        linear_rows_up_to(x, w, bias, None, act, false, rows_kernel_max(), Some(out))
    }

    /// `silu(gate) * (x w + bias)` in one launch where the row kernel applies (a SwiGLU's up
    /// projection times its activated gate).
    pub fn gated_rows<const D: usize>(
        x: &Burn<D>,
        w: &Burn<2>,
        bias: Option<&Burn<1>>,
        gate: &Burn<D>,
    ) -> Option<Burn<D>> {
        linear_rows_up_to(x, w, bias, Some(gate), None, true, rows_kernel_max(), None)
    }

    /// The output in `out` (f32 or f16), else in the residual's type, else in `x`'s; a gate
    /// (`gated`) in the output's.
    #[allow(clippy::too_many_arguments)]
    fn linear_rows_up_to<const D: usize>(
        x: &Burn<D>,
        w: &Burn<2>,
        bias: Option<&Burn<1>>,
        residual: Option<&Burn<D>>,
        act: Option<Activation>,
        gated: bool,
        most: usize,
        out: Option<DType>,
    ) -> Option<Burn<D>> {
        let dims = x.dims();
        let [k, n] = w.dims();
        let m = dims.iter().product::<usize>() / k.max(1);
        if dims[D - 1] != k || k == 0 || n == 0 || m == 0 {
            return None;
        }
        let mut out_dims = dims;
        out_dims[D - 1] = n;
        let bias = match bias {
            Some(b) if b.dims()[0] == n => Some(primitive(b)?),
            Some(_) => return None,
            None => None,
        };
        let input = strided_act(x).map(into_contiguous)?;
        // The residual's type where there is one (a decoder's residual stream stays f32 when
        // its products take f16), else `x`'s.
        let out_dtype = out
            .or(residual.filter(|_| !gated).map(|r| r.dtype()))
            .unwrap_or(input.dtype);
        let residual = match residual {
            Some(r) if r.dims() == out_dims && r.dtype() == out_dtype => {
                Some(strided_act(r).map(into_contiguous)?)
            }
            Some(_) => return None,
            None => None,
        };
        let w = strided_act(w)?;
        let types = [
            elem_type(w.dtype)?,
            elem_type(input.dtype)?,
            elem_type(out_dtype)?,
        ];
        if m > most {
            // Many rows: the tiled product, the epilogue in the same kernel.
            let epilogue = gemm::Epilogue {
                bias: bias.as_ref(),
                act,
                residual: residual.as_ref(),
                gated,
            };
            let a = gemm::Operand::of(input)?;
            let b = gemm::Operand::of(w)?;
            return gemm::gemm_into(&a, &b, epilogue, &out_dims, out_dtype).map(wrap);
        }
        let block = m.min(ROW_BLOCK);
        let strides = w.meta.strides();
        let k_lanes = strides[0] == 1 && strides[1] != 1;
        let mut shape = dims;
        shape[D - 1] = n;
        let output = empty_device_dtype(
            input.client.clone(),
            input.device.clone(),
            shape.to_vec().into(),
            out_dtype,
        );
        let max = input.client.properties().hardware.max_units_per_cube;
        let units: u32 = if max >= 256 {
            256
        } else if max >= 64 {
            64
        } else {
            return None;
        };
        let cols = if k_lanes { units / 32 } else { 32 };
        let cubes = (n as u32).div_ceil(cols);
        let blocks = m.div_ceil(block) as u32;
        if cubes > 65_535 || blocks > 65_535 {
            return None;
        }
        let (with_bias, with_residual) = (bias.is_some(), residual.is_some());
        // An unused part still needs a binding of its type: a stand-in.
        let bias = bias.unwrap_or_else(|| gemm::stand_in(&input, DType::F32));
        let residual = residual.unwrap_or_else(|| gemm::stand_in(&input, out_dtype));
        unsafe {
            matmul_rows_kernel::launch_unchecked(
                &input.client.clone(),
                CubeCount::Static(cubes, blocks, 1),
                CubeDim::new_1d(units),
                input.into_tensor_arg(),
                w.into_tensor_arg(),
                bias.into_tensor_arg(),
                residual.into_tensor_arg(),
                output.clone().into_tensor_arg(),
                m,
                block,
                units as usize,
                k_lanes,
                train::kind_of(act),
                with_bias,
                with_residual,
                gated,
                types,
            )
        };
        Some(wrap(output))
    }

    /// One cube per row: each unit the best of its stride, then the cube's best in shared memory
    /// (a larger value wins, or an equal one further left; a unit that saw nothing holds index
    /// `n` and never wins).
    #[cube(launch_unchecked)]
    fn argmax_kernel(
        x: &Tensor<f32>,
        output: &mut Tensor<i32>,
        rows: usize,
        #[comptime] units: usize,
    ) {
        let row = CUBE_POS;
        if row >= rows {
            terminate!();
        }
        let n = x.shape(1);
        let base = row * n;
        let unit = UNIT_POS as usize;
        let mut values = Shared::<[f32]>::new_slice(units);
        let mut indices = Shared::<[u32]>::new_slice(units);
        let mut best = 0.0f32;
        let mut at = n;
        let mut j = unit;
        while j < n {
            let v = x[base + j];
            if v > best || at == n {
                best = v;
                at = j;
            }
            j += units;
        }
        values[unit] = best;
        indices[unit] = u32::cast_from(at);
        sync_cube();
        let mut active = CUBE_DIM;
        while active > 1 {
            active /= 2;
            if UNIT_POS < active {
                let other = (UNIT_POS + active) as usize;
                let (v, i) = (values[other], indices[other]);
                let (w, k) = (values[unit], indices[unit]);
                let none = u32::cast_from(n);
                if k == none || (i != none && (v > w || (v == w && i < k))) {
                    values[unit] = v;
                    indices[unit] = i;
                }
            }
            sync_cube();
        }
        if unit == 0 {
            output[row] = i32::cast_from(indices[0]);
        }
    }

    pub fn argmax_rows(x: &Burn<2>) -> Option<Burn<2, Int>> {
        let [b, n] = x.dims();
        let int: DType = x.device().settings().int_dtype.into();
        if n == 0 || n >= u32::MAX as usize || int != DType::I32 {
            return None;
        }
        let input = primitive(x)?;
        let output = empty_device_dtype(
            input.client.clone(),
            input.device.clone(),
            [b, 1].into(),
            DType::I32,
        );
        let (count, dim, units) = row_launch(&input, b);
        unsafe {
            argmax_kernel::launch_unchecked(
                &input.client.clone(),
                count,
                dim,
                input.into_tensor_arg(),
                output.clone().into_tensor_arg(),
                b,
                units as usize,
            )
        };
        Some(Burn::from_primitive::<CubeBackend>(output))
    }

    /// Self-attention from `qkv` `[b, t, 3d]` (a layer's fused query/key/value output, biases
    /// added), the heads read where they lie: one unit per query row `(b, h, i)`, the units of a
    /// cube on consecutive queries of one head (so that they read each key and value at the same
    /// time), the scores against every key with an online softmax (running maximum and sum, the
    /// weighted values rescaled as the maximum moves), the context written with the heads merged
    /// into `[b, t, d]`. Training's forward kernel ([`train::qkv_attention`]) without its dropout
    /// and log-sum-exp; f32 or f16 `qkv`, computed in f32, the context in `qkv`'s type.
    #[allow(clippy::too_many_arguments)]
    #[cube(launch_unchecked)]
    fn qkv_attention_kernel<A: Float>(
        qkv: &Tensor<A>,
        bias: &Tensor<f32>,
        context: &mut Tensor<A>,
        rows: usize,
        heads: usize,
        t: usize,
        scale: f32,
        #[comptime] dh: usize,
        #[define(A)] _a_type: ElemType,
    ) {
        let row = ABSOLUTE_POS;
        if row >= rows {
            terminate!();
        }
        let d = heads * dh;
        let b = row / (heads * t);
        let h = (row / t) % heads;
        let i = row % t;
        let bias_base = b * broadcast_stride(bias, 0usize)
            + h * broadcast_stride(bias, 1usize)
            + i * broadcast_stride(bias, 2usize);
        let bias_step = broadcast_stride(bias, 3usize);
        let q_base = (b * t + i) * 3 * d + h * dh;
        let k_base = b * t * 3 * d + d + h * dh;
        let at = RowAt {
            q: q_base,
            q_step: 1,
            k: k_base,
            k_row: 3 * d,
            k_step: 1,
            v: k_base + d,
            v_row: 3 * d,
            v_step: 1,
            bias: bias_base,
            bias_step,
            out: (b * t + i) * d + h * dh,
        };
        attend_row(qkv, qkv, qkv, bias, context, at, t, scale, dh);
    }

    /// Where [`attend_row`] reads and writes: the query's `dh` values from `q` on, `q_step`
    /// apart; key `j`'s from `k + j * k_row` on, `k_step` apart (value `j`'s likewise); key
    /// `j`'s bias at `bias + j * bias_step`; the output's `dh` values from `out` on.
    #[derive(CubeType, Clone, Copy)]
    struct RowAt {
        q: usize,
        q_step: usize,
        k: usize,
        k_row: usize,
        k_step: usize,
        v: usize,
        v_row: usize,
        v_step: usize,
        bias: usize,
        bias_step: usize,
        out: usize,
    }

    /// One query row's attention over `n` keys, in f32: the scores with an online softmax
    /// (running maximum and sum, the weighted values rescaled as the maximum moves), the
    /// context written in `out`'s type. The body of [`qkv_attention_kernel`] and
    /// [`attention_rows_kernel`].
    #[allow(clippy::too_many_arguments)]
    #[cube]
    fn attend_row<A: Float>(
        q: &Tensor<A>,
        k: &Tensor<A>,
        v: &Tensor<A>,
        bias: &Tensor<f32>,
        out: &mut Tensor<A>,
        at: RowAt,
        n: usize,
        scale: f32,
        #[comptime] dh: usize,
    ) {
        let mut qr = Array::<f32>::new(dh);
        let mut acc = Array::<f32>::new(dh);
        #[unroll]
        for e in 0..dh {
            qr[e] = f32::cast_from(q[at.q + e * at.q_step]);
            acc[e] = 0.0f32;
        }
        let mut top = f32::new(f32::MIN);
        let mut sum = 0.0f32;
        for j in 0..n {
            let kj = at.k + j * at.k_row;
            let mut dot = 0.0f32;
            #[unroll]
            for e in 0..dh {
                dot += qr[e] * f32::cast_from(k[kj + e * at.k_step]);
            }
            let s = dot * scale + bias[at.bias + j * at.bias_step];
            let next = f32::max(top, s);
            let rescale = f32::exp(top - next);
            let p = f32::exp(s - next);
            sum = sum * rescale + p;
            top = next;
            let vj = at.v + j * at.v_row;
            #[unroll]
            for e in 0..dh {
                acc[e] = acc[e] * rescale + p * f32::cast_from(v[vj + e * at.v_step]);
            }
        }
        #[unroll]
        for e in 0..dh {
            out[at.out + e] = A::cast_from(acc[e] / sum);
        }
    }

    /// Attention over many queries (a prompt, an encoder's rotary heads): one unit per query row
    /// `(b, h, i)` of `q` `[b, h, t, dh]`, the units of a cube on consecutive queries of one head
    /// (reading each key and value at the same time), over the keys and values `[b, h / groups,
    /// n, dh]` (grouped-query attention: query head `h` reads key/value head `h / groups`), every
    /// tensor read through its strides, with an online softmax as [`qkv_attention_kernel`]; the
    /// output `[b, t, h * dh]` in `q`'s type.
    #[allow(clippy::too_many_arguments)]
    #[cube(launch_unchecked)]
    fn attention_rows_kernel<A: Float>(
        q: &Tensor<A>,
        k: &Tensor<A>,
        v: &Tensor<A>,
        bias: &Tensor<f32>,
        output: &mut Tensor<A>,
        rows: usize,
        scale: f32,
        #[comptime] dh: usize,
        #[define(A)] _a_type: ElemType,
    ) {
        let row = ABSOLUTE_POS;
        if row >= rows {
            terminate!();
        }
        let heads = q.shape(1);
        let queries = q.shape(2);
        let n = k.shape(2);
        let b = row / (heads * queries);
        let h = (row / queries) % heads;
        let i = row % queries;
        let kv_h = h / (heads / k.shape(1));
        let at = RowAt {
            q: b * q.stride(0) + h * q.stride(1) + i * q.stride(2),
            q_step: q.stride(3),
            k: b * k.stride(0) + kv_h * k.stride(1),
            k_row: k.stride(2),
            k_step: k.stride(3),
            v: b * v.stride(0) + kv_h * v.stride(1),
            v_row: v.stride(2),
            v_step: v.stride(3),
            bias: b * broadcast_stride(bias, 0usize)
                + h * broadcast_stride(bias, 1usize)
                + i * broadcast_stride(bias, 2usize),
            bias_step: broadcast_stride(bias, 3usize),
            out: ((b * queries + i) * heads + h) * dh,
        };
        attend_row(q, k, v, bias, output, at, n, scale, dh);
    }

    pub fn attention_rows(
        q: &Burn<4>,
        k: &Burn<4>,
        v: &Burn<4>,
        scale: f64,
        bias: &Burn<4>,
    ) -> Option<Burn<3>> {
        let dh = q.dims()[3];
        if !qkv_attention_enabled() || !(1..=QKV_ATTENTION_MAX_HEAD).contains(&dh) {
            return None;
        }
        let o = AttentionOperands::of(q, k, v, bias)?;
        let (count, dim) = train::elementwise_launch(&o.q, o.rows);
        unsafe {
            attention_rows_kernel::launch_unchecked(
                &o.q.client.clone(),
                count,
                dim,
                o.q.into_tensor_arg(),
                o.k.into_tensor_arg(),
                o.v.into_tensor_arg(),
                o.bias.into_tensor_arg(),
                o.output.clone().into_tensor_arg(),
                o.rows,
                scale as f32,
                dh,
                o.a_type,
            )
        };
        Some(wrap(o.output))
    }

    /// The widest head [`qkv_attention_kernel`] takes (its query and sums in registers).
    const QKV_ATTENTION_MAX_HEAD: usize = 128;

    /// With `TUNELAB_QKV_ATTENTION=0` (natively) attention over more than 4 queries outside
    /// training stays as before these kernels (an encoder's split heads, two matmuls around the
    /// probabilities), for the benchmark's comparison.
    pub fn qkv_attention_enabled() -> bool {
        #[cfg(not(target_arch = "wasm32"))]
        {
            static ON: std::sync::OnceLock<bool> = std::sync::OnceLock::new();
            *ON.get_or_init(|| std::env::var("TUNELAB_QKV_ATTENTION").map_or(true, |v| v != "0"))
        }
        #[cfg(target_arch = "wasm32")]
        true
    }

    pub fn qkv_attention(
        qkv: &Burn<3>,
        heads: usize,
        scale: f64,
        bias: &Burn<4>,
    ) -> Option<Burn<3>> {
        let [b, t, d3] = qkv.dims();
        let dh = (d3 / 3).checked_div(heads).unwrap_or(0);
        if !qkv_attention_enabled()
            || heads == 0
            || d3 % (3 * heads) != 0
            || !(1..=QKV_ATTENTION_MAX_HEAD).contains(&dh)
            || t == 0
            || b == 0
            || !broadcasts_to(bias, [b, heads, t, t])
        {
            return None;
        }
        let input = strided_act(qkv).map(into_contiguous)?;
        let a_type = elem_type(input.dtype)?;
        let bias = strided(bias)?;
        let rows = b * heads * t;
        let context = empty_device_dtype(
            input.client.clone(),
            input.device.clone(),
            [b, t, d3 / 3].into(),
            input.dtype,
        );
        let (count, dim) = train::elementwise_launch(&input, rows);
        unsafe {
            qkv_attention_kernel::launch_unchecked(
                &input.client.clone(),
                count,
                dim,
                input.into_tensor_arg(),
                bias.into_tensor_arg(),
                context.clone().into_tensor_arg(),
                rows,
                heads,
                t,
                scale as f32,
                dh,
                a_type,
            )
        };
        Some(wrap(context))
    }

    /// Keys per cube the attention kernel keeps in shared memory (16 KiB of f32).
    const MAX_KEYS: usize = 4096;

    /// What both attention kernels take: `q` `[b, h, t, dh]`, `k` and `v` `[b, h / groups, n,
    /// dh]` (one type, f32 or f16) and `bias` (f32, broadcast to `[b, h, t, n]`) as cubecl
    /// tensors read through their strides, their element type, the output `[b, t, h * dh]` and
    /// its `b * h * t` rows; `None` where the shapes do not agree or there is nothing to do.
    struct AttentionOperands {
        q: CubeTensor,
        k: CubeTensor,
        v: CubeTensor,
        bias: CubeTensor,
        a_type: ElemType,
        output: CubeTensor,
        rows: usize,
    }

    impl AttentionOperands {
        fn of(q: &Burn<4>, k: &Burn<4>, v: &Burn<4>, bias: &Burn<4>) -> Option<Self> {
            let [b, h, t, dh] = q.dims();
            let [kb, kh, n, kdh] = k.dims();
            if [kb, kh, n, kdh] != v.dims()
                || kb != b
                || kh == 0
                || h % kh != 0
                || kdh != dh
                || n == 0
                || t == 0
                || !broadcasts_to(bias, [b, h, t, n])
            {
                return None;
            }
            let (q, k, v, bias) = (
                strided_act(q)?,
                strided_act(k)?,
                strided_act(v)?,
                strided(bias)?,
            );
            if k.dtype != q.dtype || v.dtype != q.dtype {
                return None;
            }
            let a_type = elem_type(q.dtype)?;
            let output = empty_device_dtype(
                q.client.clone(),
                q.device.clone(),
                [b, t, h * dh].into(),
                q.dtype,
            );
            Some(Self {
                q,
                k,
                v,
                bias,
                a_type,
                output,
                rows: b * h * t,
            })
        }
    }

    pub fn attention(
        q: &Burn<4>,
        k: &Burn<4>,
        v: &Burn<4>,
        scale: f64,
        bias: &Burn<4>,
    ) -> Option<Burn<3>> {
        let n = k.dims()[2];
        if n > MAX_KEYS {
            return None;
        }
        let o = AttentionOperands::of(q, k, v, bias)?;
        let (count, dim, units) = row_launch(&o.q, o.rows);
        unsafe {
            attention_kernel::launch_unchecked(
                &o.q.client.clone(),
                count,
                dim,
                o.q.into_tensor_arg(),
                o.k.into_tensor_arg(),
                o.v.into_tensor_arg(),
                o.bias.into_tensor_arg(),
                o.output.clone().into_tensor_arg(),
                o.rows,
                scale as f32,
                units as usize,
                n,
                o.a_type,
            )
        };
        Some(wrap(o.output))
    }
}
