//! The Prompt page: a language model (GPT-2, Llama, Qwen) with zero- or few-shot templates (the
//! seed's wording), an examples editor, generation settings with streamed output, label
//! probabilities by label scoring with optional calibration, and evaluation of the prompt on a
//! labelled CSV.

mod evaluate;
mod generation;
mod scores;
mod state;
mod template;

use leptos::prelude::*;

use crate::protocol::Slot;

use super::components::{ErrorBox, ModelPicker};
use super::state::use_state;
use evaluate::PromptEvaluation;
use generation::{GenerationPanel, PromptInput};
use scores::LabelScoring;
use state::PromptState;
use template::TemplateEditor;

/// The prompt box (also the embeddable widget, `compact`: no template editor, no evaluation).
#[component]
pub fn PromptBox(#[prop(optional)] compact: bool) -> impl IntoView {
    let state = PromptState::new(use_state());
    view! {
        <div class="card prompt-box">
            {(!compact).then(|| view! { <TemplateEditor state=state /> })}
            <PromptInput state=state />
            <GenerationPanel state=state />
            <LabelScoring state=state />
            {(!compact).then(|| view! { <PromptEvaluation state=state /> })}
            <ErrorBox error=state.call.error() />
        </div>
    }
}

#[component]
pub fn PromptPage() -> impl IntoView {
    view! {
        <section>
            <ModelPicker target=Slot::LanguageModel default_id="gpt2" hint="A GPT-2 checkpoint (gpt2, distilgpt2, gpt2-medium) or a Llama-family one (HuggingFaceTB/SmolLM2-135M-Instruct, Qwen/Qwen2.5-0.5B-Instruct, Qwen/Qwen3-0.6B): f32, f16 or bf16 safetensors, in one file or sharded (model.safetensors.index.json). Half-precision weights stay so on WebGPU where the GPU computes in f16; a model too large for this browser is refused before its weights download." />
            <PromptBox />
        </section>
    }
}
