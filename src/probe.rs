//! Which compute backend the browser offers (asked in the page or in the worker): WebGPU with its adapter, or the CPU with the reason
//! WebGPU is unavailable. The probe is async and never throws: a missing `navigator.gpu`, a null
//! adapter or a rejected promise all become a CPU reason.

use js_sys::{Function, Promise, Reflect};
use wasm_bindgen::{JsCast, JsValue};
use wasm_bindgen_futures::JsFuture;

#[derive(Debug, Clone, PartialEq)]
pub enum BackendStatus {
    /// WebGPU is available; the adapter's description (vendor, architecture, device).
    WebGpu { adapter: String },
    /// Computation runs on the CPU, for this reason.
    Cpu { reason: String },
}

impl BackendStatus {
    pub fn line(&self) -> String {
        match self {
            BackendStatus::WebGpu { adapter } => format!("Backend: WebGPU ({adapter})"),
            BackendStatus::Cpu { reason } => format!("Backend: CPU ({reason})"),
        }
    }

    pub fn is_webgpu(&self) -> bool {
        matches!(self, BackendStatus::WebGpu { .. })
    }
}

fn get(target: &JsValue, key: &str) -> Option<JsValue> {
    Reflect::get(target, &JsValue::from_str(key))
        .ok()
        .filter(|v| !v.is_undefined() && !v.is_null())
}

fn describe(info: &JsValue) -> String {
    let parts: Vec<String> = ["vendor", "architecture", "device", "description"]
        .iter()
        .filter_map(|k| get(info, k).and_then(|v| v.as_string()))
        .filter(|s| !s.is_empty())
        .collect();
    if parts.is_empty() {
        "adapter details hidden by the browser".to_string()
    } else {
        parts.join(", ")
    }
}

/// Probes `navigator.gpu.requestAdapter()` in the current global scope (window or worker).
pub async fn probe() -> BackendStatus {
    let global: JsValue = js_sys::global().into();
    let Some(navigator) = get(&global, "navigator") else {
        return BackendStatus::Cpu {
            reason: "no navigator in this context".into(),
        };
    };
    let Some(gpu) = get(&navigator, "gpu") else {
        return BackendStatus::Cpu {
            reason: "WebGPU is not available in this browser (navigator.gpu is missing)".into(),
        };
    };
    let Some(request) = get(&gpu, "requestAdapter").and_then(|f| f.dyn_into::<Function>().ok())
    else {
        return BackendStatus::Cpu {
            reason: "navigator.gpu.requestAdapter is missing".into(),
        };
    };
    let promise = match request.call0(&gpu) {
        Ok(p) => p,
        Err(e) => {
            return BackendStatus::Cpu {
                reason: format!("requestAdapter() threw: {}", js_error(&e)),
            }
        }
    };
    let adapter = match JsFuture::from(Promise::from(promise)).await {
        Ok(a) if !a.is_null() && !a.is_undefined() => a,
        Ok(_) => {
            return BackendStatus::Cpu {
                reason: "no WebGPU adapter (requestAdapter() returned null)".into(),
            }
        }
        Err(e) => {
            return BackendStatus::Cpu {
                reason: format!("requestAdapter() failed: {}", js_error(&e)),
            }
        }
    };
    let info = match get(&adapter, "info") {
        Some(info) => info,
        None => match get(&adapter, "requestAdapterInfo")
            .and_then(|f| f.dyn_into::<Function>().ok())
            .and_then(|f| f.call0(&adapter).ok())
        {
            Some(p) => JsFuture::from(Promise::from(p))
                .await
                .unwrap_or(JsValue::NULL),
            None => JsValue::NULL,
        },
    };
    BackendStatus::WebGpu {
        adapter: describe(&info),
    }
}

/// A JS exception as text.
pub fn js_error(e: &JsValue) -> String {
    if let Some(s) = e.as_string() {
        return s;
    }
    get(e, "message")
        .and_then(|m| m.as_string())
        .unwrap_or_else(|| format!("{e:?}"))
}
