//! One helper for the "send a request, show that it runs, show its error" pattern every box on
//! the pages repeats.

use std::cell::Cell;
use std::rc::Rc;

use leptos::prelude::*;
use wasm_bindgen::JsValue;

use crate::protocol::{Event, Request};

use super::client;

/// A kind of request a component makes, with its state: the request running (if any) and the
/// error of the last one. Copy, so event handlers take it by value.
#[derive(Clone, Copy)]
pub struct Call {
    /// The id of the request running, for [`Call::cancel`].
    running: RwSignal<Option<u64>>,
    error: RwSignal<Option<String>>,
}

impl Default for Call {
    fn default() -> Self {
        Self::new()
    }
}

impl Call {
    pub fn new() -> Self {
        Self::reporting_to(RwSignal::new(None))
    }

    /// A call whose errors show in `error` (several calls reporting in one place).
    pub fn reporting_to(error: RwSignal<Option<String>>) -> Self {
        Self {
            running: RwSignal::new(None),
            error,
        }
    }

    /// Where its errors show (for an [`ErrorBox`](super::components::ErrorBox)).
    pub fn error(self) -> RwSignal<Option<String>> {
        self.error
    }

    /// Whether a request runs (tracked).
    pub fn busy(self) -> bool {
        self.running.with(Option::is_some)
    }

    /// Shows `message` as this call's error.
    pub fn fail(self, message: impl Into<String>) {
        self.error.set(Some(message.into()));
    }

    pub fn clear_error(self) {
        self.error.set(None);
    }

    /// Asks the engine to stop the running request at its next step.
    pub fn cancel(self) {
        if let Some(id) = self.running.get_untracked() {
            client::cancel(id);
        }
    }

    /// Sends `request`: clears the error and marks the call busy until `Done` or `Error`; an
    /// error shows as this call's error; every other event goes to `on_event`.
    /// Returns the request id.
    pub fn send(
        self,
        request: Request,
        payload: Option<JsValue>,
        on_event: impl FnMut(Event, Option<JsValue>) + 'static,
    ) -> u64 {
        self.send_with(request, payload, on_event, |_| {})
    }

    /// Sends `request`, which answers with `Exported` and a file: offers the file as a download,
    /// then calls `saved` with its name (a failure shows as this call's error).
    pub fn download(self, request: Request, saved: impl FnOnce(String) + 'static) -> u64 {
        let mut saved = Some(saved);
        self.send(request, None, move |event, payload| {
            if let Event::Exported { file_name } = event {
                let result = payload
                    .ok_or_else(|| "the engine sent no file".to_string())
                    .and_then(|bytes| crate::ui::files::download(&file_name, &bytes));
                match result {
                    Ok(()) => {
                        if let Some(f) = saved.take() {
                            f(file_name)
                        }
                    }
                    Err(e) => self.fail(e),
                }
            }
        })
    }

    /// As [`Call::send`]; `on_error` runs before an error shows, and may reword it (or undo
    /// what the request had begun to show).
    pub fn send_with(
        self,
        request: Request,
        payload: Option<JsValue>,
        mut on_event: impl FnMut(Event, Option<JsValue>) + 'static,
        on_error: impl FnOnce(&mut String) + 'static,
    ) -> u64 {
        self.error.set(None);
        // The id is known once `client::send` returns; an engine that is not running answers
        // before that, and then the call never shows as busy.
        let own_id: Rc<Cell<Option<u64>>> = Rc::new(Cell::new(None));
        let ended = Rc::new(Cell::new(false));
        let mut on_error = Some(on_error);
        let running = self.running;
        let error = self.error;
        let (id_seen, ended_seen) = (own_id.clone(), ended.clone());
        let end = move || {
            ended_seen.set(true);
            // A later request of this call may have taken over: it stays busy.
            if id_seen.get().is_some() && running.get_untracked() == id_seen.get() {
                running.set(None);
            }
        };
        let id = client::send(request, payload, move |event, payload| match event {
            Event::Error { mut message } => {
                if let Some(f) = on_error.take() {
                    f(&mut message);
                }
                error.set(Some(message));
                end();
            }
            Event::Done => end(),
            other => on_event(other, payload),
        });
        own_id.set(Some(id));
        if !ended.get() {
            self.running.set(Some(id));
        }
        id
    }
}
