//! Fuzzing in `cargo test`: seeded, bounded mutation fuzzing of every reader of the user's files
//! (the CSV/TSV reader, `config.json`, `model.safetensors` for BERT and GPT-2, zip archives).
//! Each target starts from valid inputs and mutates them (bit flips, "interesting" bytes and
//! integers, cuts, repeats, splices, tokens of the format), then calls the reader: any result is
//! fine, a panic is a failure that prints the input. The seed is fixed, so a run is repeatable;
//! each target prints how many cases it ran (`cargo test --test fuzz -- --nocapture`), and
//! `TUNELAB_FUZZ_CASES` scales the counts for a longer run.

use std::panic::{catch_unwind, AssertUnwindSafe};

use burn::prelude::*;
use tunelab::data::{import_dataset, parse_table, TableOptions};
use tunelab::hub::archive::{read_zip, write_zip};
use tunelab::hub::ModelFiles;
use tunelab::model::bert::{Pooling, SequenceClassifier};
use tunelab::model::gpt2::Gpt2;
use tunelab::model::weights::{write_safetensors, HostTensors};
use tunelab::model::ModelConfig;
use tunelab::rng::Rng;

/// Cases per target, times `TUNELAB_FUZZ_CASES` (default 1).
fn cases(base: usize) -> usize {
    let scale: f64 = std::env::var("TUNELAB_FUZZ_CASES")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(1.0);
    ((base as f64) * scale).max(1.0) as usize
}

/// Bytes worth trying in place of others: delimiters, quotes, line ends, JSON and zip markers.
const BYTES: &[u8] = b"\x00\xff\x7f\x80\"',;\t\r\n{}[]:\\-09eE.PK\x01\x02\x03\x04\x05\x06";

/// Integers worth trying (as little-endian u16/u32/u64 and as text).
const INTS: &[u64] = &[
    0,
    1,
    2,
    7,
    8,
    255,
    256,
    65535,
    65536,
    0x7fff_ffff,
    0x8000_0000,
    0xffff_ffff,
    0x1_0000_0000,
    i64::MAX as u64,
    u64::MAX,
];

/// Tokens of the formats read: CSV, JSON, safetensors' header.
const TOKENS: &[&str] = &[
    "\"",
    "\"\"",
    "\r\n",
    "\n",
    ",",
    "\t",
    ";",
    "\u{feff}",
    "\u{fffd}",
    "é",
    "null",
    "true",
    "[]",
    "{}",
    "-1",
    "1e309",
    "NaN",
    "1.5",
    "0",
    "4294967296",
    "18446744073709551616",
    "\"dtype\":\"F16\"",
    "\"dtype\":\"I64\"",
    "\"shape\":[]",
    "\"shape\":[0]",
    "\"shape\":[4294967295,4294967295]",
    "\"data_offsets\":[0,0]",
    "\"data_offsets\":[0,18446744073709551615]",
    "\"__metadata__\":{}",
];

/// One mutation of `input` (possibly spliced with another seed).
fn mutate(rng: &mut Rng, input: &[u8], seeds: &[Vec<u8>]) -> Vec<u8> {
    let mut v = input.to_vec();
    let rounds = 1 + rng.below(6);
    for _ in 0..rounds {
        let len = v.len();
        let at = if len == 0 { 0 } else { rng.below(len) };
        match rng.below(10) {
            0 if len > 0 => v[at] ^= 1 << rng.below(8),
            1 if len > 0 => v[at] = BYTES[rng.below(BYTES.len())],
            2 if len > 0 => {
                let n = 1 + rng.below((len - at).min(64));
                v.drain(at..at + n);
            }
            3 if len > 0 => {
                let n = 1 + rng.below((len - at).min(64));
                let copy = v[at..at + n].to_vec();
                let to = rng.below(len + 1);
                v.splice(to..to, copy);
            }
            4 => v.truncate(at),
            5 => {
                let n = 1 + rng.below(16);
                let junk: Vec<u8> = (0..n).map(|_| rng.next_u64() as u8).collect();
                v.splice(at..at, junk);
            }
            6 => {
                let t = TOKENS[rng.below(TOKENS.len())].as_bytes();
                v.splice(at..at, t.iter().copied());
            }
            7 => {
                // An extreme integer over 2, 4 or 8 bytes (lengths, offsets, counts).
                let x = INTS[rng.below(INTS.len())];
                let width = [2, 4, 8][rng.below(3)];
                let bytes = x.to_le_bytes();
                for (i, b) in bytes.iter().take(width).enumerate() {
                    if at + i < v.len() {
                        v[at + i] = *b;
                    }
                }
            }
            8 => {
                // A number in text replaced by an extreme one.
                let x = INTS[rng.below(INTS.len())].to_string();
                if let Some(p) = (at..len).find(|&i| v[i].is_ascii_digit()) {
                    let end = (p..len).find(|&i| !v[i].is_ascii_digit()).unwrap_or(len);
                    v.splice(p..end, x.bytes());
                }
            }
            _ => {
                // Splice: the head of this input, the tail of another seed.
                let other = &seeds[rng.below(seeds.len())];
                let from = if other.is_empty() {
                    0
                } else {
                    rng.below(other.len())
                };
                v.truncate(at);
                v.extend_from_slice(&other[from..]);
            }
        }
    }
    v
}

/// Runs `target` on `n` mutations of the seeds (and the seeds themselves); a panic fails the
/// test with the case and its input. Returns (cases, accepted).
fn fuzz(
    name: &str,
    seeds: &[Vec<u8>],
    n: usize,
    seed: u64,
    target: impl Fn(&[u8]) -> bool,
) -> (usize, usize) {
    let mut rng = Rng::new(seed);
    let mut accepted = 0;
    let inputs = seeds.iter().cloned().chain((0..n).map(|_| {
        let from = rng.below(seeds.len());
        mutate(&mut rng, &seeds[from], seeds)
    }));
    let mut count = 0;
    for (case, input) in inputs.enumerate() {
        count += 1;
        match catch_unwind(AssertUnwindSafe(|| target(&input))) {
            Ok(true) => accepted += 1,
            Ok(false) => {}
            Err(e) => {
                let what = e
                    .downcast_ref::<String>()
                    .cloned()
                    .or_else(|| e.downcast_ref::<&str>().map(|s| s.to_string()))
                    .unwrap_or_default();
                let shown: Vec<String> =
                    input.iter().take(512).map(|b| format!("{b:02x}")).collect();
                panic!(
                    "fuzz {name}: case {case} panicked: {what}\ninput ({} bytes, hex, first 512): {}",
                    input.len(),
                    shown.join("")
                );
            }
        }
    }
    println!(
        "fuzz {name}: {count} cases, {accepted} read, {} refused, no panic",
        count - accepted
    );
    (count, accepted)
}

#[test]
fn fuzz_the_csv_reader() {
    let seeds: Vec<Vec<u8>> = [
        "text,label\ngood film,positive\n\"bad, \"\"truly\"\" bad\",negative\nfine,positive\n",
        "review\tsentiment\nlovely\t1\nawful\t0\nmeh\t0\n",
        "\u{feff}id;text;label\r\n1;a;x\r\n2;b;y\r\n3;\"multi\nline\";x\r\n",
        "great film,positive\nawful film,negative\n",
        "text,label,extra\na,b\nc,d,e,f\n,,\n\"open,x\n",
        "label,text\n0,zero\n1,one\n10,ten\n2,two\n",
    ]
    .iter()
    .map(|s| s.as_bytes().to_vec())
    .collect();
    let options = [
        TableOptions::default(),
        TableOptions {
            has_header: Some(true),
            ..TableOptions::default()
        },
        TableOptions {
            has_header: Some(false),
            delimiter: Some(b'\t'),
        },
    ];
    let (n, _) = fuzz("csv", &seeds, cases(20_000), 1, |bytes| {
        let mut read = false;
        for opts in &options {
            if let Ok(table) = parse_table(bytes, opts) {
                read = true;
                let _ = table.preview("f.csv", 8);
                let (t, l) = (table.default_text_column(), table.default_label_column());
                let _ = table.to_dataset(t, l);
                if table.columns.len() > 1 {
                    let _ = table.to_dataset(0, 1);
                    let _ = table.to_test_dataset(1, 0, &["x".into(), "positive".into()]);
                    let _ = table.matching_columns(&table, 0, 1);
                }
                let _ = table.column_index("text");
            }
            let _ = import_dataset(bytes, opts, Some("text"), Some("label"));
        }
        read
    });
    assert!(n > 20_000);
}

/// A BERT classifier and a GPT-2 small enough to load thousands of times: (config, weights).
fn micro_models() -> [(String, Vec<u8>); 2] {
    let mut rng = Rng::new(5);
    let mut t = HostTensors::new();
    let mut put = |t: &mut HostTensors, name: &str, shape: Vec<usize>| {
        let n: usize = shape.iter().product();
        let values = (0..n).map(|_| rng.normal() as f32 * 0.02).collect();
        t.insert(name.to_string(), (shape, values));
    };
    let (v, p, d, f) = (64, 16, 8, 16);
    for (name, shape) in [
        ("bert.embeddings.word_embeddings.weight", vec![v, d]),
        ("bert.embeddings.position_embeddings.weight", vec![p, d]),
        ("bert.embeddings.token_type_embeddings.weight", vec![2, d]),
        ("bert.embeddings.LayerNorm.weight", vec![d]),
        ("bert.embeddings.LayerNorm.bias", vec![d]),
        (
            "bert.encoder.layer.0.attention.self.query.weight",
            vec![d, d],
        ),
        ("bert.encoder.layer.0.attention.self.query.bias", vec![d]),
        ("bert.encoder.layer.0.attention.self.key.weight", vec![d, d]),
        ("bert.encoder.layer.0.attention.self.key.bias", vec![d]),
        (
            "bert.encoder.layer.0.attention.self.value.weight",
            vec![d, d],
        ),
        ("bert.encoder.layer.0.attention.self.value.bias", vec![d]),
        (
            "bert.encoder.layer.0.attention.output.dense.weight",
            vec![d, d],
        ),
        ("bert.encoder.layer.0.attention.output.dense.bias", vec![d]),
        (
            "bert.encoder.layer.0.attention.output.LayerNorm.weight",
            vec![d],
        ),
        (
            "bert.encoder.layer.0.attention.output.LayerNorm.bias",
            vec![d],
        ),
        ("bert.encoder.layer.0.intermediate.dense.weight", vec![f, d]),
        ("bert.encoder.layer.0.intermediate.dense.bias", vec![f]),
        ("bert.encoder.layer.0.output.dense.weight", vec![d, f]),
        ("bert.encoder.layer.0.output.dense.bias", vec![d]),
        ("bert.encoder.layer.0.output.LayerNorm.weight", vec![d]),
        ("bert.encoder.layer.0.output.LayerNorm.bias", vec![d]),
        ("bert.pooler.dense.weight", vec![d, d]),
        ("bert.pooler.dense.bias", vec![d]),
        ("classifier.weight", vec![2, d]),
        ("classifier.bias", vec![2]),
    ] {
        put(&mut t, name, shape);
    }
    let bert = write_safetensors(&t).unwrap();
    let bert_config = format!(
        r#"{{"model_type": "bert", "architectures": ["BertForSequenceClassification"],
        "vocab_size": {v}, "max_position_embeddings": {p}, "hidden_size": {d},
        "num_hidden_layers": 1, "num_attention_heads": 2, "intermediate_size": {f},
        "hidden_act": "gelu", "layer_norm_eps": 1e-12, "type_vocab_size": 2, "pad_token_id": 0,
        "hidden_dropout_prob": 0.1, "id2label": {{"0": "NEG", "1": "POS"}}}}"#
    );
    let mut t = HostTensors::new();
    for (name, shape) in [
        ("transformer.wte.weight", vec![v, d]),
        ("transformer.wpe.weight", vec![p, d]),
        ("transformer.h.0.ln_1.weight", vec![d]),
        ("transformer.h.0.ln_1.bias", vec![d]),
        ("transformer.h.0.ln_2.weight", vec![d]),
        ("transformer.h.0.ln_2.bias", vec![d]),
        ("transformer.h.0.attn.c_attn.weight", vec![d, 3 * d]),
        ("transformer.h.0.attn.c_attn.bias", vec![3 * d]),
        ("transformer.h.0.attn.c_proj.weight", vec![d, d]),
        ("transformer.h.0.attn.c_proj.bias", vec![d]),
        ("transformer.h.0.mlp.c_fc.weight", vec![d, 4 * d]),
        ("transformer.h.0.mlp.c_fc.bias", vec![4 * d]),
        ("transformer.h.0.mlp.c_proj.weight", vec![4 * d, d]),
        ("transformer.h.0.mlp.c_proj.bias", vec![d]),
        ("transformer.ln_f.weight", vec![d]),
        ("transformer.ln_f.bias", vec![d]),
    ] {
        put(&mut t, name, shape);
    }
    let gpt2 = write_safetensors(&t).unwrap();
    let gpt2_config = format!(
        r#"{{"model_type": "gpt2", "architectures": ["GPT2LMHeadModel"], "vocab_size": {v},
        "n_positions": {p}, "n_embd": {d}, "n_layer": 1, "n_head": 2,
        "activation_function": "gelu_new", "layer_norm_epsilon": 1e-5, "resid_pdrop": 0.1}}"#
    );
    [(bert_config, bert), (gpt2_config, gpt2)]
}

/// Loads `weights` with `config` as the engine does (BERT classifier or GPT-2), on the CPU.
/// Configs describing more than a million weights are left alone: the engine would build them
/// (it refuses only past 2 GiB), which is not what this target is about.
fn load(config: &ModelConfig, weights: &[u8]) -> bool {
    let device = Device::flex();
    if let Some(g) = config.gpt2() {
        return g.parameters() < 1_000_000
            && Gpt2::from_checkpoint(weights, g, u64::MAX, &device, Default::default()).is_ok();
    }
    match config.encoder() {
        Some(e) if e.parameters() < 1_000_000 => SequenceClassifier::from_checkpoint(
            weights,
            config,
            Pooling::Cls,
            &device,
            Default::default(),
        )
        .is_ok(),
        _ => false,
    }
}

#[test]
fn fuzz_the_config_json_reader() {
    let models = micro_models();
    let mut seeds: Vec<Vec<u8>> = models.iter().map(|(c, _)| c.as_bytes().to_vec()).collect();
    for name in ["tiny-bert", "tiny-distilbert", "tiny-bert-mlm", "tiny-gpt2"] {
        let path = format!(
            "{}/tests/fixtures/models/{name}/config.json",
            env!("CARGO_MANIFEST_DIR")
        );
        seeds.push(std::fs::read(path).unwrap());
    }
    let (n, accepted) = fuzz("config.json", &seeds, cases(20_000), 2, |bytes| {
        let text = String::from_utf8_lossy(bytes);
        let Ok(config) = ModelConfig::from_json(&text) else {
            return false;
        };
        if let Some(e) = config.encoder() {
            let _ = e.parameters();
        }
        if let Some(g) = config.gpt2() {
            let _ = g.parameters();
        }
        let _ = config.label(0);
        // The config against weights of the micro models.
        for (_, weights) in &models {
            let _ = load(&config, weights);
        }
        true
    });
    assert!(n > 20_000 && accepted > 0);
}

#[test]
fn fuzz_the_safetensors_reader() {
    let models = micro_models();
    for (i, (config, weights)) in models.iter().enumerate() {
        let config = ModelConfig::from_json(config).unwrap();
        assert!(load(&config, weights), "the micro model {i} loads");
        let seeds = vec![weights.clone()];
        let name = ["model.safetensors (BERT)", "model.safetensors (GPT-2)"][i];
        let (n, _) = fuzz(name, &seeds, cases(7_500), 3 + i as u64, |bytes| {
            load(&config, bytes)
        });
        assert!(n > 7_500);
    }
}

#[test]
fn fuzz_the_zip_reader() {
    let files = vec![
        (
            "m/config.json".to_string(),
            b"{\"model_type\": \"bert\"}".to_vec(),
        ),
        (
            "m/tokenizer.json".to_string(),
            b"{\"version\": \"1.0\"}".repeat(40),
        ),
        (
            "m/model.safetensors".to_string(),
            (0..=255u8).cycle().take(3000).collect(),
        ),
        ("m/sub/".to_string(), Vec::new()),
    ];
    let stored_and_deflated = write_zip(&files).unwrap();
    let small = write_zip(&files[..1]).unwrap();
    let seeds = vec![stored_and_deflated, small];
    let (n, _) = fuzz("zip", &seeds, cases(20_000), 4, |bytes| {
        match read_zip(bytes) {
            Ok(entries) => {
                let _ = ModelFiles::from_entries(entries);
                let _ = ModelFiles::from_zip(bytes);
                true
            }
            Err(_) => false,
        }
    });
    assert!(n > 20_000);
}
