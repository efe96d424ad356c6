//! Fill-mask: `pipeline("fill-mask")` with a masked-LM checkpoint.

use burn::prelude::*;
use burn::tensor::activation;

use super::{default_max_length, encoder_config};
use crate::error::Error;
use crate::hub::ModelFiles;
use crate::model::bert::{EncoderInput, MaskedLm};
use crate::model::weights::Precision;
use crate::model::{read_f32, Task};
use crate::text::TextTokenizer;

pub use super::MaskCandidate;

/// A masked LM with its tokenizer and mask token.
pub struct FillMask {
    pub model: MaskedLm,
    pub tokenizer: TextTokenizer,
    pub mask_id: u32,
    pub mask_token: String,
    pub max_length: usize,
    pub device: Device,
}

impl FillMask {
    /// On a GPU that computes in f16, in half precision ([`Precision::Auto`]).
    pub fn load(files: &ModelFiles, device: &Device) -> Result<Self, Error> {
        Self::load_with(files, device, Precision::Auto)
    }

    /// [`FillMask::load`] in `precision`.
    pub fn load_with(
        files: &ModelFiles,
        device: &Device,
        precision: Precision,
    ) -> Result<Self, Error> {
        let config = files.config()?;
        let enc = encoder_config(&config)?.clone();
        if config.task != Task::MaskedLm {
            return Err(Error::usage(
                "fill-mask needs a masked-LM checkpoint (BertForMaskedLM, DistilBertForMaskedLM, \
                 RobertaForMaskedLM, XLMRobertaForMaskedLM)",
            ));
        }
        let tokenizer = files.tokenizer()?;
        let (mask_token, mask_id) = tokenizer
            .mask_id()
            .and_then(|id| Some((tokenizer.id_to_token(id)?, id)))
            .ok_or_else(|| Error::usage("the tokenizer has no [MASK] token"))?;
        let model = MaskedLm::from_checkpoint(files.checkpoint()?, &enc, device, precision)?;
        Ok(Self {
            model,
            tokenizer,
            mask_id,
            mask_token,
            max_length: default_max_length(&enc),
            device: device.clone(),
        })
    }

    /// The `k` most likely tokens for each mask of `text`, in mask order.
    pub async fn fill_mask(&self, text: &str, k: usize) -> Result<Vec<Vec<MaskCandidate>>, Error> {
        let batch = self.tokenizer.encode_batch(&[text], self.max_length)?;
        let ids = batch.row_ids(0);
        let positions: Vec<(usize, usize)> = ids
            .iter()
            .enumerate()
            .filter(|(_, &id)| id == self.mask_id)
            .map(|(p, _)| (0, p))
            .collect();
        if positions.is_empty() {
            return Err(Error::usage(format!(
                "the text has no {} token to fill",
                self.mask_token
            )));
        }
        let input = EncoderInput::new(&batch, &self.device);
        let logits = self.model.logits_at_positions(&input, &positions);
        let probs = activation::softmax(logits, 1);
        let vocab = probs.dims()[1];
        let probs = read_f32(probs).await?;
        let mut out = Vec::with_capacity(positions.len());
        for (m, &(_, pos)) in positions.iter().enumerate() {
            let row = &probs[m * vocab..(m + 1) * vocab];
            let mut best: Vec<usize> = (0..vocab).collect();
            let k = k.min(vocab);
            best.select_nth_unstable_by(k.saturating_sub(1), |&a, &b| row[b].total_cmp(&row[a]));
            best.truncate(k);
            best.sort_by(|&a, &b| row[b].total_cmp(&row[a]));
            let mut candidates = Vec::with_capacity(k);
            for id in best {
                let mut filled = ids.clone();
                filled[pos] = id as u32;
                candidates.push(MaskCandidate {
                    score: row[id],
                    token: id as u32,
                    token_str: self.tokenizer.decode(&[id as u32], false)?,
                    // As transformers: with one mask the special tokens are dropped; with several
                    // they stay, so the other masks show in each filled text.
                    sequence: self.tokenizer.decode(&filled, positions.len() == 1)?,
                });
            }
            out.push(candidates);
        }
        Ok(out)
    }
}
