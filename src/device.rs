//! The compute device: WebGPU when the browser (or a native Vulkan/Metal driver) offers an
//! adapter, else burn's CPU backend (Flex), with the reason. burn's wgpu runtime initialises once
//! per page, so the result is cached.

#[cfg(feature = "engine")]
use burn::prelude::*;

#[cfg(feature = "engine")]
#[derive(Debug, Clone)]
pub struct Compute {
    pub device: Device,
    pub backend: Backend,
    /// The largest buffer one shader may bind (WebGPU's `maxStorageBufferBindingSize`);
    /// `u64::MAX` on the CPU.
    pub max_binding_bytes: u64,
}

/// Which backend computes, as the status line shows it. The browser probe (`probe`) and the
/// engine's device both speak it.
#[derive(Debug, Clone, PartialEq, serde::Serialize, serde::Deserialize)]
pub enum Backend {
    /// WebGPU with the adapter's description (vendor, architecture, device).
    WebGpu { adapter: String },
    /// The CPU, and why (WebGPU missing, or chosen by the user).
    Cpu { reason: String },
}

impl Backend {
    pub fn describe(&self) -> String {
        match self {
            Backend::WebGpu { adapter } => format!("WebGPU ({adapter})"),
            Backend::Cpu { reason } => format!("CPU ({reason})"),
        }
    }

    /// A CPU backend for this reason.
    pub fn cpu(reason: impl Into<String>) -> Self {
        Backend::Cpu {
            reason: reason.into(),
        }
    }
}

/// How a model loaded for inference keeps its matrices and activations on a GPU (fine-tuning
/// computes in f32).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub enum Precision {
    /// Half precision where the device computes in it (`model::weights::half_on`): matrices and activations
    /// (the hidden states, queries, keys, values and the KV cache) in f16, every sum, norm and
    /// softmax in f32, the logits in f32. Within 1e-2 of f32 on the golden decoders' logits,
    /// with the same greedy tokens (`tests/kernels_gpu.rs`). f32 elsewhere (the CPU, a GPU
    /// without f16).
    #[default]
    Auto,
    /// f32 throughout, whatever the file stores.
    F32,
}

impl Precision {
    /// As the page and a loaded model's line say it.
    pub fn describe(self) -> &'static str {
        match self {
            Precision::Auto => "half precision (f16) where the GPU computes in it",
            Precision::F32 => "full precision (f32)",
        }
    }
}

#[cfg(feature = "engine")]
impl Compute {
    /// burn's CPU backend.
    pub fn cpu(reason: impl Into<String>) -> Self {
        Self {
            device: Device::flex(),
            backend: Backend::cpu(reason),
            max_binding_bytes: u64::MAX,
        }
    }
}

#[cfg(feature = "engine")]
/// The multiple of tokens that encoder batches are padded to on `device`: on a GPU a few fixed
/// sequence lengths let kernels compile (and tune) once per length instead of once per batch; on
/// the CPU padding would only add work.
pub fn pad_multiple(device: &Device) -> usize {
    if on_cpu(device) {
        1
    } else {
        GPU_PAD_MULTIPLE
    }
}

/// Sequence lengths on a GPU are multiples of this (capped by the maximum length).
pub const GPU_PAD_MULTIPLE: usize = 32;

#[cfg(feature = "engine")]
/// Seeds `device`'s generator and the engine's dropout masks ([`crate::rng::dropout_keys`]):
/// after the same seed, the same draws and the same masks again.
pub fn seed(device: &Device, seed: u64) {
    device.seed(seed);
    crate::rng::seed_dropout_keys(seed);
}

#[cfg(feature = "engine")]
/// Whether `device` is one of burn's CPU backends.
pub fn on_cpu(device: &Device) -> bool {
    let plain = device.clone().without_autodiff();
    #[cfg(feature = "ndarray")]
    #[allow(deprecated)] // the benchmark's comparison backend
    if plain == Device::ndarray() {
        return true;
    }
    plain == Device::flex()
}

/// An adapter as the status line shows it: its non-empty details, without repeats.
pub fn describe_adapter(parts: &[&str]) -> String {
    let mut kept: Vec<&str> = parts.iter().copied().filter(|s| !s.is_empty()).collect();
    kept.dedup();
    kept.join(", ")
}

/// How many kernel launches burn's wgpu runtime records before it submits them to the GPU
/// (cubecl's `tasks_max`), set here rather than left to `CUBECL_WGPU_MAX_TASKS`. Measured with
/// `scripts/bench.sh gpu` on an NVIDIA H200 (Vulkan; embedding, GPT-2 decoding and full
/// fine-tuning): 32, 64 and 128 tie within run-to-run noise and 512 is slower everywhere
/// (decoding 33 against 53 tokens/s), now that a training step no longer reads back. No adapter
/// has measured better with another value, so every adapter gets cubecl's 32.
pub const TASKS_MAX: usize = 32;

#[cfg(all(target_arch = "wasm32", feature = "webgpu"))]
thread_local! {
    static WEBGPU: std::cell::RefCell<Option<Result<Compute, String>>> = const { std::cell::RefCell::new(None) };
}

/// WebGPU in the CPU-only engine (`worker_cpu`, built without the `webgpu` feature): none. Every
/// page starts on that engine; where the browser offers WebGPU the page starts the WebGPU engine
/// beside it, which takes over (`ui::state::Upgrade`).
#[cfg(all(target_arch = "wasm32", feature = "engine", not(feature = "webgpu")))]
pub async fn webgpu() -> Result<Compute, String> {
    Err("the CPU-only engine runs until the WebGPU engine takes over".into())
}

/// WebGPU through burn's wgpu runtime (initialised once, then cached). The worker asks the
/// browser (`probe`) first.
#[cfg(all(target_arch = "wasm32", feature = "webgpu"))]
pub async fn webgpu() -> Result<Compute, String> {
    if let Some(done) = WEBGPU.with(|c| c.borrow().clone()) {
        return done;
    }
    let options = Device::wgpu_options().tasks_max(TASKS_MAX);
    let result = match options.init_with_setup_async().await {
        Ok((device, setup)) => {
            let info = setup.adapter.get_info();
            let limits = setup.device.limits();
            let described = describe_adapter(&[&info.name, &info.driver, &info.driver_info]);
            let adapter = if described.is_empty() {
                format!("{:?}", info.device_type)
            } else {
                described
            };
            Ok(Compute {
                device,
                backend: Backend::WebGpu { adapter },
                max_binding_bytes: limits
                    .max_storage_buffer_binding_size
                    .min(limits.max_buffer_size),
            })
        }
        Err(e) => Err(format!("WebGPU could not start: {e}")),
    };
    WEBGPU.with(|c| *c.borrow_mut() = Some(result.clone()));
    result
}
