//! The engine's helpers in the browser: on the CPU, more engine workers (one per core, as memory
//! allows), started by this worker as its own workers. No shared memory is needed, so this works
//! on pages that are not cross-origin isolated (a widget in an iframe, most hosts). Each helper
//! is this same engine; it is sent a replica of the model (its files) once per version, then
//! batches of texts, and answers with rows (`pool::spread` hands the batches out).
//!
//! A helper that dies (a trap, a panic) is stopped and left out; its batch is redone here.
//! Helpers die with this worker, and a new `Start` replaces them.

use std::cell::{Cell, RefCell};
use std::collections::HashMap;
use std::rc::Rc;

use js_sys::{Array, Float32Array, Promise, Uint8Array};
use wasm_bindgen::prelude::*;
use wasm_bindgen::JsCast;
use wasm_bindgen_futures::JsFuture;

use super::state;
use super::{payload_bytes, Reply};
use crate::data::Text;
use crate::error::Error;
use crate::hub::storage::Store;
use crate::hub::ModelFiles;
use crate::js::{error_text, get, message};
use crate::pool::{Build, Built, Files, Helpers, LocalFuture, Replica, Rows, RowsOf};
use crate::protocol::{BackendChoice, Event, FromWorker, Request, ToWorker};

/// Most engine workers started, whatever the core count says.
const MAX_WORKERS: usize = 8;

/// A request sent to a helper and not answered yet.
struct Pending {
    resolve: js_sys::Function,
    reject: js_sys::Function,
    /// The rows it sent before `Done`.
    rows: JsValue,
}

struct Helper {
    worker: web_sys::Worker,
    /// Messages held until it listens.
    queued: Option<Vec<(JsValue, Array)>>,
    /// The replica it holds (or is loading), with the promise of its loading, and whether that
    /// promise resolved.
    holds: Option<(u64, Promise, bool)>,
    pending: HashMap<u64, Pending>,
    /// Why it stopped.
    dead: Option<String>,
}

thread_local! {
    static HELPERS: RefCell<Vec<Helper>> = const { RefCell::new(Vec::new()) };
    /// Counts the sets of helpers started: events of an earlier set are ignored.
    static GENERATION: Cell<u64> = const { Cell::new(0) };
    static NEXT_ID: Cell<u64> = const { Cell::new(1) };
    /// Batches the helpers computed (said on the console after a job).
    static SERVED: Cell<usize> = const { Cell::new(0) };
}

/// Batches the helpers computed since the last call.
pub fn served() -> usize {
    SERVED.with(|s| s.replace(0))
}

/// How many engine workers to run on the CPU: `asked`, or one per core (at most
/// [`MAX_WORKERS`]) and one per GB of memory the browser reports.
pub fn wanted(asked: Option<usize>) -> usize {
    if let Some(n) = asked {
        return n.clamp(1, MAX_WORKERS);
    }
    let cores = navigator_number("hardwareConcurrency").unwrap_or(1.0) as usize;
    let memory = device_memory_gb().map_or(usize::MAX, |gb| (gb as usize).max(1));
    cores.min(memory).clamp(1, MAX_WORKERS)
}

/// `navigator.deviceMemory` (GB, rounded down and capped at 8 by the browser), where it exists.
fn device_memory_gb() -> Option<f64> {
    navigator_number("deviceMemory")
}

/// A positive number the worker's `navigator` gives, where it has it.
fn navigator_number(name: &str) -> Option<f64> {
    let navigator = get(&js_sys::global(), "navigator")?;
    get(&navigator, name)
        .and_then(|v| v.as_f64())
        .filter(|v| *v > 0.0)
}

/// Stops every helper (the engine restarts on another backend).
pub fn stop() {
    GENERATION.with(|g| g.set(g.get() + 1));
    let old = HELPERS.with(|h| std::mem::take(&mut *h.borrow_mut()));
    for helper in old {
        helper.worker.set_onmessage(None);
        helper.worker.set_onerror(None);
        helper.worker.terminate();
        fail_all(helper.pending, "the engine restarted");
    }
}

/// Starts `count` helpers on the CPU; those that cannot start are left out (said on the
/// console). Returns how many started.
pub fn start(count: usize) -> usize {
    let generation = GENERATION.with(Cell::get);
    for i in 0..count {
        match spawn(generation, i) {
            Ok(worker) => {
                HELPERS.with(|h| {
                    h.borrow_mut().push(Helper {
                        worker,
                        queued: Some(Vec::new()),
                        holds: None,
                        pending: HashMap::new(),
                        dead: None,
                    })
                });
                let started = send(
                    i,
                    Request::Start {
                        backend: BackendChoice::Cpu,
                        workers: Some(1),
                        precision: Default::default(),
                    },
                    None,
                );
                wasm_bindgen_futures::spawn_local(async move {
                    if let Err(e) = JsFuture::from(started).await {
                        died(
                            generation,
                            i,
                            format!("it did not start: {}", error_text(&e)),
                        );
                    }
                });
            }
            Err(e) => {
                web_sys::console::warn_1(&format!("a helper engine did not start: {e}").into());
                break;
            }
        }
    }
    HELPERS.with(|h| h.borrow().len())
}

/// Helpers that can take work.
pub fn count() -> usize {
    HELPERS.with(|h| h.borrow().iter().filter(|x| x.dead.is_none()).count())
}

/// The URL of the script this worker runs (`self.location`), or the WebGPU build's next to it.
fn own_script() -> String {
    let global: JsValue = js_sys::global().into();
    get(&global, "location")
        .and_then(|l| get(&l, "href"))
        .and_then(|h| h.as_string())
        .unwrap_or_else(|| "./engine_loader.js?engine=worker".into())
}

fn spawn(generation: u64, i: usize) -> Result<web_sys::Worker, String> {
    let opts = web_sys::WorkerOptions::new();
    opts.set_type(web_sys::WorkerType::Classic);
    // This engine's own script (the WebGPU build or the CPU-only one: the same protocol either
    // way, and the one the browser has already downloaded).
    let worker =
        web_sys::Worker::new_with_options(&own_script(), &opts).map_err(|e| error_text(&e))?;
    let on_message =
        Closure::<dyn Fn(web_sys::MessageEvent)>::new(move |e: web_sys::MessageEvent| {
            if GENERATION.with(Cell::get) != generation {
                return;
            }
            let data = e.data();
            let json = get(&data, "json")
                .and_then(|j| j.as_string())
                .unwrap_or_default();
            let payload = get(&data, "payload").unwrap_or(JsValue::UNDEFINED);
            match serde_json::from_str::<FromWorker>(&json) {
                Ok(FromWorker {
                    event: Event::Ready,
                    ..
                }) => flush(i),
                Ok(FromWorker {
                    event: Event::Crashed { message },
                    ..
                }) => died(generation, i, message),
                Ok(FromWorker { id, event }) => answered(i, id, event, payload),
                Err(err) => died(generation, i, format!("bad message: {err}")),
            }
        });
    worker.set_onmessage(Some(on_message.as_ref().unchecked_ref()));
    on_message.forget();
    let on_error = Closure::<dyn Fn(web_sys::ErrorEvent)>::new(move |e: web_sys::ErrorEvent| {
        e.prevent_default();
        let reason = match e.message() {
            m if m.is_empty() => "its script failed".to_string(),
            m => m,
        };
        died(generation, i, reason);
    });
    worker.set_onerror(Some(on_error.as_ref().unchecked_ref()));
    on_error.forget();
    Ok(worker)
}

fn flush(i: usize) {
    HELPERS.with(|h| {
        let mut h = h.borrow_mut();
        if let Some(helper) = h.get_mut(i) {
            for (msg, transfer) in helper.queued.take().unwrap_or_default() {
                let _ = helper.worker.post_message_with_transfer(&msg, &transfer);
            }
        }
    });
}

/// An event from helper `i` about request `id`.
fn answered(i: usize, id: u64, event: Event, payload: JsValue) {
    HELPERS.with(|h| {
        let mut h = h.borrow_mut();
        let Some(helper) = h.get_mut(i) else { return };
        match event {
            Event::Rows { .. } => {
                if let Some(p) = helper.pending.get_mut(&id) {
                    p.rows = payload;
                }
            }
            Event::Done => {
                if let Some(p) = helper.pending.remove(&id) {
                    let _ = p.resolve.call1(&JsValue::NULL, &p.rows);
                }
            }
            Event::Error { message } => {
                if let Some(p) = helper.pending.remove(&id) {
                    let _ = p.reject.call1(&JsValue::NULL, &message.into());
                }
            }
            _ => {}
        }
    });
}

/// Helper `i` stopped: it is terminated and left out, and what it had fails with the reason.
fn died(generation: u64, i: usize, reason: String) {
    if GENERATION.with(Cell::get) != generation {
        return;
    }
    let pending = HELPERS.with(|h| {
        let mut h = h.borrow_mut();
        let helper = h.get_mut(i)?;
        if helper.dead.is_some() {
            return None;
        }
        helper.worker.set_onmessage(None);
        helper.worker.set_onerror(None);
        helper.worker.terminate();
        helper.dead = Some(reason.clone());
        helper.holds = None;
        Some(std::mem::take(&mut helper.pending))
    });
    if let Some(pending) = pending {
        web_sys::console::warn_1(&format!("helper engine {} stopped: {reason}", i + 1).into());
        fail_all(pending, &format!("a helper engine stopped: {reason}"));
    }
}

fn fail_all(pending: HashMap<u64, Pending>, reason: &str) {
    for (_, p) in pending {
        let _ = p.reject.call1(&JsValue::NULL, &reason.into());
    }
}

/// Sends a request to helper `i`: the promise resolves with the payload of its rows (or
/// undefined) at `Done`, and rejects with its error.
fn send(i: usize, request: Request, payload: Option<&JsValue>) -> Promise {
    let id = NEXT_ID.with(|n| {
        let id = n.get();
        n.set(id + 1);
        id
    });
    let mut slots = None;
    let promise = Promise::new(&mut |resolve, reject| slots = Some((resolve, reject)));
    let (resolve, reject) = slots.expect("the executor runs at once");
    let json = match serde_json::to_string(&ToWorker::Request {
        id,
        request: Box::new(request),
    }) {
        Ok(json) => json,
        Err(e) => {
            let _ = reject.call1(&JsValue::NULL, &e.to_string().into());
            return promise;
        }
    };
    let msg = message(&json, payload);
    let transfer = Array::new();
    if let Some(p) = payload.filter(|p| p.is_instance_of::<js_sys::ArrayBuffer>()) {
        transfer.push(p);
    }
    HELPERS.with(|h| {
        let mut h = h.borrow_mut();
        let Some(helper) = h.get_mut(i).filter(|x| x.dead.is_none()) else {
            let _ = reject.call1(&JsValue::NULL, &"the helper engine stopped".into());
            return;
        };
        helper.pending.insert(
            id,
            Pending {
                resolve,
                reject,
                rows: JsValue::UNDEFINED,
            },
        );
        match helper.queued.as_mut() {
            Some(q) => q.push((msg, transfer)),
            None => {
                if let Err(e) = helper.worker.post_message_with_transfer(&msg, &transfer) {
                    if let Some(p) = helper.pending.remove(&id) {
                        let _ = p.reject.call1(&JsValue::NULL, &e);
                    }
                }
            }
        }
    });
    promise
}

/// Tells the first running helper to fail when it is next asked for rows (debug builds:
/// tests of a helper dying mid-job).
pub async fn crash_first(how: crate::protocol::Crash) -> Result<(), Error> {
    let i = running(0).ok_or_else(|| Error::usage("there is no helper engine"))?;
    JsFuture::from(send(i, Request::CrashOnNextRows { how }, None))
        .await
        .map_err(|e| Error::usage(error_text(&e)))?;
    Ok(())
}

/// The index of the `n`th helper still running.
fn running(n: usize) -> Option<usize> {
    HELPERS.with(|h| {
        h.borrow()
            .iter()
            .enumerate()
            .filter(|(_, x)| x.dead.is_none())
            .nth(n)
            .map(|(i, _)| i)
    })
}

/// The replica's files, one after the other in one buffer (transferred, not copied).
fn packed(files: &ModelFiles) -> (Vec<(String, usize)>, JsValue) {
    let entries = files.entries();
    let total: usize = entries.iter().map(|(_, b)| b.len()).sum();
    let buffer = Uint8Array::new_with_length(total as u32);
    let mut at = 0u32;
    let mut index = Vec::with_capacity(entries.len());
    for (name, bytes) in entries {
        let end = at + bytes.len() as u32;
        buffer.subarray(at, end).copy_from(bytes);
        index.push((name.to_string(), bytes.len()));
        at = end;
    }
    (index, buffer.buffer().into())
}

/// The browser's helper workers, for `pool::spread`.
pub struct WorkerHelpers;

impl WorkerHelpers {
    /// Makes helper `i` hold `replica`: sends it unless it holds (or is loading) it already.
    /// Returns at once when it holds it: the caller's request goes out in the same turn, before
    /// this engine starts on a chunk of its own.
    async fn hold(i: usize, replica: &Replica) -> Result<(), Error> {
        let holds = HELPERS.with(|h| h.borrow().get(i).and_then(|x| x.holds.clone()));
        let loading = match holds {
            Some((version, _, true)) if version == replica.version => return Ok(()),
            Some((version, promise, false)) if version == replica.version => promise,
            _ => {
                let (stored, files, payload) = match &replica.files {
                    Files::Stored { key, .. } => (Some(key.clone()), Vec::new(), None),
                    Files::Bytes(files) => {
                        let (index, payload) = packed(files);
                        (None, index, Some(payload))
                    }
                };
                let promise = send(
                    i,
                    Request::Replicate {
                        version: replica.version,
                        build: replica.build.clone(),
                        rows: replica.rows,
                        max_length: replica.max_length,
                        stored,
                        files,
                    },
                    payload.as_ref(),
                );
                HELPERS.with(|h| {
                    if let Some(x) = h.borrow_mut().get_mut(i) {
                        x.holds = Some((replica.version, promise.clone(), false));
                    }
                });
                promise
            }
        };
        let loaded = JsFuture::from(loading).await;
        HELPERS.with(|h| {
            if let Some(x) = h.borrow_mut().get_mut(i) {
                match (&loaded, &mut x.holds) {
                    (Ok(_), Some((v, _, done))) if *v == replica.version => *done = true,
                    (Err(_), _) => x.holds = None,
                    _ => {}
                }
            }
        });
        loaded.map(|_| ()).map_err(|e| Error::usage(error_text(&e)))
    }
}

impl Helpers for WorkerHelpers {
    fn count(&self) -> usize {
        count()
    }

    /// The helpers whose copies of the model fit in the memory budget: a quarter of
    /// `navigator.deviceMemory` (2 GB where the browser does not tell), counting twice the
    /// weights per helper (its copy of the file while it builds the model) and the packed copies
    /// its products keep (up to `memory::PACKED_WEIGHTS_BUDGET`).
    fn usable(&self, replica: &Replica) -> usize {
        let budget = device_memory_gb().map_or(2e9, |gb| gb * 1e9 / 4.0);
        let weights = replica.files.weight_bytes();
        let packed = weights.min(crate::model::memory::PACKED_WEIGHTS_BUDGET);
        let per_helper = (2 * weights + packed).max(1) as f64;
        let fit = (budget / per_helper) as usize;
        let all = count();
        if fit < all {
            web_sys::console::info_1(
                &format!(
                    "{fit} of {all} helper engines used: a model of {:.0} MB each fits in the \
                     memory budget of {:.1} GB",
                    replica.files.weight_bytes() as f64 / 1e6,
                    budget / 1e9
                )
                .into(),
            );
        }
        all.min(fit)
    }

    fn rows<'a>(
        &'a self,
        n: usize,
        replica: &'a Rc<Replica>,
        texts: Vec<Text>,
    ) -> LocalFuture<'a, Result<Vec<f32>, Error>> {
        Box::pin(async move {
            let i = running(n).ok_or_else(|| Error::usage("the helper engine stopped"))?;
            Self::hold(i, replica).await?;
            let rows = send(
                i,
                Request::Rows {
                    version: replica.version,
                    texts: texts.iter().map(|t| t.to_string()).collect(),
                },
                None,
            );
            let buffer = JsFuture::from(rows)
                .await
                .map_err(|e| Error::usage(error_text(&e)))?;
            let buffer = buffer
                .dyn_into::<js_sys::ArrayBuffer>()
                .map_err(|_| Error::usage("a helper engine sent no rows"))?;
            SERVED.with(|s| s.set(s.get() + 1));
            Ok(Float32Array::new(&buffer).to_vec())
        })
    }
}

// The helper's side.

/// What a helper is asked to build.
pub struct Replicated {
    pub version: u64,
    pub build: Build,
    pub rows: RowsOf,
    pub max_length: usize,
}

/// Builds the model a replica describes, from browser storage (`stored`) or from the files in
/// the payload, and keeps it (the files are dropped once it is built).
pub async fn replicate(
    model: Replicated,
    stored: Option<String>,
    files: &[(String, usize)],
    payload: Option<JsValue>,
) -> Result<(), Error> {
    let compute = state::compute()?;
    let files = match stored {
        Some(key) => Store::open().await?.load(&key).await?.0,
        None => {
            let bytes = payload_bytes(payload, "a replica comes with its files").await?;
            let mut entries = Vec::with_capacity(files.len());
            let mut at = 0usize;
            for (name, size) in files {
                let end = at
                    .checked_add(*size)
                    .filter(|&e| e <= bytes.len())
                    .ok_or_else(|| Error::usage("a replica's files are shorter than announced"))?;
                entries.push((name.clone(), bytes[at..end].to_vec()));
                at = end;
            }
            ModelFiles::from_entries(entries)
        }
    };
    // The model held before goes first: two copies need not fit at once.
    state::update(|e| e.copy = None);
    let built = Built::build(
        model.version,
        &files,
        &model.build,
        model.rows,
        model.max_length,
        &compute.device,
    )
    .await?;
    state::update(|e| e.copy = Some(Rc::new(built)));
    Ok(())
}

thread_local! {
    /// How this helper fails at its next rows (debug builds: tests).
    static ARMED: Cell<Option<crate::protocol::Crash>> = const { Cell::new(None) };
}

/// Makes this helper fail when it is next asked for rows.
pub fn arm_crash(how: crate::protocol::Crash) {
    ARMED.with(|a| a.set(Some(how)));
}

/// The rows of `texts` from the kept replica `version`.
pub async fn rows(reply: Reply, version: u64, texts: Vec<String>) -> Result<(), Error> {
    if let Some(how) = ARMED.with(Cell::take) {
        super::crash(how)?;
    }
    let copy = state::need(|e| e.copy.clone(), "replica")?;
    if copy.version != version {
        return Err(Error::usage("this helper holds another model"));
    }
    let texts: Vec<Text> = texts.into_iter().map(Text::from).collect();
    let values = copy.rows(&texts).await?;
    let array = Float32Array::new_with_length(values.len() as u32);
    array.copy_from(&values);
    reply.send_with(Event::Rows { count: texts.len() }, &array.buffer().into());
    Ok(())
}
