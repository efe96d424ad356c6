//! Loaded models kept in the browser's Cache API, so they load again offline and survive a
//! reload. One cache holds every file under a URL (a downloaded file under its own URL, a
//! fine-tuned model's under a local one) and a manifest lists the models by [`StoreKey`].

use js_sys::Uint8Array;
use wasm_bindgen::JsCast;
use wasm_bindgen_futures::JsFuture;
use web_sys::{Cache, CacheStorage, Response};

use super::{file_url, ModelFiles, StoreKey, StoredModel};
use crate::error::Error;
use crate::js::{error_text, get};

const CACHE_NAME: &str = "tunelab-models-v1";

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

/// Where `file` of the model `key` is kept: a downloaded file under the URL it came from (so a
/// later download finds it), a fine-tuned model's under a local URL.
fn location(key: &StoreKey, file: &str) -> String {
    match key {
        StoreKey::Hub { url_template, id } => file_url(url_template, id, file),
        StoreKey::Trained { name } => local_url(&format!(
            "trained/{}/{file}",
            js_sys::encode_uri_component(name)
        )),
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

    async fn put(&self, url: &str, bytes: &[u8]) -> Result<(), Error> {
        let mut copy = bytes.to_vec();
        let response = Response::new_with_opt_u8_array(Some(&mut copy))
            .map_err(|e| Error::files(error_text(&e)))?;
        JsFuture::from(self.cache.put_with_str(url, &response))
            .await
            .map_err(|e| {
                Error::files(format!(
                    "could not store {url} in browser storage: {}",
                    error_text(&e)
                ))
            })?;
        Ok(())
    }

    async fn manifest(&self) -> Manifest {
        match self.get(&local_url("manifest.json")).await {
            Some(b) => serde_json::from_slice(&b).unwrap_or_default(),
            None => Manifest::default(),
        }
    }

    async fn write_manifest(&self, m: &Manifest) -> Result<(), Error> {
        let json = serde_json::to_vec(m).map_err(|e| Error::files(e.to_string()))?;
        self.put(&local_url("manifest.json"), &json).await
    }

    /// Keeps every file of a loaded model under `key`, shown as `name`.
    pub async fn keep(&self, key: &StoreKey, name: &str, files: &ModelFiles) -> Result<(), Error> {
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
            let url = location(key, file);
            self.put(&url, bytes).await?;
            entry
                .files
                .push((file.to_string(), url, bytes.len() as u64));
        }
        let mut m = self.manifest().await;
        m.models.retain(|e| e.key != entry.key);
        m.models.push(entry);
        self.write_manifest(&m).await
    }

    /// The models kept here.
    pub async fn list(&self) -> Vec<StoredModel> {
        self.manifest()
            .await
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
        let m = self.manifest().await;
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
        let mut m = self.manifest().await;
        if let Some(entry) = m.models.iter().find(|e| e.key == key) {
            for (_, url, _) in &entry.files {
                let shared = m
                    .models
                    .iter()
                    .any(|o| o.key != key && o.files.iter().any(|(_, u, _)| u == url));
                if !shared {
                    let _ = JsFuture::from(self.cache.delete_with_str(url)).await;
                }
            }
        }
        m.models.retain(|e| e.key != key);
        self.write_manifest(&m).await
    }
}

/// The browser's storage use and quota in bytes, when it says (it can take a while).
pub async fn estimate() -> Option<(f64, f64)> {
    let navigator = get(&js_sys::global(), "navigator")?;
    let storage: web_sys::StorageManager = get(&navigator, "storage")?.dyn_into().ok()?;
    let e = JsFuture::from(storage.estimate().ok()?).await.ok()?;
    Some((get(&e, "usage")?.as_f64()?, get(&e, "quota")?.as_f64()?))
}
