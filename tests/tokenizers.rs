//! Tokenization identical to Python `tokenizers` (expected ids generated once by
//! tests/fixtures/tokenizer/gen_expected.py and committed), and bad tokenizer files.

mod common;

use common::*;
use tunelab::data::{import_dataset, TableOptions};
use tunelab::text::{TextError, TextTokenizer};

fn expected() -> serde_json::Value {
    serde_json::from_slice(&read(
        root().join("tests/fixtures/tokenizer/movie_reviews_2000.json"),
    ))
    .unwrap()
}

fn texts(n: usize) -> Vec<String> {
    let bytes = read(data_file("movie_reviews.csv"));
    let (data, _) = import_dataset(
        &bytes,
        &TableOptions::default(),
        Some("text"),
        Some("label"),
    )
    .unwrap();
    data.texts
        .into_iter()
        .take(n)
        .map(|t| t.to_string())
        .collect()
}

fn ids(v: &serde_json::Value) -> Vec<u32> {
    v.as_array()
        .unwrap()
        .iter()
        .map(|x| x.as_u64().unwrap() as u32)
        .collect()
}

/// The ids `model`'s tokenizer gives the first 2,000 reviews (with special tokens, unpadded,
/// untruncated) equal Python's under `key`.
fn ids_equal_python_on_2000_movie_reviews(model: &str, key: &str) {
    let want = expected();
    let tok =
        TextTokenizer::from_bytes(&read(fixture_model(model).join("tokenizer.json"))).unwrap();
    let texts = texts(2000);
    assert_eq!(texts.len(), 2000);
    let mut mismatches = Vec::new();
    for (i, text) in texts.iter().enumerate() {
        // Unpadded, untruncated: the tokenizer's file pads to 128 but that is overridden in code.
        let got = tok.encode(text, true).unwrap();
        if got != ids(&want[key][i]) {
            mismatches.push(i);
        }
    }
    assert!(
        mismatches.is_empty(),
        "{model}: {} texts differ, first rows {:?}",
        mismatches.len(),
        &mismatches[..mismatches.len().min(5)]
    );
}

#[test]
fn bert_wordpiece_ids_equal_python_on_2000_movie_reviews() {
    ids_equal_python_on_2000_movie_reviews("tiny-bert", "bert");
}

#[test]
fn roberta_bpe_ids_equal_python_on_2000_movie_reviews() {
    ids_equal_python_on_2000_movie_reviews("tiny-roberta", "roberta");
}

#[test]
fn xlm_roberta_sentencepiece_ids_equal_python_on_2000_movie_reviews() {
    ids_equal_python_on_2000_movie_reviews("tiny-xlm-roberta", "xlm_roberta");
}

#[test]
fn gpt2_bpe_ids_equal_python_on_2000_movie_reviews_and_decode_round_trips() {
    let want = expected();
    let tok = TextTokenizer::from_bytes(&read(fixture_model("tiny-gpt2").join("tokenizer.json")))
        .unwrap();
    let texts = texts(2000);
    let mut mismatches = Vec::new();
    for (i, text) in texts.iter().enumerate() {
        let got = tok.encode(text, false).unwrap();
        if got != ids(&want["gpt2"][i]) {
            mismatches.push(i);
        }
        assert_eq!(
            &tok.decode(&got, false).unwrap(),
            text,
            "round trip of row {i}"
        );
    }
    assert!(
        mismatches.is_empty(),
        "{} texts differ, first rows {:?}",
        mismatches.len(),
        &mismatches[..mismatches.len().min(5)]
    );
}

#[test]
fn gpt2_golden_text_ids() {
    let (_, json) = golden("tiny-gpt2");
    let tok = TextTokenizer::from_bytes(&read(fixture_model("tiny-gpt2").join("tokenizer.json")))
        .unwrap();
    let got = tok.encode(json["text"].as_str().unwrap(), false).unwrap();
    assert_eq!(got, vec![40, 1842, 262, 2057, 994, 13, 632, 338, 4998, 0]);
    assert_eq!(got, ids(&json["input_ids"][0]));
}

#[test]
fn truncation_and_padding_are_set_in_code() {
    let tok = TextTokenizer::from_bytes(&read(fixture_model("tiny-bert").join("tokenizer.json")))
        .unwrap();
    let long = "word ".repeat(300);
    let batch = tok.encode_batch(&["short", &long], 16).unwrap();
    assert_eq!(batch.seq_len, 16);
    assert_eq!(batch.row_len(0), 3); // [CLS] short [SEP]
    assert_eq!(batch.row_len(1), 16);
    assert_eq!(
        *batch.row_ids(1).last().unwrap(),
        102,
        "truncation keeps [SEP]"
    );
    assert_eq!(&batch.input_ids[3..16], &[0; 13], "padding uses [PAD]");
}

#[test]
fn a_tokenizer_file_that_is_not_json_gives_a_clear_error() {
    let err = TextTokenizer::from_bytes(b"<!DOCTYPE html><html>Not found</html>")
        .err()
        .unwrap();
    assert_eq!(
        err,
        TextError::Load("tokenizer.json is not valid JSON".into())
    );
    assert_eq!(
        err.to_string(),
        "tokenizer: tokenizer.json is not valid JSON"
    );
    let err = TextTokenizer::from_bytes(br#"{"model": 3}"#).err().unwrap();
    assert!(
        err.to_string()
            .starts_with("tokenizer: tokenizer.json could not be read"),
        "{err}"
    );
}
