//! Prompting a language model (GPT-2, or a Llama-family decoder: Llama, SmolLM2, Qwen2, Qwen3):
//! templates, generation and classification by label scoring.

pub mod chat;
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
use crate::model::llama::Llama;
#[cfg(feature = "engine")]
pub use crate::model::weights::Precision;
#[cfg(feature = "engine")]
use crate::text::TextTokenizer;

pub use generate::{Generation, GenerationConfig, StopReason};
pub use score::{LabelScorer, LabelScores};
pub use template::{examples_from_dataset, sample_examples, Example, Template};

/// A decoder: GPT-2 or a Llama-family model, behind one interface.
#[cfg(feature = "engine")]
pub enum Decoder {
    Gpt2(Gpt2),
    Llama(Llama),
}

#[cfg(feature = "engine")]
impl Decoder {
    /// Runs `ids` `[b, t]` after the cached positions; the final hidden states `[b, t, d]`.
    pub fn forward(&self, ids: Tensor<2, Int>, cache: &mut KvCache) -> Tensor<3> {
        match self {
            Self::Gpt2(m) => m.forward(ids, cache),
            Self::Llama(m) => m.forward(ids, cache),
        }
    }

    /// Next-token logits `[b, t, vocab]`.
    pub fn logits(&self, hidden: Tensor<3>) -> Tensor<3> {
        match self {
            Self::Gpt2(m) => m.logits(hidden),
            Self::Llama(m) => m.logits(hidden),
        }
    }

    /// The last position's logits `[b, vocab]`.
    pub fn last_logits(&self, hidden: Tensor<3>) -> Tensor<2> {
        match self {
            Self::Gpt2(m) => m.last_logits(hidden),
            Self::Llama(m) => m.last_logits(hidden),
        }
    }

    pub fn vocab_size(&self) -> usize {
        match self {
            Self::Gpt2(m) => m.config.vocab_size,
            Self::Llama(m) => m.config.vocab_size,
        }
    }

    /// The tokens that end a generation.
    pub fn eos_token_ids(&self) -> Vec<u32> {
        match self {
            Self::Gpt2(m) => vec![m.config.eos_token_id],
            Self::Llama(m) => m.config.eos_token_ids.clone(),
        }
    }

    pub fn max_positions(&self) -> usize {
        match self {
            Self::Gpt2(m) => m.config.n_positions,
            Self::Llama(m) => m.config.max_positions,
        }
    }

    pub fn num_params(&self) -> usize {
        use burn::module::Module;
        match self {
            Self::Gpt2(m) => m.num_params(),
            Self::Llama(m) => m.num_params(),
        }
    }

    /// The GPT-2 model, when this is one.
    pub fn gpt2(&self) -> Option<&Gpt2> {
        match self {
            Self::Gpt2(m) => Some(m),
            Self::Llama(_) => None,
        }
    }
}

/// A language model with its tokenizer (and its chat template, when `tokenizer_config.json` has
/// one).
#[cfg(feature = "engine")]
pub struct LanguageModel {
    pub model: Decoder,
    pub tokenizer: TextTokenizer,
    pub chat_template: Option<chat::ChatTemplate>,
    /// The special tokens the tokenizer puts before a text (a Llama tokenizer's BOS), when it
    /// puts none after it: what transformers' text-generation pipeline adds to a plain prompt
    /// (a chat template writes its own).
    pub prompt_prefix: Vec<u32>,
    pub device: Device,
}

/// The special tokens `tokenizer` adds before a text when asked for its special tokens, if it
/// adds nothing after it (a decoder's tokenizer: Llama's `<s>`, Llama 3's
/// `<|begin_of_text|>`; GPT-2's and Qwen's add none). An encoder's tokenizer (`<s> … </s>`)
/// gives none: an end-of-text token closing a prompt would end the generation at once.
#[cfg(feature = "engine")]
pub fn leading_special_tokens(tokenizer: &TextTokenizer) -> Vec<u32> {
    let probe = "Hello world";
    let (Ok(with), Ok(plain)) = (
        tokenizer.encode(probe, true),
        tokenizer.encode(probe, false),
    ) else {
        return Vec::new();
    };
    match with.len().checked_sub(plain.len()) {
        Some(n) if with[n..] == plain[..] => with[..n].to_vec(),
        _ => Vec::new(),
    }
}

#[cfg(feature = "engine")]
impl LanguageModel {
    /// Loads a GPT-2 or Llama-family checkpoint; `max_binding_bytes` is the device's
    /// storage-binding limit (`u64::MAX` on the CPU). On a GPU that computes in f16, in half
    /// precision ([`Precision::Auto`]).
    pub fn load(
        files: &ModelFiles,
        device: &Device,
        max_binding_bytes: u64,
    ) -> Result<Self, Error> {
        Self::load_with(files, device, max_binding_bytes, Precision::Auto)
    }

    /// [`LanguageModel::load`] in `precision`.
    pub fn load_with(
        files: &ModelFiles,
        device: &Device,
        max_binding_bytes: u64,
        precision: Precision,
    ) -> Result<Self, Error> {
        let config = files.config()?;
        let tokenizer = files.tokenizer()?;
        let model = if let Some(g) = config.gpt2() {
            Decoder::Gpt2(Gpt2::from_checkpoint(
                files.checkpoint()?,
                g,
                max_binding_bytes,
                device,
                precision,
            )?)
        } else if let Some(l) = config.llama() {
            Decoder::Llama(Llama::from_checkpoint(
                files.checkpoint()?,
                l,
                max_binding_bytes,
                device,
                precision,
            )?)
        } else {
            return Err(Error::usage(
                "this is an encoder (BERT family): prompting needs a language model (GPT-2, \
                 Llama, SmolLM2, Qwen2, Qwen3)",
            ));
        };
        let chat_template = files
            .json("tokenizer_config.json")
            .and_then(|c| chat::ChatTemplate::from_tokenizer_config(&c));
        let prompt_prefix = leading_special_tokens(&tokenizer);
        Ok(Self {
            model,
            tokenizer,
            chat_template,
            prompt_prefix,
            device: device.clone(),
        })
    }

    /// `prompt` as a user turn (after `spec`'s system message) through the chat template, the
    /// assistant's turn opened: what transformers' `apply_chat_template(...,
    /// add_generation_prompt=True)` gives.
    pub fn chat_prompt(&self, prompt: &str, spec: &chat::ChatSpec) -> Result<String, Error> {
        let template = self.chat_template.as_ref().ok_or_else(|| {
            Error::usage(
                "this model has no chat template (tokenizer_config.json's chat_template): send \
                 the prompt as plain text",
            )
        })?;
        template
            .render(&spec.messages(prompt), true, &spec.kwargs)
            .map_err(Error::Usage)
    }

    /// The token ids of a prompt: a plain one after the tokenizer's leading special tokens
    /// ([`LanguageModel::prompt_prefix`]); one rendered by the chat template (`chat`) as it is.
    pub fn prompt_ids(&self, text: &str, chat: bool) -> Result<Vec<u32>, Error> {
        let ids = self.tokenizer.encode(text, false)?;
        if chat || self.prompt_prefix.is_empty() {
            return Ok(ids);
        }
        Ok(self.prompt_prefix.iter().copied().chain(ids).collect())
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
        self.model.max_positions()
    }

    /// What the products and attention read, and the KV cache: f16 in half precision, else
    /// f32 ([`Precision`]).
    pub fn activation_dtype(&self) -> burn::tensor::DType {
        match &self.model {
            Decoder::Gpt2(m) => m.activation_dtype(),
            Decoder::Llama(m) => m.activation_dtype(),
        }
    }
}
