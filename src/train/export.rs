//! Saving a fine-tuned classifier as a Hugging Face folder (`config.json` with
//! `architectures`, `id2label`, `label2id`; `model.safetensors`; the tokenizer files), which
//! transformers' `pipeline("text-classification", model=folder)` loads, and which Tunelab loads
//! back to classify.

use crate::error::Error;
use crate::hub::{ModelFiles, TOKENIZER_FILES};
use crate::model::bert::{Pooling, SequenceClassifier};
use crate::model::layers::Exporter;
use crate::model::weights::write_safetensors;
use crate::model::{Family, ModelConfig};

/// The files of the saved folder, as (path, bytes).
pub async fn export_classifier(
    model: &SequenceClassifier,
    base: &ModelConfig,
    labels: &[String],
    source: &ModelFiles,
) -> Result<Vec<(String, Vec<u8>)>, Error> {
    if labels.len() != model.num_labels() {
        return Err(Error::Usage(format!(
            "{} labels for a head with {} outputs",
            labels.len(),
            model.num_labels()
        )));
    }
    let mut config = base.for_classification(labels);
    if base.family() == Family::ModernBert {
        // ModernBERT's own head reads either pooling: transformers follows this key.
        let pooling = match model.pooling {
            Pooling::Mean => "mean",
            Pooling::Cls => "cls",
        };
        config.insert("classifier_pooling".into(), pooling.into());
        config.remove("tunelab_pooling");
    } else if model.pooling == Pooling::Mean {
        // transformers' BertForSequenceClassification reads the [CLS] pooler; this head reads
        // the mean of the tokens, which Tunelab records here (see README: "Saved models").
        config.insert("tunelab_pooling".into(), "mean".into());
    } else {
        config.remove("tunelab_pooling");
    }
    // LoRA's adapters folded into the weights: a plain transformers folder.
    let merged;
    let model = if model.has_lora() {
        merged = model.clone().merge_lora();
        &merged
    } else {
        model
    };
    let mut out = Exporter::default();
    model.export(&mut out);
    let tensors = out.read().await?;
    let mut files = vec![
        (
            "config.json".to_string(),
            serde_json::to_vec_pretty(&serde_json::Value::Object(config))
                .map_err(|e| Error::Usage(e.to_string()))?,
        ),
        (
            "model.safetensors".to_string(),
            write_safetensors(&tensors)?,
        ),
    ];
    files.extend(tokenizer_files(source));
    Ok(files)
}

/// `tokenizer.json` and the other tokenizer files the base model came with, for a saved folder.
pub fn tokenizer_files(source: &ModelFiles) -> Vec<(String, Vec<u8>)> {
    let mut files = vec![("tokenizer.json".to_string(), source.tokenizer.clone())];
    for name in TOKENIZER_FILES {
        if let Some(bytes) = source.extra.get(name) {
            files.push((name.to_string(), bytes.clone()));
        }
    }
    files
}
