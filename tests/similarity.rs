//! Sentence similarity and semantic search against sentence-transformers
//! (golden/similarity.json, made by tests/fixtures/gen_similarity_fixtures.py): the real
//! all-MiniLM-L6-v2 as `SentenceTransformer(folder)` (its modules.json: mean pooling, Normalize;
//! cosine), and tiny-bert with a CLS Pooling module, no Normalize and the dot product, in
//! sentence-transformers 6's pooling config format.

mod common;

use burn::prelude::*;
use common::*;
use serde_json::{json, Value};
use tunelab::hub::ModelFiles;
use tunelab::model::bert::Pooling;
use tunelab::pipelines::similarity::Similarity;
use tunelab::pipelines::Embedder;

fn golden() -> Value {
    serde_json::from_slice(&read(root().join("tests/fixtures/golden/similarity.json"))).unwrap()
}

fn strings(v: &Value) -> Vec<&str> {
    v.as_array()
        .unwrap()
        .iter()
        .map(|s| s.as_str().unwrap())
        .collect()
}

fn rows(v: &Value) -> Vec<Vec<f32>> {
    v.as_array()
        .unwrap()
        .iter()
        .map(|r| {
            r.as_array()
                .unwrap()
                .iter()
                .map(|x| x.as_f64().unwrap() as f32)
                .collect()
        })
        .collect()
}

fn flat(m: &[Vec<f32>]) -> Vec<f32> {
    m.iter().flatten().copied().collect()
}

#[test]
fn minilm_embeddings_similarity_and_search_match_sentence_transformers() {
    let g = golden();
    let sentences = strings(&g["sentences"]);
    let files = ModelFiles::from_dir(minilm_dir()).unwrap();
    let model = Embedder::load(&files, &Device::flex()).unwrap();
    assert_eq!(
        (model.pooling, model.normalize, model.similarity),
        (Pooling::Mean, true, Similarity::Cosine)
    );
    let emb = block_on(model.embed(&sentences)).unwrap();
    assert_close(
        "embeddings",
        &flat(&emb),
        &flat(&rows(&g["minilm"]["embeddings"])),
        1e-4,
    );
    let matrix = model.similarity.matrix(&emb, &emb);
    assert_close(
        "similarity",
        &flat(&matrix),
        &flat(&rows(&g["minilm"]["similarity"])),
        1e-4,
    );
    let queries = block_on(model.embed(&strings(&g["queries"]))).unwrap();
    for (q, want) in queries
        .iter()
        .zip(g["minilm"]["search"].as_array().unwrap())
    {
        let hits = model.similarity.search(q, &emb, 3);
        let want = want.as_array().unwrap();
        assert_eq!(hits.len(), want.len());
        for (h, w) in hits.iter().zip(want) {
            assert_eq!(h.corpus_id as u64, w["corpus_id"].as_u64().unwrap());
            assert!((h.score - w["score"].as_f64().unwrap() as f32).abs() <= 1e-4);
        }
    }
}

/// tiny-bert's folder with the sentence-transformers files the generator's model had.
fn tiny_cls_files(g: &Value) -> ModelFiles {
    let mut files = ModelFiles::from_dir(fixture_model("tiny-bert")).unwrap();
    let modules = json!([
        {"idx": 0, "name": "0", "path": "", "type": "sentence_transformers.models.Transformer"},
        {"idx": 1, "name": "1", "path": "1_Pooling", "type": "sentence_transformers.models.Pooling"}
    ]);
    let settings = json!({"similarity_fn_name": g["tiny_cls"]["similarity_fn_name"]});
    for (name, value) in [
        ("modules.json", modules),
        (
            "1_Pooling/config.json",
            g["tiny_cls"]["pooling_config"].clone(),
        ),
        ("config_sentence_transformers.json", settings),
    ] {
        files.insert(name, serde_json::to_vec(&value).unwrap());
    }
    files
}

#[test]
fn cls_pooling_without_normalize_and_the_dot_product_follow_the_folder() {
    let g = golden();
    let sentences = strings(&g["sentences"]);
    let model = Embedder::load(&tiny_cls_files(&g), &Device::flex()).unwrap();
    assert_eq!(
        (model.pooling, model.normalize, model.similarity),
        (Pooling::Cls, false, Similarity::Dot)
    );
    let emb = block_on(model.embed(&sentences)).unwrap();
    assert_close(
        "embeddings",
        &flat(&emb),
        &flat(&rows(&g["tiny_cls"]["embeddings"])),
        1e-4,
    );
    let matrix = model.similarity.matrix(&emb, &emb);
    // Dot products of unnormalised vectors are ~36: the tolerance is relative to that.
    assert_close(
        "similarity",
        &flat(&matrix),
        &flat(&rows(&g["tiny_cls"]["similarity"])),
        1e-3,
    );
}

#[test]
fn a_pooling_or_similarity_tunelab_lacks_is_refused_not_replaced() {
    let g = golden();
    let mut files = tiny_cls_files(&g);
    files.insert(
        "1_Pooling/config.json",
        br#"{"word_embedding_dimension": 32, "pooling_mode_max_tokens": true}"#.to_vec(),
    );
    let err = Embedder::load(&files, &Device::flex())
        .err()
        .unwrap()
        .to_string();
    assert!(
        err.contains("\"max_tokens\"") && err.contains("cls and mean"),
        "{err}"
    );
    let mut files = tiny_cls_files(&g);
    files.insert(
        "config_sentence_transformers.json",
        br#"{"similarity_fn_name": "jaccard"}"#.to_vec(),
    );
    let err = Embedder::load(&files, &Device::flex())
        .err()
        .unwrap()
        .to_string();
    assert!(
        err.contains("jaccard") && err.contains("cosine, dot"),
        "{err}"
    );
}
