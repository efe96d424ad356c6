//! The engine's own CPU kernels, on burn's Flex backend (the CPU path, natively and in wasm),
//! where burn composes many passes over memory: layer norm (nine element-wise passes and two
//! reductions, each allocating), the erf GELU (a scalar `libm` call per element), the bias with
//! the activation or the residual after a matmul (a pass each), and attention (the heads copied
//! out of the fused query/key/value buffer for two batched matmuls of a few dozen rows, a softmax
//! of four passes, and the heads copied back). Profiled natively on all-MiniLM-L6-v2, batch 32 ×
//! 32, one thread (`perf record` on `examples/bench_encoder.rs`): the erf alone took 15% of the
//! time, the copies 10%, the exponentials 4%, against 51% in the matmuls.
//!
//! Each kernel computes what the composition it replaces computes, in one pass (two for layer
//! norm's statistics), in place where the input is not shared, and with loops written so that
//! LLVM vectorises them: eight independent accumulators instead of one running sum, and exp and
//! erf as branch-free polynomials (`simd128` in wasm; natively SSE, or AVX2+FMA where the CPU has
//! them, picked at run time). They apply to f32 tensors on Flex without autodiff. Inside
//! training's graph, [`tracked`] runs the same loops as autodiff ops with their own backward
//! steps (activations, attention probabilities, dropout, embedding lookups), and [`adamw`] does
//! the optimiser's step in one pass. `tests/kernels_cpu.rs` compares each with the composition
//! (outputs and gradients), and the models' golden tests and transformers' training traces run
//! through them.
//!
//! The matmuls themselves stay burn's (gemm).

#![allow(clippy::result_large_err)] // a kernel that does not apply gives its input back

use std::cell::Cell;

use burn::backend::Flex;
use burn::tensor::{Bytes, DType, Tensor};
use burn_flex::{FlexTensor, Layout};

use super::config::Activation;
use super::matmul::Strided;

thread_local! {
    static OFF: Cell<bool> = const { Cell::new(false) };
}

static CALLS: std::sync::atomic::AtomicU64 = std::sync::atomic::AtomicU64::new(0);

/// How many times a kernel here has run (in this process): the tests check that a kernel, not
/// the composition, computed what they compare.
pub fn calls() -> u64 {
    CALLS.load(std::sync::atomic::Ordering::Relaxed)
}

pub(crate) fn count() {
    CALLS.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
}

/// Turns these kernels off (or back on) on this thread, for a benchmark that measures what they
/// gain in one build; [`composed`] is the scoped form.
pub fn set_enabled(on: bool) {
    OFF.with(|o| o.set(!on));
}

/// Runs `f` with these kernels off on this thread: burn's composition instead (the tests'
/// reference; ops on Flex run eagerly, inside `f`).
pub fn composed<T>(f: impl FnOnce() -> T) -> T {
    let was = OFF.with(|o| o.replace(true));
    let out = f();
    OFF.with(|o| o.set(was));
    out
}

/// Whether the kernels are on (natively `TUNELAB_FUSED_KERNELS=0` turns them off, as it does the
/// GPU ones, so that a benchmark can measure what they gain).
pub fn enabled() -> bool {
    !OFF.with(Cell::get) && fused_kernels_allowed()
}

/// Whether the environment lets the engine's own kernels run, on the CPU and the GPU alike:
/// natively unless `TUNELAB_FUSED_KERNELS=0`, always in the browser.
pub(super) fn fused_kernels_allowed() -> bool {
    #[cfg(not(target_arch = "wasm32"))]
    {
        static ON: std::sync::OnceLock<bool> = std::sync::OnceLock::new();
        *ON.get_or_init(|| std::env::var("TUNELAB_FUSED_KERNELS").map_or(true, |v| v != "0"))
    }
    #[cfg(target_arch = "wasm32")]
    true
}

/// The Flex tensor under `x` when the kernels apply: f32, on Flex, without autodiff.
fn flex<const D: usize>(x: &Tensor<D>) -> Option<FlexTensor> {
    if !enabled() || x.is_autodiff() || x.dtype() != DType::F32 {
        return None;
    }
    x.clone().try_into_primitive::<Flex>().ok()
}

/// Whether the kernels apply to `x`.
pub fn applies<const D: usize>(x: &Tensor<D>) -> bool {
    flex(x).is_some()
}

/// `x`'s Flex tensor, `x` itself given up (so that its buffer may be unique), or `x` back.
fn take<const D: usize>(x: Tensor<D>) -> Result<FlexTensor, Tensor<D>> {
    match flex(&x) {
        Some(t) => {
            drop(x);
            Ok(t)
        }
        None => Err(x),
    }
}

fn wrap<const D: usize>(t: FlexTensor) -> Tensor<D> {
    count();
    Tensor::from_primitive::<Flex>(t)
}

fn new_tensor(values: Vec<f32>, shape: &[usize]) -> FlexTensor {
    FlexTensor::new(
        Bytes::from_elems(values),
        Layout::contiguous(shape.to_vec().into()),
        DType::F32,
    )
}

/// Whether `t` covers its whole buffer in row-major order.
fn dense(t: &FlexTensor) -> bool {
    t.is_contiguous()
        && t.layout().start_offset() == 0
        && t.bytes().len() == t.layout().num_elements() * 4
}

/// `t`'s values in row-major order (a view where `t` is contiguous, wherever it starts in its
/// buffer: a parameter's view into the optimiser's flat buffer; else a copy).
fn values(t: &FlexTensor) -> std::borrow::Cow<'_, [f32]> {
    if dense(t) {
        std::borrow::Cow::Borrowed(t.storage::<f32>())
    } else if t.is_contiguous() {
        let (at, n) = (t.layout().start_offset(), t.layout().num_elements());
        std::borrow::Cow::Borrowed(&t.storage::<f32>()[at..at + n])
    } else {
        std::borrow::Cow::Owned(t.to_contiguous().storage::<f32>().to_vec())
    }
}

/// `t` as a dense buffer this code may write: `t` itself where it is dense and not shared,
/// else a copy.
fn owned(t: FlexTensor) -> FlexTensor {
    if dense(&t) && t.is_unique() {
        return t;
    }
    let shape: Vec<usize> = t.layout().shape().to_vec();
    new_tensor(values(&t).into_owned(), &shape)
}

fn writable(t: &mut FlexTensor) -> &mut [f32] {
    t.try_storage_mut::<f32>()
        .expect("a dense, unshared buffer (made by `owned`)")
}

/// Runs `f` on each `len`-long row of `out` with its index: on several threads natively when
/// the work is big enough to pay for them (burn's own CPU ops use rayon there too), in order in
/// wasm (one thread per engine).
fn rows_mut(out: &mut [f32], len: usize, f: impl Fn(usize, &mut [f32]) + Sync + Send) {
    let big = out.len() >= 1 << 15;
    rows_mut_if(big, out, len, f);
}

/// [`rows_mut`], on several threads natively where `big` says the work pays for them (work that
/// the output's length does not measure: a product's depth).
fn rows_mut_if(
    big: bool,
    out: &mut [f32],
    len: usize,
    f: impl Fn(usize, &mut [f32]) + Sync + Send,
) {
    let len = len.max(1);
    #[cfg(target_arch = "wasm32")]
    let _ = big;
    #[cfg(not(target_arch = "wasm32"))]
    if big {
        use rayon::prelude::*;
        out.par_chunks_mut(len)
            .enumerate()
            .for_each(|(i, row)| f(i, row));
        return;
    }
    for (i, row) in out.chunks_mut(len).enumerate() {
        f(i, row);
    }
}

/// Lanes of the accumulators: eight f32 fill an AVX2 register and two `simd128` ones.
const LANES: usize = 8;

#[inline(always)]
fn sum(a: &[f32]) -> f32 {
    let mut acc = [0.0f32; LANES];
    let mut c = a.chunks_exact(LANES);
    for x in &mut c {
        for l in 0..LANES {
            acc[l] += x[l];
        }
    }
    acc.iter().sum::<f32>() + c.remainder().iter().sum::<f32>()
}

/// The largest of `a` (`-inf` when empty; a NaN is passed over), with [`LANES`] running maxima
/// that LLVM keeps in vector registers (`f32::max` in one running value stays scalar: its NaN
/// rule has no vector instruction in wasm).
#[inline(always)]
fn row_max(a: &[f32]) -> f32 {
    let mut acc = [f32::NEG_INFINITY; LANES];
    let mut c = a.chunks_exact(LANES);
    for x in &mut c {
        for l in 0..LANES {
            acc[l] = if x[l] > acc[l] { x[l] } else { acc[l] };
        }
    }
    let rest = c
        .remainder()
        .iter()
        .fold(f32::NEG_INFINITY, |m, &x| if x > m { x } else { m });
    acc.iter().fold(rest, |m, &x| if x > m { x } else { m })
}

/// `e^x` for f32, branch-free (so that loops over it vectorise): `x = n ln 2 + r` with
/// `|r| ≤ ln 2 / 2`, `e^r` by Cephes' `expf` polynomial, `2^n` written into the exponent bits.
/// Relative error about 2 ulp; exactly 0 below -87.33 (where f32 goes subnormal), as a
/// softmax needs for hidden keys.
#[inline(always)]
pub fn exp(x: f32) -> f32 {
    const LOG2E: f32 = std::f32::consts::LOG2_E;
    const LN2_HI: f32 = 0.693_359_4;
    const LN2_LO: f32 = -2.121_944_4e-4;
    // 1.5 * 2^23: adding it rounds to an integer kept in the low mantissa bits.
    const SHIFTER: f32 = 12_582_912.0;
    let xc = x.clamp(-87.33, 88.0);
    let t = xc * LOG2E + SHIFTER;
    let n = t - SHIFTER;
    let ni = (t.to_bits() as i32).wrapping_sub(SHIFTER.to_bits() as i32);
    let r = xc - n * LN2_HI - n * LN2_LO;
    let r2 = r * r;
    let p = ((((1.987_569_1e-4 * r + 1.398_199_9e-3) * r + 8.333_452e-3) * r + 4.166_579_6e-2) * r
        + 1.666_666_5e-1)
        * r
        + 0.5;
    let er = p * r2 + r + 1.0;
    // Wrapping: an overflow check here (debug builds have them) would stop the vectorisation.
    let scale = f32::from_bits((ni.wrapping_add(127) as u32) << 23);
    if x < -87.33 {
        0.0
    } else {
        er * scale
    }
}

/// `erf(x)` for f32, branch-free: Abramowitz and Stegun 7.1.26 (absolute error ≤ 1.5e-7, under
/// 1e-6 with f32 rounding).
#[inline(always)]
pub fn erf(x: f32) -> f32 {
    let a = x.abs();
    let t = 1.0 / (1.0 + 0.327_591_1 * a);
    let poly = ((((1.061_405_4 * t - 1.453_152_1) * t + 1.421_413_7) * t - 0.284_496_74) * t
        + 0.254_829_6)
        * t;
    let y = 1.0 - poly * exp(-a * a);
    y.copysign(x)
}

/// `tanh(x)` for f32, branch-free: `1 - 2 / (e^{2x} + 1)`.
#[inline(always)]
fn tanh(x: f32) -> f32 {
    1.0 - 2.0 / (exp(2.0 * x) + 1.0)
}

#[inline(always)]
fn gelu(x: f32) -> f32 {
    0.5 * x * (1.0 + erf(x * std::f32::consts::FRAC_1_SQRT_2))
}

#[inline(always)]
fn gelu_tanh(x: f32) -> f32 {
    const C: f32 = 0.797_884_6; // sqrt(2 / pi)
    0.5 * x * (1.0 + tanh(C * (x + 0.044_715 * x * x * x)))
}

simd_fn! {
    /// `row = act(row + bias)` (no bias: `bias` empty).
    fn bias_act_row(row: &mut [f32], bias: &[f32], act: Activation) {
        let with_bias = !bias.is_empty();
        match (act, with_bias) {
            (Activation::Gelu, true) => row.iter_mut().zip(bias).for_each(|(y, b)| *y = gelu(*y + b)),
            (Activation::Gelu, false) => row.iter_mut().for_each(|y| *y = gelu(*y)),
            (Activation::GeluTanh, true) => {
                row.iter_mut().zip(bias).for_each(|(y, b)| *y = gelu_tanh(*y + b))
            }
            (Activation::GeluTanh, false) => row.iter_mut().for_each(|y| *y = gelu_tanh(*y)),
            (Activation::Relu, true) => row.iter_mut().zip(bias).for_each(|(y, b)| *y = (*y + b).max(0.0)),
            (Activation::Relu, false) => row.iter_mut().for_each(|y| *y = y.max(0.0)),
        }
    }
}

simd_fn! {
    /// `row = row + bias (+ residual)` (no residual: `residual` empty).
    fn bias_residual_row(row: &mut [f32], bias: &[f32], residual: &[f32]) {
        if residual.is_empty() {
            row.iter_mut().zip(bias).for_each(|(y, b)| *y += b);
        } else {
            row.iter_mut()
                .zip(bias)
                .zip(residual)
                .for_each(|((y, b), r)| *y = *y + b + r);
        }
    }
}

/// A row's mean and `1 / sqrt(var + eps)` (the biased variance, in two passes), for inlining
/// into the layer norm kernels.
#[inline(always)]
fn mean_rstd(row: &[f32], eps: f32) -> (f32, f32) {
    let d = row.len() as f32;
    let mean = sum(row) / d;
    let mut acc = [0.0f32; LANES];
    let mut c = row.chunks_exact(LANES);
    for x in &mut c {
        for l in 0..LANES {
            let v = x[l] - mean;
            acc[l] += v * v;
        }
    }
    let mut sq = acc.iter().sum::<f32>();
    for x in c.remainder() {
        sq += (x - mean) * (x - mean);
    }
    (mean, 1.0 / (sq / d + eps).sqrt())
}

simd_fn! {
    /// One row's layer norm, in place.
    fn layer_norm_row(row: &mut [f32], g: &[f32], b: &[f32], eps: f32) {
        let (mean, inv) = mean_rstd(row, eps);
        for ((x, g), b) in row.iter_mut().zip(g).zip(b) {
            *x = (*x - mean) * inv * g + b;
        }
    }
}

simd_fn! {
    /// One row's RMSNorm, in place: `x / sqrt(mean(x²) + eps) * w`.
    fn rms_norm_row(row: &mut [f32], w: &[f32], eps: f32) {
        let d = row.len() as f32;
        let mut acc = [0.0f32; LANES];
        let mut c = row.chunks_exact(LANES);
        for x in &mut c {
            for l in 0..LANES {
                acc[l] += x[l] * x[l];
            }
        }
        let mut sq = acc.iter().sum::<f32>();
        for x in c.remainder() {
            sq += x * x;
        }
        let inv = 1.0 / (sq / d + eps).sqrt();
        for (x, w) in row.iter_mut().zip(w) {
            *x = *x * inv * w;
        }
    }
}

/// Lanes of [`dot_rows`]' accumulators: four `simd128` registers (two AVX2 ones), so that a
/// streamed dot product is not held to one add's latency per vector.
const DOT_LANES: usize = 16;

simd_fn! {
    /// `out[j] = x · w_j` for the consecutive rows `w_j` (each `x.len()` long) of `w`: one
    /// streamed pass over `w`.
    fn dot_rows(out: &mut [f32], x: &[f32], w: &[f32]) {
        let k = x.len();
        for (o, row) in out.iter_mut().zip(w.chunks_exact(k)) {
            let mut acc = [0.0f32; DOT_LANES];
            let mut rc = row.chunks_exact(DOT_LANES);
            let mut xc = x.chunks_exact(DOT_LANES);
            for (r, xs) in (&mut rc).zip(&mut xc) {
                for l in 0..DOT_LANES {
                    acc[l] += r[l] * xs[l];
                }
            }
            let mut s = 0.0f32;
            for (r, xs) in rc.remainder().iter().zip(xc.remainder()) {
                s += r * xs;
            }
            // Pairwise, as the lanes of two halves would be added in registers.
            let mut half = DOT_LANES / 2;
            while half > 0 {
                for l in 0..half {
                    acc[l] += acc[l + half];
                }
                half /= 2;
            }
            *o = acc[0] + s;
        }
    }
}

/// `x` `[m, k]` times the transpose of `w` `[n, k]` (row-major) into `out` `[m, n]`: a dot
/// product per row of `w` and row of `x`, each row of `w` read from memory once (for a few rows
/// of `x`: decoding). Natively in blocks of rows on several threads.
pub fn times_rows_transposed(x: &[f32], m: usize, w: &[f32], n: usize, out: &mut [f32]) {
    let k = w.len() / n.max(1);
    assert!(x.len() == m * k && out.len() == m * n && w.len() == n * k);
    // `[n, m]` (the same as `[m, n]` for one row): row `j` of `w` against every row of `x`
    // while it is in the cache.
    let mut by_row = if m == 1 {
        Vec::new()
    } else {
        vec![0.0f32; n * m]
    };
    let target = if m == 1 {
        &mut out[..]
    } else {
        &mut by_row[..]
    };
    let block = |b: usize, o: &mut [f32]| {
        let j0 = b * TRANSPOSED_BLOCK;
        let rows = o.len() / m;
        let wb = &w[j0 * k..(j0 + rows) * k];
        if m == 1 {
            dot_rows(o, x, wb);
            return;
        }
        let mut one = [0.0f32; 1];
        for (row, oj) in wb.chunks_exact(k).zip(o.chunks_mut(m)) {
            for (i, v) in oj.iter_mut().enumerate() {
                dot_rows(&mut one, &x[i * k..(i + 1) * k], row);
                *v = one[0];
            }
        }
    };
    rows_mut_if(n * k >= 1 << 18, target, TRANSPOSED_BLOCK * m, block);
    if m > 1 {
        for (j, r) in by_row.chunks_exact(m).enumerate() {
            for (i, v) in r.iter().enumerate() {
                out[i * n + j] = *v;
            }
        }
    }
}

/// Rows of the weight per block of [`times_rows_transposed`] (a task natively).
const TRANSPOSED_BLOCK: usize = 256;

simd_fn! {
    /// `row = softmax(row * scale + bias)`, in place.
    fn softmax_row(row: &mut [f32], bias: &[f32], scale: f32) {
        softmax_core(row, bias, scale);
    }
}

simd_fn! {
    /// One query's attention: `p` (scratch, `n` long) gets the scores of `q` against the keys,
    /// scaled, biased and softmaxed; `out` (`dh` long) gets `Σ p_j v_j` over the value rows whose
    /// weight is not exactly 0 (row `j` at `values[j * stride..]`). The keys are `keys`
    /// transposed (`[dh, n]`: the scores are `dh` vector updates over all keys) when `k_stride`
    /// is 0, else key `j`'s row at `keys[j * k_stride..]` (one dot product per key: for a few
    /// queries, where transposing the keys would cost more than it saves).
    fn attend_row(
        out: &mut [f32],
        p: &mut [f32],
        q: &[f32],
        keys: &[f32],
        k_stride: usize,
        bias: &[f32],
        scale: f32,
        values: &[f32],
        stride: usize,
    ) {
        let dh = out.len();
        let n = p.len();
        if k_stride == 0 {
            p.fill(0.0);
            for (c, &qc) in q.iter().enumerate() {
                let kc = &keys[c * n..(c + 1) * n];
                for (pj, kj) in p.iter_mut().zip(kc) {
                    *pj += qc * kj;
                }
            }
        } else {
            for (j, pj) in p.iter_mut().enumerate() {
                let at = j * k_stride;
                *pj = dot(q, &keys[at..at + dh]);
            }
        }
        softmax_core(p, bias, scale);
        for (j, &pj) in p.iter().enumerate() {
            if pj == 0.0 {
                continue;
            }
            let v = &values[j * stride..j * stride + dh];
            for (o, v) in out.iter_mut().zip(v) {
                *o += pj * v;
            }
        }
    }
}

/// `Σ a[i] b[i]` with [`LANES`] independent partial sums (which LLVM keeps in vector registers).
#[inline(always)]
fn dot(a: &[f32], b: &[f32]) -> f32 {
    let mut acc = [0.0f32; LANES];
    let mut ca = a.chunks_exact(LANES);
    let mut cb = b.chunks_exact(LANES);
    for (x, y) in (&mut ca).zip(&mut cb) {
        for l in 0..LANES {
            acc[l] += x[l] * y[l];
        }
    }
    let mut s = acc.iter().sum::<f32>();
    for (x, y) in ca.remainder().iter().zip(cb.remainder()) {
        s += x * y;
    }
    s
}

/// [`softmax_row`]'s body, for inlining into other kernels.
#[inline(always)]
fn softmax_core(row: &mut [f32], bias: &[f32], scale: f32) {
    for (x, b) in row.iter_mut().zip(bias) {
        *x = *x * scale + b;
    }
    let max = row_max(row);
    for x in row.iter_mut() {
        *x = exp(*x - max);
    }
    let inv = 1.0 / sum(row);
    for x in row.iter_mut() {
        *x *= inv;
    }
}

/// Layer norm over the last dimension: `(x - mean) / sqrt(var + eps) * gamma + beta`.
/// RMSNorm over the last dimension (`x / sqrt(mean(x²) + eps) * weight`), one pass per row.
#[allow(clippy::result_large_err)] // gives its input back
pub fn rms_norm<const D: usize>(
    x: Tensor<D>,
    weight: &Tensor<1>,
    eps: f64,
) -> Result<Tensor<D>, Tensor<D>> {
    let Some(w) = flex(weight) else {
        return Err(x);
    };
    let d = x.dims()[D - 1];
    if w.layout().num_elements() != d {
        return Err(x);
    }
    let mut t = owned(take(x)?);
    let w = values(&w);
    let (w, eps) = (&*w, eps as f32);
    rows_mut(writable(&mut t), d, |_, row| rms_norm_row(row, w, eps));
    Ok(wrap(t))
}

pub fn layer_norm<const D: usize>(
    x: Tensor<D>,
    gamma: &Tensor<1>,
    beta: &Tensor<1>,
    eps: f64,
) -> Result<Tensor<D>, Tensor<D>> {
    let (Some(g), Some(b)) = (flex(gamma), flex(beta)) else {
        return Err(x);
    };
    let d = x.dims()[D - 1];
    if g.layout().num_elements() != d || b.layout().num_elements() != d {
        return Err(x);
    }
    let mut t = owned(take(x)?);
    let (g, b) = (values(&g), values(&b));
    let eps = eps as f32;
    let (g, b) = (&*g, &*b);
    rows_mut(writable(&mut t), d, |_, row| layer_norm_row(row, g, b, eps));
    Ok(wrap(t))
}

/// `act(y + bias)`, or `y + bias + residual`, over `y`'s last dimension, in place where `y` is
/// not shared (a matmul's fresh output).
pub fn add_bias<const D: usize>(
    y: Tensor<D>,
    bias: &Tensor<1>,
    residual: Option<&Tensor<D>>,
    activation: Option<Activation>,
) -> Result<Tensor<D>, Tensor<D>> {
    let n = y.dims()[D - 1];
    let Some(bias) = flex(bias) else {
        return Err(y);
    };
    let residual = match residual {
        Some(r) if r.dims() != y.dims() => return Err(y),
        Some(r) => match flex(r) {
            Some(r) => Some(r),
            None => return Err(y),
        },
        None => None,
    };
    if bias.layout().num_elements() != n {
        return Err(y);
    }
    let mut t = owned(take(y)?);
    let bias = values(&bias);
    let residual = residual.as_ref().map(values);
    let (bias, residual) = (&*bias, residual.as_deref());
    rows_mut(writable(&mut t), n, |i, row| match (residual, activation) {
        (Some(r), _) => bias_residual_row(row, bias, &r[i * n..(i + 1) * n]),
        (None, Some(a)) => bias_act_row(row, bias, a),
        (None, None) => bias_residual_row(row, bias, &[]),
    });
    Ok(wrap(t))
}

/// The activation, in place where `x` is not shared.
pub fn activate<const D: usize>(x: Tensor<D>, a: Activation) -> Result<Tensor<D>, Tensor<D>> {
    let mut t = owned(take(x)?);
    rows_mut(writable(&mut t), 4096, |_, row| bias_act_row(row, &[], a));
    Ok(wrap(t))
}

/// `x` `[m, k]` times `w` `[k, n]` (any non-negative strides: a weight laid out row-major at
/// load is read in place, a transposed view packed first) by the engine's blocked product
/// ([`super::matmul`]).
pub fn matmul(x: &Tensor<2>, w: &Tensor<2>) -> Option<Tensor<2>> {
    let (xt, wt) = (flex(x)?, flex(w)?);
    let [m, k] = x.dims();
    let [k2, n] = w.dims();
    let strides = wt.layout().strides();
    if k != k2 || strides.iter().any(|&s| s < 0) {
        return None;
    }
    let b = Strided {
        data: wt.storage::<f32>(),
        offset: wt.layout().start_offset(),
        rs: strides[0] as usize,
        cs: strides[1] as usize,
    };
    let mut out = vec![0.0f32; m * n];
    super::matmul::matmul(Strided::rows(&values(&xt), k), b, &mut out, n, m, k, n);
    Some(wrap(new_tensor(out, &[m, n])))
}

/// From this many queries per head on, [`attention`] transposes each head's keys first.
const TRANSPOSED_KEYS_MIN_QUERIES: usize = 8;

/// A view of a 4-D tensor's values as `[a][b][c][d]` with element strides, the last one 1;
/// size-1 dimensions get stride 0 (broadcast).
struct View<'a> {
    data: &'a [f32],
    offset: usize,
    strides: [usize; 3],
    shape: [usize; 4],
}

impl<'a> View<'a> {
    /// `t`, read as it is when its strides are non-negative and its rows contiguous.
    fn of(t: &'a FlexTensor) -> Option<Self> {
        let layout = t.layout();
        let shape: Vec<usize> = layout.shape().to_vec();
        let strides = layout.strides();
        if shape.len() != 4 || strides.iter().any(|&s| s < 0) || (shape[3] > 1 && strides[3] != 1) {
            return None;
        }
        let stride = |i: usize| {
            if shape[i] == 1 {
                0
            } else {
                strides[i] as usize
            }
        };
        Some(Self {
            data: t.storage::<f32>(),
            offset: layout.start_offset(),
            strides: [stride(0), stride(1), stride(2)],
            shape: [shape[0], shape[1], shape[2], shape[3]],
        })
    }

    /// The row at `[a, b, c]` (indices past a broadcast dimension read its one row).
    #[inline(always)]
    fn row(&self, a: usize, b: usize, c: usize) -> &'a [f32] {
        let at = self.offset + a * self.strides[0] + b * self.strides[1] + c * self.strides[2];
        &self.data[at..at + self.shape[3]]
    }
}

/// Attention of `q` `[b, h, t, dh]` over `k`, `v` `[b, h, n, dh]` with `bias` broadcast to
/// `[b, h, t, n]`: `softmax(q kᵀ * scale + bias) v`, returned as `[b, t, h * dh]` (heads merged).
/// One pass per query: its scores, their softmax, and the weighted sum of the values, read in
/// place from the strided views the model makes (the heads of the fused query/key/value matmul,
/// or the KV cache), and written where the merged heads go. Keys whose weight is exactly 0 (the
/// unused part of a KV cache) add nothing and are skipped.
pub fn attention(
    q: &Tensor<4>,
    k: &Tensor<4>,
    v: &Tensor<4>,
    scale: f64,
    bias: &Tensor<4>,
) -> Option<Tensor<3>> {
    let (qt, kt, vt, bt) = (flex(q)?, flex(k)?, flex(v)?, flex(bias)?);
    let [b, h, t, dh] = q.dims();
    let n = k.dims()[2];
    if k.dims() != [b, h, n, dh] || v.dims() != [b, h, n, dh] || dh == 0 {
        return None;
    }
    let bd = bias.dims();
    let fits = |got: usize, want: usize| got == want || got == 1;
    if !(fits(bd[0], b) && fits(bd[1], h) && fits(bd[2], t) && bd[3] == n) {
        return None;
    }
    // Views that cannot be read in place (a reversed or column-strided one) are copied once.
    let readable = |x: FlexTensor| {
        if View::of(&x).is_some() {
            x
        } else {
            x.to_contiguous()
        }
    };
    let (qt, kt, vt, bt) = (readable(qt), readable(kt), readable(vt), readable(bt));
    let (qv, kv, vv, bv) = (
        View::of(&qt)?,
        View::of(&kt)?,
        View::of(&vt)?,
        View::of(&bt)?,
    );
    let scale = scale as f32;
    // Many queries: each block by two matrix products, over the keys some query may see.
    let used: Vec<usize> = if t >= PRODUCT_MIN_QUERIES {
        let mut used = Vec::with_capacity(b * h);
        for unit in 0..b * h {
            let (bi, hi) = (unit / h, unit % h);
            // A bias shared by the heads is scanned once per example.
            used.push(if hi > 0 && bv.strides[1] == 0 {
                used[unit - 1]
            } else {
                seen_keys(&bv, bi, hi, t, n)
            });
        }
        used
    } else {
        Vec::new()
    };
    // Each (example, head) computes its `[t, dh]` block here; the heads are merged after.
    let mut heads = vec![0.0f32; b * h * t * dh];
    rows_mut(&mut heads, t * dh, |unit, block| {
        let (bi, hi) = (unit / h, unit % h);
        if let Some(&keys) = used.get(unit) {
            attend_block(block, [&qv, &kv, &vv, &bv], bi, hi, keys, scale);
            return;
        }
        // Many queries: the keys transposed, `[dh, n]`, so that a query's scores are `dh` vector
        // updates over all keys at once (no horizontal sums). A few (decoding): read in place.
        let first_key = kv.offset + bi * kv.strides[0] + hi * kv.strides[1];
        let transposed: Vec<f32>;
        let (keys, k_stride) = if t >= TRANSPOSED_KEYS_MIN_QUERIES || kv.strides[2] == 0 {
            let mut k = vec![0.0f32; dh * n];
            for j in 0..n {
                for (c, &x) in kv.row(bi, hi, j).iter().enumerate() {
                    k[c * n + j] = x;
                }
            }
            transposed = k;
            (&transposed[..], 0)
        } else {
            (&kv.data[first_key..], kv.strides[2])
        };
        let mut p = vec![0.0f32; n];
        // The values from the first key's row on, one row every `stride`.
        let first = vv.offset + bi * vv.strides[0] + hi * vv.strides[1];
        let (values, stride) = (&vv.data[first..], vv.strides[2]);
        for (i, o) in block.chunks_exact_mut(dh).enumerate() {
            let (q, bias) = (qv.row(bi, hi, i), bv.row(bi, hi, i));
            attend_row(o, &mut p, q, keys, k_stride, bias, scale, values, stride);
        }
    });
    let width = h * dh;
    let mut out = vec![0.0f32; b * t * width];
    rows_mut(&mut out, width, |r, row| {
        let (bi, i) = (r / t, r % t);
        for (hi, o) in row.chunks_exact_mut(dh).enumerate() {
            let at = ((bi * h + hi) * t + i) * dh;
            o.copy_from_slice(&heads[at..at + dh]);
        }
    });
    Some(wrap(new_tensor(out, &[b, t, width])))
}

/// `x` `[m, k]` times a weight `w` `[k, n]` (an inference model's, loaded on its own) by the
/// engine's blocked product, `w` packed once and kept ([`packed_weight`]) instead of packed
/// at every call: a packing pass reads the weight from memory before the product starts, and
/// for one 128-token text that took 14.5% of all-MiniLM-L6-v2's time in wasm (Chromium's
/// profiler, `scripts/bench.sh wasm-profile`), where the product reading a packed copy overlaps
/// its reads with work.
pub fn matmul_weight(x: &Tensor<2>, w: &Tensor<2>) -> Option<Tensor<2>> {
    let (xt, wt) = (flex(x)?, flex(w)?);
    let [m, k] = x.dims();
    let [k2, n] = w.dims();
    if k != k2 || wt.layout().strides().iter().any(|&s| s < 0) {
        return None;
    }
    let packed = packed_weight(&wt, k, n, super::memory::PACKED_WEIGHTS_BUDGET);
    let mut out = vec![0.0f32; m * n];
    super::matmul::matmul_packed(&values(&xt), &packed, &mut out, m, k, n);
    Some(wrap(new_tensor(out, &[m, n])))
}

/// `x` `[m, k]` times `w` `[k, n]` where `w` is the transposed view of a row-major `[n, k]`
/// matrix (a language model's head over its vocabulary table; a decoder's layers on the CPU,
/// `Weights::keep_output_rows`) and `x` has at most [`TRANSPOSED_MAX_ROWS`] rows (decoding): a
/// dot product per row of `w`'s matrix ([`times_rows_transposed`]); `None` otherwise. gemm reads
/// the LM head's view at 25.7 GB/s in wasm, this at 38.6 (`scripts/bench.sh wasm-parts`).
pub fn matmul_transposed_weight(x: &Tensor<2>, w: &Tensor<2>) -> Option<Tensor<2>> {
    let [m, k] = x.dims();
    let [k2, n] = w.dims();
    if k != k2 || m == 0 || m > TRANSPOSED_MAX_ROWS || k == 0 || n == 0 {
        return None;
    }
    let (xt, wt) = (flex(x)?, flex(w)?);
    let layout = wt.layout();
    let strides = layout.strides();
    if strides[0] != 1 || strides[1] != k as isize {
        return None;
    }
    let at = layout.start_offset();
    let table = wt.storage::<f32>().get(at..at + n * k)?;
    let mut out = vec![0.0f32; m * n];
    times_rows_transposed(&values(&xt), m, table, n, &mut out);
    Some(wrap(new_tensor(out, &[m, n])))
}

/// The most rows of `x` [`matmul_transposed_weight`] takes: beyond, the weight's reads are
/// shared by enough rows that gemm's blocked product is faster.
pub const TRANSPOSED_MAX_ROWS: usize = 4;

/// A weight's packed layout ([`super::matmul::pack_b`]), with the buffer it was packed from.
struct PackedWeight {
    /// Shared with the weight: while the cache holds it, no op writes into it (burn's and the
    /// engine's ops write in place only into a buffer no one else holds), so the packed copy
    /// stays what the weight holds.
    data: std::sync::Arc<Bytes>,
    /// The weight's layout: start, strides, `[k, n]`.
    key: (usize, [isize; 2], [usize; 2]),
    packed: std::rc::Rc<Vec<f32>>,
}

thread_local! {
    static PACKED: std::cell::RefCell<Vec<PackedWeight>> = const { std::cell::RefCell::new(Vec::new()) };
}

/// `wt` `[k, n]` packed: the copy kept from an earlier call, or packed now and kept when `wt`
/// owns its whole buffer (a weight loaded on its own; not a view into a bigger buffer, such
/// as the optimiser's flat one that training updates in place) and the kept copies stay
/// within `budget` bytes (`memory::PACKED_WEIGHTS_BUDGET`, counted in the engine's reserve).
/// Copies whose weight only the cache still holds (its model dropped)
/// are let go first.
fn packed_weight(wt: &FlexTensor, k: usize, n: usize, budget: usize) -> std::rc::Rc<Vec<f32>> {
    let layout = wt.layout();
    let strides = layout.strides();
    let key = (layout.start_offset(), [strides[0], strides[1]], [k, n]);
    let data = wt.data_arc();
    PACKED.with(|cell| {
        let mut kept = cell.borrow_mut();
        let_go_of_dropped(&mut kept);
        if let Some(p) = kept
            .iter()
            .find(|p| std::sync::Arc::ptr_eq(&p.data, &data) && p.key == key)
        {
            return p.packed.clone();
        }
        let packed = std::rc::Rc::new(super::matmul::pack_b(
            wt.storage::<f32>(),
            key.0,
            key.1[0] as usize,
            key.1[1] as usize,
            k,
            n,
        ));
        let used: usize = kept.iter().map(|p| p.packed.len() * 4).sum();
        let owns_buffer = key.0 == 0 && data.len() == k * n * 4;
        if owns_buffer && used + packed.len() * 4 <= budget {
            kept.push(PackedWeight {
                data,
                key,
                packed: packed.clone(),
            });
        }
        packed
    })
}

/// How many packed weights are kept, and their bytes.
#[cfg(test)]
fn packed_weights() -> (usize, usize) {
    PACKED.with(|cell| {
        let kept = cell.borrow();
        (kept.len(), kept.iter().map(|p| p.packed.len() * 4).sum())
    })
}

/// Lets go of the packed weights whose models were dropped (before a model loads, so that
/// their memory is free for it).
pub fn release_packed_weights() {
    PACKED.with(|cell| let_go_of_dropped(&mut cell.borrow_mut()));
}

/// Drops the copies whose weight only the cache still holds.
fn let_go_of_dropped(kept: &mut Vec<PackedWeight>) {
    kept.retain(|p| std::sync::Arc::strong_count(&p.data) > 1);
}

/// From this many queries per head on, [`attention`] computes each head's block by two matrix
/// products ([`attend_block`]) instead of a pass per query.
const PRODUCT_MIN_QUERIES: usize = 16;

/// A bias at or below this hides a key (the models mask with `f32::MIN`): its weight is exactly
/// 0 wherever the query sees another key.
const HIDDEN: f32 = -1e30;

/// How many keys, from the first, the queries of block `(bi, hi)` may see: one past the last key
/// that some query's bias does not hide, or all `n` where some query sees none (its softmax is
/// then uniform over every key). Past it, every weight is exactly 0: the padding of a batch, the
/// unused part of a KV cache.
fn seen_keys(bias: &View, bi: usize, hi: usize, t: usize, n: usize) -> usize {
    let rows = if bias.strides[2] == 0 { 1 } else { t };
    let mut seen = 0;
    for i in 0..rows {
        let row = bias.row(bi, hi, i);
        match row[seen..].iter().rposition(|&x| x > HIDDEN) {
            Some(j) => seen += j + 1,
            None if row[..seen].iter().any(|&x| x > HIDDEN) => {}
            None => return n,
        }
    }
    seen
}

/// One `(example, head)` block of attention, `out` `[t, dh]` = `softmax(q kᵀ * scale + bias) v`
/// over the first `keys` keys ([`seen_keys`]), by the engine's blocked product: the scores of
/// all queries at once, each row's softmax, then the weighted values. A pass per query
/// ([`attend_row`]) reads each key's row once per query; the products keep a register tile of
/// queries by keys.
fn attend_block(out: &mut [f32], views: [&View; 4], bi: usize, hi: usize, keys: usize, scale: f32) {
    let [q, k, v, bias] = views;
    let [_, _, t, dh] = q.shape;
    let first = |x: &View| x.offset + bi * x.strides[0] + hi * x.strides[1];
    let mut p = vec![0.0f32; t * keys];
    // `kᵀ` `[dh, keys]`: element `(c, j)` is key `j`'s value `c`.
    let (queries, keys_t) = (
        Strided {
            data: q.data,
            offset: first(q),
            rs: q.strides[2],
            cs: 1,
        },
        Strided {
            data: k.data,
            offset: first(k),
            rs: 1,
            cs: k.strides[2],
        },
    );
    super::matmul::matmul(queries, keys_t, &mut p, keys, t, dh, keys);
    for (i, row) in p.chunks_exact_mut(keys.max(1)).enumerate() {
        softmax_row(row, &bias.row(bi, hi, i)[..keys], scale);
    }
    let values = Strided {
        data: v.data,
        offset: first(v),
        rs: v.strides[2],
        cs: 1,
    };
    super::matmul::matmul(Strided::rows(&p, keys), values, out, dh, t, keys, dh);
}

/// `qkv` `[b, t, 3d]` (query, key and value side by side) as queries, keys and values
/// `[b, heads, t, d / heads]`: views of the same buffer, nothing copied (burn's reshape of the
/// narrowed parts copies them).
pub fn split_qkv(qkv: &Tensor<3>, heads: usize) -> Option<(Tensor<4>, Tensor<4>, Tensor<4>)> {
    let t = flex(qkv)?;
    let [b, n, d3] = qkv.dims();
    if heads == 0 || d3 % (3 * heads) != 0 || !t.is_contiguous() {
        return None;
    }
    let (d, dh) = (d3 / 3, d3 / 3 / heads);
    let start = t.layout().start_offset();
    let view = |i: usize| {
        let layout = Layout::new(
            vec![b, heads, n, dh].into(),
            vec![(n * d3) as isize, dh as isize, d3 as isize, 1],
            start + i * d,
        );
        wrap::<4>(FlexTensor::from_arc(t.data_arc(), layout, DType::F32))
    };
    Some((view(0), view(1), view(2)))
}

/// `softmax(scores * scale + bias)` over the last dimension, `bias` broadcast to `scores`
/// `[b, h, t, n]` (the attention probabilities, for the callers that want them).
pub fn attention_probs(
    scores: Tensor<4>,
    scale: f64,
    bias: &Tensor<4>,
) -> Result<Tensor<4>, Tensor<4>> {
    let Some(bias) = flex(bias) else {
        return Err(scores);
    };
    let dims = scores.dims();
    let Some(bias) = broadcast_bias(bias, dims) else {
        return Err(scores);
    };
    let mut s = owned(take(scores)?);
    softmax_rows(&mut s, dims, &bias, scale);
    Ok(wrap(s))
}

/// `bias` as a [`View`] broadcast to scores of shape `dims` (`[b, h, t, n]`: each of its first
/// three dimensions the scores' or 1), made contiguous where its strides do not fit.
fn broadcast_bias(bias: FlexTensor, dims: [usize; 4]) -> Option<FlexTensor> {
    let [b, h, t, n] = dims;
    let bd: Vec<usize> = bias.layout().shape().to_vec();
    let fits = |got: usize, want: usize| got == want || got == 1;
    if bd.len() != 4 || !(fits(bd[0], b) && fits(bd[1], h) && fits(bd[2], t) && bd[3] == n) {
        return None;
    }
    let bias = if View::of(&bias).is_some() {
        bias
    } else {
        bias.to_contiguous()
    };
    View::of(&bias).is_some().then_some(bias)
}

/// `softmax(s * scale + bias)` over each row of `s` (dense, `dims`), in place.
fn softmax_rows(s: &mut FlexTensor, dims: [usize; 4], bias: &FlexTensor, scale: f64) {
    let [_, h, t, n] = dims;
    let bv = View::of(bias).expect("a bias from broadcast_bias");
    let scale = scale as f32;
    rows_mut(writable(s), n, |r, row| {
        let (bi, hi, i) = (r / (h * t), (r / t) % h, r % t);
        softmax_row(row, bv.row(bi, hi, i), scale);
    });
}

simd_fn! {
    /// Softmax's backward on one row, in place: `g = scale * p * (g - Σ g p)` (the gradient
    /// of the scores, whose probabilities `p` were `softmax(scores * scale + bias)`).
    fn softmax_grad_row(g: &mut [f32], p: &[f32], scale: f32) {
        let d = dot(g, p);
        for (g, p) in g.iter_mut().zip(p) {
            *g = scale * p * (*g - d);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn matrix(rows: usize, cols: usize, seed: usize) -> Tensor<2> {
        let values: Vec<f32> = (0..rows * cols)
            .map(|i| ((i * 7919 + seed * 13) % 23) as f32 / 11.0 - 1.0)
            .collect();
        Tensor::from_data(
            burn::tensor::TensorData::new(values, [rows, cols]),
            &burn::tensor::Device::flex(),
        )
    }

    fn worst(a: Tensor<2>, b: Tensor<2>) -> f32 {
        (a - b).abs().max().into_scalar()
    }

    #[test]
    fn packed_weights_are_kept_only_while_their_buffer_cannot_change() {
        let (m, k, n) = (20, 40, 24);
        let x = matrix(m, k, 1);
        let want = |w: &Tensor<2>| x.clone().matmul(w.clone());
        release_packed_weights();
        let before = packed_weights().0;
        // A weight that owns its buffer: packed once, then the kept copy serves.
        let w = matrix(k, n, 2);
        let y = matmul_weight(&x, &w).unwrap();
        assert!(worst(y, want(&w)) < 1e-5);
        assert_eq!(packed_weights(), (before + 1, n.div_ceil(8) * 8 * k * 4));
        let y = matmul_weight(&x, &w).unwrap();
        assert!(worst(y, want(&w)) < 1e-5);
        assert_eq!(packed_weights().0, before + 1);
        // The weight changed by an op that writes in place where it may: the cache shares the
        // buffer, so the op writes a new one, and the product sees the new values.
        let w2 = w.add_scalar(1.0);
        let y = matmul_weight(&x, &w2).unwrap();
        assert!(worst(y, want(&w2)) < 1e-4);
        // A view into a bigger buffer (an optimiser's flat one) is packed at every call.
        let flat = matrix(k + 3, n, 3);
        let view = flat.clone().slice([3..k + 3, 0..n]);
        let kept = packed_weights().0;
        let y = matmul_weight(&x, &view).unwrap();
        assert!(worst(y, want(&view)) < 1e-5);
        assert_eq!(packed_weights().0, kept);
        // A transposed weight is kept under its own layout.
        let t = matrix(n, k, 4).transpose();
        let y = matmul_weight(&x, &t).unwrap();
        assert!(worst(y, want(&t)) < 1e-5);
        assert_eq!(packed_weights().0, kept + 1);
        // Dropped weights' copies go.
        drop((w2, t));
        release_packed_weights();
        assert_eq!(packed_weights().0, before);
        // Past the budget, a weight is packed but not kept.
        let big = matrix(k, n, 5);
        let p = packed_weight(&flex(&big).unwrap(), k, n, 100);
        assert_eq!(p.len(), n.div_ceil(8) * 8 * k);
        assert_eq!(packed_weights().0, before);
    }

    #[test]
    fn a_few_rows_times_a_transposed_table_are_dot_products_per_row() {
        // A table of 3,000 rows of 37 (blocks of rows, and a remainder past the lanes), as a
        // language model's head reads it; 1 to 4 rows, and the cases it leaves to gemm.
        let (n, k) = (3000, 37);
        let table = matrix(n, k, 6);
        let head = table.clone().transpose();
        for m in 1..=TRANSPOSED_MAX_ROWS {
            let x = matrix(m, k, m);
            let y = matmul_transposed_weight(&x, &head).expect("a transposed table");
            let want = x.clone().matmul(head.clone());
            assert!(worst(y, want) < 1e-5, "{m} rows");
        }
        let five = matrix(TRANSPOSED_MAX_ROWS + 1, k, 1);
        assert!(matmul_transposed_weight(&five, &head).is_none());
        let x = matrix(1, k, 1);
        assert!(
            matmul_transposed_weight(&x, &matrix(k, n, 2)).is_none(),
            "a plain weight"
        );
        let part = table.slice([10..2010, 0..k]).transpose();
        let y = matmul_transposed_weight(&x, &part).expect("a view of some rows");
        assert!(worst(y, x.clone().matmul(part)) < 1e-5);
    }

    #[test]
    fn exp_and_erf_are_within_a_few_ulp_of_libm() {
        let mut worst_exp = 0.0f64;
        let mut worst_erf = 0.0f64;
        let mut x = -100.0f32;
        while x < 88.0 {
            let want = (x as f64).exp();
            let got = exp(x) as f64;
            // Below f32's normal range the kernel gives 0 (a hidden key's weight).
            if got != 0.0 || x > -87.33 {
                worst_exp = worst_exp.max(((got - want) / want).abs());
            }
            x += 0.0137;
        }
        let mut x = -8.0f32;
        while x < 8.0 {
            let want = libm_erf(x as f64);
            worst_erf = worst_erf.max((erf(x) as f64 - want).abs());
            x += 0.00113;
        }
        assert_eq!(exp(-1000.0), 0.0);
        assert_eq!(exp(f32::MIN), 0.0);
        assert!(worst_exp < 5e-7, "exp relative error {worst_exp:e}");
        assert!(worst_erf < 1e-6, "erf absolute error {worst_erf:e}");
    }

    /// erf in f64 by its Taylor series (|x| < 3) or the continued fraction of erfc.
    fn libm_erf(x: f64) -> f64 {
        let a = x.abs();
        let v = if a < 3.0 {
            let (mut term, mut s, mut k) = (a, a, 0.0f64);
            while term.abs() > 1e-17 {
                k += 1.0;
                term *= -a * a / k;
                s += term / (2.0 * k + 1.0);
            }
            s * 2.0 / std::f64::consts::PI.sqrt()
        } else {
            let mut f = 0.0f64;
            for k in (1..60).rev() {
                f = k as f64 / 2.0 / (a + f);
            }
            1.0 - (-a * a).exp() / std::f64::consts::PI.sqrt() / (a + f)
        };
        v.copysign(x)
    }
}

/// One AdamW update's constants (`torch.optim.AdamW`, bias-corrected, decoupled decay), as the
/// composition in `train::optim` computes them in f32.
#[derive(Debug, Clone, Copy)]
pub struct AdamWUpdate {
    pub beta1: f32,
    /// `1 - beta1`.
    pub one_minus_beta1: f32,
    pub beta2: f32,
    /// `1 - beta2`.
    pub one_minus_beta2: f32,
    /// `sqrt(1 - beta2^t)`.
    pub bias2_sqrt: f32,
    pub epsilon: f32,
    /// `lr / (1 - beta1^t)`.
    pub step_size: f32,
    /// `lr * weight_decay` (0: none).
    pub decay: f32,
    /// `1 - lr * weight_decay`, rounded once from f64 as the composition's scalar is.
    pub keep: f32,
    /// Clipping's `max_grad_norm` (0: no clipping).
    pub max_grad_norm: f32,
}

/// Whether [`adamw`] applies: the buffers and gradients f32 on Flex without autodiff.
pub fn adamw_applies<'a>(
    buffers: &[&Tensor<1>],
    mut grads: impl Iterator<Item = &'a Tensor<1>>,
) -> bool {
    buffers.iter().all(|t| applies(*t)) && grads.all(applies)
}

simd_fn! {
    /// `out[0] += Σ g²` (eight partial sums).
    fn add_squares(g: &[f32], out: &mut [f64]) {
        let mut acc = [0.0f32; LANES];
        let mut c = g.chunks_exact(LANES);
        for x in &mut c {
            for l in 0..LANES {
                acc[l] += x[l] * x[l];
            }
        }
        let mut s = acc.iter().sum::<f32>();
        for x in c.remainder() {
            s += x * x;
        }
        out[0] += s as f64;
    }
}

simd_fn! {
    /// AdamW on one stretch of the flat buffers, in place: the gradient scaled by `clip`, the
    /// moments, then the weights (decayed as `decay_mode` says: see [`adamw`]).
    fn adamw_stretch(
        p: &mut [f32],
        m: &mut [f32],
        v: &mut [f32],
        g: &[f32],
        clip: f32,
        u: AdamWUpdate,
        decay_mode: u8,
    ) {
        match decay_mode {
            1 => adamw_loop::<1>(p, m, v, g, clip, u),
            2 => adamw_loop::<2>(p, m, v, g, clip, u),
            _ => adamw_loop::<0>(p, m, v, g, clip, u),
        }
    }
}

/// [`adamw_stretch`]'s loop, one per decay mode (a branch per element would keep it scalar).
#[inline(always)]
fn adamw_loop<const DECAY: u8>(
    p: &mut [f32],
    m: &mut [f32],
    v: &mut [f32],
    g: &[f32],
    clip: f32,
    u: AdamWUpdate,
) {
    for (((p, m), v), g) in p.iter_mut().zip(m.iter_mut()).zip(v.iter_mut()).zip(g) {
        let g = g * clip;
        *m = *m * u.beta1 + g * u.one_minus_beta1;
        *v = *v * u.beta2 + g * g * u.one_minus_beta2;
        let update = *m / (v.sqrt() / u.bias2_sqrt + u.epsilon) * u.step_size;
        let decayed = match DECAY {
            1 => *p * u.keep,
            2 => *p - *p * u.decay,
            _ => *p,
        };
        *p = decayed - update;
    }
}

/// One multi-tensor AdamW step over the flat buffers `params`, `m`, `v` (see `train::optim`), in
/// place where they are not shared. `grads`, one per parameter: its offset and length in the
/// flat buffers, its gradient (`None`: none this step, taken as zeros) and its weight decay
/// (0: none; 1: `p * (1 - decay)`; 2: `p - p * decay`, the composition's two forms). First the
/// global gradient norm, then the clipping factor `min(max_norm / (norm + 1e-6), 1)`, then one
/// pass that updates the moments and the weights. The composition makes some twenty passes over
/// the buffers, each allocating one (90 MB apiece for all-MiniLM-L6-v2), after concatenating the
/// gradients. Returns the buffers and the norm before clipping.
pub fn adamw(
    params: Tensor<1>,
    m: Tensor<1>,
    v: Tensor<1>,
    grads: &[(usize, usize, Option<Tensor<1>>, u8)],
    u: AdamWUpdate,
) -> (Tensor<1>, Tensor<1>, Tensor<1>, f32) {
    let flexed: Vec<Option<FlexTensor>> =
        grads.iter().map(|(_, _, g, _)| flex(g.as_ref()?)).collect();
    let zeros = vec![
        0.0f32;
        grads
            .iter()
            .filter(|g| g.2.is_none())
            .map(|g| g.1)
            .max()
            .unwrap_or(0)
    ];
    let mut parts: Vec<(usize, std::borrow::Cow<'_, [f32]>, u8)> = grads
        .iter()
        .zip(&flexed)
        .map(|((at, len, _, decay), g)| {
            let g = match g {
                Some(g) => values(g),
                None => std::borrow::Cow::Borrowed(&zeros[..*len]),
            };
            assert_eq!(g.len(), *len, "a gradient of its parameter's length");
            (*at, g, *decay)
        })
        .collect();
    parts.sort_by_key(|part| part.0);
    let mut total = [0.0f64];
    for (_, g, _) in &parts {
        add_squares(g, &mut total);
    }
    let norm = total[0].sqrt() as f32;
    let clip = if u.max_grad_norm > 0.0 {
        (1.0 / (norm + 1e-6) * u.max_grad_norm).min(1.0)
    } else {
        1.0
    };
    let [mut p, mut mt, mut vt] = [params, m, v].map(|t| owned(take(t).expect("adamw_applies")));
    // Disjoint stretches of the three buffers, one per parameter (in offset order), cut into
    // pieces that spread over the threads natively.
    type Job<'a> = (&'a mut [f32], &'a mut [f32], &'a mut [f32], &'a [f32], u8);
    let mut jobs: Vec<Job<'_>> = Vec::new();
    let (mut p_rest, mut m_rest, mut v_rest) =
        (writable(&mut p), writable(&mut mt), writable(&mut vt));
    let mut at = 0;
    const PIECE: usize = 1 << 16;
    for (offset, g, decay) in &parts {
        let skip = offset - at;
        let (_, p_tail) = std::mem::take(&mut p_rest).split_at_mut(skip);
        let (_, m_tail) = std::mem::take(&mut m_rest).split_at_mut(skip);
        let (_, v_tail) = std::mem::take(&mut v_rest).split_at_mut(skip);
        let (mut p_here, p_next) = p_tail.split_at_mut(g.len());
        let (mut m_here, m_next) = m_tail.split_at_mut(g.len());
        let (mut v_here, v_next) = v_tail.split_at_mut(g.len());
        (p_rest, m_rest, v_rest) = (p_next, m_next, v_next);
        at = offset + g.len();
        let mut g_here: &[f32] = g;
        while !g_here.is_empty() {
            let n = g_here.len().min(PIECE);
            let (p0, p1) = std::mem::take(&mut p_here).split_at_mut(n);
            let (m0, m1) = std::mem::take(&mut m_here).split_at_mut(n);
            let (v0, v1) = std::mem::take(&mut v_here).split_at_mut(n);
            let (g0, g1) = g_here.split_at(n);
            jobs.push((p0, m0, v0, g0, *decay));
            (p_here, m_here, v_here, g_here) = (p1, m1, v1, g1);
        }
    }
    let run = |(p, m, v, g, decay): &mut Job<'_>| adamw_stretch(p, m, v, g, clip, u, *decay);
    #[cfg(not(target_arch = "wasm32"))]
    {
        use rayon::prelude::*;
        jobs.par_iter_mut().for_each(run);
    }
    #[cfg(target_arch = "wasm32")]
    jobs.iter_mut().for_each(run);
    drop(jobs);
    (wrap(p), wrap(mt), wrap(vt), norm)
}

simd_fn! {
    /// `grad *= act'(x)`, in place (the activation's derivative at its input).
    fn activation_grad_row(grad: &mut [f32], x: &[f32], act: Activation) {
        match act {
            Activation::Gelu => grad.iter_mut().zip(x).for_each(|(g, &x)| {
                const FRAC_1_SQRT_2PI: f32 = 0.398_942_3;
                let cdf = 0.5 * (1.0 + erf(x * std::f32::consts::FRAC_1_SQRT_2));
                let pdf = exp(-0.5 * x * x) * FRAC_1_SQRT_2PI;
                *g *= cdf + x * pdf;
            }),
            Activation::GeluTanh => grad.iter_mut().zip(x).for_each(|(g, &x)| {
                const C: f32 = 0.797_884_6; // sqrt(2 / pi)
                const A: f32 = 0.044_715;
                let t = tanh(C * (x + A * x * x * x));
                *g *= 0.5 * (1.0 + t) + 0.5 * x * (1.0 - t * t) * C * (1.0 + 3.0 * A * x * x);
            }),
            Activation::Relu => grad
                .iter_mut()
                .zip(x)
                .for_each(|(g, &x)| *g = if x > 0.0 { *g } else { 0.0 }),
        }
    }
}

/// A 32-bit integer hash (Wellons' `lowbias32`): a bijection whose output bits each depend on
/// every input bit. Multiplications of 32 bits, so that loops over it vectorise.
#[inline(always)]
fn mix32(mut x: u32) -> u32 {
    x ^= x >> 16;
    x = x.wrapping_mul(0x7feb_352d);
    x ^= x >> 15;
    x = x.wrapping_mul(0x846c_a68b);
    x ^= x >> 16;
    x
}

simd_fn! {
    /// Dropout's mask on `row` (elements `start..` of the tensor), in place: element `i` is
    /// kept, times `scale`, where `mix32(mix32(i ^ k1) ^ k2)`'s top 24 bits fall under `threshold`,
    /// else 0. The same keys give the same mask, forward and backward.
    fn dropout_row(row: &mut [f32], start: u32, k1: u32, k2: u32, threshold: u32, scale: f32) {
        for (j, y) in row.iter_mut().enumerate() {
            let h = mix32(mix32(start.wrapping_add(j as u32) ^ k1) ^ k2);
            *y = if (h >> 8) < threshold { *y * scale } else { 0.0 };
        }
    }
}

simd_fn! {
    /// One row's layer norm for training: `xhat` gets `(x - mean) * rstd` (kept for the
    /// backward step), `y` gets `xhat * g + b`; returns `rstd` in `rstd[0]`.
    fn layer_norm_train_row(
        x: &[f32],
        xhat: &mut [f32],
        y: &mut [f32],
        g: &[f32],
        b: &[f32],
        eps: f32,
        rstd: &mut [f32],
    ) {
        let (mean, inv) = mean_rstd(x, eps);
        for (((h, y), x), (g, b)) in xhat.iter_mut().zip(y.iter_mut()).zip(x).zip(g.iter().zip(b)) {
            *h = (x - mean) * inv;
            *y = *h * g + b;
        }
        rstd[0] = inv;
    }
}

simd_fn! {
    /// One row of layer norm's input gradient, in place over the output gradient `dy`:
    /// `rstd * (dy g - mean(dy g) - xhat * mean(dy g xhat))`.
    fn layer_norm_grad_row(dy: &mut [f32], xhat: &[f32], g: &[f32], rstd: f32) {
        let d = dy.len() as f32;
        let mut a1 = [0.0f32; LANES];
        let mut a2 = [0.0f32; LANES];
        let (mut cy, mut ch, mut cg) = (dy.chunks_exact(LANES), xhat.chunks_exact(LANES), g.chunks_exact(LANES));
        for ((y, h), g) in (&mut cy).zip(&mut ch).zip(&mut cg) {
            for l in 0..LANES {
                let t = y[l] * g[l];
                a1[l] += t;
                a2[l] += t * h[l];
            }
        }
        let (mut s1, mut s2) = (a1.iter().sum::<f32>(), a2.iter().sum::<f32>());
        for ((y, h), g) in cy.remainder().iter().zip(ch.remainder()).zip(cg.remainder()) {
            s1 += y * g;
            s2 += y * g * h;
        }
        let (m1, m2) = (s1 / d, s2 / d);
        for ((y, h), g) in dy.iter_mut().zip(xhat).zip(g) {
            *y = rstd * (*y * g - m1 - h * m2);
        }
    }
}

simd_fn! {
    /// Layer norm's parameter gradients from one row: `dg += dy * xhat`, `db += dy`.
    fn layer_norm_param_grads_row(dg: &mut [f32], db: &mut [f32], dy: &[f32], xhat: &[f32]) {
        for (((dg, db), y), h) in dg.iter_mut().zip(db.iter_mut()).zip(dy).zip(xhat) {
            *dg += y * h;
            *db += y;
        }
    }
}

/// The kernels inside training's autodiff graph on Flex: each op computes its forward pass with
/// the engine's loops and records its own backward step (burn's `Backward`), where burn's
/// would compose several passes or call libm per element (its GELU: a scalar `erf` forward and
/// an `erf` and an `exp` backward). Profiled on full fine-tuning of all-MiniLM-L6-v2
/// (`perf record` on `examples/bench_finetune.rs full`): libm's `erf` and `exp` took 12% of the
/// time. `tests/kernels_cpu.rs` compares each op's output and gradients with burn's.
pub mod tracked {
    use burn::tensor::{DType, Int, Tensor};
    use burn_autodiff::checkpoint::base::Checkpointer;
    use burn_autodiff::checkpoint::strategy::NoCheckpointing;
    use burn_autodiff::grads::Gradients;
    use burn_autodiff::ops::{unary, Backward, Ops, OpsKind};
    use burn_autodiff::Autodiff;
    use burn_backend::ops::FloatTensorOps;
    use burn_backend::tensor::FloatTensor;
    use burn_backend::Shape;
    use burn_flex::FlexTensor;

    use super::{activation_grad_row, bias_act_row, count, enabled, new_tensor};
    use super::{owned, rows_mut};
    use super::{values, writable, Flex};
    use crate::model::config::Activation;

    type Graph = Autodiff<Flex>;

    /// `x`'s autodiff tensor on Flex when the kernels apply to it (f32, tracked).
    fn tracked<const D: usize>(x: &Tensor<D>) -> Option<FloatTensor<Graph>> {
        if !enabled() || !x.is_autodiff() || x.dtype() != DType::F32 {
            return None;
        }
        x.clone().try_into_primitive::<Graph>().ok()
    }

    fn wrap<const D: usize>(t: FloatTensor<Graph>) -> Tensor<D> {
        count();
        Tensor::from_primitive::<Graph>(t)
    }

    #[derive(Debug)]
    struct ActivationStep(Activation);

    impl Backward<Flex, 1> for ActivationStep {
        /// The op's input.
        type State = FlexTensor;

        fn backward(
            self,
            ops: Ops<FlexTensor, 1>,
            grads: &mut Gradients,
            _checkpointer: &mut Checkpointer,
        ) {
            let (act, input) = (self.0, ops.state);
            unary::<Flex, _>(ops.parents, ops.node, grads, |grad| {
                let mut grad = owned(grad);
                let x = values(&input);
                let n = x.len();
                let out = writable(&mut grad);
                debug_assert_eq!(out.len(), n);
                let x = &*x;
                rows_mut(out, 4096, |i, row| {
                    let at = i * 4096;
                    activation_grad_row(row, &x[at..at + row.len()], act)
                });
                grad
            });
        }
    }

    /// The activation in training's graph (see [`super::activate`] outside it).
    pub fn activate<const D: usize>(x: Tensor<D>, act: Activation) -> Result<Tensor<D>, Tensor<D>> {
        let Some(t) = tracked(&x) else {
            return Err(x);
        };
        drop(x);
        let (input, node) = t.into_parts();
        let shape: Vec<usize> = input.layout().shape().to_vec();
        let mut out = new_tensor(values(&input).into_owned(), &shape);
        rows_mut(writable(&mut out), 4096, |_, row| {
            bias_act_row(row, &[], act)
        });
        let out = match ActivationStep(act)
            .prepare::<NoCheckpointing>([node])
            .compute_bound()
            .stateful()
        {
            OpsKind::Tracked(prep) => prep.finish(input, out),
            OpsKind::UnTracked(prep) => prep.finish(out),
        };
        Ok(wrap(out))
    }

    #[derive(Debug)]
    struct DropoutStep;

    impl Backward<Flex, 1> for DropoutStep {
        type State = super::DropoutMask;

        fn backward(
            self,
            ops: Ops<super::DropoutMask, 1>,
            grads: &mut Gradients,
            _checkpointer: &mut Checkpointer,
        ) {
            let mask = ops.state;
            unary::<Flex, _>(ops.parents, ops.node, grads, |grad| mask.apply(grad));
        }
    }

    /// Dropout with keep probability `1 - prob` in training's graph, as burn's `Dropout` computes
    /// it (kept values scaled by `1 / (1 - prob)`), in one pass. The mask comes from a counter
    /// hash keyed by [`crate::rng::dropout_keys`] (so a seeded run, [`crate::device::seed`],
    /// gives the same masks again), and is computed again in the backward step rather than kept.
    /// burn draws a Bernoulli variable per element through ChaCha, then multiplies twice: 7% of
    /// full fine-tuning's time.
    pub fn dropout<const D: usize>(x: Tensor<D>, prob: f64) -> Result<Tensor<D>, Tensor<D>> {
        if !enabled() || !x.is_autodiff() || x.dtype() != DType::F32 || !(0.0..1.0).contains(&prob)
        {
            return Err(x);
        }
        let Ok(t) = x.clone().try_into_primitive::<Graph>() else {
            return Err(x);
        };
        drop(x);
        let (k1, k2) = crate::rng::dropout_keys();
        let keep = 1.0 - prob;
        let mask = super::DropoutMask {
            k1,
            k2,
            threshold: (keep * (1u32 << 24) as f64).round() as u32,
            scale: (1.0 / keep) as f32,
        };
        let (input, node) = t.into_parts();
        let out = mask.apply(input);
        let out = match DropoutStep
            .prepare::<NoCheckpointing>([node])
            .compute_bound()
            .stateful()
        {
            OpsKind::Tracked(prep) => prep.finish(mask, out),
            OpsKind::UnTracked(prep) => prep.finish(out),
        };
        Ok(wrap(out))
    }

    /// Token ids as `usize`, from an int tensor on Flex (i64 or i32), each checked to be one of
    /// the table's `rows`.
    fn ids_in(t: &Tensor<2, Int>, rows: usize) -> Option<Vec<usize>> {
        // An int tensor made on the training device is the graph's (burn tracks no int op).
        let t = match t.clone().try_into_primitive::<Graph>() {
            Ok(t) => t,
            Err(_) => t.clone().try_into_primitive::<Flex>().ok()?,
        };
        let t = t.to_contiguous();
        let ids: Vec<usize> = match t.dtype() {
            DType::I64 => t.storage::<i64>().iter().map(|&i| i as usize).collect(),
            DType::I32 => t.storage::<i32>().iter().map(|&i| i as usize).collect(),
            _ => return None,
        };
        ids.iter().all(|&i| i < rows).then_some(ids)
    }

    #[derive(Debug)]
    struct EmbeddingStep;

    impl Backward<Flex, 1> for EmbeddingStep {
        /// The ids, and the table's shape.
        type State = (std::sync::Arc<Vec<usize>>, [usize; 2]);

        fn backward(
            self,
            ops: Ops<Self::State, 1>,
            grads: &mut Gradients,
            _checkpointer: &mut Checkpointer,
        ) {
            let (ids, [rows, d]) = ops.state;
            unary::<Flex, _>(ops.parents, ops.node, grads, |grad| {
                let grad = values(&grad);
                // A dense gradient, as burn's and torch's: zeros (fresh pages the system gives
                // zeroed), then each token's row added to its id's.
                let mut out = vec![0.0f32; rows * d];
                for (i, &id) in ids.iter().enumerate() {
                    let row = &mut out[id * d..(id + 1) * d];
                    row.iter_mut()
                        .zip(&grad[i * d..(i + 1) * d])
                        .for_each(|(o, g)| *o += g);
                }
                new_tensor(out, &[rows, d])
            });
        }
    }

    /// The rows of `table` `[n, d]` at `ids` `[b, t]`: `[b, t, d]`, in training's graph. burn's
    /// copies the whole table first when it is a view (as the optimiser's flat buffer makes every
    /// parameter), and its gradient is made twice (zeros, then realigned).
    pub fn embedding(table: Tensor<2>, ids: &Tensor<2, Int>) -> Result<Tensor<3>, Tensor<2>> {
        if !enabled() || !table.is_autodiff() || table.dtype() != DType::F32 {
            return Err(table);
        }
        let [rows, d] = table.dims();
        let [b, t] = ids.dims();
        let Some(ids) = ids_in(ids, rows) else {
            return Err(table);
        };
        let Ok(tt) = table.clone().try_into_primitive::<Graph>() else {
            return Err(table);
        };
        drop(table);
        let (input, node) = tt.into_parts();
        let values = values(&input);
        let mut out = vec![0.0f32; b * t * d];
        for (row, &id) in out.chunks_exact_mut(d).zip(ids.iter()) {
            row.copy_from_slice(&values[id * d..(id + 1) * d]);
        }
        drop(values);
        drop(input);
        let out = new_tensor(out, &[b, t, d]);
        let out = match EmbeddingStep
            .prepare::<NoCheckpointing>([node])
            .compute_bound()
            .stateful()
        {
            OpsKind::Tracked(prep) => prep.finish((std::sync::Arc::new(ids), [rows, d]), out),
            OpsKind::UnTracked(prep) => prep.finish(out),
        };
        Ok(wrap(out))
    }

    #[derive(Debug)]
    struct SoftmaxStep(f32);

    impl Backward<Flex, 1> for SoftmaxStep {
        /// The probabilities.
        type State = FlexTensor;

        fn backward(
            self,
            ops: Ops<FlexTensor, 1>,
            grads: &mut Gradients,
            _checkpointer: &mut Checkpointer,
        ) {
            let (scale, probs) = (self.0, ops.state);
            unary::<Flex, _>(ops.parents, ops.node, grads, |grad| {
                let n = *probs.layout().shape().to_vec().last().expect("rank 4");
                let mut grad = owned(grad);
                let p = values(&probs);
                let p = &*p;
                rows_mut(writable(&mut grad), n, |r, row| {
                    super::softmax_grad_row(row, &p[r * n..(r + 1) * n], scale)
                });
                grad
            });
        }
    }

    /// Attention's probabilities `softmax(scores * scale + bias)` in training's graph (the bias
    /// a constant: the padding or causal mask), one pass forward and one backward; burn's
    /// composition takes some eight passes, with libm's `exp`.
    pub fn attention_probs(
        scores: Tensor<4>,
        scale: f64,
        bias: &Tensor<4>,
    ) -> Result<Tensor<4>, Tensor<4>> {
        if !enabled()
            || !scores.is_autodiff()
            || scores.dtype() != DType::F32
            || bias.dtype() != DType::F32
            || bias.is_require_grad()
        {
            return Err(scores);
        }
        let bias = match bias.clone().try_into_primitive::<Graph>() {
            Ok(b) => b.primitive().clone(),
            Err(_) => match bias.clone().try_into_primitive::<Flex>() {
                Ok(b) => b,
                Err(_) => return Err(scores),
            },
        };
        let dims = scores.dims();
        let Some(bias) = super::broadcast_bias(bias, dims) else {
            return Err(scores);
        };
        let Ok(t) = scores.clone().try_into_primitive::<Graph>() else {
            return Err(scores);
        };
        drop(scores);
        let (input, node) = t.into_parts();
        let mut probs = owned(input);
        super::softmax_rows(&mut probs, dims, &bias, scale);
        let out = match SoftmaxStep(scale as f32)
            .prepare::<NoCheckpointing>([node])
            .compute_bound()
            .stateful()
        {
            OpsKind::Tracked(prep) => prep.finish(probs.clone(), probs),
            OpsKind::UnTracked(prep) => prep.finish(probs),
        };
        Ok(wrap(out))
    }

    /// `t` as a tensor of `shape` (a view where its layout allows).
    fn reshaped(t: FlexTensor, shape: &[usize]) -> FlexTensor {
        Flex::float_reshape(t, Shape::from(shape.to_vec()))
    }

    /// A 2-D `t` transposed (a view).
    fn transposed(t: FlexTensor) -> FlexTensor {
        Flex::float_swap_dims(t, 0, 1)
    }

    /// `a` `[m, k]` times `b` `[k, n]` (any strides): in wasm the engine's packed product from 16
    /// rows on (as inference's linears: 1.2-1.3x the gemm crate's `simd128` kernels), else burn's.
    fn product(a: FlexTensor, b: FlexTensor) -> FlexTensor {
        #[cfg(target_arch = "wasm32")]
        if a.layout().shape()[0] >= 16 {
            let (x, w) = (
                Tensor::<2>::from_primitive::<Flex>(a.clone()),
                Tensor::<2>::from_primitive::<Flex>(b.clone()),
            );
            if let Some(y) = super::matmul(&x, &w) {
                return y.try_into_primitive::<Flex>().expect("a Flex tensor");
            }
        }
        Flex::float_matmul(a, b)
    }

    #[derive(Debug)]
    struct LinearStep;

    impl Backward<Flex, 3> for LinearStep {
        /// The input as `[m, in]` and the weight `[in, out]`.
        type State = (FlexTensor, FlexTensor);

        fn backward(
            self,
            ops: Ops<Self::State, 3>,
            grads: &mut Gradients,
            _checkpointer: &mut Checkpointer,
        ) {
            let [px, pw, pb] = ops.parents;
            let grad = grads.consume::<Flex>(&ops.node);
            let (x, w) = ops.state;
            let in_shape: Vec<usize> = grad.layout().shape().to_vec();
            let out = *in_shape.last().expect("a rank");
            let m = grad.layout().num_elements() / out.max(1);
            let dy = reshaped(grad, &[m, out]);
            if let Some(node) = pb {
                let dy = values(&dy);
                let mut db = vec![0.0f32; out];
                for row in dy.chunks_exact(out) {
                    super::bias_residual_row(&mut db, row, &[]);
                }
                grads.register::<Flex>(node.id, new_tensor(db, &[out]));
            }
            if let Some(node) = pw {
                let dw = product(transposed(x), dy.clone());
                grads.register::<Flex>(node.id, dw);
            }
            if let Some(node) = px {
                let mut x_shape = in_shape;
                *x_shape.last_mut().expect("a rank") = w.layout().shape()[0];
                let dx = reshaped(product(dy, transposed(w)), &x_shape);
                grads.register::<Flex>(node.id, dx);
            }
        }
    }

    /// `x W + b` (`W` `[in, out]`, as the CPU keeps a linear's weight) in training's graph, over
    /// all of `x`'s rows at once: the products by [`product`] (in wasm the engine's packed
    /// one, where burn's autodiff matmul takes the gemm crate's), the bias added in the same
    /// pass as the product's output is written, its gradient a column sum.
    pub fn linear<const D: usize>(
        x: Tensor<D>,
        weight: Tensor<2>,
        bias: Tensor<1>,
    ) -> Result<Tensor<D>, Tensor<D>> {
        let all_f32 = [x.dtype(), weight.dtype(), bias.dtype()]
            .iter()
            .all(|d| *d == DType::F32);
        if !enabled() || !x.is_autodiff() || !all_f32 {
            return Err(x);
        }
        let [k, n] = weight.dims();
        let mut dims = x.dims();
        if dims[D - 1] != k || bias.dims()[0] != n {
            return Err(x);
        }
        let (Ok(wt), Ok(bt)) = (
            weight.try_into_primitive::<Graph>(),
            bias.try_into_primitive::<Graph>(),
        ) else {
            return Err(x);
        };
        let Ok(xt) = x.clone().try_into_primitive::<Graph>() else {
            return Err(x);
        };
        drop(x);
        let m = dims[..D - 1].iter().product::<usize>();
        let (xp, xn) = xt.into_parts();
        let (wp, wn) = wt.into_parts();
        let (bp, bn) = bt.into_parts();
        let x2 = reshaped(xp, &[m, k]);
        let mut y = owned(product(x2.clone(), wp.clone()));
        let b = values(&bp);
        let b = &*b;
        rows_mut(writable(&mut y), n, |_, row| {
            super::bias_residual_row(row, b, &[])
        });
        dims[D - 1] = n;
        let y = reshaped(y, &dims);
        let out = match LinearStep
            .prepare::<NoCheckpointing>([xn, wn, bn])
            .compute_bound()
            .stateful()
        {
            OpsKind::Tracked(prep) => prep.finish((x2, wp), y),
            OpsKind::UnTracked(prep) => prep.finish(y),
        };
        Ok(wrap(out))
    }

    #[derive(Debug)]
    struct LayerNormStep;

    impl Backward<Flex, 3> for LayerNormStep {
        /// The normalised input `[m, d]`, each row's `1 / std`, and gamma.
        type State = (FlexTensor, std::sync::Arc<Vec<f32>>, FlexTensor);

        fn backward(
            self,
            ops: Ops<Self::State, 3>,
            grads: &mut Gradients,
            _checkpointer: &mut Checkpointer,
        ) {
            let [px, pg, pb] = ops.parents;
            let grad = grads.consume::<Flex>(&ops.node);
            let (xhat, rstd, gamma) = ops.state;
            let d = gamma.layout().num_elements();
            let xh = values(&xhat);
            if pg.is_some() || pb.is_some() {
                let dy = values(&grad);
                let (mut dg, mut db) = (vec![0.0f32; d], vec![0.0f32; d]);
                for (dy, h) in dy.chunks_exact(d).zip(xh.chunks_exact(d)) {
                    super::layer_norm_param_grads_row(&mut dg, &mut db, dy, h);
                }
                if let Some(node) = pg {
                    grads.register::<Flex>(node.id, new_tensor(dg, &[d]));
                }
                if let Some(node) = pb {
                    grads.register::<Flex>(node.id, new_tensor(db, &[d]));
                }
            }
            if let Some(node) = px {
                let mut dx = owned(grad);
                let g = values(&gamma);
                let (g, xh, rstd) = (&*g, &*xh, &*rstd);
                rows_mut(writable(&mut dx), d, |r, row| {
                    super::layer_norm_grad_row(row, &xh[r * d..(r + 1) * d], g, rstd[r])
                });
                grads.register::<Flex>(node.id, dx);
            }
        }
    }

    /// Layer norm over the last dimension in training's graph: one pass forward (keeping the
    /// normalised rows and each row's `1 / std`) and one backward for the input, gamma and beta;
    /// burn's composition takes nine ops forward, each with its own backward step.
    pub fn layer_norm<const D: usize>(
        x: Tensor<D>,
        gamma: &Tensor<1>,
        beta: &Tensor<1>,
        eps: f64,
    ) -> Result<Tensor<D>, Tensor<D>> {
        let all_f32 = [x.dtype(), gamma.dtype(), beta.dtype()]
            .iter()
            .all(|t| *t == DType::F32);
        let d = x.dims()[D - 1];
        if !enabled() || !x.is_autodiff() || !all_f32 || gamma.dims()[0] != d || beta.dims()[0] != d
        {
            return Err(x);
        }
        let (Ok(gt), Ok(bt)) = (
            gamma.clone().try_into_primitive::<Graph>(),
            beta.clone().try_into_primitive::<Graph>(),
        ) else {
            return Err(x);
        };
        let Ok(xt) = x.clone().try_into_primitive::<Graph>() else {
            return Err(x);
        };
        drop(x);
        let (xp, xn) = xt.into_parts();
        let (gp, gn) = gt.into_parts();
        let (bp, bn) = bt.into_parts();
        let shape: Vec<usize> = xp.layout().shape().to_vec();
        let xv = values(&xp);
        let rows = xv.len() / d.max(1);
        let (mut xhat, mut y, mut rstd) = (
            vec![0.0f32; xv.len()],
            vec![0.0f32; xv.len()],
            vec![0.0f32; rows],
        );
        {
            let (g, b) = (values(&gp), values(&bp));
            let (g, b, eps) = (&*g, &*b, eps as f32);
            for (((x, h), y), r) in xv
                .chunks_exact(d)
                .zip(xhat.chunks_exact_mut(d))
                .zip(y.chunks_exact_mut(d))
                .zip(rstd.chunks_exact_mut(1))
            {
                super::layer_norm_train_row(x, h, y, g, b, eps, r);
            }
        }
        drop(xv);
        let y = new_tensor(y, &shape);
        let out = match LayerNormStep
            .prepare::<NoCheckpointing>([xn, gn, bn])
            .compute_bound()
            .stateful()
        {
            OpsKind::Tracked(prep) => prep.finish(
                (new_tensor(xhat, &[rows, d]), std::sync::Arc::new(rstd), gp),
                y,
            ),
            OpsKind::UnTracked(prep) => prep.finish(y),
        };
        Ok(wrap(out))
    }
}

/// Dropout's mask, from its keys: what [`tracked::dropout`] keeps for the backward step instead
/// of the mask itself.
#[derive(Debug, Clone, Copy)]
struct DropoutMask {
    k1: u32,
    k2: u32,
    threshold: u32,
    scale: f32,
}

impl DropoutMask {
    /// Applies the mask to `t` (in the tensor's row-major order), in place where `t` is unshared.
    fn apply(self, t: FlexTensor) -> FlexTensor {
        const ROW: usize = 4096;
        let mut t = owned(t);
        rows_mut(writable(&mut t), ROW, |i, row| {
            dropout_row(
                row,
                (i * ROW) as u32,
                self.k1,
                self.k2,
                self.threshold,
                self.scale,
            )
        });
        t
    }
}
