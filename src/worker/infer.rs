//! Inference with the loaded encoders: text classification and fill-mask.

use super::state;
use super::Reply;
use crate::error::Error;
use crate::protocol::Event;

pub async fn classify(reply: Reply, texts: Vec<String>) -> Result<(), Error> {
    let model = state::need(|e| e.classifier.clone(), "classifier")?;
    let texts: Vec<String> = texts
        .into_iter()
        .map(|t| t.trim().to_string())
        .filter(|t| !t.is_empty())
        .collect();
    if texts.is_empty() {
        return Err(Error::usage("enter a text to classify"));
    }
    let refs: Vec<&str> = texts.iter().map(String::as_str).collect();
    let results = model.classify(&refs).await?;
    reply.send(Event::Classified { results });
    Ok(())
}

pub async fn fill_mask(reply: Reply, text: &str, k: usize) -> Result<(), Error> {
    let model = state::need(|e| e.fill_mask.clone(), "fill-mask model")?;
    let masks = model.fill_mask(text, k.clamp(1, 50)).await?;
    reply.send(Event::Filled { masks });
    Ok(())
}
