// Time to first token after a 64-token prompt, then greedy decoding with the KV cache: the
// decoder benchmarks natively (examples/bench_decoders.rs) and in wasm (tests/wasm_bench.rs),
// included with `include!`.

/// The greedy next token of `logits` `[1, vocab]`.
#[allow(dead_code)]
async fn greedy_token(logits: burn::prelude::Tensor<2>) -> u32 {
    tunelab::model::read_i64(logits.argmax(1)).await.unwrap()[0] as u32
}

/// (median milliseconds to the first token, median tokens/s over `new` tokens) of `runs` runs
/// after one warm-up run. The prompt is 64 token ids below 2,500.
#[allow(dead_code)]
async fn decode_speed(lm: &tunelab::prompt::LanguageModel, new: usize, runs: usize) -> (f64, f64) {
    use tunelab::clock::now_ms;
    let prompt: Vec<u32> = (0..64).map(|i| 100 + i * 37).collect();
    let (mut ttft, mut rates) = (Vec::new(), Vec::new());
    for run in 0..=runs {
        let t0 = now_ms();
        let mut cache = tunelab::model::gpt2::KvCache::default();
        let mut next = greedy_token(lm.step(&prompt, &mut cache)).await;
        let first = now_ms() - t0;
        let t1 = now_ms();
        for _ in 0..new {
            next = greedy_token(lm.step(&[next], &mut cache)).await;
        }
        let secs = (now_ms() - t1) / 1000.0;
        assert_eq!(cache.len(), 64 + new);
        if run > 0 {
            ttft.push(first);
            rates.push(new as f64 / secs);
        }
    }
    let median = |mut v: Vec<f64>| {
        v.sort_by(|a, b| a.total_cmp(b));
        v[v.len() / 2]
    };
    (median(ttft), median(rates))
}
