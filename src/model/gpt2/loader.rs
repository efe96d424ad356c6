//! GPT-2's Hugging Face names (`transformer.h.{i}.attn.c_attn`, ...): loading, with the token
//! embeddings split into chunks that fit a storage binding, and export back to one matrix.

use burn::prelude::*;

use super::{Gpt2, Gpt2Block};
use crate::model::config::Gpt2Config;
use crate::model::layers::Exporter;
use crate::model::weights::{Precision, WeightFiles, Weights};
use crate::model::ModelError;

impl Gpt2 {
    pub const PREFIX: &'static str = "transformer.";

    /// Loads the model, splitting the token embeddings into chunks of at most
    /// `max_binding_bytes` (use `u64::MAX` where there is no limit), in `precision` on a GPU.
    pub fn load(
        w: &Weights,
        config: &Gpt2Config,
        max_binding_bytes: u64,
        precision: Precision,
    ) -> Self {
        // On a GPU that computes in f16, matrices in f16 (with `Precision::Auto`); on the CPU
        // each output's weights as one row, for decoding's dot products.
        w.keep_half(precision);
        w.keep_output_rows();
        let d = config.n_embd;
        let eps = config.layer_norm_epsilon;
        let blocks = (0..config.n_layer)
            .map(|i| {
                let h = w.pp("h").pp(i);
                Gpt2Block {
                    ln_1: h.pp("ln_1").layer_norm(d, eps),
                    c_attn: h.pp("attn.c_attn").conv1d(d, 3 * d),
                    c_proj: h.pp("attn.c_proj").conv1d(d, d),
                    ln_2: h.pp("ln_2").layer_norm(d, eps),
                    c_fc: h.pp("mlp.c_fc").conv1d(d, config.n_inner),
                    mlp_proj: h.pp("mlp.c_proj").conv1d(config.n_inner, d),
                    n_head: config.n_head,
                    activation: config.activation,
                }
            })
            .collect();
        Self {
            wte: w
                .pp("wte")
                .vocab_rows("weight", [config.vocab_size, d], max_binding_bytes),
            wpe: w.pp("wpe").embedding(config.n_positions, d),
            blocks,
            ln_f: w.pp("ln_f").layer_norm(d, eps),
            config: config.clone(),
        }
    }

    /// Writes the tensors with transformers' names (the LM head stays tied: no `lm_head`).
    pub fn export(&self, out: &mut Exporter) {
        let mut base = out.pp(Self::PREFIX);
        base.put("wte.weight", self.wte.full());
        base.pp("wpe").embedding(&self.wpe);
        let mut h = base.pp("h");
        for (i, b) in self.blocks.iter().enumerate() {
            let mut at = h.pp(i);
            at.pp("ln_1").layer_norm(&b.ln_1);
            at.pp("attn.c_attn").conv1d(&b.c_attn);
            at.pp("attn.c_proj").conv1d(&b.c_proj);
            at.pp("ln_2").layer_norm(&b.ln_2);
            at.pp("mlp.c_fc").conv1d(&b.c_fc);
            at.pp("mlp.c_proj").conv1d(&b.mlp_proj);
        }
        base.pp("ln_f").layer_norm(&self.ln_f);
    }

    /// A GPT-2 checkpoint, its token embeddings in chunks of at most `max_binding_bytes`, in
    /// `precision` on a GPU.
    pub fn from_checkpoint<'a>(
        bytes: impl Into<WeightFiles<'a>>,
        config: &Gpt2Config,
        max_binding_bytes: u64,
        device: &Device,
        precision: Precision,
    ) -> Result<Self, ModelError> {
        Weights::load(bytes, Self::PREFIX, config.parameters(), device, |w| {
            Self::load(w, config, max_binding_bytes, precision)
        })
    }
}
