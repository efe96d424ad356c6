//! The template editor: zero-shot, few-shot or raw, the instruction, input prefix and cue, and
//! the few-shot examples (edited, or sampled per class from a CSV).

use leptos::prelude::*;

use crate::protocol::{Example, Template};
use crate::ui::files;

use super::state::{PromptState, Shots};

#[component]
pub fn TemplateEditor(state: PromptState) -> impl IntoView {
    let template = state.template;
    let field = move |label: &'static str,
                      id: &'static str,
                      get: fn(&Template) -> String,
                      set: fn(&mut Template, String)| {
        view! {
            <div>
                <label for=id>{label}</label>
                <input id=id type="text" prop:value=move || template.with(get) on:input=move |ev| { let v = event_target_value(&ev); template.update(|t| set(t, v)) } />
            </div>
        }
    };
    view! {
        <ShotsChoice shots=state.shots />
        <label for="instruction">"Instruction"</label>
        <textarea id="instruction" rows="2" prop:value=move || template.with(|t| t.instruction.clone())
            on:input=move |ev| { let v = event_target_value(&ev); template.update(|t| t.instruction = v) }></textarea>
        <div class="row">
            {field("Input prefix", "input-prefix", |t| t.input_prefix.clone(), |t, v| t.input_prefix = v)}
            {field("Cue", "cue", |t| t.cue.clone(), |t, v| t.cue = v)}
        </div>
        <Show when=move || state.shots.get() == Shots::Few>
            <ExamplesEditor state=state />
        </Show>
    }
}

#[component]
fn ShotsChoice(shots: RwSignal<Shots>) -> impl IntoView {
    let choice = move |id: &'static str, text: &'static str, value: Shots| {
        view! {
            <label class="inline"><input type="radio" name="shots" id=id prop:checked=move || shots.get() == value
                on:change=move |_| shots.set(value) />{text}</label>
        }
    };
    view! {
        <div class="row">
            {choice("zero-shot", " Zero-shot", Shots::Zero)}
            {choice("few-shot", " Few-shot", Shots::Few)}
            {choice("raw-prompt", " Raw prompt (no template)", Shots::Raw)}
        </div>
    }
}

/// The few-shot examples: each editable and removable; add one, or sample some from a CSV.
#[component]
fn ExamplesEditor(state: PromptState) -> impl IntoView {
    let examples = state.examples;
    let sample_k = state.sample_k;
    let on_sample_file = move |ev: web_sys::Event| {
        if let Some(file) = files::picked(&ev) {
            state.sample(file);
        }
    };
    view! {
        <div class="examples" id="examples">
            <label>"Examples"</label>
            {move || examples.get().into_iter().enumerate().map(|(i, ex)| view! {
                <div class="row example">
                    <input type="text" class="ex-text" prop:value=ex.text.clone() on:change=move |ev| { let v = event_target_value(&ev); examples.update(|e| e[i].text = v) } />
                    <input type="text" class="ex-label" style="flex: 0 0 8rem" prop:value=ex.label.clone() on:change=move |ev| { let v = event_target_value(&ev); examples.update(|e| e[i].label = v) } />
                    <button class="secondary" style="flex: 0 0 auto" on:click=move |_| examples.update(|e| { e.remove(i); })>"Remove"</button>
                </div>
            }).collect_view()}
            <div class="row">
                <button class="secondary" on:click=move |_| examples.update(|e| e.push(Example { text: String::new(), label: "Positive".into() }))>"Add an example"</button>
                <div>
                    <label for="sample-k">"or sample per class from a CSV"</label>
                    <div class="row">
                        <input id="sample-k" type="number" min="1" max="16" style="flex: 0 0 5rem" prop:value=move || sample_k.get().to_string()
                            on:input=move |ev| sample_k.set(event_target_value(&ev).parse().unwrap_or(2)) />
                        <input id="sample-file" type="file" accept=".csv,.tsv,.txt" on:change=on_sample_file />
                    </div>
                </div>
            </div>
        </div>
    }
}
