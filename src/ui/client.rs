//! The page's side of the engine: starts the worker, sends requests, and routes each event to
//! the callback of the request it answers.

use std::cell::RefCell;
use std::collections::HashMap;

use wasm_bindgen::prelude::*;
use wasm_bindgen::JsCast;

use crate::js::{error_text, get, message};
use crate::protocol::{Event, FromWorker, Request, ToWorker};

type Handler = Box<dyn FnMut(Event, Option<JsValue>)>;

struct Inner {
    worker: Option<web_sys::Worker>,
    /// Messages held until the worker says it listens.
    queued: Option<Vec<(JsValue, js_sys::Array)>>,
    next_id: u64,
    handlers: HashMap<u64, Handler>,
    /// Where events for no live request go (and start-up failures).
    fallback: Option<Handler>,
}

thread_local! {
    static CLIENT: RefCell<Inner> = RefCell::new(Inner { worker: None, queued: Some(Vec::new()), next_id: 1, handlers: HashMap::new(), fallback: None });
}

/// URL of the worker script, next to the page.
fn worker_url() -> String {
    "./worker_loader.js".to_string()
}

fn dispatch(id: u64, event: Event, payload: Option<JsValue>) {
    let finished = matches!(event, Event::Done | Event::Error { .. });
    // Taken out while it runs: a handler may send requests itself.
    let handler = CLIENT.with(|c| c.borrow_mut().handlers.remove(&id));
    match handler {
        Some(mut h) => {
            h(event, payload);
            if !finished {
                CLIENT.with(|c| {
                    c.borrow_mut().handlers.entry(id).or_insert(h);
                });
            }
        }
        None => {
            let fallback = CLIENT.with(|c| c.borrow_mut().fallback.take());
            if let Some(mut f) = fallback {
                f(event, payload);
                CLIENT.with(|c| {
                    c.borrow_mut().fallback.get_or_insert(f);
                });
            }
        }
    }
}

/// Sends what was queued before the worker listened.
fn flush() {
    let (worker, queued) = CLIENT.with(|c| {
        let mut c = c.borrow_mut();
        (c.worker.clone(), c.queued.take().unwrap_or_default())
    });
    if let Some(w) = worker {
        for (msg, transfer) in queued {
            let _ = w.post_message_with_transfer(&msg, &transfer);
        }
    }
}

/// Starts the worker; `on_unrouted` receives events of no live request and worker failures.
pub fn start(on_unrouted: impl FnMut(Event, Option<JsValue>) + 'static) -> Result<(), String> {
    let opts = web_sys::WorkerOptions::new();
    opts.set_type(web_sys::WorkerType::Classic);
    let worker =
        web_sys::Worker::new_with_options(&worker_url(), &opts).map_err(|e| error_text(&e))?;
    let on_message = Closure::<dyn Fn(web_sys::MessageEvent)>::new(|e: web_sys::MessageEvent| {
        let data = e.data();
        let json = get(&data, "json")
            .and_then(|j| j.as_string())
            .unwrap_or_default();
        let payload = get(&data, "payload");
        match serde_json::from_str::<FromWorker>(&json) {
            Ok(FromWorker {
                event: Event::Ready,
                ..
            }) => flush(),
            Ok(msg) => dispatch(msg.id, msg.event, payload),
            Err(err) => dispatch(
                0,
                Event::Error {
                    message: format!("bad message from the engine: {err}"),
                },
                None,
            ),
        }
    });
    worker.set_onmessage(Some(on_message.as_ref().unchecked_ref()));
    on_message.forget();
    let on_error = Closure::<dyn Fn(web_sys::ErrorEvent)>::new(|e: web_sys::ErrorEvent| {
        let message = format!("the engine stopped: {}", e.message());
        // Every pending request fails with the reason.
        let ids: Vec<u64> = CLIENT.with(|c| c.borrow().handlers.keys().copied().collect());
        for id in ids {
            dispatch(
                id,
                Event::Error {
                    message: message.clone(),
                },
                None,
            );
        }
        dispatch(0, Event::Error { message }, None);
    });
    worker.set_onerror(Some(on_error.as_ref().unchecked_ref()));
    on_error.forget();
    CLIENT.with(|c| {
        let mut c = c.borrow_mut();
        c.worker = Some(worker);
        c.fallback = Some(Box::new(on_unrouted));
    });
    Ok(())
}

/// Posts a message to the worker, or holds it until the worker listens.
fn post(to_worker: &ToWorker, payload: Option<&JsValue>) -> Result<(), String> {
    let json = serde_json::to_string(to_worker).map_err(|e| e.to_string())?;
    let worker = CLIENT
        .with(|c| c.borrow().worker.clone())
        .ok_or("the engine is not running")?;
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
    if let Err(message) = post(&ToWorker::Request { id, request }, payload.as_ref()) {
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
