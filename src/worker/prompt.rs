//! Prompting the loaded language model: generation with streamed tokens, label scoring, few-shot
//! examples sampled from a CSV, and evaluation of a prompt on a labelled CSV.

use wasm_bindgen::JsValue;

use super::{payload_bytes, state, Reply};
use crate::data::{import_dataset, TableOptions};
use crate::error::Error;
use crate::prompt::generate::{self as generation, GenerationConfig};
use crate::prompt::{examples_from_dataset, LabelScorer};
use crate::protocol::{Event, ScorerSpec};

fn scorer(spec: ScorerSpec) -> LabelScorer {
    let mut s = LabelScorer::new(spec.template, spec.labels, spec.verbalizers);
    s.calibrate = spec.calibrate;
    s
}

pub async fn generate(reply: Reply, prompt: &str, config: &GenerationConfig) -> Result<(), Error> {
    let lm = state::need(|e| e.language_model.clone(), "language model")?;
    let mut on_token = |piece: &str| {
        reply.send(Event::Token {
            text: piece.to_string(),
        });
        !reply.cancelled()
    };
    let generation = generation::generate(&lm, prompt, config, &mut on_token).await?;
    reply.send(Event::Generated { generation });
    Ok(())
}

pub async fn score(reply: Reply, text: &str, spec: ScorerSpec) -> Result<(), Error> {
    let lm = state::need(|e| e.language_model.clone(), "language model")?;
    let scores = scorer(spec).score(&lm, text).await?;
    reply.send(Event::Scored { scores });
    Ok(())
}

pub async fn sample_examples(
    reply: Reply,
    per_class: usize,
    seed: u64,
    options: &TableOptions,
    payload: Option<JsValue>,
) -> Result<(), Error> {
    let bytes = payload_bytes(payload, "choose a labelled CSV").await?;
    let (data, _) = import_dataset(&bytes, options, None, None)?;
    let examples = examples_from_dataset(&data, per_class, seed);
    reply.send(Event::Examples { examples });
    Ok(())
}

pub async fn evaluate(
    reply: Reply,
    spec: ScorerSpec,
    options: &TableOptions,
    (text_column, label_column): (Option<&str>, Option<&str>),
    payload: Option<JsValue>,
) -> Result<(), Error> {
    let lm = state::need(|e| e.language_model.clone(), "language model")?;
    let bytes = payload_bytes(payload, "choose a labelled CSV").await?;
    let (data, report) = import_dataset(&bytes, options, text_column, label_column)?;
    let total = data.len();
    let mut last = 0.0;
    let mut progress = |done: usize, _: usize| {
        let now = crate::clock::now_ms();
        if now - last > 200.0 || done == total {
            last = now;
            reply.send(Event::Progress { done, total });
        }
        !reply.cancelled()
    };
    let evaluation = scorer(spec).evaluate(&lm, &data, &mut progress).await?;
    reply.send(Event::PromptEvaluated {
        metrics: evaluation.metrics,
        report,
        scored: evaluation.predicted.len(),
        total,
        truncated: evaluation.truncated,
    });
    Ok(())
}
