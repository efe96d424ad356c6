//! GPT-2 small's shape (12 layers, 768 wide, 12 heads, vocab 50257; random weights) on burn's CPU
//! backend (native): prefill of 64 tokens, then 32 new tokens greedily with the KV cache.
//!
//!     cargo run --example bench_gpt2

use burn::prelude::*;
use tunelab::prompt::LanguageModel;

include!("common/bench.rs");
include!("common/random_models.rs");
include!("common/decode_bench.rs");

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
    // Time to first token after a 64-token prompt, then 32 greedy tokens with the KV cache.
    let (ttft_ms, rate) = pollster::block_on(decode_speed(&lm, 32, 3));
    println!("machine: {}", machine());
    println!("backend: burn Flex (CPU), native, f32; GPT-2 small shape (124M parameters, random weights)");
    println!("prefill 64 tokens -> time to first token: {ttft_ms:.0} ms (median of 3)");
    println!("decode with KV cache: {rate:.1} tokens/s over 32 new tokens (median of 3)");
}
