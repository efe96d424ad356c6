//! Decoders on burn's CPU backend (native, f32): GPT-2 small, SmolLM2-135M and Qwen2.5-0.5B
//! shapes with random weights (the Llama-family ones written as the Hub ships them, one
//! bfloat16 `model.safetensors`): load time, then the time to the first token after a 64-token
//! prompt and greedy decoding's tokens/s with the KV cache. `scripts/bench.sh decoders` runs it
//! beside the same in headless Chromium (tests/wasm_bench.rs's `decoders_in_wasm`).
//!
//!     cargo run --example bench_decoders

use burn::prelude::*;
use tunelab::model::memory::Footprint;
use tunelab::prompt::LanguageModel;

include!("common/bench.rs");
include!("common/random_models.rs");
include!("common/decode_bench.rs");

fn main() {
    let fixtures = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/fixtures/models");
    let gpt2_tokenizer = std::fs::read(format!("{fixtures}/tiny-gpt2/tokenizer.json")).unwrap();
    let llama_tokenizer = std::fs::read(format!("{fixtures}/tiny-llama/tokenizer.json")).unwrap();
    let device = Device::flex();
    println!("machine: {}", machine());
    println!("backend: burn Flex (CPU) with Tunelab's kernels, native, f32; random weights");
    type Make<'a> = Box<dyn Fn() -> tunelab::hub::ModelFiles + 'a>;
    let models: Vec<(&str, Make)> = vec![
        (
            "GPT-2 small (f32 file)",
            Box::new(|| random_gpt2(768, gpt2_tokenizer.clone())),
        ),
        (
            SMOLLM2_135M.name,
            Box::new(|| random_llama(&SMOLLM2_135M, llama_tokenizer.clone())),
        ),
        (
            QWEN25_05B.name,
            Box::new(|| random_llama(&QWEN25_05B, llama_tokenizer.clone())),
        ),
    ];
    for (name, make) in models {
        let files = make();
        let t = std::time::Instant::now();
        let lm = LanguageModel::load(&files, &device, u64::MAX).expect("load");
        let load_s = t.elapsed().as_secs_f64();
        let config = files.config().unwrap();
        let peak = Footprint::for_decoder(&config, Some(files.weights_bytes()), false)
            .unwrap()
            .engine_peak();
        drop(files);
        let (ttft, rate) = pollster::block_on(decode_speed(&lm, 32, 3));
        println!(
            "{name}: {:.1} M parameters, load {load_s:.2} s; prefill 64 tokens -> first token \
             {ttft:.0} ms; decode {rate:.1} tokens/s over 32 (medians of 3); the browser's \
             estimate of its CPU peak {:.2} GB",
            lm.model.num_params() as f64 / 1e6,
            peak as f64 / 1e9
        );
    }
}
