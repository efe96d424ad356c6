//! Browser-only checks, run by wasm-bindgen-test in headless Chromium (webdriver.json gives it
//! WebGPU through SwiftShader): tiny-bert on WebGPU and on the CPU backend in wasm against
//! transformers' golden outputs, tiny-gpt2 greedy generation on WebGPU, and the backend probe.
#![cfg(target_arch = "wasm32")]

use std::collections::BTreeMap;

use safetensors::{Dtype, SafeTensors};
use tunelab::device::{self, Compute};
use tunelab::hub::ModelFiles;
use tunelab::model::bert::EncoderInput;
use tunelab::model::read_f32;
use tunelab::pipelines::TextClassifier;
use tunelab::prompt::generate::{generate_ids, GenerationConfig};
use tunelab::prompt::LanguageModel;
use tunelab::text::EncodedBatch;
use wasm_bindgen_test::*;

wasm_bindgen_test_configure!(run_in_browser);

fn files(config: &[u8], tokenizer: &[u8], weights: &[u8]) -> ModelFiles {
    ModelFiles {
        config: config.to_vec(),
        tokenizer: tokenizer.to_vec(),
        weights: weights.to_vec(),
        extra: BTreeMap::new(),
    }
}

fn tiny_bert() -> ModelFiles {
    files(
        include_bytes!("fixtures/models/tiny-bert/config.json"),
        include_bytes!("fixtures/models/tiny-bert/tokenizer.json"),
        include_bytes!("fixtures/models/tiny-bert/model.safetensors"),
    )
}

fn golden(bytes: &[u8], name: &str) -> (Vec<usize>, Vec<f64>) {
    let st = SafeTensors::deserialize(bytes).unwrap();
    let v = st.tensor(name).unwrap();
    let values = match v.dtype() {
        Dtype::F32 => v
            .data()
            .chunks_exact(4)
            .map(|c| f32::from_le_bytes(c.try_into().unwrap()) as f64)
            .collect(),
        Dtype::I64 => v
            .data()
            .chunks_exact(8)
            .map(|c| i64::from_le_bytes(c.try_into().unwrap()) as f64)
            .collect(),
        other => panic!("{other:?}"),
    };
    (v.shape().to_vec(), values)
}

fn rows(shape: &[usize], values: &[f64]) -> Vec<Vec<u32>> {
    values
        .chunks(shape[1])
        .map(|r| r.iter().map(|&x| x as u32).collect())
        .collect()
}

fn max_abs(a: &[f32], b: &[f64]) -> f64 {
    a.iter()
        .zip(b)
        .map(|(x, y)| (*x as f64 - y).abs())
        .fold(0.0, f64::max)
}

async fn tiny_bert_errors(compute: &Compute) -> (f64, f64) {
    let g = include_bytes!("fixtures/golden/tiny-bert.golden.safetensors");
    let (s, ids) = golden(g, "input_ids");
    let (_, mask) = golden(g, "attention_mask");
    let (_, types) = golden(g, "token_type_ids");
    let batch = EncodedBatch::from_rows(&rows(&s, &ids), &rows(&s, &mask), Some(&rows(&s, &types)));
    let clf = TextClassifier::load(&tiny_bert(), &compute.device).unwrap();
    let input = EncoderInput::new(&batch, &compute.device);
    let hidden = read_f32(clf.model.encoder.forward(&input)).await.unwrap();
    let logits = read_f32(clf.model.forward(&input)).await.unwrap();
    (
        max_abs(&hidden, &golden(g, "last_hidden_state").1),
        max_abs(&logits, &golden(g, "logits").1),
    )
}

#[wasm_bindgen_test]
async fn tiny_bert_on_the_cpu_backend_in_wasm_matches_transformers() {
    let (hidden, logits) = tiny_bert_errors(&Compute::cpu("test")).await;
    console_log!("wasm CPU tiny-bert: last_hidden_state {hidden:e}, logits {logits:e}");
    assert!(
        hidden <= 1e-4 && logits <= 1e-4,
        "hidden {hidden:e}, logits {logits:e}"
    );
}

#[wasm_bindgen_test]
async fn tiny_bert_on_webgpu_matches_transformers() {
    let compute = device::webgpu()
        .await
        .expect("WebGPU (SwiftShader) must start in the test browser");
    console_log!(
        "WebGPU: {} (max binding {} bytes)",
        compute.backend.describe(),
        compute.max_binding_bytes
    );
    let (hidden, logits) = tiny_bert_errors(&compute).await;
    console_log!("WebGPU tiny-bert: last_hidden_state {hidden:e}, logits {logits:e}");
    assert!(
        hidden <= 1e-3 && logits <= 1e-3,
        "hidden {hidden:e}, logits {logits:e}"
    );
}

#[wasm_bindgen_test]
async fn tiny_gpt2_greedy_on_webgpu_gives_the_golden_tokens() {
    let compute = device::webgpu().await.expect("WebGPU must start");
    let g = include_bytes!("fixtures/golden/tiny-gpt2.golden.safetensors");
    let (s, prompt) = golden(g, "input_ids");
    let prompt: Vec<u32> = rows(&s, &prompt).remove(0);
    let (gs, greedy) = golden(g, "greedy_ids");
    let want: Vec<u32> = rows(&gs, &greedy).remove(0)[prompt.len()..].to_vec();
    let files = files(
        include_bytes!("fixtures/models/tiny-gpt2/config.json"),
        include_bytes!("fixtures/models/tiny-gpt2/tokenizer.json"),
        include_bytes!("fixtures/models/tiny-gpt2/model.safetensors"),
    );
    // Chunk the embeddings as for real GPT-2 on a small binding limit (4 chunks here).
    let lm = LanguageModel::load(&files, &compute.device, (50257 / 4 + 1) as u64 * 64 * 4).unwrap();
    assert_eq!(lm.model.wte.len(), 4);
    let cfg = GenerationConfig {
        max_new_tokens: 8,
        ..Default::default()
    };
    let out = generate_ids(&lm, &prompt, &cfg, &mut |_| true)
        .await
        .unwrap();
    assert_eq!(out.ids, want);
}

#[wasm_bindgen_test]
async fn the_backend_probe_finds_the_webgpu_adapter() {
    let status = tunelab::probe::probe().await;
    console_log!("Backend: {}", status.describe());
    assert!(
        matches!(status, tunelab::device::Backend::WebGpu { .. }),
        "Backend: {}",
        status.describe()
    );
}
