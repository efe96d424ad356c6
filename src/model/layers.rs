//! Building burn layers from Hugging Face tensors, and reading them back for export.

use burn::module::Param;
use burn::nn::{Embedding, LayerNorm, LayerNormConfig, Linear};
use burn::prelude::*;

use super::weights::{HostTensors, Weights};
use super::ModelError;

/// A `torch.nn.Linear` (weight stored `[out, in]`) as a burn `Linear` (weight `[in, out]`).
pub fn linear(w: &Weights, name: &str, d_in: usize, d_out: usize) -> Linear {
    let weight = w
        .tensor(&format!("{name}.weight"), [d_out, d_in])
        .transpose();
    let bias = w.tensor(&format!("{name}.bias"), [d_out]);
    Linear {
        weight: Param::from_tensor(weight),
        bias: Some(Param::from_tensor(bias)),
    }
}

/// Several `torch.nn.Linear` of the same input fused into one (outputs concatenated), so that
/// one matmul computes them all (BERT's query, key and value).
pub fn fused_linear(w: &Weights, names: &[&str], d_in: usize, d_out: usize) -> Linear {
    let weights = names
        .iter()
        .map(|n| w.tensor(&format!("{n}.weight"), [d_out, d_in]).transpose())
        .collect();
    let biases = names
        .iter()
        .map(|n| w.tensor(&format!("{n}.bias"), [d_out]))
        .collect();
    Linear {
        weight: Param::from_tensor(Tensor::cat(weights, 1)),
        bias: Some(Param::from_tensor(Tensor::cat(biases, 0))),
    }
}

/// GPT-2's `Conv1D` (weight stored `[in, out]`, y = x W + b) as a burn `Linear`.
pub fn conv1d(w: &Weights, name: &str, d_in: usize, d_out: usize) -> Linear {
    Linear {
        weight: Param::from_tensor(w.tensor(&format!("{name}.weight"), [d_in, d_out])),
        bias: Some(Param::from_tensor(
            w.tensor(&format!("{name}.bias"), [d_out]),
        )),
    }
}

/// A LayerNorm from `{name}.weight` / `{name}.bias`.
pub fn layer_norm(w: &Weights, name: &str, d: usize, eps: f64) -> LayerNorm {
    let mut ln = LayerNormConfig::new(d).with_epsilon(eps).init(w.device());
    ln.gamma = Param::from_tensor(w.tensor(&format!("{name}.weight"), [d]));
    ln.beta = Some(Param::from_tensor(w.tensor(&format!("{name}.bias"), [d])));
    ln
}

pub fn embedding(w: &Weights, name: &str, n: usize, d: usize) -> Embedding {
    Embedding {
        weight: Param::from_tensor(w.tensor(&format!("{name}.weight"), [n, d])),
    }
}

/// Collects tensors for `model.safetensors`; [`Exporter::read`] brings them to the host (async,
/// so it works on WebGPU in the browser).
#[derive(Default)]
pub struct Exporter {
    pending: Vec<(String, Vec<usize>, Tensor<1>)>,
}

impl Exporter {
    pub fn put<const D: usize>(&mut self, name: &str, t: Tensor<D>) {
        let shape = t.dims().to_vec();
        let n: usize = shape.iter().product();
        self.pending.push((name.to_string(), shape, t.reshape([n])));
    }

    /// A burn `Linear` as a `torch.nn.Linear` (`[out, in]`).
    pub fn linear(&mut self, name: &str, l: &Linear) {
        self.put(&format!("{name}.weight"), l.weight.val().transpose());
        if let Some(b) = &l.bias {
            self.put(&format!("{name}.bias"), b.val());
        }
    }

    /// A GPT-2 `Conv1D` (`[in, out]`, as burn stores it).
    pub fn conv1d(&mut self, name: &str, l: &Linear) {
        self.put(&format!("{name}.weight"), l.weight.val());
        if let Some(b) = &l.bias {
            self.put(&format!("{name}.bias"), b.val());
        }
    }

    /// A fused linear split back into its parts.
    pub fn fused_linear(&mut self, names: &[&str], l: &Linear) {
        let w = l.weight.val();
        let [_, total] = w.dims();
        let size = total / names.len();
        for (i, n) in names.iter().enumerate() {
            self.put(
                &format!("{n}.weight"),
                w.clone().narrow(1, i * size, size).transpose(),
            );
            if let Some(b) = &l.bias {
                self.put(&format!("{n}.bias"), b.val().narrow(0, i * size, size));
            }
        }
    }

    pub fn layer_norm(&mut self, name: &str, ln: &LayerNorm) {
        self.put(&format!("{name}.weight"), ln.gamma.val());
        if let Some(b) = &ln.beta {
            self.put(&format!("{name}.bias"), b.val());
        }
    }

    pub fn embedding(&mut self, name: &str, e: &Embedding) {
        self.put(&format!("{name}.weight"), e.weight.val());
    }

    /// Reads every tensor back to the host.
    pub async fn read(self) -> Result<HostTensors, ModelError> {
        let mut out = HostTensors::new();
        for (name, shape, t) in self.pending {
            let values = super::read_f32(t)
                .await
                .map_err(|e| ModelError::Weights(format!("{name}: {e}")))?;
            out.insert(name, (shape, values));
        }
        Ok(out)
    }
}
