//! The Fine-tune page: a labelled CSV/TSV (dropped, picked, or the bundled sample), its preview
//! and column choice, the training settings (the seed's defaults), live charts and progress with
//! cancel, metrics and confusion matrices per epoch, then download or use the model.

use leptos::prelude::*;
use wasm_bindgen::JsValue;
use wasm_bindgen_futures::JsFuture;

use crate::data::{ImportReport, TableOptions};
use crate::protocol::{Event, Request, Slot, TablePreview};
use crate::train::{Metrics, Mode, Outcome, Phase, TrainEvent, TrainingArgs};

use super::charts::LineChart;
use super::client;
use super::components::{ErrorBox, ModelPicker};
use super::state::use_state;
use crate::js::error_text;

const SAMPLE: &str = "./static/sample_movie_reviews.csv";

#[derive(Clone, Debug, PartialEq)]
struct Run {
    id: u64,
    started_ms: f64,
    phase: Option<Phase>,
    done: usize,
    total: usize,
    elapsed_s: f64,
    losses: Vec<(f64, f64)>,
    evals: Vec<(usize, f64, Metrics)>,
    outcome: Option<Outcome>,
    /// Optimisation steps done when training ended.
    steps: usize,
    report: Option<(ImportReport, usize, usize)>,
    /// The engine reported an error (shown above the run).
    failed: bool,
}

fn download_bytes(name: &str, bytes: &JsValue) -> Result<(), String> {
    let parts = js_sys::Array::of1(bytes);
    let opts = web_sys::BlobPropertyBag::new();
    opts.set_type("application/zip");
    let blob = web_sys::Blob::new_with_buffer_source_sequence_and_options(&parts, &opts)
        .map_err(|e| error_text(&e))?;
    let url = web_sys::Url::create_object_url_with_blob(&blob).map_err(|e| error_text(&e))?;
    let document = web_sys::window()
        .and_then(|w| w.document())
        .ok_or("no document")?;
    let a: web_sys::HtmlAnchorElement = wasm_bindgen::JsCast::unchecked_into(
        document.create_element("a").map_err(|e| error_text(&e))?,
    );
    a.set_href(&url);
    a.set_download(name);
    a.click();
    // Revoked later: revoking at once can cancel the download before it starts.
    gloo::timers::callback::Timeout::new(60_000, move || {
        let _ = web_sys::Url::revoke_object_url(&url);
    })
    .forget();
    Ok(())
}

#[component]
pub fn FineTunePage() -> impl IntoView {
    let state = use_state();
    let preview: RwSignal<Option<TablePreview>> = RwSignal::new(None);
    let text_col = RwSignal::new(0usize);
    let label_col = RwSignal::new(1usize);
    let data_error: RwSignal<Option<String>> = RwSignal::new(None);
    let train_error: RwSignal<Option<String>> = RwSignal::new(None);
    let dragging = RwSignal::new(false);
    let args = RwSignal::new(TrainingArgs::default());
    let test_fraction = RwSignal::new(0.2f64);
    // Evaluate on a separate test file instead of a split of the training file.
    let separate = RwSignal::new(false);
    let test_preview: RwSignal<Option<TablePreview>> = RwSignal::new(None);
    let test_error: RwSignal<Option<String>> = RwSignal::new(None);
    let run: RwSignal<Option<Run>> = RwSignal::new(None);
    let saved_msg: RwSignal<Option<String>> = RwSignal::new(None);

    // `test`: the file is the separate test file, not the training data.
    let parse = move |name: String, bytes: JsValue, test: bool| {
        let (shown, error) = if test {
            (test_preview, test_error)
        } else {
            (preview, data_error)
        };
        error.set(None);
        shown.set(None);
        client::send(
            Request::ParseTable {
                name,
                options: TableOptions::default(),
                test,
            },
            Some(bytes),
            move |event, _| match event {
                Event::Table { preview: p } => {
                    if !test {
                        text_col.set(p.text_column);
                        label_col.set(p.label_column);
                    }
                    shown.set(Some(p));
                }
                Event::Error { message } => error.set(Some(message)),
                _ => {}
            },
        );
    };
    let read_file = move |file: web_sys::File, test: bool| {
        let name = file.name();
        wasm_bindgen_futures::spawn_local(async move {
            match JsFuture::from(file.array_buffer()).await {
                Ok(buf) => parse(name, buf, test),
                Err(e) => {
                    let error = if test { test_error } else { data_error };
                    error.set(Some(format!("{name}: {}", error_text(&e))))
                }
            }
        });
    };
    let on_pick = move |ev: web_sys::Event| {
        let input: web_sys::HtmlInputElement = event_target(&ev);
        if let Some(f) = input.files().and_then(|l| l.get(0)) {
            read_file(f, false);
        }
        input.set_value("");
    };
    let on_pick_test = move |ev: web_sys::Event| {
        let input: web_sys::HtmlInputElement = event_target(&ev);
        if let Some(f) = input.files().and_then(|l| l.get(0)) {
            read_file(f, true);
        }
        input.set_value("");
    };
    let on_drop = move |ev: web_sys::DragEvent| {
        ev.prevent_default();
        dragging.set(false);
        if let Some(f) = ev
            .data_transfer()
            .and_then(|d| d.files())
            .and_then(|l| l.get(0))
        {
            read_file(f, false);
        }
    };
    let load_sample = move |_| {
        wasm_bindgen_futures::spawn_local(async move {
            let result: Result<JsValue, String> = async {
                let window = web_sys::window().ok_or("no window")?;
                let resp: web_sys::Response = wasm_bindgen::JsCast::unchecked_into(
                    JsFuture::from(window.fetch_with_str(SAMPLE))
                        .await
                        .map_err(|e| error_text(&e))?,
                );
                if !resp.ok() {
                    return Err(format!(
                        "the sample dataset is missing (HTTP {})",
                        resp.status()
                    ));
                }
                JsFuture::from(resp.array_buffer().map_err(|e| error_text(&e))?)
                    .await
                    .map_err(|e| error_text(&e))
            }
            .await;
            match result {
                Ok(buf) => parse("sample_movie_reviews.csv".into(), buf, false),
                Err(e) => data_error.set(Some(e)),
            }
        });
    };

    let start = move |_| {
        train_error.set(None);
        saved_msg.set(None);
        let a = args.get_untracked();
        if let Err(e) = a.validate() {
            train_error.set(Some(e));
            return;
        }
        let request = Request::Train {
            text_column: text_col.get_untracked(),
            label_column: label_col.get_untracked(),
            test_fraction: test_fraction.get_untracked(),
            split_seed: a.seed,
            separate_test: separate.get_untracked(),
            args: a,
        };
        let id = client::send(request, None, move |event, _| match event {
            Event::Imported {
                report,
                train,
                test,
            } => run.update(|r| {
                if let Some(r) = r {
                    r.report = Some((report, train, test))
                }
            }),
            Event::Train { event } => run.update(|r| {
                let Some(r) = r else { return };
                match event {
                    TrainEvent::Progress {
                        phase,
                        done,
                        total,
                        elapsed_s,
                    } => {
                        r.phase = Some(phase);
                        r.done = done;
                        r.total = total;
                        r.elapsed_s = elapsed_s;
                    }
                    TrainEvent::Log { step, loss, .. } => r.losses.push((step as f64, loss)),
                    TrainEvent::Evaluated {
                        epoch,
                        loss,
                        metrics,
                        ..
                    } => r.evals.push((epoch, loss, metrics)),
                    TrainEvent::Finished {
                        outcome,
                        steps,
                        elapsed_s,
                        ..
                    } => {
                        r.outcome = Some(outcome);
                        r.steps = steps;
                        r.elapsed_s = elapsed_s;
                    }
                    TrainEvent::Started { .. } => {}
                }
            }),
            Event::Error { message } => {
                train_error.set(Some(message));
                // Refused before anything ran (bad data, a missing model): no run to show.
                if run.get_untracked().is_some_and(|r| r.phase.is_none()) {
                    run.set(None);
                }
                run.update(|r| {
                    if let Some(r) = r {
                        r.failed = true;
                        r.outcome.get_or_insert(Outcome::Cancelled);
                    }
                });
            }
            _ => {}
        });
        run.set(Some(Run {
            id,
            started_ms: js_sys::Date::now(),
            phase: None,
            done: 0,
            total: 0,
            elapsed_s: 0.0,
            losses: vec![],
            evals: vec![],
            outcome: None,
            steps: 0,
            report: None,
            failed: false,
        }));
    };
    let cancel = move |_| {
        if let Some(r) = run.get_untracked() {
            client::cancel(r.id);
        }
    };
    let running = move || run.get().is_some_and(|r| r.outcome.is_none());
    // A model exists once training ended (completed or cancelled) after at least one step.
    let finished_ok = move || {
        run.get().is_some_and(|r| {
            matches!(
                r.outcome,
                Some(Outcome::Completed) | Some(Outcome::Cancelled)
            ) && r.steps > 0
        })
    };

    let export = move |_| {
        client::send(
            Request::ExportTrained,
            None,
            move |event, payload| match event {
                Event::Exported { file_name } => match payload {
                    Some(bytes) => match download_bytes(&file_name, &bytes) {
                        Ok(()) => saved_msg.set(Some(format!("Saved {file_name}"))),
                        Err(e) => train_error.set(Some(e)),
                    },
                    None => train_error.set(Some("the engine sent no file".into())),
                },
                Event::Error { message } => train_error.set(Some(message)),
                _ => {}
            },
        );
    };
    let use_model = move |_| {
        let name = format!(
            "{} fine-tuned {}",
            state
                .base
                .get_untracked()
                .map(|b| b.name)
                .unwrap_or_default(),
            js_sys::Date::new_0()
                .to_iso_string()
                .as_string()
                .unwrap_or_default()
                .get(..16)
                .unwrap_or("")
        );
        client::send(
            Request::UseTrained { name },
            None,
            move |event, _| match event {
                Event::Loaded { info, .. } => {
                    saved_msg.set(Some(format!(
                        "\"{}\" is on the Classify page and kept in browser storage",
                        info.name
                    )));
                    state.classifier.set(Some(info));
                    state.refresh_cached();
                }
                Event::Error { message } => train_error.set(Some(message)),
                _ => {}
            },
        );
    };

    let num_input = move |label: &'static str,
                          id: &'static str,
                          get: fn(&TrainingArgs) -> String,
                          set: fn(&mut TrainingArgs, &str)| {
        view! {
            <div>
                <label for=id>{label}</label>
                <input id=id type="text" inputmode="decimal" prop:value=move || get(&args.get())
                    on:change=move |ev| { let v = event_target_value(&ev); args.update(|a| set(a, v.trim())) } />
            </div>
        }
    };

    view! {
        <section>
            <h2>"1. Base model"</h2>
            <ModelPicker target=Slot::Base default_id="sentence-transformers/all-MiniLM-L6-v2"
                hint="A BERT, DistilBERT or MiniLM checkpoint; a classification head is added on top." />

            <h2>"2. Labelled data"</h2>
            <div class="card">
                <div class=move || if dragging.get() { "dropzone over" } else { "dropzone" }
                    on:dragover=move |ev: web_sys::DragEvent| { ev.prevent_default(); dragging.set(true) }
                    on:dragleave=move |_| dragging.set(false)
                    on:drop=on_drop>
                    <p>"Drop a CSV or TSV file here (a text column and a label column), or"</p>
                    <div class="row">
                        <input id="dataset-file" type="file" accept=".csv,.tsv,.txt,text/csv" on:change=on_pick />
                        <button class="secondary" id="load-sample" on:click=load_sample>"Load the sample dataset"</button>
                    </div>
                </div>
                <ErrorBox error=data_error />
                {move || preview.get().map(|p| {
                    let cols = p.columns.clone();
                    let cols2 = p.columns.clone();
                    view! {
                        <div id="dataset-preview">
                            <p class="muted">{format!("{}: {} rows, {}-separated, {}{}", p.name, p.total_rows,
                                match p.delimiter { '\t' => "tab".to_string(), c => format!("'{c}'") },
                                if p.has_header { "with a header" } else { "no header" },
                                if p.ragged > 0 { format!(", {} malformed rows will be skipped", p.ragged) } else { String::new() })}</p>
                            <div class="row">
                                <div>
                                    <label for="text-column">"Text column"</label>
                                    <select id="text-column" on:change=move |ev| text_col.set(event_target_value(&ev).parse().unwrap_or(0))>
                                        {cols.into_iter().enumerate().map(|(i, c)| view! { <option value=i.to_string() selected=move || text_col.get() == i>{c}</option> }).collect_view()}
                                    </select>
                                </div>
                                <div>
                                    <label for="label-column">"Label column"</label>
                                    <select id="label-column" on:change=move |ev| label_col.set(event_target_value(&ev).parse().unwrap_or(1))>
                                        {cols2.into_iter().enumerate().map(|(i, c)| view! { <option value=i.to_string() selected=move || label_col.get() == i>{c}</option> }).collect_view()}
                                    </select>
                                </div>
                            </div>
                            <div class="table-scroll">
                                <table>
                                    <thead><tr>{p.columns.iter().map(|c| view! { <th>{c.clone()}</th> }).collect_view()}</tr></thead>
                                    <tbody>{p.rows.iter().map(|r| view! { <tr>{r.iter().map(|c| view! { <td>{c.clone()}</td> }).collect_view()}</tr> }).collect_view()}</tbody>
                                </table>
                            </div>
                        </div>
                    }
                })}
                <div class="row" id="test-source">
                    <label class="inline"><input type="radio" name="test-source" id="test-split" prop:checked=move || !separate.get()
                        on:change=move |_| separate.set(false) />" Test on a held-out split of this file"</label>
                    <label class="inline"><input type="radio" name="test-source" id="test-separate" prop:checked=move || separate.get()
                        on:change=move |_| separate.set(true) />" Test on a separate file"</label>
                </div>
                {move || separate.get().then(|| view! {
                    <div class="row">
                        <label for="test-file">"Test file (same columns, the training data's labels)"</label>
                        <input id="test-file" type="file" accept=".csv,.tsv,.txt,text/csv" on:change=on_pick_test />
                    </div>
                    {move || test_preview.get().map(|p| view! {
                        <p class="muted" id="test-preview">{format!("Test file {}: {} rows, {}", p.name, p.total_rows,
                            if p.has_header { format!("columns {}", p.columns.join(", ")) } else { format!("{} columns, no header", p.columns.len()) })}</p>
                    })}
                    <ErrorBox error=test_error />
                })}
            </div>

            <h2>"3. Training"</h2>
            <div class="card" id="train-settings">
                <div class="row">
                    <label class="inline"><input type="radio" name="mode" id="mode-head" prop:checked=move || args.get().mode == Mode::Head
                        on:change=move |_| args.update(|a| { a.mode = Mode::Head; a.learning_rate = 2e-3; }) />
                        " Head only (encoder frozen: fast)"</label>
                    <label class="inline"><input type="radio" name="mode" id="mode-full" prop:checked=move || args.get().mode == Mode::Full
                        on:change=move |_| args.update(|a| { a.mode = Mode::Full; a.learning_rate = 5e-5; }) />
                        " Full (all weights: slow, usually better)"</label>
                </div>
                <div class="row">
                    {num_input("Epochs", "arg-epochs", |a| a.num_train_epochs.to_string(), |a, v| if let Ok(x) = v.parse() { a.num_train_epochs = x })}
                    {num_input("Batch size", "arg-batch", |a| a.per_device_train_batch_size.to_string(), |a, v| if let Ok(x) = v.parse() { a.per_device_train_batch_size = x })}
                    {num_input("Learning rate", "arg-lr", |a| format!("{}", a.learning_rate), |a, v| if let Ok(x) = v.parse() { a.learning_rate = x })}
                    {num_input("Max length (tokens)", "arg-maxlen", |a| a.max_length.to_string(), |a, v| if let Ok(x) = v.parse() { a.max_length = x })}
                </div>
                <div class="row">
                    {num_input("Weight decay", "arg-wd", |a| format!("{}", a.weight_decay), |a, v| if let Ok(x) = v.parse() { a.weight_decay = x })}
                    {num_input("Warm-up ratio", "arg-warmup", |a| format!("{}", a.warmup_ratio), |a, v| if let Ok(x) = v.parse() { a.warmup_ratio = x })}
                    {num_input("Log every (steps)", "arg-logging", |a| a.logging_steps.to_string(), |a, v| if let Ok(x) = v.parse() { a.logging_steps = x })}
                    {num_input("Seed", "arg-seed", |a| a.seed.to_string(), |a, v| if let Ok(x) = v.parse() { a.seed = x })}
                    <div>
                        <label for="arg-test">"Test split"</label>
                        <input id="arg-test" type="text" inputmode="decimal" prop:value=move || test_fraction.get().to_string()
                            disabled=move || separate.get()
                            on:change=move |ev| if let Ok(x) = event_target_value(&ev).trim().parse() { test_fraction.set(x) } />
                    </div>
                </div>
                <p class="muted">{move || if separate.get() { "Evaluation after each epoch on the test file; training uses every row of the data file." } else { "Evaluation after each epoch on the held-out split (stratified, seeded)." }}</p>
                <div class="row">
                    <button id="train-start" on:click=start disabled=move || running() || preview.get().is_none() || state.base.get().is_none() || (separate.get() && test_preview.get().is_none())>"Start training"</button>
                    <button id="train-cancel" class="secondary" on:click=cancel disabled=move || !running()>"Cancel"</button>
                </div>
                <ErrorBox error=train_error />
            </div>

            {move || run.get().map(|r| {
                let pct = if r.outcome == Some(Outcome::Completed) { 100.0 } else if r.total > 0 { r.done as f64 * 100.0 / r.total as f64 } else { 0.0 };
                let left = if r.done > 0 && r.total > r.done && r.phase == Some(Phase::Training) {
                    let per = (js_sys::Date::now() - r.started_ms) / 1000.0 / r.done as f64;
                    format!(", about {:.0} s left", per * (r.total - r.done) as f64)
                } else { String::new() };
                let phase = match r.phase { Some(Phase::Extracting) => "Extracting features", Some(Phase::Evaluating) => "Evaluating", Some(Phase::Training) => "Training", None => "Preparing" };
                view! {
                    <div class="card" id="train-run">
                        {r.report.clone().map(|(rep, train, test)| view! {
                            <p class="muted" id="import-report">{format!("{} rows used of {} ({} train / {} test); classes: {}{}",
                                rep.rows_used, rep.rows_read, train, test,
                                rep.classes.iter().map(|(c, n)| format!("{c} ({n})")).collect::<Vec<_>>().join(", "),
                                if rep.skipped.is_empty() { String::new() } else {
                                    format!("; skipped: {}", rep.skipped.iter().take(5).map(|s| format!("row {} {}", s.row, s.reason)).collect::<Vec<_>>().join("; "))
                                })}</p>
                        })}
                        <div id="train-progress" data-done=r.done.to_string() data-total=r.total.to_string()>
                            <div class="muted">{match &r.outcome {
                                None => format!("{phase}: {} / {}{left}", r.done, r.total),
                                Some(Outcome::Completed) => format!("Finished in {:.0} s", r.elapsed_s),
                                Some(_) if r.failed => "Stopped by the error above".to_string(),
                                Some(Outcome::Cancelled) => "Stopped; the model keeps the weights of the last finished step".to_string(),
                                Some(Outcome::Diverged(m)) => m.clone(),
                            }}</div>
                            <div class="bar"><span style=format!("width: {pct:.1}%")></span></div>
                        </div>
                        <div class="charts">
                            <LineChart title="Training loss" id="chart-loss" points=Signal::derive(move || run.get().map(|r| r.losses).unwrap_or_default()) />
                            <LineChart title="Test accuracy per epoch" id="chart-accuracy" y_unit_range=true
                                points=Signal::derive(move || run.get().map(|r| r.evals.iter().map(|(e, _, m)| (*e as f64, m.accuracy)).collect()).unwrap_or_default()) />
                        </div>
                        {(!r.evals.is_empty()).then(|| {
                            let labels: Vec<String> = r.evals[0].2.per_class.iter().map(|c| c.label.clone()).collect();
                            let last = r.evals[r.evals.len() - 1].2.clone();
                            view! {
                                <table id="metrics-table">
                                    <thead><tr><th>"Epoch"</th><th>"Loss"</th><th>"Accuracy"</th><th>"Precision"</th><th>"Recall"</th><th>"F1"</th></tr></thead>
                                    <tbody>{r.evals.iter().map(|(e, l, m)| view! {
                                        <tr data-epoch=e.to_string()><td>{*e}</td><td>{format!("{l:.4}")}</td><td class="accuracy">{format!("{:.4}", m.accuracy)}</td>
                                        <td>{format!("{:.4}", m.precision)}</td><td>{format!("{:.4}", m.recall)}</td><td>{format!("{:.4}", m.f1)}</td></tr>
                                    }).collect_view()}</tbody>
                                </table>
                                <p class="muted">{if last.average == "binary" { format!("Precision, recall and F1 of \"{}\"", labels.get(last.positive.unwrap_or(1)).cloned().unwrap_or_default()) } else { "Macro averages over classes".to_string() }}</p>
                                <table id="confusion">
                                    <caption>{format!("Confusion matrix, epoch {} (rows: true, columns: predicted)", r.evals.len())}</caption>
                                    <thead><tr><th></th>{labels.iter().map(|l| view! { <th>{l.clone()}</th> }).collect_view()}</tr></thead>
                                    <tbody>{last.confusion.iter().enumerate().map(|(i, row)| view! {
                                        <tr><th>{labels[i].clone()}</th>{row.iter().map(|n| view! { <td>{*n}</td> }).collect_view()}</tr>
                                    }).collect_view()}</tbody>
                                </table>
                            }
                        })}
                    </div>
                }
            })}
            <div class="row" id="train-actions">
                <button id="export-model" class="secondary" on:click=export disabled=move || !finished_ok()>"Download the model (.zip, Hugging Face folder)"</button>
                <button id="use-model" on:click=use_model disabled=move || !finished_ok()>"Use it on the Classify page"</button>
            </div>
            {move || saved_msg.get().map(|m| view! { <p class="loaded" id="saved-message">{m}</p> })}
        </section>
    }
}
