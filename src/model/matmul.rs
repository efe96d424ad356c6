//! The engine's own f32 matrix product for the CPU backend, `c = a b` with `a` `[m, k]` and
//! `b` `[k, n]` with any strides (a linear layer's weight is a transposed view, attention's
//! queries and keys are rows of the fused query/key/value buffer). Blocked as BLAS libraries are:
//! `b` read in panels of [`NR`] columns, `k` cut in blocks of [`KC`] so that a panel's block
//! stays in the L1 cache, and a register tile of [`MR`] × [`NR`] accumulators per step. `b` is
//! packed per call ([`pack_b`]): read in place, a row-major weight's panels are rows kilobytes
//! apart, and the product ran slower in wasm than packing plus the packed product (tried on the
//! encoder's shapes). The microkernel is portable Rust that LLVM vectorises (an `f32x4` per
//! four columns in wasm with `simd128`; natively AVX2+FMA where the CPU has them), so the
//! browser and native runs share one code path.

#![allow(clippy::needless_range_loop)] // the fixed-size tile loops are what LLVM unrolls

/// Rows of the register tile.
pub const MR: usize = 4;
/// Columns of the register tile (two `f32x4` in wasm, one AVX2 register natively).
pub const NR: usize = 8;
/// The depth of one block: a panel's block of `KC × NR` values is 8 KB.
pub const KC: usize = 256;
/// Rows per task natively (threads split the rows).
#[cfg(not(target_arch = "wasm32"))]
const MC: usize = 64;

/// A matrix operand: element `(i, j)` at `data[offset + i * rs + j * cs]`.
#[derive(Clone, Copy, Debug)]
pub struct Strided<'a> {
    pub data: &'a [f32],
    pub offset: usize,
    pub rs: usize,
    pub cs: usize,
}

impl<'a> Strided<'a> {
    /// A dense row-major `[_, cols]` matrix.
    pub fn rows(data: &'a [f32], cols: usize) -> Self {
        Self {
            data,
            offset: 0,
            rs: cols,
            cs: 1,
        }
    }

    /// Whether the first `rows` × `cols` elements are inside `data`.
    fn fits(&self, rows: usize, cols: usize) -> bool {
        rows == 0
            || cols == 0
            || self.offset + (rows - 1) * self.rs + (cols - 1) * self.cs < self.data.len()
    }
}

/// `b` `[k, n]` (element `(p, j)` at `b[offset + p * rs + j * cs]`) packed panel after panel,
/// each panel of [`NR`] columns as its `k` rows of [`NR`] values one after the other
/// (zero-padded past `n`): panel `jp`'s row `p` starts at `(jp * k + p) * NR`.
pub fn pack_b(b: &[f32], offset: usize, rs: usize, cs: usize, k: usize, n: usize) -> Vec<f32> {
    let panels = n.div_ceil(NR);
    let mut out = vec![0.0f32; panels * NR * k];
    if cs == 1 {
        // Rows read in order, each cut into its panels: a weight comes from memory once per
        // call, and read panel by panel its rows are kilobytes apart (in wasm the pack of
        // MiniLM's weights took 14.5% of a 128-token text read that way).
        let full = n / NR;
        for p in 0..k {
            let row = &b[offset + p * rs..offset + p * rs + n];
            for (jp, chunk) in row.chunks_exact(NR).enumerate() {
                let at = (jp * k + p) * NR;
                out[at..at + NR].copy_from_slice(chunk);
            }
            let rest = &row[full * NR..];
            if !rest.is_empty() {
                let at = (full * k + p) * NR;
                out[at..at + rest.len()].copy_from_slice(rest);
            }
        }
        return out;
    }
    for jp in 0..panels {
        let dst = &mut out[jp * NR * k..(jp + 1) * NR * k];
        let cols = NR.min(n - jp * NR);
        if rs == 1 && cols == NR {
            // The transposed view of an `[n, k]` weight (a decoder's on the CPU): each column
            // is a row in memory.
            pack_columns(b, offset + jp * NR * cs, cs, k, dst);
        } else {
            pack_panel(b, offset, rs, cs, k, jp * NR, cols, dst);
        }
    }
    out
}

/// [`NR`] columns of `b`, each `k` consecutive values, column `l` from `b[at + l * cs..]`, as
/// `k` rows of [`NR`] values in `dst`: four values of four columns at a time, transposed in
/// registers (in wasm with `simd128` shuffles; a gather of one value per column read `NR`
/// values from `NR` places for every row).
fn pack_columns(b: &[f32], at: usize, cs: usize, k: usize, dst: &mut [f32]) {
    let quads = k / 4;
    for l0 in (0..NR).step_by(4) {
        let col = |l: usize| &b[at + (l0 + l) * cs..at + (l0 + l) * cs + k];
        let (c0, c1, c2, c3) = (col(0), col(1), col(2), col(3));
        for q in 0..quads {
            let p = 4 * q;
            let rows = transpose4([
                c0[p..p + 4].try_into().expect("4"),
                c1[p..p + 4].try_into().expect("4"),
                c2[p..p + 4].try_into().expect("4"),
                c3[p..p + 4].try_into().expect("4"),
            ]);
            for (i, r) in rows.iter().enumerate() {
                dst[(p + i) * NR + l0..(p + i) * NR + l0 + 4].copy_from_slice(r);
            }
        }
        for p in 4 * quads..k {
            dst[p * NR + l0..p * NR + l0 + 4].copy_from_slice(&[c0[p], c1[p], c2[p], c3[p]]);
        }
    }
}

/// A 4 × 4 block transposed.
#[inline(always)]
pub(crate) fn transpose4(r: [[f32; 4]; 4]) -> [[f32; 4]; 4] {
    #[cfg(all(target_arch = "wasm32", target_feature = "simd128"))]
    {
        use core::arch::wasm32::{i32x4_shuffle, v128};
        // SAFETY: `[f32; 4]` and `v128` are both 16 plain bytes.
        let v: [v128; 4] = unsafe { std::mem::transmute(r) };
        let t0 = i32x4_shuffle::<0, 4, 1, 5>(v[0], v[1]);
        let t1 = i32x4_shuffle::<2, 6, 3, 7>(v[0], v[1]);
        let t2 = i32x4_shuffle::<0, 4, 1, 5>(v[2], v[3]);
        let t3 = i32x4_shuffle::<2, 6, 3, 7>(v[2], v[3]);
        let out = [
            i32x4_shuffle::<0, 1, 4, 5>(t0, t2),
            i32x4_shuffle::<2, 3, 6, 7>(t0, t2),
            i32x4_shuffle::<0, 1, 4, 5>(t1, t3),
            i32x4_shuffle::<2, 3, 6, 7>(t1, t3),
        ];
        // SAFETY: as above.
        unsafe { std::mem::transmute::<[v128; 4], [[f32; 4]; 4]>(out) }
    }
    #[cfg(not(all(target_arch = "wasm32", target_feature = "simd128")))]
    {
        std::array::from_fn(|i| std::array::from_fn(|j| r[j][i]))
    }
}

/// Columns `j0..j0 + cols` of `b` (strides as in [`pack_b`]) as `k` rows of [`NR`] values in
/// `dst` (zeros past `cols`).
#[allow(clippy::too_many_arguments)]
fn pack_panel(
    b: &[f32],
    offset: usize,
    rs: usize,
    cs: usize,
    k: usize,
    j0: usize,
    cols: usize,
    dst: &mut [f32],
) {
    for (p, d) in dst.chunks_exact_mut(NR).take(k).enumerate() {
        let row = offset + p * rs + j0 * cs;
        if cs == 1 {
            d[..cols].copy_from_slice(&b[row..row + cols]);
        } else {
            for (l, x) in d[..cols].iter_mut().enumerate() {
                *x = b[row + l * cs];
            }
        }
        d[cols..].fill(0.0);
    }
}

/// `c` `[m, n]` (row-major, overwritten) = `a` `[m, k]` (row-major) times the `b` that
/// [`pack_b`] packed.
pub fn matmul_packed(a: &[f32], packed: &[f32], c: &mut [f32], m: usize, k: usize, n: usize) {
    assert!(a.len() >= m * k && c.len() >= m * n && packed.len() >= n.div_ceil(NR) * NR * k);
    product(Strided::rows(a, k), packed, c, n, m, k, n);
}

/// `c` (rows `ldc` apart, the first `n` values of each overwritten) = `a` `[m, k]` times `b`
/// `[k, n]`, both with any strides (`b` packed first: [`pack_b`]).
pub fn matmul(a: Strided, b: Strided, c: &mut [f32], ldc: usize, m: usize, k: usize, n: usize) {
    assert!(a.fits(m, k) && b.fits(k, n) && ldc >= n);
    assert!(m == 0 || c.len() >= (m - 1) * ldc + n);
    let packed = pack_b(b.data, b.offset, b.rs, b.cs, k, n);
    product(a, &packed, c, ldc, m, k, n);
}

fn product(a: Strided, packed: &[f32], c: &mut [f32], ldc: usize, m: usize, k: usize, n: usize) {
    if m == 0 || n == 0 {
        return;
    }
    let c = &mut c[..(m - 1) * ldc + n];
    let rows = |r0: usize, c_rows: &mut [f32]| {
        let mr_rows = (c_rows.len() + ldc - n) / ldc;
        let a = Strided {
            offset: a.offset + r0 * a.rs,
            ..a
        };
        block_rows(a, packed, c_rows, ldc, mr_rows, k, n);
    };
    #[cfg(not(target_arch = "wasm32"))]
    if m * n * k >= 1 << 20 && m > MC {
        use rayon::prelude::*;
        c.par_chunks_mut(MC * ldc)
            .enumerate()
            .for_each(|(i, chunk)| rows(i * MC, chunk));
        return;
    }
    rows(0, c);
}

/// [`product`] for the rows `a` `[m, k]` and `c` `[m, n]` (rows `ldc` apart).
fn block_rows(a: Strided, packed: &[f32], c: &mut [f32], ldc: usize, m: usize, k: usize, n: usize) {
    let panels = n.div_ceil(NR);
    let tiles = m.div_ceil(MR);
    // `a`'s rows for one depth block, [`MR`] rows interleaved per tile (`[tile][p][r]`), the
    // last tile zero-padded: the microkernel then reads them in order.
    let mut a_packed = vec![0.0f32; tiles * MR * KC.min(k)];
    for p0 in (0..k).step_by(KC) {
        let kc = KC.min(k - p0);
        for t in 0..tiles {
            let dst = &mut a_packed[t * MR * kc..(t + 1) * MR * kc];
            for r in 0..MR {
                let i = t * MR + r;
                if i < m {
                    let at = a.offset + i * a.rs + p0 * a.cs;
                    if a.cs == 1 {
                        for (p, &x) in a.data[at..at + kc].iter().enumerate() {
                            dst[p * MR + r] = x;
                        }
                    } else {
                        for p in 0..kc {
                            dst[p * MR + r] = a.data[at + p * a.cs];
                        }
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
            let panel = &packed[(jp * k + p0) * NR..(jp * k + p0 + kc) * NR];
            for t in 0..tiles {
                let i0 = t * MR;
                let tile_a = &a_packed[t * MR * kc..(t + 1) * MR * kc];
                let mut acc = [[0.0f32; NR]; MR];
                tile(tile_a, panel, &mut acc);
                for r in 0..MR.min(m - i0) {
                    let at = (i0 + r) * ldc + j0;
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
    /// Public for the benchmark of its peak (`wasm_bench`'s `cpu_parts_in_wasm`).
    pub fn tile(a: &[f32], b: &[f32], acc: &mut [[f32; NR]; MR]) {
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

    /// `len` values in [-1, 1]: `(i * prime) % modulus`, centred and scaled.
    fn spread(len: usize, prime: usize, modulus: usize) -> Vec<f32> {
        (0..len)
            .map(|i| ((i * prime) % modulus) as f32 / (modulus / 2) as f32 - 1.0)
            .collect()
    }

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
            let a: Vec<f32> = spread(m * k, 7919, 23);
            let b: Vec<f32> = spread(k * n, 104729, 19);
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

    #[test]
    fn strided_matmul_reads_strided_operands_and_writes_rows_apart() {
        for (m, k, n) in [
            (1, 1, 1),
            (5, 3, 7),
            (9, 300, 16),
            (70, 520, 33),
            (13, 64, 40),
        ] {
            // `a` as every other row of a wider buffer, from an offset; `c` rows 3 values wider.
            let (a_rs, a_off) = (2 * k + 1, 5);
            let a_buf: Vec<f32> = spread(a_off + m * a_rs, 7919, 23);
            let a: Vec<f32> = (0..m)
                .flat_map(|i| a_buf[a_off + i * a_rs..a_off + i * a_rs + k].to_vec())
                .collect();
            let b_buf: Vec<f32> = spread(3 + k * (n + 4), 104729, 19);
            // Rows `n + 4` apart, and a transposed view.
            for (rs, cs) in [(n + 4, 1), (1, k + 1)] {
                let b: Vec<f32> = (0..k * n)
                    .map(|e| b_buf[3 + (e / n) * rs + (e % n) * cs])
                    .collect();
                let want = naive(&a, &b, m, k, n, n, 1);
                let ldc = n + 3;
                let mut c = vec![f32::NAN; m * ldc];
                matmul(
                    Strided {
                        data: &a_buf,
                        offset: a_off,
                        rs: a_rs,
                        cs: 1,
                    },
                    Strided {
                        data: &b_buf,
                        offset: 3,
                        rs,
                        cs,
                    },
                    &mut c,
                    ldc,
                    m,
                    k,
                    n,
                );
                for i in 0..m {
                    for j in 0..n {
                        let (got, want) = (c[i * ldc + j], want[i * n + j]);
                        assert!(
                            (got - want).abs() < 1e-4,
                            "{m}x{k}x{n} b strides {rs},{cs} at {i},{j}: {got} {want}"
                        );
                    }
                    assert!(
                        c[i * ldc + n..(i + 1) * ldc].iter().all(|x| x.is_nan()),
                        "wrote past a row"
                    );
                }
            }
        }
    }
}
