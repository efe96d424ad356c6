//! Prompting GPT-2: templates, generation and classification by label scoring.

pub mod generate;
pub mod score;
pub mod template;

#[cfg(feature = "engine")]
use burn::prelude::*;

#[cfg(feature = "engine")]
use crate::error::Error;
#[cfg(feature = "engine")]
use crate::hub::ModelFiles;
#[cfg(feature = "engine")]
use crate::model::gpt2::{Gpt2, KvCache};
#[cfg(feature = "engine")]
use crate::text::TextTokenizer;

pub use generate::{Generation, GenerationConfig, StopReason};
pub use score::{LabelScorer, LabelScores};
pub use template::{examples_from_dataset, sample_examples, Example, Template};

/// A GPT-2 family model with its tokenizer.
#[cfg(feature = "engine")]
pub struct LanguageModel {
    pub model: Gpt2,
    pub tokenizer: TextTokenizer,
    pub device: Device,
}

#[cfg(feature = "engine")]
impl LanguageModel {
    /// Loads a GPT-2 checkpoint; `max_binding_bytes` is the device's storage-binding limit
    /// (`u64::MAX` on the CPU).
    pub fn load(
        files: &ModelFiles,
        device: &Device,
        max_binding_bytes: u64,
    ) -> Result<Self, Error> {
        let config = files.config()?;
        let g = config.gpt2().ok_or_else(|| {
            Error::usage("this is an encoder (BERT family): prompting needs a GPT-2 model")
        })?;
        let tokenizer = files.tokenizer()?;
        let model = Gpt2::from_checkpoint(&files.weights, g, max_binding_bytes, device)?;
        Ok(Self {
            model,
            tokenizer,
            device: device.clone(),
        })
    }

    pub fn ids_tensor(&self, ids: &[u32]) -> Tensor<2, Int> {
        let v: Vec<i32> = ids.iter().map(|&x| x as i32).collect();
        Tensor::from_data(TensorData::new(v, [1, ids.len()]), &self.device)
    }

    /// Runs `ids` after the cache; returns the last position's logits `[1, vocab]`.
    pub fn step(&self, ids: &[u32], cache: &mut KvCache) -> Tensor<2> {
        let hidden = self.model.forward(self.ids_tensor(ids), cache);
        self.model.last_logits(hidden)
    }

    pub fn max_positions(&self) -> usize {
        self.model.config.n_positions
    }
}
