//! Zero-shot classification by natural-language inference, as transformers'
//! `pipeline("zero-shot-classification")`: each candidate label becomes a hypothesis ("This
//! example is {}."), an NLI classifier scores (text, hypothesis) pairs, and the entailment
//! logits become the labels' scores.
//!
//! - Single-label: a softmax over the labels' entailment logits (the scores sum to 1).
//! - Multi-label (also whenever there is one label): each label on its own, a softmax over its
//!   (contradiction, entailment) logits.
//!
//! The entailment output is the first label of `id2label` starting with "entail" (any case);
//! the contradiction output is the first, or the last when entailment is the first, as
//! transformers picks them.

use serde::{Deserialize, Serialize};

/// transformers' default hypothesis template.
pub const DEFAULT_TEMPLATE: &str = "This example is {}.";

/// What to ask of an NLI classifier.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ZeroShotSpec {
    pub labels: Vec<String>,
    /// With one `{}` where the label goes.
    pub template: String,
    /// Score each label on its own (several may be true).
    pub multi_label: bool,
}

impl Default for ZeroShotSpec {
    fn default() -> Self {
        Self {
            labels: Vec::new(),
            template: DEFAULT_TEMPLATE.into(),
            multi_label: false,
        }
    }
}

/// The candidate labels of comma-separated text, trimmed, empty ones dropped (as transformers
/// splits a string of labels).
pub fn parse_labels(text: &str) -> Vec<String> {
    text.split(',')
        .map(str::trim)
        .filter(|l| !l.is_empty())
        .map(String::from)
        .collect()
}

/// The outputs of an NLI classifier that zero-shot classification reads.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct NliOutputs {
    pub entailment: usize,
    pub contradiction: usize,
}

impl NliOutputs {
    /// The entailment and contradiction outputs of a classifier with these labels (its
    /// `id2label`), or `None` when no label starts with "entail".
    pub fn of(labels: &[String]) -> Option<Self> {
        let entailment = labels
            .iter()
            .position(|l| l.to_lowercase().starts_with("entail"))?;
        let contradiction = if entailment == 0 { labels.len() - 1 } else { 0 };
        Some(Self {
            entailment,
            contradiction,
        })
    }
}

impl ZeroShotSpec {
    /// The labels, the hypothesis of each, and whether they are scored one by one; or why the
    /// settings cannot be used.
    pub fn hypotheses(&self) -> Result<Vec<String>, String> {
        if self.labels.is_empty() {
            return Err("enter at least one candidate label".into());
        }
        let slots = self.template.matches("{}").count();
        if slots != 1 {
            return Err(format!(
                "the hypothesis template \"{}\" must hold one {{}} where the label goes (it has {slots})",
                self.template
            ));
        }
        Ok(self
            .labels
            .iter()
            .map(|l| self.template.replacen("{}", l, 1))
            .collect())
    }

    /// Whether labels are scored one by one: when asked, and whenever there is only one.
    pub fn scores_each_label(&self) -> bool {
        self.multi_label || self.labels.len() == 1
    }

    /// The labels' scores for one text from the NLI logits of its (text, hypothesis) pairs,
    /// one row per label, in label order.
    pub fn scores(&self, outputs: NliOutputs, logits: &[Vec<f32>]) -> Vec<f32> {
        if self.scores_each_label() {
            logits
                .iter()
                .map(|row| {
                    let (c, e) = (row[outputs.contradiction], row[outputs.entailment]);
                    let m = c.max(e);
                    let (c, e) = ((c - m).exp(), (e - m).exp());
                    e / (c + e)
                })
                .collect()
        } else {
            let entail: Vec<f32> = logits.iter().map(|row| row[outputs.entailment]).collect();
            crate::math::softmax(&entail)
        }
    }
}

#[cfg(feature = "engine")]
mod engine {
    use super::{NliOutputs, ZeroShotSpec};
    use crate::error::Error;
    use crate::math::{ranked, LabelScore};
    use crate::pipelines::{batched_rows_of, TextClassifier};

    /// Pairs per batch.
    const BATCH: usize = 16;

    impl TextClassifier {
        /// Which outputs are entailment and contradiction, or an error saying that this is not
        /// an NLI model.
        pub fn nli_outputs(&self) -> Result<NliOutputs, Error> {
            NliOutputs::of(&self.labels).ok_or_else(|| {
                Error::usage(format!(
                    "zero-shot classification needs an NLI model, whose labels include \
                     entailment (this one's are {}): for example \
                     typeform/distilbert-base-uncased-mnli or cross-encoder/nli-distilroberta-base",
                    self.labels.join(", ")
                ))
            })
        }

        /// `pipeline("zero-shot-classification")`: every candidate label with its score for
        /// each text, most probable first.
        pub async fn zero_shot(
            &self,
            texts: &[&str],
            spec: &ZeroShotSpec,
        ) -> Result<Vec<Vec<LabelScore>>, Error> {
            let scores = self.zero_shot_scores(texts, spec).await?;
            Ok(scores.iter().map(|row| ranked(row, &spec.labels)).collect())
        }

        /// The candidate labels' scores for each text, in label order.
        pub async fn zero_shot_scores(
            &self,
            texts: &[&str],
            spec: &ZeroShotSpec,
        ) -> Result<Vec<Vec<f32>>, Error> {
            let outputs = self.nli_outputs()?;
            let hypotheses = spec.hypotheses().map_err(Error::Usage)?;
            let k = hypotheses.len();
            let pairs: Vec<(&str, &str)> = texts
                .iter()
                .flat_map(|&t| hypotheses.iter().map(move |h| (t, h.as_str())))
                .collect();
            let encode = |range: std::ops::Range<usize>| {
                self.tokenizer
                    .encode_pairs_truncating_first(&pairs[range], self.max_length)
                    .map_err(|e| {
                        Error::usage(format!(
                            "a text with its hypothesis does not fit in {} tokens: {e}",
                            self.max_length
                        ))
                    })
            };
            let logits = batched_rows_of(pairs.len(), encode, BATCH, &self.device, |input| {
                self.model.forward(input)
            })
            .await?;
            Ok(logits
                .chunks(k.max(1))
                .map(|rows| spec.scores(outputs, rows))
                .collect())
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn labels(names: &[&str]) -> Vec<String> {
        names.iter().map(|s| s.to_string()).collect()
    }

    #[test]
    fn entailment_and_contradiction_are_found_as_transformers_finds_them() {
        // typeform/distilbert-base-uncased-mnli: entailment first, so contradiction is the last.
        let o = NliOutputs::of(&labels(&["ENTAILMENT", "NEUTRAL", "CONTRADICTION"])).unwrap();
        assert_eq!((o.entailment, o.contradiction), (0, 2));
        // cross-encoder/nli-distilroberta-base.
        let o = NliOutputs::of(&labels(&["contradiction", "entailment", "neutral"])).unwrap();
        assert_eq!((o.entailment, o.contradiction), (1, 0));
        assert!(NliOutputs::of(&labels(&["NEGATIVE", "POSITIVE"])).is_none());
    }

    #[test]
    fn labels_split_on_commas_and_templates_need_one_slot() {
        assert_eq!(
            parse_labels(" sport, politics ,,x "),
            labels(&["sport", "politics", "x"])
        );
        let spec = ZeroShotSpec {
            labels: labels(&["sport"]),
            ..ZeroShotSpec::default()
        };
        assert_eq!(spec.hypotheses().unwrap(), vec!["This example is sport."]);
        assert!(spec.scores_each_label(), "one label is scored on its own");
        for bad in ["no slot", "{} and {}"] {
            let spec = ZeroShotSpec {
                template: bad.into(),
                ..spec.clone()
            };
            assert!(spec.hypotheses().unwrap_err().contains("one {}"));
        }
        let empty = ZeroShotSpec::default();
        assert!(empty.hypotheses().is_err());
    }
}
