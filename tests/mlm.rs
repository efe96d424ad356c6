//! Masked-language-model training (self-supervised domain adaptation): transformers' 3-step MLM
//! trace on tiny-bert-mlm reproduced (the decoder tied to the word embeddings), and the export
//! as `*ForMaskedLM` giving back the checkpoint's own tensors.

mod common;

use burn::prelude::*;
use common::*;
use tunelab::hub::ModelFiles;
use tunelab::model::bert::{EncoderInput, MaskedLm};
use tunelab::model::layers::Exporter;
use tunelab::text::EncodedBatch;
use tunelab::train::mlm::{masked_loss, Masked};
use tunelab::train::optim::AdamW;

fn tiny_bert_mlm(dev: &Device) -> MaskedLm {
    let files = ModelFiles::from_dir(fixture_model("tiny-bert-mlm")).unwrap();
    let config = files.config().unwrap();
    MaskedLm::from_checkpoint(
        &files.weights,
        config.encoder().unwrap(),
        dev,
        Default::default(),
    )
    .unwrap()
}

#[test]
fn mlm_training_reproduces_transformers_trace_with_the_tied_decoder() {
    let (g, meta) = golden("mlm-trace");
    let dev = Device::flex();
    let ad = dev.clone().autodiff();
    let batch = EncodedBatch::from_rows(
        &g["input_ids"].rows_u32(),
        &g["attention_mask"].rows_u32(),
        Some(&g["token_type_ids"].rows_u32()),
    );
    // The positions transformers predicts (labels other than -100) and their tokens.
    let cols = g["labels"].shape[1];
    let mut masked = Masked::default();
    for (i, &label) in g["labels"].values.iter().enumerate() {
        if label >= 0.0 {
            masked.positions.push((i / cols, i % cols));
            masked.targets.push(label as u32);
        }
    }
    assert_eq!(
        masked.positions.len() as u64,
        meta["chosen"].as_u64().unwrap()
    );
    let input = EncoderInput::new(&batch, &ad);
    let mut model = tiny_bert_mlm(&dev).train();
    let mut opt = AdamW::new(&model, trace_settings());
    let mut losses = Vec::new();
    for _ in 0..3 {
        let loss = masked_loss(&model, &input, &masked).unwrap();
        losses.push(values(loss.clone())[0]);
        model = opt.step(1e-3, model, loss).0;
    }
    assert_close("losses", &losses, &g["losses"].f32(), 1e-5);
    let m = model.valid();
    assert_close(
        "transform.dense.weight",
        &values(m.transform.weight.val().transpose()),
        &g["transform.dense.weight"].f32(),
        1e-5,
    );
    assert_close(
        "transform.LayerNorm.weight",
        &values(m.norm.gamma.val()),
        &g["transform.LayerNorm.weight"].f32(),
        1e-5,
    );
    assert_close("bias", &values(m.bias.val()), &g["bias"].f32(), 1e-5);
    let ids: Vec<i32> = g["word_embeddings.ids"]
        .values
        .iter()
        .map(|&v| v as i32)
        .collect();
    let n = ids.len();
    let rows = m.encoder.word_embeddings.weight.val().select(
        0,
        Tensor::<1, Int>::from_data(TensorData::new(ids, [n]), &dev),
    );
    assert_close(
        "word_embeddings (tied decoder)",
        &values(rows),
        &g["word_embeddings.rows"].f32(),
        1e-5,
    );
    let qkv = m.encoder.layers[0].qkv.weight.val();
    let d = qkv.dims()[0];
    assert_close(
        "layer0.query.weight",
        &values(qkv.narrow(1, 0, d).transpose()),
        &g["layer0.query.weight"].f32(),
        1e-5,
    );
}

#[test]
fn a_masked_lm_exports_as_its_checkpoint() {
    let dev = Device::flex();
    let mut out = Exporter::default();
    tiny_bert_mlm(&dev).export(&mut out);
    let ours = block_on(out.read()).unwrap();
    let file = std::fs::read(fixture_model("tiny-bert-mlm").join("model.safetensors")).unwrap();
    let st = safetensors::SafeTensors::deserialize(&file).unwrap();
    let names: Vec<String> = {
        let mut n: Vec<String> = st.names().into_iter().map(String::from).collect();
        n.sort();
        n
    };
    assert_eq!(ours.keys().cloned().collect::<Vec<_>>(), names);
    assert_as_stored(&ours, &file, "");
}

/// Domain adaptation end to end on tiny-bert, which has no masked-LM head (a fresh one, tied to
/// the embeddings): a few epochs on the toy reviews lower the held-out perplexity, and the
/// exported `BertForMaskedLM` folder loads as a masked LM and as a base to fine-tune.
#[test]
fn masked_lm_training_lowers_held_out_perplexity_and_exports_a_masked_lm() {
    use tunelab::model::bert::DropoutRates;
    use tunelab::train::mlm::{export_masked_lm, pre_train};
    use tunelab::train::{classifier_for_training, Mode, TrainingArgs};
    let dev = Device::flex();
    let files = ModelFiles::from_dir(fixture_model("tiny-bert")).unwrap();
    let config = files.config().unwrap();
    let model =
        MaskedLm::for_training(&files.weights, &config, DropoutRates::default(), 42, &dev).unwrap();
    let (train, test) = toy_data();
    // Unlabelled text: the training reviews several times over; held out: the test reviews.
    let texts: Vec<_> = (0..4).flat_map(|_| train.texts.clone()).collect();
    let args = TrainingArgs {
        num_train_epochs: 4,
        per_device_train_batch_size: 8,
        learning_rate: 5e-3,
        max_length: 32,
        ..TrainingArgs::default()
    };
    let tok = files.tokenizer().unwrap();
    let result = block_on(pre_train(
        model,
        &tok,
        &texts,
        &test.texts,
        &args,
        0.15,
        &dev,
        &mut Collect::default(),
    ))
    .unwrap();
    let (before, after) = result.perplexities();
    eprintln!(
        "held-out perplexity {before:.1} -> {after:.1} ({:?})",
        result.history
    );
    assert_eq!(result.history.len(), 5);
    assert!(after < before / 4.0, "perplexity {before} -> {after}");
    let folder =
        ModelFiles::from_entries(block_on(export_masked_lm(&result.model, &files)).unwrap());
    let saved = folder.config().unwrap();
    assert_eq!(saved.task, tunelab::model::Task::MaskedLm);
    let back = MaskedLm::from_checkpoint(
        &folder.weights,
        saved.encoder().unwrap(),
        &dev,
        Default::default(),
    )
    .unwrap();
    let mut a = Exporter::default();
    result.model.export(&mut a);
    let mut b = Exporter::default();
    back.export(&mut b);
    assert_eq!(block_on(a.read()).unwrap(), block_on(b.read()).unwrap());
    // The adapted encoder as a base for fine-tuning (a new classification head).
    let labels = vec!["NEGATIVE".to_string(), "POSITIVE".to_string()];
    let (clf, _) = classifier_for_training(
        &folder,
        &labels,
        &TrainingArgs::defaults_for(Mode::Full),
        tunelab::model::bert::Pooling::Cls,
        &dev,
    )
    .unwrap();
    assert_eq!(clf.num_labels(), 2);
}
