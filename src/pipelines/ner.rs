//! Token classification (named entities), as transformers'
//! `pipeline("token-classification")`: every token's label with its softmax score
//! (`aggregation_strategy="none"`), and adjacent tokens of one entity grouped into spans of the
//! original text (`aggregation_strategy="simple"`).
//!
//! Grouping follows transformers: a token continues the group before it when its label's tag
//! (the label without `B-`/`I-`) is the group's and it is not a `B-` label; a group's label is
//! its first token's after the first `-`, its score the mean of its tokens', its word the
//! tokenizer's decoding of its tokens, its span from its first token's start to its last
//! token's end (in characters). Tokens and groups labelled `O` are left out.

use serde::{Deserialize, Serialize};

/// One token with its label (`aggregation_strategy="none"`).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct TokenTag {
    pub entity: String,
    pub score: f32,
    /// The token's position in the encoded input (special tokens counted).
    pub index: usize,
    /// The token as the vocabulary writes it (`##ra`, `▁the`), or the text's own characters for
    /// an unknown token.
    pub word: String,
    pub start: usize,
    pub end: usize,
}

/// A span of the text with its entity (`aggregation_strategy="simple"`).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Entity {
    pub entity_group: String,
    pub score: f32,
    pub word: String,
    /// Character offsets into the text.
    pub start: usize,
    pub end: usize,
}

/// transformers' `get_tag`: (`B` or `I`, the tag); a label without the prefix continues.
fn tag_of(label: &str) -> (char, &str) {
    if let Some(tag) = label.strip_prefix("B-") {
        ('B', tag)
    } else if let Some(tag) = label.strip_prefix("I-") {
        ('I', tag)
    } else {
        ('I', label)
    }
}

/// Groups labelled tokens (all of them, `O` included, in order) into entities, leaving out the
/// `O` groups; `to_string` puts a group's tokens together.
pub fn group_entities<E>(
    tokens: &[TokenTag],
    mut to_string: impl FnMut(Vec<String>) -> Result<String, E>,
) -> Result<Vec<Entity>, E> {
    let mut groups: Vec<&[TokenTag]> = Vec::new();
    let mut start = 0;
    for i in 1..tokens.len() {
        let (bi, tag) = tag_of(&tokens[i].entity);
        let (_, last_tag) = tag_of(&tokens[i - 1].entity);
        if !(tag == last_tag && bi != 'B') {
            groups.push(&tokens[start..i]);
            start = i;
        }
    }
    if start < tokens.len() {
        groups.push(&tokens[start..]);
    }
    let mut out = Vec::new();
    for group in groups {
        let first = &group[0];
        let label = first
            .entity
            .split_once('-')
            .map_or(&*first.entity, |(_, t)| t);
        if label == "O" {
            continue;
        }
        let score = group.iter().map(|t| t.score as f64).sum::<f64>() / group.len() as f64;
        out.push(Entity {
            entity_group: label.to_string(),
            score: score as f32,
            word: to_string(group.iter().map(|t| t.word.clone()).collect())?,
            start: first.start,
            end: group[group.len() - 1].end,
        });
    }
    Ok(out)
}

#[cfg(feature = "engine")]
mod engine {
    use burn::prelude::*;

    use super::{group_entities, Entity, TokenTag};
    use crate::error::Error;
    use crate::hub::ModelFiles;
    use crate::math::softmax;
    use crate::model::bert::{EncoderInput, TokenClassifier};
    use crate::model::weights::Precision;
    use crate::model::{read_f32, Task};
    use crate::pipelines::{default_max_length, encoder_config};
    use crate::text::{EncodedBatch, TextTokenizer, Tokens};

    /// Texts per forward pass.
    const BATCH: usize = 16;

    /// A token classifier with its tokenizer and label names.
    pub struct Tagger {
        pub model: TokenClassifier,
        pub tokenizer: TextTokenizer,
        pub labels: Vec<String>,
        pub max_length: usize,
        pub device: Device,
    }

    impl Tagger {
        /// Loads a `*ForTokenClassification` checkpoint; on a GPU that computes in f16, in half
        /// precision ([`Precision::Auto`]).
        pub fn load(files: &ModelFiles, device: &Device) -> Result<Self, Error> {
            Self::load_with(files, device, Precision::Auto)
        }

        /// [`Tagger::load`] in `precision`.
        pub fn load_with(
            files: &ModelFiles,
            device: &Device,
            precision: Precision,
        ) -> Result<Self, Error> {
            let config = files.config()?;
            let enc = encoder_config(&config)?.clone();
            if config.task != Task::TokenClassification {
                return Err(Error::usage(
                    "token classification needs a *ForTokenClassification checkpoint",
                ));
            }
            let tokenizer = files.tokenizer()?;
            let model =
                TokenClassifier::from_checkpoint(files.checkpoint()?, &config, device, precision)?;
            let labels = (0..model.num_labels()).map(|i| config.label(i)).collect();
            Ok(Self {
                model,
                tokenizer,
                labels,
                max_length: default_max_length(&enc),
                device: device.clone(),
            })
        }

        /// Every token's label and score, special tokens left out
        /// (`aggregation_strategy="none"` before the `O` tokens are dropped).
        pub async fn token_tags(&self, texts: &[&str]) -> Result<Vec<Vec<TokenTag>>, Error> {
            let mut out = Vec::with_capacity(texts.len());
            for group in texts.chunks(BATCH) {
                let encoded = self.tokenizer.encode_tokens_batch(group, self.max_length)?;
                let longest = encoded.iter().map(|t| t.ids.len()).max().unwrap_or(0);
                let pad = self.tokenizer.pad_id();
                let row = |t: &Tokens, f: &dyn Fn(u32) -> u32, fill: u32| {
                    let mut r: Vec<u32> = t.ids.iter().map(|&id| f(id)).collect();
                    r.resize(longest, fill);
                    r
                };
                let ids: Vec<Vec<u32>> = encoded.iter().map(|t| row(t, &|id| id, pad)).collect();
                let mask: Vec<Vec<u32>> = encoded.iter().map(|t| row(t, &|_| 1, 0)).collect();
                let batch = EncodedBatch::from_rows(&ids, &mask, None);
                let logits = self.model.forward(&EncoderInput::new(&batch, &self.device));
                let k = self.labels.len();
                let values = read_f32(logits).await?;
                for (b, (tokens, text)) in encoded.iter().zip(group).enumerate() {
                    let rows = &values[b * longest * k..(b + 1) * longest * k];
                    out.push(self.tags_of(text, tokens, rows)?);
                }
            }
            Ok(out)
        }

        fn tags_of(
            &self,
            text: &str,
            tokens: &Tokens,
            logits: &[f32],
        ) -> Result<Vec<TokenTag>, Error> {
            let k = self.labels.len();
            let unk = self.tokenizer.unk_id();
            let chars: Vec<char> = text.chars().collect();
            let mut tags = Vec::new();
            for (i, &id) in tokens.ids.iter().enumerate() {
                if tokens.special[i] {
                    continue;
                }
                let scores = softmax(&logits[i * k..(i + 1) * k]);
                let best = crate::math::argmax(&scores);
                let (start, end) = tokens.offsets[i];
                let word = if Some(id) == unk {
                    chars[start.min(chars.len())..end.min(chars.len())]
                        .iter()
                        .collect()
                } else {
                    self.tokenizer.id_to_token(id).unwrap_or_default()
                };
                tags.push(TokenTag {
                    entity: self.labels[best].clone(),
                    score: scores[best],
                    index: i,
                    word,
                    start,
                    end,
                });
            }
            Ok(tags)
        }

        /// `pipeline("token-classification", aggregation_strategy="simple")`: the entities of
        /// each text.
        pub async fn entities(&self, texts: &[&str]) -> Result<Vec<Vec<Entity>>, Error> {
            let tags = self.token_tags(texts).await?;
            tags.iter()
                .map(|t| {
                    group_entities(t, |tokens| self.tokenizer.tokens_to_string(tokens))
                        .map_err(Error::from)
                })
                .collect()
        }
    }
}

#[cfg(feature = "engine")]
pub use engine::Tagger;

#[cfg(test)]
mod tests {
    use super::*;

    fn tag(entity: &str, word: &str, start: usize, end: usize, score: f32) -> TokenTag {
        TokenTag {
            entity: entity.into(),
            score,
            index: 0,
            word: word.into(),
            start,
            end,
        }
    }

    #[test]
    fn adjacent_tokens_of_one_entity_group_and_b_starts_a_new_one() {
        let tokens = [
            tag("B-PER", "Wolf", 0, 4, 0.9),
            tag("I-PER", "##gang", 4, 8, 0.7),
            tag("O", "in", 9, 11, 0.99),
            tag("B-LOC", "New", 12, 15, 0.8),
            tag("B-LOC", "York", 16, 20, 0.6),
            tag("I-ORG", "Inc", 21, 24, 0.5),
            tag("MISC", "x", 25, 26, 0.4),
            tag("I-MISC", "y", 26, 27, 0.2),
        ];
        let got = group_entities(&tokens, |t| Ok::<_, ()>(t.join("|"))).unwrap();
        let spans: Vec<(&str, &str, usize, usize)> = got
            .iter()
            .map(|e| (e.entity_group.as_str(), e.word.as_str(), e.start, e.end))
            .collect();
        assert_eq!(
            spans,
            vec![
                ("PER", "Wolf|##gang", 0, 8),
                ("LOC", "New", 12, 15),
                ("LOC", "York", 16, 20),
                ("ORG", "Inc", 21, 24),
                ("MISC", "x|y", 25, 27),
            ]
        );
        assert!((got[0].score - 0.8).abs() < 1e-6);
        assert!((got[4].score - 0.3).abs() < 1e-6);
    }
}
