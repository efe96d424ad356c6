//! Llama-family decoders against transformers (golden fixtures made by
//! `tests/fixtures/gen_decoder_fixtures.py`): a tiny Llama (grouped-query attention, tied head),
//! Qwen2 (query/key/value biases, untied head) and Qwen3 (per-head query/key norms, its own head
//! size): the logits of every prompt position, greedy generation token for token, and KV-cache
//! steps equal to a full recompute.

mod common;

use burn::prelude::*;
use common::*;
use tunelab::hub::ModelFiles;
use tunelab::model::gpt2::KvCache;
use tunelab::prompt::generate::generate_ids;
use tunelab::prompt::{GenerationConfig, LanguageModel, StopReason};

fn lm(name: &str) -> LanguageModel {
    let files = ModelFiles::from_dir(fixture_model(name)).unwrap();
    LanguageModel::load(&files, &Device::flex(), u64::MAX).unwrap()
}

fn check(name: &str) {
    let (g, _) = golden(name);
    let lm = lm(name);
    let prompt: Vec<u32> = g["input_ids"].values.iter().map(|&v| v as u32).collect();
    // Every position's logits.
    let hidden = lm
        .model
        .forward(lm.ids_tensor(&prompt), &mut KvCache::default());
    assert_close(
        &format!("{name} logits"),
        &values(lm.model.logits(hidden)),
        &g["logits"].f32(),
        1e-4,
    );
    // Greedy generation, token for token.
    let want: Vec<u32> = g["greedy_ids"].values.iter().map(|&v| v as u32).collect();
    let cfg = GenerationConfig {
        max_new_tokens: 8,
        do_sample: false,
        stop_at_eos: false,
        ..Default::default()
    };
    let out = block_on(generate_ids(&lm, &prompt, &cfg, &mut |_| true)).unwrap();
    assert_eq!(
        out.ids,
        want[prompt.len()..].to_vec(),
        "{name}: greedy tokens"
    );
    assert_eq!(out.stop, StopReason::MaxNewTokens);
    // Each cached step's logits equal a full recompute of the sequence so far.
    let mut all = prompt.clone();
    let mut cache = KvCache::default();
    let mut cached = values(lm.step(&prompt, &mut cache));
    for &next in &out.ids {
        let full_hidden = lm
            .model
            .forward(lm.ids_tensor(&all), &mut KvCache::default());
        let full = values(lm.model.last_logits(full_hidden));
        let d = max_abs_diff(&cached, &full);
        assert!(
            d <= 1e-4,
            "{name} step {}: cached vs recomputed differ by {d:e}",
            all.len()
        );
        all.push(next);
        cached = values(lm.step(&[next], &mut cache));
    }
    assert_eq!(cache.len(), all.len());
}

#[test]
fn tiny_llama_matches_transformers() {
    check("tiny-llama");
}

#[test]
fn tiny_qwen2_matches_transformers() {
    check("tiny-qwen2");
}

#[test]
fn tiny_qwen3_matches_transformers() {
    check("tiny-qwen3");
}

#[test]
fn label_scores_as_chat_turns_score_the_words_that_open_the_answer() {
    use tunelab::prompt::chat::ChatSpec;
    use tunelab::prompt::score::continuation_log_probs;
    use tunelab::prompt::{LabelScorer, Template};
    let lm = lm("tiny-qwen3");
    let labels = vec!["Positive".to_string(), "Negative".to_string()];
    let mut scorer = LabelScorer::new(Template::default(), labels.clone(), labels.clone());
    scorer.chat = Some(ChatSpec {
        system: Some("Answer with one word.".into()),
        ..ChatSpec::default()
    });
    let text = "The food was wonderful.";
    let got = block_on(scorer.score(&lm, text)).unwrap();
    // By hand: the template's prompt as the user's turn after the system message, the
    // assistant's turn opened, and each label word right after it (no leading space).
    let sent = scorer.prompt_text(&lm, text).unwrap();
    assert!(
        sent.starts_with("<|im_start|>system\nAnswer with one word.<|im_end|>\n<|im_start|>user\n")
    );
    assert!(
        sent.ends_with("<|im_end|>\n<|im_start|>assistant\n"),
        "{sent}"
    );
    let prompt = lm.tokenizer.encode(&sent, false).unwrap();
    let words: Vec<Vec<u32>> = labels
        .iter()
        .map(|l| lm.tokenizer.encode(l, false).unwrap())
        .collect();
    let want = block_on(continuation_log_probs(&lm, &prompt, &words)).unwrap();
    assert_close("chat label log-probs", &got.log_probs, &want, 1e-6);
}
