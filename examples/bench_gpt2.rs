//! GPT-2 small's shape (12 layers, 768 wide, 12 heads, vocab 50257; random weights) on burn's CPU
//! backend (native): prefill of 64 tokens, then 32 new tokens greedily with the KV cache.
//!
//!     cargo run --example bench_gpt2

use burn::prelude::*;
use tunelab::model::gpt2::KvCache;
use tunelab::model::read_i64;
use tunelab::prompt::LanguageModel;

include!("common/bench.rs");
include!("common/random_models.rs");

fn main() {
    let fixtures = concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/tests/fixtures/models/tiny-gpt2"
    );
    let files = random_gpt2(
        768,
        std::fs::read(format!("{fixtures}/tokenizer.json")).unwrap(),
    );
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
