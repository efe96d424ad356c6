//! Zero-shot and few-shot prompt templates. The defaults are the seed notebook's wording.

use serde::{Deserialize, Serialize};

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
