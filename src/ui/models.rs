//! The Models page: where model files come from (the Hub, a mirror, a local server), the compute
//! backend, and the models kept in browser storage (sizes, delete).

use leptos::prelude::*;

use crate::protocol::{
    check_url_template, BackendChoice, Event, Precision, Request, HUB_URL_TEMPLATE,
};

use super::components::ErrorBox;
use super::request::Call;
use super::state::{human_bytes, use_state};

#[component]
pub fn ModelsPage() -> impl IntoView {
    let state = use_state();
    let draft = RwSignal::new(state.url_template.get_untracked());
    // Saving the source and deleting stored models report here.
    let call = Call::new();
    let save_source = move |_| {
        let t = draft.get_untracked().trim().to_string();
        if let Err(e) = check_url_template(&t) {
            call.fail(e);
            return;
        }
        call.clear_error();
        state.set_url_template(t);
    };
    let delete = move |key: String| {
        call.send(Request::DeleteStored { key }, None, move |event, _| {
            if let Event::StoredModels { models, usage } = event {
                state.stored.set(models);
                state.storage.set(usage);
            }
        });
    };
    view! {
        <section>
            <div class="card">
                <h2>"Model source"</h2>
                <label for="source-template">"URL of a model file ({id} and {file} are filled in)"</label>
                <input id="source-template" type="url" spellcheck="false" prop:value=move || draft.get() on:input=move |ev| draft.set(event_target_value(&ev)) />
                <div class="row">
                    <button id="save-source" on:click=save_source>"Use this source"</button>
                    <button class="secondary" on:click=move |_| { draft.set(HUB_URL_TEMPLATE.into()); state.set_url_template(HUB_URL_TEMPLATE.into()) }>"Hugging Face Hub"</button>
                </div>
                <p class="muted">"Model files are fetched from this source only, and kept in this browser. Your texts and datasets never leave the page."</p>
                <ErrorBox error=call.error() />
            </div>
            <div class="card">
                <h2>"Compute"</h2>
                <label for="backend-choice">"Backend"</label>
                <select id="backend-choice" on:change=move |ev| {
                    state.backend_choice.set(if event_target_value(&ev) == "cpu" { BackendChoice::Cpu } else { BackendChoice::Auto });
                    state.start_engine();
                }>
                    <option value="auto" selected=move || state.backend_choice.get() == BackendChoice::Auto>"WebGPU when available, else CPU"</option>
                    <option value="cpu" selected=move || state.backend_choice.get() == BackendChoice::Cpu>"CPU"</option>
                </select>
                <label for="workers-choice">"Engine workers on the CPU"</label>
                <select id="workers-choice" on:change=move |ev| {
                    state.workers_choice.set(event_target_value(&ev).parse().ok());
                    state.start_engine();
                }>
                    <option value="auto" selected=move || state.workers_choice.get().is_none()>"One per core, as memory allows"</option>
                    {[1usize, 2, 4, 8].into_iter().map(|n| view! {
                        <option value=n.to_string() selected=move || state.workers_choice.get() == Some(n)>
                            {if n == 1 { "1 (no helpers)".to_string() } else { n.to_string() }}
                        </option>
                    }).collect_view()}
                </select>
                <label for="precision-choice">"Models on a GPU"</label>
                <select id="precision-choice" on:change=move |ev| {
                    state.precision_choice.set(if event_target_value(&ev) == "f32" { Precision::F32 } else { Precision::Auto });
                    state.start_engine();
                }>
                    <option value="auto" selected=move || state.precision_choice.get() == Precision::Auto>{Precision::Auto.describe()}</option>
                    <option value="f32" selected=move || state.precision_choice.get() == Precision::F32>{Precision::F32.describe()}</option>
                </select>
                <p class="muted">"In half precision a model's weights are f16 on the GPU, and so are a language model's key/value cache and the activations that only its products and attention read (an encoder's queries, keys, values and feed-forward activations); sums, norms, softmaxes, the residual stream and the outputs stay f32, and fine-tuning computes in f32. Scores and logits then differ from full precision by about what transformers' own float16 gives: a near-tie between two labels or next tokens can go the other way."</p>
                <p class="muted">"Helper engines share batch classification, feature extraction, evaluations and prompt evaluations on the CPU; each holds its own copy of the model."</p>
                <p class="muted">"Switching restarts the engine: loaded models are dropped (stored ones reload quickly)."</p>
            </div>
            <div class="card">
                <h2>"Stored models"</h2>
                {move || state.storage.get().map(|(used, quota)| view! {
                    <p class="muted">{format!("Browser storage: {} used of {}", human_bytes(used), human_bytes(quota))}</p>
                })}
                <table id="stored-models">
                    <thead><tr><th>"Model"</th><th>"Source"</th><th>"Size"</th><th>"Files"</th><th></th></tr></thead>
                    <tbody>
                        {move || state.stored.get().into_iter().map(|m| {
                            let key = m.key.clone();
                            view! {
                                <tr data-model=m.name.clone()>
                                    <td>{m.name.clone()}</td>
                                    <td class="muted">{m.source.replace("{id}/", "").replace("/{file}", "")}</td>
                                    <td>{human_bytes(m.bytes as f64)}</td>
                                    <td class="muted">{m.files.iter().map(|(f, _)| f.clone()).collect::<Vec<_>>().join(", ")}</td>
                                    <td><button class="secondary delete" on:click=move |_| delete(key.clone())>"Delete"</button></td>
                                </tr>
                            }
                        }).collect_view()}
                    </tbody>
                </table>
                {move || state.stored.get().is_empty().then(|| view! { <p class="muted">"No model stored yet: models loaded by id are kept here."</p> })}
            </div>
        </section>
    }
}
