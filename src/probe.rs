//! Which compute backend the browser offers (asked in the page or in the worker): WebGPU with its
//! adapter, or the CPU with the reason WebGPU is unavailable. The probe is async and never throws:
//! a missing `navigator.gpu`, a null adapter or a rejected promise all become a CPU reason.

use js_sys::{Function, Promise};
use wasm_bindgen::{JsCast, JsValue};
use wasm_bindgen_futures::JsFuture;

use crate::device::Backend;
use crate::js::{error_text, get};

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
pub async fn probe() -> Backend {
    let global: JsValue = js_sys::global().into();
    let Some(navigator) = get(&global, "navigator") else {
        return Backend::Cpu {
            reason: "no navigator in this context".into(),
        };
    };
    let Some(gpu) = get(&navigator, "gpu") else {
        return Backend::Cpu {
            reason: "WebGPU is not available in this browser (navigator.gpu is missing)".into(),
        };
    };
    let Some(request) = get(&gpu, "requestAdapter").and_then(|f| f.dyn_into::<Function>().ok())
    else {
        return Backend::Cpu {
            reason: "navigator.gpu.requestAdapter is missing".into(),
        };
    };
    let promise = match request.call0(&gpu) {
        Ok(p) => p,
        Err(e) => {
            return Backend::Cpu {
                reason: format!("requestAdapter() threw: {}", error_text(&e)),
            }
        }
    };
    let adapter = match JsFuture::from(Promise::from(promise)).await {
        Ok(a) if !a.is_null() && !a.is_undefined() => a,
        Ok(_) => {
            return Backend::Cpu {
                reason: "no WebGPU adapter (requestAdapter() returned null)".into(),
            }
        }
        Err(e) => {
            return Backend::Cpu {
                reason: format!("requestAdapter() failed: {}", error_text(&e)),
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
    Backend::WebGpu {
        adapter: describe(&info),
    }
}
