//! Batches and losses shared by the training steps and evaluation: cross-entropy, class indices
//! on the device, texts ordered by length, and a classifier's loss and predictions from its logits.

use burn::prelude::*;
use burn::tensor::activation;

use crate::data::Text;
use crate::error::Error;
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

/// Reads logits `[n, k]` back once and computes on the host the summed cross-entropy against
/// `labels` and the predicted classes (the first of equal maxima, as torch's `argmax`): one
/// readback per batch instead of one for the loss and one for the predictions.
pub async fn loss_and_predictions(
    logits: Tensor<2>,
    labels: &[usize],
) -> Result<(f64, Vec<usize>), Error> {
    let [_, k] = logits.dims();
    let values = read_f32(logits).await?;
    Ok(losses_and_predictions(&values, k, labels))
}

/// The summed cross-entropy of logits (`[n, k]` flat, on the host) against `labels`, and the
/// predicted classes (the first of equal maxima, as torch's `argmax`).
pub fn losses_and_predictions(values: &[f32], k: usize, labels: &[usize]) -> (f64, Vec<usize>) {
    let n = labels.len();
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
    (loss, preds)
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
