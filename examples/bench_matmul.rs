//! The CPU's matrix products at the encoder's shapes (all-MiniLM-L6-v2: 384 wide, 1,536 inner),
//! natively: burn's Flex matmul (the gemm crate) against the engine's own packed product
//! (`tunelab::model::matmul`), GFLOP/s each, alternating. `RAYON_NUM_THREADS=1` for one thread.
//!
//!     cargo run --example bench_matmul   (the same comparison in wasm: scripts/bench.sh wasm)

use burn::prelude::*;
use tunelab::model::matmul::{matmul_packed, pack_b};

include!("common/bench.rs");
include!("common/matmul_shapes.rs");

fn main() {
    println!("machine: {}", machine());
    let device = Device::flex();
    for (m, k, n) in MATMUL_SHAPES {
        let a = matmul_values(m * k, 1);
        // A linear layer's weight: stored [n, k], used as its transpose.
        let w = matmul_values(n * k, 2);
        let at = Tensor::<2>::from_data(TensorData::new(a.clone(), [m, k]), &device);
        let wt = Tensor::<2>::from_data(TensorData::new(w.clone(), [n, k]), &device).transpose();
        let flops = 2.0 * (m * k * n) as f64;
        let mut c = vec![0.0f32; m * n];
        for round in 1..=2 {
            let burn = median_secs(1, 5, || {
                let _ = at.clone().matmul(wt.clone()).into_data();
            });
            let own = median_secs(1, 5, || {
                let packed = pack_b(&w, 0, 1, k, k, n);
                matmul_packed(&a, &packed, &mut c, m, k, n);
            });
            println!(
                "round {round} [{m}, {k}] x [{k}, {n}]: burn (gemm) {:.1} GFLOP/s ({:.1} ms), packed {:.1} GFLOP/s ({:.1} ms)",
                flops / burn / 1e9,
                burn * 1e3,
                flops / own / 1e9,
                own * 1e3
            );
        }
    }
}
