//! Training runs kept in origin-private storage so that they survive a reload or a crash: each
//! run's data file(s), its settings and its latest checkpoint. The Origin Private File System
//! (a `tunelab-runs` folder) where the browser has one, else the Cache API (`tunelab-runs-v1`).
//! An index file lists the runs ([`RunInfo`]); a run's files are `{id}.checkpoint`,
//! `{id}.data` and `{id}.test`.

use js_sys::{Object, Reflect, Uint8Array};
use wasm_bindgen::{JsCast, JsValue};
use wasm_bindgen_futures::JsFuture;
use web_sys::{Cache, CacheStorage, Response};

use crate::error::Error;
use crate::js::{error_text, get};
use crate::protocol::RunInfo;

const FOLDER: &str = "tunelab-runs";
const CACHE_NAME: &str = "tunelab-runs-v1";
const INDEX: &str = "runs.json";

/// Where the runs are kept.
pub enum RunStore {
    /// An OPFS directory handle.
    Opfs(JsValue),
    Cache(Cache),
}

/// Calls `target.name(args...)` and awaits the promise it returns.
async fn call(target: &JsValue, name: &str, args: &[JsValue]) -> Result<JsValue, JsValue> {
    let f: js_sys::Function = Reflect::get(target, &JsValue::from_str(name))?.dyn_into()?;
    let arr = js_sys::Array::new();
    for a in args {
        arr.push(a);
    }
    let promise = f.apply(target, &arr)?;
    JsFuture::from(js_sys::Promise::resolve(&promise)).await
}

fn create(yes: bool) -> JsValue {
    let o = Object::new();
    let _ = Reflect::set(&o, &"create".into(), &JsValue::from_bool(yes));
    o.into()
}

fn cache_url(name: &str) -> String {
    let origin = get(&js_sys::global(), "location")
        .and_then(|l| get(&l, "origin"))
        .and_then(|o| o.as_string())
        .unwrap_or_else(|| "http://localhost".into());
    format!("{origin}/__tunelab__/runs/{name}")
}

impl RunStore {
    /// OPFS when the browser offers it, else the Cache API.
    pub async fn open() -> Result<Self, Error> {
        if let Some(storage) = get(&js_sys::global(), "navigator").and_then(|n| get(&n, "storage"))
        {
            if get(&storage, "getDirectory").is_some() {
                if let Ok(root) = call(&storage, "getDirectory", &[]).await {
                    if let Ok(dir) =
                        call(&root, "getDirectoryHandle", &[FOLDER.into(), create(true)]).await
                    {
                        return Ok(Self::Opfs(dir));
                    }
                }
            }
        }
        let caches = get(&js_sys::global(), "caches")
            .and_then(|c| c.dyn_into::<CacheStorage>().ok())
            .ok_or_else(|| Error::files("no origin-private storage (OPFS or Cache API) here"))?;
        let cache = JsFuture::from(caches.open(CACHE_NAME)).await.map_err(|e| {
            Error::files(format!(
                "could not open browser storage: {}",
                error_text(&e)
            ))
        })?;
        Ok(Self::Cache(cache.unchecked_into()))
    }

    /// Which storage this is, for messages.
    pub fn kind(&self) -> &'static str {
        match self {
            Self::Opfs(_) => "the origin-private file system",
            Self::Cache(_) => "the Cache API",
        }
    }

    pub async fn write(&self, name: &str, bytes: &[u8]) -> Result<(), Error> {
        let failed = |e: JsValue| {
            Error::files(format!(
                "could not keep the run's {name} in browser storage: {}",
                error_text(&e)
            ))
        };
        let data = Uint8Array::from(bytes);
        match self {
            Self::Opfs(dir) => {
                let file = call(dir, "getFileHandle", &[name.into(), create(true)])
                    .await
                    .map_err(failed)?;
                let writable = call(&file, "createWritable", &[]).await.map_err(failed)?;
                if let Err(e) = call(&writable, "write", &[data.into()]).await {
                    let _ = call(&writable, "abort", &[]).await;
                    return Err(failed(e));
                }
                call(&writable, "close", &[]).await.map_err(failed)?;
            }
            Self::Cache(cache) => {
                let response = Response::new_with_opt_buffer_source(Some(&data)).map_err(failed)?;
                JsFuture::from(cache.put_with_str(&cache_url(name), &response))
                    .await
                    .map_err(failed)?;
            }
        }
        Ok(())
    }

    pub async fn read(&self, name: &str) -> Option<Vec<u8>> {
        let buf = match self {
            Self::Opfs(dir) => {
                let file = call(dir, "getFileHandle", &[name.into()]).await.ok()?;
                let blob = call(&file, "getFile", &[]).await.ok()?;
                call(&blob, "arrayBuffer", &[]).await.ok()?
            }
            Self::Cache(cache) => {
                let hit = JsFuture::from(cache.match_with_str(&cache_url(name)))
                    .await
                    .ok()?;
                let response: Response = hit.dyn_into().ok()?;
                JsFuture::from(response.array_buffer().ok()?).await.ok()?
            }
        };
        Some(Uint8Array::new(&buf).to_vec())
    }

    pub async fn remove(&self, name: &str) {
        match self {
            Self::Opfs(dir) => {
                let _ = call(dir, "removeEntry", &[name.into()]).await;
            }
            Self::Cache(cache) => {
                let _ = JsFuture::from(cache.delete_with_str(&cache_url(name))).await;
            }
        }
    }

    /// The kept runs, newest first.
    pub async fn list(&self) -> Vec<RunInfo> {
        let mut runs: Vec<RunInfo> = self
            .read(INDEX)
            .await
            .and_then(|b| serde_json::from_slice(&b).ok())
            .unwrap_or_default();
        runs.sort_by(|a, b| b.saved_ms.total_cmp(&a.saved_ms));
        runs
    }

    async fn write_index(&self, runs: &[RunInfo]) -> Result<(), Error> {
        let bytes = serde_json::to_vec(runs).map_err(|e| Error::Usage(e.to_string()))?;
        self.write(INDEX, &bytes).await
    }

    /// Adds or replaces the run `info.id` in the index.
    pub async fn put(&self, info: &RunInfo) -> Result<(), Error> {
        let mut runs = self.list().await;
        runs.retain(|r| r.id != info.id);
        runs.push(info.clone());
        self.write_index(&runs).await
    }

    /// Removes a run and its files.
    pub async fn delete(&self, id: &str) -> Result<(), Error> {
        for suffix in ["checkpoint", "data", "test"] {
            self.remove(&format!("{id}.{suffix}")).await;
        }
        let mut runs = self.list().await;
        runs.retain(|r| r.id != id);
        self.write_index(&runs).await
    }
}
