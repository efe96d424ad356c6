//! The embeddable widget: `/?embed=classify&model=<id>` (or `embed=prompt`) shows only the
//! classifier or prompt box, loading the model by id when the engine has started.

use leptos::prelude::*;

use crate::protocol::{check_model_id, Event, ModelSource, Request, Slot};

use super::classify::ClassifyBox;
use super::client;
use super::components::ErrorBox;
use super::prompt::PromptBox;
use super::state::use_state;

#[component]
pub fn Widget(kind: String, model: Option<String>) -> impl IntoView {
    let state = use_state();
    let slot = if kind == "prompt" {
        Slot::LanguageModel
    } else {
        Slot::Classifier
    };
    let error: RwSignal<Option<String>> = RwSignal::new(None);
    let status = RwSignal::new(String::from("Starting…"));
    let requested = RwSignal::new(false);
    Effect::new(move |_| {
        if state.backend.get().is_none() || requested.get_untracked() {
            return;
        }
        requested.set(true);
        let Some(id) = model.clone() else {
            error.set(Some(
                "the widget needs a model: add &model=<Hugging Face id> to its URL".into(),
            ));
            return;
        };
        if let Err(e) = check_model_id(&id) {
            error.set(Some(e));
            return;
        }
        status.set(format!("Loading {id}…"));
        let loaded = state.slot(slot);
        client::send(
            Request::Load {
                slot,
                source: ModelSource::Hub {
                    id: id.clone(),
                    url_template: state.url_template.get_untracked(),
                },
            },
            None,
            move |event, _| match event {
                Event::Loaded { info, .. } => {
                    status.set(info.name.clone());
                    loaded.set(Some(info));
                }
                Event::Error { message } => {
                    status.set(String::new());
                    error.set(Some(message));
                }
                _ => {}
            },
        );
    });
    view! {
        <div class="widget" data-embed=kind.clone()>
            <p class="muted widget-status">{move || status.get()}" · Tunelab, in your browser"</p>
            <ErrorBox error=error />
            {if kind == "prompt" { view! { <PromptBox compact=true /> }.into_any() } else { view! { <ClassifyBox /> }.into_any() }}
        </div>
    }
}
