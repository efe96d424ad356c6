//! Token classification (NER) against transformers' `pipeline("token-classification")`
//! (golden/ner.json, made by tests/fixtures/gen_ner_fixtures.py) on a tiny BERT (WordPiece) and
//! a tiny XLM-R (SentencePiece): every token's label and score, and the grouped entities with
//! their words and character offsets, on texts with accents, a hyphenated name and an emoji the
//! vocabulary lacks.

mod common;

use burn::prelude::*;
use common::*;
use serde_json::Value;
use tunelab::hub::ModelFiles;
use tunelab::model::bert::EncoderInput;
use tunelab::model::read_f32;
use tunelab::pipelines::Tagger;
use tunelab::text::EncodedBatch;

fn golden_json() -> Value {
    serde_json::from_slice(&read(root().join("tests/fixtures/golden/ner.json"))).unwrap()
}

fn tagger(name: &str) -> Tagger {
    Tagger::load(
        &ModelFiles::from_dir(fixture_model(name)).unwrap(),
        &Device::flex(),
    )
    .unwrap()
}

#[test]
fn tiny_bert_token_classifier_logits_match_transformers() {
    let (g, _) = golden("tiny-bert-ner");
    let t = tagger("tiny-bert-ner");
    let batch = EncodedBatch::from_rows(
        &g["input_ids"].rows_u32(),
        &g["attention_mask"].rows_u32(),
        None,
    );
    let logits = block_on(read_f32(
        t.model.forward(&EncoderInput::new(&batch, &t.device)),
    ))
    .unwrap();
    assert_close("logits", &logits, &g["logits"].f32(), 1e-4);
}

fn pipeline_matches_transformers(name: &str) {
    let json = golden_json();
    let texts: Vec<&str> = json["texts"]
        .as_array()
        .unwrap()
        .iter()
        .map(|t| t.as_str().unwrap())
        .collect();
    let t = tagger(name);
    let mut worst = 0f32;
    // aggregation_strategy="none": the tokens not labelled O.
    let tags = block_on(t.token_tags(&texts)).unwrap();
    for (i, (got, want)) in tags
        .iter()
        .zip(json["models"][name]["none"].as_array().unwrap())
        .enumerate()
    {
        let got: Vec<_> = got.iter().filter(|t| t.entity != "O").collect();
        let want = want.as_array().unwrap();
        assert_eq!(got.len(), want.len(), "{name} text {i}: tokens");
        for (g, w) in got.iter().zip(want) {
            let w_key = (
                w["entity"].as_str().unwrap(),
                w["index"].as_u64().unwrap() as usize,
                w["word"].as_str().unwrap(),
                w["start"].as_u64().unwrap() as usize,
                w["end"].as_u64().unwrap() as usize,
            );
            assert_eq!(
                (g.entity.as_str(), g.index, g.word.as_str(), g.start, g.end),
                w_key,
                "{name} text {i}"
            );
            worst = worst.max((g.score - w["score"].as_f64().unwrap() as f32).abs());
        }
    }
    // aggregation_strategy="simple": grouped entities.
    let entities = block_on(t.entities(&texts)).unwrap();
    for (i, (got, want)) in entities
        .iter()
        .zip(json["models"][name]["simple"].as_array().unwrap())
        .enumerate()
    {
        let want = want.as_array().unwrap();
        assert_eq!(got.len(), want.len(), "{name} text {i}: entities {got:?}");
        for (g, w) in got.iter().zip(want) {
            let w_key = (
                w["entity_group"].as_str().unwrap(),
                w["word"].as_str().unwrap(),
                w["start"].as_u64().unwrap() as usize,
                w["end"].as_u64().unwrap() as usize,
            );
            assert_eq!(
                (g.entity_group.as_str(), g.word.as_str(), g.start, g.end),
                w_key,
                "{name} text {i}"
            );
            worst = worst.max((g.score - w["score"].as_f64().unwrap() as f32).abs());
        }
    }
    println!("{name}: max |score - transformers| = {worst:e}");
    assert!(worst <= 1e-4, "{name}: scores differ by {worst}");
}

#[test]
fn bert_ner_pipeline_matches_transformers() {
    pipeline_matches_transformers("tiny-bert-ner");
}

#[test]
fn xlm_roberta_ner_pipeline_matches_transformers() {
    pipeline_matches_transformers("tiny-xlm-roberta-ner");
}
