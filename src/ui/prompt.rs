//! The Prompt page: GPT-2 with zero- or few-shot templates (the seed's wording), an examples
//! editor, generation settings with streamed output, label probabilities by label scoring with
//! optional calibration, and evaluation of the prompt on a labelled CSV.

use leptos::prelude::*;
use wasm_bindgen_futures::JsFuture;

use crate::data::{import_dataset, TableOptions};
use crate::pipeline::LabelScore;
use crate::prompt::generate::GenerationConfig;
use crate::prompt::template::{sample_examples, Example, Template};
use crate::protocol::{Event, Request, ScorerSpec, Slot};
use crate::train::Metrics;

use super::client;
use super::components::{ErrorBox, ModelPicker, ScoreBars};
use super::state::use_state;
use crate::js::error_text;

fn split_list(s: &str) -> Vec<String> {
    s.split(',')
        .map(|x| x.trim().to_string())
        .filter(|x| !x.is_empty())
        .collect()
}

/// The prompt box (also the embeddable widget): template, input, generation and label scores.
#[component]
pub fn PromptBox(#[prop(optional)] compact: bool) -> impl IntoView {
    let state = use_state();
    let few_shot = RwSignal::new(false);
    // Raw: the input is the whole prompt, no template.
    let raw = RwSignal::new(false);
    let generated_ids = RwSignal::new(String::new());
    let template = RwSignal::new(Template::default());
    let examples: RwSignal<Vec<Example>> = RwSignal::new(vec![
        Example {
            text: "The food was delicious and the staff were friendly.".into(),
            label: "Positive".into(),
        },
        Example {
            text: "The service was slow and the room was dirty.".into(),
            label: "Negative".into(),
        },
    ]);
    let text = RwSignal::new(String::from("I love the food here. It's amazing!"));
    let gen = RwSignal::new(GenerationConfig {
        max_new_tokens: 10,
        stop_at_newline: true,
        ..GenerationConfig::default()
    });
    let stop_text = RwSignal::new(String::new());
    let output = RwSignal::new(String::new());
    let stop_reason = RwSignal::new(String::new());
    let labels = RwSignal::new(String::from("Positive, Negative"));
    let calibrate = RwSignal::new(false);
    let scores: RwSignal<Option<Vec<LabelScore>>> = RwSignal::new(None);
    let error: RwSignal<Option<String>> = RwSignal::new(None);
    let busy: RwSignal<Option<u64>> = RwSignal::new(None);
    let eval_metrics: RwSignal<Option<Metrics>> = RwSignal::new(None);
    let eval_progress = RwSignal::new((0usize, 0usize));
    let sample_k = RwSignal::new(2usize);

    let current_template = move || {
        if raw.get_untracked() {
            return Template {
                instruction: String::new(),
                input_prefix: String::new(),
                cue: String::new(),
                examples: Vec::new(),
            };
        }
        let mut t = template.get_untracked();
        t.examples = if few_shot.get_untracked() {
            examples.get_untracked()
        } else {
            Vec::new()
        };
        t
    };
    let prompt_for = move |input: &str| {
        if raw.get_untracked() {
            input.to_string()
        } else {
            current_template().render(input)
        }
    };
    let prompt_preview = move || {
        let _ = (template.get(), few_shot.get(), examples.get(), raw.get());
        prompt_for(&text.get())
    };
    let scorer = move || {
        let l = split_list(&labels.get_untracked());
        ScorerSpec {
            template: current_template(),
            labels: l.clone(),
            verbalizers: l,
            calibrate: calibrate.get_untracked(),
        }
    };

    let generate = move |_| {
        error.set(None);
        output.set(String::new());
        stop_reason.set(String::new());
        let mut config = gen.get_untracked();
        config.stop = stop_text
            .get_untracked()
            .lines()
            .map(|s| s.replace("\\n", "\n"))
            .filter(|s| !s.is_empty())
            .collect();
        generated_ids.set(String::new());
        let prompt = prompt_for(&text.get_untracked());
        let id = client::send(
            Request::Generate { prompt, config },
            None,
            move |event, _| match event {
                Event::Token { text } => output.update(|o| o.push_str(&text)),
                Event::Generated { generation } => {
                    output.set(generation.text);
                    generated_ids.set(
                        generation
                            .ids
                            .iter()
                            .map(u32::to_string)
                            .collect::<Vec<_>>()
                            .join(","),
                    );
                    stop_reason.set(format!(
                        "{} new tokens; stopped: {:?}",
                        generation.ids.len(),
                        generation.stop
                    ));
                }
                Event::Error { message } => {
                    error.set(Some(message));
                    busy.set(None);
                }
                Event::Done => busy.set(None),
                _ => {}
            },
        );
        busy.set(Some(id));
    };
    let score = move |_| {
        error.set(None);
        let id = client::send(
            Request::ScoreLabels {
                text: text.get_untracked(),
                scorer: scorer(),
            },
            None,
            move |event, _| match event {
                Event::Scored { scores: s } => {
                    let mut list: Vec<LabelScore> = s
                        .labels
                        .iter()
                        .zip(&s.probs)
                        .map(|(l, p)| LabelScore {
                            label: l.clone(),
                            score: *p,
                        })
                        .collect();
                    list.sort_by(|a, b| b.score.total_cmp(&a.score));
                    scores.set(Some(list));
                }
                Event::Error { message } => {
                    error.set(Some(message));
                    busy.set(None);
                }
                Event::Done => busy.set(None),
                _ => {}
            },
        );
        busy.set(Some(id));
    };
    let evaluate = move |ev: web_sys::Event| {
        let input: web_sys::HtmlInputElement = event_target(&ev);
        let Some(file) = input.files().and_then(|l| l.get(0)) else {
            return;
        };
        input.set_value("");
        error.set(None);
        eval_metrics.set(None);
        wasm_bindgen_futures::spawn_local(async move {
            let buf = match JsFuture::from(file.array_buffer()).await {
                Ok(b) => b,
                Err(e) => return error.set(Some(error_text(&e))),
            };
            let id = client::send(
                Request::EvaluatePrompt {
                    scorer: scorer(),
                    options: TableOptions::default(),
                    text_column: None,
                    label_column: None,
                },
                Some(buf),
                move |event, _| match event {
                    Event::Progress { done, total } => eval_progress.set((done, total)),
                    Event::PromptEvaluated { metrics, .. } => eval_metrics.set(Some(metrics)),
                    Event::Error { message } => {
                        error.set(Some(message));
                        busy.set(None);
                    }
                    Event::Done => busy.set(None),
                    _ => {}
                },
            );
            busy.set(Some(id));
        });
    };
    let sample_from_csv = move |ev: web_sys::Event| {
        let input: web_sys::HtmlInputElement = event_target(&ev);
        let Some(file) = input.files().and_then(|l| l.get(0)) else {
            return;
        };
        input.set_value("");
        wasm_bindgen_futures::spawn_local(async move {
            let buf = match JsFuture::from(file.array_buffer()).await {
                Ok(b) => js_sys::Uint8Array::new(&b).to_vec(),
                Err(e) => return error.set(Some(error_text(&e))),
            };
            match import_dataset(&buf, &TableOptions::default(), None, None) {
                Ok((data, _)) => {
                    // Dataset labels are shown capitalised, as the prompt's label words.
                    let cap = |s: &str| {
                        let mut c = s.chars();
                        c.next()
                            .map(|f| f.to_uppercase().collect::<String>() + c.as_str())
                            .unwrap_or_default()
                    };
                    let pool: Vec<(String, String)> = data
                        .texts
                        .iter()
                        .zip(&data.labels)
                        .map(|(t, &l)| (t.clone(), cap(&data.label_names[l])))
                        .collect();
                    examples.set(sample_examples(
                        &pool,
                        sample_k.get_untracked().max(1),
                        gen.get_untracked().seed,
                    ));
                    few_shot.set(true);
                    raw.set(false);
                }
                Err(e) => error.set(Some(format!("{}: {e}", file.name()))),
            }
        });
    };

    let text_field = move |label: &'static str,
                           id: &'static str,
                           get: fn(&Template) -> String,
                           set: fn(&mut Template, String)| {
        view! {
            <div>
                <label for=id>{label}</label>
                <input id=id type="text" prop:value=move || get(&template.get()) on:input=move |ev| { let v = event_target_value(&ev); template.update(|t| set(t, v)) } />
            </div>
        }
    };
    let gen_field = move |label: &'static str,
                          id: &'static str,
                          get: fn(&GenerationConfig) -> String,
                          set: fn(&mut GenerationConfig, &str)| {
        view! {
            <div>
                <label for=id>{label}</label>
                <input id=id type="text" inputmode="decimal" prop:value=move || get(&gen.get()) on:change=move |ev| { let v = event_target_value(&ev); gen.update(|g| set(g, v.trim())) } />
            </div>
        }
    };

    view! {
        <div class="card prompt-box">
            {(!compact).then(|| view! {
                <div class="row">
                    <label class="inline"><input type="radio" name="shots" id="zero-shot" prop:checked=move || !few_shot.get() && !raw.get() on:change=move |_| { few_shot.set(false); raw.set(false) } />" Zero-shot"</label>
                    <label class="inline"><input type="radio" name="shots" id="few-shot" prop:checked=move || few_shot.get() && !raw.get() on:change=move |_| { few_shot.set(true); raw.set(false) } />" Few-shot"</label>
                    <label class="inline"><input type="radio" name="shots" id="raw-prompt" prop:checked=move || raw.get() on:change=move |_| raw.set(true) />" Raw prompt (no template)"</label>
                </div>
                <label for="instruction">"Instruction"</label>
                <textarea id="instruction" rows="2" prop:value=move || template.get().instruction on:input=move |ev| { let v = event_target_value(&ev); template.update(|t| t.instruction = v) }></textarea>
                <div class="row">
                    {text_field("Input prefix", "input-prefix", |t| t.input_prefix.clone(), |t, v| t.input_prefix = v)}
                    {text_field("Cue", "cue", |t| t.cue.clone(), |t, v| t.cue = v)}
                </div>
                <Show when=move || few_shot.get() && !raw.get()>
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
                                    <input id="sample-k" type="number" min="1" max="16" style="flex: 0 0 5rem" prop:value=move || sample_k.get().to_string() on:input=move |ev| sample_k.set(event_target_value(&ev).parse().unwrap_or(2)) />
                                    <input id="sample-file" type="file" accept=".csv,.tsv,.txt" on:change=sample_from_csv />
                                </div>
                            </div>
                        </div>
                    </div>
                </Show>
            })}
            <label for="prompt-text">"Input"</label>
            <textarea id="prompt-text" rows="2" prop:value=move || text.get() on:input=move |ev| text.set(event_target_value(&ev))></textarea>
            <details>
                <summary>"Prompt sent to the model"</summary>
                <pre id="prompt-preview">{prompt_preview}</pre>
            </details>
            <div class="row">
                <label class="inline"><input type="checkbox" id="do-sample" prop:checked=move || gen.get().do_sample on:change=move |ev| { let v = event_target_checked(&ev); gen.update(|g| g.do_sample = v) } />" Sample (else greedy)"</label>
                <label class="inline"><input type="checkbox" id="stop-newline" prop:checked=move || gen.get().stop_at_newline on:change=move |ev| { let v = event_target_checked(&ev); gen.update(|g| g.stop_at_newline = v) } />" Stop at a newline"</label>
            </div>
            <div class="row">
                {gen_field("Max new tokens", "max-new-tokens", |g| g.max_new_tokens.to_string(), |g, v| if let Ok(x) = v.parse() { g.max_new_tokens = x })}
                {gen_field("Temperature", "temperature", |g| format!("{}", g.temperature), |g, v| if let Ok(x) = v.parse() { g.temperature = x })}
                {gen_field("Top-k (0: off)", "top-k", |g| g.top_k.to_string(), |g, v| if let Ok(x) = v.parse() { g.top_k = x })}
                {gen_field("Top-p", "top-p", |g| format!("{}", g.top_p), |g, v| if let Ok(x) = v.parse() { g.top_p = x })}
                {gen_field("Seed", "gen-seed", |g| g.seed.to_string(), |g, v| if let Ok(x) = v.parse() { g.seed = x })}
            </div>
            <label for="stop-strings">"Stop strings (one per line)"</label>
            <textarea id="stop-strings" rows="1" prop:value=move || stop_text.get() on:input=move |ev| stop_text.set(event_target_value(&ev))></textarea>
            <div class="row">
                <button id="generate" on:click=generate disabled=move || busy.get().is_some() || state.language_model.get().is_none()>"Generate"</button>
                <button id="stop" class="secondary" on:click=move |_| if let Some(id) = busy.get_untracked() { client::cancel(id) } disabled=move || busy.get().is_none()>"Stop"</button>
            </div>
            <pre id="generation" class="output" data-ids=move || generated_ids.get()>{move || output.get()}</pre>
            <p class="muted" id="stop-reason">{move || stop_reason.get()}</p>
            <h3>"Label probabilities"</h3>
            <div class="row">
                <div>
                    <label for="labels">"Labels (the words scored, comma-separated)"</label>
                    <input id="labels" type="text" prop:value=move || labels.get() on:input=move |ev| labels.set(event_target_value(&ev)) />
                </div>
                <label class="inline" style="flex: 0 0 auto"><input type="checkbox" id="calibrate" prop:checked=move || calibrate.get() on:change=move |ev| calibrate.set(event_target_checked(&ev)) />" Calibrate (content-free \"N/A\")"</label>
                <button id="score" style="flex: 0 0 auto" on:click=score disabled=move || busy.get().is_some() || state.language_model.get().is_none()>"Score labels"</button>
            </div>
            <div id="label-scores">{move || scores.get().map(|s| view! { <ScoreBars scores=s /> })}</div>
            {(!compact).then(|| view! {
                <h3>"Evaluate the prompt on a labelled CSV"</h3>
                <input id="eval-file" type="file" accept=".csv,.tsv,.txt" on:change=evaluate disabled=move || busy.get().is_some() || state.language_model.get().is_none() />
                {move || { let (d, t) = eval_progress.get(); (t > 0).then(|| view! {
                    <div class="bar"><span style=format!("width: {:.1}%", d as f64 * 100.0 / t as f64)></span></div>
                    <p class="muted">{format!("{d} / {t} rows scored")}</p>
                }) }}
                {move || eval_metrics.get().map(|m| view! {
                    <table id="prompt-metrics"><tbody>
                        <tr><th>"Accuracy"</th><td>{format!("{:.4}", m.accuracy)}</td></tr>
                        <tr><th>"Precision"</th><td>{format!("{:.4}", m.precision)}</td></tr>
                        <tr><th>"Recall"</th><td>{format!("{:.4}", m.recall)}</td></tr>
                        <tr><th>"F1"</th><td>{format!("{:.4}", m.f1)}</td></tr>
                    </tbody></table>
                })}
            })}
            <ErrorBox error=error />
        </div>
    }
}

#[component]
pub fn PromptPage() -> impl IntoView {
    view! {
        <section>
            <ModelPicker target=Slot::LanguageModel default_id="gpt2" hint="A GPT-2 family checkpoint: gpt2, distilgpt2, gpt2-medium." />
            <PromptBox />
        </section>
    }
}
