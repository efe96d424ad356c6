//! Self-supervised domain adaptation: masked-language-model training of an encoder on the user's
//! own unlabelled text, as transformers' `DataCollatorForLanguageModeling` and `Trainer` do it.
//! Each real, non-special token is chosen with probability 0.15; a chosen token becomes the mask
//! token 80% of the time, a random token 10%, and stays 10%; the loss is the cross-entropy of
//! the vocabulary logits at the chosen positions. Perplexity is `exp` of that loss on a held-out
//! slice with a fixed (seeded) choice of positions, so that before and after compare.

use burn::prelude::*;

use super::args::TrainingArgs;
use super::batches::cross_entropy;
use super::events::{Phase, TrainEvent, TrainHooks};
use super::optim::{AdamW, AdamWSettings};
use crate::clock::now_ms;
use crate::data::Text;
use crate::device::pad_multiple;
use crate::error::Error;
use crate::hub::ModelFiles;
use crate::model::bert::{EncoderInput, MaskedLm};
use crate::model::layers::Exporter;
use crate::model::read_f32;
use crate::model::weights::write_safetensors;
use crate::rng::Rng;
use crate::text::{EncodedBatch, TextTokenizer};

/// The positions a batch's loss is computed at, with the tokens to predict there.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Masked {
    /// (row, position) of each chosen token.
    pub positions: Vec<(usize, usize)>,
    /// The original token at each.
    pub targets: Vec<u32>,
}

/// `DataCollatorForLanguageModeling(mlm_probability=p)` on `batch` (changed in place): chooses
/// real tokens that are not in `special` with probability `p`; of those, 80% become `mask_id`,
/// 10% a token drawn uniformly from the vocabulary, 10% stay.
pub fn mask_tokens(
    batch: &mut EncodedBatch,
    special: &[u32],
    mask_id: u32,
    vocab_size: usize,
    p: f64,
    rng: &mut Rng,
) -> Masked {
    let mut out = Masked::default();
    for row in 0..batch.batch {
        for pos in 0..batch.seq_len {
            let i = row * batch.seq_len + pos;
            let id = batch.input_ids[i];
            if batch.attention_mask[i] == 0 || special.binary_search(&id).is_ok() {
                continue;
            }
            if rng.next_f64() >= p {
                continue;
            }
            out.positions.push((row, pos));
            out.targets.push(id);
            let r = rng.next_f64();
            if r < 0.8 {
                batch.input_ids[i] = mask_id;
            } else if r < 0.9 {
                batch.input_ids[i] = rng.below(vocab_size.max(1)) as u32;
            }
        }
    }
    out
}

/// The mean cross-entropy of the masked-LM logits at the chosen positions (`[1]`); `None` when
/// none was chosen.
pub fn masked_loss(model: &MaskedLm, input: &EncoderInput, masked: &Masked) -> Option<Tensor<1>> {
    if masked.positions.is_empty() {
        return None;
    }
    let logits = model.logits_at_positions(input, &masked.positions);
    let device = logits.device();
    let targets: Vec<i32> = masked.targets.iter().map(|&t| t as i32).collect();
    let n = targets.len();
    let targets = Tensor::<1, Int>::from_data(TensorData::new(targets, [n]), &device);
    Some(cross_entropy(logits, targets))
}

/// What masked-LM training produced.
pub struct MlmResult {
    /// The adapted model (inference device).
    pub model: MaskedLm,
    /// (epoch, held-out masked loss); epoch 0 is before training.
    pub history: Vec<(usize, f64)>,
    pub steps: usize,
    pub outcome: super::Outcome,
}

impl MlmResult {
    /// Perplexity (`exp` of the held-out masked loss) before and after training.
    pub fn perplexities(&self) -> (f64, f64) {
        let first = self.history.first().map_or(f64::NAN, |h| h.1.exp());
        let last = self.history.last().map_or(f64::NAN, |h| h.1.exp());
        (first, last)
    }
}

/// The held-out texts' masked loss with a fixed choice of positions (seeded by `seed`, the same
/// before and after training): the mean over every chosen token.
async fn held_out_loss(
    model: &MaskedLm,
    tokenizer: &TextTokenizer,
    texts: &[Text],
    args: &TrainingArgs,
    probability: f64,
    device: &Device,
) -> Result<f64, Error> {
    let special = tokenizer.special_ids();
    let mask_id = mask_id(tokenizer)?;
    let mut rng = Rng::new(args.seed ^ 0x05EE_D0F4_E1D0_u64);
    let (mut sum, mut count) = (0.0, 0usize);
    for chunk in texts.chunks(args.per_device_eval_batch_size.max(1)) {
        let refs: Vec<&str> = chunk.iter().map(|t| &**t).collect();
        let mut batch = tokenizer.encode_batch(&refs, args.max_length)?;
        let masked = mask_tokens(
            &mut batch,
            &special,
            mask_id,
            tokenizer.vocab_size(),
            probability,
            &mut rng,
        );
        let input = EncoderInput::new(&batch, device);
        if let Some(loss) = masked_loss(model, &input, &masked) {
            let n = masked.positions.len();
            sum += read_f32(loss).await?[0] as f64 * n as f64;
            count += n;
        }
    }
    Ok(if count == 0 {
        f64::NAN
    } else {
        sum / count as f64
    })
}

fn mask_id(tokenizer: &TextTokenizer) -> Result<u32, Error> {
    tokenizer.mask_id().ok_or_else(|| {
        Error::usage("this tokenizer has no mask token ([MASK] or <mask>): it cannot train a masked language model")
    })
}

/// Continues masked-LM training of `model` (loaded for inference on `device`) on `train`, with
/// `args`' epochs, batch size, rate, schedule and clipping (the mode is not read), choosing tokens
/// with `probability`; the held-out texts' masked loss before training and after each epoch.
/// Progress, loss logs and the end go to `hooks` as training events.
#[allow(clippy::too_many_arguments)]
pub async fn pre_train(
    model: MaskedLm,
    tokenizer: &TextTokenizer,
    train: &[Text],
    held_out: &[Text],
    args: &TrainingArgs,
    probability: f64,
    device: &Device,
    hooks: &mut dyn TrainHooks,
) -> Result<MlmResult, Error> {
    args.validate().map_err(Error::Usage)?;
    if train.is_empty() {
        return Err(Error::usage("there is no text to train on"));
    }
    if !(probability > 0.0 && probability < 1.0) {
        return Err(Error::usage(
            "the masking probability must be between 0 and 1",
        ));
    }
    let special = tokenizer.special_ids();
    let mask_id = mask_id(tokenizer)?;
    let start = now_ms();
    let steps_per_epoch = train.len().div_ceil(args.per_device_train_batch_size);
    let total_steps = steps_per_epoch * args.num_train_epochs;
    hooks.event(&TrainEvent::Started {
        mode: args.mode,
        train_examples: train.len(),
        test_examples: held_out.len(),
        epochs: args.num_train_epochs,
        total_steps,
    });
    let elapsed = || (now_ms() - start) / 1000.0;
    let before = held_out_loss(&model, tokenizer, held_out, args, probability, device).await?;
    hooks.event(&TrainEvent::MaskedLm {
        epoch: 0,
        loss: before,
        perplexity: before.exp(),
    });
    let mut history = vec![(0, before)];
    let autodiff = device.clone().autodiff();
    let mut trainable = model.train();
    let mut optimizer = AdamW::new(
        &trainable,
        AdamWSettings {
            beta1: args.adam_beta1,
            beta2: args.adam_beta2,
            epsilon: args.adam_epsilon,
            weight_decay: args.weight_decay,
            decay_bias_and_norm: false,
            max_grad_norm: args.max_grad_norm,
        },
    );
    let mut order_rng = Rng::new(args.seed);
    let mut mask_rng = Rng::new(args.seed.wrapping_add(1));
    let (mut steps, mut window) = (0usize, (0.0f64, 0usize));
    let mut outcome = super::Outcome::Completed;
    'epochs: for epoch in 1..=args.num_train_epochs {
        let mut order: Vec<usize> = (0..train.len()).collect();
        order_rng.shuffle(&mut order);
        for batch_rows in order.chunks(args.per_device_train_batch_size) {
            if hooks.cancelled() {
                outcome = super::Outcome::Cancelled;
                break 'epochs;
            }
            let texts: Vec<&str> = batch_rows.iter().map(|&i| &*train[i]).collect();
            let mut batch =
                tokenizer.encode_batch_padded(&texts, args.max_length, pad_multiple(&autodiff))?;
            let masked = mask_tokens(
                &mut batch,
                &special,
                mask_id,
                tokenizer.vocab_size(),
                probability,
                &mut mask_rng,
            );
            let input = EncoderInput::new(&batch, &autodiff);
            let lr = args.learning_rate_at(steps, total_steps);
            // Dropout's masks for this step from the run's seed and the step.
            crate::device::seed(&autodiff, super::checkpoint::step_seed(args.seed, steps));
            steps += 1;
            if let Some(loss) = masked_loss(&trainable, &input, &masked) {
                let value = read_f32(loss.clone().inner()).await?[0] as f64;
                if !value.is_finite() {
                    outcome = super::Outcome::Diverged(format!(
                        "the masked-LM loss became {value} at step {steps}: try a lower learning rate"
                    ));
                    break 'epochs;
                }
                trainable = optimizer.step(lr, trainable, loss).0;
                window = (window.0 + value, window.1 + 1);
            }
            if steps % args.logging_steps == 0 || steps == total_steps {
                hooks.event(&TrainEvent::Log {
                    step: steps,
                    epoch: steps as f64 / steps_per_epoch as f64,
                    loss: window.0 / window.1.max(1) as f64,
                    learning_rate: lr,
                    grad_norm: 0.0,
                });
                window = (0.0, 0);
            }
            hooks.event(&TrainEvent::Progress {
                phase: Phase::Training,
                done: steps,
                total: total_steps,
                elapsed_s: elapsed(),
            });
            hooks.pause().await;
        }
        let loss = held_out_loss(
            &trainable.valid(),
            tokenizer,
            held_out,
            args,
            probability,
            device,
        )
        .await?;
        hooks.event(&TrainEvent::MaskedLm {
            epoch,
            loss,
            perplexity: loss.exp(),
        });
        history.push((epoch, loss));
    }
    hooks.event(&TrainEvent::Finished {
        outcome: outcome.clone(),
        steps,
        elapsed_s: elapsed(),
        train_examples_per_s: 0.0,
    });
    Ok(MlmResult {
        model: trainable.valid(),
        history,
        steps,
        outcome,
    })
}

/// The files of a `*ForMaskedLM` folder of `model`: `config.json` (the base's, with the masked
/// LM's `architectures`), `model.safetensors` and the base's tokenizer files.
pub async fn export_masked_lm(
    model: &MaskedLm,
    base: &ModelFiles,
) -> Result<Vec<(String, Vec<u8>)>, Error> {
    let config = base.config()?;
    let mut raw = config.raw.clone();
    raw.insert(
        "architectures".into(),
        serde_json::Value::from(vec![config.family().masked_lm_architecture()]),
    );
    for key in ["id2label", "label2id", "problem_type", "tunelab_pooling"] {
        raw.remove(key);
    }
    let mut out = Exporter::default();
    model.export(&mut out);
    let tensors = out.read().await?;
    let mut files = vec![
        (
            "config.json".to_string(),
            serde_json::to_vec_pretty(&serde_json::Value::Object(raw))
                .map_err(|e| Error::Usage(e.to_string()))?,
        ),
        (
            "model.safetensors".to_string(),
            write_safetensors(&tensors)?,
        ),
        ("tokenizer.json".to_string(), base.tokenizer.clone()),
    ];
    // The tokenizer's files, and a sentence-transformers model's pooling (the same encoder).
    for (name, bytes) in &base.extra {
        files.push((name.clone(), bytes.clone()));
    }
    Ok(files)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn masking_chooses_15_percent_of_real_tokens_80_10_10_and_never_specials_or_padding() {
        // 200 rows of 101 (CLS) + 60 tokens + 102 (SEP), then 20 positions of padding.
        let (rows, len) = (200, 82);
        let mut ids = Vec::new();
        let mut mask = Vec::new();
        for r in 0..rows {
            ids.push(101);
            mask.push(1);
            for t in 0..60 {
                ids.push(1000 + ((r * 60 + t) % 500) as u32);
                mask.push(1);
            }
            ids.push(102);
            mask.push(1);
            ids.extend(std::iter::repeat_n(0, len - 62));
            mask.extend(std::iter::repeat_n(0, len - 62));
        }
        let original = ids.clone();
        let mut batch = EncodedBatch {
            batch: rows,
            seq_len: len,
            token_type_ids: vec![0; ids.len()],
            input_ids: ids,
            attention_mask: mask,
        };
        let masked = mask_tokens(
            &mut batch,
            &[0, 101, 102, 103],
            103,
            30522,
            0.15,
            &mut Rng::new(3),
        );
        let chosen = masked.positions.len() as f64;
        let real = (rows * 60) as f64;
        assert!((chosen / real - 0.15).abs() < 0.01, "{}", chosen / real);
        let mut masks = 0;
        let mut kept = 0;
        for (&(r, p), &t) in masked.positions.iter().zip(&masked.targets) {
            let i = r * len + p;
            assert!((1..=60).contains(&p), "only real, non-special tokens");
            assert_eq!(t, original[i]);
            match batch.input_ids[i] {
                103 => masks += 1,
                x if x == t => kept += 1,
                _ => {}
            }
        }
        let share = |n: usize| n as f64 / chosen;
        assert!((share(masks) - 0.8).abs() < 0.03, "mask {}", share(masks));
        // A random draw can land on the original token, so "kept" is a shade above 10%.
        assert!((share(kept) - 0.1).abs() < 0.03, "kept {}", share(kept));
        // Nothing else moved.
        let chosen_at: std::collections::HashSet<usize> =
            masked.positions.iter().map(|&(r, p)| r * len + p).collect();
        for (i, (&a, &b)) in original.iter().zip(&batch.input_ids).enumerate() {
            if !chosen_at.contains(&i) {
                assert_eq!(a, b);
            }
        }
    }
}
