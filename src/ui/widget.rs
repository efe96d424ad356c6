//! The embeddable widget: `/?embed=classify&model=<id>` (or `embed=prompt`) shows only the
//! classifier or prompt box, loading the model by id when the engine has started.

use leptos::prelude::*;

use crate::protocol::{check_model_id, Event, ModelSource, Request, Slot};

use super::classify::ClassifyBox;
use super::components::ErrorBox;
use super::prompt::PromptBox;
use super::request::Call;
use super::state::use_state;

#[component]
pub fn Widget(kind: String, model: Option<String>) -> impl IntoView {
    let state = use_state();
    let slot = if kind == "prompt" {
        Slot::LanguageModel
    } else {
        Slot::Classifier
    };
    let call = Call::new();
    let status = RwSignal::new(String::from("Starting…"));
    let requested = RwSignal::new(false);
    Effect::new(move |_| {
        if state.backend.get().is_none() || requested.get_untracked() {
            return;
        }
        requested.set(true);
        let Some(id) = model.clone() else {
            call.fail("the widget needs a model: add &model=<Hugging Face id> to its URL");
            return;
        };
        if let Err(e) = check_model_id(&id) {
            call.fail(e);
            return;
        }
        status.set(format!("Loading {id}…"));
        let loaded = state.slot(slot);
        call.send_with(
            Request::Load {
                slot,
                source: ModelSource::Hub {
                    id: id.clone(),
                    url_template: state.url_template.get_untracked(),
                },
            },
            None,
            move |event, _| {
                if let Event::Loaded { info, .. } = event {
                    status.set(info.name.clone());
                    loaded.set(Some(info));
                }
            },
            move |_| status.set(String::new()),
        );
    });
    view! {
        <div class="widget" data-embed=kind.clone()>
            <p class="muted widget-status">{move || status.get()}" · Tunelab, in your browser"</p>
            <ErrorBox error=call.error() />
            {if kind == "prompt" { view! { <PromptBox compact=true /> }.into_any() } else { view! { <ClassifyBox /> }.into_any() }}
        </div>
    }
}
