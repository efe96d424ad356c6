//! A tiled matrix product for many rows, with a linear layer's epilogue on its way out: the
//! encoder's batches (hundreds to thousands of rows) and every product of training, forward and
//! backward. burn's matmul without autotune runs cubek's unit routine on WebGPU (no cooperative
//! matrices in WGSL), and burn's autotune, which finds a faster one, tunes again for every new
//! shape (training's padded batches), so it stays off (README, issue 11).
//!
//! Each cube of 256 units computes a `16·tm × 16·tm` tile of the output, `tm²` values per unit
//! kept in registers, stepping along the shared dimension `bk` at a time through shared memory
//! (a tile of each operand, stored shared-dimension-major and padded by one against bank
//! conflicts). A unit's rows and columns are 16 apart, so that neighbouring units read
//! neighbouring words of the shared tiles and write neighbouring outputs. Each operand is read
//! through its strides as a logical `[rows, cols]` matrix, and its tile is loaded along whichever
//! of its dimensions is contiguous: a transposed view (the weight in `dy · wᵀ`, the input in
//! `xᵀ · dy`) costs no copy.

use burn_cubecl::ops::numeric::empty_device_dtype;
use burn_cubecl::tensor::CubeTensor;
use cubecl::prelude::*;

use super::elem_type;
use super::train::{act_at, elementwise_launch, kind_of};
use crate::model::config::Activation;
use burn::tensor::DType;

/// Units per cube: a 16 × 16 grid.
const UNITS: usize = 256;

/// A product of fewer tiles than this is split along its shared dimension...
const MANY_CUBES: usize = 512;

/// ... into parts at least this deep.
const MIN_SPLIT_DEPTH: usize = 256;

/// `out = residual + act(a · b + bias)` (or `silu(residual) * (a · b + bias)` where `gated`),
/// each part chosen at compile time; `a` a logical `[m, k]` (strides `a_row`, `a_col`), `b` a
/// logical `[k, n]` (strides `b_row`, `b_col`), `out` and `residual` contiguous `[m, n]`.
#[allow(clippy::too_many_arguments)]
#[cube(launch_unchecked)]
fn gemm_kernel<W: Float, A: Float, O: Float>(
    a: &Tensor<A>,
    b: &Tensor<W>,
    bias: &Tensor<f32>,
    residual: &Tensor<O>,
    out: &mut Tensor<O>,
    m: usize,
    n: usize,
    k: usize,
    a_row: usize,
    a_col: usize,
    b_row: usize,
    b_col: usize,
    k_len: usize,
    #[comptime] tm: usize,
    #[comptime] bk: usize,
    #[comptime] a_ones: bool,
    #[comptime] a_rows_contiguous: bool,
    #[comptime] b_cols_contiguous: bool,
    #[comptime] kind: u32,
    #[comptime] with_bias: bool,
    #[comptime] with_residual: bool,
    #[comptime] gated: bool,
    #[define(W, A, O)] _types: [ElemType; 3],
) {
    let tile = comptime![16 * tm];
    let stride = comptime![16 * tm + 1];
    let loads = comptime![16 * tm * bk / UNITS];
    let mut sa = Shared::<[f32]>::new_slice(comptime![bk * (16 * tm + 1)]);
    let mut sb = Shared::<[f32]>::new_slice(comptime![bk * (16 * tm + 1)]);
    let unit = UNIT_POS as usize;
    let tx = unit % 16;
    let ty = unit / 16;
    let row0 = CUBE_POS_Y as usize * tile;
    let col0 = CUBE_POS_X as usize * tile;
    let mut acc = Array::<f32>::new(comptime![tm * tm]);
    #[unroll]
    for i in 0..comptime![tm * tm] {
        acc[i] = 0.0f32;
    }
    let mut ar = Array::<f32>::new(tm);
    let mut br = Array::<f32>::new(tm);
    // This cube's part of the shared dimension (all of it, or one split's) and of the output.
    let split = CUBE_POS_Z as usize;
    let mut k0 = split * k_len;
    let k_end = usize::min(k, k0 + k_len);
    let part = split * m * n;
    while k0 < k_end {
        #[unroll]
        for l in 0..loads {
            let e = unit + l * UNITS;
            // A's tile: `tile` rows by `bk`, read along its contiguous dimension.
            let mut r = e / bk;
            let mut kk = e % bk;
            if comptime![a_rows_contiguous] {
                r = e % tile;
                kk = e / tile;
            }
            if comptime![!a_ones] {
                let gr = row0 + r;
                let gk = k0 + kk;
                let mut v = 0.0f32;
                if gr < m && gk < k_end {
                    v = f32::cast_from(a[gr * a_row + gk * a_col]);
                }
                sa[kk * stride + r] = v;
            }
            // B's tile: `bk` rows by `tile` columns.
            let mut c = e % tile;
            let mut kb = e / tile;
            if comptime![!b_cols_contiguous] {
                c = e / bk;
                kb = e % bk;
            }
            let gkb = k0 + kb;
            let gc = col0 + c;
            let mut w = 0.0f32;
            if gkb < k_end && gc < n {
                w = f32::cast_from(b[gkb * b_row + gc * b_col]);
            }
            sb[kb * stride + c] = w;
        }
        sync_cube();
        if comptime![a_ones] {
            // A row of ones: the first row of units sums B's tile (zero past its edges), the
            // others only load.
            if ty == 0 {
                #[unroll]
                for kk in 0..bk {
                    #[unroll]
                    for j in 0..tm {
                        acc[j] += sb[kk * stride + tx + 16 * j];
                    }
                }
            }
        } else {
            #[unroll]
            for kk in 0..bk {
                #[unroll]
                for i in 0..tm {
                    ar[i] = sa[kk * stride + ty + 16 * i];
                }
                #[unroll]
                for j in 0..tm {
                    br[j] = sb[kk * stride + tx + 16 * j];
                }
                #[unroll]
                for i in 0..tm {
                    #[unroll]
                    for j in 0..tm {
                        acc[i * tm + j] += ar[i] * br[j];
                    }
                }
            }
        }
        sync_cube();
        k0 += bk;
    }
    #[unroll]
    for i in 0..tm {
        let r = row0 + ty + 16 * i;
        if r < m {
            #[unroll]
            for j in 0..tm {
                let c = col0 + tx + 16 * j;
                if c < n {
                    let at = r * n + c;
                    out[part + at] = O::cast_from(finish(
                        acc[i * tm + j],
                        c,
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
}

/// The epilogue of output `at` (column `c`) from its product `t` (the row kernel's too).
#[allow(clippy::too_many_arguments)]
#[cube]
pub(super) fn finish<O: Float>(
    t: f32,
    c: usize,
    at: usize,
    bias: &Tensor<f32>,
    residual: &Tensor<O>,
    #[comptime] kind: u32,
    #[comptime] with_bias: bool,
    #[comptime] with_residual: bool,
    #[comptime] gated: bool,
) -> f32 {
    let mut t = t;
    if comptime![with_bias] {
        t += bias[c];
    }
    let mut y = act_at(t, kind);
    if comptime![gated] {
        let g = f32::cast_from(residual[at]);
        y *= g / (1.0f32 + f32::exp(-g));
    } else if comptime![with_residual] {
        y += f32::cast_from(residual[at]);
    }
    y
}

/// The sum of a split product's `splits` parts (`[splits, m, n]`), then the epilogue.
#[allow(clippy::too_many_arguments)]
#[cube(launch_unchecked)]
fn sum_splits_kernel<O: Float>(
    parts: &Tensor<f32>,
    bias: &Tensor<f32>,
    residual: &Tensor<O>,
    out: &mut Tensor<O>,
    n: usize,
    len: usize,
    splits: usize,
    #[comptime] kind: u32,
    #[comptime] with_bias: bool,
    #[comptime] with_residual: bool,
    #[comptime] gated: bool,
    #[define(O)] _o_type: ElemType,
) {
    let at = ABSOLUTE_POS;
    if at < len {
        let mut t = 0.0f32;
        for z in 0..splits {
            t += parts[z * len + at];
        }
        out[at] = O::cast_from(finish(
            t,
            at % n,
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

/// A matrix operand: a tensor of rank 2 or more read as a logical `[rows, cols]` through two
/// strides (a contiguous tensor's leading dimensions merged into the rows; a transposed view
/// by swapping).
#[derive(Clone)]
pub struct Operand {
    pub tensor: CubeTensor,
    pub rows: usize,
    pub cols: usize,
    pub row_stride: usize,
    pub col_stride: usize,
    /// A single row of ones, never read (`tensor` a stand-in): a product by it sums columns.
    pub ones: bool,
}

impl Operand {
    /// `t` as `[rows, cols]`: a matrix with any strides, or a contiguous tensor of higher rank
    /// (its last dimension the columns); `None` for a strided one of higher rank.
    pub fn of(t: CubeTensor) -> Option<Self> {
        let shape = t.meta.shape().to_vec();
        let strides = t.meta.strides().to_vec();
        let d = shape.len();
        if d < 2 {
            return None;
        }
        let cols = shape[d - 1];
        let rows = shape[..d - 1].iter().product::<usize>();
        if d > 2 {
            // Row-major over the leading dimensions.
            let mut expected = cols;
            for i in (0..d - 1).rev() {
                if shape[i] > 1 && strides[i] != expected {
                    return None;
                }
                expected *= shape[i];
            }
            if cols > 1 && strides[d - 1] != 1 {
                return None;
            }
            return Some(Self {
                tensor: t,
                rows,
                cols,
                row_stride: cols,
                col_stride: 1,
                ones: false,
            });
        }
        Some(Self {
            rows,
            cols,
            row_stride: strides[0],
            col_stride: strides[1],
            tensor: t,
            ones: false,
        })
    }

    /// A `[1, cols]` row of ones, on `like`'s device (as the left operand only).
    pub fn ones(like: &CubeTensor, cols: usize) -> Self {
        Self {
            tensor: like.clone(),
            rows: 1,
            cols,
            row_stride: 0,
            col_stride: 0,
            ones: true,
        }
    }

    pub fn transposed(self) -> Self {
        Self {
            rows: self.cols,
            cols: self.rows,
            row_stride: self.col_stride,
            col_stride: self.row_stride,
            tensor: self.tensor,
            ones: self.ones,
        }
    }

    /// Whether consecutive rows of a column lie next to each other (a transposed view).
    fn rows_contiguous(&self) -> bool {
        self.row_stride == 1 && self.col_stride != 1
    }
}

/// The sum of `t`'s rows (`t` read as `[rows, n]`: a matrix, or a contiguous tensor whose last
/// dimension is `n`), `[n]`: a product by a row of ones, split along the rows as a deep product
/// is. burn's 46 reductions of a batch-32 training step on an H200, these column sums most of
/// them, took 8.6 ms of its 33 (`TUNELAB_KERNEL_TIMES`, benches/results/h200-2026-11-28, run 11);
/// after, 0.06 ms and these sums' second launches 0.5 ms (run 12).
pub fn column_sums(t: &CubeTensor, n: usize) -> Option<CubeTensor> {
    let b = Operand::of(t.clone())?;
    if b.cols != n || b.tensor.dtype != burn::tensor::DType::F32 {
        return None;
    }
    let ones = Operand::ones(t, b.rows);
    gemm(&ones, &b, Epilogue::default(), &[n])
}

/// What follows the product in the same kernel.
#[derive(Clone, Copy, Default)]
pub struct Epilogue<'a> {
    pub bias: Option<&'a CubeTensor>,
    pub act: Option<Activation>,
    /// Added to the output, or with `gated` the gate whose SiLU multiplies it: contiguous, the
    /// output's shape.
    pub residual: Option<&'a CubeTensor>,
    pub gated: bool,
}

/// Whether the tiled kernel with `tm` values per unit along each side (its tiles `16·tm` wide,
/// `bk` deep) can run on `t`'s device: 256 units per cube and room for its two shared tiles.
fn fits(t: &CubeTensor, tm: usize, bk: usize) -> bool {
    let hw = &t.client.properties().hardware;
    hw.max_units_per_cube >= UNITS as u32
        && hw.max_shared_memory_size >= 2 * bk * (16 * tm + 1) * std::mem::size_of::<f32>()
}

/// With `TUNELAB_TILED_MATMUL=0` (natively) the tiled kernel stays off, for the benchmark.
pub fn enabled() -> bool {
    #[cfg(not(target_arch = "wasm32"))]
    {
        static ON: std::sync::OnceLock<bool> = std::sync::OnceLock::new();
        *ON.get_or_init(|| std::env::var("TUNELAB_TILED_MATMUL").map_or(true, |v| v != "0"))
    }
    #[cfg(target_arch = "wasm32")]
    true
}

/// The output tile's side (64 or 128): 64 unless the benchmark's probe asks for 128. 128 × 128
/// tiles were slower on an H200 even for a training batch's 4,096 rows
/// (benches/results/h200-2026-11-28).
pub const TILE: usize = 64;

/// `a · b` with the epilogue, contiguous, shaped `out_shape` (`a.rows × b.cols` values), in f32;
/// `a`, `b` and the residual f32 or f16 (a decoder's activations and weights in half precision),
/// the bias f32. `None` where it does not apply (the kernel off or too big for the device, shapes
/// that do not agree, a grid too large).
pub fn gemm(
    a: &Operand,
    b: &Operand,
    epilogue: Epilogue,
    out_shape: &[usize],
) -> Option<CubeTensor> {
    gemm_tiled(a, b, epilogue, out_shape, TILE, DType::F32)
}

/// [`gemm`] written in `out` (f32 or f16; the residual in the same), the sums in f32 either way.
pub fn gemm_into(
    a: &Operand,
    b: &Operand,
    epilogue: Epilogue,
    out_shape: &[usize],
    out: DType,
) -> Option<CubeTensor> {
    gemm_tiled(a, b, epilogue, out_shape, TILE, out)
}

/// A binding for a kernel's unused tensor of type `dtype`: `like` (one of the kernel's inputs,
/// never its output) where it has that type, nothing allocated; else a one-element buffer.
pub fn stand_in(like: &CubeTensor, dtype: DType) -> CubeTensor {
    if like.dtype == dtype {
        return like.clone();
    }
    empty_device_dtype(like.client.clone(), like.device.clone(), [1].into(), dtype)
}

/// [`gemm`] with output tiles `tile` wide (64 or 128), written in `out_dtype`.
pub fn gemm_tiled(
    a: &Operand,
    b: &Operand,
    epilogue: Epilogue,
    out_shape: &[usize],
    tile: usize,
    out_dtype: DType,
) -> Option<CubeTensor> {
    let (m, k, n) = (a.rows, a.cols, b.cols);
    if !enabled()
        || (a.ones && m != 1)
        || b.ones
        || b.rows != k
        || m == 0
        || n == 0
        || out_shape.iter().product::<usize>() != m * n
        || epilogue
            .bias
            .is_some_and(|t| t.meta.shape().num_elements() != n)
        || epilogue
            .residual
            .is_some_and(|t| t.meta.shape().num_elements() != m * n)
        || !matches!(tile, 64 | 128)
        || epilogue.residual.is_some_and(|t| t.dtype != out_dtype)
        || epilogue.bias.is_some_and(|t| t.dtype != DType::F32)
    {
        return None;
    }
    let tm = tile / 16;
    // 4 loads per unit per step of each operand: bk = 16 for 64-row tiles, 8 for 128.
    let bk = 4 * UNITS / tile;
    if !fits(&a.tensor, tm, bk) {
        return None;
    }
    let (cubes_x, cubes_y) = (n.div_ceil(tile), m.div_ceil(tile));
    if cubes_x > 65_535 || cubes_y > 65_535 {
        return None;
    }
    // A deep product of few tiles (a weight's gradient `xᵀ · dy`, thousands of rows deep, a few
    // dozen tiles of output) in splits of the shared dimension, for enough cubes to fill a GPU,
    // each at least 256 deep; their parts then summed with the epilogue.
    let mut splits = 1;
    let blocks = cubes_x * cubes_y;
    if blocks < MANY_CUBES && k >= 4 * MIN_SPLIT_DEPTH {
        splits = MANY_CUBES.div_ceil(blocks).min(k / MIN_SPLIT_DEPTH).min(64);
    }
    let k_len = k.div_ceil(splits).next_multiple_of(bk);
    let splits = k.div_ceil(k_len);
    let (Some(w_type), Some(a_type), Some(o_type)) = (
        elem_type(b.tensor.dtype),
        elem_type(a.tensor.dtype),
        elem_type(out_dtype),
    ) else {
        return None;
    };
    let client = a.tensor.client.clone();
    let alloc = |shape: Vec<usize>, dtype: DType| {
        empty_device_dtype(client.clone(), a.tensor.device.clone(), shape.into(), dtype)
    };
    let out = alloc(out_shape.to_vec(), out_dtype);
    // With splits, their parts in f32, then summed into `out`.
    let (target, target_type) = if splits > 1 {
        (
            alloc(vec![splits, m, n], DType::F32),
            elem_type(DType::F32)?,
        )
    } else {
        (out.clone(), o_type)
    };
    // An unused part still needs a binding of its type: a stand-in.
    let bias = epilogue
        .bias
        .cloned()
        .unwrap_or_else(|| stand_in(&a.tensor, DType::F32));
    let residual = epilogue
        .residual
        .cloned()
        .unwrap_or_else(|| stand_in(&a.tensor, out_dtype));
    // The product's own launch binds a residual of the target's type (unread with splits; not
    // the target itself: WebGPU refuses a buffer bound for writing and reading in one launch).
    let direct = splits == 1;
    let product_residual = if direct {
        residual.clone()
    } else {
        stand_in(&a.tensor, DType::F32)
    };
    let kind = kind_of(epilogue.act);
    let with_bias = epilogue.bias.is_some();
    let with_residual = epilogue.residual.is_some() && !epilogue.gated;
    // With splits, the epilogue waits for their sum.
    unsafe {
        gemm_kernel::launch_unchecked(
            &client,
            CubeCount::Static(cubes_x as u32, cubes_y as u32, splits as u32),
            CubeDim::new_1d(UNITS as u32),
            a.tensor.clone().into_tensor_arg(),
            b.tensor.clone().into_tensor_arg(),
            bias.clone().into_tensor_arg(),
            product_residual.into_tensor_arg(),
            target.clone().into_tensor_arg(),
            m,
            n,
            k,
            a.row_stride,
            a.col_stride,
            b.row_stride,
            b.col_stride,
            k_len,
            tm,
            bk,
            a.ones,
            a.rows_contiguous(),
            !b.rows_contiguous(),
            if direct { kind } else { kind_of(None) },
            direct && with_bias,
            direct && with_residual,
            direct && epilogue.gated,
            [w_type, a_type, target_type],
        )
    };
    if splits > 1 {
        let len = m * n;
        let (count, dim) = elementwise_launch(&out, len);
        unsafe {
            sum_splits_kernel::launch_unchecked(
                &client,
                count,
                dim,
                target.into_tensor_arg(),
                bias.clone().into_tensor_arg(),
                residual.clone().into_tensor_arg(),
                out.clone().into_tensor_arg(),
                n,
                len,
                splits,
                kind,
                with_bias,
                with_residual,
                epilogue.gated,
                o_type,
            )
        };
    }
    Some(out)
}
