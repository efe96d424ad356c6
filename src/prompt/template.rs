//! Zero-shot and few-shot prompt templates. The defaults are the seed notebook's wording.

use serde::{Deserialize, Serialize};

use crate::data::Dataset;
use crate::rng::Rng;

pub const DEFAULT_INSTRUCTION: &str =
    "Determine the sentiment of the following sentence as Positive or Negative.";
pub const DEFAULT_INPUT_PREFIX: &str = "Sentence: ";
pub const DEFAULT_CUE: &str = "Sentiment:";

/// A labelled demonstration for few-shot prompts.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Example {
    pub text: String,
    pub label: String,
}

/// `{instruction}\n` + per example `{input_prefix}{text}\n{cue} {label}\n` +
/// `{input_prefix}{text}\n{cue}`. With no examples this is the zero-shot prompt.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Template {
    pub instruction: String,
    pub input_prefix: String,
    pub cue: String,
    pub examples: Vec<Example>,
}

impl Default for Template {
    fn default() -> Self {
        Self {
            instruction: DEFAULT_INSTRUCTION.into(),
            input_prefix: DEFAULT_INPUT_PREFIX.into(),
            cue: DEFAULT_CUE.into(),
            examples: Vec::new(),
        }
    }
}

impl Template {
    /// The seed's few-shot prompt with these examples.
    pub fn few_shot(examples: Vec<Example>) -> Self {
        Self {
            examples,
            ..Self::default()
        }
    }

    /// The prompt for `text`, ending with the cue (no trailing space: label words carry their
    /// leading space, as GPT-2's tokenizer expects).
    pub fn render(&self, text: &str) -> String {
        let mut out = String::new();
        if !self.instruction.is_empty() {
            out.push_str(&self.instruction);
            out.push('\n');
        }
        for ex in &self.examples {
            out.push_str(&self.input_prefix);
            out.push_str(&ex.text);
            out.push('\n');
            out.push_str(&self.cue);
            out.push(' ');
            out.push_str(&ex.label);
            out.push('\n');
        }
        out.push_str(&self.input_prefix);
        out.push_str(text);
        out.push('\n');
        out.push_str(&self.cue);
        out
    }
}

/// `per_class` examples of each label, drawn with `seed` from `(text, label)` pairs, then
/// interleaved by class so that no label sits only at the end.
pub fn sample_examples(pool: &[(String, String)], per_class: usize, seed: u64) -> Vec<Example> {
    let mut labels: Vec<&str> = pool.iter().map(|(_, l)| l.as_str()).collect();
    labels.sort_unstable();
    labels.dedup();
    let mut rng = Rng::new(seed);
    let mut by_class: Vec<Vec<Example>> = labels
        .iter()
        .map(|label| {
            let mut idx: Vec<usize> = (0..pool.len()).filter(|&i| pool[i].1 == *label).collect();
            rng.shuffle(&mut idx);
            idx.into_iter()
                .take(per_class)
                .map(|i| Example {
                    text: pool[i].0.clone(),
                    label: pool[i].1.clone(),
                })
                .collect()
        })
        .collect();
    let mut out = Vec::new();
    for round in 0..per_class {
        for class in by_class.iter_mut() {
            if round < class.len() {
                out.push(class[round].clone());
            }
        }
    }
    rng.shuffle(&mut out);
    out
}

/// [`sample_examples`] from a labelled dataset, its label names capitalised as the prompt's label
/// words are ("positive" -> "Positive").
pub fn examples_from_dataset(data: &Dataset, per_class: usize, seed: u64) -> Vec<Example> {
    let pool: Vec<(String, String)> = data
        .texts
        .iter()
        .zip(&data.labels)
        .map(|(t, &l)| (t.to_string(), capitalised(&data.label_names[l])))
        .collect();
    sample_examples(&pool, per_class.max(1), seed)
}

fn capitalised(s: &str) -> String {
    let mut c = s.chars();
    c.next()
        .map(|f| f.to_uppercase().collect::<String>() + c.as_str())
        .unwrap_or_default()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn examples_from_a_dataset_are_capitalised_and_per_class() {
        let data = Dataset {
            texts: ["a", "b", "c", "d", "e"]
                .map(crate::data::Text::from)
                .to_vec(),
            labels: vec![0, 1, 0, 1, 0],
            label_names: vec!["negative".into(), "positive".into()],
        };
        let ex = examples_from_dataset(&data, 2, 7);
        assert_eq!(ex.len(), 4);
        assert_eq!(ex.iter().filter(|e| e.label == "Negative").count(), 2);
        assert_eq!(ex.iter().filter(|e| e.label == "Positive").count(), 2);
        assert_eq!(ex, examples_from_dataset(&data, 2, 7), "seeded");
        assert_eq!(
            examples_from_dataset(&data, 0, 7).len(),
            2,
            "at least one per class"
        );
    }
}
