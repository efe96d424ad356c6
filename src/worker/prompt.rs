//! Prompting the loaded language model: generation with streamed tokens, label scoring, few-shot
//! examples sampled from a CSV, and evaluation of a prompt on a labelled CSV.

use std::rc::Rc;

use wasm_bindgen::JsValue;

use super::helpers::{self, WorkerHelpers};
use super::{payload_bytes, state, Reply};
use crate::data::{import_dataset, TableOptions};
use crate::error::Error;
use crate::pool::{Build, Helpers, Replica, RowsOf};
use crate::prompt::generate::{self as generation, GenerationConfig};
use crate::prompt::{examples_from_dataset, LabelScorer};
use crate::protocol::{Event, ScorerSpec};

/// What helper engines need to score as `scorer` does (the same one as last time when the
/// scorer did not change), when there are helpers.
fn scorer_replica(scorer: &LabelScorer) -> Option<Rc<Replica>> {
    if WorkerHelpers.count() == 0 {
        return None;
    }
    let files = state::need(|e| e.language_model_files.clone(), "language model").ok()?;
    let kept = state::need(|e| e.scorer_replica.clone(), "replica").ok();
    if let Some(r) = kept.filter(|r| r.build == Build::Scorer(scorer.clone())) {
        return Some(r);
    }
    let replica = Replica::new(files, Build::Scorer(scorer.clone()), RowsOf::Labels, 0);
    state::update(|e| e.scorer_replica = Some(replica.clone()));
    Some(replica)
}

fn scorer(spec: ScorerSpec) -> LabelScorer {
    let mut s = LabelScorer::new(spec.template, spec.labels, spec.verbalizers);
    s.calibrate = spec.calibrate;
    s.chat = spec.chat;
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
    let mut scorer = scorer(spec);
    let evaluation = match scorer_replica(&scorer) {
        // Rows spread over the helper engines, each with the model and this scorer.
        Some(replica) => {
            helpers::served();
            let evaluation = scorer
                .evaluate_spread(&lm, &data, &WorkerHelpers, &replica, &mut progress)
                .await?;
            super::infer::said_spread("evaluated the prompt on", total);
            evaluation
        }
        None => scorer.evaluate(&lm, &data, &mut progress).await?,
    };
    reply.send(Event::PromptEvaluated {
        metrics: evaluation.metrics,
        report,
        scored: evaluation.predicted.len(),
        total,
        truncated: evaluation.truncated,
    });
    Ok(())
}
