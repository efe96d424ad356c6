//! The data card: a labelled CSV/TSV (dropped, picked, or the bundled sample), its preview and
//! columns, and where the test set comes from (a split of it, or a separate file).

use leptos::prelude::*;

use crate::protocol::TablePreview;
use crate::ui::components::ErrorBox;
use crate::ui::files;

use super::state::FineTuneState;

const TABLE_FILES: &str = ".csv,.tsv,.txt,text/csv";

#[component]
pub fn DataCard(state: FineTuneState) -> impl IntoView {
    view! {
        <div class="card">
            <DropZone state=state />
            <ErrorBox error=state.data.call.error() />
            {move || state.data.preview.get().map(|p| view! { <DataPreview state=state preview=p /> })}
            <TestSource state=state />
        </div>
    }
}

/// Where a file is dropped or picked, or the sample dataset chosen.
#[component]
fn DropZone(state: FineTuneState) -> impl IntoView {
    let dragging = RwSignal::new(false);
    let on_drop = move |ev: web_sys::DragEvent| {
        ev.prevent_default();
        dragging.set(false);
        if let Some(file) = files::dropped(&ev) {
            state.open(file, false);
        }
    };
    let on_pick = move |ev: web_sys::Event| {
        if let Some(file) = files::picked(&ev) {
            state.open(file, false);
        }
    };
    view! {
        <div class=move || if dragging.get() { "dropzone over" } else { "dropzone" }
            on:dragover=move |ev: web_sys::DragEvent| { ev.prevent_default(); dragging.set(true) }
            on:dragleave=move |_| dragging.set(false)
            on:drop=on_drop>
            <p>"Drop a CSV or TSV file here (a text column and a label column), or"</p>
            <div class="row">
                <input id="dataset-file" type="file" accept=TABLE_FILES on:change=on_pick />
                <button class="secondary" id="load-sample" on:click=move |_| state.open_sample()>"Load the sample dataset"</button>
            </div>
        </div>
    }
}

/// "name: 120 rows, ','-separated, with a header" and the like.
fn describe(p: &TablePreview) -> String {
    format!(
        "{}: {} rows, {}-separated, {}{}",
        p.name,
        p.total_rows,
        match p.delimiter {
            '\t' => "tab".to_string(),
            c => format!("'{c}'"),
        },
        if p.has_header {
            "with a header"
        } else {
            "no header"
        },
        if p.ragged > 0 {
            format!(", {} malformed rows will be skipped", p.ragged)
        } else {
            String::new()
        }
    )
}

/// The training data's shape, its text and label columns, and its first rows.
#[component]
fn DataPreview(state: FineTuneState, preview: TablePreview) -> impl IntoView {
    let p = preview;
    view! {
        <div id="dataset-preview">
            <p class="muted">{describe(&p)}</p>
            <HeaderChoice state=state detected=p.has_header />
            <div class="row">
                <ColumnChoice id="text-column" label="Text column" columns=p.columns.clone() chosen=state.text_column fallback=0 />
                <ColumnChoice id="label-column" label="Label column" columns=p.columns.clone() chosen=state.label_column fallback=1 />
            </div>
            <div class="table-scroll">
                <table>
                    <thead><tr>{p.columns.iter().map(|c| view! { <th>{c.clone()}</th> }).collect_view()}</tr></thead>
                    <tbody>{p.rows.iter().map(|r| view! { <tr>{r.iter().map(|c| view! { <td>{c.clone()}</td> }).collect_view()}</tr> }).collect_view()}</tbody>
                </table>
            </div>
        </div>
    }
}

/// Whether the first row is the header: as detected, or as the user says.
#[component]
fn HeaderChoice(state: FineTuneState, detected: bool) -> impl IntoView {
    let header = state.header;
    let value = move || match header.get() {
        None => "detect",
        Some(true) => "header",
        Some(false) => "data",
    };
    // The preview says what was found only when it was detected, not set.
    let detect_label = match (header.get_untracked(), detected) {
        (None, true) => "as detected (a header)",
        (None, false) => "as detected (data)",
        (Some(_), _) => "detect",
    };
    view! {
        <div>
            <label for="dataset-header">"First row"</label>
            <select id="dataset-header" on:change=move |ev| state.set_header(match event_target_value(&ev).as_str() {
                "header" => Some(true),
                "data" => Some(false),
                _ => None,
            })>
                <option value="detect" selected=move || value() == "detect">{detect_label}</option>
                <option value="header" selected=move || value() == "header">"is the header"</option>
                <option value="data" selected=move || value() == "data">"is data"</option>
            </select>
        </div>
    }
}

/// A column picked by index.
#[component]
fn ColumnChoice(
    id: &'static str,
    label: &'static str,
    columns: Vec<String>,
    chosen: RwSignal<usize>,
    /// The column when the choice does not parse.
    fallback: usize,
) -> impl IntoView {
    view! {
        <div>
            <label for=id>{label}</label>
            <select id=id on:change=move |ev| chosen.set(event_target_value(&ev).parse().unwrap_or(fallback))>
                {columns.into_iter().enumerate().map(|(i, c)| view! { <option value=i.to_string() selected=move || chosen.get() == i>{c}</option> }).collect_view()}
            </select>
        </div>
    }
}

/// A held-out split of the data, or a separate test file.
#[component]
fn TestSource(state: FineTuneState) -> impl IntoView {
    let separate = state.separate_test;
    let on_pick = move |ev: web_sys::Event| {
        if let Some(file) = files::picked(&ev) {
            state.open(file, true);
        }
    };
    view! {
        <div class="row" id="test-source">
            <label class="inline"><input type="radio" name="test-source" id="test-split" prop:checked=move || !separate.get()
                on:change=move |_| separate.set(false) />" Test on a held-out split of this file"</label>
            <label class="inline"><input type="radio" name="test-source" id="test-separate" prop:checked=move || separate.get()
                on:change=move |_| separate.set(true) />" Test on a separate file"</label>
        </div>
        {move || separate.get().then(|| view! {
            <div class="row">
                <label for="test-file">"Test file (same columns, the training data's labels)"</label>
                <input id="test-file" type="file" accept=TABLE_FILES on:change=on_pick />
            </div>
            {move || state.test.preview.get().map(|p| view! {
                <p class="muted" id="test-preview">{format!("Test file {}: {} rows, {}", p.name, p.total_rows,
                    if p.has_header { format!("columns {}", p.columns.join(", ")) } else { format!("{} columns, no header", p.columns.len()) })}</p>
            })}
            <ErrorBox error=state.test.call.error() />
        })}
    }
}
