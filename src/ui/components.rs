//! Pieces the pages share: the model picker (Hub id, stored models, local files) with download
//! progress, error boxes and label-score bars.

use leptos::prelude::*;
use wasm_bindgen::JsValue;

use crate::protocol::{check_model_id, Event, LabelScore, ModelSource, Request, Slot};

use super::files;
use super::request::Call;
use super::state::{human_bytes, use_state};

/// A model file's download, as the engine reports it.
#[derive(Clone, Debug, PartialEq)]
struct FileProgress {
    file: String,
    loaded: u64,
    total: Option<u64>,
    bytes_per_s: f64,
    from_cache: bool,
}

impl FileProgress {
    fn percent(&self) -> f64 {
        self.total
            .map(|t| {
                if t == 0 {
                    100.0
                } else {
                    self.loaded as f64 * 100.0 / t as f64
                }
            })
            .unwrap_or(0.0)
    }

    fn describe(&self) -> String {
        if self.from_cache {
            format!(
                "{}: {} from browser storage",
                self.file,
                human_bytes(self.loaded as f64)
            )
        } else {
            format!(
                "{}: {} of {} at {}/s",
                self.file,
                human_bytes(self.loaded as f64),
                self.total
                    .map(|t| human_bytes(t as f64))
                    .unwrap_or("?".into()),
                human_bytes(self.bytes_per_s)
            )
        }
    }
}

/// Loads a model into `slot`: by Hub id (through the configured source), from browser storage,
/// or from local files.
#[component]
pub fn ModelPicker(
    /// The engine slot to load into (`slot` is reserved by leptos' view macro).
    target: Slot,
    default_id: &'static str,
    #[prop(optional)] hint: &'static str,
    /// Told apart from the slot's other picker on another page (its element ids end with it).
    #[prop(optional)]
    place: &'static str,
) -> impl IntoView {
    let slot = target;
    let state = use_state();
    let id = RwSignal::new(default_id.to_string());
    let progress: RwSignal<Vec<FileProgress>> = RwSignal::new(Vec::new());
    let call = Call::new();
    let loaded = state.slot(slot);
    let mut name = format!("model-{}", slot.describe().replace(' ', "-"));
    if !place.is_empty() {
        name = format!("{name}-{place}");
    }

    let load = move |source: ModelSource, payload: Option<JsValue>| {
        progress.set(Vec::new());
        call.send(
            Request::Load { slot, source },
            payload,
            move |event, _| match event {
                Event::Download {
                    file,
                    loaded,
                    total,
                    bytes_per_s,
                    from_cache,
                } => progress.update(|list| {
                    let p = FileProgress {
                        file: file.clone(),
                        loaded,
                        total,
                        bytes_per_s,
                        from_cache,
                    };
                    match list.iter_mut().find(|f| f.file == file) {
                        Some(f) => *f = p,
                        None => list.push(p),
                    }
                }),
                Event::Loaded { info, .. } => {
                    loaded.set(Some(info));
                    state.refresh_stored();
                }
                _ => {}
            },
        );
    };
    let load_hub = move || {
        let model = id.get_untracked();
        if let Err(e) = check_model_id(&model) {
            call.fail(e);
            return;
        }
        load(
            ModelSource::Hub {
                id: model.trim().to_string(),
                url_template: state.url_template.get_untracked(),
            },
            None,
        );
    };
    let on_files = move |ev: web_sys::Event| {
        if let Some(list) = files::picked_all(&ev) {
            load(ModelSource::Local, Some(list.into()));
        }
    };

    view! {
        <div class="card model-picker" data-slot=name.clone()>
            <div class="row">
                <div>
                    <label for=format!("{name}-id")>"Model (Hugging Face id)"</label>
                    <input id=format!("{name}-id") type="text" list=format!("{name}-stored") spellcheck="false"
                        prop:value=move || id.get()
                        on:input=move |ev| id.set(event_target_value(&ev))
                        on:keydown=move |ev| if ev.key() == "Enter" { load_hub() } />
                    <datalist id=format!("{name}-stored")>
                        {move || state.stored.get().into_iter().filter(|m| !m.trained).map(|m| view! { <option value=m.name.clone()></option> }).collect_view()}
                    </datalist>
                </div>
                <div style="flex: 0 0 auto">
                    <button class="load" on:click=move |_| load_hub() disabled=move || call.busy()>
                        {move || if call.busy() { "Loading…" } else { "Load" }}
                    </button>
                </div>
            </div>
            <div class="row">
                <div>
                    <label>"or a stored model"</label>
                    <select class="stored" on:change=move |ev| {
                        let key = event_target_value(&ev);
                        if !key.is_empty() { load(ModelSource::Stored { key }, None) }
                    }>
                        <option value="">"—"</option>
                        {move || state.stored.get().into_iter().map(|m| view! {
                            <option value=m.key.clone()>{format!("{} ({})", m.name, human_bytes(m.bytes as f64))}</option>
                        }).collect_view()}
                    </select>
                </div>
                <div>
                    <label>"or files from your disk"</label>
                    <input class="local-files" type="file" multiple accept=".json,.safetensors,.zip,.txt" on:change=on_files />
                </div>
            </div>
            {(!hint.is_empty()).then(|| view! { <p class="muted">{hint}</p> })}
            <div class="downloads">
                {move || progress.get().into_iter().map(|p| view! {
                    <div class="download">
                        <div class="muted">{p.describe()}</div>
                        <div class="bar"><span style=format!("width: {:.1}%", p.percent())></span></div>
                    </div>
                }).collect_view()}
            </div>
            <ErrorBox error=call.error() />
            {move || loaded.get().map(|info| view! {
                <p class="loaded" data-loaded=info.name.clone()>
                    "Loaded "<strong>{info.name.clone()}</strong>
                    {format!(" — {}, {:.1} M parameters{}{}", info.architecture, info.parameters as f64 / 1e6,
                        if info.labels.is_empty() { String::new() } else { format!(", labels: {}", info.labels.join(", ")) },
                        info.precision.as_deref().map(|p| format!(", {p} on the GPU")).unwrap_or_default())}
                </p>
                {info.storage_warning.map(|w| view! { <p class="warning storage-warning">{w}</p> })}
            })}
        </div>
    }
}

#[component]
pub fn ErrorBox(error: RwSignal<Option<String>>) -> impl IntoView {
    move || {
        error
            .get()
            .map(|e| view! { <div class="error" role="alert">{e}</div> })
    }
}

/// Every label with its score as a bar, most probable first.
#[component]
pub fn ScoreBars(scores: Vec<LabelScore>) -> impl IntoView {
    view! {
        <div class="scores">
            {scores.into_iter().map(|s| view! {
                <div class="score" data-label=s.label.clone() data-score=format!("{:.6}", s.score)>
                    <span class="label">{s.label.clone()}</span>
                    <div class="bar"><span style=format!("width: {:.1}%", s.score * 100.0)></span></div>
                    <span class="value">{format!("{:.4}", s.score)}</span>
                </div>
            }).collect_view()}
        </div>
    }
}

/// A labelled text field for one number of a settings struct, applied when the field changes
/// (an entry that does not parse leaves the setting as it was).
pub fn setting_field<T: Send + Sync + 'static>(
    settings: RwSignal<T>,
    label: &'static str,
    id: &'static str,
    get: fn(&T) -> String,
    set: fn(&mut T, &str),
) -> impl IntoView {
    view! {
        <div>
            <label for=id>{label}</label>
            <input id=id type="text" inputmode="decimal" prop:value=move || settings.with(get)
                on:change=move |ev| { let v = event_target_value(&ev); settings.update(|s| set(s, v.trim())) } />
        </div>
    }
}
