//! Text classification: `pipeline("text-classification")` with `top_k=None`.

use std::rc::Rc;

use burn::prelude::*;

use super::{batched_rows, checkpoint_pooling, default_max_length, encoder_config};
use crate::data::Text;
use crate::error::Error;
use crate::hub::ModelFiles;
use crate::math::{ranked, softmax, LabelScore};
use crate::model::bert::SequenceClassifier;
use crate::model::weights::Precision;
use crate::model::{ModelConfig, Task};
use crate::pool::{
    chunks_by_length, spread, Build, Files, Helpers, Lane, Replica, RowsOf, Unwatched,
};
use crate::text::TextTokenizer;

/// Texts per batch when classification is spread over helper engines.
pub const SPREAD_BATCH: usize = 16;

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
    /// Loads a `*ForSequenceClassification` checkpoint (its own head and `id2label`); on a GPU
    /// that computes in f16, in half precision ([`Precision::Auto`]).
    pub fn load(files: &ModelFiles, device: &Device) -> Result<Self, Error> {
        Self::load_with(files, device, Precision::Auto)
    }

    /// [`TextClassifier::load`] in `precision`.
    pub fn load_with(
        files: &ModelFiles,
        device: &Device,
        precision: Precision,
    ) -> Result<Self, Error> {
        let config = files.config()?;
        let enc = encoder_config(&config)?.clone();
        if config.task != Task::SequenceClassification {
            return Err(Error::usage(
                "this checkpoint has no classification head: fine-tune it on labelled data \
                 first, or pick a *ForSequenceClassification model",
            ));
        }
        let tokenizer = files.tokenizer()?;
        let pooling = checkpoint_pooling(&config);
        let model = SequenceClassifier::from_checkpoint(
            files.checkpoint()?,
            &config,
            pooling,
            device,
            precision,
        )?;
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
        Ok(self.ranked(&logits))
    }

    fn ranked(&self, logits: &[Vec<f32>]) -> Vec<Vec<LabelScore>> {
        logits
            .iter()
            .map(|row| ranked(&softmax(row), &self.labels))
            .collect()
    }

    /// What a helper engine needs to classify as this one does (`files`: this model's).
    pub fn replica(&self, files: Files) -> Rc<Replica> {
        Replica::new(files, Build::Checkpoint, RowsOf::Logits, self.max_length)
    }

    /// [`TextClassifier::logits`] with batches of [`SPREAD_BATCH`] texts spread over helper
    /// engines holding `replica` (this model's) and this one.
    pub async fn logits_spread(
        &self,
        texts: &[&str],
        helpers: &dyn Helpers,
        replica: &Rc<Replica>,
    ) -> Result<Vec<Vec<f32>>, Error> {
        let texts: Vec<Text> = texts.iter().map(|&t| t.into()).collect();
        let (order, chunks) =
            chunks_by_length(&self.tokenizer, &texts, self.max_length, SPREAD_BATCH)?;
        let local = Lane {
            model: &self.model,
            tokenizer: &self.tokenizer,
            rows: RowsOf::Logits,
            max_length: self.max_length,
            device: &self.device,
        };
        let rows = spread(&local, Some((helpers, replica)), &chunks, &mut Unwatched)
            .await?
            .complete()
            .unwrap_or_default();
        let k = self.model.num_labels();
        let mut out = vec![Vec::new(); texts.len()];
        for (&i, row) in order
            .iter()
            .zip(rows.iter().flat_map(|r| r.chunks(k.max(1))))
        {
            out[i] = row.to_vec();
        }
        Ok(out)
    }

    /// [`TextClassifier::classify`] spread over helper engines (see [`Self::logits_spread`]).
    pub async fn classify_spread(
        &self,
        texts: &[&str],
        helpers: &dyn Helpers,
        replica: &Rc<Replica>,
    ) -> Result<Vec<Vec<LabelScore>>, Error> {
        let logits = self.logits_spread(texts, helpers, replica).await?;
        Ok(self.ranked(&logits))
    }
}
