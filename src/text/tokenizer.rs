//! `tokenizer.json` through the Hugging Face `tokenizers` crate: batch encoding with attention
//! masks and token type ids, padding to the longest text of the batch, truncation to a length set
//! in code (whatever padding or truncation the file asks for), sentence pairs, decoding.

use tokenizers::{
    EncodeInput, Encoding, PaddingDirection, PaddingParams, PaddingStrategy, Tokenizer,
    TruncationDirection, TruncationParams, TruncationStrategy,
};

use super::TextError;

/// A loaded tokenizer. Padding and truncation are decided per call, not by the file.
#[derive(Clone)]
pub struct TextTokenizer {
    inner: Tokenizer,
    pad_id: u32,
    pad_token: String,
    /// `inner` set to truncate and pad as the last batch asked: configuring a copy costs a clone
    /// of the whole vocabulary (2% of fine-tuning's time, a batch at a time), so it is kept for
    /// the batches that follow with the same settings.
    configured: std::sync::Arc<std::sync::Mutex<Option<Configured>>>,
}

/// A copy of the tokenizer set to truncate at `max_length` with `strategy`, and to pad.
struct Configured {
    max_length: usize,
    strategy: TruncationStrategy,
    tokenizer: Tokenizer,
}

/// One batch of encoded texts, row-major `[batch, seq_len]`, padded to the longest row.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct EncodedBatch {
    pub batch: usize,
    pub seq_len: usize,
    pub input_ids: Vec<u32>,
    pub attention_mask: Vec<u32>,
    pub token_type_ids: Vec<u32>,
}

impl EncodedBatch {
    /// The batch of `rows` (in that order), cut to the longest of them rounded up to a multiple
    /// of `multiple` (not past this batch's length: the positions kept past a row's end are this
    /// batch's padding).
    pub fn select_rows(&self, rows: &[usize], multiple: usize) -> EncodedBatch {
        let longest = rows.iter().map(|&i| self.row_len(i)).max().unwrap_or(0);
        let seq_len = longest.next_multiple_of(multiple.max(1)).min(self.seq_len);
        let mut out = EncodedBatch {
            batch: rows.len(),
            seq_len,
            input_ids: Vec::with_capacity(rows.len() * seq_len),
            attention_mask: Vec::with_capacity(rows.len() * seq_len),
            token_type_ids: Vec::with_capacity(rows.len() * seq_len),
        };
        for &i in rows {
            let r = i * self.seq_len..i * self.seq_len + seq_len;
            out.input_ids.extend_from_slice(&self.input_ids[r.clone()]);
            out.attention_mask
                .extend_from_slice(&self.attention_mask[r.clone()]);
            out.token_type_ids
                .extend_from_slice(&self.token_type_ids[r]);
        }
        out
    }

    /// Pads every row with `pad_id` (mask 0, token type 0) to `seq_len` positions.
    pub fn pad_to(&mut self, seq_len: usize, pad_id: u32) {
        if seq_len <= self.seq_len {
            return;
        }
        let extra = seq_len - self.seq_len;
        let widen = |v: &[u32], fill: u32| -> Vec<u32> {
            let mut out = Vec::with_capacity(self.batch * seq_len);
            for row in v.chunks(self.seq_len.max(1)).take(self.batch) {
                out.extend_from_slice(row);
                out.extend(std::iter::repeat_n(fill, extra));
            }
            out
        };
        if self.seq_len == 0 {
            let n = self.batch * seq_len;
            self.input_ids = vec![pad_id; n];
            self.attention_mask = vec![0; n];
            self.token_type_ids = vec![0; n];
        } else {
            self.input_ids = widen(&self.input_ids, pad_id);
            self.attention_mask = widen(&self.attention_mask, 0);
            self.token_type_ids = widen(&self.token_type_ids, 0);
        }
        self.seq_len = seq_len;
    }

    /// The ids of row `i` without padding.
    pub fn row_ids(&self, i: usize) -> Vec<u32> {
        let r = i * self.seq_len..(i + 1) * self.seq_len;
        self.input_ids[r.clone()]
            .iter()
            .zip(&self.attention_mask[r])
            .filter(|(_, &m)| m == 1)
            .map(|(&id, _)| id)
            .collect()
    }

    /// Number of real (unpadded) tokens in row `i`.
    pub fn row_len(&self, i: usize) -> usize {
        self.attention_mask[i * self.seq_len..(i + 1) * self.seq_len]
            .iter()
            .filter(|&&m| m == 1)
            .count()
    }

    /// A batch from already padded rows (for example the golden fixtures' inputs).
    pub fn from_rows(ids: &[Vec<u32>], mask: &[Vec<u32>], types: Option<&[Vec<u32>]>) -> Self {
        let batch = ids.len();
        let seq_len = ids.first().map_or(0, Vec::len);
        let flat = |rows: &[Vec<u32>]| rows.iter().flatten().copied().collect::<Vec<_>>();
        Self {
            batch,
            seq_len,
            input_ids: flat(ids),
            attention_mask: flat(mask),
            token_type_ids: types.map(flat).unwrap_or_else(|| vec![0; batch * seq_len]),
        }
    }
}

impl TextTokenizer {
    /// Loads `tokenizer.json` bytes.
    pub fn from_bytes(bytes: &[u8]) -> Result<Self, TextError> {
        let mut inner = Tokenizer::from_bytes(bytes).map_err(|e| {
            TextError::Load(
                if serde_json::from_slice::<serde_json::Value>(bytes).is_err() {
                    "tokenizer.json is not valid JSON".to_string()
                } else {
                    format!("tokenizer.json could not be read: {e}")
                },
            )
        })?;
        let (pad_id, pad_token) = match inner.get_padding() {
            Some(p) => (p.pad_id, p.pad_token.clone()),
            None => ["[PAD]", "<pad>", "<|endoftext|>"]
                .iter()
                .find_map(|t| inner.token_to_id(t).map(|id| (id, t.to_string())))
                .unwrap_or((0, String::new())),
        };
        inner.with_padding(None);
        inner
            .with_truncation(None)
            .map_err(|e| TextError::Load(e.to_string()))?;
        Ok(Self {
            inner,
            pad_id,
            pad_token,
            configured: Default::default(),
        })
    }

    pub fn vocab_size(&self) -> usize {
        self.inner.get_vocab_size(true)
    }

    /// One text's tokens (special tokens included, truncated to `max_length`) with what a
    /// token classification pipeline needs of each.
    pub fn encode_tokens(&self, text: &str, max_length: usize) -> Result<Tokens, TextError> {
        let mut batch = self.encode_tokens_batch(&[text], max_length)?;
        Ok(batch.pop().expect("one text, one encoding"))
    }

    /// [`Self::encode_tokens`] for several texts.
    pub fn encode_tokens_batch(
        &self,
        texts: &[&str],
        max_length: usize,
    ) -> Result<Vec<Tokens>, TextError> {
        if max_length == 0 {
            return Err(TextError::Encode("max length must be at least 1".into()));
        }
        let mut tok = self.inner.clone();
        tok.with_truncation(Some(TruncationParams {
            direction: TruncationDirection::Right,
            max_length,
            strategy: TruncationStrategy::LongestFirst,
            stride: 0,
        }))
        .map_err(|e| TextError::Encode(e.to_string()))?;
        let inputs: Vec<EncodeInput> = texts
            .iter()
            .map(|t| EncodeInput::Single((*t).into()))
            .collect();
        let encodings = tok
            .encode_batch_char_offsets(inputs, true)
            .map_err(|e| TextError::Encode(e.to_string()))?;
        Ok(encodings
            .into_iter()
            .map(|e| Tokens {
                special: e
                    .get_special_tokens_mask()
                    .iter()
                    .map(|&m| m == 1)
                    .collect(),
                offsets: e.get_offsets().to_vec(),
                ids: e.get_ids().to_vec(),
            })
            .collect())
    }

    /// The text of `tokens` (token strings) as the tokenizer's decoder puts them together
    /// (transformers' `convert_tokens_to_string`); joined by spaces when it has no decoder.
    pub fn tokens_to_string(&self, tokens: Vec<String>) -> Result<String, TextError> {
        use tokenizers::Decoder;
        match self.inner.get_decoder() {
            Some(decoder) => decoder
                .decode(tokens)
                .map_err(|e| TextError::Encode(e.to_string())),
            None => Ok(tokens.join(" ")),
        }
    }

    /// The unknown token's id, if the vocabulary has one.
    pub fn unk_id(&self) -> Option<u32> {
        ["[UNK]", "<unk>", "<|endoftext|>"]
            .iter()
            .find_map(|t| self.inner.token_to_id(t))
    }

    pub fn token_to_id(&self, token: &str) -> Option<u32> {
        self.inner.token_to_id(token)
    }

    pub fn id_to_token(&self, id: u32) -> Option<String> {
        self.inner.id_to_token(id)
    }

    pub fn pad_id(&self) -> u32 {
        self.pad_id
    }

    /// The ids of the special tokens (`[CLS]`, `[SEP]`, `[PAD]`, `[MASK]`, ...: the added tokens
    /// marked special), which masked-language-model training never masks.
    pub fn special_ids(&self) -> Vec<u32> {
        let mut ids: Vec<u32> = self
            .inner
            .get_added_tokens_decoder()
            .iter()
            .filter(|(_, t)| t.special)
            .map(|(&id, _)| id)
            .collect();
        ids.sort_unstable();
        ids
    }

    /// The mask token's id (`[MASK]` or `<mask>`), if the vocabulary has one.
    pub fn mask_id(&self) -> Option<u32> {
        ["[MASK]", "<mask>"]
            .iter()
            .find_map(|t| self.inner.token_to_id(t))
    }

    /// Encodes texts (each a single sequence) padded to the longest and truncated to `max_length`.
    pub fn encode_batch(
        &self,
        texts: &[&str],
        max_length: usize,
    ) -> Result<EncodedBatch, TextError> {
        let inputs: Vec<EncodeInput> = texts
            .iter()
            .map(|t| EncodeInput::Single((*t).into()))
            .collect();
        self.encode_inputs(inputs, max_length)
    }

    /// [`encode_batch`](Self::encode_batch), then padded further to a multiple of `multiple`
    /// tokens (never past `max_length`, or the longest row when that is longer): a GPU then sees
    /// a few fixed sequence lengths, and compiles and tunes its kernels once for each. The extra
    /// positions are padding (mask 0), so every real position computes the same values.
    pub fn encode_batch_padded(
        &self,
        texts: &[&str],
        max_length: usize,
        multiple: usize,
    ) -> Result<EncodedBatch, TextError> {
        let mut batch = self.encode_batch(texts, max_length)?;
        let target = batch
            .seq_len
            .next_multiple_of(multiple.max(1))
            .min(max_length.max(batch.seq_len));
        batch.pad_to(target, self.pad_id);
        Ok(batch)
    }

    /// Encodes sentence pairs (`[CLS] a [SEP] b [SEP]` for BERT, with token type 1 on `b`),
    /// truncating the longer of the two first.
    pub fn encode_pairs(
        &self,
        pairs: &[(&str, &str)],
        max_length: usize,
    ) -> Result<EncodedBatch, TextError> {
        self.encode_pairs_with(pairs, max_length, TruncationStrategy::LongestFirst)
    }

    /// Encodes sentence pairs truncating only the first of each (as transformers'
    /// zero-shot pipeline does, so that the hypothesis stays whole).
    pub fn encode_pairs_truncating_first(
        &self,
        pairs: &[(&str, &str)],
        max_length: usize,
    ) -> Result<EncodedBatch, TextError> {
        self.encode_pairs_with(pairs, max_length, TruncationStrategy::OnlyFirst)
    }

    fn encode_pairs_with(
        &self,
        pairs: &[(&str, &str)],
        max_length: usize,
        strategy: TruncationStrategy,
    ) -> Result<EncodedBatch, TextError> {
        let inputs: Vec<EncodeInput> = pairs
            .iter()
            .map(|(a, b)| EncodeInput::Dual((*a).into(), (*b).into()))
            .collect();
        self.encode_inputs_with(inputs, max_length, strategy)
    }

    fn encode_inputs(
        &self,
        inputs: Vec<EncodeInput>,
        max_length: usize,
    ) -> Result<EncodedBatch, TextError> {
        self.encode_inputs_with(inputs, max_length, TruncationStrategy::LongestFirst)
    }

    fn encode_inputs_with(
        &self,
        inputs: Vec<EncodeInput>,
        max_length: usize,
        strategy: TruncationStrategy,
    ) -> Result<EncodedBatch, TextError> {
        if max_length == 0 {
            return Err(TextError::Encode("max length must be at least 1".into()));
        }
        let mut kept = self.configured.lock().unwrap_or_else(|e| e.into_inner());
        if !matches!(&*kept, Some(c) if c.max_length == max_length && c.strategy == strategy) {
            let mut tok = self.inner.clone();
            tok.with_truncation(Some(TruncationParams {
                direction: TruncationDirection::Right,
                max_length,
                strategy,
                stride: 0,
            }))
            .map_err(|e| TextError::Encode(e.to_string()))?;
            tok.with_padding(Some(PaddingParams {
                strategy: PaddingStrategy::BatchLongest,
                direction: PaddingDirection::Right,
                pad_to_multiple_of: None,
                pad_id: self.pad_id,
                pad_type_id: 0,
                pad_token: self.pad_token.clone(),
            }));
            *kept = Some(Configured {
                max_length,
                strategy,
                tokenizer: tok,
            });
        }
        let tok = &kept.as_ref().expect("configured just above").tokenizer;
        let encodings = tok
            .encode_batch(inputs, true)
            .map_err(|e| TextError::Encode(e.to_string()))?;
        Ok(batch_of(&encodings))
    }

    /// Token ids of one text, without padding or truncation.
    /// The beginning of `text` that encodes to at most `max_tokens` tokens (no special tokens),
    /// cut where a token starts; `text` itself when it fits.
    pub fn truncate_text<'t>(
        &self,
        text: &'t str,
        max_tokens: usize,
    ) -> Result<&'t str, TextError> {
        let encoding = self
            .inner
            .encode(text, false)
            .map_err(|e| TextError::Encode(e.to_string()))?;
        let offsets = encoding.get_offsets();
        if offsets.len() <= max_tokens {
            return Ok(text);
        }
        let mut cut = offsets[max_tokens].0.min(text.len());
        while !text.is_char_boundary(cut) {
            cut -= 1;
        }
        Ok(&text[..cut])
    }

    pub fn encode(&self, text: &str, add_special_tokens: bool) -> Result<Vec<u32>, TextError> {
        self.inner
            .encode(text, add_special_tokens)
            .map(|e| e.get_ids().to_vec())
            .map_err(|e| TextError::Encode(e.to_string()))
    }

    pub fn decode(&self, ids: &[u32], skip_special_tokens: bool) -> Result<String, TextError> {
        self.inner
            .decode(ids, skip_special_tokens)
            .map_err(|e| TextError::Encode(e.to_string()))
    }
}

/// One text's tokens for token classification.
#[derive(Debug, Clone, PartialEq)]
pub struct Tokens {
    pub ids: Vec<u32>,
    /// Whether each token was added by the tokenizer (`[CLS]`, `</s>`, ...).
    pub special: Vec<bool>,
    /// Each token's span of the text, in characters (as Python's string indices).
    pub offsets: Vec<(usize, usize)>,
}

fn batch_of(encodings: &[Encoding]) -> EncodedBatch {
    let batch = encodings.len();
    let seq_len = encodings.first().map_or(0, Encoding::len);
    let mut out = EncodedBatch {
        batch,
        seq_len,
        input_ids: Vec::with_capacity(batch * seq_len),
        attention_mask: Vec::with_capacity(batch * seq_len),
        token_type_ids: Vec::with_capacity(batch * seq_len),
    };
    for e in encodings {
        out.input_ids.extend_from_slice(e.get_ids());
        out.attention_mask.extend_from_slice(e.get_attention_mask());
        out.token_type_ids.extend_from_slice(e.get_type_ids());
    }
    out
}
