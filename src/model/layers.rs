//! The shared pieces of the models: burn layers built from Hugging
//! Face tensors (through a [`WeightPath`]), and the [`Exporter`] that writes them back under the
//! same names.

use std::fmt::Display;

use super::config::RopeScaling;
use super::kernels;
use super::weights::{join, HostTensors, WeightPath};
use super::ModelError;
use burn::module::Param;
use burn::nn::{Embedding, Linear};
use burn::prelude::*;
use burn::tensor::DType;

/// `torch.nn.LayerNorm` over the last dimension: burn's, with the epsilon readable, and one fused
/// kernel on a GPU where one applies ([`kernels::layer_norm`]).
#[derive(Module, Debug)]
pub struct LayerNorm {
    pub gamma: Param<Tensor<1>>,
    /// Zeros that never train when the layer has no bias (`bias=False`, ModernBERT's).
    pub beta: Param<Tensor<1>>,
    #[module(skip)]
    pub epsilon: f64,
    #[module(skip)]
    pub with_bias: bool,
}

impl LayerNorm {
    pub fn forward<const D: usize>(&self, x: Tensor<D>) -> Tensor<D> {
        kernels::layer_norm(x, self.gamma.val(), self.beta.val(), self.epsilon)
    }

    /// [`LayerNorm::forward`] written in `dtype` ([`kernels::norm_into`]).
    pub fn forward_to<const D: usize>(&self, x: Tensor<D>, dtype: DType) -> Tensor<D> {
        let beta = Some(self.beta.val());
        kernels::norm_into(x, self.gamma.val(), beta, self.epsilon, dtype)
    }
}

impl WeightPath<'_, '_> {
    /// A `torch.nn.Linear` (weight stored `[out, in]`) as a burn `Linear` (weight `[in, out]`).
    pub fn linear(&self, d_in: usize, d_out: usize) -> Linear {
        let weight = self.transposed("weight", [d_out, d_in]);
        let bias = self.tensor("bias", [d_out]);
        Linear {
            weight: Param::from_tensor(weight),
            bias: Some(Param::from_tensor(bias)),
        }
    }

    /// Several `torch.nn.Linear` under this path (`parts`, same input) fused into one, outputs
    /// concatenated, so that one matmul computes them all (BERT's query, key and value). The
    /// weights are read first, then the biases.
    pub fn fused_linear(&self, parts: &[&str], d_in: usize, d_out: usize) -> Linear {
        let weights = parts
            .iter()
            .map(|p| self.pp(p).transposed("weight", [d_out, d_in]))
            .collect();
        let biases = parts
            .iter()
            .map(|p| self.pp(p).tensor("bias", [d_out]))
            .collect();
        Linear {
            weight: Param::from_tensor(Tensor::cat(weights, 1)),
            bias: Some(Param::from_tensor(Tensor::cat(biases, 0))),
        }
    }

    /// GPT-2's `Conv1D` (weight stored `[in, out]`, y = x W + b) as a burn `Linear`.
    pub fn conv1d(&self, d_in: usize, d_out: usize) -> Linear {
        Linear {
            weight: Param::from_tensor(self.in_out("weight", [d_in, d_out])),
            bias: Some(Param::from_tensor(self.tensor("bias", [d_out]))),
        }
    }

    /// A LayerNorm from `weight` / `bias`.
    pub fn layer_norm(&self, d: usize, eps: f64) -> LayerNorm {
        LayerNorm {
            gamma: Param::from_tensor(self.tensor("weight", [d])),
            beta: Param::from_tensor(self.tensor("bias", [d])),
            epsilon: eps,
            with_bias: true,
        }
    }

    /// A LayerNorm from `weight` alone (`bias=False`): its bias is zeros that do not train.
    pub fn layer_norm_without_bias(&self, d: usize, eps: f64) -> LayerNorm {
        let zeros = Tensor::<1>::zeros([d], self.device());
        LayerNorm {
            gamma: Param::from_tensor(self.tensor("weight", [d])),
            beta: Param::from_tensor(zeros).set_require_grad(false),
            epsilon: eps,
            with_bias: false,
        }
    }

    /// A `torch.nn.Linear` with or without its bias (`bias=False`).
    pub fn linear_with(&self, d_in: usize, d_out: usize, bias: bool) -> Linear {
        if bias {
            return self.linear(d_in, d_out);
        }
        Linear {
            weight: Param::from_tensor(self.transposed("weight", [d_out, d_in])),
            bias: None,
        }
    }

    /// An embedding table `[n, d]` from `weight`.
    /// In f32 whatever the precision (a decoder's position table is small, and adds to its
    /// residual stream, which is f32).
    pub fn embedding(&self, n: usize, d: usize) -> Embedding {
        Embedding {
            weight: Param::from_tensor(self.tensor("weight", [n, d])),
        }
    }
}

/// Collects tensors for `model.safetensors`; [`Exporter::read`] brings them to the host (async,
/// so it works on WebGPU in the browser). Names are built as on the loading side:
/// `out.pp("bert.").pp("encoder.layer").pp(0).pp("output.dense").linear(&l)`.
#[derive(Default)]
pub struct Exporter {
    pending: Vec<(String, Vec<usize>, Tensor<1>)>,
}

impl Exporter {
    /// Adds the tensor `name` as it is.
    pub fn put<const D: usize>(&mut self, name: &str, t: Tensor<D>) {
        let shape = t.dims().to_vec();
        let n: usize = shape.iter().product();
        self.pending.push((name.to_string(), shape, t.reshape([n])));
    }

    /// The names under `name`.
    pub fn pp(&mut self, name: impl Display) -> ExportPath<'_> {
        ExportPath {
            path: name.to_string(),
            out: self,
        }
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

/// A place in the exported name tree, from [`Exporter::pp`]; the mirror of [`WeightPath`].
pub struct ExportPath<'e> {
    out: &'e mut Exporter,
    path: String,
}

impl ExportPath<'_> {
    /// One level down: `{path}.{name}`.
    pub fn pp(&mut self, name: impl Display) -> ExportPath<'_> {
        ExportPath {
            path: join(&self.path, name),
            out: &mut *self.out,
        }
    }

    /// Adds `{path}.{name}`.
    pub fn put<const D: usize>(&mut self, name: &str, t: Tensor<D>) {
        self.out.put(&join(&self.path, name), t);
    }

    /// A burn `Linear` as a `torch.nn.Linear` (`[out, in]`).
    pub fn linear(&mut self, l: &Linear) {
        self.put("weight", l.weight.val().transpose());
        if let Some(b) = &l.bias {
            self.put("bias", b.val());
        }
    }

    /// A fused linear split back into its `parts` under this path.
    pub fn fused_linear(&mut self, parts: &[&str], l: &Linear) {
        let w = l.weight.val();
        let [_, total] = w.dims();
        let size = total / parts.len();
        for (i, p) in parts.iter().enumerate() {
            let mut part = self.pp(p);
            part.put("weight", w.clone().narrow(1, i * size, size).transpose());
            if let Some(b) = &l.bias {
                part.put("bias", b.val().narrow(0, i * size, size));
            }
        }
    }

    /// A GPT-2 `Conv1D` (`[in, out]`, as burn stores it).
    pub fn conv1d(&mut self, l: &Linear) {
        self.put("weight", l.weight.val());
        if let Some(b) = &l.bias {
            self.put("bias", b.val());
        }
    }

    pub fn layer_norm(&mut self, ln: &LayerNorm) {
        self.put("weight", ln.gamma.val());
        if ln.with_bias {
            self.put("bias", ln.beta.val());
        }
    }

    pub fn embedding(&mut self, e: &Embedding) {
        self.put("weight", e.weight.val());
    }
}

/// Rotary position tables (cos, sin) `[1, 1, t, dh]` for positions `past..past + t`, computed
/// in f32 as transformers does: `inv_freq = 1 / theta^(2j / dh)`, the angles
/// `position * inv_freq` repeated over both halves of the head.
pub fn rope_tables(theta: f64, dh: usize, past: usize, t: usize, device: &Device) -> Rope {
    rope_tables_scaled(theta, &RopeScaling::None, dh, past, t, device)
}

/// The rotary frequencies and the factor on cos and sin for `scaling`, in f32 where
/// transformers computes in float32 (its `ROPE_INIT_FUNCTIONS`).
pub fn rope_frequencies(theta: f64, scaling: &RopeScaling, dh: usize) -> (Vec<f32>, f32) {
    let half = dh / 2;
    let base = |j: usize| (theta as f32).powf((2 * j) as f32 / dh as f32);
    let plain: Vec<f32> = (0..half).map(|j| 1.0 / base(j)).collect();
    match *scaling {
        RopeScaling::None => (plain, 1.0),
        RopeScaling::Linear { factor } => (plain.iter().map(|f| f / factor as f32).collect(), 1.0),
        RopeScaling::Llama3 {
            factor,
            low_freq_factor,
            high_freq_factor,
            original,
        } => {
            let (factor, low, high, old) = (
                factor as f32,
                low_freq_factor as f32,
                high_freq_factor as f32,
                original as f32,
            );
            let (low_wavelen, high_wavelen) = (old / low, old / high);
            let scaled = plain
                .iter()
                .map(|&f| {
                    let wavelen = 2.0 * std::f32::consts::PI / f;
                    let divided = if wavelen > low_wavelen { f / factor } else { f };
                    if wavelen < high_wavelen || wavelen > low_wavelen {
                        return divided;
                    }
                    let smooth = (old / wavelen - low) / (high - low);
                    (1.0 - smooth) * divided / factor + smooth * divided
                })
                .collect();
            (scaled, 1.0)
        }
        RopeScaling::Yarn {
            factor,
            attention_factor,
            beta_fast,
            beta_slow,
            original,
            truncate,
        } => {
            let correction = |rotations: f64| {
                (dh as f64 * (original / (rotations * 2.0 * std::f64::consts::PI)).ln())
                    / (2.0 * theta.ln())
            };
            let (mut low, mut high) = (correction(beta_fast), correction(beta_slow));
            if truncate {
                (low, high) = (low.floor(), high.ceil());
            }
            let (low, mut high) = (low.max(0.0) as f32, high.min(dh as f64 - 1.0) as f32);
            if low == high {
                high += 0.001;
            }
            let scaled = (0..half)
                .map(|j| {
                    let ramp = ((j as f32 - low) / (high - low)).clamp(0.0, 1.0);
                    let keep = 1.0 - ramp;
                    let pos = base(j);
                    let interpolated = 1.0 / (factor as f32 * pos);
                    interpolated * (1.0 - keep) + (1.0 / pos) * keep
                })
                .collect();
            (scaled, attention_factor as f32)
        }
    }
}

/// [`rope_tables`] with the frequencies of `scaling` (and its factor on cos and sin).
pub fn rope_tables_scaled(
    theta: f64,
    scaling: &RopeScaling,
    dh: usize,
    past: usize,
    t: usize,
    device: &Device,
) -> Rope {
    let (inv, factor) = rope_frequencies(theta, scaling, dh);
    let (mut cos, mut sin) = (Vec::with_capacity(t * dh), Vec::with_capacity(t * dh));
    for p in past..past + t {
        for _ in 0..2 {
            for &f in &inv {
                let angle = p as f32 * f;
                cos.push(angle.cos() * factor);
                sin.push(angle.sin() * factor);
            }
        }
    }
    let up = |v: Vec<f32>| Tensor::<4>::from_data(TensorData::new(v, [1, 1, t, dh]), device);
    (up(cos), up(sin))
}

/// (cos, sin) tables of [`rope_tables`].
pub type Rope = (Tensor<4>, Tensor<4>);

/// `x * cos + rotate_half(x) * sin` on `[b, heads, t, dh]` (`rotate_half`: the halves of the
/// last dimension swapped, the second negated).
pub fn rotary(x: Tensor<4>, (cos, sin): &Rope) -> Tensor<4> {
    kernels::rotary(x, cos, sin)
}

/// A `[vocab, d]` matrix (token embeddings, an LM head) kept as row chunks of at most a storage
/// binding each: WebGPU binds at most `maxStorageBufferBindingSize` bytes of a buffer to a
/// kernel (128 MiB by default), and Qwen2.5's 151,936 × 896 table is 545 MB. The lookup gathers
/// from each chunk; the projection concatenates the chunks' products.
#[derive(Module, Debug)]
pub struct VocabRows {
    pub chunks: Vec<Param<Tensor<2>>>,
}

impl VocabRows {
    /// `[vocab, d]` host values (f32, or f16 kept so on a GPU: `dtype`) in chunks of at most
    /// `max_binding_bytes` (at least one row each), each put on the device on its own: the
    /// whole matrix is never one device buffer. One chunk takes the values as they are (no
    /// copy: on the CPU the tensor keeps them).
    pub fn from_host<E: burn::tensor::Element>(
        values: Vec<E>,
        [vocab, d]: [usize; 2],
        max_binding_bytes: u64,
        device: &Device,
        dtype: DType,
    ) -> Self {
        let row_bytes = (d.max(1) * std::mem::size_of::<E>()) as u64;
        let rows = ((max_binding_bytes / row_bytes).max(1) as usize).min(vocab.max(1));
        let put = |part: Vec<E>, n: usize| {
            Param::from_tensor(Tensor::from_data(
                TensorData::new(part, [n, d]),
                (device, dtype),
            ))
        };
        if rows >= vocab {
            return Self {
                chunks: vec![put(values, vocab)],
            };
        }
        let chunks = (0..vocab)
            .step_by(rows)
            .map(|start| {
                let n = rows.min(vocab - start);
                put(values[start * d..(start + n) * d].to_vec(), n)
            })
            .collect();
        Self { chunks }
    }

    /// The rows as one matrix `[vocab, d]` (export).
    pub fn full(&self) -> Tensor<2> {
        if self.chunks.len() == 1 {
            return self.chunks[0].val();
        }
        Tensor::cat(self.chunks.iter().map(|c| c.val()).collect(), 0)
    }

    /// The matrix's type: f32, or f16 ([`super::weights::Weights::keep_half`]).
    pub fn dtype(&self) -> DType {
        self.chunks[0].val().dtype()
    }

    /// Rows `ids` `[b, t]` -> `[b, t, d]` in `dtype` (the model's activations), gathered across
    /// the chunks.
    pub fn lookup(&self, ids: Tensor<2, Int>, dtype: DType) -> Tensor<3> {
        let [b, t] = ids.dims();
        let flat = ids.reshape([b * t]);
        let d = self.chunks[0].dims()[1];
        if self.chunks.len() == 1 {
            let rows = self.chunks[0].val().select(0, flat);
            return kernels::cast_to(rows, dtype).reshape([b, t, d]);
        }
        let mut out: Option<Tensor<2>> = None;
        let mut start = 0i64;
        for chunk in &self.chunks {
            let chunk = chunk.val();
            let n = chunk.dims()[0] as i64;
            let local = flat.clone().sub_scalar(start);
            let inside = local
                .clone()
                .greater_equal_elem(0)
                .bool_and(local.clone().lower_elem(n));
            let rows = kernels::as_f32(chunk.select(0, local.clamp(0, n - 1)))
                .mul(inside.float().reshape([b * t, 1]));
            out = Some(match out {
                Some(acc) => acc + rows,
                None => rows,
            });
            start += n;
        }
        let rows = out.expect("at least one chunk");
        kernels::cast_to(rows, dtype).reshape([b, t, d])
    }

    /// `h` `[n, d]` times the matrix's transpose: `[n, vocab]` (an LM head's logits), in f32
    /// whatever `h`'s type.
    pub fn project(&self, h: Tensor<2>) -> Tensor<2> {
        let parts: Vec<Tensor<2>> = self
            .chunks
            .iter()
            .map(|c| kernels::matmul_rows_f32(h.clone(), c.val().transpose()))
            .collect();
        if parts.len() == 1 {
            parts.into_iter().next().expect("one part")
        } else {
            Tensor::cat(parts, 1)
        }
    }
}

impl WeightPath<'_, '_> {
    /// The matrix `{path}.{name}` `[vocab, d]` as [`VocabRows`] of at most `max_binding_bytes`
    /// (in f16 where [`super::weights::Weights::keep_half`] holds and the file has it in half
    /// precision).
    pub fn vocab_rows(&self, name: &str, shape: [usize; 2], max_binding_bytes: u64) -> VocabRows {
        let device = self.device();
        if let Some(values) = self.host_half(name, &shape) {
            return VocabRows::from_host(values, shape, max_binding_bytes, device, DType::F16);
        }
        let values = self.host(name, &shape);
        VocabRows::from_host(values, shape, max_binding_bytes, device, DType::F32)
    }
}
