//! The engine's CPU kernels (`tunelab::model::flex`, reached through `tunelab::model::kernels`)
//! against burn's composition of the same ops, natively (AVX2 where the CPU has it, else SSE2).
//! The same checks run in wasm (`simd128`) in `tests/wasm.rs`, and on a GPU in `tests/wasm.rs`
//! and `tests/kernels_gpu.rs`.

#[path = "common/kernel_checks.rs"]
mod kernel_checks;

use burn::prelude::*;

#[test]
fn cpu_kernels_match_the_composed_ops() {
    let checks = pollster::block_on(kernel_checks::fused_kernel_checks(&Device::flex()));
    for c in &checks {
        println!(
            "{:<56} max abs {:.1e}, {} CPU kernels",
            c.name, c.max_abs, c.cpu_kernels
        );
    }
    kernel_checks::assert_checks(&checks, 1e-4, false);
    kernel_checks::assert_cpu_kernels_ran(&checks);
}

#[path = "common/training_checks.rs"]
mod training_checks;

#[test]
fn cpu_kernels_in_training_give_burns_outputs_and_gradients() {
    let checks = pollster::block_on(training_checks::training_kernel_checks(&Device::flex()));
    for c in &checks {
        println!(
            "{:<56} max abs {:.1e}, {} CPU kernels",
            c.name, c.max_abs, c.engine_ops
        );
    }
    training_checks::assert_training_checks(&checks, 1e-5);
}

#[test]
fn dropout_in_training_keeps_scales_and_reseeds() {
    pollster::block_on(training_checks::dropout_check(&Device::flex()));
    pollster::block_on(training_checks::attention_dropout_check(&Device::flex()));
}
