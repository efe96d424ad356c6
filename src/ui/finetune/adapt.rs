//! Domain adaptation (optional, before fine-tuning): the base model's masked-language-model
//! training continued on the user's own unlabelled text — the data file's text column, or the
//! lines of a text file — with the held-out perplexity before and after each epoch; then the
//! adapted encoder as the base model, or downloaded as a `*ForMaskedLM` folder.

use leptos::prelude::*;
use wasm_bindgen::JsValue;

use crate::protocol::{Event, Outcome, Request, TrainEvent, TrainingArgs};
use crate::ui::components::{setting_field, ErrorBox};
use crate::ui::files;
use crate::ui::request::Call;

use super::state::FineTuneState;

/// The settings: training arguments (epochs, rate, batch, length), the masking probability and
/// the held-out share.
#[derive(Debug, Clone, PartialEq)]
struct Settings {
    args: TrainingArgs,
    probability: f64,
    held_out: f64,
}

impl Default for Settings {
    fn default() -> Self {
        Self {
            args: TrainingArgs {
                num_train_epochs: 1,
                learning_rate: 5e-5,
                ..TrainingArgs::default()
            },
            probability: 0.15,
            held_out: 0.1,
        }
    }
}

/// What a masked-LM run has shown so far.
#[derive(Debug, Clone, Default, PartialEq)]
struct Progress {
    done: usize,
    total: usize,
    /// (epoch, held-out masked loss, perplexity); epoch 0 before training.
    perplexity: Vec<(usize, f64, f64)>,
    outcome: Option<Outcome>,
}

#[component]
pub fn DomainAdaptation(state: FineTuneState) -> impl IntoView {
    let settings = RwSignal::new(Settings::default());
    let progress = RwSignal::new(None::<Progress>);
    let text_file = StoredValue::new_local(None::<web_sys::File>);
    let text_name = RwSignal::new(None::<String>);
    let call = Call::new();
    let actions = Call::reporting_to(call.error());
    let message = RwSignal::new(None::<String>);
    let has_text =
        move || text_name.with(Option::is_some) || state.data.preview.with(Option::is_some);
    let can_start = move || !call.busy() && state.app.base.with(Option::is_some) && has_text();
    let adapted = move || {
        progress.with(|p| {
            p.as_ref()
                .is_some_and(|p| p.outcome == Some(Outcome::Completed))
        })
    };
    let start = move |_| {
        let s = settings.get_untracked();
        if let Err(e) = s.args.validate() {
            call.fail(e);
            return;
        }
        message.set(None);
        progress.set(Some(Progress::default()));
        // The adapted encoder lives in this engine only (see AppState::made).
        state.app.made.set(true);
        let payload: Option<JsValue> = text_file.get_value().map(Into::into);
        call.send(
            Request::PreTrain {
                text_column: state.text_column.get_untracked(),
                args: s.args,
                probability: s.probability,
                held_out: s.held_out,
            },
            payload,
            move |event, _| {
                if let Event::Train { event } = event {
                    progress.update(|p| {
                        let Some(p) = p else { return };
                        match event {
                            TrainEvent::Progress { done, total, .. } => {
                                (p.done, p.total) = (done, total)
                            }
                            TrainEvent::MaskedLm {
                                epoch,
                                loss,
                                perplexity,
                            } => p.perplexity.push((epoch, loss, perplexity)),
                            TrainEvent::Finished { outcome, .. } => p.outcome = Some(outcome),
                            _ => {}
                        }
                    });
                }
            },
        );
    };
    let on_text = move |ev: web_sys::Event| {
        let file = files::picked(&ev);
        text_name.set(file.as_ref().map(|f| f.name()));
        text_file.set_value(file);
    };
    let use_it = move |_| {
        let app = state.app;
        actions.send(Request::UseAdapted, None, move |event, _| {
            if let Event::Loaded { info, .. } = event {
                message.set(Some(format!(
                    "\"{}\" is now the base model to fine-tune",
                    info.name
                )));
                app.base.set(Some(info));
                app.refresh_stored();
            }
        });
    };
    let export = move |_| {
        actions.download(Request::ExportAdapted, move |file_name| {
            message.set(Some(format!("Saved {file_name}")))
        });
    };
    view! {
        <div class="card" id="mlm-card">
            <p class="muted">"Continue the base model's masked-language-model training on your own text, no labels needed (15% of the tokens hidden and predicted, as transformers' DataCollatorForLanguageModeling), then fine-tune the adapted encoder: the data file's text column, or the lines of a text file."</p>
            <div class="row">
                <label class="inline" for="mlm-text-file">"Text file (optional): "</label>
                <input id="mlm-text-file" type="file" accept=".txt,text/plain" on:change=on_text />
                <span class="muted">{move || text_name.get().unwrap_or_else(|| "using the data file's text column".into())}</span>
            </div>
            <div class="row">
                {setting_field(settings, "Epochs", "mlm-epochs", |s| s.args.num_train_epochs.to_string(), |s, v| if let Ok(x) = v.parse() { s.args.num_train_epochs = x })}
                {setting_field(settings, "Learning rate", "mlm-lr", |s| format!("{}", s.args.learning_rate), |s, v| if let Ok(x) = v.parse() { s.args.learning_rate = x })}
                {setting_field(settings, "Batch size", "mlm-batch", |s| s.args.per_device_train_batch_size.to_string(), |s, v| if let Ok(x) = v.parse() { s.args.per_device_train_batch_size = x })}
                {setting_field(settings, "Max length", "mlm-maxlen", |s| s.args.max_length.to_string(), |s, v| if let Ok(x) = v.parse() { s.args.max_length = x })}
                {setting_field(settings, "Masked share", "mlm-prob", |s| format!("{}", s.probability), |s, v| if let Ok(x) = v.parse() { s.probability = x })}
                {setting_field(settings, "Held out", "mlm-held", |s| format!("{}", s.held_out), |s, v| if let Ok(x) = v.parse() { s.held_out = x })}
            </div>
            <div class="row">
                <button id="mlm-start" disabled=move || !can_start() on:click=start>"Start masked-LM training"</button>
                <button id="mlm-cancel" class="secondary" disabled=move || !call.busy() on:click=move |_| call.cancel()>"Cancel"</button>
            </div>
            {move || progress.get().map(|p| view! {
                <div id="mlm-progress" data-done=p.done.to_string() data-total=p.total.to_string()
                    data-finished=p.outcome.is_some().to_string()>
                    <div class="muted">{match &p.outcome {
                        None => format!("Masked-LM training: step {} / {}", p.done, p.total),
                        Some(Outcome::Completed) => "Masked-LM training finished".to_string(),
                        Some(Outcome::Cancelled) => "Masked-LM training stopped".to_string(),
                        Some(Outcome::Diverged(m)) => m.clone(),
                    }}</div>
                    <table id="mlm-perplexity">
                        <thead><tr><th>"epoch"</th><th>"held-out masked-token loss"</th><th>"perplexity"</th></tr></thead>
                        <tbody>{p.perplexity.iter().map(|&(e, loss, ppl)| view! {
                            <tr data-epoch=e.to_string()><td>{if e == 0 { "before".to_string() } else { e.to_string() }}</td>
                                <td class="loss">{format!("{loss:.4}")}</td>
                                <td class="perplexity" data-value=ppl.to_string()>{format!("{ppl:.2}")}</td></tr>
                        }).collect_view()}</tbody>
                    </table>
                </div>
            })}
            <Show when=adapted>
                <div class="row">
                    <button id="mlm-use" on:click=use_it>"Use the adapted encoder as the base model"</button>
                    <button id="mlm-export" class="secondary" on:click=export>"Download it (.zip, *ForMaskedLM folder)"</button>
                </div>
            </Show>
            {move || message.get().map(|m| view! { <p class="loaded" id="mlm-message">{m}</p> })}
            <ErrorBox error=call.error() />
        </div>
    }
}
