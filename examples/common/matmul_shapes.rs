// Shared by `examples/bench_matmul.rs` and `tests/wasm_bench.rs` (included with `include!`): the
// encoder's matrix products (all-MiniLM-L6-v2: 384 wide, 1,536 inner; 1,024 rows = batch 32 x 32,
// 128 rows = one text of 128 tokens) and the deterministic values they multiply.

/// `(m, k, n)`: `[m, k]` times `[k, n]`.
#[allow(dead_code)]
const MATMUL_SHAPES: [(usize, usize, usize); 4] =
    [(1024, 384, 1536), (1024, 1536, 384), (1024, 384, 1152), (128, 384, 1536)];

/// `n` values in [-1, 1] (speed does not depend on them), without overflow on 32-bit targets.
#[allow(dead_code)]
fn matmul_values(n: usize, seed: usize) -> Vec<f32> {
    (0..n)
        .map(|i| (((i % 4096) * 7919 + seed) % 23) as f32 / 11.0 - 1.0)
        .collect()
}
