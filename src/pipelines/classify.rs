//! Text classification: `pipeline("text-classification")` with `top_k=None`.

use burn::prelude::*;

use super::{batched_rows, default_max_length, encoder_config, tunelab_pooling};
use crate::error::Error;
use crate::hub::ModelFiles;
use crate::math::{ranked, softmax, LabelScore};
use crate::model::bert::{Pooling, SequenceClassifier};
use crate::model::{ModelConfig, Task};
use crate::text::TextTokenizer;

/// A text classifier with its tokenizer and label names.
pub struct TextClassifier {
    pub model: SequenceClassifier,
    pub tokenizer: TextTokenizer,
    pub config: ModelConfig,
    pub labels: Vec<String>,
    pub max_length: usize,
    pub device: Device,
}

impl TextClassifier {
    /// Loads a `*ForSequenceClassification` checkpoint (its own head and `id2label`).
    pub fn load(files: &ModelFiles, device: &Device) -> Result<Self, Error> {
        let config = files.config()?;
        let enc = encoder_config(&config)?.clone();
        if config.task != Task::SequenceClassification {
            return Err(Error::usage(
                "this checkpoint has no classification head: fine-tune it on labelled data \
                 first, or pick a *ForSequenceClassification model",
            ));
        }
        let tokenizer = files.tokenizer()?;
        let pooling = tunelab_pooling(&config).unwrap_or(Pooling::Cls);
        let model = SequenceClassifier::from_checkpoint(&files.weights, &config, pooling, device)?;
        let labels = (0..model.num_labels()).map(|i| config.label(i)).collect();
        Ok(Self {
            model,
            tokenizer,
            max_length: default_max_length(&enc),
            labels,
            config,
            device: device.clone(),
        })
    }

    /// Logits `[n, labels]` for texts.
    pub async fn logits(&self, texts: &[&str]) -> Result<Vec<Vec<f32>>, Error> {
        batched_rows(
            &self.tokenizer,
            texts,
            16,
            self.max_length,
            &self.device,
            |input| self.model.forward(input),
        )
        .await
    }

    /// Every label with its probability for each text, most probable first.
    pub async fn classify(&self, texts: &[&str]) -> Result<Vec<Vec<LabelScore>>, Error> {
        let logits = self.logits(texts).await?;
        Ok(logits
            .iter()
            .map(|row| ranked(&softmax(row), &self.labels))
            .collect())
    }
}
