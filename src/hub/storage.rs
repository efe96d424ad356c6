//! Loaded models kept in the browser's Cache API, so they load again offline and survive a
//! reload. One cache holds every file under a URL (a downloaded file under its own URL, a
//! fine-tuned model's under a local one) and a manifest lists the models by [`StoreKey`].
//!
//! Keeping a model is a transaction: under a lock (shared by the browser's tabs where it offers
//! Web Locks), each file is written unless storage already holds it (same [`fingerprint`]),
//! read back by its fingerprint, and only then does the manifest point at the files. A failure
//! (a full quota) removes what it wrote and leaves the manifest as it was; files no manifest
//! entry names are swept away.

use js_sys::Uint8Array;
use wasm_bindgen::JsCast;
use wasm_bindgen_futures::JsFuture;
use web_sys::{Cache, CacheStorage, Response};

use super::{file_url, fingerprint, ModelFiles, StoreKey, StoredModel};
use crate::error::Error;
use crate::js::{error_text, error_with_name, get};

const CACHE_NAME: &str = "tunelab-models-v1";

/// The response header holding a stored file's [`fingerprint`].
const FINGERPRINT_HEADER: &str = "x-tunelab-fingerprint";

/// The Web Lock that orders every change of the store, across tabs.
const LOCK_NAME: &str = "tunelab-model-store";

#[derive(Debug, Clone, Default, serde::Serialize, serde::Deserialize)]
struct Manifest {
    models: Vec<ManifestEntry>,
}

#[derive(Debug, Clone, serde::Serialize, serde::Deserialize)]
struct ManifestEntry {
    key: String,
    name: String,
    source: String,
    /// (file name, cache URL, size)
    files: Vec<(String, String, u64)>,
    saved_ms: f64,
}

fn origin() -> String {
    get(&js_sys::global(), "location")
        .and_then(|l| get(&l, "origin"))
        .and_then(|o| o.as_string())
        .unwrap_or_else(|| "http://localhost".into())
}

/// The cache URL of something Tunelab made itself (a fine-tuned model's files, the manifest).
fn local_url(path: &str) -> String {
    format!("{}/__tunelab__/{path}", origin())
}

/// Where `file` (of fingerprint `print`) of the model `key` is kept: a downloaded file under the
/// URL it came from (so a later download finds it), a fine-tuned model's under a local URL of
/// its own content, so that keeping a new model under an old name never overwrites the files
/// the manifest still names.
fn location(key: &StoreKey, file: &str, print: &str) -> String {
    match key {
        StoreKey::Hub { url_template, id } => file_url(url_template, id, file),
        StoreKey::Trained { name } => local_url(&format!(
            "trained/{}/{print}/{file}",
            js_sys::encode_uri_component(name)
        )),
    }
}

/// Holds the store's lock until dropped.
struct StoreLock {
    release: Option<js_sys::Function>,
}

impl Drop for StoreLock {
    fn drop(&mut self) {
        match self.release.take() {
            Some(f) => {
                let _ = f.call0(&wasm_bindgen::JsValue::NULL);
            }
            None => LocalLock::release(),
        }
    }
}

/// The store's lock: a Web Lock where the browser has them (one tab's keep cannot interleave
/// with another's, and the lock goes with a worker that dies), else one for this worker.
async fn lock() -> StoreLock {
    let locks = get(&js_sys::global(), "navigator").and_then(|n| get(&n, "locks"));
    let request = locks
        .as_ref()
        .and_then(|l| get(l, "request"))
        .and_then(|f| f.dyn_into::<js_sys::Function>().ok());
    let (Some(locks), Some(request)) = (locks, request) else {
        LocalLock::acquire().await;
        return StoreLock { release: None };
    };
    let mut release = None;
    let held = js_sys::Promise::new(&mut |resolve, _| release = Some(resolve));
    let mut granted = None;
    let acquired = js_sys::Promise::new(&mut |resolve, _| granted = Some(resolve));
    let granted = granted.expect("the Promise executor runs at once");
    let callback = wasm_bindgen::closure::Closure::once_into_js(
        move |_lock: wasm_bindgen::JsValue| -> wasm_bindgen::JsValue {
            let _ = granted.call0(&wasm_bindgen::JsValue::NULL);
            held.into()
        },
    );
    if request.call2(&locks, &LOCK_NAME.into(), &callback).is_err() {
        LocalLock::acquire().await;
        return StoreLock { release: None };
    }
    let _ = JsFuture::from(acquired).await;
    StoreLock { release }
}

/// A lock for this worker alone (no Web Locks): one holder, the others wait their turn.
struct LocalLock;

thread_local! {
    static LOCAL_HELD: std::cell::Cell<bool> = const { std::cell::Cell::new(false) };
    static LOCAL_WAITING: std::cell::RefCell<Vec<std::task::Waker>> =
        const { std::cell::RefCell::new(Vec::new()) };
}

impl LocalLock {
    async fn acquire() {
        std::future::poll_fn(|cx| {
            if LOCAL_HELD.with(|h| h.replace(true)) {
                LOCAL_WAITING.with(|w| w.borrow_mut().push(cx.waker().clone()));
                std::task::Poll::Pending
            } else {
                std::task::Poll::Ready(())
            }
        })
        .await
    }

    fn release() {
        LOCAL_HELD.with(|h| h.set(false));
        for waker in LOCAL_WAITING.with(|w| std::mem::take(&mut *w.borrow_mut())) {
            waker.wake();
        }
    }
}

/// The browser's model store.
pub struct Store {
    cache: Cache,
}

impl Store {
    pub async fn open() -> Result<Self, Error> {
        let caches = get(&js_sys::global(), "caches")
            .and_then(|c| c.dyn_into::<CacheStorage>().ok())
            .ok_or_else(|| Error::files("browser storage (Cache API) is not available here"))?;
        let cache = JsFuture::from(caches.open(CACHE_NAME)).await.map_err(|e| {
            Error::files(format!(
                "could not open browser storage: {}",
                error_text(&e)
            ))
        })?;
        Ok(Self {
            cache: cache.unchecked_into(),
        })
    }

    /// The bytes kept under `url`, if any.
    pub async fn get(&self, url: &str) -> Option<Vec<u8>> {
        let hit = JsFuture::from(self.cache.match_with_str(url)).await.ok()?;
        let response: Response = hit.dyn_into().ok()?;
        let buf = JsFuture::from(response.array_buffer().ok()?).await.ok()?;
        Some(Uint8Array::new(&buf).to_vec())
    }

    /// Writes `bytes` under `url`, with their fingerprint in a header.
    async fn put(&self, url: &str, bytes: &[u8], print: &str) -> Result<(), Error> {
        let body = Uint8Array::from(bytes);
        let headers = js_sys::Object::new();
        let init = js_sys::Object::new();
        let set = |o: &js_sys::Object, k: &str, v: &wasm_bindgen::JsValue| {
            js_sys::Reflect::set(o, &k.into(), v).map_err(|e| Error::files(error_text(&e)))
        };
        set(&headers, FINGERPRINT_HEADER, &print.into())?;
        set(&init, "headers", &headers)?;
        // `new Response(body, { headers })` (built through JS: no web-sys binding for its init).
        let constructor: js_sys::Function = get(&js_sys::global(), "Response")
            .and_then(|c| c.dyn_into().ok())
            .ok_or_else(|| Error::files("this browser has no Response"))?;
        let response: Response =
            js_sys::Reflect::construct(&constructor, &js_sys::Array::of2(&body, &init))
                .map_err(|e| Error::files(error_text(&e)))?
                .unchecked_into();
        JsFuture::from(self.cache.put_with_str(url, &response))
            .await
            .map_err(|e| Error::files(format!("could not write {url}: {}", error_with_name(&e))))?;
        Ok(())
    }

    /// The fingerprint of what is stored under `url` (none when nothing is, or when it was
    /// stored without one).
    async fn fingerprint_at(&self, url: &str) -> Option<String> {
        let hit = JsFuture::from(self.cache.match_with_str(url)).await.ok()?;
        let response: Response = hit.dyn_into().ok()?;
        response.headers().get(FINGERPRINT_HEADER).ok()?
    }

    /// The manifest: empty when there is none; an error when it cannot be read (then nothing is
    /// swept).
    async fn manifest(&self) -> Result<Manifest, Error> {
        match self.get(&local_url("manifest.json")).await {
            Some(b) => serde_json::from_slice(&b).map_err(|e| {
                Error::files(format!("the list of stored models cannot be read: {e}"))
            }),
            None => Ok(Manifest::default()),
        }
    }

    async fn write_manifest(&self, m: &Manifest) -> Result<(), Error> {
        let json = serde_json::to_vec(m).map_err(|e| Error::files(e.to_string()))?;
        let print = fingerprint(&json);
        self.put(&local_url("manifest.json"), &json, &print).await
    }

    /// Deletes every stored file no manifest entry names (what a keep left half-written, a
    /// model deleted while it was shared). Nothing when the manifest cannot be read.
    async fn sweep(&self, m: &Manifest) {
        let Ok(keys) = JsFuture::from(self.cache.keys()).await else {
            return;
        };
        let named: std::collections::HashSet<&str> = m
            .models
            .iter()
            .flat_map(|e| e.files.iter().map(|(_, u, _)| u.as_str()))
            .collect();
        let manifest = local_url("manifest.json");
        for request in js_sys::Array::from(&keys).iter() {
            let Some(url) = get(&request, "url").and_then(|u| u.as_string()) else {
                continue;
            };
            if url != manifest && !named.contains(url.as_str()) {
                let _ = JsFuture::from(self.cache.delete_with_str(&url)).await;
            }
        }
    }

    /// Keeps every file of a loaded model under `key`, shown as `name`, as one transaction:
    /// the listing changes only once every file is stored and read back; on a failure the
    /// files written are removed again and the listing is as it was.
    pub async fn keep(&self, key: &StoreKey, name: &str, files: &ModelFiles) -> Result<(), Error> {
        let _lock = lock().await;
        let mut written = Vec::new();
        let result = self.keep_locked(key, name, files, &mut written).await;
        match self.manifest().await {
            // What a failed keep wrote is named by no entry: the sweep removes it.
            Ok(m) => self.sweep(&m).await,
            Err(_) if result.is_err() => {
                for url in &written {
                    let _ = JsFuture::from(self.cache.delete_with_str(url)).await;
                }
            }
            Err(_) => {}
        }
        result.map_err(|e| {
            Error::files(format!(
                "could not keep \"{name}\" in browser storage ({e}); storage is as it was"
            ))
        })
    }

    async fn keep_locked(
        &self,
        key: &StoreKey,
        name: &str,
        files: &ModelFiles,
        written: &mut Vec<String>,
    ) -> Result<(), Error> {
        let mut entry = ManifestEntry {
            key: key.key(),
            name: name.into(),
            source: match key {
                StoreKey::Hub { url_template, .. } => url_template.clone(),
                StoreKey::Trained { .. } => "fine-tuned here".into(),
            },
            files: Vec::new(),
            saved_ms: js_sys::Date::now(),
        };
        for (file, bytes) in files.entries() {
            let print = fingerprint(bytes);
            let url = location(key, file, &print);
            // A file loaded from storage is there already: it is not written again.
            if self.fingerprint_at(&url).await.as_deref() != Some(print.as_str()) {
                self.put(&url, bytes, &print).await?;
                written.push(url.clone());
                if self.fingerprint_at(&url).await.as_deref() != Some(print.as_str()) {
                    return Err(Error::files(format!("{file} did not read back as written")));
                }
            }
            entry
                .files
                .push((file.to_string(), url, bytes.len() as u64));
        }
        // A manifest that cannot be read is replaced (its models could not be listed anyway).
        let mut m = self.manifest().await.unwrap_or_default();
        m.models.retain(|e| e.key != entry.key);
        m.models.push(entry);
        self.write_manifest(&m).await
    }

    /// The models kept here.
    pub async fn list(&self) -> Vec<StoredModel> {
        self.manifest()
            .await
            .unwrap_or_default()
            .models
            .iter()
            .map(|e| StoredModel {
                key: e.key.clone(),
                name: e.name.clone(),
                trained: StoreKey::parse(&e.key).is_trained(),
                source: e.source.clone(),
                files: e.files.iter().map(|(f, _, s)| (f.clone(), *s)).collect(),
                bytes: e.files.iter().map(|(_, _, s)| s).sum(),
                saved_ms: e.saved_ms,
            })
            .collect()
    }

    /// A kept model's files and its name.
    pub async fn load(&self, key: &str) -> Result<(ModelFiles, String), Error> {
        let m = self.manifest().await?;
        let entry = m
            .models
            .iter()
            .find(|e| e.key == key)
            .ok_or_else(|| Error::files(format!("no stored model \"{key}\"")))?;
        let mut files = ModelFiles::default();
        for (file, url, _) in &entry.files {
            let bytes = self.get(url).await.ok_or_else(|| {
                Error::files(format!(
                    "{file} of \"{}\" is missing from browser storage: delete it and load it again",
                    entry.name
                ))
            })?;
            files.insert(file, bytes);
        }
        Ok((files, entry.name.clone()))
    }

    /// Removes a kept model and its files (a file another kept model shares stays).
    pub async fn delete(&self, key: &str) -> Result<(), Error> {
        let _lock = lock().await;
        let mut m = self.manifest().await?;
        m.models.retain(|e| e.key != key);
        self.write_manifest(&m).await?;
        self.sweep(&m).await;
        Ok(())
    }
}

/// The browser's storage use and quota in bytes, when it says (it can take a while).
pub async fn estimate() -> Option<(f64, f64)> {
    let navigator = get(&js_sys::global(), "navigator")?;
    let storage: web_sys::StorageManager = get(&navigator, "storage")?.dyn_into().ok()?;
    let e = JsFuture::from(storage.estimate().ok()?).await.ok()?;
    Some((get(&e, "usage")?.as_f64()?, get(&e, "quota")?.as_f64()?))
}
