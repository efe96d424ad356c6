//! GPT-2 against transformers (golden fixtures): logits, hidden states, greedy generation, the KV
//! cache, embedding chunking for WebGPU's binding limit, sampling and label scoring.

mod common;

use burn::prelude::*;
use common::*;
use tunelab::data::Dataset;
use tunelab::hub::ModelFiles;
use tunelab::model::gpt2::KvCache;
use tunelab::prompt::generate::{generate, generate_ids, GenerationConfig, StopReason};
use tunelab::prompt::score::continuation_log_probs;
use tunelab::prompt::{Decoder, LabelScorer, LanguageModel, Template};

fn lm(max_binding: u64) -> LanguageModel {
    let files = ModelFiles::from_dir(fixture_model("tiny-gpt2")).unwrap();
    LanguageModel::load(&files, &Device::flex(), max_binding).unwrap()
}

fn golden_ids() -> Vec<u32> {
    let (g, _) = golden("tiny-gpt2");
    g["input_ids"].rows_u32().remove(0)
}

fn log_softmax(row: &[f32]) -> Vec<f32> {
    let max = row.iter().copied().fold(f32::NEG_INFINITY, f32::max);
    let lse = row
        .iter()
        .map(|x| ((x - max) as f64).exp())
        .sum::<f64>()
        .ln() as f32
        + max;
    row.iter().map(|x| x - lse).collect()
}

#[test]
fn logits_and_every_hidden_state_match_transformers() {
    let (g, _) = golden("tiny-gpt2");
    let lm = lm(u64::MAX);
    let ids = lm.ids_tensor(&golden_ids());
    let states = lm.model.gpt2().unwrap().hidden_states(ids.clone());
    assert_eq!(states.len(), 3);
    for (i, s) in states.iter().enumerate() {
        assert_close(
            &format!("hidden_states.{i}"),
            &values(s.clone()),
            &g[&format!("hidden_states.{i}")].f32(),
            1e-4,
        );
    }
    let hidden = lm.model.forward(ids, &mut KvCache::default());
    assert_close(
        "last_hidden_state",
        &values(hidden.clone()),
        &g["last_hidden_state"].f32(),
        1e-4,
    );
    assert_close(
        "logits",
        &values(lm.model.logits(hidden)),
        &g["logits"].f32(),
        1e-4,
    );
}

#[test]
fn chunked_embeddings_for_small_binding_limits_give_the_same_logits() {
    let (g, _) = golden("tiny-gpt2");
    // 64-wide rows of 256 bytes: a 1 MB limit gives 4096-row chunks, 13 of them.
    let lm = lm(1 << 20);
    assert_eq!(lm.model.gpt2().unwrap().wte.chunks.len(), 13);
    let hidden = lm
        .model
        .forward(lm.ids_tensor(&golden_ids()), &mut KvCache::default());
    assert_close(
        "logits (chunked)",
        &values(lm.model.logits(hidden)),
        &g["logits"].f32(),
        1e-4,
    );
}

#[test]
fn greedy_generation_is_token_identical_to_transformers() {
    let (g, _) = golden("tiny-gpt2");
    let want: Vec<u32> = g["greedy_ids"].rows_u32().remove(0);
    let lm = lm(u64::MAX);
    let prompt = golden_ids();
    let cfg = GenerationConfig {
        max_new_tokens: 8,
        do_sample: false,
        ..Default::default()
    };
    let out = block_on(generate_ids(&lm, &prompt, &cfg, &mut |_| true)).unwrap();
    assert_eq!(out.ids, want[prompt.len()..].to_vec());
    assert_eq!(out.stop, StopReason::MaxNewTokens);
    // And from text, with streaming: the pieces concatenate to the completion.
    let mut streamed = String::new();
    let (_, json) = golden("tiny-gpt2");
    let out2 = block_on(generate(
        &lm,
        json["text"].as_str().unwrap(),
        &cfg,
        &mut |p| {
            streamed.push_str(p);
            true
        },
    ))
    .unwrap();
    assert_eq!(out2.ids, out.ids);
    assert_eq!(streamed, out2.text);
    assert_eq!(out2.text, lm.tokenizer.decode(&out.ids, true).unwrap());
}

#[test]
fn kv_cache_steps_equal_full_recompute() {
    let lm = lm(u64::MAX);
    let prompt = golden_ids();
    let cfg = GenerationConfig {
        max_new_tokens: 8,
        ..Default::default()
    };
    let generated = block_on(generate_ids(&lm, &prompt, &cfg, &mut |_| true))
        .unwrap()
        .ids;
    let mut all = prompt.clone();
    let mut cache = KvCache::default();
    let mut cached = values(lm.step(&prompt, &mut cache));
    for &next in &generated {
        let full_hidden = lm
            .model
            .forward(lm.ids_tensor(&all), &mut KvCache::default());
        let full = values(lm.model.last_logits(full_hidden));
        let d = max_abs_diff(&cached, &full);
        assert!(
            d <= 1e-5,
            "step {}: cached vs recomputed logits differ by {d:e}",
            all.len()
        );
        all.push(next);
        cached = values(lm.step(&[next], &mut cache));
    }
    assert_eq!(cache.len(), all.len());
}

#[test]
fn sampling_is_seeded_and_top_k_1_equals_greedy() {
    let lm = lm(u64::MAX);
    let prompt = golden_ids();
    let sampled = |seed: u64| {
        let cfg = GenerationConfig {
            max_new_tokens: 12,
            do_sample: true,
            temperature: 1.3,
            top_k: 0,
            top_p: 0.95,
            seed,
            stop_at_eos: false,
            ..Default::default()
        };
        block_on(generate_ids(&lm, &prompt, &cfg, &mut |_| true))
            .unwrap()
            .ids
    };
    assert_eq!(sampled(7), sampled(7));
    assert_ne!(
        sampled(7),
        sampled(8),
        "two seeds gave the same 12 sampled tokens"
    );
    let greedy = block_on(generate_ids(
        &lm,
        &prompt,
        &GenerationConfig {
            max_new_tokens: 8,
            ..Default::default()
        },
        &mut |_| true,
    ))
    .unwrap()
    .ids;
    let top1 = GenerationConfig {
        max_new_tokens: 8,
        do_sample: true,
        top_k: 1,
        temperature: 0.7,
        seed: 3,
        ..Default::default()
    };
    assert_eq!(
        block_on(generate_ids(&lm, &prompt, &top1, &mut |_| true))
            .unwrap()
            .ids,
        greedy
    );
}

#[test]
fn stop_strings_newlines_and_cancel_end_generation() {
    let lm = lm(u64::MAX);
    let prompt = golden_ids();
    let base = GenerationConfig {
        max_new_tokens: 8,
        ..Default::default()
    };
    let full = block_on(generate_ids(&lm, &prompt, &base, &mut |_| true)).unwrap();
    // Stop at the text of the third generated token.
    let third = lm.tokenizer.decode(&full.ids[2..3], true).unwrap();
    let stop_cfg = GenerationConfig {
        stop: vec![third.clone()],
        ..base.clone()
    };
    let stopped = block_on(generate_ids(&lm, &prompt, &stop_cfg, &mut |_| true)).unwrap();
    assert_eq!(stopped.stop, StopReason::StopString(third.clone()));
    let cut = full.text.find(&third).unwrap();
    assert_eq!(stopped.text, full.text[..cut]);
    // Cancel after the first piece.
    let mut calls = 0;
    let cancelled = block_on(generate_ids(&lm, &prompt, &base, &mut |_| {
        calls += 1;
        false
    }))
    .unwrap();
    assert_eq!(cancelled.stop, StopReason::Cancelled);
    assert_eq!(calls, 1);
    assert_eq!(cancelled.ids.len(), 1);
}

#[test]
fn label_scoring_equals_log_probs_from_golden_logits() {
    let (g, _) = golden("tiny-gpt2");
    let logits = g["logits"].f32();
    let vocab = 50257;
    let ids = golden_ids();
    let lm = lm(u64::MAX);
    // Prompt: the first 5 tokens. Continuations: the golden text's next 5 tokens (multi-token,
    // through the cache), and two single tokens.
    let prompt = &ids[..5];
    let rest = ids[5..].to_vec();
    let conts = vec![rest.clone(), vec![ids[5]], vec![1234]];
    let got = block_on(continuation_log_probs(&lm, prompt, &conts)).unwrap();
    let lp_at =
        |pos: usize, tok: u32| log_softmax(&logits[pos * vocab..(pos + 1) * vocab])[tok as usize];
    let want_rest: f32 = rest.iter().enumerate().map(|(i, &t)| lp_at(4 + i, t)).sum();
    let want = [want_rest, lp_at(4, ids[5]), lp_at(4, 1234)];
    for (g, w) in got.iter().zip(want) {
        assert!((g - w).abs() < 1e-4, "log-prob {g} vs golden {w}");
    }
}

#[test]
fn label_scorer_probabilities_and_calibration() {
    let lm = lm(u64::MAX);
    let mut scorer = LabelScorer::new(
        Template::default(),
        vec!["negative".into(), "positive".into()],
        vec!["Negative".into(), "Positive".into()],
    );
    let s = block_on(scorer.score(&lm, "I love the food here.")).unwrap();
    let total: f32 = s.probs.iter().sum();
    assert!((total - 1.0).abs() < 1e-5);
    let p = tunelab::math::softmax(&s.log_probs);
    assert!(tunelab::math::cosine(&p, &s.probs) > 0.99999);
    // Calibration divides by the content-free probabilities and renormalises.
    scorer.calibrate = true;
    let c = block_on(scorer.score(&lm, "I love the food here.")).unwrap();
    let mut cf_scorer = scorer.clone();
    cf_scorer.calibrate = false;
    let cf = block_on(cf_scorer.score(&lm, "N/A")).unwrap().probs;
    let q: Vec<f32> = s.probs.iter().zip(&cf).map(|(a, b)| a / b).collect();
    let qs: f32 = q.iter().sum();
    for (got, want) in c.probs.iter().zip(q.iter().map(|x| x / qs)) {
        assert!((got - want).abs() < 1e-5);
    }
}

#[test]
fn an_over_long_text_is_cut_to_fit_not_an_error_that_ends_the_evaluation() {
    let lm = lm(u64::MAX);
    let mut scorer = LabelScorer::new(
        Template::default(),
        vec!["negative".into(), "positive".into()],
        vec!["Negative".into(), "Positive".into()],
    );
    // tiny-gpt2 reads 128 positions; this text alone is 400 tokens.
    let long = "great ".repeat(400);
    let s = block_on(scorer.score(&lm, &long)).unwrap();
    assert!(s.truncated);
    assert!(
        !block_on(scorer.score(&lm, "I love the food here."))
            .unwrap()
            .truncated
    );
    let data = Dataset {
        texts: vec!["awful".into(), long.into(), "lovely".into()],
        labels: vec![0, 1, 1],
        label_names: vec!["negative".into(), "positive".into()],
    };
    let evaluation = block_on(scorer.evaluate(&lm, &data, &mut |_, _| true)).unwrap();
    assert_eq!((evaluation.predicted.len(), evaluation.truncated), (3, 1));
    // The cut keeps the text's beginning, at a token boundary, within the model's positions.
    let text = "great ".repeat(400);
    let cut = lm.tokenizer.truncate_text(&text, 50).unwrap();
    assert!(text.starts_with(cut));
    assert_eq!(lm.tokenizer.encode(cut, false).unwrap().len(), 50);
}

#[test]
fn the_default_prompts_are_the_seeds_wording() {
    let t = Template::default();
    assert_eq!(
        t.render("The food was great."),
        "Determine the sentiment of the following sentence as Positive or Negative.\nSentence: The food was great.\nSentiment:"
    );
    let few = Template::few_shot(vec![
        tunelab::prompt::Example {
            text: "Awful.".into(),
            label: "Negative".into(),
        },
        tunelab::prompt::Example {
            text: "Lovely!".into(),
            label: "Positive".into(),
        },
    ]);
    assert_eq!(
        few.render("Fine."),
        "Determine the sentiment of the following sentence as Positive or Negative.\nSentence: Awful.\nSentiment: Negative\nSentence: Lovely!\nSentiment: Positive\nSentence: Fine.\nSentiment:"
    );
}

/// GPT-2's tensors as loaded give back the checkpoint's: on the CPU its `Conv1D` weights are
/// kept transposed (each output's weights one row, for decoding's dot products) and read back
/// through the transposed view.
#[test]
fn gpt2_exports_the_checkpoints_tensors() {
    let Decoder::Gpt2(model) = lm(u64::MAX).model else {
        panic!("tiny-gpt2 loads as GPT-2");
    };
    let mut out = tunelab::model::layers::Exporter::default();
    model.export(&mut out);
    let ours = pollster::block_on(out.read()).unwrap();
    let file = std::fs::read(fixture_model("tiny-gpt2").join("model.safetensors")).unwrap();
    let compared = assert_as_stored(&ours, &file, "transformer.");
    assert!(
        ours.contains_key("transformer.h.0.mlp.c_fc.weight"),
        "{:?}",
        ours.keys()
    );
    assert!(compared > 4, "{compared} tensors");
}
