//! The engine's fused GPU kernels against burn's composition on the CPU, natively on Vulkan (a
//! GPU, or Mesa's lavapipe without one): `cargo test --features gpu --test kernels_gpu`. The same
//! checks run in the browser on WebGPU in `tests/wasm.rs`, which `scripts/test.sh` runs.
#![cfg(feature = "gpu")]

#[path = "common/kernel_checks.rs"]
mod kernel_checks;

use burn::prelude::*;

#[test]
fn fused_kernels_on_vulkan_match_the_composed_ops() {
    let (device, _) = Device::wgpu_options()
        .init_with_setup()
        .expect("wgpu init (a Vulkan driver is needed: Mesa's lavapipe will do)");
    let checks = pollster::block_on(kernel_checks::fused_kernel_checks(&device));
    for c in &checks {
        println!(
            "{:<48} max abs {:.1e}, {} launches",
            c.name, c.max_abs, c.launches
        );
    }
    kernel_checks::assert_checks(&checks, 1e-4, true);
}
