//! Inference with the loaded encoders: text classification (zero-shot too) and fill-mask.

use super::helpers::{self, WorkerHelpers};
use super::state;
use super::Reply;
use crate::error::Error;
use crate::pipelines::classify::SPREAD_BATCH;
use crate::pipelines::similarity::MAX_MATRIX;
use crate::pipelines::zero_shot::ZeroShotSpec;
use crate::pool::Helpers;
use crate::protocol::Event;
use std::rc::Rc;

/// The texts trimmed, empty ones dropped.
fn trimmed(texts: Vec<String>) -> Vec<String> {
    texts
        .into_iter()
        .map(|t| t.trim().to_string())
        .filter(|t| !t.is_empty())
        .collect()
}

/// [`trimmed`], with an error when no text is left.
fn nonempty(texts: Vec<String>) -> Result<Vec<String>, Error> {
    let texts = trimmed(texts);
    if texts.is_empty() {
        return Err(Error::usage("enter a text to classify"));
    }
    Ok(texts)
}

pub async fn classify(reply: Reply, texts: Vec<String>) -> Result<(), Error> {
    let model = state::need(|e| e.classifier.clone(), "classifier")?;
    let texts = nonempty(texts)?;
    let refs: Vec<&str> = texts.iter().map(String::as_str).collect();
    let replica = state::need(|e| e.classifier_replica.clone(), "classifier").ok();
    let results = match replica {
        // More texts than one batch: spread over the helper engines.
        Some(r) if WorkerHelpers.count() > 0 && refs.len() > SPREAD_BATCH => {
            helpers::served();
            let results = model.classify_spread(&refs, &WorkerHelpers, &r).await?;
            said_spread("classified", refs.len());
            results
        }
        _ => model.classify(&refs).await?,
    };
    reply.send(Event::Classified { results });
    Ok(())
}

pub async fn tag(reply: Reply, texts: Vec<String>) -> Result<(), Error> {
    let model = state::need(|e| e.tagger.clone(), "token classifier")?;
    let texts = nonempty(texts)?;
    let refs: Vec<&str> = texts.iter().map(String::as_str).collect();
    let entities = model.entities(&refs).await?;
    reply.send(Event::Tagged { entities });
    Ok(())
}

pub async fn zero_shot(reply: Reply, texts: Vec<String>, spec: &ZeroShotSpec) -> Result<(), Error> {
    let model = state::need(|e| e.classifier.clone(), "classifier")?;
    let texts = nonempty(texts)?;
    let refs: Vec<&str> = texts.iter().map(String::as_str).collect();
    let results = model.zero_shot(&refs, spec).await?;
    reply.send(Event::Classified { results });
    Ok(())
}

/// Says on the console how much of a job the helper engines did.
pub fn said_spread(what: &str, rows: usize) {
    web_sys::console::info_1(
        &format!(
            "{what} {rows} texts: {} batches on helper engines",
            helpers::served()
        )
        .into(),
    );
}

/// The embedding model on `sentences` (kept for the next question about the same ones) and
/// `queries`: the matrix of every pair when there are few sentences, and each query's `top_k`
/// nearest sentences.
pub async fn similarity(
    reply: Reply,
    sentences: Vec<String>,
    queries: Vec<String>,
    top_k: usize,
) -> Result<(), Error> {
    let model = state::need(|e| e.embedder.clone(), "embedding model")?;
    let sentences = trimmed(sentences);
    if sentences.is_empty() {
        return Err(Error::usage("enter sentences to compare"));
    }
    let queries = trimmed(queries);
    let kept = state::peek(|e| e.embedded.clone());
    let embedded = match kept {
        Some(k) if k.sentences == sentences => k,
        _ => {
            let refs: Vec<&str> = sentences.iter().map(String::as_str).collect();
            let rows = model.embed(&refs).await?;
            let k = Rc::new(state::Embedded { sentences, rows });
            state::update(|e| e.embedded = Some(k.clone()));
            k
        }
    };
    let corpus = &embedded.rows;
    let function = model.similarity;
    let matrix = (corpus.len() <= MAX_MATRIX).then(|| function.matrix(corpus, corpus));
    let hits = if queries.is_empty() {
        Vec::new()
    } else {
        let refs: Vec<&str> = queries.iter().map(String::as_str).collect();
        model
            .embed(&refs)
            .await?
            .iter()
            .map(|q| function.search(q, corpus, top_k.max(1)))
            .collect()
    };
    reply.send(Event::Similarities {
        function,
        matrix,
        hits,
    });
    Ok(())
}

pub async fn fill_mask(reply: Reply, text: &str, k: usize) -> Result<(), Error> {
    let model = state::need(|e| e.fill_mask.clone(), "fill-mask model")?;
    let masks = model.fill_mask(text, k.clamp(1, 50)).await?;
    reply.send(Event::Filled { masks });
    Ok(())
}
