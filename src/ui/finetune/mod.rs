//! The Fine-tune page: a base model, labelled data (dropped, picked, or the bundled sample) with
//! its preview and column choice, the training settings (each mode's defaults), live charts and
//! progress with cancel, metrics and confusion matrices per epoch, then download or use the model;
//! and a zero-shot NLI baseline on the same test split.

mod adapt;
mod baseline;
mod data;
mod run;
mod run_card;
mod runs;
mod settings;
mod state;

use leptos::prelude::*;
use wasm_bindgen::prelude::*;
use wasm_bindgen::JsCast;

use crate::protocol::Slot;

use super::components::ModelPicker;
use super::state::use_state;
use adapt::DomainAdaptation;
use baseline::ZeroShotBaseline;
use data::DataCard;
use run_card::RunCard;
use runs::StoredRuns;
use settings::TrainingSettings;
use state::FineTuneState;

#[component]
pub fn FineTunePage() -> impl IntoView {
    let state = FineTuneState::new(use_state());
    // Closing or reloading the tab would end a run silently: while one runs, the browser asks.
    Effect::new(move |_| ask_before_leaving(state.running()));
    view! {
        <section>
            <h2>"1. Base model"</h2>
            <ModelPicker target=Slot::Base default_id="sentence-transformers/all-MiniLM-L6-v2"
                hint="A BERT, DistilBERT, RoBERTa, XLM-RoBERTa, ModernBERT or MiniLM checkpoint; a classification head is added on top." />
            <h2>"2. Labelled data"</h2>
            <DataCard state=state />
            <h2>"Domain adaptation (optional): masked-LM training on your text"</h2>
            <DomainAdaptation state=state />
            <h2>"3. Training"</h2>
            <StoredRuns state=state />
            <TrainingSettings state=state />
            <RunCard state=state />
            <TrainedModel state=state />
            <h2>"4. Zero-shot baseline (optional)"</h2>
            <ZeroShotBaseline state=state />
        </section>
    }
}

thread_local! {
    /// A `beforeunload` handler that makes the browser ask before the page goes away.
    static ASK_BEFORE_LEAVING: js_sys::Function =
        Closure::<dyn Fn(web_sys::Event)>::new(|e: web_sys::Event| {
            e.prevent_default();
            // Older browsers ask only when `returnValue` is set.
            let _ = js_sys::Reflect::set(&e, &"returnValue".into(), &"".into());
        })
        .into_js_value()
        .unchecked_into();
}

/// Sets the page's `beforeunload` handler while `running`, and removes it after.
fn ask_before_leaving(running: bool) {
    let Some(window) = web_sys::window() else {
        return;
    };
    if running {
        ASK_BEFORE_LEAVING.with(|f| window.set_onbeforeunload(Some(f)));
    } else {
        window.set_onbeforeunload(None);
    }
}

/// What to do with the trained model: download it (after LoRA, its adapter too), or use it on
/// the Classify page; or apply a saved PEFT adapter to the base model.
#[component]
fn TrainedModel(state: FineTuneState) -> impl IntoView {
    let on_adapter = move |ev: web_sys::Event| {
        if let Some(list) = super::files::picked_all(&ev) {
            state.apply_adapter(list.into());
        }
    };
    view! {
        <div class="row" id="train-actions">
            <button id="export-model" class="secondary" on:click=move |_| state.export(false) disabled=move || !state.has_model()>
                {move || if state.lora_run() { "Download the merged model (.zip, Hugging Face folder)" } else { "Download the model (.zip, Hugging Face folder)" }}
            </button>
            <Show when=move || state.lora_run()>
                <button id="export-adapter" class="secondary" on:click=move |_| state.export(true) disabled=move || !state.has_model()>"Download the LoRA adapter (.zip, PEFT folder)"</button>
            </Show>
            <button id="use-model" on:click=move |_| state.use_model() disabled=move || !state.has_model()>"Use it on the Classify page"</button>
        </div>
        <div class="row">
            <label class="inline" for="adapter-files">"Or apply a saved LoRA adapter (PEFT folder's files or a .zip) to the base model: "</label>
            <input id="adapter-files" type="file" multiple accept=".zip,.json,.safetensors"
                disabled=move || state.app.base.with(Option::is_none) on:change=on_adapter />
        </div>
        {move || state.saved.get().map(|m| view! { <p class="loaded" id="saved-message">{m}</p> })}
    }
}
