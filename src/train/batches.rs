//! Batches and losses shared by the training steps and evaluation: cross-entropy, class indices
//! on the device, texts ordered by length, and a classifier's loss and predictions on a dataset.

use burn::prelude::*;
use burn::tensor::activation;

use crate::data::Dataset;
use crate::error::Error;
use crate::model::bert::{EncoderInput, SequenceClassifier};
use crate::model::{read_f32, read_i64};
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
        let texts: Vec<&str> = chunk.iter().map(|&i| data.texts[i].as_str()).collect();
        let labels: Vec<usize> = chunk.iter().map(|&i| data.labels[i]).collect();
        let batch = tokenizer.encode_batch(&texts, max_length)?;
        let logits = model.forward(&EncoderInput::new(&batch, device));
        let loss = cross_entropy(logits.clone(), index_tensor(&labels, device));
        loss_sum += read_f32(loss).await?[0] as f64 * chunk.len() as f64;
        let p = read_i64(logits.argmax(1)).await?;
        for (&i, &c) in chunk.iter().zip(&p) {
            sorted_preds[i] = c as usize;
        }
    }
    preds.extend(sorted_preds);
    Ok((loss_sum / data.len().max(1) as f64, preds))
}

/// Indices sorted by token length (batches of similar lengths pad little).
pub fn by_length(
    tokenizer: &TextTokenizer,
    texts: &[String],
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
