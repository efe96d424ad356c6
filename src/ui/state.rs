//! State shared by the pages: the engine's backend, loaded models, the model source.

use crate::hub::check_url_template;
use leptos::prelude::*;

use crate::protocol::{
    Backend, BackendChoice, Event, ModelInfo, ModelSource, Precision, Request, Slot, StoredModel,
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
    /// How language models compute on a GPU (`?precision=f32` in a link: full precision).
    pub precision_choice: RwSignal<Precision>,
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
    /// Whether the browser offers a WebGPU adapter (`None` until it answered).
    pub webgpu_offered: RwSignal<Option<bool>>,
    /// Where the page stands with the WebGPU engine, which takes over from the CPU-only one.
    pub upgrade: RwSignal<Upgrade>,
    /// Training or an adapter made something in the engine that lives nowhere else: the WebGPU
    /// engine no longer takes over by itself.
    pub made: RwSignal<bool>,
    /// The standby WebGPU engine's backend once it started, and the models it loaded (slot,
    /// storage key, what it said of the model).
    standby: StoredValue<Option<Backend>>,
    preloaded: StoredValue<Vec<(Slot, String, ModelInfo)>>,
    preloading: RwSignal<bool>,
}

/// Where the page stands with the WebGPU engine. Every page opens on the CPU-only engine (a
/// third of the download, and no shader to compile before the first result); where the browser
/// offers WebGPU (and the CPU is not chosen) the WebGPU engine starts beside it and takes over
/// once it runs, with the models reloaded from browser storage, when nothing would be lost.
#[derive(Clone, Debug, PartialEq)]
pub enum Upgrade {
    /// None is starting: the running engine stays.
    None,
    /// It downloads and starts.
    Loading,
    /// It runs, and takes over once nothing would be lost; why not yet.
    Held(String),
    /// It could not start (the CPU engine stays), and why.
    Failed(String),
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
            precision_choice: RwSignal::new(match query_param("precision").as_deref() {
                Some("f32") => Precision::F32,
                _ => Precision::Auto,
            }),
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
            webgpu_offered: RwSignal::new(None),
            upgrade: RwSignal::new(Upgrade::None),
            made: RwSignal::new(false),
            standby: StoredValue::new(None),
            preloaded: StoredValue::new(Vec::new()),
            preloading: RwSignal::new(false),
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

    /// (Re)starts the engine on the chosen backend; loaded models are dropped. On the CPU-only
    /// engine with WebGPU chosen (and offered), the WebGPU engine starts beside it; with the
    /// CPU chosen, one starting is stopped.
    pub fn start_engine(&self) {
        let wants_webgpu = self.backend_choice.get_untracked() == BackendChoice::Auto
            && self.webgpu_offered.get_untracked() == Some(true);
        if !wants_webgpu {
            client::drop_standby();
            self.preloading.set(false);
            self.upgrade.set(Upgrade::None);
        }
        self.start_engine_then(|| {});
        if wants_webgpu && !client::on_webgpu_build() && !client::has_standby() {
            self.begin_upgrade();
        }
    }

    /// The browser said whether it offers WebGPU: where it does and the CPU is not chosen, the
    /// WebGPU engine starts beside the CPU-only one.
    pub fn probed(&self, offered: bool) {
        self.webgpu_offered.set(Some(offered));
        if offered && self.backend_choice.get_untracked() == BackendChoice::Auto {
            self.begin_upgrade();
        }
        let this = *self;
        client::set_on_idle(move || {
            if matches!(this.upgrade.get_untracked(), Upgrade::Held(_)) {
                this.try_upgrade(false);
            }
        });
    }

    /// Starts the WebGPU engine beside the running one.
    fn begin_upgrade(&self) {
        let this = *self;
        this.standby.set_value(None);
        this.preloaded.set_value(Vec::new());
        this.preloading.set(false);
        this.upgrade.set(Upgrade::Loading);
        if let Err(e) = client::spawn_standby(move |reason| this.upgrade_failed(reason)) {
            this.upgrade_failed(e);
            return;
        }
        let started = client::send_to_standby(
            Request::Start {
                backend: BackendChoice::Auto,
                workers: None,
                precision: this.precision_choice.get_untracked(),
            },
            move |event, _| match event {
                Event::Started {
                    backend: backend @ Backend::WebGpu { .. },
                    ..
                } => {
                    this.standby.set_value(Some(backend));
                    this.try_upgrade(false);
                }
                Event::Started {
                    backend: Backend::Cpu { reason },
                    ..
                } => {
                    client::drop_standby();
                    this.upgrade_failed(reason);
                }
                Event::Error { message } => {
                    client::drop_standby();
                    this.upgrade_failed(message);
                }
                _ => {}
            },
        );
        if let Err(e) = started {
            client::drop_standby();
            this.upgrade_failed(e);
        }
    }

    /// Waits while the WebGPU engine loads and may take over (training then runs on it, not on
    /// the CPU-only engine, which would keep its model and hold the WebGPU engine back).
    pub async fn settled(&self) {
        while self.upgrade.get_untracked() == Upgrade::Loading {
            gloo::timers::future::TimeoutFuture::new(100).await;
        }
    }

    fn upgrade_failed(&self, reason: String) {
        if matches!(
            self.upgrade.get_untracked(),
            Upgrade::Loading | Upgrade::Held(_)
        ) {
            self.preloading.set(false);
            self.upgrade.set(Upgrade::Failed(reason));
        }
    }

    /// Why the WebGPU engine may not take over now without losing something, if it may not.
    fn upgrade_blocker(&self) -> Option<String> {
        if !client::idle() {
            return Some("once the work under way ends".into());
        }
        if self.made.get_untracked() {
            return Some("when you switch: the CPU engine holds what training made here".into());
        }
        Slot::ALL.into_iter().find_map(|slot| {
            let info = self.slot(slot).get_untracked()?;
            info.stored.is_none().then(|| {
                format!(
                    "when you switch: the {} \"{}\" was read from files on this computer, \
                     and the WebGPU engine could not read it again",
                    slot.describe(),
                    info.name
                )
            })
        })
    }

    /// The WebGPU engine takes over if it runs and nothing would be lost (or `force`: the
    /// user asked, and what cannot be reloaded is dropped): first it loads the models the
    /// running engine holds from browser storage, then the running engine stops.
    pub fn try_upgrade(&self, force: bool) {
        let this = *self;
        if this.standby.with_value(Option::is_none) || this.preloading.get_untracked() {
            return;
        }
        if !force {
            if let Some(why) = this.upgrade_blocker() {
                this.upgrade.set(Upgrade::Held(why));
                return;
            }
        }
        let missing: Vec<(Slot, String, String)> = Slot::ALL
            .into_iter()
            .filter_map(|slot| {
                let info = this.slot(slot).get_untracked()?;
                let key = info.stored.clone()?;
                let done = this
                    .preloaded
                    .with_value(|p| p.iter().any(|(s, k, _)| *s == slot && *k == key));
                (!done).then_some((slot, key, info.name))
            })
            .collect();
        if missing.is_empty() {
            this.adopt_standby();
            return;
        }
        this.preloading.set(true);
        let left = RwSignal::new(missing.len());
        for (slot, key, name) in missing {
            let source = ModelSource::Stored { key: key.clone() };
            let sent = client::send_to_standby(Request::Load { slot, source }, move |event, _| {
                match event {
                    Event::Loaded { info, .. } => this.preloaded.update_value(|p| {
                        p.retain(|(s, _, _)| *s != slot);
                        p.push((slot, key.clone(), info));
                    }),
                    Event::Error { message } => {
                        client::drop_standby();
                        this.upgrade_failed(format!(
                            "it could not load the {} \"{name}\": {message}",
                            slot.describe()
                        ));
                    }
                    _ => return,
                }
                left.update(|n| *n -= 1);
                if left.get_untracked() == 0 && this.preloading.get_untracked() {
                    this.preloading.set(false);
                    // What changed meanwhile is checked (and loaded) again.
                    this.try_upgrade(force);
                }
            });
            if let Err(e) = sent {
                this.upgrade_failed(e);
                return;
            }
        }
    }

    /// The standby engine, holding the running engine's stored models, takes over.
    fn adopt_standby(&self) {
        let Some(backend) = self.standby.get_value() else {
            return;
        };
        if !client::adopt_standby() {
            return;
        }
        let preloaded = self.preloaded.get_value();
        let mut dropped = Vec::new();
        for slot in Slot::ALL {
            let Some(info) = self.slot(slot).get_untracked() else {
                continue;
            };
            let reloaded = preloaded
                .iter()
                .find(|(s, k, _)| *s == slot && Some(k) == info.stored.as_ref());
            match reloaded {
                Some((_, _, fresh)) => self.slot(slot).set(Some(fresh.clone())),
                None => {
                    dropped.push(format!("the {} \"{}\"", slot.describe(), info.name));
                    self.slot(slot).set(None);
                }
            }
        }
        self.standby.set_value(None);
        self.preloaded.set_value(Vec::new());
        self.backend.set(Some(backend));
        self.workers.set(1);
        self.upgrade.set(Upgrade::None);
        if !dropped.is_empty() || self.made.get_untracked() {
            let mut text = "The WebGPU engine took over.".to_string();
            if !dropped.is_empty() {
                text += &format!(
                    " It could not reload {} (read from files on this computer): choose it again.",
                    dropped.join(" and ")
                );
            }
            if self.made.get_untracked() {
                text += " A trained model not kept in browser storage was left behind.";
            }
            self.engine_notice.set(Some(text));
        }
        self.made.set(false);
        // Pages that gave the engine something (a data file) give it again.
        self.restarted.update(|n| *n += 1);
        self.refresh_stored();
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
                precision: this.precision_choice.get_untracked(),
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
