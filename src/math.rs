//! Host-side numbers shared by the pipelines: softmax over logits, cosine similarity, and labels
//! ranked by score.

use serde::{Deserialize, Serialize};

/// serde for an `f64` that may be NaN or infinite (a diverging loss or gradient norm): JSON has
/// no such numbers and serde_json writes `null`, which the page could not read back into an
/// `f64`. Non-finite values travel as the strings `"NaN"`, `"Infinity"` and `"-Infinity"`;
/// `null` reads as NaN. Use with `#[serde(with = "crate::math::any_f64")]`.
pub mod any_f64 {
    use serde::{Deserialize, Deserializer, Serializer};

    pub fn serialize<S: Serializer>(x: &f64, s: S) -> Result<S::Ok, S::Error> {
        if x.is_finite() {
            s.serialize_f64(*x)
        } else if x.is_nan() {
            s.serialize_str("NaN")
        } else if *x > 0.0 {
            s.serialize_str("Infinity")
        } else {
            s.serialize_str("-Infinity")
        }
    }

    #[derive(Deserialize)]
    #[serde(untagged)]
    enum Written {
        Number(f64),
        Text(String),
    }

    pub fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<f64, D::Error> {
        Ok(match Option::<Written>::deserialize(d)? {
            Some(Written::Number(x)) => x,
            Some(Written::Text(t)) => match t.as_str() {
                "Infinity" | "inf" => f64::INFINITY,
                "-Infinity" | "-inf" => f64::NEG_INFINITY,
                _ => f64::NAN,
            },
            None => f64::NAN,
        })
    }
}

/// One label with its probability.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct LabelScore {
    pub label: String,
    pub score: f32,
}

/// "1.5 MB" style sizes.
pub fn human_bytes(n: f64) -> String {
    const UNITS: [&str; 5] = ["B", "kB", "MB", "GB", "TB"];
    let mut v = n;
    let mut u = 0;
    while v >= 1000.0 && u < UNITS.len() - 1 {
        v /= 1000.0;
        u += 1;
    }
    if u == 0 {
        format!("{v:.0} {}", UNITS[u])
    } else {
        format!("{v:.1} {}", UNITS[u])
    }
}

/// Numerically stable softmax.
pub fn softmax(logits: &[f32]) -> Vec<f32> {
    let max = logits.iter().copied().fold(f32::NEG_INFINITY, f32::max);
    let exps: Vec<f32> = logits.iter().map(|&x| (x - max).exp()).collect();
    let sum: f32 = exps.iter().sum();
    exps.iter().map(|e| e / sum).collect()
}

/// Each label with its probability, most probable first.
pub fn ranked(probs: &[f32], labels: &[String]) -> Vec<LabelScore> {
    let mut scores: Vec<LabelScore> = probs
        .iter()
        .zip(labels)
        .map(|(&score, label)| LabelScore {
            label: label.clone(),
            score,
        })
        .collect();
    scores.sort_by(|a, b| b.score.total_cmp(&a.score));
    scores
}

/// The index of the largest value (the last of equals, as `Iterator::max_by`); 0 when empty.
pub fn argmax(values: &[f32]) -> usize {
    values
        .iter()
        .enumerate()
        .max_by(|a, b| a.1.total_cmp(b.1))
        .map_or(0, |(i, _)| i)
}

/// Cosine similarity of two vectors.
pub fn cosine(a: &[f32], b: &[f32]) -> f32 {
    let dot: f32 = a.iter().zip(b).map(|(x, y)| x * y).sum();
    let na: f32 = a.iter().map(|x| x * x).sum::<f32>().sqrt();
    let nb: f32 = b.iter().map(|x| x * x).sum::<f32>().sqrt();
    dot / (na * nb).max(1e-12)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn softmax_ranks_and_argmax() {
        let p = softmax(&[1.0, 3.0, 2.0]);
        assert!((p.iter().sum::<f32>() - 1.0).abs() < 1e-6);
        let labels: Vec<String> = ["a", "b", "c"].map(String::from).to_vec();
        let r = ranked(&p, &labels);
        assert_eq!(
            r.iter().map(|s| s.label.as_str()).collect::<Vec<_>>(),
            ["b", "c", "a"]
        );
        assert_eq!(argmax(&p), 1);
        assert_eq!(argmax(&[2.0, 2.0]), 1);
        assert_eq!(argmax(&[]), 0);
        assert!((cosine(&[1.0, 0.0], &[2.0, 0.0]) - 1.0).abs() < 1e-6);
    }
}
