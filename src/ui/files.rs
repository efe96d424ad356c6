//! Files in and out of the page: the file a user picked or dropped, its bytes, a file fetched
//! from the page's own server, and a download.

use wasm_bindgen::{JsCast, JsValue};
use wasm_bindgen_futures::JsFuture;

use crate::js::error_text;

/// The file chosen in an `<input type=file>` (its first), from its change event. The input is
/// cleared, so that choosing the same file again fires again.
pub fn picked(ev: &web_sys::Event) -> Option<web_sys::File> {
    let input: web_sys::HtmlInputElement = ev.target()?.dyn_into().ok()?;
    let file = input.files().and_then(|l| l.get(0));
    input.set_value("");
    file
}

/// Every file chosen in an `<input type=file multiple>`, as a JS array (the input is cleared).
pub fn picked_all(ev: &web_sys::Event) -> Option<js_sys::Array> {
    let input: web_sys::HtmlInputElement = ev.target()?.dyn_into().ok()?;
    let list = js_sys::Array::new();
    if let Some(files) = input.files() {
        for i in 0..files.length() {
            if let Some(f) = files.get(i) {
                list.push(&f);
            }
        }
    }
    input.set_value("");
    (list.length() > 0).then_some(list)
}

/// The (first) file dropped on an element.
pub fn dropped(ev: &web_sys::DragEvent) -> Option<web_sys::File> {
    ev.data_transfer()?.files()?.get(0)
}

/// A file's bytes, as an ArrayBuffer (the payload the engine takes).
pub async fn read(file: &web_sys::File) -> Result<JsValue, String> {
    JsFuture::from(file.array_buffer())
        .await
        .map_err(|e| error_text(&e))
}

/// Reads `file` in the background, then hands its name and bytes (or the failure) to `then`.
pub fn read_then(
    file: web_sys::File,
    then: impl FnOnce(String, Result<JsValue, String>) + 'static,
) {
    wasm_bindgen_futures::spawn_local(async move {
        let bytes = read(&file).await;
        then(file.name(), bytes);
    });
}

/// A file from the page's server (a bundled sample), as an ArrayBuffer.
pub async fn fetch(url: &str, what: &str) -> Result<JsValue, String> {
    let window = web_sys::window().ok_or("no window")?;
    let resp: web_sys::Response = JsFuture::from(window.fetch_with_str(url))
        .await
        .map_err(|e| error_text(&e))?
        .unchecked_into();
    if !resp.ok() {
        return Err(format!("{what} is missing (HTTP {})", resp.status()));
    }
    JsFuture::from(resp.array_buffer().map_err(|e| error_text(&e))?)
        .await
        .map_err(|e| error_text(&e))
}

/// Offers `bytes` (a zip) to the user as a download named `name`.
pub fn download(name: &str, bytes: &JsValue) -> Result<(), String> {
    let parts = js_sys::Array::of1(bytes);
    let opts = web_sys::BlobPropertyBag::new();
    opts.set_type("application/zip");
    let blob = web_sys::Blob::new_with_buffer_source_sequence_and_options(&parts, &opts)
        .map_err(|e| error_text(&e))?;
    let url = web_sys::Url::create_object_url_with_blob(&blob).map_err(|e| error_text(&e))?;
    let document = web_sys::window()
        .and_then(|w| w.document())
        .ok_or("no document")?;
    let a: web_sys::HtmlAnchorElement = document
        .create_element("a")
        .map_err(|e| error_text(&e))?
        .unchecked_into();
    a.set_href(&url);
    a.set_download(name);
    a.click();
    // Revoked later: revoking at once can cancel the download before it starts.
    gloo::timers::callback::Timeout::new(60_000, move || {
        let _ = web_sys::Url::revoke_object_url(&url);
    })
    .forget();
    Ok(())
}
