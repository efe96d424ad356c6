//! Label probabilities: the label words, calibration, and the scores of the input.

use leptos::prelude::*;

use crate::ui::components::ScoreBars;

use super::state::PromptState;

#[component]
pub fn LabelScoring(state: PromptState) -> impl IntoView {
    let (labels, calibrate) = (state.labels, state.calibrate);
    view! {
        <h3>"Label probabilities"</h3>
        <div class="row">
            <div>
                <label for="labels">"Labels (the words scored, comma-separated)"</label>
                <input id="labels" type="text" prop:value=move || labels.get() on:input=move |ev| labels.set(event_target_value(&ev)) />
            </div>
            <label class="inline" style="flex: 0 0 auto"><input type="checkbox" id="calibrate" prop:checked=move || calibrate.get()
                on:change=move |ev| calibrate.set(event_target_checked(&ev)) />" Calibrate (content-free \"N/A\")"</label>
            <button id="score" style="flex: 0 0 auto" on:click=move |_| state.score() disabled=move || !state.ready()>"Score labels"</button>
        </div>
        <div id="label-scores">{move || state.scores.get().map(|s| view! { <ScoreBars scores=s /> })}</div>
    }
}
