//! A benchmark, not a test: burn's CPU backends in wasm, in headless Chromium, on a model of
//! all-MiniLM-L6-v2's shape (6 layers, 384 wide, 12 heads, BERT's uncased vocabulary; random
//! weights: speed does not depend on their values) with BERT's real tokenizer. Prints sentences
//! per second at batch 1 × 128 tokens and batch 32 × 32 tokens, for Flex and, when built with
//! `--features ndarray`, for ndarray, alternating the two so that load on the machine hits both.
//!
//!     scripts/bench.sh wasm
//!
//! (= cargo test --target wasm32-unknown-unknown --features ndarray --test wasm_bench -- --nocapture)
#![cfg(target_arch = "wasm32")]

use std::collections::BTreeMap;

use burn::prelude::*;
use tunelab::data::{import_dataset, TableOptions};
use tunelab::hub::ModelFiles;
use tunelab::model::weights::{write_safetensors, HostTensors};
use tunelab::pipelines::Embedder;
use tunelab::rng::Rng;
use wasm_bindgen_test::*;

wasm_bindgen_test_configure!(run_in_browser);

fn random_minilm() -> ModelFiles {
    let (v, p, d, ffn, layers) = (30522usize, 512usize, 384usize, 1536usize, 6usize);
    let config = format!(
        r#"{{"model_type": "bert", "architectures": ["BertModel"], "vocab_size": {v},
        "max_position_embeddings": {p}, "hidden_size": {d}, "num_hidden_layers": {layers},
        "num_attention_heads": 12, "intermediate_size": {ffn}, "hidden_act": "gelu",
        "layer_norm_eps": 1e-12, "type_vocab_size": 2, "pad_token_id": 0}}"#
    );
    let mut rng = Rng::new(0);
    let mut t = HostTensors::new();
    let mut put = |name: String, shape: Vec<usize>, std: f64| {
        let n: usize = shape.iter().product();
        let values = if std == 0.0 {
            vec![1.0; n]
        } else {
            (0..n).map(|_| (rng.normal() * std) as f32).collect()
        };
        t.insert(name, (shape, values));
    };
    put("embeddings.word_embeddings.weight".into(), vec![v, d], 0.02);
    put(
        "embeddings.position_embeddings.weight".into(),
        vec![p, d],
        0.02,
    );
    put(
        "embeddings.token_type_embeddings.weight".into(),
        vec![2, d],
        0.02,
    );
    put("embeddings.LayerNorm.weight".into(), vec![d], 0.0);
    put("embeddings.LayerNorm.bias".into(), vec![d], 0.01);
    for i in 0..layers {
        let n = |s: &str| format!("encoder.layer.{i}.{s}");
        for m in ["query", "key", "value"] {
            put(n(&format!("attention.self.{m}.weight")), vec![d, d], 0.02);
            put(n(&format!("attention.self.{m}.bias")), vec![d], 0.01);
        }
        put(n("attention.output.dense.weight"), vec![d, d], 0.02);
        put(n("attention.output.dense.bias"), vec![d], 0.01);
        put(n("attention.output.LayerNorm.weight"), vec![d], 0.0);
        put(n("attention.output.LayerNorm.bias"), vec![d], 0.01);
        put(n("intermediate.dense.weight"), vec![ffn, d], 0.02);
        put(n("intermediate.dense.bias"), vec![ffn], 0.01);
        put(n("output.dense.weight"), vec![d, ffn], 0.02);
        put(n("output.dense.bias"), vec![d], 0.01);
        put(n("output.LayerNorm.weight"), vec![d], 0.0);
        put(n("output.LayerNorm.bias"), vec![d], 0.01);
    }
    ModelFiles {
        config: config.into_bytes(),
        tokenizer: include_bytes!("fixtures/models/tiny-bert/tokenizer.json").to_vec(),
        weights: write_safetensors(&t).unwrap(),
        extra: BTreeMap::new(),
    }
}

/// Median milliseconds of `runs` calls after `warmup` calls.
async fn median_ms(embedder: &Embedder, texts: &[&str], warmup: usize, runs: usize) -> f64 {
    for _ in 0..warmup {
        embedder.embed(texts).await.unwrap();
    }
    let mut times = Vec::with_capacity(runs);
    for _ in 0..runs {
        let t0 = js_sys::Date::now();
        embedder.embed(texts).await.unwrap();
        times.push(js_sys::Date::now() - t0);
    }
    times.sort_by(|a, b| a.total_cmp(b));
    times[runs / 2]
}

fn devices() -> Vec<(&'static str, Device)> {
    #[allow(unused_mut)]
    let mut d = vec![("Flex", Device::flex())];
    #[cfg(feature = "ndarray")]
    #[allow(deprecated)]
    d.push(("NdArray", Device::ndarray()));
    d
}

#[wasm_bindgen_test]
async fn cpu_backends_in_wasm() {
    let files = random_minilm();
    let csv = include_bytes!("data/movie_reviews.csv");
    let (data, _) = import_dataset(csv, &TableOptions::default(), None, None).unwrap();
    let long: String = data.texts[..20].join(" ");
    let ua = js_sys::Reflect::get(&js_sys::global(), &"navigator".into())
        .and_then(|n| js_sys::Reflect::get(&n, &"userAgent".into()))
        .ok()
        .and_then(|u| u.as_string())
        .unwrap_or_default();
    web_sys::console::log_1(&format!("browser: {ua}").into());
    web_sys::console::log_1(
        &"model: all-MiniLM-L6-v2's shape, random weights, f32; wasm32, one thread".into(),
    );

    let mut embedders: Vec<(&str, Embedder)> = devices()
        .into_iter()
        .map(|(name, device)| (name, Embedder::load(&files, &device).unwrap()))
        .collect();
    let short: Vec<&str> = {
        let e = &embedders[0].1;
        data.texts
            .iter()
            .filter(|t| e.tokenizer.encode(t, true).unwrap().len() >= 32)
            .take(32)
            .map(String::as_str)
            .collect()
    };
    // Two rounds, alternating backends; each prints its medians.
    for round in 1..=2 {
        for (name, e) in embedders.iter_mut() {
            e.max_length = 128;
            assert_eq!(
                e.tokenizer.encode_batch(&[&long], 128).unwrap().seq_len,
                128
            );
            let one = median_ms(e, &[&long], 1, 7).await;
            e.max_length = 32;
            let batch = e.tokenizer.encode_batch(&short, 32).unwrap();
            assert_eq!((batch.batch, batch.seq_len), (32, 32));
            let many = median_ms(e, &short, 1, 5).await;
            web_sys::console::log_1(
                &format!(
                    "round {round} {name}: batch 1 x 128: {:.1} sentences/s ({one:.0} ms); batch 32 x 32: {:.1} sentences/s ({many:.0} ms)",
                    1e3 / one,
                    32e3 / many
                )
                .into(),
            );
        }
    }
}
