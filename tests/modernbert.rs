//! ModernBERT against transformers (golden fixtures made by
//! `tests/fixtures/gen_modernbert_fixtures.py`), on burn's CPU backend: rotary positions, the
//! gated MLP, pre-norm layers without biases, a sliding window that hides keys in a 32-token
//! batch, the final norm, the mean-pooled head; fill-mask; and a 3-step AdamW trace.

mod common;

use burn::prelude::*;
use common::*;
use tunelab::hub::ModelFiles;
use tunelab::model::bert::{EncoderInput, Pooling};
use tunelab::model::{Family, Task};
use tunelab::pipelines::{FillMask, TextClassifier};
use tunelab::text::EncodedBatch;

const TOL: f32 = 1e-4;

fn golden_input(g: &std::collections::BTreeMap<String, Golden>, dev: &Device) -> EncoderInput {
    let ids = g["input_ids"].rows_u32();
    let mask = g["attention_mask"].rows_u32();
    EncoderInput::new(&EncodedBatch::from_rows(&ids, &mask, None), dev)
}

#[test]
fn tiny_modernbert_hidden_states_and_logits_match_transformers() {
    let dev = Device::flex();
    let (g, json) = golden("tiny-modernbert");
    let files = ModelFiles::from_dir(fixture_model("tiny-modernbert")).unwrap();
    let config = files.config().unwrap();
    let enc = config.encoder().unwrap();
    assert_eq!(enc.family, Family::ModernBert);
    let modern = enc.modern.as_ref().unwrap();
    assert_eq!(modern.sliding, vec![false, true, true]);
    assert_eq!(modern.half_window, 4);
    assert_eq!(json["layer_types"][1], "sliding_attention");
    let clf = TextClassifier::load(&files, &dev).unwrap();
    assert_eq!(
        clf.model.pooling,
        Pooling::Mean,
        "classifier_pooling is followed"
    );
    let input = golden_input(&g, &dev);
    let states = clf.model.encoder.hidden_states(&input);
    assert_eq!(states.len(), 4);
    // Real tokens only: a padded query far from every real key has no key left in a sliding
    // layer, and what it gets then is each attention implementation's own (transformers' SDPA
    // path and its eager one differ there too); nothing real reads those positions.
    let mask: Vec<f64> = g["attention_mask"].values.clone();
    let real = |v: Vec<f32>| -> Vec<f32> {
        let d = v.len() / mask.len();
        v.chunks(d)
            .zip(&mask)
            .filter(|(_, &m)| m == 1.0)
            .flat_map(|(row, _)| row.to_vec())
            .collect()
    };
    for (i, s) in states.iter().enumerate() {
        let key = format!("hidden_states.{i}");
        assert_close(&key, &real(values(s.clone())), &real(g[&key].f32()), TOL);
    }
    assert_close(
        "last_hidden_state",
        &real(values(clf.model.encoder.forward(&input))),
        &real(g["last_hidden_state"].f32()),
        TOL,
    );
    assert_close(
        "logits",
        &values(clf.model.forward(&input)),
        &g["logits"].f32(),
        TOL,
    );
    // The pipeline on the same texts.
    let texts: Vec<&str> = json["pipeline_texts"]
        .as_array()
        .unwrap()
        .iter()
        .map(|t| t.as_str().unwrap())
        .collect();
    let got = block_on(clf.classify(&texts)).unwrap();
    for (row, want) in got.iter().zip(json["pipeline"].as_array().unwrap()) {
        for (s, w) in row.iter().zip(want.as_array().unwrap()) {
            assert_eq!(s.label, w["label"].as_str().unwrap());
            assert!((s.score - w["score"].as_f64().unwrap() as f32).abs() <= TOL);
        }
    }
}

#[test]
fn modernbert_fill_mask_matches_transformers_pipeline() {
    let dev = Device::flex();
    let (g, json) = golden("tiny-modernbert-mlm");
    let files = ModelFiles::from_dir(fixture_model("tiny-modernbert-mlm")).unwrap();
    assert_eq!(files.config().unwrap().task, Task::MaskedLm);
    let fill = FillMask::load(&files, &dev).unwrap();
    let positions: Vec<(usize, usize)> = json["mask_positions"]
        .as_array()
        .unwrap()
        .iter()
        .map(|p| {
            (
                p[0].as_u64().unwrap() as usize,
                p[1].as_u64().unwrap() as usize,
            )
        })
        .collect();
    let logits = values(
        fill.model
            .logits_at_positions(&golden_input(&g, &dev), &positions),
    );
    assert_close("logits_at_masks", &logits, &g["logits_at_masks"].f32(), TOL);
    for (text, want) in json["texts"]
        .as_array()
        .unwrap()
        .iter()
        .zip(json["pipeline"].as_array().unwrap())
    {
        let got = block_on(fill.fill_mask(text.as_str().unwrap(), 5)).unwrap();
        let want: Vec<&serde_json::Value> = if want[0].is_array() {
            want.as_array().unwrap().iter().collect()
        } else {
            vec![want]
        };
        for (candidates, want) in got.iter().zip(want) {
            for (c, w) in candidates.iter().zip(want.as_array().unwrap()) {
                assert_eq!(c.token as u64, w["token"].as_u64().unwrap());
                assert_eq!(c.sequence, w["sequence"].as_str().unwrap());
                assert!((c.score - w["score"].as_f64().unwrap() as f32).abs() <= TOL);
            }
        }
    }
}

/// The trace's weights of `m` against `mode`'s.
fn assert_trace_weights(mode: &str, m: &tunelab::model::bert::SequenceClassifier) {
    let (g, _) = golden("modernbert-train-trace");
    let dense = m.head.pre_classifier.as_ref().unwrap();
    let checks = [
        ("head.dense.weight", values(dense.weight.val().transpose())),
        (
            "head.norm.weight",
            values(m.head.norm.as_ref().unwrap().gamma.val()),
        ),
        (
            "classifier.weight",
            values(m.head.classifier.weight.val().transpose()),
        ),
        (
            "layer1.Wqkv.weight",
            values(m.encoder.layers[1].qkv.weight.val().transpose()),
        ),
        (
            "layer2.Wi.weight",
            values(m.encoder.layers[2].ffn_in.weight.val().transpose()),
        ),
        (
            "final_norm.weight",
            values(m.encoder.final_norm.as_ref().unwrap().gamma.val()),
        ),
    ];
    for (name, got) in checks {
        let key = format!("{mode}.{name}");
        assert_close(&key, &got, &g[&key].f32(), 1e-4);
    }
}

#[test]
fn modernbert_full_and_head_only_training_reproduce_the_adamw_trace() {
    use tunelab::train::batches::cross_entropy;
    use tunelab::train::optim::AdamW;
    let (g, _) = golden("modernbert-train-trace");
    let dev = Device::flex();
    let labels: Vec<i32> = g["labels"].values.iter().map(|&v| v as i32).collect();
    let n = labels.len();
    let files = ModelFiles::from_dir(fixture_model("tiny-modernbert")).unwrap();
    let load = || TextClassifier::load(&files, &dev).unwrap().model;

    // Full fine-tuning: every weight but the norms' absent biases.
    let ad = dev.clone().autodiff();
    let input = golden_input(&g, &ad);
    let y = Tensor::<1, Int>::from_data(TensorData::new(labels.clone(), [n]), &ad);
    let mut model = load().train();
    let mut opt = AdamW::new(&model, trace_settings());
    let mut losses = Vec::new();
    for _ in 0..3 {
        let loss = cross_entropy(model.forward(&input), y.clone());
        losses.push(values(loss.clone())[0]);
        model = opt.step(1e-3, model, loss).0;
    }
    assert_close("full.losses", &losses, &g["full.losses"].f32(), 1e-4);
    let model = model.valid();
    assert_trace_weights("full", &model);
    // The norms' biases stayed absent: zeros that did not train.
    let beta = values(model.encoder.layers[1].ffn_norm.beta.val());
    assert!(beta.iter().all(|&b| b == 0.0));

    // Head-only: the encoder runs once; dense, norm and classifier train on the pooled features.
    let mut base = load();
    let input = golden_input(&g, &dev);
    let features = base.features(&input);
    let mut head = base.head.clone().train();
    let mut opt = AdamW::new(&head, trace_settings());
    let y = Tensor::<1, Int>::from_data(TensorData::new(labels, [n]), &dev.clone().autodiff());
    let mut losses = Vec::new();
    for _ in 0..3 {
        let loss = cross_entropy(
            head.forward(Tensor::from_inner(features.clone())),
            y.clone(),
        );
        losses.push(values(loss.clone())[0]);
        head = opt.step(1e-3, head, loss).0;
    }
    assert_close("head.losses", &losses, &g["head.losses"].f32(), 1e-4);
    base.head = head.valid();
    assert_trace_weights("head", &base);
}

#[test]
fn a_masked_lm_checkpoint_as_a_base_keeps_its_head_under_a_new_classifier() {
    // As transformers' ModernBertForSequenceClassification.from_pretrained(mlm_checkpoint):
    // `head.dense` and `head.norm` come from the checkpoint, the classifier is new, and the
    // decoder's bias is left aside.
    use tunelab::train::{classifier_for_training, Mode, TrainingArgs};
    let dev = Device::flex();
    let files = ModelFiles::from_dir(fixture_model("tiny-modernbert-mlm")).unwrap();
    let labels = vec!["a".to_string(), "b".to_string(), "c".to_string()];
    let args = TrainingArgs {
        mode: Mode::Full,
        ..TrainingArgs::default()
    };
    let (model, _) = classifier_for_training(&files, &labels, &args, Pooling::Cls, &dev).unwrap();
    assert_eq!(model.num_labels(), 3);
    let tensors = tunelab::model::weights::Weights::from_bytes(&files.weights, "model.", &dev)
        .unwrap()
        .pp("head.dense")
        .tensor::<2>("weight", [32, 32]);
    assert_close(
        "head.dense.weight",
        &values(
            model
                .head
                .pre_classifier
                .as_ref()
                .unwrap()
                .weight
                .val()
                .transpose(),
        ),
        &values(tensors),
        0.0,
    );
}
