//! The browser model store (`hub::storage`) as a transaction, in the test browser's Cache API:
//! included by `tests/wasm.rs`. `Cache.prototype.put` is wrapped to count writes and to reject
//! the ones whose URL holds a given text (as a full quota does).

use std::collections::BTreeMap;
use std::future::Future;
use std::task::Poll;

use tunelab::hub::storage::Store;
use tunelab::hub::{ModelFiles, StoreKey};
use wasm_bindgen::{JsCast, JsValue};
use wasm_bindgen_futures::JsFuture;
use wasm_bindgen_test::*;

fn js(code: &str) -> JsValue {
    js_sys::Function::new_no_args(code)
        .call0(&JsValue::NULL)
        .expect(code)
}

/// Wraps `Cache.prototype.put` once; resets the count; rejects writes to URLs holding `reject`.
fn watch_puts(reject: Option<&str>) {
    js("if (!globalThis.__realPut) {
          globalThis.__realPut = Cache.prototype.put;
          Cache.prototype.put = function (req, res) {
            globalThis.__puts += 1;
            const url = typeof req === 'string' ? req : req.url;
            if (globalThis.__reject && url.includes(globalThis.__reject)) {
              return Promise.reject(new DOMException('the quota is full', 'QuotaExceededError'));
            }
            return globalThis.__realPut.call(this, req, res);
          };
        }
        globalThis.__puts = 0;");
    js_sys::Reflect::set(
        &js_sys::global(),
        &"__reject".into(),
        &reject.map(JsValue::from).unwrap_or(JsValue::NULL),
    )
    .unwrap();
}

fn puts() -> u32 {
    js("return globalThis.__puts").as_f64().unwrap() as u32
}

/// Every URL in the store's cache.
async fn stored_urls() -> Vec<String> {
    let caches: web_sys::CacheStorage = js("return caches").unchecked_into();
    let cache: web_sys::Cache = JsFuture::from(caches.open("tunelab-models-v1"))
        .await
        .unwrap()
        .unchecked_into();
    let keys = JsFuture::from(cache.keys()).await.unwrap();
    js_sys::Array::from(&keys)
        .iter()
        .map(|r| {
            js_sys::Reflect::get(&r, &"url".into())
                .unwrap()
                .as_string()
                .unwrap()
        })
        .collect()
}

fn trained(name: &str) -> StoreKey {
    StoreKey::Trained { name: name.into() }
}

/// tiny-bert's files with the weights' last byte set to `mark` (same length, other content).
fn model(mark: u8) -> ModelFiles {
    let mut weights = include_bytes!("../fixtures/models/tiny-bert/model.safetensors").to_vec();
    *weights.last_mut().unwrap() = mark;
    ModelFiles {
        config: include_bytes!("../fixtures/models/tiny-bert/config.json").to_vec(),
        tokenizer: include_bytes!("../fixtures/models/tiny-bert/tokenizer.json").to_vec(),
        weights,
        extra: BTreeMap::new(),
    }
}

async fn listed(store: &Store) -> Vec<String> {
    store.list().await.into_iter().map(|m| m.name).collect()
}

/// Both futures, polled in turn until both end (no executor crate needed).
async fn both<A: Future, B: Future>(a: A, b: B) -> (A::Output, B::Output) {
    let (mut a, mut b) = (Box::pin(a), Box::pin(b));
    let (mut ra, mut rb) = (None, None);
    std::future::poll_fn(|cx| {
        if ra.is_none() {
            if let Poll::Ready(v) = a.as_mut().poll(cx) {
                ra = Some(v);
            }
        }
        if rb.is_none() {
            if let Poll::Ready(v) = b.as_mut().poll(cx) {
                rb = Some(v);
            }
        }
        if ra.is_some() && rb.is_some() {
            Poll::Ready(())
        } else {
            Poll::Pending
        }
    })
    .await;
    (ra.unwrap(), rb.unwrap())
}

#[wasm_bindgen_test]
async fn two_models_kept_at_once_are_both_listed() {
    watch_puts(None);
    let store = Store::open().await.unwrap();
    let (a, b) = (model(1), model(2));
    let (ra, rb) = both(
        store.keep(&trained("concurrent A"), "concurrent A", &a),
        store.keep(&trained("concurrent B"), "concurrent B", &b),
    )
    .await;
    ra.unwrap();
    rb.unwrap();
    let names = listed(&store).await;
    assert!(
        names.contains(&"concurrent A".to_string()) && names.contains(&"concurrent B".to_string()),
        "{names:?}"
    );
    for key in ["trained|concurrent A", "trained|concurrent B"] {
        store.delete(key).await.unwrap();
    }
}

#[wasm_bindgen_test]
async fn a_rejected_write_leaves_storage_as_it_was() {
    let store = Store::open().await.unwrap();
    // Kept once; a new model under the same name then fails at its weights.
    watch_puts(None);
    store
        .keep(&trained("quota"), "quota", &model(3))
        .await
        .unwrap();
    let before = stored_urls().await;
    watch_puts(Some("model.safetensors"));
    let err = store
        .keep(&trained("quota"), "quota", &model(4))
        .await
        .unwrap_err()
        .to_string();
    watch_puts(None);
    assert!(err.contains("QuotaExceededError"), "{err}");
    assert!(err.contains("storage is as it was"), "{err}");
    let after = stored_urls().await;
    assert_eq!(
        after, before,
        "the files written before the failure are gone"
    );
    // The old model is whole: its weights are the first ones.
    let (files, _) = store.load("trained|quota").await.unwrap();
    assert_eq!(*files.weights.last().unwrap(), 3);
    // A model that was never kept leaves nothing behind either.
    watch_puts(Some("model.safetensors"));
    let err = store.keep(&trained("never"), "never", &model(5)).await;
    watch_puts(None);
    assert!(err.is_err());
    assert!(!listed(&store).await.contains(&"never".to_string()));
    assert_eq!(stored_urls().await, before);
    store.delete("trained|quota").await.unwrap();
    assert!(
        !stored_urls().await.iter().any(|u| u.contains("/quota/")),
        "deleting removes the files"
    );
}

#[wasm_bindgen_test]
async fn keeping_a_model_again_writes_only_the_listing() {
    let store = Store::open().await.unwrap();
    watch_puts(None);
    store
        .keep(&trained("again"), "again", &model(6))
        .await
        .unwrap();
    assert_eq!(puts(), 4, "three files and the listing");
    watch_puts(None);
    store
        .keep(&trained("again"), "again", &model(6))
        .await
        .unwrap();
    assert_eq!(puts(), 1, "only the listing: the files are there");
    store.delete("trained|again").await.unwrap();
}
