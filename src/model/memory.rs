//! Whether a language model fits where it would run, said with the numbers before its weights
//! are downloaded (from `config.json`) and again before they are read (from the files' sizes).
//!
//! In the browser the engine is WebAssembly: one linear memory of at most 4 GiB (65,536 pages
//! of 64 KiB). Loading holds the checkpoint's bytes once (the files as they arrived) and turns
//! them into tensors one at a time, each converted to f32 on its own (`weights.rs`):
//! - on the CPU the converted values become the tensor (no further copy; a linear layer's
//!   weight is laid out transposed through one more buffer of its size), so the peak is the
//!   files, every weight in f32, the key/value cache and the largest linear layer;
//! - on WebGPU each tensor goes to the GPU and its values are dropped, so the peak is the files
//!   and the largest tensor (the token embeddings) with one of its row chunks.

use super::config::{Arch, ModelConfig};
use crate::math::human_bytes;

/// The most memory a WebAssembly (32-bit) engine can have.
pub const WASM_MEMORY: u64 = 4 << 30;

/// Kept for the engine itself: its code and stacks, the tokenizer, the page's data, the
/// allocator's slack, and the packed copies of weights the CPU's product keeps
/// ([`PACKED_WEIGHTS_BUDGET`]).
pub const ENGINE_RESERVE: u64 = (384 << 20) + PACKED_WEIGHTS_BUDGET as u64;

/// The most bytes of packed weights the CPU's product keeps between calls (`flex::matmul_weight`):
/// all of an encoder of all-MiniLM-L6-v2's size (42 MB), the first layers of a bigger model.
pub const PACKED_WEIGHTS_BUDGET: usize = 64 << 20;

/// The context the key/value cache is counted for.
pub const CONTEXT_TOKENS: u64 = 2048;

/// What a decoder needs while it loads and generates.
#[derive(Debug, Clone, PartialEq)]
pub struct Footprint {
    pub parameters: u64,
    /// The checkpoint's files, as downloaded.
    pub file_bytes: u64,
    /// What one tensor needs beside the rest while it is converted: on the CPU the largest
    /// linear layer's transposed copy; on WebGPU the token embeddings in f32 and one chunk.
    pub largest_tensor: u64,
    /// The weights as the model computes with them (f32).
    pub weight_bytes: u64,
    /// The key/value cache for [`CONTEXT_TOKENS`] tokens.
    pub cache_bytes: u64,
    /// The weights and the cache live on a GPU, not in the engine's memory.
    pub on_gpu: bool,
}

/// Bytes per weight of the checkpoint's files, from `config.json`'s `torch_dtype` (transformers
/// 4) or `dtype` (5): 2 for bfloat16 and float16, else 4.
pub fn file_bytes_per_weight(config: &ModelConfig) -> u64 {
    let dtype = ["torch_dtype", "dtype"]
        .iter()
        .find_map(|k| config.raw.get(*k).and_then(|v| v.as_str()));
    match dtype {
        Some("bfloat16" | "float16" | "half") => 2,
        _ => 4,
    }
}

impl Footprint {
    /// A decoder's needs: `file_bytes` when the files' sizes are known, else estimated from the
    /// weights and `config.json`'s dtype. `None` for an encoder.
    pub fn for_decoder(
        config: &ModelConfig,
        file_bytes: Option<u64>,
        on_gpu: bool,
    ) -> Option<Self> {
        let (parameters, table, linear, kv_per_token) = match &config.arch {
            Arch::Gpt2(g) => (
                g.parameters(),
                (g.vocab_size * g.n_embd) as u64,
                (g.n_embd * g.n_inner.max(3 * g.n_embd)) as u64,
                (g.n_layer * 2 * g.n_embd) as u64,
            ),
            Arch::Llama(l) => (
                l.parameters(),
                (l.vocab_size * l.hidden_size) as u64,
                (l.hidden_size * l.intermediate_size.max(l.num_heads * l.head_dim)) as u64,
                (l.num_layers * 2 * l.num_kv_heads * l.head_dim) as u64,
            ),
            Arch::Encoder(_) => return None,
        };
        Some(Self {
            parameters,
            file_bytes: file_bytes.unwrap_or(parameters * file_bytes_per_weight(config)),
            largest_tensor: if on_gpu { 2 * table * 4 } else { linear * 4 },
            weight_bytes: parameters * 4,
            cache_bytes: kv_per_token * 4 * CONTEXT_TOKENS,
            on_gpu,
        })
    }

    /// The engine's memory at its peak.
    pub fn engine_peak(&self) -> u64 {
        let resident = if self.on_gpu {
            0
        } else {
            self.weight_bytes + self.cache_bytes
        };
        self.file_bytes + self.largest_tensor + resident
    }

    /// An error with the numbers when the peak does not fit in the engine's memory beside
    /// `held` bytes of the models it keeps already.
    pub fn check(&self, held: u64) -> Result<(), String> {
        let available = WASM_MEMORY.saturating_sub(ENGINE_RESERVE + held);
        let peak = self.engine_peak();
        if peak <= available {
            return Ok(());
        }
        let b = |n: u64| human_bytes(n as f64);
        let mut parts = vec![format!(
            "{} of weight files while they load",
            b(self.file_bytes)
        )];
        if !self.on_gpu {
            parts.push(format!("{} of weights in f32", b(self.weight_bytes)));
            parts.push(format!(
                "{} of key/value cache for {CONTEXT_TOKENS} tokens",
                b(self.cache_bytes)
            ));
        }
        parts.push(format!(
            "{} for the largest tensor as it is converted",
            b(self.largest_tensor)
        ));
        let others = if held > 0 {
            format!(", and {} of it holds the other models loaded", b(held))
        } else {
            String::new()
        };
        let advice = if self.on_gpu {
            "choose a smaller model, or one saved in bfloat16 or float16 (half the file)"
        } else {
            "choose WebGPU in the settings (the weights then live on the GPU), or a smaller model"
        };
        Err(format!(
            "this model ({:.0} M weights) needs about {} of the engine's memory {}: {}; \
             WebAssembly gives the engine at most {} ({} is its own){others}: {advice}",
            self.parameters as f64 / 1e6,
            b(peak),
            if self.on_gpu {
                "on WebGPU"
            } else {
                "on the CPU"
            },
            parts.join(", "),
            b(WASM_MEMORY),
            b(ENGINE_RESERVE),
        ))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// config.json as the Hub has it for each model (the fields the decoder reads).
    fn config(text: &str) -> ModelConfig {
        ModelConfig::from_json(text).unwrap()
    }

    const QWEN25_05B: &str = r#"{"architectures": ["Qwen2ForCausalLM"], "model_type": "qwen2",
        "vocab_size": 151936, "hidden_size": 896, "intermediate_size": 4864,
        "num_hidden_layers": 24, "num_attention_heads": 14, "num_key_value_heads": 2,
        "max_position_embeddings": 32768, "rms_norm_eps": 1e-06, "rope_theta": 1000000.0,
        "tie_word_embeddings": true, "torch_dtype": "bfloat16", "bos_token_id": 151643,
        "eos_token_id": 151645}"#;

    const QWEN3_06B: &str = r#"{"architectures": ["Qwen3ForCausalLM"], "model_type": "qwen3",
        "vocab_size": 151936, "hidden_size": 1024, "intermediate_size": 3072, "head_dim": 128,
        "num_hidden_layers": 28, "num_attention_heads": 16, "num_key_value_heads": 8,
        "max_position_embeddings": 40960, "rms_norm_eps": 1e-06, "rope_theta": 1000000,
        "tie_word_embeddings": true, "torch_dtype": "bfloat16", "bos_token_id": 151643,
        "eos_token_id": 151645}"#;

    #[test]
    fn half_a_billion_weights_fit_on_the_cpu_from_bfloat16_files() {
        let c = config(QWEN25_05B);
        let f = Footprint::for_decoder(&c, None, false).unwrap();
        // 494 M weights: 0.99 GB of bfloat16 files, 1.98 GB in f32, 25 KB of cache per token.
        assert_eq!(f.parameters, 494_032_768);
        assert_eq!(f.file_bytes, 2 * f.parameters);
        assert_eq!(f.cache_bytes, 24 * 2 * 2 * 64 * 4 * 2048);
        assert_eq!(
            f.engine_peak(),
            6 * f.parameters + f.cache_bytes + 4 * 896 * 4864
        );
        f.check(0).unwrap();
        // ... but not beside a 250 M-weight model kept in f32.
        let err = f.check(1_000_000_000).unwrap_err();
        assert!(
            err.contains("1.0 GB of it holds the other models loaded"),
            "{err}"
        );
        // Qwen3-0.6B: 1.2 GB of files, 2.4 GB of weights and 470 MB of cache (8 key/value heads
        // of 128) pass the 3.9 GB on the CPU; on WebGPU the engine holds the files and the
        // embeddings while they load.
        let c = config(QWEN3_06B);
        let f = Footprint::for_decoder(&c, None, false).unwrap();
        assert_eq!(f.parameters, 596_049_920);
        let err = f.check(0).unwrap_err();
        assert!(
            err.starts_with("this model (596 M weights) needs about 4.1 GB"),
            "{err}"
        );
        let f = Footprint::for_decoder(&c, None, true).unwrap();
        assert_eq!(f.engine_peak(), 2 * 596_049_920 + 2 * 4 * 151_936 * 1024);
        f.check(0).unwrap();
    }

    #[test]
    fn what_cannot_fit_is_refused_with_the_numbers() {
        // Qwen2.5-0.5B saved in float32: the 2 GB of files and 2 GB of weights do not fit.
        let c = config(&QWEN25_05B.replace("bfloat16", "float32"));
        let err = Footprint::for_decoder(&c, None, false)
            .unwrap()
            .check(0)
            .unwrap_err();
        assert_eq!(
            err,
            "this model (494 M weights) needs about 4.0 GB of the engine's memory on the CPU: \
             2.0 GB of weight files while they load, 2.0 GB of weights in f32, 50.3 MB of \
             key/value cache for 2048 tokens, 17.4 MB for the largest tensor as it is \
             converted; WebAssembly gives the engine at most 4.3 GB (469.8 MB is its own): \
             choose WebGPU in the settings (the weights then live on the GPU), or a smaller model"
        );
        // On WebGPU the weights live on the GPU: it fits.
        Footprint::for_decoder(&c, None, true)
            .unwrap()
            .check(0)
            .unwrap();
        // The files' real size, when known, counts instead of the estimate.
        let f = Footprint::for_decoder(&c, Some(3_900_000_000), true).unwrap();
        assert!(f.check(0).unwrap_err().contains("3.9 GB of weight files"));
        // Encoders are not counted here.
        let bert = config(
            r#"{"model_type": "bert", "vocab_size": 100, "hidden_size": 8,
            "num_hidden_layers": 1, "num_attention_heads": 2, "intermediate_size": 16,
            "max_position_embeddings": 16}"#,
        );
        assert!(Footprint::for_decoder(&bert, None, false).is_none());
    }
}
