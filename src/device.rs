//! The compute device: WebGPU when the browser (or a native Vulkan/Metal driver) offers an
//! adapter, else burn's CPU backend (Flex), with the reason. burn's wgpu runtime initialises once
//! per page, so the result is cached.

use burn::prelude::*;

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

#[cfg(target_arch = "wasm32")]
thread_local! {
    static WEBGPU: std::cell::RefCell<Option<Result<Compute, String>>> = const { std::cell::RefCell::new(None) };
}

/// WebGPU through burn's wgpu runtime (initialised once, then cached). The worker asks the
/// browser (`probe`) first.
#[cfg(target_arch = "wasm32")]
pub async fn webgpu() -> Result<Compute, String> {
    if let Some(done) = WEBGPU.with(|c| c.borrow().clone()) {
        return done;
    }
    let result = match Device::wgpu_options().init_with_setup_async().await {
        Ok((device, setup)) => {
            let info = setup.adapter.get_info();
            let limits = setup.device.limits();
            let mut parts: Vec<String> = [
                info.name.clone(),
                info.driver.clone(),
                info.driver_info.clone(),
            ]
            .into_iter()
            .filter(|s| !s.is_empty())
            .collect();
            parts.dedup();
            let adapter = if parts.is_empty() {
                format!("{:?}", info.device_type)
            } else {
                parts.join(", ")
            };
            Ok(Compute {
                device,
                backend: Backend::WebGpu { adapter },
                max_binding_bytes: limits
                    .max_storage_buffer_binding_size
                    .min(limits.max_buffer_size) as u64,
            })
        }
        Err(e) => Err(format!("WebGPU could not start: {e}")),
    };
    WEBGPU.with(|c| *c.borrow_mut() = Some(result.clone()));
    result
}
