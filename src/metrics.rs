//! Classification metrics as scikit-learn computes them (`accuracy_score`,
//! `precision_recall_fscore_support` with `average="binary"` or `"macro"`, `zero_division=0`).

use serde::{Deserialize, Serialize};

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ClassMetrics {
    pub label: String,
    pub precision: f64,
    pub recall: f64,
    pub f1: f64,
    /// Number of true examples of this class.
    pub support: usize,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Metrics {
    pub accuracy: f64,
    /// Binary (of the positive class) with two classes, macro average otherwise.
    pub precision: f64,
    pub recall: f64,
    pub f1: f64,
    /// "binary" or "macro".
    pub average: String,
    /// The positive class for binary averaging.
    pub positive: Option<usize>,
    pub per_class: Vec<ClassMetrics>,
    /// `confusion[true][predicted]`.
    pub confusion: Vec<Vec<usize>>,
    pub count: usize,
}

/// How the headline precision/recall/F1 are averaged.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Average {
    /// Of one class: the positive label.
    Binary {
        positive: usize,
    },
    Macro,
}

impl Average {
    /// Binary with the conventional positive class for two labels: one named like "positive",
    /// "pos", "1", "true" or "yes", else the second label (as `pos_label=1`). Macro for more.
    pub fn default_for(labels: &[String]) -> Self {
        if labels.len() != 2 {
            return Average::Macro;
        }
        let positive = labels
            .iter()
            .position(|l| {
                matches!(
                    l.to_ascii_lowercase().as_str(),
                    "positive" | "pos" | "1" | "true" | "yes"
                )
            })
            .unwrap_or(1);
        Average::Binary { positive }
    }
}

/// Computes every metric of `predicted` against `truth` (class indices below `labels.len()`).
pub fn evaluate(
    truth: &[usize],
    predicted: &[usize],
    labels: &[String],
    average: Average,
) -> Metrics {
    assert_eq!(
        truth.len(),
        predicted.len(),
        "truth and predictions differ in length"
    );
    let k = labels.len();
    let mut confusion = vec![vec![0usize; k]; k];
    for (&t, &p) in truth.iter().zip(predicted) {
        confusion[t][p] += 1;
    }
    let correct: usize = (0..k).map(|c| confusion[c][c]).sum();
    let n = truth.len();
    let ratio = |a: usize, b: usize| if b == 0 { 0.0 } else { a as f64 / b as f64 };
    let per_class: Vec<ClassMetrics> = (0..k)
        .map(|c| {
            let tp = confusion[c][c];
            let predicted_c: usize = (0..k).map(|t| confusion[t][c]).sum();
            let support: usize = confusion[c].iter().sum();
            let precision = ratio(tp, predicted_c);
            let recall = ratio(tp, support);
            let f1 = if precision + recall == 0.0 {
                0.0
            } else {
                2.0 * precision * recall / (precision + recall)
            };
            ClassMetrics {
                label: labels[c].clone(),
                precision,
                recall,
                f1,
                support,
            }
        })
        .collect();
    let (precision, recall, f1, name, positive) = match average {
        Average::Binary { positive } => {
            let m = &per_class[positive];
            (m.precision, m.recall, m.f1, "binary", Some(positive))
        }
        Average::Macro => {
            let mean = |f: fn(&ClassMetrics) -> f64| {
                if k == 0 {
                    0.0
                } else {
                    per_class.iter().map(f).sum::<f64>() / k as f64
                }
            };
            (
                mean(|m| m.precision),
                mean(|m| m.recall),
                mean(|m| m.f1),
                "macro",
                None,
            )
        }
    };
    Metrics {
        accuracy: ratio(correct, n),
        precision,
        recall,
        f1,
        average: name.to_string(),
        positive,
        per_class,
        confusion,
        count: n,
    }
}
