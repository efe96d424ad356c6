//! The Models page: where model files come from (the Hub, a mirror, a local server), the compute
//! backend, and the models kept in browser storage (sizes, delete).

use leptos::prelude::*;

use crate::protocol::{BackendChoice, Event, Request, HUB_URL_TEMPLATE};

use super::client;
use super::components::ErrorBox;
use super::state::{human_bytes, use_state};

#[component]
pub fn ModelsPage() -> impl IntoView {
    let state = use_state();
    let draft = RwSignal::new(state.url_template.get_untracked());
    let error: RwSignal<Option<String>> = RwSignal::new(None);
    let save_source = move |_| {
        let t = draft.get_untracked().trim().to_string();
        if !(t.starts_with("https://") || t.starts_with("http://"))
            || !t.contains("{id}")
            || !t.contains("{file}")
        {
            error.set(Some(
                "the source must be an http(s) URL containing {id} and {file}".into(),
            ));
            return;
        }
        error.set(None);
        state.set_url_template(t);
    };
    let delete = move |key: String| {
        client::send(
            Request::DeleteCached { key },
            None,
            move |event, _| match event {
                Event::CachedModels { models, usage } => {
                    state.cached.set(models);
                    state.storage.set(usage);
                }
                Event::Error { message } => error.set(Some(message)),
                _ => {}
            },
        );
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
                <ErrorBox error=error />
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
                        {move || state.cached.get().into_iter().map(|m| {
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
                {move || state.cached.get().is_empty().then(|| view! { <p class="muted">"No model stored yet: models loaded by id are kept here."</p> })}
            </div>
        </section>
    }
}
