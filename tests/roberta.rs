//! RoBERTa and XLM-RoBERTa against transformers' outputs (golden fixtures made by
//! `tests/fixtures/gen_roberta_fixtures.py`), on burn's CPU backend: every hidden state of a
//! padded batch with a sentence pair (RoBERTa's positions count from `pad_token_id + 1` and skip
//! padding), the two-layer classification head, `pipeline("text-classification")` and
//! `pipeline("fill-mask")`.

mod common;

use burn::prelude::*;
use common::*;
use tunelab::hub::ModelFiles;
use tunelab::model::bert::EncoderInput;
use tunelab::model::{Family, ModelConfig, Task};
use tunelab::pipelines::{FillMask, TextClassifier};
use tunelab::text::EncodedBatch;

const TOL: f32 = 1e-4;

fn golden_input(g: &std::collections::BTreeMap<String, Golden>, dev: &Device) -> EncoderInput {
    let ids = g["input_ids"].rows_u32();
    let mask = g["attention_mask"].rows_u32();
    EncoderInput::new(&EncodedBatch::from_rows(&ids, &mask, None), dev)
}

/// Every hidden state and the logits of the golden batch.
fn classifier_matches_transformers(name: &str, family: Family) {
    let dev = Device::flex();
    let (g, _) = golden(name);
    let model = fixture_classifier(name, &dev);
    assert_eq!(model.encoder.config.family, family);
    assert!(model.pooler.is_none(), "RoBERTa's classifier has no pooler");
    let input = golden_input(&g, &dev);
    let states = model.encoder.hidden_states(&input);
    assert_eq!(states.len(), 3);
    for (i, s) in states.iter().enumerate() {
        let key = format!("hidden_states.{i}");
        assert_close(&key, &values(s.clone()), &g[&key].f32(), TOL);
    }
    assert_close(
        "logits",
        &values(model.forward(&input)),
        &g["logits"].f32(),
        TOL,
    );
}

#[test]
fn tiny_roberta_hidden_states_and_logits_match_transformers() {
    classifier_matches_transformers("tiny-roberta", Family::Roberta);
}

#[test]
fn tiny_xlm_roberta_hidden_states_and_logits_match_transformers() {
    classifier_matches_transformers("tiny-xlm-roberta", Family::XlmRoberta);
}

/// `pipeline("text-classification", top_k=None)` on the fixture's texts, label by label.
fn pipeline_matches_transformers(name: &str) {
    let dev = Device::flex();
    let (_, json) = golden(name);
    let files = ModelFiles::from_dir(fixture_model(name)).unwrap();
    let clf = TextClassifier::load(&files, &dev).unwrap();
    // 130 positions, the first two taken by padding_idx: 128 tokens at most.
    assert_eq!(clf.max_length, 128);
    let texts: Vec<&str> = json["pipeline_texts"]
        .as_array()
        .unwrap()
        .iter()
        .map(|t| t.as_str().unwrap())
        .collect();
    let got = block_on(clf.classify(&texts)).unwrap();
    for (i, (row, want)) in got
        .iter()
        .zip(json["pipeline"].as_array().unwrap())
        .enumerate()
    {
        let want = want.as_array().unwrap();
        assert_eq!(row.len(), want.len());
        for (g, w) in row.iter().zip(want) {
            assert_eq!(g.label, w["label"].as_str().unwrap(), "text {i}");
            let diff = (g.score - w["score"].as_f64().unwrap() as f32).abs();
            assert!(
                diff <= TOL,
                "text {i} {}: {} vs {}",
                g.label,
                g.score,
                w["score"]
            );
        }
    }
}

#[test]
fn roberta_classification_pipeline_matches_transformers() {
    pipeline_matches_transformers("tiny-roberta");
}

#[test]
fn xlm_roberta_classification_pipeline_matches_transformers() {
    pipeline_matches_transformers("tiny-xlm-roberta");
}

#[test]
fn roberta_fill_mask_matches_transformers_pipeline() {
    let dev = Device::flex();
    let (g, json) = golden("tiny-roberta-mlm");
    let files = ModelFiles::from_dir(fixture_model("tiny-roberta-mlm")).unwrap();
    assert_eq!(files.config().unwrap().task, Task::MaskedLm);
    let fill = FillMask::load(&files, &dev).unwrap();
    assert_eq!(fill.mask_token, "<mask>");
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
    let input = golden_input(&g, &dev);
    let logits = values(fill.model.logits_at_positions(&input, &positions));
    assert_close("logits_at_masks", &logits, &g["logits_at_masks"].f32(), TOL);

    // The pipeline: for a text with one mask a list of candidates, for several a list per mask.
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
        assert_eq!(got.len(), want.len());
        for (candidates, want) in got.iter().zip(want) {
            for (c, w) in candidates.iter().zip(want.as_array().unwrap()) {
                assert_eq!(c.token as u64, w["token"].as_u64().unwrap());
                assert_eq!(c.token_str, w["token_str"].as_str().unwrap());
                assert_eq!(c.sequence, w["sequence"].as_str().unwrap());
                assert!((c.score - w["score"].as_f64().unwrap() as f32).abs() <= TOL);
            }
        }
    }
}

#[test]
fn roberta_configs_parse_with_their_positions_and_tasks() {
    let config = |extra: &str| {
        ModelConfig::from_json(&format!(
            r#"{{"model_type": "xlm-roberta", "vocab_size": 250002, "hidden_size": 768,
                "num_hidden_layers": 12, "num_attention_heads": 12, "intermediate_size": 3072,
                "max_position_embeddings": 514, "type_vocab_size": 1, "pad_token_id": 1{extra}}}"#
        ))
    };
    let c = config(r#", "architectures": ["XLMRobertaForSequenceClassification"]"#).unwrap();
    assert_eq!(c.task, Task::SequenceClassification);
    let enc = c.encoder().unwrap();
    assert_eq!((enc.first_position(), enc.max_tokens()), (2, 512));
    assert_eq!(
        c.for_classification(&["a".into(), "b".into()])["architectures"][0],
        "XLMRobertaForSequenceClassification"
    );
    let c = config(r#", "architectures": ["XLMRobertaForMaskedLM"]"#).unwrap();
    assert_eq!(c.task, Task::MaskedLm);
    // A RoBERTa class name on an XLM-R config is refused, naming what is supported.
    let err = config(r#", "architectures": ["RobertaForTokenClassification"]"#)
        .err()
        .unwrap()
        .to_string();
    assert!(
        err.contains("RobertaForTokenClassification") && err.contains("XLMRobertaForMaskedLM"),
        "{err}"
    );
    // A position table too small for RoBERTa's offset.
    let err = ModelConfig::from_json(
        r#"{"model_type": "roberta", "vocab_size": 10, "hidden_size": 8, "num_hidden_layers": 1,
            "num_attention_heads": 2, "intermediate_size": 16, "max_position_embeddings": 2,
            "pad_token_id": 1}"#,
    )
    .err()
    .unwrap()
    .to_string();
    assert!(err.contains("max_position_embeddings"), "{err}");
}

// Training: transformers' 3-step AdamW trace on tiny-roberta (roberta-train-trace), full and
// head-only, as tests/training.rs checks tiny-bert's.

fn trace_inputs(dev: &Device) -> (EncoderInput, Tensor<1, Int>) {
    let (g, _) = golden("roberta-train-trace");
    let labels: Vec<i32> = g["labels"].values.iter().map(|&v| v as i32).collect();
    (
        golden_input(&g, dev),
        Tensor::from_data(TensorData::new(labels, [4]), dev),
    )
}

/// The trace's weights of `m` (the head's and the encoder's it records) against `mode`'s.
fn assert_trace_weights(mode: &str, m: &tunelab::model::bert::SequenceClassifier) {
    let (g, _) = golden("roberta-train-trace");
    let head = &m.head;
    let dense = head
        .pre_classifier
        .as_ref()
        .expect("RoBERTa's head has a dense layer");
    let checks = [
        (
            "classifier.dense.weight",
            values(dense.weight.val().transpose()),
        ),
        (
            "classifier.out_proj.weight",
            values(head.classifier.weight.val().transpose()),
        ),
        (
            "classifier.out_proj.bias",
            values(head.classifier.bias.as_ref().unwrap().val()),
        ),
        (
            "layer0.query.weight",
            values(
                m.encoder.layers[0]
                    .qkv
                    .weight
                    .val()
                    .narrow(1, 0, 32)
                    .transpose(),
            ),
        ),
        (
            "position_embeddings",
            values(m.encoder.position_embeddings.as_ref().unwrap().weight.val()),
        ),
    ];
    for (name, got) in checks {
        let key = format!("{mode}.{name}");
        assert_close(&key, &got, &g[&key].f32(), 1e-4);
    }
}

#[test]
fn roberta_full_fine_tuning_reproduces_the_adamw_trace() {
    use tunelab::train::batches::cross_entropy;
    use tunelab::train::optim::AdamW;
    let (g, _) = golden("roberta-train-trace");
    let dev = Device::flex();
    let (input, labels) = trace_inputs(&dev.clone().autodiff());
    let mut model = fixture_classifier("tiny-roberta", &dev).train();
    let mut opt = AdamW::new(&model, trace_settings());
    let mut losses = Vec::new();
    for _ in 0..3 {
        let loss = cross_entropy(model.forward(&input), labels.clone());
        losses.push(values(loss.clone())[0]);
        model = opt.step(1e-3, model, loss).0;
    }
    assert_close("full.losses", &losses, &g["full.losses"].f32(), 1e-4);
    // The position rows the batch read moved; RoBERTa's unused rows 0 and 1 did not.
    assert_trace_weights("full", &model.valid());
}

#[test]
fn roberta_head_only_training_on_cached_features_reproduces_the_adamw_trace() {
    use tunelab::train::batches::cross_entropy;
    use tunelab::train::optim::AdamW;
    let (g, _) = golden("roberta-train-trace");
    let dev = Device::flex();
    let mut model = fixture_classifier("tiny-roberta", &dev);
    let (input, labels) = trace_inputs(&dev);
    // The frozen encoder runs once; the head (dense, tanh, out_proj) trains on h[:, 0].
    let features = model.features(&input);
    let mut head = model.head.clone().train();
    let mut opt = AdamW::new(&head, trace_settings());
    let labels = Tensor::<1, Int>::from_inner(labels);
    let mut losses = Vec::new();
    for _ in 0..3 {
        let loss = cross_entropy(
            head.forward(Tensor::from_inner(features.clone())),
            labels.clone(),
        );
        losses.push(values(loss.clone())[0]);
        head = opt.step(1e-3, head, loss).0;
    }
    assert_close("head.losses", &losses, &g["head.losses"].f32(), 1e-4);
    model.head = head.valid();
    assert_trace_weights("head", &model);
}
