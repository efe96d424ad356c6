//! Zero-shot classification by NLI against transformers' `pipeline("zero-shot-classification")`
//! (golden/zero-shot.json, made by tests/fixtures/gen_nli_fixtures.py) on a DistilBERT MNLI
//! classifier (entailment first) and an XLM-R NLI classifier (contradiction first): single- and
//! multi-label, a custom template, and one candidate label.

mod common;

use burn::prelude::*;
use common::*;
use tunelab::hub::ModelFiles;
use tunelab::pipelines::zero_shot::{ZeroShotSpec, DEFAULT_TEMPLATE};
use tunelab::pipelines::TextClassifier;

fn zero_shot_matches_transformers(name: &str) {
    let json: serde_json::Value =
        serde_json::from_slice(&read(root().join("tests/fixtures/golden/zero-shot.json"))).unwrap();
    assert_eq!(json["default_template"], DEFAULT_TEMPLATE);
    let texts: Vec<&str> = json["texts"]
        .as_array()
        .unwrap()
        .iter()
        .map(|t| t.as_str().unwrap())
        .collect();
    let clf = TextClassifier::load(
        &ModelFiles::from_dir(fixture_model(name)).unwrap(),
        &Device::flex(),
    )
    .unwrap();
    let mut worst = 0f32;
    for case in json["models"][name].as_array().unwrap() {
        let spec = ZeroShotSpec {
            labels: case["labels"]
                .as_array()
                .unwrap()
                .iter()
                .map(|l| l.as_str().unwrap().to_string())
                .collect(),
            template: case["hypothesis_template"]
                .as_str()
                .unwrap_or(DEFAULT_TEMPLATE)
                .to_string(),
            multi_label: case["multi_label"].as_bool().unwrap(),
        };
        let got = block_on(clf.zero_shot(&texts, &spec)).unwrap();
        for (i, (row, want)) in got
            .iter()
            .zip(case["results"].as_array().unwrap())
            .enumerate()
        {
            let labels: Vec<&str> = row.iter().map(|s| s.label.as_str()).collect();
            let want_labels: Vec<&str> = want["labels"]
                .as_array()
                .unwrap()
                .iter()
                .map(|l| l.as_str().unwrap())
                .collect();
            assert_eq!(labels, want_labels, "{name} {spec:?} text {i}: label order");
            for (s, w) in row.iter().zip(want["scores"].as_array().unwrap()) {
                worst = worst.max((s.score - w.as_f64().unwrap() as f32).abs());
            }
        }
    }
    println!("{name}: max |score - transformers| = {worst:e}");
    assert!(worst <= 1e-4, "{name}: scores differ by {worst}");
}

#[test]
fn distilbert_mnli_zero_shot_matches_transformers_pipeline() {
    zero_shot_matches_transformers("tiny-distilbert-mnli");
}

#[test]
fn xlm_roberta_nli_zero_shot_matches_transformers_pipeline() {
    zero_shot_matches_transformers("tiny-xlm-roberta-nli");
}

#[test]
fn a_classifier_without_entailment_is_refused_with_its_labels() {
    let clf = TextClassifier::load(
        &ModelFiles::from_dir(fixture_model("tiny-bert")).unwrap(),
        &Device::flex(),
    )
    .unwrap();
    let spec = ZeroShotSpec {
        labels: vec!["a".into(), "b".into()],
        ..ZeroShotSpec::default()
    };
    let err = block_on(clf.zero_shot(&["text"], &spec))
        .unwrap_err()
        .to_string();
    assert!(
        err.contains("NLI") && err.contains("NEGATIVE, POSITIVE"),
        "{err}"
    );
}
