//! Evaluation of the prompt on a labelled CSV: progress, then accuracy, precision, recall, F1.

use leptos::prelude::*;

use crate::protocol::Metrics;
use crate::ui::files;

use super::state::PromptState;

#[component]
pub fn PromptEvaluation(state: PromptState) -> impl IntoView {
    let on_file = move |ev: web_sys::Event| {
        if let Some(file) = files::picked(&ev) {
            state.evaluate(file);
        }
    };
    view! {
        <h3>"Evaluate the prompt on a labelled CSV"</h3>
        <input id="eval-file" type="file" accept=".csv,.tsv,.txt" on:change=on_file disabled=move || !state.ready() />
        {move || {
            let (done, total) = state.eval_progress.get();
            (total > 0).then(|| view! {
                <div class="bar"><span style=format!("width: {:.1}%", done as f64 * 100.0 / total as f64)></span></div>
                <p class="muted">{format!("{done} / {total} rows scored")}</p>
            })
        }}
        {move || state.eval_metrics.get().map(|(m, scored, total, truncated)| view! {
            {(truncated > 0).then(|| view! {
                <p id="eval-truncated" class="muted">
                    {format!("{truncated} of the rows were too long for the model and were cut, keeping their beginning.")}
                </p>
            })}
            {(scored < total).then(|| view! {
                <p id="eval-coverage" class="warning">
                    {format!("Stopped after {scored} of {total} rows: these metrics cover only those rows.")}
                </p>
            })}
            <MetricsTable metrics=m />
        })}
    }
}

#[component]
fn MetricsTable(metrics: Metrics) -> impl IntoView {
    let row = |name: &'static str, value: f64| view! { <tr><th>{name}</th><td>{format!("{value:.4}")}</td></tr> };
    view! {
        <table id="prompt-metrics"><tbody>
            {row("Accuracy", metrics.accuracy)}
            {row("Precision", metrics.precision)}
            {row("Recall", metrics.recall)}
            {row("F1", metrics.f1)}
        </tbody></table>
    }
}
