//! Bad model files give clear errors, never panics; half-precision and unprefixed checkpoints
//! load; exported checkpoints keep transformers' names, shapes and values.

mod common;

use burn::prelude::*;
use common::*;
use safetensors::{Dtype, SafeTensors};
use tunelab::hub::ModelFiles;
use tunelab::model::layers::Exporter;
use tunelab::model::weights::{write_safetensors, HostTensors};
use tunelab::model::{read_f32, ModelConfig, ModelError};
use tunelab::pipelines::TextClassifier;
use tunelab::prompt::LanguageModel;
use tunelab::Error;

fn host_tensors(bytes: &[u8]) -> HostTensors {
    let st = SafeTensors::deserialize(bytes).unwrap();
    st.tensors()
        .into_iter()
        .filter(|(_, v)| v.dtype() == Dtype::F32)
        .map(|(n, v)| {
            let values = v
                .data()
                .chunks_exact(4)
                .map(|c| f32::from_le_bytes(c.try_into().unwrap()))
                .collect();
            (n.to_string(), (v.shape().to_vec(), values))
        })
        .collect()
}

fn tiny_bert() -> ModelFiles {
    ModelFiles::from_dir(fixture_model("tiny-bert")).unwrap()
}

fn load_err(files: &ModelFiles) -> String {
    match TextClassifier::load(files, &Device::flex()) {
        Ok(_) => panic!("loaded a broken model"),
        Err(e) => e.to_string(),
    }
}

#[test]
fn truncated_safetensors_is_reported_not_panicked() {
    let mut files = tiny_bert();
    files.weights.truncate(files.weights.len() / 2);
    let msg = load_err(&files);
    assert!(
        msg.starts_with("model.safetensors is truncated or not a safetensors file"),
        "{msg}"
    );
    files.weights = b"<!DOCTYPE html><html>404</html>".to_vec();
    assert_eq!(
        load_err(&files),
        "model.safetensors is an HTML page, not weights (a wrong URL or a login page?)"
    );
    files.weights = vec![1, 2, 3];
    assert!(load_err(&files).contains("truncated or not a safetensors file"));
}

#[test]
fn a_config_that_disagrees_with_the_weights_names_the_tensors() {
    let mut files = tiny_bert();
    let mut cfg: serde_json::Value = serde_json::from_slice(&files.config).unwrap();
    cfg["hidden_size"] = 64.into();
    files.config = serde_json::to_vec(&cfg).unwrap();
    let msg = load_err(&files);
    assert!(
        msg.starts_with("the weights do not match config.json: wrong shape (38): "),
        "{msg}"
    );
    assert!(msg.contains("bert.encoder.layer.0.attention.self.query.weight: the file has [32, 32], the config implies [64, 64]"), "{msg}");
    assert!(msg.ends_with(" and 26 more"), "long lists are cut: {msg}");
    // More layers than the file has: the missing ones are named.
    let mut files = tiny_bert();
    let mut cfg: serde_json::Value = serde_json::from_slice(&files.config).unwrap();
    cfg["num_hidden_layers"] = 3.into();
    files.config = serde_json::to_vec(&cfg).unwrap();
    let msg = load_err(&files);
    assert!(
        msg.contains("missing (16): encoder.layer.2.attention.self.query.weight"),
        "{msg}"
    );
    // Fewer: the extra layer's tensors are unexpected.
    let mut files = tiny_bert();
    let mut cfg: serde_json::Value = serde_json::from_slice(&files.config).unwrap();
    cfg["num_hidden_layers"] = 1.into();
    files.config = serde_json::to_vec(&cfg).unwrap();
    let msg = load_err(&files);
    assert!(
        msg.contains("unexpected (16): bert.encoder.layer.1."),
        "{msg}"
    );
}

#[test]
fn a_missing_tensor_is_named() {
    let mut files = tiny_bert();
    let mut t = host_tensors(&files.weights);
    t.remove("bert.encoder.layer.1.output.LayerNorm.bias")
        .unwrap();
    files.weights = write_safetensors(&t).unwrap();
    assert_eq!(
        load_err(&files),
        "the weights do not match config.json: missing (1): encoder.layer.1.output.LayerNorm.bias"
    );
}

#[test]
fn unsupported_configs_say_what_is_supported() {
    let err = ModelConfig::from_json(r#"{"model_type": "mistral"}"#).unwrap_err();
    assert_eq!(
        err,
        ModelError::Unsupported("model_type \"mistral\" is not supported: Tunelab runs bert, distilbert, roberta, xlm-roberta, modernbert, gpt2, llama, qwen2 and qwen3 checkpoints".into())
    );
    let err = ModelConfig::from_json(
        r#"{"model_type": "bert", "architectures": ["BertForQuestionAnswering"]}"#,
    )
    .unwrap_err();
    assert!(
        err.to_string()
            .starts_with("architecture \"BertForQuestionAnswering\" is not supported"),
        "{err}"
    );
    let err = ModelConfig::from_json("<html>").unwrap_err();
    assert!(
        err.to_string()
            .starts_with("config.json: config.json is not valid JSON"),
        "{err}"
    );
    let err = ModelConfig::from_json(r#"{"model_type": "bert", "vocab_size": 10, "hidden_size": 30, "num_hidden_layers": 1, "num_attention_heads": 4, "intermediate_size": 8}"#).unwrap_err();
    assert_eq!(
        err.to_string(),
        "config.json: hidden size 30 is not divisible by 4 attention heads"
    );
    // A base checkpoint cannot classify before it has a head.
    let files = ModelFiles::from_dir(fixture_model("tiny-bert-mlm")).unwrap();
    match TextClassifier::load(&files, &Device::flex()) {
        Err(Error::Usage(m)) => assert!(
            m.starts_with("this checkpoint has no classification head"),
            "{m}"
        ),
        other => panic!("{:?}", other.err()),
    }
}

/// tiny-bert with `changes` made to its config.json.
fn tiny_bert_with(changes: &[(&str, serde_json::Value)]) -> ModelFiles {
    let mut files = tiny_bert();
    let mut cfg: serde_json::Value = serde_json::from_slice(&files.config).unwrap();
    for (k, v) in changes {
        cfg[*k] = v.clone();
    }
    files.config = serde_json::to_vec(&cfg).unwrap();
    files
}

#[test]
fn absurd_configs_are_refused_before_anything_is_allocated() {
    // Each of these panicked, or allocated the config's sizes before looking at the file.
    let cases: [(&[(&str, serde_json::Value)], &str); 7] = [
        (
            &[("vocab_size", 1_000_000_000u64.into())],
            "config.json: \"vocab_size\" is 1000000000: it must be between 1 and 4000000",
        ),
        (
            &[("num_hidden_layers", 10_000.into())],
            "config.json: \"num_hidden_layers\" is 10000: it must be between 1 and 512",
        ),
        (
            &[("hidden_size", 0.into())],
            "config.json: \"hidden_size\" is 0: it must be between 1 and 65536",
        ),
        (
            &[("hidden_dropout_prob", 1.5.into())],
            "config.json: \"hidden_dropout_prob\" is 1.5: a dropout probability must be at least 0 and below 1",
        ),
        (
            &[("layer_norm_eps", (-1.0).into())],
            "config.json: \"layer_norm_eps\" is -1: it must be a small positive number",
        ),
        // Was cast to u32 (4294967296 became 0).
        (
            &[("pad_token_id", 4_294_967_296u64.into())],
            "config.json: \"pad_token_id\" is 4294967296: a token id must be below 2^32",
        ),
        // Within every bound, but 3 GB of weights: refused with the numbers.
        (
            &[("vocab_size", 3_000_000.into()), ("hidden_size", 256.into())],
            "this model needs ~3.1 GB for its weights; this browser holds at most 2.1 GB",
        ),
    ];
    for (changes, message) in cases {
        assert_eq!(load_err(&tiny_bert_with(changes)), message, "{changes:?}");
    }
    // Sizes a file of this size cannot hold: refused on the file's header, before the missing
    // tensors would be allocated as zeros.
    let msg = load_err(&tiny_bert_with(&[
        ("hidden_size", 512.into()),
        ("num_hidden_layers", 64.into()),
    ]));
    assert_eq!(
        msg,
        "the weights do not match config.json: config.json describes a model of 87.6 M weights, model.safetensors holds 999.1 k"
    );
    // GPT-2's names.
    let mut files = ModelFiles::from_dir(fixture_model("tiny-gpt2")).unwrap();
    let mut cfg: serde_json::Value = serde_json::from_slice(&files.config).unwrap();
    cfg["n_embd"] = 0.into();
    files.config = serde_json::to_vec(&cfg).unwrap();
    match LanguageModel::load(&files, &Device::flex(), u64::MAX) {
        Err(e) => assert_eq!(
            e.to_string(),
            "config.json: \"n_embd\" is 0: it must be between 1 and 65536"
        ),
        Ok(_) => panic!("loaded n_embd 0"),
    }
}

#[test]
fn a_scalar_classifier_weight_is_a_mismatch_not_a_panic() {
    let mut files = tiny_bert();
    let mut t = host_tensors(&files.weights);
    t.insert("classifier.weight".into(), (vec![], vec![1.0]));
    files.weights = write_safetensors(&t).unwrap();
    let msg = load_err(&files);
    assert!(
        msg.contains("classifier.weight: the file has [], the config implies [2, 32]"),
        "{msg}"
    );
}

/// Rewrites every f32 tensor of a checkpoint with `convert`, optionally renaming.
fn converted(bytes: &[u8], dtype: Dtype, rename: impl Fn(&str) -> String) -> Vec<u8> {
    let t = host_tensors(bytes);
    let data: Vec<(String, Vec<usize>, Vec<u8>)> = t
        .into_iter()
        .map(|(n, (shape, v))| {
            let bytes: Vec<u8> = match dtype {
                Dtype::F16 => v
                    .iter()
                    .flat_map(|x| half::f16::from_f32(*x).to_le_bytes())
                    .collect(),
                Dtype::BF16 => v
                    .iter()
                    .flat_map(|x| half::bf16::from_f32(*x).to_le_bytes())
                    .collect(),
                _ => v.iter().flat_map(|x| x.to_le_bytes()).collect(),
            };
            (rename(&n), shape, bytes)
        })
        .collect();
    let views: Vec<(String, safetensors::tensor::TensorView)> = data
        .iter()
        .map(|(n, s, b)| {
            (
                n.clone(),
                safetensors::tensor::TensorView::new(dtype, s.clone(), b).unwrap(),
            )
        })
        .collect();
    safetensors::serialize(views, None).unwrap()
}

fn logits(files: &ModelFiles) -> Vec<f32> {
    let clf = TextClassifier::load(files, &Device::flex()).unwrap();
    block_on(clf.logits(&["I love the food here.", "Terrible service."]))
        .unwrap()
        .concat()
}

#[test]
fn f16_bf16_and_unprefixed_checkpoints_load() {
    let files = tiny_bert();
    let want = logits(&files);
    for (dtype, tol) in [(Dtype::F16, 5e-2), (Dtype::BF16, 2e-1)] {
        let mut f = files.clone();
        f.weights = converted(&files.weights, dtype, str::to_string);
        let got = logits(&f);
        let d = max_abs_diff(&got, &want);
        assert!(d < tol, "{dtype:?}: logits differ by {d}");
    }
    // Names without "bert." (as sentence-transformers saves them), plus a position_ids buffer.
    let mut f = files.clone();
    let mut t = host_tensors(&converted(&files.weights, Dtype::F32, |n| {
        n.strip_prefix("bert.").unwrap_or(n).to_string()
    }));
    t.insert(
        "embeddings.position_ids".into(),
        (vec![1, 128], (0..128).map(|i| i as f32).collect()),
    );
    f.weights = write_safetensors(&t).unwrap();
    assert_eq!(logits(&f), want);
}

#[test]
fn gpt2_checkpoints_without_the_prefix_and_with_attention_buffers_load() {
    let files = ModelFiles::from_dir(fixture_model("tiny-gpt2")).unwrap();
    let mut t = host_tensors(&converted(&files.weights, Dtype::F32, |n| {
        n.strip_prefix("transformer.").unwrap_or(n).to_string()
    }));
    for i in 0..2 {
        t.insert(
            format!("h.{i}.attn.bias"),
            (vec![1, 1, 4, 4], vec![1.0; 16]),
        );
        t.insert(format!("h.{i}.attn.masked_bias"), (vec![1], vec![-1e4]));
    }
    let hub_style = ModelFiles {
        weights: write_safetensors(&t).unwrap(),
        ..files.clone()
    };
    let dev = Device::flex();
    let a = LanguageModel::load(&files, &dev, u64::MAX).unwrap();
    let b = LanguageModel::load(&hub_style, &dev, u64::MAX).unwrap();
    let ids = [40u32, 1842, 262];
    let la = block_on(read_f32(a.step(&ids, &mut Default::default()))).unwrap();
    let lb = block_on(read_f32(b.step(&ids, &mut Default::default()))).unwrap();
    assert_eq!(la, lb);
    // An LM checkpoint is refused by the classifier with a pointer to the right page.
    match TextClassifier::load(&files, &dev) {
        Err(Error::Usage(m)) => assert_eq!(m, "this is a language model, not an encoder: it generates text and scores labels by prompting"),
        other => panic!("{:?}", other.err()),
    }
}

#[test]
fn exported_classifiers_keep_transformers_names_shapes_and_values() {
    // The fixtures were written by transformers: exporting what was loaded gives back exactly
    // their tensors (ModernBERT's norms without a bias included).
    for name in [
        "tiny-bert",
        "tiny-distilbert",
        "tiny-roberta",
        "tiny-xlm-roberta",
        "tiny-modernbert",
    ] {
        let files = ModelFiles::from_dir(fixture_model(name)).unwrap();
        let m = fixture_classifier(name, &Device::flex());
        let mut out = Exporter::default();
        m.export(&mut out);
        let exported = block_on(out.read()).unwrap();
        let original = host_tensors(&files.weights);
        assert_eq!(
            exported.keys().collect::<Vec<_>>(),
            original.keys().collect::<Vec<_>>(),
            "{name}: tensor names"
        );
        for (k, (shape, values)) in &original {
            assert_eq!(&exported[k].0, shape, "{name}: {k} shape");
            assert_eq!(&exported[k].1, values, "{name}: {k} values");
        }
    }
}

/// `files` with the vocabulary cut to its first `n` tokens in config.json and the weights (the
/// tokenizer keeps all of them).
fn vocabulary_cut(mut files: ModelFiles, n: usize, embedding: &str) -> ModelFiles {
    let mut t = host_tensors(&files.weights);
    let (shape, values) = t.remove(embedding).unwrap();
    let width = shape[1];
    t.insert(
        embedding.to_string(),
        (vec![n, width], values[..n * width].to_vec()),
    );
    files.weights = write_safetensors(&t).unwrap();
    let mut config: serde_json::Value = serde_json::from_slice(&files.config).unwrap();
    config["vocab_size"] = n.into();
    files.config = serde_json::to_vec(&config).unwrap();
    files
}

#[test]
fn a_tokenizer_larger_than_the_models_vocabulary_is_refused_at_load() {
    // Token ids past the embeddings used to panic at the first text (CPU) or read garbage
    // (WebGPU); the model is refused when it loads instead.
    let bert = vocabulary_cut(tiny_bert(), 1000, "bert.embeddings.word_embeddings.weight");
    let msg = load_err(&bert);
    assert!(
        msg.contains("30522") && msg.contains("1000") && msg.contains("vocabulary"),
        "{msg}"
    );
    let gpt2 = vocabulary_cut(
        ModelFiles::from_dir(fixture_model("tiny-gpt2")).unwrap(),
        1000,
        "transformer.wte.weight",
    );
    match LanguageModel::load(&gpt2, &Device::flex(), u64::MAX) {
        Ok(_) => panic!("loaded GPT-2 with a tokenizer past its vocabulary"),
        Err(e) => assert!(e.to_string().contains("vocabulary"), "{e}"),
    }
}
