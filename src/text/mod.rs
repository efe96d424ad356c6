//! Text in, token ids out.

mod tokenizer;

pub use tokenizer::{EncodedBatch, TextTokenizer, Tokens};

#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum TextError {
    #[error("tokenizer: {0}")]
    Load(String),
    #[error("could not encode text: {0}")]
    Encode(String),
}
