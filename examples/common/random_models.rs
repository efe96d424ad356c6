// Random-weight models of real shapes for the benchmarks (speed does not depend on the values),
// included with `include!` by the examples and by tests/wasm_bench.rs. Seeded: every run builds
// the same weights. The tokenizer comes as bytes (the wasm benchmark has no file system).

/// Sizes of a BERT encoder.
#[allow(dead_code)]
struct BertShape {
    hidden: usize,
    ffn: usize,
    layers: usize,
    heads: usize,
}

/// all-MiniLM-L6-v2's shape.
#[allow(dead_code)]
const MINILM: BertShape = BertShape { hidden: 384, ffn: 1536, layers: 6, heads: 12 };

/// `put(name, shape, std)` into `t`: normal values of that spread, or ones where `std` is 0
/// (LayerNorm weights).
fn random_put(
    t: &mut tunelab::model::weights::HostTensors,
    rng: &mut tunelab::rng::Rng,
    name: String,
    shape: Vec<usize>,
    std: f64,
) {
    let n: usize = shape.iter().product();
    let values = if std == 0.0 { vec![1.0; n] } else { (0..n).map(|_| (rng.normal() * std) as f32).collect() };
    t.insert(name, (shape, values));
}

/// A BERT of shape `s` (BERT's uncased vocabulary, 512 positions) with random weights.
#[allow(dead_code)]
fn random_bert(s: &BertShape, tokenizer: Vec<u8>) -> tunelab::hub::ModelFiles {
    let (v, p, d, ffn, layers) = (30522usize, 512usize, s.hidden, s.ffn, s.layers);
    let config = format!(
        r#"{{"model_type": "bert", "architectures": ["BertModel"], "vocab_size": {v},
        "max_position_embeddings": {p}, "hidden_size": {d}, "num_hidden_layers": {layers},
        "num_attention_heads": {}, "intermediate_size": {ffn}, "hidden_act": "gelu",
        "layer_norm_eps": 1e-12, "type_vocab_size": 2, "pad_token_id": 0}}"#,
        s.heads
    );
    let mut rng = tunelab::rng::Rng::new(0);
    let mut t = tunelab::model::weights::HostTensors::new();
    let mut put = |name: String, shape: Vec<usize>, std: f64| random_put(&mut t, &mut rng, name, shape, std);
    put("embeddings.word_embeddings.weight".into(), vec![v, d], 0.02);
    put("embeddings.position_embeddings.weight".into(), vec![p, d], 0.02);
    put("embeddings.token_type_embeddings.weight".into(), vec![2, d], 0.02);
    put("embeddings.LayerNorm.weight".into(), vec![d], 0.0);
    put("embeddings.LayerNorm.bias".into(), vec![d], 0.01);
    for i in 0..layers {
        let n = |s: &str| format!("encoder.layer.{i}.{s}");
        for m in ["query", "key", "value"] {
            put(n(&format!("attention.self.{m}.weight")), vec![d, d], 0.02);
            put(n(&format!("attention.self.{m}.bias")), vec![d], 0.01);
        }
        put(n("attention.output.dense.weight"), vec![d, d], 0.02);
        put(n("attention.output.dense.bias"), vec![d], 0.01);
        put(n("attention.output.LayerNorm.weight"), vec![d], 0.0);
        put(n("attention.output.LayerNorm.bias"), vec![d], 0.01);
        put(n("intermediate.dense.weight"), vec![ffn, d], 0.02);
        put(n("intermediate.dense.bias"), vec![ffn], 0.01);
        put(n("output.dense.weight"), vec![d, ffn], 0.02);
        put(n("output.dense.bias"), vec![d], 0.01);
        put(n("output.LayerNorm.weight"), vec![d], 0.0);
        put(n("output.LayerNorm.bias"), vec![d], 0.01);
    }
    tunelab::hub::ModelFiles {
        config: config.into_bytes(),
        tokenizer,
        weights: tunelab::model::weights::write_safetensors(&t).unwrap(),
        extra: Default::default(),
    }
}

/// A GPT-2 with 12 layers and 12 heads, `d` wide (768: GPT-2 small), with random weights.
#[allow(dead_code)]
fn random_gpt2(d: usize, tokenizer: Vec<u8>) -> tunelab::hub::ModelFiles {
    let (v, p, layers) = (50257usize, 1024usize, 12usize);
    let mut rng = tunelab::rng::Rng::new(0);
    let mut t = tunelab::model::weights::HostTensors::new();
    let mut put = |name: String, shape: Vec<usize>, std: f64| random_put(&mut t, &mut rng, name, shape, std);
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
    let config = format!(
        r#"{{"model_type": "gpt2", "architectures": ["GPT2LMHeadModel"], "vocab_size": {v},
        "n_positions": {p}, "n_embd": {d}, "n_layer": {layers}, "n_head": 12, "activation_function": "gelu_new",
        "layer_norm_epsilon": 1e-5, "bos_token_id": 50256, "eos_token_id": 50256}}"#
    );
    tunelab::hub::ModelFiles {
        config: config.into_bytes(),
        tokenizer,
        weights: tunelab::model::weights::write_safetensors(&t).unwrap(),
        extra: Default::default(),
    }
}

/// Sizes of a Llama-family decoder (tied head, as SmolLM2's and Qwen2.5-0.5B's).
#[allow(dead_code)]
struct LlamaShape {
    name: &'static str,
    model_type: &'static str,
    vocab: usize,
    hidden: usize,
    ffn: usize,
    layers: usize,
    heads: usize,
    kv_heads: usize,
    rope_theta: f64,
    positions: usize,
}

/// SmolLM2-135M(-Instruct)'s shape (its config.json on the Hub).
#[allow(dead_code)]
const SMOLLM2_135M: LlamaShape = LlamaShape {
    name: "SmolLM2-135M",
    model_type: "llama",
    vocab: 49152,
    hidden: 576,
    ffn: 1536,
    layers: 30,
    heads: 9,
    kv_heads: 3,
    rope_theta: 100000.0,
    positions: 8192,
};

/// Qwen2.5-0.5B(-Instruct)'s shape (its config.json on the Hub): query/key/value biases.
#[allow(dead_code)]
const QWEN25_05B: LlamaShape = LlamaShape {
    name: "Qwen2.5-0.5B",
    model_type: "qwen2",
    vocab: 151936,
    hidden: 896,
    ffn: 4864,
    layers: 24,
    heads: 14,
    kv_heads: 2,
    rope_theta: 1000000.0,
    positions: 32768,
};

/// A decoder of shape `s` with random weights, written as the Hub ships these models: one
/// `model.safetensors` in bfloat16 (straight into its bytes: the 0.5B model's 1 GB file is the
/// only copy while it is made, as in the browser). Values are uniform with the spread of
/// N(0, 0.02) from a xorshift generator (the speed does not depend on them), norms are ones.
#[allow(dead_code)]
fn random_llama(s: &LlamaShape, tokenizer: Vec<u8>) -> tunelab::hub::ModelFiles {
    let (d, dh) = (s.hidden, s.hidden / s.heads);
    let (q, kv) = (s.heads * dh, s.kv_heads * dh);
    let biases = s.model_type == "qwen2";
    // (name, shape, spread; 0 = ones)
    let mut specs: Vec<(String, Vec<usize>, f32)> = vec![
        ("model.embed_tokens.weight".into(), vec![s.vocab, d], 0.02),
        ("model.norm.weight".into(), vec![d], 0.0),
    ];
    for i in 0..s.layers {
        let n = |x: &str| format!("model.layers.{i}.{x}");
        specs.push((n("input_layernorm.weight"), vec![d], 0.0));
        specs.push((n("post_attention_layernorm.weight"), vec![d], 0.0));
        for (p, out) in [("q_proj", q), ("k_proj", kv), ("v_proj", kv)] {
            specs.push((n(&format!("self_attn.{p}.weight")), vec![out, d], 0.02));
            if biases {
                specs.push((n(&format!("self_attn.{p}.bias")), vec![out], 0.02));
            }
        }
        specs.push((n("self_attn.o_proj.weight"), vec![d, q], 0.02));
        specs.push((n("mlp.gate_proj.weight"), vec![s.ffn, d], 0.02));
        specs.push((n("mlp.up_proj.weight"), vec![s.ffn, d], 0.02));
        specs.push((n("mlp.down_proj.weight"), vec![d, s.ffn], 0.02));
    }
    // The safetensors layout: an 8-byte header length, the JSON header (padded with spaces to
    // 8 bytes), then each tensor's bytes at its offsets.
    let mut header = serde_json::Map::new();
    header.insert("__metadata__".into(), serde_json::json!({"format": "pt"}));
    let mut offset = 0usize;
    for (name, shape, _) in &specs {
        let n = 2 * shape.iter().product::<usize>();
        header.insert(
            name.clone(),
            serde_json::json!({"dtype": "BF16", "shape": shape, "data_offsets": [offset, offset + n]}),
        );
        offset += n;
    }
    let mut text = serde_json::to_string(&header).unwrap();
    while !text.len().is_multiple_of(8) {
        text.push(' ');
    }
    let start = 8 + text.len();
    let mut bytes = Vec::with_capacity(start + offset);
    bytes.extend_from_slice(&(text.len() as u64).to_le_bytes());
    bytes.extend_from_slice(text.as_bytes());
    let mut state = 0x9E37_79B9_7F4A_7C15u64;
    for (_, shape, spread) in &specs {
        let n: usize = shape.iter().product();
        let half_width = spread * 3f32.sqrt();
        for _ in 0..n {
            let v = if *spread == 0.0 {
                1.0
            } else {
                state ^= state << 13;
                state ^= state >> 7;
                state ^= state << 17;
                ((state >> 40) as f32 / (1u64 << 24) as f32 * 2.0 - 1.0) * half_width
            };
            bytes.extend_from_slice(&((v.to_bits() >> 16) as u16).to_le_bytes());
        }
    }
    assert_eq!(bytes.len(), start + offset);
    let config = format!(
        r#"{{"model_type": "{}", "architectures": ["{}"], "vocab_size": {}, "hidden_size": {d},
        "intermediate_size": {}, "num_hidden_layers": {}, "num_attention_heads": {},
        "num_key_value_heads": {}, "max_position_embeddings": {}, "rms_norm_eps": 1e-05,
        "rope_theta": {}, "tie_word_embeddings": true, "torch_dtype": "bfloat16",
        "bos_token_id": 1, "eos_token_id": 2}}"#,
        s.model_type,
        if biases { "Qwen2ForCausalLM" } else { "LlamaForCausalLM" },
        s.vocab,
        s.ffn,
        s.layers,
        s.heads,
        s.kv_heads,
        s.positions,
        s.rope_theta,
    );
    tunelab::hub::ModelFiles {
        config: config.into_bytes(),
        tokenizer,
        weights: bytes,
        extra: Default::default(),
    }
}
