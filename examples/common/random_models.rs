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
