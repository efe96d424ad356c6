//! GPT-2 small's shape (12 layers, 768 wide, 12 heads, vocab 50257; random weights) on burn's CPU
//! backend (native): prefill of 64 tokens, then 32 new tokens greedily with the KV cache.
//!
//!     cargo run --example bench_gpt2

use burn::prelude::*;
use tunelab::hub::ModelFiles;
use tunelab::model::gpt2::KvCache;
use tunelab::model::read_i64;
use tunelab::model::weights::{write_safetensors, HostTensors};
use tunelab::prompt::LanguageModel;
use tunelab::rng::Rng;

include!("common/bench.rs");

fn random_gpt2_small() -> Vec<u8> {
    let (v, p, d, layers) = (50257usize, 1024usize, 768usize, 12usize);
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
    put("transformer.wte.weight".into(), vec![v, d], 0.02);
    put("transformer.wpe.weight".into(), vec![p, d], 0.01);
    for i in 0..layers {
        let n = |s: &str| format!("transformer.h.{i}.{s}");
        for ln in ["ln_1", "ln_2"] {
            put(n(&format!("{ln}.weight")), vec![d], 0.0);
            put(n(&format!("{ln}.bias")), vec![d], 0.01);
        }
        put(n("attn.c_attn.weight"), vec![d, 3 * d], 0.02);
        put(n("attn.c_attn.bias"), vec![3 * d], 0.01);
        put(n("attn.c_proj.weight"), vec![d, d], 0.02);
        put(n("attn.c_proj.bias"), vec![d], 0.01);
        put(n("mlp.c_fc.weight"), vec![d, 4 * d], 0.02);
        put(n("mlp.c_fc.bias"), vec![4 * d], 0.01);
        put(n("mlp.c_proj.weight"), vec![4 * d, d], 0.02);
        put(n("mlp.c_proj.bias"), vec![d], 0.01);
    }
    put("transformer.ln_f.weight".into(), vec![d], 0.0);
    put("transformer.ln_f.bias".into(), vec![d], 0.01);
    write_safetensors(&t).unwrap()
}

fn main() {
    let fixtures = concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/tests/fixtures/models/tiny-gpt2"
    );
    let config = r#"{"model_type": "gpt2", "architectures": ["GPT2LMHeadModel"], "vocab_size": 50257,
        "n_positions": 1024, "n_embd": 768, "n_layer": 12, "n_head": 12, "activation_function": "gelu_new",
        "layer_norm_epsilon": 1e-5, "bos_token_id": 50256, "eos_token_id": 50256}"#;
    let files = ModelFiles {
        config: config.as_bytes().to_vec(),
        tokenizer: std::fs::read(format!("{fixtures}/tokenizer.json")).unwrap(),
        weights: random_gpt2_small(),
        extra: Default::default(),
    };
    let device = Device::flex();
    let lm = LanguageModel::load(&files, &device, u64::MAX).expect("load");
    let prompt: Vec<u32> = (0..64).map(|i| 100 + i * 37).collect();
    let greedy = |logits: Tensor<2>| -> u32 {
        pollster::block_on(read_i64(logits.argmax(1))).unwrap()[0] as u32
    };
    let mut ttft = Vec::new();
    let mut rates = Vec::new();
    for run in 0..4 {
        // Time to first token: the prefill of 64 tokens and the first greedy pick.
        let start = std::time::Instant::now();
        let mut cache = KvCache::default();
        let mut next = greedy(lm.step(&prompt, &mut cache));
        let first = start.elapsed().as_secs_f64();
        // Then 32 new tokens, one step each with the KV cache.
        let t = std::time::Instant::now();
        for _ in 0..32 {
            next = greedy(lm.step(&[next], &mut cache));
        }
        let decode = t.elapsed().as_secs_f64();
        assert_eq!(cache.len(), 64 + 32);
        if run > 0 {
            ttft.push(first);
            rates.push(32.0 / decode);
        }
    }
    ttft.sort_by(|a, b| a.total_cmp(b));
    rates.sort_by(|a, b| a.total_cmp(b));
    println!("machine: {}", machine());
    println!("backend: burn Flex (CPU), native, f32; GPT-2 small shape (124M parameters, random weights)");
    println!(
        "prefill 64 tokens -> time to first token: {:.0} ms (median of 3)",
        ttft[1] * 1e3
    );
    println!(
        "decode with KV cache: {:.1} tokens/s over 32 new tokens (median of 3)",
        rates[1]
    );
}
