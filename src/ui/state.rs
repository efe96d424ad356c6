//! State shared by the pages: the engine's backend, loaded models, the model source.

use crate::hub::check_url_template;
use leptos::prelude::*;

use crate::protocol::{
    Backend, BackendChoice, Event, ModelInfo, Request, Slot, StoredModel, HUB_URL_TEMPLATE,
};

use super::client;

#[derive(Clone, Copy)]
pub struct AppState {
    /// `None` while the engine starts.
    pub backend: RwSignal<Option<Backend>>,
    pub backend_choice: RwSignal<BackendChoice>,
    /// A failure of the engine itself (worker crash).
    pub engine_error: RwSignal<Option<String>>,
    pub classifier: RwSignal<Option<ModelInfo>>,
    pub fill_mask: RwSignal<Option<ModelInfo>>,
    pub language_model: RwSignal<Option<ModelInfo>>,
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
            backend_choice: RwSignal::new(choice),
            engine_error: RwSignal::new(None),
            classifier: RwSignal::new(None),
            fill_mask: RwSignal::new(None),
            language_model: RwSignal::new(None),
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
            Slot::Base => self.base,
        }
    }

    pub fn set_url_template(&self, template: String) {
        let _ = storage_call("setItem", &["tunelab.source", &template]);
        self.url_template.set(template);
    }

    /// (Re)starts the engine on the chosen backend; loaded models are dropped.
    pub fn start_engine(&self) {
        let this = *self;
        this.backend.set(None);
        for slot in [
            Slot::Classifier,
            Slot::FillMask,
            Slot::LanguageModel,
            Slot::Base,
        ] {
            this.slot(slot).set(None);
        }
        client::send(
            Request::Start {
                backend: this.backend_choice.get_untracked(),
            },
            None,
            move |event, _| match event {
                Event::Started { backend } => {
                    this.backend.set(Some(backend));
                    this.refresh_stored();
                }
                Event::Error { message } => this.engine_error.set(Some(message)),
                _ => {}
            },
        );
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
