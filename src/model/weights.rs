//! `model.safetensors` bytes -> burn tensors, by Hugging Face name.
//!
//! Read from bytes (no mmap, so it works in wasm). f32, f16 and bf16 are accepted and computed in
//! f32. Names are found with or without the architecture prefix (`bert.`, `distilbert.`,
//! `transformer.`), known buffers are ignored, and every missing, unexpected or mis-shaped tensor
//! is collected and reported by name in one error.

use std::cell::{Cell, RefCell};
use std::collections::{BTreeMap, BTreeSet};
use std::fmt::Display;

use burn::prelude::*;
use safetensors::{Dtype, SafeTensors};

use super::ModelError;

/// Buffers some checkpoints carry that hold no weights.
const IGNORED_SUFFIXES: &[&str] = &[
    "embeddings.position_ids",
    "embeddings.token_type_ids",
    "attn.bias",
    "attn.masked_bias",
];

/// Tensors of heads other than the one being loaded (for example the pre-training heads of
/// `bert-base-uncased` when it is loaded as a base for a classifier). Ignored unless a loader asks
/// for them by name.
const OTHER_HEADS: &[&str] = &[
    "cls.",
    "classifier.",
    "pre_classifier.",
    "qa_outputs.",
    "vocab_transform.",
    "vocab_layer_norm.",
    "vocab_projector.",
    "lm_head.",
    "pooler.",
    "bert.pooler.",
    "roberta.pooler.",
    "head.",
    "decoder.",
    "score.",
];

/// A checkpoint's safetensors files as (file name, bytes): `model.safetensors`, or the shards
/// `model.safetensors.index.json` names (a sharded checkpoint).
#[derive(Debug, Clone)]
pub struct WeightFiles<'a>(pub Vec<(&'a str, &'a [u8])>);

impl<'a> From<&'a [u8]> for WeightFiles<'a> {
    fn from(bytes: &'a [u8]) -> Self {
        Self(vec![("model.safetensors", bytes)])
    }
}

impl<'a> From<&'a Vec<u8>> for WeightFiles<'a> {
    fn from(bytes: &'a Vec<u8>) -> Self {
        Self::from(bytes.as_slice())
    }
}

/// One opened safetensors file.
struct Shard<'a> {
    file: &'a str,
    tensors: SafeTensors<'a>,
}

/// An opened checkpoint plus the bookkeeping of which tensors a model took.
pub struct Weights<'a> {
    shards: Vec<Shard<'a>>,
    /// Every tensor name -> its shard (the first that holds it).
    names: BTreeMap<String, usize>,
    /// The architecture prefix present in the file (`"bert."`), or empty.
    prefix: String,
    device: Device,
    /// Matrices go to the device in f16 ([`Weights::keep_half`]).
    half: Cell<bool>,
    /// Linear layers' weights keep each output's weights as one row on the CPU
    /// ([`Weights::keep_output_rows`]).
    output_rows: Cell<bool>,
    used: RefCell<BTreeSet<String>>,
    missing: RefCell<Vec<String>>,
    misshapen: RefCell<Vec<String>>,
    unsupported: RefCell<Vec<String>>,
}

impl<'a> Weights<'a> {
    /// Parses the safetensors headers of every file of `checkpoint`. `prefix` is the
    /// architecture prefix to accept (`"bert."`).
    pub fn from_bytes(
        checkpoint: impl Into<WeightFiles<'a>>,
        prefix: &str,
        device: &Device,
    ) -> Result<Self, ModelError> {
        let WeightFiles(files) = checkpoint.into();
        let mut shards = Vec::with_capacity(files.len());
        let mut names = BTreeMap::new();
        for (file, bytes) in files {
            if bytes.len() >= 15 && bytes[..15].eq_ignore_ascii_case(b"<!doctype html>") {
                return Err(ModelError::Weights(format!(
                    "{file} is an HTML page, not weights (a wrong URL or a login page?)"
                )));
            }
            let tensors = SafeTensors::deserialize(bytes).map_err(|e| {
                ModelError::Weights(format!(
                    "{file} is truncated or not a safetensors file ({} bytes): {e}",
                    bytes.len()
                ))
            })?;
            for name in tensors.names() {
                names.entry(name.to_string()).or_insert(shards.len());
            }
            shards.push(Shard { file, tensors });
        }
        let has_prefix = names.keys().any(|n| n.starts_with(prefix));
        Ok(Self {
            shards,
            names,
            prefix: if has_prefix && !prefix.is_empty() {
                prefix.to_string()
            } else {
                String::new()
            },
            device: device.clone(),
            half: Cell::new(false),
            output_rows: Cell::new(false),
            used: RefCell::default(),
            missing: RefCell::default(),
            misshapen: RefCell::default(),
            unsupported: RefCell::default(),
        })
    }

    /// Opens `bytes`, builds a model from them with `build`, then [`Weights::finish`]es: a
    /// whole checkpoint in one call, with every problem reported at once.
    ///
    /// `parameters` is how many weights the config describes ([`super::EncoderConfig::parameters`]):
    /// when it is far more than the file holds, the config is refused before anything is built,
    /// since the tensors the file lacks would be allocated (as zeros) only to be reported missing.
    pub fn load<T>(
        checkpoint: impl Into<WeightFiles<'a>>,
        prefix: &str,
        parameters: u64,
        device: &Device,
        build: impl FnOnce(&Weights<'a>) -> T,
    ) -> Result<T, ModelError> {
        let w = Self::from_bytes(checkpoint, prefix, device)?;
        let held: u64 = w
            .shards
            .iter()
            .flat_map(|s| s.tensors.tensors())
            .map(|(_, v)| v.shape().iter().product::<usize>() as u64)
            .sum();
        if parameters > 2 * held + (16 << 20) {
            let files = match w.shards.as_slice() {
                [one] => one.file.to_string(),
                all => format!("its {} safetensors files", all.len()),
            };
            return Err(ModelError::Mismatch(format!(
                "config.json describes a model of {} weights, {files} hold{} {}",
                count_text(parameters),
                if w.shards.len() == 1 { "s" } else { "" },
                count_text(held)
            )));
        }
        let model = build(&w);
        w.finish()?;
        Ok(model)
    }

    pub fn device(&self) -> &Device {
        &self.device
    }

    /// The tensors under `name` (candle's `VarBuilder::pp`): `w.pp("encoder").pp("layer").pp(3)`
    /// reads `encoder.layer.3.*`. [`WeightPath`] and the layer constructors in `layers.rs` take it
    /// from there.
    pub fn pp(&self, name: impl Display) -> WeightPath<'_, 'a> {
        WeightPath {
            weights: self,
            path: name.to_string(),
        }
    }

    /// Whether the file holds `name` (tried with the prefix first).
    pub fn contains(&self, name: &str) -> bool {
        self.resolve(name).is_some()
    }

    /// The shape the file gives `name`, if it holds it.
    pub fn shape_of(&self, name: &str) -> Option<Vec<usize>> {
        let full = self.resolve(name)?;
        self.view(&full).ok().map(|v| v.shape().to_vec())
    }

    fn resolve(&self, name: &str) -> Option<String> {
        let with = format!("{}{name}", self.prefix);
        if self.names.contains_key(&with) {
            Some(with)
        } else if self.names.contains_key(name) {
            Some(name.to_string())
        } else {
            None
        }
    }

    /// The tensor `full` (a name the file holds) as the file stores it.
    fn view(
        &self,
        full: &str,
    ) -> Result<safetensors::tensor::TensorView<'a>, safetensors::SafeTensorError> {
        let shard = self.names.get(full).copied().unwrap_or(0);
        self.shards[shard].tensors.tensor(full)
    }

    /// From here on, with [`Precision::Auto`] on a GPU that computes in f16 (WebGPU's
    /// `shader-f16`), matrices ([`Weights::matrix`]) go to the device in f16, whatever the file
    /// stores (f32 rounded to the nearest f16; a matrix with a value past f16's range stays
    /// f32): half the GPU memory and half the bytes each product reads. A decoder asks for it;
    /// the kernels read such weights as f32 and sum in f32. Natively `TUNELAB_F16=0` keeps
    /// f32.
    pub fn keep_half(&self, precision: Precision) {
        self.half
            .set(precision == Precision::Auto && half_on(&self.device));
    }

    /// From here on, on the CPU, linear layers' weights ([`WeightPath::transposed`],
    /// [`WeightPath::conv1d`]) keep each output's weights as one row, as `torch.nn.Linear`
    /// stores them (`[out, in]`), and the layer multiplies by a transposed view of that. A
    /// decoder asks for it: decoding multiplies one row at a time, and a dot product per weight
    /// row streams the weights faster than gemm reads a `[in, out]` matrix
    /// (`flex::matmul_transposed_weight`); longer inputs take the products that read any layout.
    /// Not for training: its gradients and optimiser take row-major weights.
    pub fn keep_output_rows(&self) {
        self.output_rows
            .set(crate::device::on_cpu(&self.device) && super::flex::enabled());
    }

    /// The tensor `name` as the file stores it, with its full name, checked against `shape`;
    /// `None` (recorded) when it is missing, unreadable or mis-shaped.
    fn stored(
        &self,
        name: &str,
        shape: &[usize],
    ) -> Option<(String, safetensors::tensor::TensorView<'a>)> {
        let Some(full) = self.resolve(name) else {
            self.missing.borrow_mut().push(name.to_string());
            return None;
        };
        self.used.borrow_mut().insert(full.clone());
        let view = match self.view(&full) {
            Ok(v) => v,
            Err(e) => {
                self.unsupported.borrow_mut().push(format!("{full}: {e}"));
                return None;
            }
        };
        if view.shape() != shape {
            self.misshapen.borrow_mut().push(format!(
                "{full}: the file has {:?}, the config implies {:?}",
                view.shape(),
                shape
            ));
            return None;
        }
        Some((full, view))
    }

    /// The tensor `name` as f16 host data when [`Weights::keep_half`] holds and the file stores
    /// it in f16, bf16 or f32 within f16's range; else `None` (and nothing is recorded).
    fn host_half(&self, name: &str, shape: &[usize]) -> Option<Vec<half::f16>> {
        if !self.half.get() {
            return None;
        }
        let full = self.resolve(name)?;
        let view = self.view(&full).ok()?;
        let dtype = view.dtype();
        if dtype == Dtype::F32 && view.shape() == shape {
            // Rounded only where every value stays finite (bf16 past f16's range is rare, f32
            // weights there rarer still: such a matrix stays f32).
            let values: Vec<half::f16> = view
                .data()
                .chunks_exact(4)
                .map(|c| half::f16::from_f32(f32::from_le_bytes([c[0], c[1], c[2], c[3]])))
                .collect();
            if values.iter().any(|v| v.is_infinite()) {
                return None;
            }
            self.stored(name, shape)?;
            return Some(values);
        }
        if !matches!(dtype, Dtype::F16 | Dtype::BF16) {
            return None;
        }
        let (_, view) = self.stored(name, shape)?;
        let bytes = view.data().chunks_exact(2);
        Some(match dtype {
            Dtype::F16 => bytes
                .map(|c| half::f16::from_le_bytes([c[0], c[1]]))
                .collect(),
            _ => bytes
                .map(|c| half::f16::from_f32(half::bf16::from_le_bytes([c[0], c[1]]).to_f32()))
                .collect(),
        })
    }

    /// The matrix `name` on the device: in f16 where [`Weights::keep_half`] holds (see there),
    /// else f32.
    pub fn matrix(&self, name: &str, shape: [usize; 2]) -> Tensor<2> {
        match self.host_half(name, &shape) {
            Some(values) => Tensor::from_data(
                TensorData::new(values, shape),
                (&self.device, burn::tensor::DType::F16),
            ),
            None => self.tensor(name, shape),
        }
    }

    /// The tensor `name` as f32 host data of the given shape. A missing or mis-shaped tensor is
    /// recorded and zeros come back, so that loading continues and every problem is reported.
    pub fn host(&self, name: &str, shape: &[usize]) -> Vec<f32> {
        let zeros = || vec![0.0; shape.iter().product()];
        let Some((full, view)) = self.stored(name, shape) else {
            return zeros();
        };
        match to_f32(view.dtype(), view.data()) {
            Some(v) => v,
            None => {
                self.unsupported.borrow_mut().push(format!(
                    "{full}: dtype {:?} (f32, f16 and bf16 are supported)",
                    view.dtype()
                ));
                zeros()
            }
        }
    }

    /// The tensor `name` on the device, with the shape checked.
    pub fn tensor<const D: usize>(&self, name: &str, shape: [usize; D]) -> Tensor<D> {
        let data = self.host(name, &shape);
        Tensor::from_data(TensorData::new(data, shape), &self.device)
    }

    /// Ends loading: an error naming every missing, mis-shaped, unreadable or unexpected tensor.
    /// Unexpected means: under the model's own prefix or layers, not taken, and not a known
    /// buffer or another task's head.
    pub fn finish(self) -> Result<(), ModelError> {
        self.finish_checking(false)
    }

    /// [`Weights::finish`] for a file every tensor of which must be taken (a PEFT adapter):
    /// other heads' tensors count as unexpected too.
    pub fn finish_strict(self) -> Result<(), ModelError> {
        self.finish_checking(true)
    }

    fn finish_checking(self, strict: bool) -> Result<(), ModelError> {
        let used = self.used.into_inner();
        let mut unexpected: Vec<String> = self
            .names
            .keys()
            .filter(|n| !used.contains(*n))
            .filter(|n| !IGNORED_SUFFIXES.iter().any(|s| n.ends_with(s)))
            .filter(|n| {
                let bare = n.strip_prefix(self.prefix.as_str()).unwrap_or(n);
                strict
                    || !OTHER_HEADS
                        .iter()
                        .any(|h| bare.starts_with(h) || n.starts_with(h))
            })
            .cloned()
            .collect();
        unexpected.sort();
        let mut problems = Vec::new();
        let list = |label: &str, items: &[String], problems: &mut Vec<String>| {
            if !items.is_empty() {
                let shown: Vec<&str> = items.iter().take(12).map(String::as_str).collect();
                let more = if items.len() > 12 {
                    format!(" and {} more", items.len() - 12)
                } else {
                    String::new()
                };
                problems.push(format!(
                    "{label} ({}): {}{more}",
                    items.len(),
                    shown.join(", ")
                ));
            }
        };
        list("missing", &self.missing.into_inner(), &mut problems);
        list("wrong shape", &self.misshapen.into_inner(), &mut problems);
        list("unreadable", &self.unsupported.into_inner(), &mut problems);
        list("unexpected", &unexpected, &mut problems);
        if problems.is_empty() {
            Ok(())
        } else {
            Err(ModelError::Mismatch(problems.join("; ")))
        }
    }
}

/// `path` and `name` joined by a dot. A path ending with a dot (an architecture prefix such as
/// `bert.`) or an empty one takes the name as it is.
pub fn join(path: &str, name: impl Display) -> String {
    if path.is_empty() || path.ends_with('.') {
        format!("{path}{name}")
    } else {
        format!("{path}.{name}")
    }
}

/// A place in a checkpoint's name tree, from [`Weights::pp`]. Its layers (`.linear(..)`,
/// `.layer_norm(..)`, ...) are built in `layers.rs`.
#[derive(Clone)]
pub struct WeightPath<'w, 'a> {
    weights: &'w Weights<'a>,
    path: String,
}

impl<'w, 'a> WeightPath<'w, 'a> {
    /// One level down: `{path}.{name}`.
    pub fn pp(&self, name: impl Display) -> Self {
        Self {
            weights: self.weights,
            path: join(&self.path, name),
        }
    }

    /// The full name of `{path}.{name}`.
    pub fn name(&self, name: &str) -> String {
        join(&self.path, name)
    }

    /// Whether the file holds `{path}.{name}`.
    pub fn contains(&self, name: &str) -> bool {
        self.weights.contains(&self.name(name))
    }

    /// The shape the file gives `{path}.{name}`, if it holds it.
    pub fn shape_of(&self, name: &str) -> Option<Vec<usize>> {
        self.weights.shape_of(&self.name(name))
    }

    /// The tensor `{path}.{name}` on the device, with the shape checked (see [`Weights::host`]).
    pub fn tensor<const D: usize>(&self, name: &str, shape: [usize; D]) -> Tensor<D> {
        self.weights.tensor(&self.name(name), shape)
    }

    /// The matrix `{path}.{name}` stored `[rows, cols]`, as its transpose `[cols, rows]`: on the
    /// CPU backend (inference or training) laid out row-major from the file's values, so that
    /// each product reads its rows in order (burn's linear copied a transposed view at every call,
    /// forward and backward); elsewhere, and for a decoder ([`Weights::keep_output_rows`]), a
    /// view of the stored matrix, as the GPU kernels and decoding's dot products expect.
    pub fn transposed(&self, name: &str, [rows, cols]: [usize; 2]) -> Tensor<2> {
        let device = self.device();
        // (With the CPU kernels off, as before them: the benchmarks' baseline.)
        if !crate::device::on_cpu(device)
            || !super::flex::enabled()
            || self.weights.output_rows.get()
        {
            return self
                .weights
                .matrix(&self.name(name), [rows, cols])
                .transpose();
        }
        self.laid_out_transposed(name, [rows, cols])
    }

    /// The matrix `{path}.{name}` stored `[rows, cols]`, laid out `[cols, rows]` row-major on
    /// the device (transposed on the host, in tiles).
    fn laid_out_transposed(&self, name: &str, [rows, cols]: [usize; 2]) -> Tensor<2> {
        let data = self.weights.host(&self.name(name), &[rows, cols]);
        Tensor::from_data(
            TensorData::new(transpose(&data, rows, cols), [cols, rows]),
            self.device(),
        )
    }

    /// GPT-2's `Conv1D` weight `{path}.{name}` stored `[rows, cols]` (`[in, out]`), as it is;
    /// for a decoder on the CPU ([`Weights::keep_output_rows`]) laid out `[cols, rows]` and
    /// given as the transposed view of that.
    pub fn in_out(&self, name: &str, [rows, cols]: [usize; 2]) -> Tensor<2> {
        if !self.weights.output_rows.get() {
            return self.weights.matrix(&self.name(name), [rows, cols]);
        }
        self.laid_out_transposed(name, [rows, cols]).transpose()
    }

    /// The tensor `{path}.{name}` as f16 host data, when kept in half precision (see
    /// [`Weights::keep_half`]).
    pub fn host_half(&self, name: &str, shape: &[usize]) -> Option<Vec<half::f16>> {
        self.weights.host_half(&self.name(name), shape)
    }

    /// The tensor `{path}.{name}` as f32 host data (see [`Weights::host`]).
    pub fn host(&self, name: &str, shape: &[usize]) -> Vec<f32> {
        self.weights.host(&self.name(name), shape)
    }

    pub fn device(&self) -> &'w Device {
        self.weights.device()
    }
}

pub use crate::device::Precision;

/// Whether matrices may be kept in half precision on `device`: a GPU whose runtime computes in
/// f16 (WebGPU with `shader-f16`); natively `TUNELAB_F16=0` says no (the benchmarks' f32).
pub fn half_on(device: &Device) -> bool {
    #[cfg(not(target_arch = "wasm32"))]
    if std::env::var("TUNELAB_F16").is_ok_and(|v| v == "0") {
        return false;
    }
    !crate::device::on_cpu(device) && device.supports_dtype(burn::tensor::DType::F16)
}

/// `data` `[rows, cols]` (row-major) as `[cols, rows]`, in 32 × 32 tiles: element by element,
/// every write of a wide matrix's column lands a page away from the last (Qwen2.5-0.5B's
/// 4864 × 896 layers took 10 s to load natively, 1.5 s in tiles). Inside a tile, 4 × 4 blocks
/// transposed in registers (`simd128` shuffles in wasm: GPT-2's `Conv1D` weights are transposed
/// this way when a decoder loads on the CPU).
fn transpose(data: &[f32], rows: usize, cols: usize) -> Vec<f32> {
    use super::matmul::transpose4;
    const TILE: usize = 32;
    let mut t = vec![0.0f32; data.len()];
    for r0 in (0..rows).step_by(TILE) {
        let r1 = (r0 + TILE).min(rows);
        for c0 in (0..cols).step_by(TILE) {
            let c1 = (c0 + TILE).min(cols);
            let mut r = r0;
            while r + 4 <= r1 {
                let mut c = c0;
                while c + 4 <= c1 {
                    let block = transpose4(std::array::from_fn(|i| {
                        let at = (r + i) * cols + c;
                        data[at..at + 4].try_into().expect("4")
                    }));
                    for (j, column) in block.iter().enumerate() {
                        let at = (c + j) * rows + r;
                        t[at..at + 4].copy_from_slice(column);
                    }
                    c += 4;
                }
                for c in c..c1 {
                    for i in 0..4 {
                        t[c * rows + r + i] = data[(r + i) * cols + c];
                    }
                }
                r += 4;
            }
            for r in r..r1 {
                for c in c0..c1 {
                    t[c * rows + r] = data[r * cols + c];
                }
            }
        }
    }
    t
}

/// Little-endian f32/f16/bf16 bytes to f32.
fn to_f32(dtype: Dtype, bytes: &[u8]) -> Option<Vec<f32>> {
    match dtype {
        Dtype::F32 => Some(
            bytes
                .chunks_exact(4)
                .map(|c| f32::from_le_bytes([c[0], c[1], c[2], c[3]]))
                .collect(),
        ),
        Dtype::F16 => Some(
            bytes
                .chunks_exact(2)
                .map(|c| half::f16::from_le_bytes([c[0], c[1]]).to_f32())
                .collect(),
        ),
        Dtype::BF16 => Some(
            bytes
                .chunks_exact(2)
                .map(|c| half::bf16::from_le_bytes([c[0], c[1]]).to_f32())
                .collect(),
        ),
        _ => None,
    }
}

/// Tensors to write: name -> (shape, f32 values).
pub type HostTensors = BTreeMap<String, (Vec<usize>, Vec<f32>)>;

/// Serialises f32 tensors as `model.safetensors` bytes (with `{"format": "pt"}` metadata, as
/// transformers writes).
pub fn write_safetensors(tensors: &HostTensors) -> Result<Vec<u8>, ModelError> {
    let bytes: Vec<(String, Vec<usize>, Vec<u8>)> = tensors
        .iter()
        .map(|(name, (shape, values))| {
            let data: Vec<u8> = values.iter().flat_map(|v| v.to_le_bytes()).collect();
            (name.clone(), shape.clone(), data)
        })
        .collect();
    let views: Vec<(String, safetensors::tensor::TensorView<'_>)> = bytes
        .iter()
        .map(|(name, shape, data)| {
            safetensors::tensor::TensorView::new(Dtype::F32, shape.clone(), data)
                .map(|v| (name.clone(), v))
                .map_err(|e| ModelError::Weights(format!("{name}: {e}")))
        })
        .collect::<Result<_, _>>()?;
    let metadata = Some(std::collections::HashMap::from([(
        "format".to_string(),
        "pt".to_string(),
    )]));
    safetensors::serialize(views, metadata)
        .map_err(|e| ModelError::Weights(format!("could not write safetensors: {e}")))
}

/// "124.4 M" style counts.
fn count_text(n: u64) -> String {
    match n {
        n if n >= 1_000_000_000 => format!("{:.1} G", n as f64 / 1e9),
        n if n >= 1_000_000 => format!("{:.1} M", n as f64 / 1e6),
        n if n >= 1_000 => format!("{:.1} k", n as f64 / 1e3),
        n => n.to_string(),
    }
}

#[cfg(test)]
mod tests {
    #[test]
    fn tiled_transpose_matches_the_definition() {
        for (rows, cols) in [
            (1, 1),
            (3, 70),
            (70, 3),
            (33, 65),
            (64, 64),
            (37, 6),
            (5, 131),
        ] {
            let data: Vec<f32> = (0..rows * cols).map(|i| i as f32).collect();
            let t = super::transpose(&data, rows, cols);
            for r in 0..rows {
                for c in 0..cols {
                    assert_eq!(
                        t[c * rows + r],
                        data[r * cols + c],
                        "{rows}x{cols} at {r},{c}"
                    );
                }
            }
        }
    }
}
