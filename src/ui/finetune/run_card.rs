//! The card of a training run: what was imported, progress with the time left, loss and
//! accuracy charts, metrics per epoch and the last confusion matrix.

use leptos::prelude::*;

use crate::protocol::{ImportReport, Metrics};
use crate::ui::charts::LineChart;

use super::state::FineTuneState;

/// The run's card, once training started.
#[component]
pub fn RunCard(state: FineTuneState) -> impl IntoView {
    let run = state.run;
    let losses = Signal::derive(move || {
        run.with(|r| r.as_ref().map(|r| r.losses.clone()))
            .unwrap_or_default()
    });
    let accuracies = Signal::derive(move || {
        run.with(|r| {
            r.as_ref().map(|r| {
                r.evals
                    .iter()
                    .map(|(e, _, m)| (*e as f64, m.accuracy))
                    .collect()
            })
        })
        .unwrap_or_default()
    });
    move || {
        run.get().map(|r| view! {
            <div class="card" id="train-run">
                {r.report.clone().map(|(report, train, test)| view! { <Imported report=report train=train test=test /> })}
                <div id="train-progress" data-done=r.done.to_string() data-total=r.total.to_string() data-steps=r.steps.to_string()>
                    <div class="muted">{r.status()}</div>
                    <div class="bar"><span style=format!("width: {:.1}%", r.percent())></span></div>
                    {r.saved_step.map(|s| view! {
                        <div class="muted" id="checkpoint-kept" data-step=s.to_string()>
                            {format!("Checkpoint kept at step {s}: the run can resume after a reload")}
                        </div>
                    })}
                </div>
                <div class="charts">
                    <LineChart title="Training loss" id="chart-loss" points=losses />
                    <LineChart title="Test accuracy per epoch" id="chart-accuracy" y_unit_range=true points=accuracies />
                </div>
                {(!r.evals.is_empty()).then(|| view! { <Evaluations evals=r.evals.clone() /> })}
            </div>
        })
    }
}

/// "N rows used of M (a train / b test); classes: ...; skipped: ...".
#[component]
fn Imported(report: ImportReport, train: usize, test: usize) -> impl IntoView {
    let classes = report
        .classes
        .iter()
        .map(|(c, n)| format!("{c} ({n})"))
        .collect::<Vec<_>>()
        .join(", ");
    let skipped = if report.skipped.is_empty() {
        String::new()
    } else {
        let rows = report.skipped.iter().take(5);
        let rows = rows.map(|s| format!("row {} {}", s.row, s.reason));
        format!("; skipped: {}", rows.collect::<Vec<_>>().join("; "))
    };
    view! {
        <p class="muted" id="import-report">{format!("{} rows used of {} ({train} train / {test} test); classes: {classes}{skipped}",
            report.rows_used, report.rows_read)}</p>
    }
}

/// The metrics of every epoch, then the last epoch's confusion matrix.
#[component]
fn Evaluations(evals: Vec<(usize, f64, Metrics)>) -> impl IntoView {
    let labels: Vec<String> = evals[0]
        .2
        .per_class
        .iter()
        .map(|c| c.label.clone())
        .collect();
    let last = evals[evals.len() - 1].2.clone();
    let averaged = if last.average == "binary" {
        let positive = labels
            .get(last.positive.unwrap_or(1))
            .cloned()
            .unwrap_or_default();
        format!("Precision, recall and F1 of \"{positive}\"")
    } else {
        "Macro averages over classes".to_string()
    };
    let epochs = evals.len();
    view! {
        <table id="metrics-table">
            <thead><tr><th>"Epoch"</th><th>"Loss"</th><th>"Accuracy"</th><th>"Precision"</th><th>"Recall"</th><th>"F1"</th></tr></thead>
            <tbody>{evals.into_iter().map(|(e, l, m)| view! {
                <tr data-epoch=e.to_string()><td>{e}</td><td>{format!("{l:.4}")}</td><td class="accuracy">{format!("{:.4}", m.accuracy)}</td>
                <td>{format!("{:.4}", m.precision)}</td><td>{format!("{:.4}", m.recall)}</td><td>{format!("{:.4}", m.f1)}</td></tr>
            }).collect_view()}</tbody>
        </table>
        <p class="muted">{averaged}</p>
        <Confusion labels=labels matrix=last.confusion epoch=epochs />
    }
}

/// Rows: true class, columns: predicted.
#[component]
fn Confusion(labels: Vec<String>, matrix: Vec<Vec<usize>>, epoch: usize) -> impl IntoView {
    view! {
        <table id="confusion">
            <caption>{format!("Confusion matrix, epoch {epoch} (rows: true, columns: predicted)")}</caption>
            <thead><tr><th></th>{labels.iter().map(|l| view! { <th>{l.clone()}</th> }).collect_view()}</tr></thead>
            <tbody>{matrix.into_iter().enumerate().map(|(i, row)| view! {
                <tr><th>{labels[i].clone()}</th>{row.into_iter().map(|n| view! { <td>{n}</td> }).collect_view()}</tr>
            }).collect_view()}</tbody>
        </table>
    }
}
