//! The engine in a Web Worker: it owns the device and the models and answers the page's
//! requests (see `protocol`), so downloads, feature extraction and training never block the page.
//!
//! This file is the message loop: it decodes a request, hands it to the handler of its concern
//! (`load`, `infer`, `prompt`, `train`), and turns the handler's result into `Done` or `Error`:
//! the one place an engine error becomes text. The engine's state is in `state`.

mod adapt;
mod helpers;
mod infer;
mod load;
mod prompt;
mod state;
mod train;

use std::cell::RefCell;
use std::collections::HashSet;

use wasm_bindgen::prelude::*;
use wasm_bindgen::JsCast;

use crate::error::Error;
use crate::js::message;
use crate::protocol::{Crash, Event, FromWorker, Request, ToWorker};

thread_local! {
    static CANCELLED: RefCell<HashSet<u64>> = RefCell::new(HashSet::new());
}

/// The channel back to the page for one request.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Reply {
    id: u64,
}

impl Reply {
    /// Sends an event about this request.
    pub fn send(&self, event: Event) {
        post(self.id, event, None);
    }

    /// Sends an event with bytes beside it (transferred, not copied).
    pub fn send_with(&self, event: Event, payload: &JsValue) {
        post(self.id, event, Some(payload));
    }

    /// Whether the page asked to stop this request.
    pub fn cancelled(&self) -> bool {
        CANCELLED.with(|c| c.borrow().contains(&self.id))
    }
}

fn post(id: u64, event: Event, payload: Option<&JsValue>) {
    let json = serde_json::to_string(&FromWorker { id, event }).unwrap_or_else(|e| {
        format!("{{\"id\":{id},\"event\":{{\"Error\":{{\"message\":\"{e}\"}}}}}}")
    });
    let scope: web_sys::DedicatedWorkerGlobalScope = js_sys::global().unchecked_into();
    let _ = scope.post_message(&message(&json, payload));
}

/// Reports a panic to the console and to the page, which starts another worker: after a panic
/// this module's state cannot be trusted (and with `panic = abort` it traps next).
fn report_panics() {
    std::panic::set_hook(Box::new(|info| {
        console_error_panic_hook::hook(info);
        post(
            0,
            Event::Crashed {
                message: info.to_string(),
            },
            None,
        );
    }));
}

/// Starts the worker: answers every message on its own task.
pub fn run() {
    report_panics();
    let scope: web_sys::DedicatedWorkerGlobalScope = js_sys::global().unchecked_into();
    let on_message = Closure::<dyn Fn(web_sys::MessageEvent)>::new(|e: web_sys::MessageEvent| {
        let data = e.data();
        let json = crate::js::get(&data, "json")
            .and_then(|j| j.as_string())
            .unwrap_or_default();
        let payload = crate::js::get(&data, "payload");
        match serde_json::from_str(&json) {
            Ok(ToWorker::Cancel { target }) => {
                CANCELLED.with(|c| c.borrow_mut().insert(target));
            }
            Ok(ToWorker::Request { id, request }) => {
                wasm_bindgen_futures::spawn_local(async move {
                    match handle(Reply { id }, *request, payload).await {
                        Ok(()) => post(id, Event::Done, None),
                        Err(e) => post(
                            id,
                            Event::Error {
                                message: e.to_string(),
                            },
                            None,
                        ),
                    }
                    CANCELLED.with(|c| c.borrow_mut().remove(&id));
                });
            }
            Err(err) => post(
                0,
                Event::Error {
                    message: format!("bad request: {err}"),
                },
                None,
            ),
        }
    });
    scope.set_onmessage(Some(on_message.as_ref().unchecked_ref()));
    on_message.forget();
    // Messages posted before the handler existed were dropped: the page waits for this.
    post(0, Event::Ready, None);
}

/// Routes a request to the handler of its concern.
async fn handle(reply: Reply, request: Request, payload: Option<JsValue>) -> Result<(), Error> {
    match request {
        Request::Start {
            backend,
            workers,
            precision,
        } => load::start(reply, backend, workers, precision).await,
        Request::Load { slot, source } => load::load(reply, slot, source, payload).await,
        Request::ListStored => load::list_stored(reply).await,
        Request::DeleteStored { key } => load::delete_stored(reply, &key).await,
        Request::Classify { texts } => infer::classify(reply, texts).await,
        Request::Tag { texts } => infer::tag(reply, texts).await,
        Request::ZeroShot { texts, spec } => infer::zero_shot(reply, texts, &spec).await,
        Request::FillMask { text, k } => infer::fill_mask(reply, &text, k).await,
        Request::Similarity {
            sentences,
            queries,
            top_k,
        } => infer::similarity(reply, sentences, queries, top_k).await,
        Request::Generate { prompt, config } => prompt::generate(reply, &prompt, &config).await,
        Request::ScoreLabels { text, scorer } => prompt::score(reply, &text, scorer).await,
        Request::SampleExamples {
            per_class,
            seed,
            options,
        } => prompt::sample_examples(reply, per_class, seed, &options, payload).await,
        Request::EvaluatePrompt {
            scorer,
            options,
            text_column,
            label_column,
        } => {
            let columns = (text_column.as_deref(), label_column.as_deref());
            prompt::evaluate(reply, scorer, &options, columns, payload).await
        }
        Request::ParseTable {
            name,
            options,
            test,
        } => train::parse_table(reply, name, &options, test, payload).await,
        Request::Train {
            text_column,
            label_column,
            test_fraction,
            split_seed,
            separate_test,
            args,
        } => {
            let plan = train::Plan {
                text_column,
                label_column,
                test_fraction,
                split_seed,
                separate_test,
            };
            train::train(reply, plan, args, payload).await
        }
        Request::ListRuns => train::list_runs(reply).await,
        Request::PreTrain {
            text_column,
            args,
            probability,
            held_out,
        } => adapt::pre_train_base(reply, text_column, args, probability, held_out, payload).await,
        Request::UseAdapted => adapt::use_adapted(reply).await,
        Request::ExportAdapted => adapt::export_adapted(reply).await,
        Request::DeleteRun { id } => train::delete_run(reply, &id).await,
        Request::ResumeRun { id } => train::resume(reply, &id).await,
        Request::ExportScript {
            text_column,
            label_column,
            test_fraction,
            split_seed,
            separate_test,
            args,
        } => {
            let plan = train::Plan {
                text_column,
                label_column,
                test_fraction,
                split_seed,
                separate_test,
            };
            train::export_script(reply, plan, args).await
        }
        Request::ZeroShotBaseline {
            text_column,
            label_column,
            test_fraction,
            split_seed,
            separate_test,
            template,
        } => {
            let plan = train::Plan {
                text_column,
                label_column,
                test_fraction,
                split_seed,
                separate_test,
            };
            train::zero_shot_baseline(reply, plan, template).await
        }
        Request::ExportTrained { adapter } => train::export(reply, adapter).await,
        Request::ApplyAdapter => train::apply_adapter(reply, payload).await,
        Request::UseTrained { name } => train::use_trained(reply, &name).await,
        Request::Replicate {
            version,
            build,
            rows,
            max_length,
            stored,
            files,
        } => {
            let model = helpers::Replicated {
                version,
                build,
                rows,
                max_length,
            };
            helpers::replicate(model, stored, &files, payload).await
        }
        Request::Rows { version, texts } => helpers::rows(reply, version, texts).await,
        Request::Crash { how } => crash(how),
        Request::CrashHelper { how } => {
            if !cfg!(debug_assertions) {
                return Err(Error::usage("this build takes no test crashes"));
            }
            helpers::crash_first(how).await
        }
        Request::CrashOnNextRows { how } => {
            if !cfg!(debug_assertions) {
                return Err(Error::usage("this build takes no test crashes"));
            }
            helpers::arm_crash(how);
            Ok(())
        }
    }
}

/// Fails on purpose, in a debug (test) build only.
pub(crate) fn crash(how: Crash) -> Result<(), Error> {
    if !cfg!(debug_assertions) {
        return Err(Error::usage("this build takes no test crashes"));
    }
    match how {
        Crash::Panic => panic!("a crash asked for by a test"),
        Crash::Abort => std::process::abort(),
    }
}

/// The bytes of a request's payload (a CSV the page sent), or an error saying what to choose.
async fn payload_bytes(payload: Option<JsValue>, what: &str) -> Result<Vec<u8>, Error> {
    let payload = payload.ok_or_else(|| Error::usage(what))?;
    crate::js::js_to_bytes(&payload).await.map_err(Error::Usage)
}
