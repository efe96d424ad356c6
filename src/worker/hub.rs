//! Model files from the Hub (or a mirror, or a local server) with download progress, kept in the
//! browser's Cache API and reused offline. A file is cached only after the whole model loaded
//! (a failed or partial download is never cached); an HTML page is never taken for a model file.

use js_sys::{Promise, Uint8Array};
use serde::{Deserialize, Serialize};
use wasm_bindgen::{JsCast, JsValue};
use wasm_bindgen_futures::JsFuture;
use web_sys::{Cache, CacheStorage, Response};

use crate::clock::now_ms;
use crate::js::{error_text, get};
use crate::pipeline::ModelFiles;
use crate::protocol::{file_url, CachedModel};

const CACHE_NAME: &str = "tunelab-models-v1";
pub const REQUIRED_FILES: &[&str] = &["config.json", "tokenizer.json", "model.safetensors"];

/// Download progress of one file.
pub struct Progress<'a> {
    pub file: &'a str,
    pub loaded: u64,
    pub total: Option<u64>,
    pub bytes_per_s: f64,
    pub from_cache: bool,
}

fn caches() -> Result<CacheStorage, String> {
    get(&js_sys::global(), "caches")
        .and_then(|c| c.dyn_into::<CacheStorage>().ok())
        .ok_or_else(|| "browser storage (Cache API) is not available here".to_string())
}

async fn open_cache() -> Result<Cache, String> {
    let c = JsFuture::from(caches()?.open(CACHE_NAME))
        .await
        .map_err(|e| format!("could not open browser storage: {}", error_text(&e)))?;
    Ok(c.unchecked_into())
}

fn origin() -> String {
    get(&js_sys::global(), "location")
        .and_then(|l| get(&l, "origin"))
        .and_then(|o| o.as_string())
        .unwrap_or_else(|| "http://localhost".into())
}

/// The cache key of a file of a model stored by key (trained models and the manifest).
pub fn local_url(path: &str) -> String {
    format!("{}/__tunelab__/{path}", origin())
}

async fn cache_get(cache: &Cache, url: &str) -> Option<Vec<u8>> {
    let hit = JsFuture::from(cache.match_with_str(url)).await.ok()?;
    let response: Response = hit.dyn_into().ok()?;
    let buf = JsFuture::from(response.array_buffer().ok()?).await.ok()?;
    Some(Uint8Array::new(&buf).to_vec())
}

async fn cache_put(cache: &Cache, url: &str, bytes: &[u8]) -> Result<(), String> {
    let mut copy = bytes.to_vec();
    let response = Response::new_with_opt_u8_array(Some(&mut copy)).map_err(|e| error_text(&e))?;
    JsFuture::from(cache.put_with_str(url, &response))
        .await
        .map_err(|e| {
            format!(
                "could not store {url} in browser storage: {}",
                error_text(&e)
            )
        })?;
    Ok(())
}

/// Fetches `url` with progress. HTTP errors, HTML pages and short reads are errors.
pub async fn download(
    url: &str,
    file: &str,
    on_progress: &mut dyn FnMut(Progress),
) -> Result<Vec<u8>, String> {
    let global = js_sys::global();
    let fetch = get(&global, "fetch")
        .and_then(|f| f.dyn_into::<js_sys::Function>().ok())
        .ok_or("fetch is not available")?;
    let promise: Promise = fetch
        .call1(&global, &JsValue::from_str(url))
        .map_err(|e| error_text(&e))?
        .unchecked_into();
    let response: Response = JsFuture::from(promise)
        .await
        .map_err(|e| format!("{file}: could not reach {url} ({})", error_text(&e)))?
        .unchecked_into();
    if !response.ok() {
        let hint = match response.status() {
            401 | 403 => {
                " (a private or gated model needs a login: download it and choose its files)"
            }
            404 => " (is the model id right, and does the model have this file?)",
            _ => "",
        };
        return Err(format!(
            "{file}: HTTP {} from {url}{hint}",
            response.status()
        ));
    }
    let content_type = response
        .headers()
        .get("content-type")
        .ok()
        .flatten()
        .unwrap_or_default();
    if content_type.starts_with("text/html") {
        return Err(format!(
            "{file}: {url} returned an HTML page, not the model file"
        ));
    }
    let total = response
        .headers()
        .get("content-length")
        .ok()
        .flatten()
        .and_then(|v| v.parse::<u64>().ok());
    let start = now_ms();
    let mut bytes: Vec<u8> = Vec::with_capacity(total.unwrap_or(0) as usize);
    let mut last_report = 0.0;
    if let Some(body) = response.body() {
        let reader: web_sys::ReadableStreamDefaultReader = body.get_reader().unchecked_into();
        loop {
            let chunk = JsFuture::from(reader.read())
                .await
                .map_err(|e| format!("{file}: the download broke off: {}", error_text(&e)))?;
            if get(&chunk, "done")
                .and_then(|d| d.as_bool())
                .unwrap_or(true)
            {
                break;
            }
            if let Some(value) = get(&chunk, "value") {
                bytes.extend_from_slice(&Uint8Array::new(&value).to_vec());
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
        let buf = JsFuture::from(response.array_buffer().map_err(|e| error_text(&e))?)
            .await
            .map_err(|e| format!("{file}: the download broke off: {}", error_text(&e)))?;
        bytes = Uint8Array::new(&buf).to_vec();
    }
    if let Some(t) = total {
        if bytes.len() as u64 != t {
            return Err(format!(
                "{file}: the download stopped at {} of {t} bytes",
                bytes.len()
            ));
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
        return Err(format!(
            "{file}: {url} returned an HTML page, not the model file"
        ));
    }
    Ok(bytes)
}

/// Optional files worth asking for when a model is a base to fine-tune: the sentence-transformers
/// settings (its pooling) and the tokenizer files a saved model carries along.
pub const BASE_MODEL_FILES: &[&str] = &[
    "modules.json",
    "tokenizer_config.json",
    "special_tokens_map.json",
    "vocab.txt",
];

/// A model's files from the Hub or a mirror: from browser storage when kept there, else
/// downloaded (not yet stored: see [`store`]). `optional` files may be absent (a 404 is fine);
/// with `modules.json` come the sentence-transformers pooling settings it points to.
/// Returns the files and the (file, URL) pairs to store.
pub async fn fetch_model(
    template: &str,
    id: &str,
    optional: &[&str],
    on_progress: &mut dyn FnMut(Progress),
) -> Result<(ModelFiles, Vec<(String, String)>), String> {
    let cache = open_cache().await.ok();
    let mut files = ModelFiles::default();
    let mut fetched = Vec::new();
    let mut wanted: Vec<&str> = REQUIRED_FILES.iter().chain(optional).copied().collect();
    let mut i = 0;
    while i < wanted.len() {
        let name = wanted[i];
        i += 1;
        let url = file_url(template, id, name);
        let cached = match &cache {
            Some(c) => cache_get(c, &url).await,
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
            None if REQUIRED_FILES.contains(&name) => download(&url, name, on_progress).await?,
            // Optional files (sentence-transformers settings, tokenizer extras): absent is fine.
            None => match download(&url, name, &mut |_| {}).await {
                Ok(b) => b,
                Err(_) => continue,
            },
        };
        fetched.push((name.to_string(), url));
        if name == "modules.json" {
            wanted.extend(["1_Pooling/config.json", "sentence_bert_config.json"]);
        }
        files.insert(name, bytes);
    }
    Ok((files, fetched))
}

#[derive(Debug, Clone, Default, Serialize, Deserialize)]
struct Manifest {
    models: Vec<ManifestEntry>,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
struct ManifestEntry {
    key: String,
    name: String,
    source: String,
    /// (file name, cache URL, size)
    files: Vec<(String, String, u64)>,
    saved_ms: f64,
}

async fn read_manifest(cache: &Cache) -> Manifest {
    match cache_get(cache, &local_url("manifest.json")).await {
        Some(b) => serde_json::from_slice(&b).unwrap_or_default(),
        None => Manifest::default(),
    }
}

async fn write_manifest(cache: &Cache, m: &Manifest) -> Result<(), String> {
    let json = serde_json::to_vec(m).map_err(|e| e.to_string())?;
    cache_put(cache, &local_url("manifest.json"), &json).await
}

/// Keeps a loaded model in browser storage under `key`; `urls` are the cache URLs per file.
pub async fn store(
    key: &str,
    name: &str,
    source: &str,
    files: &ModelFiles,
    urls: &[(String, String)],
) -> Result<(), String> {
    let cache = open_cache().await?;
    let mut entry = ManifestEntry {
        key: key.into(),
        name: name.into(),
        source: source.into(),
        files: Vec::new(),
        saved_ms: js_sys::Date::now(),
    };
    for (file, url) in urls {
        let Some(bytes) = files.get(file) else {
            continue;
        };
        cache_put(&cache, url, bytes).await?;
        entry
            .files
            .push((file.clone(), url.clone(), bytes.len() as u64));
    }
    let mut m = read_manifest(&cache).await;
    m.models.retain(|e| e.key != key);
    m.models.push(entry);
    write_manifest(&cache, &m).await
}

/// The models kept in browser storage.
pub async fn list() -> Result<Vec<CachedModel>, String> {
    let cache = open_cache().await?;
    let m = read_manifest(&cache).await;
    let models = m
        .models
        .iter()
        .map(|e| CachedModel {
            key: e.key.clone(),
            name: e.name.clone(),
            source: e.source.clone(),
            files: e.files.iter().map(|(f, _, s)| (f.clone(), *s)).collect(),
            bytes: e.files.iter().map(|(_, _, s)| s).sum(),
            saved_ms: e.saved_ms,
        })
        .collect();
    Ok(models)
}

/// The browser's storage use and quota in bytes, when it says (it can take a while).
pub async fn estimate() -> Option<(f64, f64)> {
    let navigator = get(&js_sys::global(), "navigator")?;
    let storage: web_sys::StorageManager = get(&navigator, "storage")?.dyn_into().ok()?;
    let e = JsFuture::from(storage.estimate().ok()?).await.ok()?;
    Some((get(&e, "usage")?.as_f64()?, get(&e, "quota")?.as_f64()?))
}

/// Loads a stored model's files.
pub async fn load_cached(key: &str) -> Result<(ModelFiles, String), String> {
    let cache = open_cache().await?;
    let m = read_manifest(&cache).await;
    let entry = m
        .models
        .iter()
        .find(|e| e.key == key)
        .ok_or_else(|| format!("no stored model \"{key}\""))?;
    let mut files = ModelFiles::default();
    for (file, url, _) in &entry.files {
        let bytes = cache_get(&cache, url).await.ok_or_else(|| {
            format!(
                "{file} of \"{}\" is missing from browser storage: delete it and load it again",
                entry.name
            )
        })?;
        files.insert(file, bytes);
    }
    Ok((files, entry.name.clone()))
}

/// Removes a stored model and its files.
pub async fn delete(key: &str) -> Result<(), String> {
    let cache = open_cache().await?;
    let mut m = read_manifest(&cache).await;
    if let Some(entry) = m.models.iter().find(|e| e.key == key) {
        for (_, url, _) in &entry.files {
            // A URL shared with another stored model stays.
            let shared = m
                .models
                .iter()
                .any(|o| o.key != key && o.files.iter().any(|(_, u, _)| u == url));
            if !shared {
                let _ = JsFuture::from(cache.delete_with_str(url)).await;
            }
        }
    }
    m.models.retain(|e| e.key != key);
    write_manifest(&cache, &m).await
}
