//! The engine's GPU kernels inside training's graph (burn's autodiff over cubecl: WebGPU in the
//! browser, burn-wgpu natively), each op with its own backward kernel, and the optimiser's step in
//! two kinds of kernel. burn composes these ops of many element-wise kernels, and autodiff adds
//! a backward step for each: layer norm is 9 kernels forward and about 20 backward, GELU's erf a
//! dozen, dropout draws a Bernoulli tensor, compares and multiplies twice, and AdamW over a flat
//! buffer first copies every gradient into it with a fill and a slice assignment each. On a GPU
//! the launches, not the arithmetic, cost a training step's time (README, issue 11).
//!
//! - [`layer_norm`]: one kernel forward (keeping each row's mean and `1 / std`), one backward for
//!   the input, and one column sum (burn's reduction) for gamma and beta together;
//! - [`qkv_attention`]: a layer's self-attention straight from its fused query/key/value output,
//!   with the attention dropout: one kernel forward, two backward, one unit per row, no `[t, t]`
//!   matrix kept (the weights recomputed from each row's log-sum-exp);
//! - [`attention_probs`]: `softmax(scores * scale + bias)` (the bias a constant: the padding or
//!   causal mask), one kernel each way, where the attention is composed (ModernBERT's rotary
//!   layers);
//! - [`epilogue`]: what follows a linear layer's product, `residual + dropout(act(y + bias))`
//!   with any of its parts, in one kernel forward and at most one backward (the residual's
//!   gradient is the output's, the bias's a column sum); dropout's mask is a counter hash keyed
//!   by two draws of the device's generator (a seeded run draws the same masks again), computed
//!   again backward rather than kept;
//! - [`adamw`]: the gradients gathered into the flat buffer six at a time (their padding zeroed
//!   in the same pass), then one kernel for the whole AdamW update in place, clipping by the
//!   norm it reads on the device.
//!
//! Each computes what burn's composition does (`tests/common/training_checks.rs` compares them,
//! outputs and gradients, on WebGPU in the browser and natively on Vulkan), and applies only to
//! f32 tensors of the cubecl backend in the graph, with the engine's kernels on
//! ([`crate::model::flex::enabled`]: `kernels::composed` turns these off too).

use burn::tensor::{DType, Tensor as Burn};
use burn_autodiff::checkpoint::base::Checkpointer;
use burn_autodiff::checkpoint::strategy::NoCheckpointing;
use burn_autodiff::grads::Gradients;
use burn_autodiff::ops::{Backward, Ops, OpsKind};
use burn_autodiff::Autodiff;
use burn_cubecl::kernel::into_contiguous;
use burn_cubecl::ops::numeric::empty_device_dtype;
use burn_cubecl::tensor::CubeTensor;
use burn_cubecl::CubeBackend;
use cubecl::prelude::*;

use super::gemm::{gemm, Epilogue, Operand};
use super::{broadcast_stride, cube_reduce, empty_like, erf, row_launch, wrap};
use crate::model::config::Activation;
use crate::model::flex;

type Graph = Autodiff<CubeBackend>;
type Tracked = burn_backend::tensor::FloatTensor<Graph>;

/// `x` in the graph on the cubecl backend, when these kernels apply to it.
fn on_graph<const D: usize>(x: &Burn<D>) -> Option<Tracked> {
    if !flex::enabled() || !x.is_autodiff() || x.dtype() != DType::F32 {
        return None;
    }
    x.clone().try_into_primitive::<Graph>().ok()
}

/// A constant (an untracked tensor, in the graph or not) as a contiguous cubecl tensor.
fn constant<const D: usize>(x: &Burn<D>) -> Option<CubeTensor> {
    if x.dtype() != DType::F32 || x.is_require_grad() {
        return None;
    }
    let t = match x.clone().try_into_primitive::<Graph>() {
        Ok(t) => t.primitive().clone(),
        Err(_) => x.clone().try_into_primitive::<CubeBackend>().ok()?,
    };
    Some(into_contiguous(t))
}

fn from_graph<const D: usize>(t: Tracked) -> Burn<D> {
    flex::count();
    Burn::from_primitive::<Graph>(t)
}

/// The sum of `t`'s rows of `n` (any layout): `[n]`, by the tiled product
/// ([`super::gemm::column_sums`]) where it applies, else burn's reduction.
fn column_sum(t: CubeTensor, n: usize) -> CubeTensor {
    if let Some(sums) = super::gemm::column_sums(&t, n) {
        return sums;
    }
    let rows = t.meta.shape().num_elements() / n.max(1);
    let rank = t.meta.shape().num_dims();
    let sum = match rank {
        1 => wrap::<1>(t).reshape([rows, n]),
        2 => wrap::<2>(t).reshape([rows, n]),
        3 => wrap::<3>(t).reshape([rows, n]),
        _ => wrap::<4>(t).reshape([rows, n]),
    }
    .sum_dim(0)
    .reshape([n]);
    sum.try_into_primitive::<CubeBackend>()
        .expect("a cubecl tensor")
}

/// Elementwise launch over `n` values.
pub(super) fn elementwise_launch(t: &CubeTensor, n: usize) -> (CubeCount, CubeDim) {
    let dim = CubeDim::new(&t.client, n);
    (
        cubecl::calculate_cube_count_elemwise(&t.client, n, dim),
        dim,
    )
}

// ---------------------------------------------------------------------------------------------
// Dropout's mask

/// A 32-bit integer hash (Wellons' `lowbias32`), as the CPU's dropout uses.
#[cube]
fn mix32(x: u32) -> u32 {
    let mut x = x;
    x ^= x >> 16u32;
    x *= 0x7feb_352du32;
    x ^= x >> 15u32;
    x *= 0x846c_a68bu32;
    x ^= x >> 16u32;
    x
}

/// Whether element `i` is kept: the hash of `i` under the two keys falls under `threshold` in
/// its top 24 bits.
#[cube]
fn kept(i: usize, k1: u32, k2: u32, threshold: u32) -> bool {
    let h = mix32(mix32(u32::cast_from(i) ^ k1) ^ k2);
    (h >> 8u32) < threshold
}

/// A dropout's mask: its keys ([`crate::rng::dropout_keys`], drawn on the host: no launch), and
/// the threshold and scale of `1 - prob`.
#[derive(Debug, Clone, Copy)]
struct Mask {
    k1: u32,
    k2: u32,
    threshold: u32,
    scale: f32,
}

impl Mask {
    /// The kernels' dropout arguments: the keys, the threshold and the scale (a kernel without a
    /// mask reads none of them).
    fn args(mask: &Option<Self>) -> (u32, u32, u32, f32) {
        match mask {
            Some(m) => (m.k1, m.k2, m.threshold, m.scale),
            None => (0, 0, 0, 1.0),
        }
    }

    /// A fresh mask for dropping `prob` of the values.
    fn draw(prob: f64) -> Self {
        let (k1, k2) = crate::rng::dropout_keys();
        let keep = 1.0 - prob;
        Self {
            k1,
            k2,
            threshold: (keep * (1u32 << 24) as f64).round() as u32,
            scale: (1.0 / keep) as f32,
        }
    }
}

// ---------------------------------------------------------------------------------------------
// A linear layer's epilogue: residual + dropout(act(y + bias))

/// `act` (`kind` 0 GELU, 1 tanh GELU, 2 ReLU, 3 none) at `x`.
#[cube]
pub(super) fn act_at(x: f32, #[comptime] kind: u32) -> f32 {
    let mut y = x;
    if comptime![kind == 0] {
        y = 0.5f32 * x * (1.0f32 + erf(x * core::f32::consts::FRAC_1_SQRT_2));
    } else if comptime![kind == 1] {
        let inner = 0.797_884_6f32 * (x + 0.044_715f32 * x * x * x);
        y = 0.5f32 * x * (1.0f32 + f32::tanh(inner));
    } else if comptime![kind == 2] {
        y = f32::max(x, 0.0f32);
    }
    y
}

/// `act`'s derivative at `x`.
#[cube]
fn act_slope(x: f32, #[comptime] kind: u32) -> f32 {
    let mut s = 1.0f32;
    if comptime![kind == 0] {
        let cdf = 0.5f32 * (1.0f32 + erf(x * core::f32::consts::FRAC_1_SQRT_2));
        let pdf = f32::exp(-0.5f32 * x * x) * 0.398_942_3f32;
        s = cdf + x * pdf;
    } else if comptime![kind == 1] {
        let c = 0.797_884_6f32;
        let a = 0.044_715f32;
        let t = f32::tanh(c * (x + a * x * x * x));
        s = 0.5f32 * (1.0f32 + t)
            + 0.5f32 * x * (1.0f32 - t * t) * c * (1.0f32 + 3.0f32 * a * x * x);
    } else if comptime![kind == 2] {
        s = select(x > 0.0f32, 1.0f32, 0.0f32);
    }
    s
}

/// `residual + dropout(act(input + bias))`, each part chosen at compile time (`kind` 0 GELU,
/// 1 tanh GELU, 2 ReLU, 3 none); `bias` `[d]` repeats along the last dimension. Inference's
/// bias-and-activation kernel too (`super::elementwise`, without the dropout).
#[allow(clippy::too_many_arguments)]
#[cube(launch_unchecked)]
pub(super) fn epilogue_kernel(
    input: &Tensor<f32>,
    bias: &Tensor<f32>,
    residual: &Tensor<f32>,
    output: &mut Tensor<f32>,
    k1: u32,
    k2: u32,
    threshold: u32,
    scale: f32,
    #[comptime] kind: u32,
    #[comptime] with_bias: bool,
    #[comptime] with_dropout: bool,
    #[comptime] with_residual: bool,
) {
    let i = ABSOLUTE_POS;
    if i >= output.len() {
        terminate!();
    }
    let mut x = input[i];
    if comptime![with_bias] {
        x += bias[i % bias.len()];
    }
    let mut y = act_at(x, kind);
    if comptime![with_dropout] {
        y = select(kept(i, k1, k2, threshold), y * scale, 0.0f32);
    }
    if comptime![with_residual] {
        y += residual[i];
    }
    output[i] = y;
}

/// The gradient before the activation: `grad` through the mask, times the activation's slope
/// at `input + bias`.
#[allow(clippy::too_many_arguments)]
#[cube(launch_unchecked)]
fn epilogue_grad_kernel(
    grad: &Tensor<f32>,
    input: &Tensor<f32>,
    bias: &Tensor<f32>,
    output: &mut Tensor<f32>,
    k1: u32,
    k2: u32,
    threshold: u32,
    scale: f32,
    #[comptime] kind: u32,
    #[comptime] with_bias: bool,
    #[comptime] with_dropout: bool,
) {
    let i = ABSOLUTE_POS;
    if i >= output.len() {
        terminate!();
    }
    let mut g = grad[i];
    if comptime![with_dropout] {
        g = select(kept(i, k1, k2, threshold), g * scale, 0.0f32);
    }
    if comptime![kind != 3] {
        let mut x = input[i];
        if comptime![with_bias] {
            x += bias[i % bias.len()];
        }
        g *= act_slope(x, kind);
    }
    output[i] = g;
}

/// The activation as [`epilogue_kernel`]'s `kind`.
pub(super) fn kind_of(act: Option<Activation>) -> u32 {
    match act {
        Some(Activation::Gelu) => 0,
        Some(Activation::GeluTanh) => 1,
        Some(Activation::Relu) => 2,
        None => 3,
    }
}

#[derive(Debug)]
struct EpilogueStep {
    act: Option<Activation>,
    mask: Option<Mask>,
}

impl Backward<CubeBackend, 3> for EpilogueStep {
    /// The input and the bias, where the activation's slope needs them.
    type State = Option<(CubeTensor, Option<CubeTensor>)>;

    fn backward(
        self,
        ops: Ops<Self::State, 3>,
        grads: &mut Gradients,
        _checkpointer: &mut Checkpointer,
    ) {
        let [py, pb, pr] = ops.parents;
        let grad = grads.consume::<CubeBackend>(&ops.node);
        if let Some(node) = pr {
            grads.register::<CubeBackend>(node.id, grad.clone());
        }
        if py.is_none() && pb.is_none() {
            return;
        }
        let n = *grad.meta.shape().last().expect("a rank");
        let pre = if self.act.is_none() && self.mask.is_none() {
            grad
        } else {
            let grad = into_contiguous(grad);
            let kind = kind_of(self.act);
            let (input, bias) = match ops.state {
                Some((input, bias)) => (input, bias),
                None => (grad.clone(), None),
            };
            let with_bias = bias.is_some();
            let bias = bias.unwrap_or_else(|| grad.clone());
            let with_dropout = self.mask.is_some();
            let (k1, k2, threshold, scale) = Mask::args(&self.mask);
            let output = empty_like(&grad);
            let (count, dim) = elementwise_launch(&grad, grad.meta.shape().num_elements());
            unsafe {
                epilogue_grad_kernel::launch_unchecked(
                    &grad.client.clone(),
                    count,
                    dim,
                    grad.into_tensor_arg(),
                    input.into_tensor_arg(),
                    bias.into_tensor_arg(),
                    output.clone().into_tensor_arg(),
                    k1,
                    k2,
                    threshold,
                    scale,
                    kind,
                    with_bias,
                    with_dropout,
                )
            };
            output
        };
        if let Some(node) = pb {
            grads.register::<CubeBackend>(node.id, column_sum(pre.clone(), n));
        }
        if let Some(node) = py {
            grads.register::<CubeBackend>(node.id, pre);
        }
    }
}

/// Whether [`epilogue`] applies to `y` (`[.., n]`) with these parts.
pub fn epilogue_fits<const D: usize>(
    y: &Burn<D>,
    bias: Option<&Burn<1>>,
    dropout: f64,
    residual: Option<&Burn<D>>,
    n: usize,
) -> bool {
    let dims = y.dims();
    let graph = |t: &Burn<D>| t.is_autodiff() && t.dtype() == DType::F32;
    // Ranks up to 4: the bias's column sum reshapes at those.
    D <= 4
        && flex::enabled()
        && graph(y)
        && y.clone().try_into_primitive::<Graph>().is_ok()
        && n > 0
        && bias.is_none_or(|b| b.dims()[0] == n && b.dtype() == DType::F32 && b.is_autodiff())
        && residual
            .is_none_or(|r| r.dims()[..D - 1] == dims[..D - 1] && r.dims()[D - 1] == n && graph(r))
        && (0.0..1.0).contains(&dropout)
}

/// `residual + dropout(act(y + bias))` in training's graph, each part optional (`dropout`: the
/// probability of dropping, 0 for none): one kernel forward, and backward at most one kernel and
/// the bias's column sum. `y` back where the kernels do not apply.
#[allow(clippy::result_large_err)] // gives its input back
pub fn epilogue<const D: usize>(
    y: Burn<D>,
    bias: Option<&Burn<1>>,
    act: Option<Activation>,
    dropout: f64,
    residual: Option<&Burn<D>>,
) -> Result<Burn<D>, Burn<D>> {
    if !epilogue_fits(&y, bias, dropout, residual, y.dims()[D - 1]) {
        return Err(y);
    }
    let Some(yt) = on_graph(&y) else {
        return Err(y);
    };
    let tracked = |t: Option<&Burn<1>>| t.map(|t| t.clone().try_into_primitive::<Graph>().ok());
    let bt = match tracked(bias) {
        Some(None) => return Err(y),
        other => other.flatten(),
    };
    let rt = match residual.map(|r| r.clone().try_into_primitive::<Graph>().ok()) {
        Some(None) => return Err(y),
        other => other.flatten(),
    };
    let mask = (dropout > 0.0).then(|| Mask::draw(dropout));
    drop(y);
    let (yp, yn) = yt.into_parts();
    let input = into_contiguous(yp);
    let (bias_p, bias_n) = match bt {
        Some(b) => {
            let (p, n) = b.into_parts();
            (Some(into_contiguous(p)), Some(n))
        }
        None => (None, None),
    };
    let (res_p, res_n) = match rt {
        Some(r) => {
            let (p, n) = r.into_parts();
            (Some(into_contiguous(p)), Some(n))
        }
        None => (None, None),
    };
    let output = empty_like(&input);
    let (count, dim) = elementwise_launch(&input, input.meta.shape().num_elements());
    let kind = kind_of(act);
    let (k1, k2, threshold, scale) = Mask::args(&mask);
    unsafe {
        epilogue_kernel::launch_unchecked(
            &input.client.clone(),
            count,
            dim,
            input.clone().into_tensor_arg(),
            bias_p
                .clone()
                .unwrap_or_else(|| input.clone())
                .into_tensor_arg(),
            res_p
                .clone()
                .unwrap_or_else(|| input.clone())
                .into_tensor_arg(),
            output.clone().into_tensor_arg(),
            k1,
            k2,
            threshold,
            scale,
            kind,
            bias_p.is_some(),
            mask.is_some(),
            res_p.is_some(),
        )
    };
    let needs_input = act.is_some();
    let step = EpilogueStep { act, mask };
    // A part the op does not have stands in as an untracked leaf (no gradient goes to it).
    let none = || Tracked::new(input.clone()).node();
    let parents = [yn, bias_n.unwrap_or_else(none), res_n.unwrap_or_else(none)];
    let out = match step
        .prepare::<NoCheckpointing>(parents)
        .compute_bound()
        .stateful()
    {
        OpsKind::Tracked(prep) => {
            let state = needs_input.then_some((input, bias_p));
            prep.finish(state, output)
        }
        OpsKind::UnTracked(prep) => prep.finish(output),
    };
    Ok(from_graph(out))
}

// ---------------------------------------------------------------------------------------------
// A linear layer's product

#[derive(Debug)]
struct MatmulStep;

impl Backward<CubeBackend, 2> for MatmulStep {
    /// The input and the weight.
    type State = (CubeTensor, CubeTensor);

    fn backward(
        self,
        ops: Ops<Self::State, 2>,
        grads: &mut Gradients,
        _checkpointer: &mut Checkpointer,
    ) {
        let [px, pw] = ops.parents;
        let grad = grads.consume::<CubeBackend>(&ops.node);
        let (x, w) = ops.state;
        let dy = Operand::of(grad.clone()).expect("a matrix");
        // The tiled kernel applied forward, so it does backward (same device, sizes of the same
        // order); burn's matmul stands by all the same.
        if let Some(node) = pw {
            let shape = w.meta.shape().to_vec();
            let xt = Operand::of(x.clone()).expect("a matrix").transposed();
            let dw = gemm(&xt, &dy, Epilogue::default(), &shape).unwrap_or_else(|| {
                let y = wrap::<2>(x.clone())
                    .transpose()
                    .matmul(wrap::<2>(grad.clone()));
                y.try_into_primitive::<CubeBackend>()
                    .expect("a cubecl tensor")
            });
            grads.register::<CubeBackend>(node.id, dw);
        }
        if let Some(node) = px {
            let shape = x.meta.shape().to_vec();
            let wt = Operand::of(w.clone()).expect("a matrix").transposed();
            let dx = gemm(&dy, &wt, Epilogue::default(), &shape).unwrap_or_else(|| {
                let y = wrap::<2>(grad).matmul(wrap::<2>(w).transpose());
                y.try_into_primitive::<CubeBackend>()
                    .expect("a cubecl tensor")
            });
            grads.register::<CubeBackend>(node.id, dx);
        }
    }
}

/// `x · w` (`[m, k] · [k, n]`) in training's graph by the tiled kernel ([`super::gemm`]), and
/// backward `dy · wᵀ` and `xᵀ · dy` by the same kernel reading the transposed views as they
/// are; `None` where it does not apply (burn's matmul then).
pub fn matmul(x: &Burn<2>, w: &Burn<2>) -> Option<Burn<2>> {
    let (xt, wt) = (on_graph(x)?, on_graph(w)?);
    let (xp, xn) = xt.into_parts();
    let (wp, wn) = wt.into_parts();
    let a = Operand::of(xp.clone())?;
    let b = Operand::of(wp.clone())?;
    let out = gemm(&a, &b, Epilogue::default(), &[a.rows, b.cols])?;
    let out = match MatmulStep
        .prepare::<NoCheckpointing>([xn, wn])
        .compute_bound()
        .stateful()
    {
        OpsKind::Tracked(prep) => prep.finish((xp, wp), out),
        OpsKind::UnTracked(prep) => prep.finish(out),
    };
    Some(from_graph(out))
}

// ---------------------------------------------------------------------------------------------
// Layer norm

/// One row's layer norm, keeping the row's mean and `1 / std` in `stats` (`[rows, 2]`).
#[allow(clippy::too_many_arguments)]
#[cube(launch_unchecked)]
fn layer_norm_kernel(
    input: &Tensor<f32>,
    gamma: &Tensor<f32>,
    beta: &Tensor<f32>,
    output: &mut Tensor<f32>,
    stats: &mut Tensor<f32>,
    rows: usize,
    eps: f32,
    #[comptime] units: usize,
) {
    let row = CUBE_POS;
    if row >= rows {
        terminate!();
    }
    let d = gamma.len();
    let base = row * d;
    let unit = UNIT_POS as usize;
    let mut acc = Shared::<[f32]>::new_slice(units);

    let mut sum = 0.0f32;
    let mut i = unit;
    while i < d {
        sum += input[base + i];
        i += units;
    }
    acc[unit] = sum;
    let mean = cube_reduce(&mut acc, false) / f32::cast_from(d);
    sync_cube();

    let mut squares = 0.0f32;
    let mut i = unit;
    while i < d {
        let c = input[base + i] - mean;
        squares += c * c;
        i += units;
    }
    acc[unit] = squares;
    let var = cube_reduce(&mut acc, false) / f32::cast_from(d);
    let rstd = 1.0f32 / f32::sqrt(var + eps);

    let mut i = unit;
    while i < d {
        output[base + i] = (input[base + i] - mean) * rstd * gamma[i] + beta[i];
        i += units;
    }
    if unit == 0 {
        stats[row * 2] = mean;
        stats[row * 2 + 1] = rstd;
    }
}

/// One row's input gradient `rstd * (dy * g - mean(dy * g) - xhat * mean(dy * g * xhat))`, and
/// with `params` the row `[dy * xhat, dy]` of `params_rows` `[rows, 2d]` (gamma's and beta's
/// gradients, once summed over the rows: one reduction for both).
#[allow(clippy::too_many_arguments)]
#[cube(launch_unchecked)]
fn layer_norm_grad_kernel(
    grad: &Tensor<f32>,
    input: &Tensor<f32>,
    gamma: &Tensor<f32>,
    stats: &Tensor<f32>,
    dx: &mut Tensor<f32>,
    params_rows: &mut Tensor<f32>,
    rows: usize,
    #[comptime] units: usize,
    #[comptime] params: bool,
) {
    let row = CUBE_POS;
    if row >= rows {
        terminate!();
    }
    let d = gamma.len();
    let base = row * d;
    let unit = UNIT_POS as usize;
    let mean = stats[row * 2];
    let rstd = stats[row * 2 + 1];
    let mut acc = Shared::<[f32]>::new_slice(units);

    let mut s1 = 0.0f32;
    let mut s2 = 0.0f32;
    let mut i = unit;
    while i < d {
        let xhat = (input[base + i] - mean) * rstd;
        let t = grad[base + i] * gamma[i];
        s1 += t;
        s2 += t * xhat;
        if comptime![params] {
            params_rows[2 * base + i] = grad[base + i] * xhat;
            params_rows[2 * base + d + i] = grad[base + i];
        }
        i += units;
    }
    acc[unit] = s1;
    let m1 = cube_reduce(&mut acc, false) / f32::cast_from(d);
    sync_cube();
    acc[unit] = s2;
    let m2 = cube_reduce(&mut acc, false) / f32::cast_from(d);

    let mut i = unit;
    while i < d {
        let xhat = (input[base + i] - mean) * rstd;
        dx[base + i] = rstd * (grad[base + i] * gamma[i] - m1 - xhat * m2);
        i += units;
    }
}

#[derive(Debug)]
struct LayerNormStep;

impl Backward<CubeBackend, 3> for LayerNormStep {
    /// The input (contiguous), each row's mean and `1 / std`, and gamma.
    type State = (CubeTensor, CubeTensor, CubeTensor);

    fn backward(
        self,
        ops: Ops<Self::State, 3>,
        grads: &mut Gradients,
        _checkpointer: &mut Checkpointer,
    ) {
        let [px, pg, pb] = ops.parents;
        let grad = into_contiguous(grads.consume::<CubeBackend>(&ops.node));
        let (input, stats, gamma) = ops.state;
        let d = gamma.meta.shape().num_elements();
        if px.is_none() && pg.is_none() && pb.is_none() {
            return;
        }
        let rows = input.meta.shape().num_elements() / d;
        let dx = empty_like(&grad);
        let params = pg.is_some() || pb.is_some();
        // Without the parameters' gradients the rows go nowhere: one value stands in.
        let params_rows = empty_device_dtype(
            grad.client.clone(),
            grad.device.clone(),
            if params { [rows, 2 * d] } else { [1, 1] }.into(),
            DType::F32,
        );
        let (count, dim, units) = row_launch(&grad, rows);
        unsafe {
            layer_norm_grad_kernel::launch_unchecked(
                &grad.client.clone(),
                count,
                dim,
                grad.into_tensor_arg(),
                input.into_tensor_arg(),
                gamma.into_tensor_arg(),
                stats.into_tensor_arg(),
                dx.clone().into_tensor_arg(),
                params_rows.clone().into_tensor_arg(),
                rows,
                units as usize,
                params,
            )
        };
        if params {
            // [dgamma, dbeta] in one reduction, then each half as a view.
            let sums = wrap::<1>(column_sum(params_rows, 2 * d));
            let half = |i: usize| {
                sums.clone()
                    .narrow(0, i * d, d)
                    .try_into_primitive::<CubeBackend>()
                    .expect("a cubecl tensor")
            };
            if let Some(node) = pg {
                grads.register::<CubeBackend>(node.id, half(0));
            }
            if let Some(node) = pb {
                grads.register::<CubeBackend>(node.id, half(1));
            }
        }
        if let Some(node) = px {
            grads.register::<CubeBackend>(node.id, dx);
        }
    }
}

/// Layer norm over the last dimension in training's graph. `x` back where the kernels do not
/// apply.
#[allow(clippy::result_large_err)] // gives its input back
pub fn layer_norm<const D: usize>(
    x: Burn<D>,
    gamma: &Burn<1>,
    beta: &Burn<1>,
    eps: f64,
) -> Result<Burn<D>, Burn<D>> {
    let d = x.dims()[D - 1];
    let fits = d > 0
        && gamma.dims()[0] == d
        && beta.dims()[0] == d
        && gamma.dtype() == DType::F32
        && beta.dtype() == DType::F32;
    if !fits {
        return Err(x);
    }
    let (Ok(gt), Ok(bt)) = (
        gamma.clone().try_into_primitive::<Graph>(),
        beta.clone().try_into_primitive::<Graph>(),
    ) else {
        return Err(x);
    };
    let Some(xt) = on_graph(&x) else {
        return Err(x);
    };
    drop(x);
    let (xp, xn) = xt.into_parts();
    let (gp, gn) = gt.into_parts();
    let (bp, bn) = bt.into_parts();
    let (input, gamma, beta) = (
        into_contiguous(xp),
        into_contiguous(gp),
        into_contiguous(bp),
    );
    let rows = input.meta.shape().num_elements() / d;
    let output = empty_like(&input);
    let stats = empty_device_dtype(
        input.client.clone(),
        input.device.clone(),
        [rows, 2].into(),
        DType::F32,
    );
    let (count, dim, units) = row_launch(&input, rows);
    unsafe {
        layer_norm_kernel::launch_unchecked(
            &input.client.clone(),
            count,
            dim,
            input.clone().into_tensor_arg(),
            gamma.clone().into_tensor_arg(),
            beta.into_tensor_arg(),
            output.clone().into_tensor_arg(),
            stats.clone().into_tensor_arg(),
            rows,
            eps as f32,
            units as usize,
        )
    };
    let out = match LayerNormStep
        .prepare::<NoCheckpointing>([xn, gn, bn])
        .compute_bound()
        .stateful()
    {
        OpsKind::Tracked(prep) => prep.finish((input, stats, gamma), output),
        OpsKind::UnTracked(prep) => prep.finish(output),
    };
    Ok(from_graph(out))
}

// ---------------------------------------------------------------------------------------------
// Attention probabilities

/// One row's `scale * p * (g - sum(g * p))`.
#[cube(launch_unchecked)]
fn softmax_grad_kernel(
    grad: &Tensor<f32>,
    probs: &Tensor<f32>,
    output: &mut Tensor<f32>,
    rows: usize,
    n: usize,
    scale: f32,
    #[comptime] units: usize,
) {
    let row = CUBE_POS;
    if row >= rows {
        terminate!();
    }
    let base = row * n;
    let unit = UNIT_POS as usize;
    let mut acc = Shared::<[f32]>::new_slice(units);
    let mut dot = 0.0f32;
    let mut j = unit;
    while j < n {
        dot += grad[base + j] * probs[base + j];
        j += units;
    }
    acc[unit] = dot;
    let dot = cube_reduce(&mut acc, false);
    let mut j = unit;
    while j < n {
        output[base + j] = scale * probs[base + j] * (grad[base + j] - dot);
        j += units;
    }
}

#[derive(Debug)]
struct SoftmaxStep(f32);

impl Backward<CubeBackend, 1> for SoftmaxStep {
    /// The probabilities.
    type State = CubeTensor;

    fn backward(
        self,
        ops: Ops<CubeTensor, 1>,
        grads: &mut Gradients,
        _checkpointer: &mut Checkpointer,
    ) {
        let (scale, probs) = (self.0, ops.state);
        burn_autodiff::ops::unary::<CubeBackend, _>(ops.parents, ops.node, grads, |grad| {
            let grad = into_contiguous(grad);
            let n = *probs.meta.shape().last().expect("rank 4");
            let rows = probs.meta.shape().num_elements() / n.max(1);
            let output = empty_like(&grad);
            let (count, dim, units) = row_launch(&grad, rows);
            unsafe {
                softmax_grad_kernel::launch_unchecked(
                    &grad.client.clone(),
                    count,
                    dim,
                    grad.into_tensor_arg(),
                    probs.into_tensor_arg(),
                    output.clone().into_tensor_arg(),
                    rows,
                    n,
                    scale,
                    units as usize,
                )
            };
            output
        });
    }
}

/// Attention's probabilities `softmax(scores * scale + bias)` in training's graph, the bias a
/// constant (the padding or causal mask): the inference kernel forward, one kernel backward.
#[allow(clippy::result_large_err)] // gives its input back
pub fn attention_probs(scores: Burn<4>, scale: f64, bias: &Burn<4>) -> Result<Burn<4>, Burn<4>> {
    let dims = scores.dims();
    if !super::broadcasts_to(bias, dims) || dims[3] == 0 {
        return Err(scores);
    }
    let Some(bias) = constant(bias) else {
        return Err(scores);
    };
    let Some(st) = on_graph(&scores) else {
        return Err(scores);
    };
    drop(scores);
    let (sp, sn) = st.into_parts();
    let input = into_contiguous(sp);
    let probs = super::softmax_launch(input, bias, scale);
    let out = match SoftmaxStep(scale as f32)
        .prepare::<NoCheckpointing>([sn])
        .compute_bound()
        .stateful()
    {
        OpsKind::Tracked(prep) => prep.finish(probs.clone(), probs),
        OpsKind::UnTracked(prep) => prep.finish(probs),
    };
    Ok(from_graph(out))
}

// ---------------------------------------------------------------------------------------------
// AdamW over the flat buffers

/// Gradients gathered per launch: with the flat buffer, seven tensors, what cubecl lets a kernel
/// bind under WebGPU's default `maxStorageBuffersPerShaderStage` of eight (it keeps one in
/// reserve: `max_bindings`).
const GATHERED: usize = 6;

/// Slot `offset..offset + padded` of `out` gets `g`'s first `len` values, then zeros (element
/// `i` of each).
#[cube]
fn copy_part(
    out: &mut Tensor<f32>,
    g: &Tensor<f32>,
    i: usize,
    offset: usize,
    len: usize,
    padded: usize,
) {
    if i < padded {
        let mut v = 0.0f32;
        if i < len {
            v = g[i];
        }
        out[offset + i] = v;
    }
}

/// Copies up to six gradients (`parts`) into their slots of `out` ([`copy_part`]).
#[allow(clippy::too_many_arguments)]
#[cube(launch_unchecked)]
fn gather_kernel(
    out: &mut Tensor<f32>,
    g0: &Tensor<f32>,
    g1: &Tensor<f32>,
    g2: &Tensor<f32>,
    g3: &Tensor<f32>,
    g4: &Tensor<f32>,
    g5: &Tensor<f32>,
    o0: usize,
    n0: usize,
    p0: usize,
    o1: usize,
    n1: usize,
    p1: usize,
    o2: usize,
    n2: usize,
    p2: usize,
    o3: usize,
    n3: usize,
    p3: usize,
    o4: usize,
    n4: usize,
    p4: usize,
    o5: usize,
    n5: usize,
    p5: usize,
    #[comptime] parts: usize,
) {
    let i = ABSOLUTE_POS;
    copy_part(out, g0, i, o0, n0, p0);
    if comptime![parts > 1] {
        copy_part(out, g1, i, o1, n1, p1);
    }
    if comptime![parts > 2] {
        copy_part(out, g2, i, o2, n2, p2);
    }
    if comptime![parts > 3] {
        copy_part(out, g3, i, o3, n3, p3);
    }
    if comptime![parts > 4] {
        copy_part(out, g4, i, o4, n4, p4);
    }
    if comptime![parts > 5] {
        copy_part(out, g5, i, o5, n5, p5);
    }
}

/// AdamW on every weight, in place: the gradient clipped by the norm read from `norm[0]`, the
/// moments, the decay (`decay_mode` 0 none, 1 every weight, 2 where `mask` is 1), the update.
/// The arithmetic in the composition's order (`train::optim`), so that both give the same bits
/// where the device rounds alike.
#[allow(clippy::too_many_arguments)]
#[cube(launch_unchecked)]
fn adamw_kernel(
    params: &mut Tensor<f32>,
    m: &mut Tensor<f32>,
    v: &mut Tensor<f32>,
    g: &Tensor<f32>,
    mask: &Tensor<f32>,
    norm: &Tensor<f32>,
    beta1: f32,
    one_minus_beta1: f32,
    beta2: f32,
    one_minus_beta2: f32,
    bias2_sqrt: f32,
    epsilon: f32,
    step_size: f32,
    decay: f32,
    keep: f32,
    max_norm: f32,
    #[comptime] clip: bool,
    #[comptime] decay_mode: u32,
) {
    let i = ABSOLUTE_POS;
    if i >= params.len() {
        terminate!();
    }
    let mut gi = g[i];
    if comptime![clip] {
        let factor = f32::min(1.0f32 / (norm[0] + 1e-6f32) * max_norm, 1.0f32);
        gi *= factor;
    }
    let mi = m[i] * beta1 + gi * one_minus_beta1;
    let vi = v[i] * beta2 + gi * gi * one_minus_beta2;
    m[i] = mi;
    v[i] = vi;
    let denom = f32::sqrt(vi) / bias2_sqrt + epsilon;
    let update = mi / denom * step_size;
    let mut p = params[i];
    if comptime![decay_mode == 1] {
        p *= keep;
    } else if comptime![decay_mode == 2] {
        p -= p * mask[i] * decay;
    }
    params[i] = p - update;
}

/// The weights and the two moments, flat.
pub type Buffers = (Burn<1>, Burn<1>, Burn<1>);

/// [`Buffers`] after a step, and the gradients' norm before clipping.
pub type Updated = (Burn<1>, Burn<1>, Burn<1>, Burn<1>);

/// One parameter's gradient for [`adamw`]: its slot's offset, its length, its slot's padded
/// length, and the gradient (`None`: zeros).
pub struct SlotGrad {
    pub offset: usize,
    pub len: usize,
    pub padded: usize,
    pub grad: Option<Burn<1>>,
}

/// AdamW's step over the flat buffers on a GPU: the gradients gathered into one buffer (six per
/// launch), its norm (burn's reduction), then [`adamw_kernel`] in place. The buffers must be
/// held by nothing else (the model's views let go first); `None` (nothing launched) where the
/// kernels do not apply.
#[allow(clippy::result_large_err)] // gives the buffers back
pub fn adamw(
    params: Burn<1>,
    m: Burn<1>,
    v: Burn<1>,
    mask: Option<&Burn<1>>,
    grads: &[SlotGrad],
    u: flex::AdamWUpdate,
) -> Result<Updated, Buffers> {
    let plain = |t: &Burn<1>| {
        (flex::enabled() && !t.is_autodiff() && t.dtype() == DType::F32)
            .then(|| t.clone().try_into_primitive::<CubeBackend>().ok())
            .flatten()
    };
    let total = params.dims()[0];
    let fits = m.dims()[0] == total
        && v.dims()[0] == total
        && total > 0
        && mask.is_none_or(|k| k.dims()[0] == total && plain(k).is_some())
        && grads.iter().all(|s| {
            s.grad
                .as_ref()
                .is_none_or(|g| g.dims()[0] == s.len && plain(g).is_some())
        })
        && grads.iter().map(|s| s.padded).sum::<usize>() == total;
    if !fits || plain(&params).is_none() || plain(&m).is_none() || plain(&v).is_none() {
        return Err((params, m, v));
    }
    let take = |t: Burn<1>| t.try_into_primitive::<CubeBackend>().expect("checked");
    // The gather binds seven tensors (cubecl's `max_bindings`: the device's storage buffers less one).
    if plain(&params).is_some_and(|p| p.client.properties().hardware.max_bindings < 7) {
        return Err((params, m, v));
    }
    let (p, mt, vt) = (take(params), take(m), take(v));
    if !p.can_mut() || !mt.can_mut() || !vt.can_mut() || !p.is_contiguous() {
        return Err((wrap(p), wrap(mt), wrap(vt)));
    }
    let client = p.client.clone();
    let flat_grad = empty_like(&p);
    for group in grads.chunks(GATHERED) {
        let longest = group.iter().map(|s| s.padded).max().unwrap_or(0);
        if longest == 0 {
            continue;
        }
        let inputs: Vec<CubeTensor> = group
            .iter()
            .map(|s| match &s.grad {
                Some(g) => into_contiguous(plain(g).expect("checked")),
                None => p.clone(),
            })
            .collect();
        let input = |j: usize| {
            inputs
                .get(j)
                .unwrap_or(&inputs[0])
                .clone()
                .into_tensor_arg()
        };
        // Slot j: (offset, values, padded length); a missing part repeats the first.
        let slot = |j: usize| {
            let s = group.get(j).unwrap_or(&group[0]);
            let len = if s.grad.is_some() { s.len } else { 0 };
            (s.offset, len, s.padded)
        };
        let (s0, s1, s2, s3, s4, s5) = (slot(0), slot(1), slot(2), slot(3), slot(4), slot(5));
        let (count, dim) = elementwise_launch(&p, longest);
        unsafe {
            gather_kernel::launch_unchecked(
                &client,
                count,
                dim,
                flat_grad.clone().into_tensor_arg(),
                input(0),
                input(1),
                input(2),
                input(3),
                input(4),
                input(5),
                s0.0,
                s0.1,
                s0.2,
                s1.0,
                s1.1,
                s1.2,
                s2.0,
                s2.1,
                s2.2,
                s3.0,
                s3.1,
                s3.2,
                s4.0,
                s4.1,
                s4.2,
                s5.0,
                s5.1,
                s5.2,
                group.len(),
            )
        };
    }
    let g = wrap::<1>(flat_grad);
    let norm = g.clone().square().sum().sqrt();
    let norm_t = norm
        .clone()
        .try_into_primitive::<CubeBackend>()
        .expect("a cubecl tensor");
    let g = g
        .try_into_primitive::<CubeBackend>()
        .expect("a cubecl tensor");
    let decay_mode = match (u.decay == 0.0, mask) {
        (true, _) => 0,
        (false, None) => 1,
        (false, Some(_)) => 2,
    };
    // Without a mask the gradient stands in for the binding (read-only, as the mask's is).
    let mask = match mask {
        Some(k) => into_contiguous(plain(k).expect("checked")),
        None => g.clone(),
    };
    let (count, dim) = elementwise_launch(&p, total);
    unsafe {
        adamw_kernel::launch_unchecked(
            &client,
            count,
            dim,
            p.clone().into_tensor_arg(),
            mt.clone().into_tensor_arg(),
            vt.clone().into_tensor_arg(),
            g.into_tensor_arg(),
            mask.into_tensor_arg(),
            norm_t.into_tensor_arg(),
            u.beta1,
            u.one_minus_beta1,
            u.beta2,
            u.one_minus_beta2,
            u.bias2_sqrt,
            u.epsilon,
            u.step_size,
            u.decay,
            u.keep,
            u.max_grad_norm,
            u.max_grad_norm > 0.0,
            decay_mode,
        )
    };
    flex::count();
    Ok((wrap(p), wrap(mt), wrap(vt), norm))
}

// ---------------------------------------------------------------------------------------------
// Self-attention from the fused query/key/value output

/// Where head `h`'s part `part` (0 queries, 1 keys, 2 values) of token `(b, i)` starts in the
/// fused output `[b, t, 3d]`.
#[cube]
fn qkv_at(b: usize, i: usize, h: usize, part: usize, t: usize, d: usize, dh: usize) -> usize {
    (b * t + i) * 3 * d + part * d + h * dh
}

/// What the three attention kernels share for one unit: its row `(b, h, i)` of the `[b, heads,
/// t, t]` score matrices, and where that row's bias starts.
#[derive(CubeType, Clone, Copy)]
struct AttentionRow {
    b: usize,
    h: usize,
    i: usize,
    bias_base: usize,
    bias_step: usize,
}

#[cube]
fn attention_row(row: usize, heads: usize, t: usize, bias: &Tensor<f32>) -> AttentionRow {
    let b = row / (heads * t);
    let h = (row / t) % heads;
    let i = row % t;
    AttentionRow {
        b,
        h,
        i,
        bias_base: b * broadcast_stride(bias, 0usize)
            + h * broadcast_stride(bias, 1usize)
            + i * broadcast_stride(bias, 2usize),
        bias_step: broadcast_stride(bias, 3usize),
    }
}

/// The dropout's factor on the attention weight at `at` (its index in `[b, heads, t, t]`).
#[cube]
fn weight_factor(
    at: usize,
    k1: u32,
    k2: u32,
    threshold: u32,
    drop_scale: f32,
    #[comptime] with_dropout: bool,
) -> f32 {
    let mut f = 1.0f32;
    if comptime![with_dropout] {
        f = select(kept(at, k1, k2, threshold), drop_scale, 0.0f32);
    }
    f
}

/// One unit per query row `(b, h, i)`, the units of a cube on consecutive queries of one head
/// (so that they read each key and value at the same time): the scores against every key with an
/// online softmax (running maximum and sum, the weighted values rescaled as the maximum moves),
/// dropout on the weights, the context written with the heads merged into `context` `[b, t, d]`,
/// and the row's log-sum-exp kept in `stats` `[rows, 2]` (column 0) for the backward kernels,
/// which recompute the weights from it rather than keep a `[t, t]` matrix per head (column 1 is
/// theirs).
#[allow(clippy::too_many_arguments)]
#[cube(launch_unchecked)]
fn qkv_attention_kernel(
    qkv: &Tensor<f32>,
    bias: &Tensor<f32>,
    context: &mut Tensor<f32>,
    stats: &mut Tensor<f32>,
    heads: usize,
    t: usize,
    scale: f32,
    k1: u32,
    k2: u32,
    threshold: u32,
    drop_scale: f32,
    #[comptime] dh: usize,
    #[comptime] with_dropout: bool,
) {
    let row = ABSOLUTE_POS;
    if row * 2 >= stats.len() {
        terminate!();
    }
    let d = heads * dh;
    let r = attention_row(row, heads, t, bias);
    let q_base = qkv_at(r.b, r.i, r.h, 0, t, d, dh);
    let mut q = Array::<f32>::new(dh);
    let mut acc = Array::<f32>::new(dh);
    #[unroll]
    for e in 0..dh {
        q[e] = qkv[q_base + e];
        acc[e] = 0.0f32;
    }
    let mut top = f32::new(f32::MIN);
    let mut sum = 0.0f32;
    for j in 0..t {
        let k_base = qkv_at(r.b, j, r.h, 1, t, d, dh);
        let mut dot = 0.0f32;
        #[unroll]
        for e in 0..dh {
            dot += q[e] * qkv[k_base + e];
        }
        let s = dot * scale + bias[r.bias_base + j * r.bias_step];
        let next = f32::max(top, s);
        let rescale = f32::exp(top - next);
        let p = f32::exp(s - next);
        sum = sum * rescale + p;
        top = next;
        let w = p * weight_factor(row * t + j, k1, k2, threshold, drop_scale, with_dropout);
        let v_base = qkv_at(r.b, j, r.h, 2, t, d, dh);
        #[unroll]
        for e in 0..dh {
            acc[e] = acc[e] * rescale + w * qkv[v_base + e];
        }
    }
    let out_base = (r.b * t + r.i) * d + r.h * dh;
    #[unroll]
    for e in 0..dh {
        context[out_base + e] = acc[e] / sum;
    }
    stats[row * 2] = top + f32::ln(sum);
}

/// The widest head whose backward kernels keep their unit's own rows in registers (four rows of
/// `dh` for the key's kernel: 128 registers at MiniLM's 32; BERT-base's 64 would need 256).
const OWN_ROWS_MAX_HEAD: usize = 32;

/// Backward, one unit per query row `(b, h, i)`: `D_i = g_i · o_i` (kept in column 1 of `stats`
/// for [`qkv_attention_key_grad_kernel`]), then over the keys the weights recomputed from the
/// log-sum-exp, the scores' gradient `p (m (g_i · v_j) - D_i)` (`m` the dropout's factor), and
/// the query's gradient `scale Σ_j ds_ij k_j` into `dqkv`.
#[allow(clippy::too_many_arguments)]
#[cube(launch_unchecked)]
fn qkv_attention_query_grad_kernel(
    grad: &Tensor<f32>,
    qkv: &Tensor<f32>,
    context: &Tensor<f32>,
    stats: &mut Tensor<f32>,
    bias: &Tensor<f32>,
    dqkv: &mut Tensor<f32>,
    heads: usize,
    t: usize,
    scale: f32,
    k1: u32,
    k2: u32,
    threshold: u32,
    drop_scale: f32,
    #[comptime] dh: usize,
    #[comptime] with_dropout: bool,
) {
    let row = ABSOLUTE_POS;
    if row * 2 >= stats.len() {
        terminate!();
    }
    let d = heads * dh;
    let r = attention_row(row, heads, t, bias);
    let q_base = qkv_at(r.b, r.i, r.h, 0, t, d, dh);
    let g_base = (r.b * t + r.i) * d + r.h * dh;
    // The gradient and the sum in registers, and for a narrow head the query too (read once,
    // as in the key's kernel); a wide head's query is read where it lies.
    let own = comptime![if dh <= OWN_ROWS_MAX_HEAD { dh } else { 1 }];
    let mut g = Array::<f32>::new(dh);
    let mut acc = Array::<f32>::new(dh);
    let mut qr = Array::<f32>::new(own);
    let mut dot_go = 0.0f32;
    #[unroll]
    for e in 0..dh {
        g[e] = grad[g_base + e];
        acc[e] = 0.0f32;
        dot_go += g[e] * context[g_base + e];
        if comptime![dh <= OWN_ROWS_MAX_HEAD] {
            qr[e] = qkv[q_base + e];
        }
    }
    stats[row * 2 + 1] = dot_go;
    let l = stats[row * 2];
    for j in 0..t {
        let k_base = qkv_at(r.b, j, r.h, 1, t, d, dh);
        let v_base = qkv_at(r.b, j, r.h, 2, t, d, dh);
        let mut s = 0.0f32;
        let mut gv = 0.0f32;
        #[unroll]
        for e in 0..dh {
            if comptime![dh <= OWN_ROWS_MAX_HEAD] {
                s += qr[e] * qkv[k_base + e];
            } else {
                s += qkv[q_base + e] * qkv[k_base + e];
            }
            gv += g[e] * qkv[v_base + e];
        }
        let p = f32::exp(s * scale + bias[r.bias_base + j * r.bias_step] - l);
        let m = weight_factor(row * t + j, k1, k2, threshold, drop_scale, with_dropout);
        let ds = p * (m * gv - dot_go);
        #[unroll]
        for e in 0..dh {
            acc[e] += ds * qkv[k_base + e];
        }
    }
    #[unroll]
    for e in 0..dh {
        dqkv[q_base + e] = acc[e] * scale;
    }
}

/// Backward, one unit per key row `(b, h, j)`: over the queries `i` the weights recomputed, the
/// value's gradient `Σ_i m p_ij g_i` and the key's `scale Σ_i ds_ij q_i` into `dqkv`.
#[allow(clippy::too_many_arguments)]
#[cube(launch_unchecked)]
fn qkv_attention_key_grad_kernel(
    grad: &Tensor<f32>,
    qkv: &Tensor<f32>,
    stats: &Tensor<f32>,
    bias: &Tensor<f32>,
    dqkv: &mut Tensor<f32>,
    heads: usize,
    t: usize,
    scale: f32,
    k1: u32,
    k2: u32,
    threshold: u32,
    drop_scale: f32,
    #[comptime] dh: usize,
    #[comptime] with_dropout: bool,
) {
    let row = ABSOLUTE_POS;
    if row * 2 >= stats.len() {
        terminate!();
    }
    let d = heads * dh;
    // This unit's key j; the bias is read per query row below.
    let b = row / (heads * t);
    let h = (row / t) % heads;
    let j = row % t;
    let head_rows = (b * heads + h) * t;
    let k_base = qkv_at(b, j, h, 1, t, d, dh);
    let v_base = qkv_at(b, j, h, 2, t, d, dh);
    // The sums in registers, and for a narrow head this unit's key and value too (read once:
    // each unit's own row, re-read per query, is a scattered load across the units); a wide
    // head's are read where they lie, to keep to two rows of registers.
    let own = comptime![if dh <= OWN_ROWS_MAX_HEAD { dh } else { 1 }];
    let mut dk = Array::<f32>::new(dh);
    let mut dv = Array::<f32>::new(dh);
    let mut kr = Array::<f32>::new(own);
    let mut vr = Array::<f32>::new(own);
    #[unroll]
    for e in 0..dh {
        dk[e] = 0.0f32;
        dv[e] = 0.0f32;
        if comptime![dh <= OWN_ROWS_MAX_HEAD] {
            kr[e] = qkv[k_base + e];
            vr[e] = qkv[v_base + e];
        }
    }
    let s0 = broadcast_stride(bias, 0usize);
    let s1 = broadcast_stride(bias, 1usize);
    let s2 = broadcast_stride(bias, 2usize);
    let s3 = broadcast_stride(bias, 3usize);
    for i in 0..t {
        let q_base = qkv_at(b, i, h, 0, t, d, dh);
        let g_base = (b * t + i) * d + h * dh;
        let mut s = 0.0f32;
        let mut gv = 0.0f32;
        #[unroll]
        for e in 0..dh {
            if comptime![dh <= OWN_ROWS_MAX_HEAD] {
                s += qkv[q_base + e] * kr[e];
                gv += grad[g_base + e] * vr[e];
            } else {
                s += qkv[q_base + e] * qkv[k_base + e];
                gv += grad[g_base + e] * qkv[v_base + e];
            }
        }
        let qrow = head_rows + i;
        let p = f32::exp(s * scale + bias[b * s0 + h * s1 + i * s2 + j * s3] - stats[qrow * 2]);
        let m = weight_factor(qrow * t + j, k1, k2, threshold, drop_scale, with_dropout);
        let ds = p * (m * gv - stats[qrow * 2 + 1]);
        let w = m * p;
        #[unroll]
        for e in 0..dh {
            dv[e] += w * grad[g_base + e];
            dk[e] += ds * qkv[q_base + e];
        }
    }
    #[unroll]
    for e in 0..dh {
        dqkv[k_base + e] = dk[e] * scale;
        dqkv[v_base + e] = dv[e];
    }
}

#[derive(Debug)]
struct QkvAttentionStep {
    heads: usize,
    dh: usize,
    scale: f32,
    mask: Option<Mask>,
}

impl Backward<CubeBackend, 1> for QkvAttentionStep {
    /// The fused query/key/value output, the context, each row's log-sum-exp (`[rows, 2]`, the
    /// second column the backward kernels' own) and the bias.
    type State = (CubeTensor, CubeTensor, CubeTensor, CubeTensor);

    fn backward(
        self,
        ops: Ops<Self::State, 1>,
        grads: &mut Gradients,
        _checkpointer: &mut Checkpointer,
    ) {
        let (qkv, context, stats, bias) = ops.state;
        let (heads, dh, scale, mask) = (self.heads, self.dh, self.scale, self.mask);
        burn_autodiff::ops::unary::<CubeBackend, _>(ops.parents, ops.node, grads, |grad| {
            let grad = into_contiguous(grad);
            let t = grad.meta.shape()[1];
            let rows = stats.meta.shape().num_elements() / 2;
            let dqkv = empty_like(&qkv);
            let (k1, k2, threshold, drop_scale) = Mask::args(&mask);
            let (count, dim) = elementwise_launch(&grad, rows);
            let client = grad.client.clone();
            unsafe {
                qkv_attention_query_grad_kernel::launch_unchecked(
                    &client,
                    count.clone(),
                    dim,
                    grad.clone().into_tensor_arg(),
                    qkv.clone().into_tensor_arg(),
                    context.into_tensor_arg(),
                    stats.clone().into_tensor_arg(),
                    bias.clone().into_tensor_arg(),
                    dqkv.clone().into_tensor_arg(),
                    heads,
                    t,
                    scale,
                    k1,
                    k2,
                    threshold,
                    drop_scale,
                    dh,
                    mask.is_some(),
                );
                qkv_attention_key_grad_kernel::launch_unchecked(
                    &client,
                    count,
                    dim,
                    grad.into_tensor_arg(),
                    qkv.into_tensor_arg(),
                    stats.into_tensor_arg(),
                    bias.into_tensor_arg(),
                    dqkv.clone().into_tensor_arg(),
                    heads,
                    t,
                    scale,
                    k1,
                    k2,
                    threshold,
                    drop_scale,
                    dh,
                    mask.is_some(),
                )
            };
            dqkv
        });
    }
}

/// The widest head [`qkv_attention`] takes: each unit keeps two rows of it in registers.
const ATTENTION_MAX_HEAD: usize = 128;

/// Self-attention in training's graph from `qkv` `[b, t, 3d]` (queries, keys and values fused,
/// biases added: the layer's one linear output): `dropout(softmax(q kᵀ * scale + bias)) v` for
/// each of the `heads`, merged back to `[b, t, d]`. The bias is a constant broadcast to
/// `[b, heads, t, t]` (the padding or causal mask); `dropout` the probability of dropping
/// attention weights (0 for none). One kernel forward, two backward, one unit per row, reading
/// the heads where they lie in `qkv` and keeping no `[t, t]` matrix (the weights are recomputed
/// from each row's log-sum-exp, as FlashAttention does): burn's composition splits, copies and
/// transposes the heads, and takes two batched matmuls, the softmax and the dropout each way.
/// `qkv` back where the kernels do not apply.
#[allow(clippy::result_large_err)] // gives its input back
pub fn qkv_attention(
    qkv: Burn<3>,
    heads: usize,
    scale: f64,
    bias: &Burn<4>,
    dropout: f64,
) -> Result<Burn<3>, Burn<3>> {
    let [b, t, d3] = qkv.dims();
    let dh = (d3 / 3).checked_div(heads).unwrap_or(0);
    let fits = heads > 0
        && d3 % (3 * heads) == 0
        && (1..=ATTENTION_MAX_HEAD).contains(&dh)
        && t > 0
        && b > 0
        && super::broadcasts_to(bias, [b, heads, t, t])
        && (0.0..1.0).contains(&dropout);
    if !fits {
        return Err(qkv);
    }
    let Some(bias) = constant(bias) else {
        return Err(qkv);
    };
    // Its query-gradient kernel binds six tensors (cubecl's `max_bindings`: the device's storage
    // buffers less one).
    if bias.client.properties().hardware.max_bindings < 6 {
        return Err(qkv);
    }
    let Some(qt) = on_graph(&qkv) else {
        return Err(qkv);
    };
    let mask = (dropout > 0.0).then(|| Mask::draw(dropout));
    drop(qkv);
    let (qp, qn) = qt.into_parts();
    let input = into_contiguous(qp);
    let d = d3 / 3;
    let rows = b * heads * t;
    let stats = empty_device_dtype(
        input.client.clone(),
        input.device.clone(),
        [rows, 2].into(),
        DType::F32,
    );
    let context = empty_device_dtype(
        input.client.clone(),
        input.device.clone(),
        [b, t, d].into(),
        DType::F32,
    );
    let (count, dim) = elementwise_launch(&input, rows);
    let (k1, k2, threshold, drop_scale) = Mask::args(&mask);
    unsafe {
        qkv_attention_kernel::launch_unchecked(
            &input.client.clone(),
            count,
            dim,
            input.clone().into_tensor_arg(),
            bias.clone().into_tensor_arg(),
            context.clone().into_tensor_arg(),
            stats.clone().into_tensor_arg(),
            heads,
            t,
            scale as f32,
            k1,
            k2,
            threshold,
            drop_scale,
            dh,
            mask.is_some(),
        )
    };
    let step = QkvAttentionStep {
        heads,
        dh,
        scale: scale as f32,
        mask,
    };
    let out = match step
        .prepare::<NoCheckpointing>([qn])
        .compute_bound()
        .stateful()
    {
        OpsKind::Tracked(prep) => prep.finish((input, context.clone(), stats, bias), context),
        OpsKind::UnTracked(prep) => prep.finish(context),
    };
    Ok(from_graph(out))
}
