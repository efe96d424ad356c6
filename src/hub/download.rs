//! Model files from a server (the Hub, a mirror, a local server) with progress, reusing what
//! browser storage already holds. Nothing is stored here: a model is kept only after it loaded
//! (see [`super::storage`]), so a failed or partial download is never kept.

use js_sys::{Promise, Uint8Array};
use wasm_bindgen::{JsCast, JsValue};
use wasm_bindgen_futures::JsFuture;
use web_sys::Response;

use super::{
    file_url, grown_capacity, plan_body, storage, too_large, ModelFiles, Purpose, INDEX_FILE,
    MAX_FILE_BYTES, REQUIRED_FILES, SENTENCE_TRANSFORMERS_FILES,
};
use crate::clock::now_ms;
use crate::error::Error;
use crate::js::{error_text, get};

/// Download progress of one file.
pub struct Progress<'a> {
    pub file: &'a str,
    pub loaded: u64,
    pub total: Option<u64>,
    pub bytes_per_s: f64,
    pub from_cache: bool,
}

/// Fetches `url` with progress. HTTP errors, HTML pages, short reads and files larger than this
/// browser can hold ([`MAX_FILE_BYTES`], checked on the headers and again as bytes arrive) are
/// errors. A compressed response (`content-encoding`) is taken as the browser inflates it.
pub async fn download(
    url: &str,
    file: &str,
    on_progress: &mut dyn FnMut(Progress),
) -> Result<Vec<u8>, Error> {
    let global = js_sys::global();
    let fetch = get(&global, "fetch")
        .and_then(|f| f.dyn_into::<js_sys::Function>().ok())
        .ok_or_else(|| Error::files("fetch is not available"))?;
    let promise: Promise = fetch
        .call1(&global, &JsValue::from_str(url))
        .map_err(|e| Error::files(error_text(&e)))?
        .unchecked_into();
    let response: Response = JsFuture::from(promise)
        .await
        .map_err(|e| {
            Error::files(format!(
                "{file}: could not reach {url} ({})",
                error_text(&e)
            ))
        })?
        .unchecked_into();
    if !response.ok() {
        let hint = match response.status() {
            401 | 403 => {
                " (a private or gated model needs a login: download it and choose its files)"
            }
            404 => " (is the model id right, and does the model have this file?)",
            _ => "",
        };
        return Err(Error::files(format!(
            "{file}: HTTP {} from {url}{hint}",
            response.status()
        )));
    }
    let html = || {
        Error::files(format!(
            "{file}: {url} returned an HTML page, not the model file"
        ))
    };
    let content_type = response
        .headers()
        .get("content-type")
        .ok()
        .flatten()
        .unwrap_or_default();
    if content_type.starts_with("text/html") {
        return Err(html());
    }
    let header = |name: &str| response.headers().get(name).ok().flatten();
    let plan = plan_body(
        file,
        header("content-length").as_deref(),
        header("content-encoding").as_deref(),
    )?;
    let total = plan.expected;
    let start = now_ms();
    let broke_off = |e: JsValue| {
        Error::files(format!(
            "{file}: the download broke off: {}",
            error_text(&e)
        ))
    };
    let mut bytes: Vec<u8> = Vec::with_capacity(plan.reserve);
    let mut last_report = 0.0;
    if let Some(body) = response.body() {
        let reader: web_sys::ReadableStreamDefaultReader = body.get_reader().unchecked_into();
        loop {
            let chunk = JsFuture::from(reader.read()).await.map_err(broke_off)?;
            if get(&chunk, "done")
                .and_then(|d| d.as_bool())
                .unwrap_or(true)
            {
                break;
            }
            if let Some(value) = get(&chunk, "value") {
                let chunk = Uint8Array::new(&value);
                let after = bytes.len() as u64 + chunk.length() as u64;
                if after > MAX_FILE_BYTES {
                    let _ = reader.cancel();
                    return Err(too_large(file, after));
                }
                let (start, after) = (bytes.len(), after as usize);
                if after > bytes.capacity() {
                    bytes.reserve_exact(grown_capacity(after, total) - start);
                }
                // Straight from the JS chunk into place (no copy in between).
                bytes.resize(after, 0);
                chunk.copy_to(&mut bytes[start..]);
            }
            let now = now_ms();
            if now - last_report > 100.0 {
                last_report = now;
                let secs = ((now - start) / 1000.0).max(1e-3);
                on_progress(Progress {
                    file,
                    loaded: bytes.len() as u64,
                    total,
                    bytes_per_s: bytes.len() as f64 / secs,
                    from_cache: false,
                });
            }
        }
    } else {
        let buf = JsFuture::from(response.array_buffer().map_err(broke_off)?)
            .await
            .map_err(broke_off)?;
        let array = Uint8Array::new(&buf);
        if array.length() as u64 > MAX_FILE_BYTES {
            return Err(too_large(file, array.length() as u64));
        }
        bytes = array.to_vec();
    }
    if let Some(t) = total {
        if bytes.len() as u64 != t {
            return Err(Error::files(format!(
                "{file}: the download stopped at {} of {t} bytes",
                bytes.len()
            )));
        }
    }
    let secs = ((now_ms() - start) / 1000.0).max(1e-3);
    on_progress(Progress {
        file,
        loaded: bytes.len() as u64,
        total: Some(bytes.len() as u64),
        bytes_per_s: bytes.len() as f64 / secs,
        from_cache: false,
    });
    if bytes.starts_with(b"<!DOCTYPE")
        || bytes.starts_with(b"<!doctype")
        || bytes.starts_with(b"<html")
    {
        return Err(html());
    }
    Ok(bytes)
}

/// A model's files from a source: from browser storage when kept there, else downloaded. The
/// required files must come; the optional ones for `purpose` may be absent (a 404 is fine), and
/// `modules.json` brings the rest of the sentence-transformers settings along. Without
/// `model.safetensors`, a sharded checkpoint's index (`model.safetensors.index.json`) brings its
/// shards, each required. `check_config` sees `config.json` first, before anything else is
/// fetched: its error stops the download.
pub async fn fetch_model(
    template: &str,
    id: &str,
    purpose: Purpose,
    on_progress: &mut dyn FnMut(Progress),
    check_config: &dyn Fn(&ModelFiles) -> Result<(), Error>,
) -> Result<ModelFiles, Error> {
    let stored = storage::Store::open().await.ok();
    let mut files = ModelFiles::default();
    let mut wanted: Vec<String> = REQUIRED_FILES
        .iter()
        .chain(purpose.optional_files())
        .map(|n| n.to_string())
        .collect();
    let mut required: Vec<String> = REQUIRED_FILES.iter().map(|n| n.to_string()).collect();
    let mut i = 0;
    while i < wanted.len() {
        let name = wanted[i].clone();
        let name = name.as_str();
        i += 1;
        let url = file_url(template, id, name);
        let cached = match &stored {
            Some(s) => s.get(&url).await,
            None => None,
        };
        let bytes = match cached {
            Some(b) => {
                on_progress(Progress {
                    file: name,
                    loaded: b.len() as u64,
                    total: Some(b.len() as u64),
                    bytes_per_s: 0.0,
                    from_cache: true,
                });
                b
            }
            None if name == "model.safetensors" => {
                // Sharded? Then the index (kept in storage, or the source's when it has no
                // model.safetensors) names the files that hold the weights.
                let index_url = file_url(template, id, INDEX_FILE);
                let kept_index = match &stored {
                    Some(s) => s.get(&index_url).await,
                    None => None,
                };
                let index = match kept_index {
                    Some(index) => index,
                    None => match download(&url, name, on_progress).await {
                        Ok(bytes) => {
                            files.insert(name, bytes);
                            continue;
                        }
                        Err(e) => download(&index_url, INDEX_FILE, &mut |_| {})
                            .await
                            .map_err(|_| e)?,
                    },
                };
                let shards = super::shard_names(&index)?;
                files.insert(INDEX_FILE, index);
                required.extend(shards.iter().cloned());
                wanted.extend(shards);
                continue;
            }
            None if required.iter().any(|r| r == name) => download(&url, name, on_progress).await?,
            None => match download(&url, name, &mut |_| {}).await {
                Ok(b) => b,
                Err(_) => continue,
            },
        };
        if name == "modules.json" {
            wanted.extend(
                SENTENCE_TRANSFORMERS_FILES[1..]
                    .iter()
                    .map(|n| n.to_string()),
            );
        }
        files.insert(name, bytes);
        if name == "config.json" {
            check_config(&files)?;
        }
    }
    Ok(files)
}
