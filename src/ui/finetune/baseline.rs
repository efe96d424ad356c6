//! The zero-shot baseline: an NLI model (the Classify page's classifier slot) scores the test
//! split with the dataset's label names as candidate labels, with no training, and its metrics
//! stand beside the fine-tuned model's last evaluation.

use leptos::prelude::*;

use crate::pipelines::zero_shot::{NliOutputs, DEFAULT_TEMPLATE};
use crate::protocol::{Event, Metrics, Request, Slot};
use crate::ui::components::{ErrorBox, ModelPicker};
use crate::ui::request::Call;
use crate::ui::state::use_state;

use super::state::FineTuneState;

#[component]
pub fn ZeroShotBaseline(state: FineTuneState) -> impl IntoView {
    let app = use_state();
    let template = RwSignal::new(String::from(DEFAULT_TEMPLATE));
    // (metrics, rows scored, test rows)
    let result: RwSignal<Option<(Metrics, usize, usize)>> = RwSignal::new(None);
    let progress = RwSignal::new((0usize, 0usize));
    let call = Call::new();
    let nli = move || {
        app.classifier.with(|m| {
            m.as_ref()
                .is_some_and(|m| NliOutputs::of(&m.labels).is_some())
        })
    };
    let can_run = move || {
        nli()
            && state.data.preview.with(Option::is_some)
            && !(state.separate_test.get() && state.test.preview.with(Option::is_none))
    };
    let run = move |_| {
        result.set(None);
        progress.set((0, 0));
        let request = Request::ZeroShotBaseline {
            text_column: state.text_column.get_untracked(),
            label_column: state.label_column.get_untracked(),
            test_fraction: state.test_fraction.get_untracked(),
            split_seed: state.args.with_untracked(|a| a.seed),
            separate_test: state.separate_test.get_untracked(),
            template: template.get_untracked(),
        };
        call.send(request, None, move |event, _| match event {
            Event::Progress { done, total } => progress.set((done, total)),
            Event::ZeroShotEvaluated {
                metrics,
                scored,
                total,
            } => result.set(Some((metrics, scored, total))),
            _ => {}
        });
    };
    // The fine-tuned model's last evaluation, when a run has one.
    let trained = move || {
        state.run.with(|r| {
            r.as_ref()
                .and_then(|r| r.evals.last().map(|(_, _, m)| m.clone()))
        })
    };
    view! {
        <ModelPicker target=Slot::Classifier place="baseline" default_id="typeform/distilbert-base-uncased-mnli"
            hint="An NLI checkpoint (its labels include entailment), e.g. typeform/distilbert-base-uncased-mnli or cross-encoder/nli-distilroberta-base; the Classify page uses the same one." />
        <div class="card" id="baseline">
            <p class="muted">"How well the NLI model does on the same test split with no training at all: each of your label names becomes a candidate label."</p>
            <label for="baseline-template">"Hypothesis template ({} is the label)"</label>
            <input id="baseline-template" type="text" prop:value=move || template.get() on:input=move |ev| template.set(event_target_value(&ev)) />
            <div class="row">
                <button id="baseline-run" on:click=run disabled=move || call.busy() || !can_run()>
                    {move || if call.busy() { "Evaluating…" } else { "Evaluate zero-shot on the test split" }}
                </button>
                <button class="secondary" on:click=move |_| call.cancel() disabled=move || !call.busy()>"Stop"</button>
            </div>
            {move || (!nli()).then(|| view! { <p class="muted">"Load an NLI model above first."</p> })}
            {move || call.busy().then(|| {
                let (done, total) = progress.get();
                view! { <p class="muted" id="baseline-progress">{format!("{done} of {total} test rows")}</p> }
            })}
            <ErrorBox error=call.error() />
            {move || result.get().map(|(m, scored, total)| {
                let t = trained();
                let row = move |name: &'static str, get: fn(&Metrics) -> f64| {
                    let ours = t.as_ref().map(|t| format!("{:.4}", get(t))).unwrap_or_else(|| "—".into());
                    view! { <tr><th>{name}</th><td class="zero-shot">{format!("{:.4}", get(&m))}</td><td class="fine-tuned">{ours}</td></tr> }
                };
                view! {
                    {(scored < total).then(|| view! { <p class="muted">{format!("Stopped after {scored} of {total} rows: these metrics cover only those rows.")}</p> })}
                    <table id="baseline-metrics" data-scored=scored.to_string()>
                        <thead><tr><th></th><th>"Zero-shot"</th><th>"Fine-tuned (last epoch)"</th></tr></thead>
                        <tbody>
                            {row("Accuracy", |m| m.accuracy)}
                            {row("Precision", |m| m.precision)}
                            {row("Recall", |m| m.recall)}
                            {row("F1", |m| m.f1)}
                        </tbody>
                    </table>
                }
            })}
        </div>
    }
}
