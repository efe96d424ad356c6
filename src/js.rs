//! Small helpers over JS values for the worker and the page (wasm only).

use js_sys::{Array, Object, Reflect, Uint8Array};
use wasm_bindgen::{JsCast, JsValue};
use wasm_bindgen_futures::JsFuture;

pub fn get(target: &JsValue, key: &str) -> Option<JsValue> {
    Reflect::get(target, &JsValue::from_str(key))
        .ok()
        .filter(|v| !v.is_undefined() && !v.is_null())
}

/// A message: `{json, payload}`.
pub fn message(json: &str, payload: Option<&JsValue>) -> JsValue {
    let obj = Object::new();
    let _ = Reflect::set(&obj, &"json".into(), &JsValue::from_str(json));
    if let Some(p) = payload {
        let _ = Reflect::set(&obj, &"payload".into(), p);
    }
    obj.into()
}

pub fn bytes_to_js(bytes: &[u8]) -> JsValue {
    Uint8Array::from(bytes).buffer().into()
}

/// An ArrayBuffer, a typed array, or a Blob/File as bytes.
pub async fn js_to_bytes(value: &JsValue) -> Result<Vec<u8>, String> {
    if let Some(buf) = value.dyn_ref::<js_sys::ArrayBuffer>() {
        return Ok(Uint8Array::new(buf).to_vec());
    }
    if let Some(arr) = value.dyn_ref::<Uint8Array>() {
        return Ok(arr.to_vec());
    }
    if let Some(blob) = value.dyn_ref::<web_sys::Blob>() {
        let buf = JsFuture::from(blob.array_buffer())
            .await
            .map_err(|e| format!("could not read the file: {}", error_text(&e)))?;
        return Ok(Uint8Array::new(&buf).to_vec());
    }
    Err("expected bytes".into())
}

/// `File` objects of an array, with their names.
pub fn files_of(value: &JsValue) -> Vec<web_sys::File> {
    Array::from(value)
        .iter()
        .filter_map(|v| v.dyn_into::<web_sys::File>().ok())
        .collect()
}

/// A JS exception or error as text.
pub fn error_text(e: &JsValue) -> String {
    if let Some(s) = e.as_string() {
        return s;
    }
    get(e, "message")
        .and_then(|m| m.as_string())
        .unwrap_or_else(|| format!("{e:?}"))
}

/// As [`error_text`], led by the exception's name when it says more than "Error" (a
/// `QuotaExceededError` names its cause better than its message).
pub fn error_with_name(e: &JsValue) -> String {
    let text = error_text(e);
    match get(e, "name").and_then(|n| n.as_string()) {
        Some(name) if name != "Error" && !name.is_empty() && !text.contains(&name) => {
            format!("{name}: {text}")
        }
        _ => text,
    }
}

/// Resolves after the event loop has run once (lets queued messages, such as a cancel, in).
pub async fn yield_now() {
    let promise = js_sys::Promise::new(&mut |resolve, _| {
        let global = js_sys::global();
        if let Some(set_timeout) =
            get(&global, "setTimeout").and_then(|f| f.dyn_into::<js_sys::Function>().ok())
        {
            let _ = set_timeout.call2(&global, &resolve, &JsValue::from(0));
        } else {
            let _ = resolve.call0(&JsValue::UNDEFINED);
        }
    });
    let _ = JsFuture::from(promise).await;
}
