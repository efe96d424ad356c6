//! Batches and losses shared by the training steps and evaluation: cross-entropy, class indices
//! on the device, texts ordered by length, and a classifier's loss and predictions on a dataset.

use burn::prelude::*;
use burn::tensor::activation;

use crate::data::{Dataset, Text};
use crate::device::pad_multiple;
use crate::error::Error;
use crate::model::bert::{EncoderInput, SequenceClassifier};
use crate::model::read_f32;
use crate::text::TextTokenizer;

/// Mean cross-entropy of logits `[n, k]` against class indices.
pub fn cross_entropy(logits: Tensor<2>, targets: Tensor<1, Int>) -> Tensor<1> {
    let [n, _] = logits.dims();
    activation::log_softmax(logits, 1)
        .gather(1, targets.reshape([n, 1]))
        .mean()
        .neg()
}

pub fn index_tensor(idx: &[usize], device: &Device) -> Tensor<1, Int> {
    let v: Vec<i32> = idx.iter().map(|&i| i as i32).collect();
    Tensor::from_data(TensorData::new(v, [idx.len()]), device)
}

/// The classifier's predictions and mean loss on a dataset (inference mode).
pub async fn evaluate_model(
    model: &SequenceClassifier,
    tokenizer: &TextTokenizer,
    data: &Dataset,
    batch_size: usize,
    max_length: usize,
    device: &Device,
) -> Result<(f64, Vec<usize>), Error> {
    let mut loss_sum = 0.0;
    let mut preds = Vec::with_capacity(data.len());
    let order = by_length(tokenizer, &data.texts, max_length)?;
    let mut sorted_preds = vec![0usize; data.len()];
    for chunk in order.chunks(batch_size) {
        let texts: Vec<&str> = chunk.iter().map(|&i| &*data.texts[i]).collect();
        let labels: Vec<usize> = chunk.iter().map(|&i| data.labels[i]).collect();
        let batch = tokenizer.encode_batch_padded(&texts, max_length, pad_multiple(device))?;
        let logits = model.forward(&EncoderInput::new(&batch, device));
        let (sum, p) = loss_and_predictions(logits, &labels).await?;
        loss_sum += sum;
        for (&i, c) in chunk.iter().zip(p) {
            sorted_preds[i] = c;
        }
    }
    preds.extend(sorted_preds);
    Ok((loss_sum / data.len().max(1) as f64, preds))
}

/// Reads logits `[n, k]` back once and computes on the host the summed cross-entropy against
/// `labels` and the predicted classes (the first of equal maxima, as torch's `argmax`): one
/// readback per batch instead of one for the loss and one for the predictions.
pub async fn loss_and_predictions(
    logits: Tensor<2>,
    labels: &[usize],
) -> Result<(f64, Vec<usize>), Error> {
    let [n, k] = logits.dims();
    let values = read_f32(logits).await?;
    let mut loss = 0.0f64;
    let mut preds = Vec::with_capacity(n);
    for (row, &label) in values.chunks(k.max(1)).zip(labels) {
        let mut best = 0;
        for (j, &x) in row.iter().enumerate() {
            if x > row[best] {
                best = j;
            }
        }
        let max = row[best] as f64;
        let log_sum = row
            .iter()
            .map(|&x| (x as f64 - max).exp())
            .sum::<f64>()
            .ln()
            + max;
        loss += log_sum - row[label] as f64;
        preds.push(best);
    }
    Ok((loss, preds))
}

/// Indices sorted by token length (batches of similar lengths pad little).
pub fn by_length(
    tokenizer: &TextTokenizer,
    texts: &[Text],
    max_length: usize,
) -> Result<Vec<usize>, Error> {
    let mut lens = Vec::with_capacity(texts.len());
    for t in texts {
        lens.push(tokenizer.encode(t, true)?.len().min(max_length));
    }
    let mut order: Vec<usize> = (0..texts.len()).collect();
    order.sort_by_key(|&i| lens[i]);
    Ok(order)
}
