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
    lm_within(name, u64::MAX)
}

/// The model with its vocabulary tables in row chunks of at most `max_binding_bytes`.
fn lm_within(name: &str, max_binding_bytes: u64) -> LanguageModel {
    let files = ModelFiles::from_dir(fixture_model(name)).unwrap();
    LanguageModel::load(&files, &Device::flex(), max_binding_bytes).unwrap()
}

fn check(name: &str) {
    check_model(name, &lm(name));
}

/// `lm` (loaded from `name`'s files, or another form of them) against `name`'s golden.
fn check_model(name: &str, lm: &LanguageModel) {
    let (g, _) = golden(name);
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
    let out = block_on(generate_ids(lm, &prompt, &cfg, &mut |_| true)).unwrap();
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
fn scaled_rotary_positions_match_transformers_llama3_yarn_and_linear() {
    // gen_rope_fixtures.py: Llama 3.1's band-wise scaling (one frequency kept, one smoothed, the
    // rest divided), YaRN (its ramp and the attention factor on cos and sin), linear.
    check("tiny-llama-rope-llama3");
    check("tiny-qwen2-rope-yarn");
    check("tiny-qwen3-rope-linear");
    // The scaling matters at these positions: without it the logits are others.
    for name in [
        "tiny-llama-rope-llama3",
        "tiny-qwen2-rope-yarn",
        "tiny-qwen3-rope-linear",
    ] {
        let mut files = ModelFiles::from_dir(fixture_model(name)).unwrap();
        let mut config: serde_json::Value = serde_json::from_slice(&files.config).unwrap();
        config["rope_parameters"]["rope_type"] = "default".into();
        files.config = serde_json::to_vec(&config).unwrap();
        let plain = LanguageModel::load(&files, &Device::flex(), u64::MAX).unwrap();
        let (g, _) = golden(name);
        let prompt: Vec<u32> = g["input_ids"].values.iter().map(|&v| v as u32).collect();
        let hidden = plain
            .model
            .forward(plain.ids_tensor(&prompt), &mut KvCache::default());
        let d = max_abs_diff(&values(plain.model.logits(hidden)), &g["logits"].f32());
        assert!(d > 1e-2, "{name}: unscaled logits differ by only {d:e}");
    }
}

#[test]
fn rotary_scaling_is_read_from_either_form_and_what_is_not_computed_is_refused() {
    use tunelab::model::{ModelConfig, RopeScaling};
    let with = |rope: &str| {
        ModelConfig::from_json(&format!(
            r#"{{"model_type": "llama", "vocab_size": 100, "hidden_size": 32,
            "intermediate_size": 64, "num_hidden_layers": 1, "num_attention_heads": 2,
            "max_position_embeddings": 128, {rope}}}"#
        ))
    };
    let scaling = |rope: &str| with(rope).unwrap().llama().unwrap().rope_scaling.clone();
    // transformers 4's rope_scaling with "type", beside rope_theta.
    assert_eq!(
        scaling(r#""rope_theta": 500000.0, "rope_scaling": {"type": "linear", "factor": 2.0}"#),
        RopeScaling::Linear { factor: 2.0 }
    );
    // Llama 3.2's, as its config.json has it.
    assert_eq!(
        scaling(
            r#""rope_scaling": {"factor": 32.0, "high_freq_factor": 4.0, "low_freq_factor": 1.0,
            "original_max_position_embeddings": 8192, "rope_type": "llama3"}"#
        ),
        RopeScaling::Llama3 {
            factor: 32.0,
            low_freq_factor: 1.0,
            high_freq_factor: 4.0,
            original: 8192.0
        }
    );
    // YaRN without its original context: max_position_embeddings stands in; the attention
    // factor from the factor.
    let RopeScaling::Yarn {
        attention_factor,
        original,
        ..
    } = scaling(r#""rope_parameters": {"rope_type": "yarn", "factor": 4.0, "rope_theta": 1e6}"#)
    else {
        panic!("yarn")
    };
    assert_eq!(original, 128.0);
    assert!((attention_factor - (0.1 * 4f64.ln() + 1.0)).abs() < 1e-12);
    assert_eq!(
        scaling(r#""rope_scaling": null, "rope_theta": 10000.0"#),
        RopeScaling::None
    );
    for (rope, message) in [
        (
            r#""rope_scaling": {"type": "dynamic", "factor": 2.0}"#,
            r#"rope_type "dynamic" is not supported (default, linear, llama3 and yarn rotary positions are)"#,
        ),
        (
            r#""rope_scaling": {"rope_type": "llama3", "factor": 8.0}"#,
            r#"config.json: rope_type "llama3" needs "low_freq_factor" (a number)"#,
        ),
        (
            r#""rope_scaling": {"rope_type": "linear", "factor": 0}"#,
            r#"config.json: rope_type "linear": "factor" must be a positive number"#,
        ),
    ] {
        assert_eq!(with(rope).unwrap_err().to_string(), message, "{rope}");
    }
}

#[test]
fn a_sharded_checkpoint_loads_as_its_single_file_does() {
    // transformers' save_pretrained(max_shard_size=...) of tiny-qwen2: three files and an index.
    let dir = fixture_model("tiny-qwen2-sharded");
    let files = ModelFiles::from_dir(&dir).unwrap();
    assert!(files.weights.is_empty() && files.missing().is_empty());
    assert_eq!(files.checkpoint().unwrap().0.len(), 3);
    assert_eq!(files.weights_bytes(), 512_632 + 512_640 + 299_768);
    let lm = LanguageModel::load(&files, &Device::flex(), u64::MAX).unwrap();
    check_model("tiny-qwen2", &lm);
    // A shard gone: said by name before anything is built.
    let mut partial = files.clone();
    partial.extra.remove("model-00002-of-00003.safetensors");
    assert_eq!(partial.missing(), ["model-00002-of-00003.safetensors"]);
    let err = LanguageModel::load(&partial, &Device::flex(), u64::MAX)
        .err()
        .unwrap()
        .to_string();
    assert!(
        err.contains("missing 1 of the 3 weight files model.safetensors.index.json names: model-00002-of-00003.safetensors"),
        "{err}"
    );
    // A shard that belongs to another checkpoint: its tensors are reported.
    let mut wrong = files.clone();
    let other = std::fs::read(fixture_model("tiny-llama").join("model.safetensors")).unwrap();
    wrong.insert("model-00003-of-00003.safetensors", other);
    let err = LanguageModel::load(&wrong, &Device::flex(), u64::MAX)
        .err()
        .unwrap()
        .to_string();
    assert!(
        err.contains("missing") || err.contains("wrong shape"),
        "{err}"
    );
}

#[test]
fn vocabulary_tables_in_chunks_for_small_binding_limits_give_the_same_outputs() {
    // 64-wide rows of 256 bytes: a 64 KiB limit gives 256-row chunks, 8 of them for 2002 tokens,
    // in the embeddings and in Qwen2's own (untied) head.
    let lm = lm_within("tiny-qwen2", 64 << 10);
    let tunelab::prompt::Decoder::Llama(m) = &lm.model else {
        panic!("a Llama-family decoder")
    };
    assert_eq!(m.embed_tokens.chunks.len(), 8);
    assert_eq!(m.lm_head.as_ref().map(|h| h.chunks.len()), Some(8));
    check_model("tiny-qwen2", &lm);
    // Tied: the one table serves as the head too.
    let lm = lm_within("tiny-llama", 64 << 10);
    let tunelab::prompt::Decoder::Llama(m) = &lm.model else {
        panic!("a Llama-family decoder")
    };
    assert!(m.embed_tokens.chunks.len() > 1 && m.lm_head.is_none());
    check_model("tiny-llama", &lm);
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

#[test]
fn a_plain_prompt_starts_with_the_bos_a_llama_tokenizer_adds_as_transformers_pipeline_does() {
    use tunelab::prompt::generate::generate;
    let mut files = ModelFiles::from_dir(fixture_model("tiny-llama")).unwrap();
    // The fixtures' tokenizer (XLM-R's) closes a text with </s> as well: nothing is added,
    // since an end-of-text token after the prompt would end the generation.
    let lm = LanguageModel::load(&files, &Device::flex(), u64::MAX).unwrap();
    assert!(lm.prompt_prefix.is_empty());
    let plain = lm.tokenizer.encode("The film was", false).unwrap();
    assert_eq!(lm.prompt_ids("The film was", false).unwrap(), plain);
    // A Llama tokenizer's post-processor puts <s> before the text and nothing after it:
    // transformers' text-generation pipeline encodes a plain prompt with it.
    let mut t: serde_json::Value = serde_json::from_slice(&files.tokenizer).unwrap();
    t["post_processor"] = serde_json::json!({
        "type": "TemplateProcessing",
        "single": [{"SpecialToken": {"id": "<s>", "type_id": 0}}, {"Sequence": {"id": "A", "type_id": 0}}],
        "pair": [{"SpecialToken": {"id": "<s>", "type_id": 0}}, {"Sequence": {"id": "A", "type_id": 0}},
                 {"SpecialToken": {"id": "<s>", "type_id": 1}}, {"Sequence": {"id": "B", "type_id": 1}}],
        "special_tokens": {"<s>": {"id": "<s>", "ids": [0], "tokens": ["<s>"]}}
    });
    files.tokenizer = serde_json::to_vec(&t).unwrap();
    let lm = LanguageModel::load(&files, &Device::flex(), u64::MAX).unwrap();
    assert_eq!(lm.prompt_prefix, [0]);
    let with_bos: Vec<u32> = [0].into_iter().chain(plain.iter().copied()).collect();
    assert_eq!(lm.prompt_ids("The film was", false).unwrap(), with_bos);
    // A chat template writes its own special tokens: nothing is put before it.
    assert_eq!(lm.prompt_ids("The film was", true).unwrap(), plain);
    // Generation reads the plain prompt with its <s>.
    let cfg = GenerationConfig {
        max_new_tokens: 4,
        do_sample: false,
        stop_at_eos: false,
        ..Default::default()
    };
    let text = block_on(generate(&lm, "The film was", &cfg, &mut |_| true)).unwrap();
    let ids = block_on(generate_ids(&lm, &with_bos, &cfg, &mut |_| true)).unwrap();
    assert_eq!(text.ids, ids.ids);
    let without = block_on(generate_ids(&lm, &plain, &cfg, &mut |_| true)).unwrap();
    assert_ne!(
        text.ids, without.ids,
        "the <s> changes what the model reads"
    );
}
