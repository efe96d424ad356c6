//! The input with the prompt it makes, and generation: its settings, Generate / Stop, and the
//! streamed output.

use leptos::prelude::*;

use crate::protocol::GenerationConfig;
use crate::ui::components::setting_field;

use super::state::PromptState;

/// The input text, and the whole prompt sent to the model for it.
#[component]
pub fn PromptInput(state: PromptState) -> impl IntoView {
    let text = state.text;
    view! {
        <label for="prompt-text">"Input"</label>
        <textarea id="prompt-text" rows="2" prop:value=move || text.get() on:input=move |ev| text.set(event_target_value(&ev))></textarea>
        <details>
            <summary>"Prompt sent to the model"</summary>
            <pre id="prompt-preview">{move || state.preview()}</pre>
        </details>
    }
}

#[component]
pub fn GenerationPanel(state: PromptState) -> impl IntoView {
    let config = state.generation;
    let stop_text = state.stop_text;
    let (chat, system) = (state.chat, state.system);
    view! {
        <div class="row">
            <label class="inline"><input type="checkbox" id="as-chat" prop:checked=move || chat.get()
                on:change=move |ev| chat.set(event_target_checked(&ev)) />" Send as a chat turn (the model's chat template), for generation, label scores and evaluation"</label>
        </div>
        {move || chat.get().then(|| view! {
            <label for="chat-system">"System message (optional)"</label>
            <input id="chat-system" type="text" prop:value=move || system.get() on:input=move |ev| system.set(event_target_value(&ev)) />
        })}
        <div class="row">
            <Toggle config=config id="do-sample" text=" Sample (else greedy)" get=|g| g.do_sample set=|g, v| g.do_sample = v />
            <Toggle config=config id="stop-newline" text=" Stop at a newline" get=|g| g.stop_at_newline set=|g, v| g.stop_at_newline = v />
        </div>
        <div class="row">
            {setting_field(config, "Max new tokens", "max-new-tokens", |g| g.max_new_tokens.to_string(), |g, v| if let Ok(x) = v.parse() { g.max_new_tokens = x })}
            {setting_field(config, "Temperature", "temperature", |g| format!("{}", g.temperature), |g, v| if let Ok(x) = v.parse() { g.temperature = x })}
            {setting_field(config, "Top-k (0: off)", "top-k", |g| g.top_k.to_string(), |g, v| if let Ok(x) = v.parse() { g.top_k = x })}
            {setting_field(config, "Top-p", "top-p", |g| format!("{}", g.top_p), |g, v| if let Ok(x) = v.parse() { g.top_p = x })}
            {setting_field(config, "Seed", "gen-seed", |g| g.seed.to_string(), |g, v| if let Ok(x) = v.parse() { g.seed = x })}
        </div>
        <label for="stop-strings">"Stop strings (one per line)"</label>
        <textarea id="stop-strings" rows="1" prop:value=move || stop_text.get() on:input=move |ev| stop_text.set(event_target_value(&ev))></textarea>
        <div class="row">
            <button id="generate" on:click=move |_| state.generate() disabled=move || !state.ready()>"Generate"</button>
            <button id="stop" class="secondary" on:click=move |_| state.stop() disabled=move || !state.call.busy()>"Stop"</button>
        </div>
        <pre id="generation" class="output" data-ids=move || state.generated_ids.get()>{move || state.output.get()}</pre>
        <p class="muted" id="stop-reason">{move || state.stop_reason.get()}</p>
        {move || state.sent_prompt.get().map(|p| view! {
            <details id="sent-prompt">
                <summary>"Prompt as the model read it (after its chat template)"</summary>
                <pre>{p}</pre>
            </details>
        })}
    }
}

/// A checkbox for one switch of the generation settings.
#[component]
fn Toggle(
    config: RwSignal<GenerationConfig>,
    id: &'static str,
    text: &'static str,
    get: fn(&GenerationConfig) -> bool,
    set: fn(&mut GenerationConfig, bool),
) -> impl IntoView {
    view! {
        <label class="inline"><input type="checkbox" id=id prop:checked=move || config.with(get)
            on:change=move |ev| { let v = event_target_checked(&ev); config.update(|g| set(g, v)) } />{text}</label>
    }
}
