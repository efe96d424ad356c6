//! The AdamW settings of transformers' training traces, shared by the native tests (through
//! `common`) and the wasm tests (`tests/wasm.rs` includes this file alone: `common` reads
//! fixtures from disk).

/// `torch.optim.AdamW(params, lr=1e-3, betas=(0.9, 0.999), eps=1e-8, weight_decay=0.01)`, as the
/// training-trace goldens were made.
pub fn trace_settings() -> tunelab::train::optim::AdamWSettings {
    tunelab::train::optim::AdamWSettings {
        beta1: 0.9,
        beta2: 0.999,
        epsilon: 1e-8,
        weight_decay: 0.01,
        decay_bias_and_norm: true,
        max_grad_norm: 0.0,
    }
}
