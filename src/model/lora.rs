//! LoRA adapters as PEFT computes them: an adapted linear layer gives
//! `W x + b + scale · B A dropout(x)` with `A` `[r, in]`, `B` `[out, r]` and `scale = alpha / r`.
//! Kept apart from the layer's own weights (which stay frozen) while training; folded into them
//! ([`LinearLora::merge`]) for inference and for a plain exported folder. Which layers of a model
//! carry adapters, and under which names PEFT saves them, is the model's business
//! (`bert/lora.rs`).

use burn::module::Param;
use burn::nn::{Dropout, DropoutConfig, Linear};
use burn::prelude::*;
use burn::tensor::module;

use super::layers::ExportPath;
use super::weights::WeightPath;
use crate::rng::Rng;
use crate::train::args::LoraSettings;

/// One adapter: `A` and `B` stored transposed for `x · A · B` (`[in, r]`, `[r, out]`).
#[derive(Module, Debug)]
pub struct Adapter {
    pub a: Param<Tensor<2>>,
    pub b: Param<Tensor<2>>,
    pub dropout: Dropout,
    #[module(skip)]
    pub scale: f64,
}

impl Adapter {
    /// A new adapter as PEFT initialises one: `A` from `kaiming_uniform_(a=√5)`, that is
    /// uniform in ±1/√in, `B` zeros (so the layer starts as it was).
    pub fn fresh(
        rng: &mut Rng,
        d_in: usize,
        d_out: usize,
        s: &LoraSettings,
        device: &Device,
    ) -> Self {
        let bound = 1.0 / (d_in.max(1) as f64).sqrt();
        let values: Vec<f32> = (0..s.r * d_in)
            .map(|_| ((2.0 * rng.next_f64() - 1.0) * bound) as f32)
            .collect();
        let a = Tensor::<2>::from_data(TensorData::new(values, [s.r, d_in]), device).transpose();
        Self::new(a, Tensor::zeros([s.r, d_out], device), s)
    }

    /// PEFT's saved `{path}.lora_A.weight` `[r, in]` and `{path}.lora_B.weight` `[out, r]`.
    pub fn load(at: &WeightPath, d_in: usize, d_out: usize, s: &LoraSettings) -> Self {
        let a = at.pp("lora_A").tensor("weight", [s.r, d_in]).transpose();
        let b = at.pp("lora_B").tensor("weight", [d_out, s.r]).transpose();
        Self::new(a, b, s)
    }

    fn new(a: Tensor<2>, b: Tensor<2>, s: &LoraSettings) -> Self {
        Self {
            a: Param::from_tensor(a),
            b: Param::from_tensor(b),
            dropout: DropoutConfig::new(s.dropout).init(),
            scale: s.scale(),
        }
    }

    /// `scale · B A dropout(x)` for `x` `[.., in]`.
    pub fn delta<const D: usize>(&self, x: Tensor<D>) -> Tensor<D> {
        let x = super::kernels::dropout(&self.dropout, x);
        let low = module::linear(x, self.a.val(), None);
        module::linear(low, self.b.val(), None).mul_scalar(self.scale)
    }

    /// What merging adds to the layer's `[in, out]` weight: `scale · (B A)ᵀ`.
    pub fn weight_delta(&self) -> Tensor<2> {
        self.a.val().matmul(self.b.val()).mul_scalar(self.scale)
    }

    /// Under PEFT's names: `lora_A.weight` `[r, in]`, `lora_B.weight` `[out, r]`.
    pub fn export(&self, out: &mut ExportPath) {
        out.pp("lora_A").put("weight", self.a.val().transpose());
        out.pp("lora_B").put("weight", self.b.val().transpose());
    }
}

/// The adapters of one linear layer whose output is `parts` equal slices side by side (BERT's
/// query, key and value fused into one product); one slice for an ordinary layer. `None` where a
/// part is not adapted.
#[derive(Module, Debug)]
pub struct LinearLora {
    pub parts: Vec<Option<Adapter>>,
}

impl LinearLora {
    /// Whether any part is adapted.
    pub fn active(&self) -> bool {
        self.parts.iter().any(Option::is_some)
    }

    /// `y + delta(x)`, `y` being the layer's own output for `x`.
    pub fn add<const D: usize>(&self, y: Tensor<D>, x: Tensor<D>) -> Tensor<D> {
        if !self.active() {
            return y;
        }
        if let [Some(only)] = self.parts.as_slice() {
            return y + only.delta(x);
        }
        let dims = y.dims();
        let width = dims[D - 1] / self.parts.len().max(1);
        let device = y.device();
        let deltas = self
            .parts
            .iter()
            .map(|part| match part {
                Some(adapter) => adapter.delta(x.clone()),
                None => {
                    let mut shape = dims;
                    shape[D - 1] = width;
                    Tensor::zeros(shape, &device)
                }
            })
            .collect();
        y + Tensor::cat(deltas, D - 1)
    }

    /// `lin` with the adapters folded into its weight (laid out as loading lays it: row-major
    /// `[in, out]` on the CPU, a transposed view of `[out, in]` elsewhere).
    pub fn merge(&self, lin: Linear) -> Linear {
        if !self.active() {
            return lin;
        }
        let (id, weight, mapper) = lin.weight.consume();
        let [d_in, d_out] = weight.dims();
        let width = d_out / self.parts.len().max(1);
        let device = weight.device();
        let delta = Tensor::cat(
            self.parts
                .iter()
                .map(|part| match part {
                    Some(adapter) => adapter.weight_delta(),
                    None => Tensor::zeros([d_in, width], &device),
                })
                .collect(),
            1,
        );
        let merged = if crate::device::on_cpu(&device) {
            weight + delta
        } else {
            (weight.transpose() + delta.transpose()).transpose()
        };
        Linear {
            weight: Param::from_mapped_value(id, merged, mapper),
            bias: lin.bias,
        }
    }
}

/// `lin(x)` plus the adapters' share, when there are any.
pub fn adapted<const D: usize>(lin: &Linear, lora: Option<&LinearLora>, x: Tensor<D>) -> Tensor<D> {
    match lora.filter(|l| l.active()) {
        Some(l) => l.add(super::kernels::plain_linear(lin, x.clone()), x),
        None => super::kernels::linear(lin, x),
    }
}

/// A PEFT adapter's `adapter_config.json`, as far as Tunelab applies one.
#[derive(Debug, Clone, PartialEq)]
pub struct PeftConfig {
    pub settings: LoraSettings,
    /// Modules saved whole beside the adapters (the classification head).
    pub modules_to_save: Vec<String>,
    /// `base_model_name_or_path`.
    pub base_model: Option<String>,
}

impl PeftConfig {
    /// Reads `adapter_config.json`, refusing by name what Tunelab does not apply (another PEFT
    /// method, DoRA, per-layer ranks, a regular expression for the targets, trained biases).
    pub fn parse(bytes: &[u8]) -> Result<Self, super::ModelError> {
        use serde_json::Value;
        let bad = |m: String| super::ModelError::Config(format!("adapter_config.json: {m}"));
        let v: Value = serde_json::from_slice(bytes).map_err(|e| bad(e.to_string()))?;
        let get = |k: &str| v.get(k).filter(|x| !x.is_null());
        let peft_type = get("peft_type").and_then(Value::as_str).unwrap_or("");
        if peft_type != "LORA" {
            return Err(bad(format!(
                "peft_type {peft_type:?}: only LoRA adapters (\"LORA\") can be applied"
            )));
        }
        if let Some(task) = get("task_type").and_then(Value::as_str) {
            if task != "SEQ_CLS" {
                return Err(bad(format!(
                    "task_type {task:?}: Tunelab applies sequence-classification adapters (\"SEQ_CLS\")"
                )));
            }
        }
        let flag = |k: &str| get(k).and_then(Value::as_bool).unwrap_or(false);
        for (key, what) in [("use_dora", "DoRA"), ("fan_in_fan_out", "fan_in_fan_out")] {
            if flag(key) {
                return Err(bad(format!("{what} adapters are not supported")));
            }
        }
        for key in ["rank_pattern", "alpha_pattern"] {
            if get(key)
                .and_then(Value::as_object)
                .is_some_and(|m| !m.is_empty())
            {
                return Err(bad(format!("{key} (per-layer ranks) is not supported")));
            }
        }
        if get("layers_to_transform").is_some() {
            return Err(bad("layers_to_transform is not supported".into()));
        }
        if let Some(bias) = get("bias").and_then(Value::as_str) {
            if bias != "none" {
                return Err(bad(format!("bias {bias:?}: only \"none\" is supported")));
            }
        }
        let strings = |k: &str| -> Result<Vec<String>, super::ModelError> {
            match get(k) {
                None => Ok(Vec::new()),
                Some(Value::Array(items)) => Ok(items
                    .iter()
                    .filter_map(|x| x.as_str().map(str::to_string))
                    .collect()),
                Some(Value::String(s)) => Err(bad(format!(
                    "{k} is the regular expression {s:?}: only a list of names is supported"
                ))),
                Some(other) => Err(bad(format!("{k}: expected a list of names, found {other}"))),
            }
        };
        let target_modules = strings("target_modules")?;
        if target_modules.is_empty() {
            return Err(bad("target_modules is empty".into()));
        }
        let r = get("r").and_then(Value::as_u64).unwrap_or(8) as usize;
        let settings = LoraSettings {
            r,
            alpha: get("lora_alpha").and_then(Value::as_f64).unwrap_or(8.0),
            dropout: get("lora_dropout").and_then(Value::as_f64).unwrap_or(0.0),
            target_modules,
            rslora: flag("use_rslora"),
        };
        settings.validate().map_err(bad)?;
        let mut modules_to_save = strings("modules_to_save")?;
        // PEFT adds its task's defaults ("classifier", "score") to whatever was asked.
        modules_to_save.dedup();
        Ok(Self {
            settings,
            modules_to_save,
            base_model: get("base_model_name_or_path")
                .and_then(Value::as_str)
                .map(str::to_string),
        })
    }
}
