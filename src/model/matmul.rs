//! The engine's own f32 matrix product for the CPU backend, `c = a b` with `a` `[m, k]` row-major
//! and `b` `[k, n]` with any strides (a linear layer's weight is a transposed view). Blocked as
//! BLAS libraries are: `b` packed once per call into panels of [`NR`] columns, `k` cut in blocks
//! of [`KC`] so that a panel stays in the L1 cache, and a register tile of [`MR`] × [`NR`]
//! accumulators per step. The microkernel is portable Rust that LLVM vectorises (an `f32x4`
//! per four columns in wasm with `simd128`; natively AVX2+FMA where the CPU has them), so the
//! browser and native runs share one code path.

#![allow(clippy::needless_range_loop)] // the fixed-size tile loops are what LLVM unrolls

/// Rows of the register tile.
pub const MR: usize = 4;
/// Columns of the register tile (two `f32x4` in wasm, one AVX2 register natively).
pub const NR: usize = 8;
/// The depth of one block: a packed panel of `KC × NR` values is 8 KB.
pub const KC: usize = 256;
/// Rows per task natively (threads split the rows).
#[cfg(not(target_arch = "wasm32"))]
const MC: usize = 64;

/// `b` `[k, n]` (element `(p, j)` at `b[offset + p * rs + j * cs]`) packed as, for each block of
/// [`KC`] rows, each panel of [`NR`] columns, the panel's rows one after the other (zero-padded
/// past `n`).
pub fn pack_b(b: &[f32], offset: usize, rs: usize, cs: usize, k: usize, n: usize) -> Vec<f32> {
    let panels = n.div_ceil(NR);
    let mut out = vec![0.0f32; panels * NR * k];
    let mut at = 0;
    for p0 in (0..k).step_by(KC) {
        let kc = KC.min(k - p0);
        for jp in 0..panels {
            let j0 = jp * NR;
            let cols = NR.min(n - j0);
            for p in p0..p0 + kc {
                let row = offset + p * rs + j0 * cs;
                let dst = &mut out[at..at + NR];
                if cs == 1 {
                    dst[..cols].copy_from_slice(&b[row..row + cols]);
                } else {
                    for (l, d) in dst[..cols].iter_mut().enumerate() {
                        *d = b[row + l * cs];
                    }
                }
                at += NR;
            }
        }
    }
    out
}

/// `c` `[m, n]` (row-major, overwritten) = `a` `[m, k]` (row-major) times the `b` that
/// [`pack_b`] packed.
pub fn matmul_packed(a: &[f32], packed: &[f32], c: &mut [f32], m: usize, k: usize, n: usize) {
    assert!(a.len() >= m * k && c.len() >= m * n && packed.len() >= n.div_ceil(NR) * NR * k);
    if m == 0 || n == 0 {
        return;
    }
    let rows = |r0: usize, c_rows: &mut [f32]| {
        let mr_rows = c_rows.len() / n;
        block_rows(
            &a[r0 * k..(r0 + mr_rows) * k],
            packed,
            c_rows,
            mr_rows,
            k,
            n,
        );
    };
    #[cfg(not(target_arch = "wasm32"))]
    if m * n * k >= 1 << 20 && m > MC {
        use rayon::prelude::*;
        c[..m * n]
            .par_chunks_mut(MC * n)
            .enumerate()
            .for_each(|(i, chunk)| rows(i * MC, chunk));
        return;
    }
    rows(0, &mut c[..m * n]);
}

/// [`matmul_packed`] for the rows `a` `[m, k]` and `c` `[m, n]`.
fn block_rows(a: &[f32], packed: &[f32], c: &mut [f32], m: usize, k: usize, n: usize) {
    let panels = n.div_ceil(NR);
    let tiles = m.div_ceil(MR);
    // `a`'s rows for one depth block, [`MR`] rows interleaved per tile (`[tile][p][r]`), the
    // last tile zero-padded: the microkernel then reads both operands in order.
    let mut a_packed = vec![0.0f32; tiles * MR * KC.min(k)];
    let mut off = 0;
    for p0 in (0..k).step_by(KC) {
        let kc = KC.min(k - p0);
        for t in 0..tiles {
            let dst = &mut a_packed[t * MR * kc..(t + 1) * MR * kc];
            for r in 0..MR {
                let i = t * MR + r;
                if i < m {
                    let src = &a[i * k + p0..i * k + p0 + kc];
                    for (p, &x) in src.iter().enumerate() {
                        dst[p * MR + r] = x;
                    }
                } else {
                    for p in 0..kc {
                        dst[p * MR + r] = 0.0;
                    }
                }
            }
        }
        for jp in 0..panels {
            let j0 = jp * NR;
            let cols = NR.min(n - j0);
            let panel = &packed[off..off + kc * NR];
            off += kc * NR;
            for t in 0..tiles {
                let i0 = t * MR;
                let tile_a = &a_packed[t * MR * kc..(t + 1) * MR * kc];
                let mut acc = [[0.0f32; NR]; MR];
                tile(tile_a, panel, &mut acc);
                for r in 0..MR.min(m - i0) {
                    let at = (i0 + r) * n + j0;
                    let out = &mut c[at..at + cols];
                    if p0 == 0 {
                        out.copy_from_slice(&acc[r][..cols]);
                    } else {
                        for (o, v) in out.iter_mut().zip(&acc[r][..cols]) {
                            *o += v;
                        }
                    }
                }
            }
        }
    }
}

simd_fn! {
    /// One `MR × NR` tile: `acc += a b` over a depth block, `a` `[p][MR]` and `b` `[p][NR]` (both
    /// packed, read in order: no index arithmetic in the loop, which debug builds would check).
    fn tile(a: &[f32], b: &[f32], acc: &mut [[f32; NR]; MR]) {
        let mut sum = *acc;
        for (x, y) in a.chunks_exact(MR).zip(b.chunks_exact(NR)) {
            let x: &[f32; MR] = x.try_into().expect("MR values");
            let y: &[f32; NR] = y.try_into().expect("NR values");
            for r in 0..MR {
                for l in 0..NR {
                    sum[r][l] += x[r] * y[l];
                }
            }
        }
        *acc = sum;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn naive(a: &[f32], b: &[f32], m: usize, k: usize, n: usize, rs: usize, cs: usize) -> Vec<f32> {
        let mut c = vec![0.0f32; m * n];
        for i in 0..m {
            for j in 0..n {
                let mut s = 0.0f64;
                for p in 0..k {
                    s += a[i * k + p] as f64 * b[p * rs + j * cs] as f64;
                }
                c[i * n + j] = s as f32;
            }
        }
        c
    }

    #[test]
    fn packed_matmul_equals_the_naive_product_on_ragged_shapes() {
        for (m, k, n) in [
            (1, 1, 1),
            (5, 3, 7),
            (9, 300, 17),
            (70, 520, 33),
            (130, 64, 8),
        ] {
            let a: Vec<f32> = (0..m * k)
                .map(|i| ((i * 7919) % 23) as f32 / 11.0 - 1.0)
                .collect();
            let b: Vec<f32> = (0..k * n)
                .map(|i| ((i * 104729) % 19) as f32 / 9.0 - 1.0)
                .collect();
            // Row-major b, and b as the transposed view of an [n, k] weight.
            for (rs, cs) in [(n, 1), (1, k)] {
                let want = naive(&a, &b, m, k, n, rs, cs);
                let packed = pack_b(&b, 0, rs, cs, k, n);
                let mut c = vec![f32::NAN; m * n];
                matmul_packed(&a, &packed, &mut c, m, k, n);
                let worst = c
                    .iter()
                    .zip(&want)
                    .map(|(x, y)| (x - y).abs())
                    .fold(0.0f32, f32::max);
                assert!(worst < 1e-4, "{m}x{k}x{n} strides {rs},{cs}: {worst}");
            }
        }
    }
}
