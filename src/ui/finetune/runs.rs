//! The training runs kept in browser storage: each can resume where its last checkpoint stands
//! (after a reload, a crash or a cancel), or be deleted; the storage they take is shown.

use leptos::prelude::*;

use crate::protocol::RunInfo;
use crate::ui::state::human_bytes;

use super::state::FineTuneState;

#[component]
pub fn StoredRuns(state: FineTuneState) -> impl IntoView {
    // Once the engine runs (and again after a restart).
    Effect::new(move |_| {
        if state.app.backend.with(Option::is_some) {
            untrack(|| state.refresh_runs());
        }
    });
    let runs = state.runs;
    view! {
        <Show when=move || runs.with(|(r, _)| !r.is_empty())>
            <div class="card" id="stored-runs">
                <p>
                    "Runs kept in this browser, to resume after a reload or a crash ("
                    <span id="runs-bytes">{move || human_bytes(runs.with(|(_, b)| *b) as f64)}</span>
                    " of browser storage):"
                </p>
                <table>
                    <thead><tr><th>"base model"</th><th>"data"</th><th>"mode"</th><th>"stopped at"</th><th>"kept"</th><th></th></tr></thead>
                    <tbody>
                        {move || runs.get().0.into_iter().map(|r| row(state, r)).collect_view()}
                    </tbody>
                </table>
            </div>
        </Show>
    }
}

fn row(state: FineTuneState, r: RunInfo) -> impl IntoView {
    let saved = js_sys::Date::new(&wasm_bindgen::JsValue::from_f64(r.saved_ms))
        .to_locale_string("default", &wasm_bindgen::JsValue::UNDEFINED)
        .as_string()
        .unwrap_or_default();
    let (id, info) = (r.id.clone(), r.clone());
    let busy = move || state.running();
    view! {
        <tr class="stored-run" data-id=r.id.clone() data-step=r.step.to_string()>
            <td>{r.base_name.clone()}</td>
            <td>{r.data_file.clone()}</td>
            <td>{format!("{:?}", r.args.mode)}</td>
            <td>{format!("step {} of {} (epoch {})", r.step, r.total_steps, r.epoch)}</td>
            <td title=r.storage.clone()>{saved}</td>
            <td>
                <button class="resume-run" disabled=busy on:click=move |_| state.resume(info.clone())>"Resume"</button>
                " "
                <button class="delete-run secondary" disabled=busy on:click=move |_| state.delete_run(id.clone())>"Delete"</button>
            </td>
        </tr>
    }
}
