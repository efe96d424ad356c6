//! The Similarity page: sentences typed or taken from a CSV column, embedded by a sentence
//! embedding model; the similarity of every pair as a heat map, and the nearest sentences to a
//! query (semantic search), with the model's own similarity function.

use leptos::prelude::*;

use crate::data::{parse_table, Table, TableOptions};
use crate::pipelines::similarity::{Hit, Similarity};
use crate::protocol::{Event, Request, Slot};

use super::components::{ErrorBox, ModelPicker};
use super::files;
use super::request::Call;
use super::state::use_state;

/// What the engine answered, with the sentences and queries asked about.
#[derive(Clone)]
struct Answer {
    sentences: Vec<String>,
    queries: Vec<String>,
    function: Similarity,
    matrix: Option<Vec<Vec<f32>>>,
    hits: Vec<Vec<Hit>>,
}

fn lines(text: &str) -> Vec<String> {
    text.lines()
        .map(str::trim)
        .filter(|l| !l.is_empty())
        .map(String::from)
        .collect()
}

/// A cell's background: the score's place between the smallest and the largest score off the
/// diagonal, as the strength of the accent colour (white text on the strong ones).
fn shade(score: f32, low: f32, high: f32) -> String {
    let t = if high > low {
        ((score - low) / (high - low)).clamp(0.0, 1.0)
    } else {
        1.0
    };
    let text = if t > 0.55 { "; color: #fff" } else { "" };
    format!(
        "background: rgba(74, 58, 255, {:.3}){text}",
        0.06 + 0.84 * t
    )
}

#[component]
fn Matrix(sentences: Vec<String>, matrix: Vec<Vec<f32>>) -> impl IntoView {
    let off_diagonal = matrix.iter().enumerate().flat_map(|(i, r)| {
        r.iter()
            .enumerate()
            .filter(move |(j, _)| *j != i)
            .map(|(_, &s)| s)
    });
    let (low, high) = off_diagonal.fold((f32::INFINITY, f32::NEG_INFINITY), |(l, h), s| {
        (l.min(s), h.max(s))
    });
    let head = sentences.clone();
    view! {
        <div class="heat-map">
            <table id="sim-matrix">
                <thead><tr><th></th>{head.into_iter().enumerate().map(|(j, s)| view! { <th title=s>{(j + 1).to_string()}</th> }).collect_view()}</tr></thead>
                <tbody>
                    {matrix.into_iter().zip(sentences).enumerate().map(|(i, (row, s))| view! {
                        <tr>
                            <th class="sentence" title=s.clone()>{format!("{}. {s}", i + 1)}</th>
                            {row.into_iter().map(|score| view! {
                                <td data-score=score.to_string() style=shade(score, low, high)>{format!("{score:.2}")}</td>
                            }).collect_view()}
                        </tr>
                    }).collect_view()}
                </tbody>
            </table>
        </div>
    }
}

#[component]
pub fn SimilarityPage() -> impl IntoView {
    let state = use_state();
    let sentences = RwSignal::new(String::from(
        "A man is eating food.\nA man is eating a piece of bread.\nThe girl is carrying a baby.\n\
         A man is riding a horse.\nA woman is playing violin.\nA monkey is playing drums.",
    ));
    let query = RwSignal::new(String::from("A man is eating pasta."));
    let top_k = RwSignal::new(3usize);
    let table: RwSignal<Option<(String, Table)>, LocalStorage> = RwSignal::new_local(None);
    let answer: RwSignal<Option<Answer>> = RwSignal::new(None);
    let call = Call::new();

    let on_csv = move |ev: web_sys::Event| {
        let Some(file) = files::picked(&ev) else {
            return;
        };
        files::read_then(file, move |name, bytes| {
            let parsed = bytes.and_then(|b| {
                let bytes = js_sys::Uint8Array::new(&b).to_vec();
                parse_table(&bytes, &TableOptions::default()).map_err(|e| format!("{name}: {e}"))
            });
            match parsed {
                Ok(t) => {
                    let column = t.default_text_column();
                    fill_from(&t, column, sentences);
                    table.set(Some((name, t)));
                }
                Err(e) => call.fail(e),
            }
        });
    };
    let run = move |_| {
        let asked = lines(&sentences.get_untracked());
        let queries = lines(&query.get_untracked());
        let request = Request::Similarity {
            sentences: asked.clone(),
            queries: queries.clone(),
            top_k: top_k.get_untracked(),
        };
        call.send(request, None, move |event, _| {
            if let Event::Similarities {
                function,
                matrix,
                hits,
            } = event
            {
                answer.set(Some(Answer {
                    sentences: asked.clone(),
                    queries: queries.clone(),
                    function,
                    matrix,
                    hits,
                }));
            }
        });
    };

    view! {
        <section>
            <h2>"Sentence similarity and semantic search"</h2>
            <ModelPicker target=Slot::Embedder default_id="sentence-transformers/all-MiniLM-L6-v2"
                hint="A sentence-transformers model (its pooling, normalisation and similarity function are followed) or any BERT-family encoder (mean pooling, cosine)." />
            <div class="card similarity-box">
                <label for="sim-sentences">"Sentences (one per line)"</label>
                <textarea id="sim-sentences" rows="8" prop:value=move || sentences.get() on:input=move |ev| sentences.set(event_target_value(&ev))></textarea>
                <div class="row">
                    <div>
                        <label for="sim-csv">"or a column of a CSV/TSV file"</label>
                        <input id="sim-csv" type="file" accept=".csv,.tsv,.txt,text/csv,text/tab-separated-values" on:change=on_csv />
                    </div>
                    {move || table.with(|t| t.as_ref().map(|(name, t)| {
                        let columns = t.columns.clone();
                        let rows = t.rows.len();
                        let name = name.clone();
                        view! {
                            <div>
                                <label for="sim-column">{format!("Column of {name} ({rows} rows)")}</label>
                                <select id="sim-column" on:change=move |ev| {
                                    let column: usize = event_target_value(&ev).parse().unwrap_or(0);
                                    table.with_untracked(|t| if let Some((_, t)) = t { fill_from(t, column, sentences) });
                                }>
                                    {columns.into_iter().enumerate().map(|(i, c)| view! {
                                        <option value=i.to_string() selected=move || table.with(|t| t.as_ref().is_some_and(|(_, t)| t.default_text_column() == i))>{c}</option>
                                    }).collect_view()}
                                </select>
                            </div>
                        }
                    }))}
                </div>
                <div class="row">
                    <div>
                        <label for="sim-query">"Query (one per line; optional)"</label>
                        <textarea id="sim-query" rows="2" prop:value=move || query.get() on:input=move |ev| query.set(event_target_value(&ev))></textarea>
                    </div>
                    <div style="flex: 0 0 8rem">
                        <label for="sim-k">"Nearest"</label>
                        <input id="sim-k" type="number" min="1" max="100" prop:value=move || top_k.get().to_string()
                            on:input=move |ev| top_k.set(event_target_value(&ev).parse().unwrap_or(3)) />
                    </div>
                </div>
                <button id="sim-run" on:click=run disabled=move || call.busy() || state.embedder.get().is_none()>
                    {move || if call.busy() { "Embedding…" } else { "Compare" }}
                </button>
                <ErrorBox error=call.error() />
                {move || answer.get().map(|a| {
                    let Answer { sentences, queries, function, matrix, hits } = a;
                    let count = sentences.len();
                    view! {
                        <p class="muted" id="sim-function">{format!("{count} sentences, compared by {} similarity", function.name())}</p>
                        {match matrix {
                            Some(m) => view! { <Matrix sentences=sentences.clone() matrix=m /> }.into_any(),
                            None => view! { <p class="muted">{format!("Over {} sentences: no matrix, only the nearest ones to each query.", crate::pipelines::similarity::MAX_MATRIX)}</p> }.into_any(),
                        }}
                        <div id="sim-hits">
                            {queries.into_iter().zip(hits).map(|(q, hits)| view! {
                                <div class="query">
                                    <p class="text">{format!("Nearest to \u{201c}{q}\u{201d}")}</p>
                                    <ol>
                                        {hits.into_iter().map(|h| view! {
                                            <li data-corpus-id=h.corpus_id.to_string() data-score=h.score.to_string()>
                                                <span class="score">{format!("{:.4}", h.score)}</span>" "{sentences.get(h.corpus_id).cloned().unwrap_or_default()}
                                            </li>
                                        }).collect_view()}
                                    </ol>
                                </div>
                            }).collect_view()}
                        </div>
                    }
                })}
            </div>
        </section>
    }
}

/// Puts the non-empty values of `column` into the sentences, one per line (line breaks inside a
/// value become spaces).
fn fill_from(table: &Table, column: usize, sentences: RwSignal<String>) {
    let values: Vec<String> = table
        .rows
        .iter()
        .filter_map(|(_, fields)| fields.get(column))
        .map(|v| v.split_whitespace().collect::<Vec<_>>().join(" "))
        .filter(|v| !v.is_empty())
        .collect();
    sentences.set(values.join("\n"));
}
