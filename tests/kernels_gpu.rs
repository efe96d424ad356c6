//! The engine's fused GPU kernels against burn's composition on the CPU, natively on Vulkan (a
//! GPU, or Mesa's lavapipe without one): `cargo test --features gpu --test kernels_gpu`. The same
//! checks run in the browser on WebGPU in `tests/wasm.rs`, which `scripts/test.sh` runs.
#![cfg(feature = "gpu")]

#[path = "common/kernel_checks.rs"]
mod kernel_checks;

#[path = "common/half_checks.rs"]
mod half_checks;

#[path = "common/training_checks.rs"]
mod training_checks;

use burn::prelude::*;

/// The Vulkan device, set up once for the process (a second setup is refused).
fn vulkan() -> Device {
    static DEVICE: std::sync::OnceLock<Device> = std::sync::OnceLock::new();
    DEVICE
        .get_or_init(|| {
            Device::wgpu_options()
                .init_with_setup()
                .expect("wgpu init (a Vulkan driver is needed: Mesa's lavapipe will do)")
                .0
        })
        .clone()
}

/// Held by each test for its whole run: launches are counted process-wide, so a test running
/// beside another would count the other's kernels too.
fn one_at_a_time() -> std::sync::MutexGuard<'static, ()> {
    static GPU: std::sync::Mutex<()> = std::sync::Mutex::new(());
    GPU.lock().unwrap_or_else(|e| e.into_inner())
}

#[test]
fn gpu_kernels_in_training_on_vulkan_give_burns_outputs_and_gradients() {
    let _gpu = one_at_a_time();
    let device = vulkan();
    let checks = pollster::block_on(training_checks::training_kernel_checks(&device));
    for c in &checks {
        println!(
            "{:<56} max abs {:.1e}, {} engine ops",
            c.name, c.max_abs, c.engine_ops
        );
    }
    training_checks::assert_training_checks(&checks, 1e-5);
    pollster::block_on(training_checks::dropout_check(&device));
    pollster::block_on(training_checks::attention_dropout_check(&device));
}

#[test]
fn fused_kernels_on_vulkan_match_the_composed_ops() {
    let _gpu = one_at_a_time();
    let device = vulkan();
    let checks = pollster::block_on(kernel_checks::fused_kernel_checks(&device));
    for c in &checks {
        println!(
            "{:<48} max abs {:.1e}, {} launches",
            c.name, c.max_abs, c.launches
        );
    }
    kernel_checks::assert_checks(&checks, 1e-4, true);
}

#[test]
fn half_precision_checkpoints_stay_f16_on_vulkan_and_give_the_cpus_outputs() {
    let _gpu = one_at_a_time();
    let device = vulkan();
    let dir = concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/tests/fixtures/models/tiny-qwen2"
    );
    let files = tunelab::hub::ModelFiles::from_dir(dir).unwrap();
    let checks = pollster::block_on(half_checks::half_checkpoint_checks(&device, &files));
    let f16 = tunelab::model::weights::half_on(&device);
    for c in &checks {
        println!(
            "{:<60} kept in f16: {}, max abs {:.1e}, step {:.1e}",
            c.name, c.kept_f16, c.max_abs, c.step_max_abs
        );
        assert_eq!(c.kept_f16, f16, "{}", c.name);
        assert!(c.max_abs <= 1e-4 && c.step_max_abs <= 1e-4, "{}", c.name);
    }
}
