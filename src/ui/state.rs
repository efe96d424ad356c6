//! State shared by the pages: the engine's backend, loaded models, the model source.

use crate::hub::check_url_template;
use leptos::prelude::*;

use crate::protocol::{
    Backend, BackendChoice, Event, ModelInfo, ModelSource, Request, Slot, StoredModel,
    HUB_URL_TEMPLATE,
};

use super::client;

#[derive(Clone, Copy)]
pub struct AppState {
    /// `None` while the engine starts.
    pub backend: RwSignal<Option<Backend>>,
    /// Engine workers computing (on the CPU, one per core as memory allows).
    pub workers: RwSignal<usize>,
    /// Engine workers asked for on the CPU (`?workers=N`, or the Models page); `None`: one per
    /// core, as memory allows.
    pub workers_choice: RwSignal<Option<usize>>,
    pub backend_choice: RwSignal<BackendChoice>,
    /// A failure of the engine itself (it could not start, or stopped too often).
    pub engine_error: RwSignal<Option<String>>,
    /// What happened when the engine stopped and was restarted, and what was reloaded.
    pub engine_notice: RwSignal<Option<String>>,
    /// How many times the engine was restarted (a request sent before a restart ends moot).
    pub restarts: RwSignal<u64>,
    /// Bumped once a restarted engine runs: pages that gave the engine something (a data file)
    /// watch it and give it again.
    pub restarted: RwSignal<u64>,
    /// Models are being reloaded after a restart (a death now skips reloading them again).
    restoring: RwSignal<bool>,
    pub classifier: RwSignal<Option<ModelInfo>>,
    pub fill_mask: RwSignal<Option<ModelInfo>>,
    pub language_model: RwSignal<Option<ModelInfo>>,
    pub embedder: RwSignal<Option<ModelInfo>>,
    pub base: RwSignal<Option<ModelInfo>>,
    /// Models kept in browser storage, downloaded or fine-tuned here.
    pub stored: RwSignal<Vec<StoredModel>>,
    pub storage: RwSignal<Option<(f64, f64)>>,
    /// Where model files come from: `{id}` and `{file}` are filled in.
    pub url_template: RwSignal<String>,
    /// Why the page's `?source=` was not taken (not an http(s) URL with {id} and {file}).
    pub source_notice: RwSignal<Option<String>>,
}

/// `localStorage.getItem` / `setItem` through JS (no web-sys `Storage` binding is compiled in).
fn storage_call(method: &str, args: &[&str]) -> Option<wasm_bindgen::JsValue> {
    use wasm_bindgen::JsCast;
    let window: wasm_bindgen::JsValue = web_sys::window()?.into();
    let storage = js_sys::Reflect::get(&window, &"localStorage".into()).ok()?;
    let f: js_sys::Function = js_sys::Reflect::get(&storage, &method.into())
        .ok()?
        .dyn_into()
        .ok()?;
    let args: js_sys::Array = args
        .iter()
        .map(|a| wasm_bindgen::JsValue::from_str(a))
        .collect();
    f.apply(&storage, &args).ok()
}

fn stored_source() -> Option<String> {
    storage_call("getItem", &["tunelab.source"])?.as_string()
}

/// A query parameter of the page URL.
pub fn query_param(name: &str) -> Option<String> {
    let search = web_sys::window()?.location().search().ok()?;
    web_sys::UrlSearchParams::new_with_str(&search)
        .ok()?
        .get(name)
}

impl Default for AppState {
    fn default() -> Self {
        Self::new()
    }
}

impl AppState {
    /// The state at start-up: the model source and backend from the URL (or as last saved).
    pub fn new() -> Self {
        // A link's source goes through the check the Models page applies: a crafted link cannot
        // point the app at another scheme (the engine refuses one too).
        let linked = query_param("source");
        let refused = linked
            .as_deref()
            .and_then(|s| check_url_template(s).err().map(|e| (s.to_string(), e)));
        let template = linked
            .filter(|_| refused.is_none())
            .or_else(|| stored_source().filter(|s| check_url_template(s).is_ok()))
            .unwrap_or_else(|| HUB_URL_TEMPLATE.to_string());
        let source_notice = refused.map(|(s, e)| {
            let shown: String = s.chars().take(60).collect();
            format!("The link's model source \"{shown}\" was not used: {e}. Models load from {template}.")
        });
        let choice = match query_param("backend").as_deref() {
            Some("cpu") => BackendChoice::Cpu,
            _ => BackendChoice::Auto,
        };
        Self {
            backend: RwSignal::new(None),
            workers: RwSignal::new(1),
            workers_choice: RwSignal::new(query_param("workers").and_then(|w| w.parse().ok())),
            backend_choice: RwSignal::new(choice),
            engine_error: RwSignal::new(None),
            engine_notice: RwSignal::new(None),
            restarts: RwSignal::new(0),
            restarted: RwSignal::new(0),
            restoring: RwSignal::new(false),
            classifier: RwSignal::new(None),
            fill_mask: RwSignal::new(None),
            language_model: RwSignal::new(None),
            embedder: RwSignal::new(None),
            base: RwSignal::new(None),
            stored: RwSignal::new(Vec::new()),
            storage: RwSignal::new(None),
            url_template: RwSignal::new(template),
            source_notice: RwSignal::new(source_notice),
        }
    }

    pub fn slot(&self, slot: Slot) -> RwSignal<Option<ModelInfo>> {
        match slot {
            Slot::Classifier => self.classifier,
            Slot::FillMask => self.fill_mask,
            Slot::LanguageModel => self.language_model,
            Slot::Embedder => self.embedder,
            Slot::Base => self.base,
        }
    }

    pub fn set_url_template(&self, template: String) {
        let _ = storage_call("setItem", &["tunelab.source", &template]);
        self.url_template.set(template);
    }

    /// (Re)starts the engine on the chosen backend; loaded models are dropped.
    pub fn start_engine(&self) {
        self.start_engine_then(|| {});
    }

    /// As [`AppState::start_engine`], then `then` once the engine runs.
    fn start_engine_then(&self, then: impl FnOnce() + 'static) {
        let this = *self;
        this.backend.set(None);
        for slot in Slot::ALL {
            this.slot(slot).set(None);
        }
        let mut then = Some(then);
        // A restart after this one makes this request's end moot.
        let epoch = this.restarts.get_untracked();
        client::send(
            Request::Start {
                backend: this.backend_choice.get_untracked(),
                workers: this.workers_choice.get_untracked(),
            },
            None,
            move |event, _| match event {
                _ if this.restarts.get_untracked() != epoch => {}
                Event::Started { backend, workers } => {
                    this.backend.set(Some(backend));
                    this.workers.set(workers);
                    this.refresh_stored();
                    if let Some(f) = then.take() {
                        f();
                    }
                }
                Event::Error { message } => this.engine_error.set(Some(message)),
                _ => {}
            },
        );
    }

    /// The engine died and a fresh one runs: start it on the same backend, reload from browser
    /// storage each model it held, and say what happened. A model read from files on disk
    /// (not kept in storage) must be chosen again. If the engine dies while reloading, the
    /// models are not reloaded again (one of them may be what kills it).
    pub fn recover(&self, reason: String) {
        let this = *self;
        let held: Vec<(Slot, ModelInfo)> = Slot::ALL
            .into_iter()
            .filter_map(|slot| this.slot(slot).get_untracked().map(|info| (slot, info)))
            .collect();
        let head = format!("The engine stopped ({reason}) and was restarted.");
        let lines: RwSignal<Vec<String>> = RwSignal::new(Vec::new());
        let show = move || {
            let text = std::iter::once(head.clone())
                .chain(lines.get_untracked())
                .collect::<Vec<_>>()
                .join(" ");
            this.engine_notice.set(Some(text));
        };
        let mut reloads = Vec::new();
        if this.restoring.get_untracked() {
            this.restoring.set(false);
            if !held.is_empty() {
                lines.update(|l| {
                    l.push(
                        "It stopped while reloading the models, so they were not reloaded: \
                         load them again."
                            .into(),
                    )
                });
            }
        } else {
            for (slot, info) in held {
                match info.stored.clone() {
                    Some(key) => reloads.push((slot, info.name, key)),
                    None => lines.update(|l| {
                        l.push(format!(
                            "The {} \"{}\" was read from files on this computer: choose them \
                             again.",
                            slot.describe(),
                            info.name
                        ))
                    }),
                }
            }
        }
        this.engine_error.set(None);
        show();
        this.restarts.update(|n| *n += 1);
        this.restoring.set(!reloads.is_empty());
        this.start_engine_then(move || {
            this.restarted.update(|n| *n += 1);
            let epoch = this.restarts.get_untracked();
            let left = RwSignal::new(reloads.len());
            for (slot, name, key) in reloads {
                let show = show.clone();
                let source = ModelSource::Stored { key };
                client::send(Request::Load { slot, source }, None, move |event, _| {
                    if this.restarts.get_untracked() != epoch {
                        return;
                    }
                    let line = match event {
                        Event::Loaded { info, .. } => {
                            this.slot(slot).set(Some(info));
                            format!(
                                "The {} \"{name}\" was reloaded from browser storage.",
                                slot.describe()
                            )
                        }
                        Event::Error { message } => format!(
                            "The {} \"{name}\" could not be reloaded ({message}): load it again.",
                            slot.describe()
                        ),
                        _ => return,
                    };
                    lines.update(|l| l.push(line));
                    show();
                    left.update(|n| *n -= 1);
                    if left.get_untracked() == 0 {
                        this.restoring.set(false);
                    }
                });
            }
        });
    }

    /// Asks the engine for the stored models and the storage use.
    pub fn refresh_stored(&self) {
        let this = *self;
        client::send(Request::ListStored, None, move |event, _| match event {
            Event::StoredModels { models, usage } => {
                this.stored.set(models);
                if usage.is_some() {
                    this.storage.set(usage);
                }
            }
            Event::Error { message } => {
                web_sys::console::warn_1(&format!("stored models: {message}").into())
            }
            _ => {}
        });
    }
}

pub fn use_state() -> AppState {
    expect_context::<AppState>()
}

pub use crate::math::human_bytes;
