//! The page's side of the engine: starts the worker, sends requests, and routes each event to
//! the callback of the request it answers.

use std::cell::RefCell;
use std::collections::HashMap;

use wasm_bindgen::prelude::*;
use wasm_bindgen::JsCast;

use crate::js::{error_text, get, message};
use crate::protocol::{Event, FromWorker, Request, ToWorker};

type Handler = Box<dyn FnMut(Event, Option<JsValue>)>;
/// Each request's handler, by request id.
type Handlers = HashMap<u64, Handler>;
/// Messages (with what they transfer) held until a worker listens.
type Queue = Vec<(JsValue, js_sys::Array)>;

/// More restarts than this within [`RESTART_WINDOW_MS`] and the page stops restarting the
/// engine (something kills it at once every time): it says so and asks for a reload.
const MAX_RESTARTS: usize = 3;
const RESTART_WINDOW_MS: f64 = 120_000.0;

struct Inner {
    worker: Option<web_sys::Worker>,
    /// Counts the workers started: events of an earlier (dead) one are ignored.
    generation: u64,
    /// Messages held until the worker says it listens.
    queued: Option<Queue>,
    next_id: u64,
    handlers: Handlers,
    /// Where events for no live request go (and start-up failures).
    fallback: Option<Handler>,
    /// Told, with the reason, once a dead engine was replaced by a fresh one.
    on_restart: Option<Box<dyn FnMut(String)>>,
    /// When the engine died lately (ms since the epoch).
    deaths: Vec<f64>,
    /// The WebGPU engine while it starts beside the CPU-only one ([`spawn_standby`]).
    standby: Option<Standby>,
    /// Counts the standby engines started: events of a dropped one are ignored.
    standby_generation: u64,
    /// Told when the last request in flight ends ([`idle`]).
    on_idle: Option<Box<dyn FnMut()>>,
}

/// An engine started beside the running one, to take over from it ([`adopt_standby`]): its
/// requests have their own handlers until then.
struct Standby {
    worker: web_sys::Worker,
    /// Messages held until it says it listens.
    queued: Option<Queue>,
    handlers: Handlers,
    /// Told, with the reason, if it dies before it takes over.
    on_lost: Option<Box<dyn FnOnce(String)>>,
}

thread_local! {
    static CLIENT: RefCell<Inner> = RefCell::new(Inner {
        worker: None,
        generation: 0,
        queued: Some(Vec::new()),
        next_id: 1,
        handlers: HashMap::new(),
        fallback: None,
        on_restart: None,
        deaths: Vec::new(),
        standby: None,
        standby_generation: 0,
        on_idle: None,
    });
}

thread_local! {
    /// The running engine's script: the CPU-only build until a WebGPU engine took over.
    static WORKER_URL: RefCell<&'static str> = const { RefCell::new(CPU_WORKER) };
}

/// The engine with WebGPU (and its CPU backend, for a browser whose GPU fails later).
const GPU_WORKER: &str = "./engine_loader.js?engine=worker";
/// The engine for the CPU only (`worker_cpu`: no WebGPU stack, a third of the download). Every
/// page starts on it: the first result needs no more than it, and where the browser offers
/// WebGPU the page starts the WebGPU engine beside it ([`spawn_standby`]), which takes over
/// once it runs ([`adopt_standby`]).
const CPU_WORKER: &str = "./engine_loader.js?engine=worker_cpu";

/// URL of the worker script, next to the page.
fn worker_url() -> &'static str {
    WORKER_URL.with(|u| *u.borrow())
}

/// Whether the running engine is the WebGPU build (it took over from the CPU-only one).
pub fn on_webgpu_build() -> bool {
    worker_url() == GPU_WORKER
}

fn dispatch(id: u64, event: Event, payload: Option<JsValue>) {
    let finished = matches!(event, Event::Done | Event::Error { .. });
    if let Some((event, payload)) = call(running_handlers, id, event, payload) {
        unrouted(event, payload);
    }
    if finished {
        tell_if_idle();
    }
}

fn running_handlers(c: &mut Inner) -> Option<&mut Handlers> {
    Some(&mut c.handlers)
}

fn standby_handlers(c: &mut Inner) -> Option<&mut Handlers> {
    c.standby.as_mut().map(|s| &mut s.handlers)
}

/// Gives an event to the handler of request `id` in `handlers` (taken out while it runs: a
/// handler may send requests itself), kept until the request's last event; the event back if
/// no handler has that id.
fn call(
    handlers: fn(&mut Inner) -> Option<&mut Handlers>,
    id: u64,
    event: Event,
    payload: Option<JsValue>,
) -> Option<(Event, Option<JsValue>)> {
    let finished = matches!(event, Event::Done | Event::Error { .. });
    let Some(mut h) = CLIENT.with(|c| handlers(&mut c.borrow_mut())?.remove(&id)) else {
        return Some((event, payload));
    };
    h(event, payload);
    if !finished {
        CLIENT.with(|c| {
            if let Some(map) = handlers(&mut c.borrow_mut()) {
                map.entry(id).or_insert(h);
            }
        });
    }
    None
}

/// Whether the running engine has no request in flight (its answers all came, or it died and
/// they ended with the reason).
pub fn idle() -> bool {
    CLIENT.with(|c| c.borrow().handlers.is_empty())
}

/// Calls `f` each time the last request in flight ends.
pub fn set_on_idle(f: impl FnMut() + 'static) {
    CLIENT.with(|c| c.borrow_mut().on_idle = Some(Box::new(f)));
}

fn tell_if_idle() {
    if !idle() {
        return;
    }
    // Taken out while it runs: it may send requests (and end up here again).
    let hook = CLIENT.with(|c| c.borrow_mut().on_idle.take());
    if let Some(mut f) = hook {
        f();
        CLIENT.with(|c| {
            c.borrow_mut().on_idle.get_or_insert(f);
        });
    }
}

fn unrouted(event: Event, payload: Option<JsValue>) {
    let fallback = CLIENT.with(|c| c.borrow_mut().fallback.take());
    if let Some(mut f) = fallback {
        f(event, payload);
        CLIENT.with(|c| {
            c.borrow_mut().fallback.get_or_insert(f);
        });
    }
}

/// Sends what was queued before the running worker listened.
fn flush() {
    flush_with(|c| {
        let queued = c.queued.take().unwrap_or_default();
        c.worker.clone().map(|w| (w, queued))
    });
}

/// Sends what was queued before the standby worker listened.
fn flush_standby() {
    flush_with(|c| {
        let s = c.standby.as_mut()?;
        Some((s.worker.clone(), s.queued.take().unwrap_or_default()))
    });
}

/// Sends the messages `take` takes out of a queue (the queue then stays empty: the worker
/// listens) to its worker.
fn flush_with(take: impl FnOnce(&mut Inner) -> Option<(web_sys::Worker, Queue)>) {
    if let Some((w, queued)) = CLIENT.with(|c| take(&mut c.borrow_mut())) {
        for (msg, transfer) in queued {
            let _ = w.post_message_with_transfer(&msg, &transfer);
        }
    }
}

/// Whether `generation` is the worker now running (a dead one's late events are dropped).
fn is_current(generation: u64) -> bool {
    CLIENT.with(|c| c.borrow().generation == generation)
}

/// An engine's message: the event (JSON) and the bytes beside it.
fn read(e: &web_sys::MessageEvent) -> (serde_json::Result<FromWorker>, Option<JsValue>) {
    let data = e.data();
    let json = get(&data, "json")
        .and_then(|j| j.as_string())
        .unwrap_or_default();
    (serde_json::from_str(&json), get(&data, "payload"))
}

/// Starts a worker from `url`.
fn new_worker(url: &str) -> Result<web_sys::Worker, String> {
    let opts = web_sys::WorkerOptions::new();
    opts.set_type(web_sys::WorkerType::Classic);
    web_sys::Worker::new_with_options(url, &opts).map_err(|e| error_text(&e))
}

/// Starts worker number `generation` and routes its events.
fn spawn(generation: u64) -> Result<web_sys::Worker, String> {
    let worker = new_worker(worker_url())?;
    route(&worker, generation);
    Ok(worker)
}

/// Routes the events of `worker`, the engine number `generation`, to the requests they answer.
fn route(worker: &web_sys::Worker, generation: u64) {
    listen(
        worker,
        move || is_current(generation),
        flush,
        move |reason| died(generation, reason),
        dispatch,
        |err| {
            let message = format!("bad message from the engine: {err}");
            dispatch(0, Event::Error { message }, None)
        },
        "the engine's script failed",
    );
}

/// Listens to `worker` while `alive()`: `Ready` sends what waited for it (`flush`), a crash
/// (its panic hook's message, its loader's, or an uncaught error: `failed` when that has no
/// message) goes to `lost`, an unreadable message to `unreadable`, and every other event to
/// `deliver`.
fn listen(
    worker: &web_sys::Worker,
    alive: impl Fn() -> bool + Clone + 'static,
    flush: fn(),
    lost: impl Fn(String) + Clone + 'static,
    deliver: fn(u64, Event, Option<JsValue>),
    unreadable: impl Fn(serde_json::Error) + 'static,
    failed: &'static str,
) {
    let (alive_too, lost_too) = (alive.clone(), lost.clone());
    let on_message =
        Closure::<dyn Fn(web_sys::MessageEvent)>::new(move |e: web_sys::MessageEvent| {
            if !alive() {
                return;
            }
            let (message, payload) = read(&e);
            match message {
                Ok(FromWorker {
                    event: Event::Ready,
                    ..
                }) => flush(),
                Ok(FromWorker {
                    event: Event::Crashed { message },
                    ..
                }) => lost(message),
                Ok(msg) => deliver(msg.id, msg.event, payload),
                Err(err) => unreadable(err),
            }
        });
    worker.set_onmessage(Some(on_message.as_ref().unchecked_ref()));
    // Kept for the page's life: a closure must not be dropped while it runs, and a dead
    // worker's handlers are unset instead. A few per restart, and restarts are bounded.
    on_message.forget();
    let on_error = Closure::<dyn Fn(web_sys::ErrorEvent)>::new(move |e: web_sys::ErrorEvent| {
        // The engine's uncaught exception (a trap) must not show as the page's own.
        e.prevent_default();
        if alive_too() {
            lost_too(match e.message() {
                m if m.is_empty() => failed.to_string(),
                m => m,
            });
        }
    });
    worker.set_onerror(Some(on_error.as_ref().unchecked_ref()));
    on_error.forget();
}

/// Worker `generation` died (a panic or a trap): it is stopped, a fresh one starts, every
/// request it had fails with the reason, and the page is told so that it can restore what the
/// engine held. After [`MAX_RESTARTS`] deaths in [`RESTART_WINDOW_MS`] no worker starts.
fn died(generation: u64, reason: String) {
    if !is_current(generation) {
        return;
    }
    let now = js_sys::Date::now();
    let (old, give_up) = CLIENT.with(|c| {
        let mut c = c.borrow_mut();
        c.deaths.retain(|t| now - t < RESTART_WINDOW_MS);
        c.deaths.push(now);
        c.generation += 1;
        c.queued = Some(Vec::new());
        (c.worker.take(), c.deaths.len() > MAX_RESTARTS)
    });
    if let Some(old) = old {
        old.set_onmessage(None);
        old.set_onerror(None);
        old.terminate();
    }
    web_sys::console::warn_1(&format!("the engine stopped: {reason}").into());
    let started = if give_up {
        Err(format!(
            "the engine stopped {} times in {} minutes (last: {reason}); reload the page",
            MAX_RESTARTS + 1,
            RESTART_WINDOW_MS / 60_000.0
        ))
    } else {
        let generation = CLIENT.with(|c| c.borrow().generation);
        spawn(generation)
            .map_err(|e| format!("the engine stopped ({reason}) and could not be restarted: {e}"))
    };
    let restarted = started.is_ok();
    match started {
        Ok(worker) => CLIENT.with(|c| c.borrow_mut().worker = Some(worker)),
        Err(message) => unrouted(Event::Error { message }, None),
    }
    // What was running is lost with the worker: each request ends with the reason, after the
    // page was told (so that their handlers know a restart happened, and may send again).
    let pending: Vec<u64> = CLIENT.with(|c| c.borrow().handlers.keys().copied().collect());
    if restarted {
        let hook = CLIENT.with(|c| c.borrow_mut().on_restart.take());
        if let Some(mut f) = hook {
            f(reason.clone());
            CLIENT.with(|c| {
                c.borrow_mut().on_restart.get_or_insert(f);
            });
        }
    }
    let message = if restarted {
        format!("the engine stopped ({reason}) and was restarted: try again")
    } else {
        format!("the engine stopped ({reason})")
    };
    for id in pending {
        dispatch(
            id,
            Event::Error {
                message: message.clone(),
            },
            None,
        );
    }
}

/// Starts the engine; `on_unrouted` receives events of no live request and worker failures,
/// `on_restart` the reason each time a dead worker was replaced by a fresh one (which holds
/// no model: the page reloads them), `on_probed` whether the browser offers a WebGPU adapter
/// (asked as the engine itself asks it, [`crate::probe::probe`]), once it answered.
/// The engine started is the CPU-only build: where WebGPU is offered and wanted, the page
/// starts the WebGPU engine beside it ([`spawn_standby`]).
pub fn start(
    on_unrouted: impl FnMut(Event, Option<JsValue>) + 'static,
    on_restart: impl FnMut(String) + 'static,
    on_probed: impl FnOnce(bool) + 'static,
) {
    CLIENT.with(|c| {
        let mut c = c.borrow_mut();
        c.fallback = Some(Box::new(on_unrouted));
        c.on_restart = Some(Box::new(on_restart));
    });
    let generation = CLIENT.with(|c| c.borrow().generation);
    match spawn(generation) {
        Ok(worker) => CLIENT.with(|c| c.borrow_mut().worker = Some(worker)),
        Err(e) => unrouted(
            Event::Error {
                message: format!("could not start the engine worker: {e}"),
            },
            None,
        ),
    }
    wasm_bindgen_futures::spawn_local(async move {
        let offered = matches!(
            crate::probe::probe().await,
            crate::device::Backend::WebGpu { .. }
        );
        on_probed(offered);
    });
}

/// Starts the WebGPU engine beside the running one; `on_lost` is told the reason if it dies
/// before [`adopt_standby`]. A standby already starting is dropped first.
pub fn spawn_standby(on_lost: impl FnOnce(String) + 'static) -> Result<(), String> {
    drop_standby();
    let worker = new_worker(GPU_WORKER)?;
    let token = CLIENT.with(|c| {
        let mut c = c.borrow_mut();
        c.standby_generation += 1;
        c.standby = Some(Standby {
            worker: worker.clone(),
            queued: Some(Vec::new()),
            handlers: HashMap::new(),
            on_lost: Some(Box::new(on_lost)),
        });
        c.standby_generation
    });
    listen(
        &worker,
        move || CLIENT.with(|c| c.borrow().standby_generation == token),
        flush_standby,
        standby_lost,
        standby_dispatch,
        |err| standby_lost(format!("bad message from the WebGPU engine: {err}")),
        "the WebGPU engine's script failed",
    );
    Ok(())
}

/// Whether a standby engine is starting or waiting to take over.
pub fn has_standby() -> bool {
    CLIENT.with(|c| c.borrow().standby.is_some())
}

/// Stops the standby engine, if any (its requests end unanswered).
pub fn drop_standby() {
    let old = CLIENT.with(|c| {
        let mut c = c.borrow_mut();
        c.standby_generation += 1;
        c.standby.take()
    });
    if let Some(old) = old {
        old.worker.set_onmessage(None);
        old.worker.set_onerror(None);
        old.worker.terminate();
    }
}

/// An event of the standby engine: to its request's handler (one of a dropped request is
/// dropped).
fn standby_dispatch(id: u64, event: Event, payload: Option<JsValue>) {
    let _ = call(standby_handlers, id, event, payload);
}

/// The standby engine died: it is stopped and whoever started it is told why.
fn standby_lost(reason: String) {
    let on_lost = CLIENT.with(|c| {
        c.borrow_mut()
            .standby
            .as_mut()
            .and_then(|s| s.on_lost.take())
    });
    drop_standby();
    web_sys::console::warn_1(&format!("the WebGPU engine stopped: {reason}").into());
    if let Some(f) = on_lost {
        f(reason);
    }
}

/// Sends a request to the standby engine (held until it listens); `on_event` gets its events.
pub fn send_to_standby(
    request: Request,
    on_event: impl FnMut(Event, Option<JsValue>) + 'static,
) -> Result<(), String> {
    let id = CLIENT.with(|c| {
        let mut c = c.borrow_mut();
        let id = c.next_id;
        c.next_id += 1;
        id
    });
    let json = serde_json::to_string(&ToWorker::Request {
        id,
        request: Box::new(request),
    })
    .map_err(|e| e.to_string())?;
    let msg = message(&json, None);
    let worker = CLIENT.with(|c| {
        let mut c = c.borrow_mut();
        let s = c.standby.as_mut()?;
        s.handlers.insert(id, Box::new(on_event));
        match s.queued.as_mut() {
            Some(q) => {
                q.push((msg.clone(), js_sys::Array::new()));
                Some(None)
            }
            None => Some(Some(s.worker.clone())),
        }
    });
    match worker {
        None => Err("the WebGPU engine is not running".into()),
        Some(None) => Ok(()),
        Some(Some(w)) => w
            .post_message(&msg)
            .map_err(|e| format!("could not reach the WebGPU engine: {}", error_text(&e))),
    }
}

/// The standby engine takes over: the running engine stops (the caller checked that it is
/// [`idle`], or accepts losing what it holds), requests go to the standby from now on, and a
/// restart after a death starts the WebGPU build. False when there is no standby, or it has not
/// said yet that it listens.
pub fn adopt_standby() -> bool {
    let ready = CLIENT.with(|c| {
        c.borrow()
            .standby
            .as_ref()
            .is_some_and(|s| s.queued.is_none())
    });
    let Some(standby) = ready
        .then(|| CLIENT.with(|c| c.borrow_mut().standby.take()))
        .flatten()
    else {
        return false;
    };
    let (old, generation, pending) = CLIENT.with(|c| {
        let mut c = c.borrow_mut();
        c.standby_generation += 1;
        c.generation += 1;
        c.queued = None;
        let pending: Vec<u64> = c.handlers.keys().copied().collect();
        c.handlers.extend(standby.handlers);
        (
            c.worker.replace(standby.worker.clone()),
            c.generation,
            pending,
        )
    });
    WORKER_URL.with(|u| *u.borrow_mut() = GPU_WORKER);
    route(&standby.worker, generation);
    if let Some(old) = old {
        old.set_onmessage(None);
        old.set_onerror(None);
        old.terminate();
    }
    // Requests the stopped engine still had (none when the caller waited for it to be idle).
    for id in pending {
        dispatch(
            id,
            Event::Error {
                message: "the engine was replaced by the WebGPU engine: try again".into(),
            },
            None,
        );
    }
    true
}

/// Posts a message to the worker, or holds it until the worker listens.
fn post(to_worker: &ToWorker, payload: Option<&JsValue>) -> Result<(), String> {
    let json = serde_json::to_string(to_worker).map_err(|e| e.to_string())?;
    let msg = message(&json, payload);
    // Bytes move to the worker instead of being copied.
    let transfer = js_sys::Array::new();
    if let Some(p) = payload.filter(|p| p.is_instance_of::<js_sys::ArrayBuffer>()) {
        transfer.push(p);
    }
    let held = CLIENT.with(|c| match c.borrow_mut().queued.as_mut() {
        Some(q) => {
            q.push((msg.clone(), transfer.clone()));
            true
        }
        None => false,
    });
    if held {
        return Ok(());
    }
    let worker = CLIENT
        .with(|c| c.borrow().worker.clone())
        .ok_or("the engine is not running")?;
    worker
        .post_message_with_transfer(&msg, &transfer)
        .map_err(|e| format!("could not reach the engine: {}", error_text(&e)))
}

/// Sends a request; `on_event` gets its events until (and including) `Done` or `Error`.
/// Returns the request id (for [`cancel`]).
pub fn send(
    request: Request,
    payload: Option<JsValue>,
    on_event: impl FnMut(Event, Option<JsValue>) + 'static,
) -> u64 {
    let id = CLIENT.with(|c| {
        let mut c = c.borrow_mut();
        let id = c.next_id;
        c.next_id += 1;
        c.handlers.insert(id, Box::new(on_event));
        id
    });
    if let Err(message) = post(
        &ToWorker::Request {
            id,
            request: Box::new(request),
        },
        payload.as_ref(),
    ) {
        dispatch(id, Event::Error { message }, None);
    }
    id
}

/// Asks the engine to stop request `id` at its next step (it answers with the request's own
/// events: nothing to wait for here).
pub fn cancel(id: u64) {
    if let Err(e) = post(&ToWorker::Cancel { target: id }, None) {
        web_sys::console::warn_1(&format!("cancel: {e}").into());
    }
}
