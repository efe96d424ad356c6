//! The Classify page: a text (or one text per line) through a sequence classifier, every label
//! with its score (with an NLI model, zero-shot: the labels the user types; with a token
//! classifier, the named entities highlighted in the text); and a fill-mask box for masked-LM
//! checkpoints.

use leptos::prelude::*;

use crate::pipelines::ner::Entity;
use crate::pipelines::zero_shot::{parse_labels, NliOutputs, ZeroShotSpec, DEFAULT_TEMPLATE};
use crate::protocol::{Event, LabelScore, MaskCandidate, Request, Slot};

use super::components::{ErrorBox, ModelPicker, ScoreBars};
use super::request::Call;
use super::state::use_state;

/// The texts to classify: the whole input, or one per non-empty line.
fn texts_of(input: &str, batch: bool) -> Vec<String> {
    if batch {
        input
            .lines()
            .map(str::trim)
            .filter(|l| !l.is_empty())
            .map(String::from)
            .collect()
    } else {
        vec![input.trim().to_string()]
    }
}

/// The classifier box (also the embeddable widget).
#[component]
pub fn ClassifyBox() -> impl IntoView {
    let state = use_state();
    let text = RwSignal::new(String::from("I love the food here. It's amazing!"));
    let batch = RwSignal::new(false);
    let results: RwSignal<Vec<(String, Vec<LabelScore>)>> = RwSignal::new(Vec::new());
    let tagged: RwSignal<Vec<(String, Vec<Entity>)>> = RwSignal::new(Vec::new());
    // A token classifier tags named entities instead.
    let tagger = move || {
        state.classifier.with(|m| {
            m.as_ref()
                .is_some_and(|m| m.architecture.ends_with("ForTokenClassification"))
        })
    };
    // An NLI classifier (its labels include entailment) classifies zero-shot into these.
    let nli = move || {
        state.classifier.with(|m| {
            m.as_ref()
                .is_some_and(|m| NliOutputs::of(&m.labels).is_some())
        })
    };
    let candidates = RwSignal::new(String::from("positive, negative, neutral"));
    let template = RwSignal::new(String::from(DEFAULT_TEMPLATE));
    let multi_label = RwSignal::new(false);
    let call = Call::new();
    let run = move |_| {
        let texts = texts_of(&text.get_untracked(), batch.get_untracked());
        let sent = texts.clone();
        let request = if tagger() {
            Request::Tag { texts }
        } else if nli() {
            let spec = ZeroShotSpec {
                labels: parse_labels(&candidates.get_untracked()),
                template: template.get_untracked(),
                multi_label: multi_label.get_untracked(),
            };
            Request::ZeroShot { texts, spec }
        } else {
            Request::Classify { texts }
        };
        call.send(request, None, move |event, _| {
            let kept: Vec<String> = sent.iter().filter(|t| !t.is_empty()).cloned().collect();
            match event {
                Event::Classified { results: r } => {
                    tagged.set(Vec::new());
                    results.set(kept.into_iter().zip(r).collect());
                }
                Event::Tagged { entities } => {
                    results.set(Vec::new());
                    tagged.set(kept.into_iter().zip(entities).collect());
                }
                _ => {}
            }
        });
    };
    view! {
        <div class="card classify-box">
            <label for="classify-text">{move || if batch.get() { "Texts (one per line)" } else { "Text" }}</label>
            <textarea id="classify-text" prop:value=move || text.get() on:input=move |ev| text.set(event_target_value(&ev))></textarea>
            {move || nli().then(|| view! {
                <fieldset class="zero-shot">
                    <legend>"Zero-shot: this is an NLI model, it scores the labels you give"</legend>
                    <label for="zs-labels">"Candidate labels (comma-separated)"</label>
                    <input id="zs-labels" type="text" prop:value=move || candidates.get() on:input=move |ev| candidates.set(event_target_value(&ev)) />
                    <label for="zs-template">"Hypothesis template ({} is the label)"</label>
                    <input id="zs-template" type="text" prop:value=move || template.get() on:input=move |ev| template.set(event_target_value(&ev)) />
                    <label class="inline"><input type="checkbox" id="zs-multi" prop:checked=move || multi_label.get()
                        on:change=move |ev| multi_label.set(event_target_checked(&ev)) />" Several labels can be true (score each on its own)"</label>
                </fieldset>
            })}
            <div class="row">
                <label class="inline"><input type="checkbox" id="classify-batch" prop:checked=move || batch.get()
                    on:change=move |ev| batch.set(event_target_checked(&ev)) />" One text per line"</label>
                <button id="classify-run" on:click=run disabled=move || call.busy() || state.classifier.get().is_none()>
                    {move || if call.busy() { "Classifying…" } else { "Classify" }}
                </button>
            </div>
            <ErrorBox error=call.error() />
            <div id="classify-results">
                {move || results.get().into_iter().map(|(t, scores)| view! {
                    <div class="result">
                        <p class="text">{t}</p>
                        <ScoreBars scores=scores />
                    </div>
                }).collect_view()}
                {move || tagged.get().into_iter().map(|(t, entities)| { let none = entities.is_empty(); view! {
                    <div class="result tagged">
                        <Highlighted text=t entities=entities.clone() />
                        {none.then(|| view! { <p class="muted">"No entities."</p> })}
                        <table class="entities" hidden=none>
                            <thead><tr><th>"Entity"</th><th>"Text"</th><th>"Score"</th><th>"Characters"</th></tr></thead>
                            <tbody>
                                {entities.into_iter().map(|e| view! {
                                    <tr class="entity" data-entity=e.entity_group.clone() data-score=e.score.to_string()
                                        data-start=e.start.to_string() data-end=e.end.to_string()>
                                        <td>{e.entity_group.clone()}</td><td>{e.word.clone()}</td><td>{format!("{:.4}", e.score)}</td>
                                        <td>{format!("{}–{}", e.start, e.end)}</td>
                                    </tr>
                                }).collect_view()}
                            </tbody>
                        </table>
                    </div>
                }}).collect_view()}
            </div>
        </div>
    }
}

/// The text with each entity's span marked and labelled (offsets in characters).
#[component]
fn Highlighted(text: String, entities: Vec<Entity>) -> impl IntoView {
    let chars: Vec<char> = text.chars().collect();
    let slice = |a: usize, b: usize| -> String {
        chars[a.min(chars.len())..b.min(chars.len())]
            .iter()
            .collect()
    };
    let mut parts = Vec::new();
    let mut at = 0;
    for e in entities {
        if e.start < at || e.end <= e.start {
            continue;
        }
        if e.start > at {
            parts.push(view! { <span>{slice(at, e.start)}</span> }.into_any());
        }
        parts.push(
            view! {
                <mark class="entity" data-entity=e.entity_group.clone() title=format!("{} {:.3}", e.entity_group, e.score)>
                    {slice(e.start, e.end)}<small>{e.entity_group.clone()}</small>
                </mark>
            }
            .into_any(),
        );
        at = e.end;
    }
    if at < chars.len() {
        parts.push(view! { <span>{slice(at, chars.len())}</span> }.into_any());
    }
    view! { <p class="text highlighted">{parts}</p> }
}

#[component]
fn FillMaskBox() -> impl IntoView {
    let state = use_state();
    let text = RwSignal::new(String::from("The capital of France is [MASK]."));
    let k = RwSignal::new(5usize);
    let results: RwSignal<Vec<Vec<MaskCandidate>>> = RwSignal::new(Vec::new());
    let call = Call::new();
    let run = move |_| {
        call.send(
            Request::FillMask {
                text: text.get_untracked(),
                k: k.get_untracked(),
            },
            None,
            move |event, _| {
                if let Event::Filled { masks } = event {
                    results.set(masks)
                }
            },
        );
    };
    view! {
        <div class="card fill-mask-box">
            <label for="fill-text">"Text with the model's mask token ([MASK], <mask>)"</label>
            <input id="fill-text" type="text" prop:value=move || text.get() on:input=move |ev| text.set(event_target_value(&ev)) />
            <div class="row">
                <div>
                    <label for="fill-k">"Candidates"</label>
                    <input id="fill-k" type="number" min="1" max="50" prop:value=move || k.get().to_string()
                        on:input=move |ev| k.set(event_target_value(&ev).parse().unwrap_or(5)) />
                </div>
                <button id="fill-run" on:click=run disabled=move || call.busy() || state.fill_mask.get().is_none()>"Fill"</button>
            </div>
            <ErrorBox error=call.error() />
            <div id="fill-results">
                {move || results.get().into_iter().enumerate().map(|(i, cands)| view! {
                    <table>
                        <caption>{format!("Mask {}", i + 1)}</caption>
                        <thead><tr><th>"Token"</th><th>"Score"</th><th>"Sequence"</th></tr></thead>
                        <tbody>
                            {cands.into_iter().map(|c| view! {
                                <tr><td>{c.token_str}</td><td>{format!("{:.4}", c.score)}</td><td>{c.sequence}</td></tr>
                            }).collect_view()}
                        </tbody>
                    </table>
                }).collect_view()}
            </div>
        </div>
    }
}

#[component]
pub fn ClassifyPage() -> impl IntoView {
    view! {
        <section>
            <h2>"Text classification"</h2>
            <ModelPicker target=Slot::Classifier default_id="distilbert-base-uncased-finetuned-sst-2-english"
                hint="A *ForSequenceClassification checkpoint (an NLI one classifies zero-shot), a *ForTokenClassification one (named entities), or a model fine-tuned on the Fine-tune page." />
            <ClassifyBox />
            <h2>"Fill-mask"</h2>
            <ModelPicker target=Slot::FillMask default_id="bert-base-uncased" hint="A masked-LM checkpoint (BertForMaskedLM, DistilBertForMaskedLM, RobertaForMaskedLM, XLMRobertaForMaskedLM)." />
            <FillMaskBox />
        </section>
    }
}
