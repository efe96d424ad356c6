//! AdamW as `torch.optim.AdamW` with transformers' Trainer conventions: no weight decay on biases
//! and LayerNorm weights (all 1-D parameters), global gradient-norm clipping
//! (`clip_grad_norm_`), and a learning rate given per step.
//!
//! Multi-tensor: every trainable weight lives in one flat buffer (the model's parameters are views
//! into it), and so do the moments. A step concatenates the gradients once and updates all weights
//! with a couple of dozen element-wise kernels over the flat buffers, instead of ~15 kernels per
//! tensor (a BERT has a hundred or more): on a GPU the launches, not the arithmetic, cost the time.
//! Gradient clipping stays on the device (no readback). On the CPU one kernel does the whole step
//! in place ([`flex::adamw`]): there the twenty passes, each allocating a buffer of every weight,
//! cost the time.

use std::collections::HashMap;

use burn::module::{ModuleMapper, ModuleVisitor, Param, ParamId};
use burn::optim::GradientsParams;
use burn::prelude::*;

use super::checkpoint::OptimState;
use crate::model::flex;

#[derive(Debug, Clone, Copy)]
pub struct AdamWSettings {
    pub beta1: f64,
    pub beta2: f64,
    pub epsilon: f64,
    pub weight_decay: f64,
    /// transformers' Trainer skips decay on biases and LayerNorm weights; a bare
    /// `torch.optim.AdamW(model.parameters())` decays every parameter.
    pub decay_bias_and_norm: bool,
    /// 0 turns clipping off.
    pub max_grad_norm: f64,
}

/// Slots start at multiples of this many elements (256 bytes of f32: WebGPU's largest storage
/// offset alignment), so that each parameter is a view into the flat buffer, not a copy.
const ALIGN: usize = 64;

/// Where one parameter lives in the flat buffers.
#[derive(Debug, Clone)]
struct Slot {
    offset: usize,
    dims: Vec<usize>,
    len: usize,
}

impl Slot {
    /// Its length in the flat buffers (the parameter, then zeros).
    fn padded(&self) -> usize {
        self.len.next_multiple_of(ALIGN)
    }
}

/// `n` zeros: on the CPU from a zeroed vector (burn's `zeros` there allocates bytes, then copies
/// them into an aligned buffer: for the moments of all-MiniLM-L6-v2, 2 × 91 MB, 0.5 s of wasm
/// training's first step), elsewhere burn's.
fn zeros(n: usize, device: &Device) -> Tensor<1> {
    if crate::device::on_cpu(device) {
        Tensor::from_data(TensorData::new(vec![0.0f32; n], [n]), device)
    } else {
        Tensor::zeros([n], device)
    }
}

/// One tensor per slot (in slot order, each of its slot's length) as one flat buffer, each
/// padded with zeros to its slot's aligned length.
fn concat_slots(values: Vec<(Tensor<1>, &Slot)>, device: &Device) -> Tensor<1> {
    let mut parts = Vec::with_capacity(values.len() * 2);
    for (value, slot) in values {
        parts.push(value);
        if slot.padded() > slot.len {
            parts.push(Tensor::zeros([slot.padded() - slot.len], device));
        }
    }
    if parts.is_empty() {
        Tensor::zeros([0], device)
    } else {
        Tensor::cat(parts, 0)
    }
}

/// The flat buffers, made at the first step.
struct Flat {
    /// Parameter id → its slot, and the ids in slot order.
    slots: HashMap<ParamId, Slot>,
    order: Vec<ParamId>,
    params: Tensor<1>,
    m: Tensor<1>,
    v: Tensor<1>,
    /// 1 where weight decay applies, 0 elsewhere (`None`: everywhere).
    decay_mask: Option<Tensor<1>>,
    step: i32,
}

pub struct AdamW {
    settings: AdamWSettings,
    flat: Option<Flat>,
}

/// The trainable parameters with their shapes, in module order.
struct Collect {
    found: Vec<(ParamId, Vec<usize>, Tensor<1>)>,
}

impl ModuleVisitor for Collect {
    fn visit_float<const D: usize>(&mut self, param: &Param<Tensor<D>>) {
        let value = param.val();
        if !value.is_require_grad() {
            return;
        }
        let dims = value.dims().to_vec();
        let n: usize = dims.iter().product();
        self.found
            .push((param.id, dims, value.inner().reshape([n])));
    }
}

/// Replaces each parameter in `slots` by its view into `flat` (autodiff leaves again).
struct Views<'a> {
    slots: &'a HashMap<ParamId, Slot>,
    flat: &'a Tensor<1>,
}

impl ModuleMapper for Views<'_> {
    fn map_float<const D: usize>(&mut self, param: Param<Tensor<D>>) -> Param<Tensor<D>> {
        let Some(slot) = self.slots.get(&param.id) else {
            return param;
        };
        let (id, old, mapper) = param.consume();
        let dims: [usize; D] = slot.dims.clone().try_into().expect("rank");
        let view = self
            .flat
            .clone()
            .narrow(0, slot.offset, slot.len)
            .reshape(dims);
        let mut value = Tensor::from_inner(view);
        if old.is_require_grad() {
            value = value.require_grad();
        }
        Param::from_mapped_value(id, value, mapper)
    }
}

/// Replaces each parameter in `slots` by an empty tensor, so that nothing but the optimiser holds
/// the flat buffer (then [`Views`] makes them views again).
struct Release<'a> {
    slots: &'a HashMap<ParamId, Slot>,
    device: Device,
}

impl ModuleMapper for Release<'_> {
    fn map_float<const D: usize>(&mut self, param: Param<Tensor<D>>) -> Param<Tensor<D>> {
        if !self.slots.contains_key(&param.id) {
            return param;
        }
        let (id, old, mapper) = param.consume();
        let require_grad = old.is_require_grad();
        drop(old);
        let mut value = Tensor::from_inner(Tensor::empty([0; D], &self.device));
        if require_grad {
            value = value.require_grad();
        }
        Param::from_mapped_value(id, value, mapper)
    }
}

/// The gradients in slot order (zeros for a parameter that got none this step).
struct Gradients<'a> {
    grads: &'a mut GradientsParams,
    slots: &'a HashMap<ParamId, Slot>,
    found: HashMap<ParamId, Tensor<1>>,
}

impl ModuleVisitor for Gradients<'_> {
    fn visit_float<const D: usize>(&mut self, param: &Param<Tensor<D>>) {
        if let Some(slot) = self.slots.get(&param.id) {
            if let Some(g) = self.grads.remove::<D>(param.id) {
                self.found.insert(param.id, g.reshape([slot.len]));
            }
        }
    }
}

impl AdamW {
    /// [`Self::step`] on the CPU: the engine's one-pass kernel ([`flex::adamw`]), in place. The
    /// model's parameters (views of the flat buffer) are let go first, so that the buffer is
    /// written where it is, then made views again.
    fn step_on_cpu<M: Module>(
        &mut self,
        lr: f64,
        model: M,
        mut flat: Flat,
        mut found: HashMap<ParamId, Tensor<1>>,
    ) -> (M, Tensor<1>) {
        let device = flat.params.device();
        let model = model.map(&mut Release {
            slots: &flat.slots,
            device: device.clone(),
        });
        let update = self.next_update(&mut flat, lr);
        let decay = update.decay as f64;
        let masked = flat.decay_mask.is_some();
        let grads: Vec<_> = flat
            .order
            .iter()
            .map(|id| {
                let slot = &flat.slots[id];
                // The composition's two forms: every weight, or the mask's (1-D ones spared).
                let mode = match (decay == 0.0, masked, slot.dims.len() > 1) {
                    (true, ..) => 0,
                    (false, false, _) => 1,
                    (false, true, true) => 2,
                    (false, true, false) => 0,
                };
                (slot.offset, slot.len, found.remove(id), mode)
            })
            .collect();
        let (params, m, v, norm) = flex::adamw(flat.params, flat.m, flat.v, &grads, update);
        drop(grads);
        (flat.params, flat.m, flat.v) = (params, m, v);
        let model = model.map(&mut Views {
            slots: &flat.slots,
            flat: &flat.params,
        });
        self.flat = Some(flat);
        (model, Tensor::from_data([norm], &device))
    }

    /// The next step's constants (the step counted), in f32 as the composition rounds them.
    fn next_update(&self, flat: &mut Flat, lr: f64) -> flex::AdamWUpdate {
        let s = self.settings;
        flat.step += 1;
        let t = flat.step;
        let (bias1, bias2) = (1.0 - s.beta1.powi(t), 1.0 - s.beta2.powi(t));
        let decay = lr * s.weight_decay;
        flex::AdamWUpdate {
            beta1: s.beta1 as f32,
            one_minus_beta1: (1.0 - s.beta1) as f32,
            beta2: s.beta2 as f32,
            one_minus_beta2: (1.0 - s.beta2) as f32,
            bias2_sqrt: bias2.sqrt() as f32,
            epsilon: s.epsilon as f32,
            step_size: (lr / bias1) as f32,
            decay: decay as f32,
            keep: (1.0 - decay) as f32,
            max_grad_norm: s.max_grad_norm as f32,
        }
    }

    /// [`Self::step`] on a GPU: the engine's kernels ([`kernels::gpu_adamw`]), the flat buffers
    /// updated in place once the model's views of them are let go. The model, the buffers and
    /// the gradients back where the kernels do not apply.
    #[cfg(feature = "webgpu")]
    #[allow(clippy::type_complexity, clippy::result_large_err)]
    fn step_on_gpu<M: Module>(
        &mut self,
        lr: f64,
        model: M,
        mut flat: Flat,
        mut found: HashMap<ParamId, Tensor<1>>,
    ) -> Result<(M, Tensor<1>), (M, Flat, HashMap<ParamId, Tensor<1>>)> {
        use crate::model::kernels::{gpu_adamw, SlotGrad};
        let device = flat.params.device();
        let model = model.map(&mut Release {
            slots: &flat.slots,
            device,
        });
        let update = self.next_update(&mut flat, lr);
        let grads: Vec<SlotGrad> = flat
            .order
            .iter()
            .map(|id| {
                let slot = &flat.slots[id];
                SlotGrad {
                    offset: slot.offset,
                    len: slot.len,
                    padded: slot.padded(),
                    grad: found.remove(id),
                }
            })
            .collect();
        let buffers = (flat.params, flat.m, flat.v);
        let outcome = gpu_adamw(
            buffers.0,
            buffers.1,
            buffers.2,
            flat.decay_mask.as_ref(),
            &grads,
            update,
        );
        let norm = match outcome {
            Ok((params, m, v, norm)) => {
                (flat.params, flat.m, flat.v) = (params, m, v);
                Some(norm)
            }
            Err((params, m, v)) => {
                (flat.params, flat.m, flat.v) = (params, m, v);
                flat.step -= 1;
                for (id, g) in flat.order.iter().zip(grads) {
                    if let Some(g) = g.grad {
                        found.insert(*id, g);
                    }
                }
                None
            }
        };
        let model = model.map(&mut Views {
            slots: &flat.slots,
            flat: &flat.params,
        });
        match norm {
            Some(norm) => {
                self.flat = Some(flat);
                Ok((model, norm))
            }
            None => Err((model, flat, found)),
        }
    }

    pub fn new<M: Module>(_model: &M, settings: AdamWSettings) -> Self {
        Self {
            settings,
            flat: None,
        }
    }

    /// The flat buffers for `model`'s trainable parameters, and `model` with its parameters
    /// turned into views of them.
    fn flatten<M: Module>(&self, model: M) -> (M, Flat) {
        let mut collect = Collect { found: Vec::new() };
        model.visit(&mut collect);
        let device = collect
            .found
            .first()
            .map(|(_, _, t)| t.device())
            .unwrap_or_default();
        let mut slots = HashMap::new();
        let mut order = Vec::new();
        let mut values = Vec::new();
        let mut offset = 0;
        for (id, dims, value) in collect.found {
            let slot = Slot {
                offset,
                len: value.dims()[0],
                dims,
            };
            offset += slot.padded();
            slots.insert(id, slot);
            order.push(id);
            values.push((id, value));
        }
        let total = offset;
        let params = concat_slots(
            values.into_iter().map(|(id, v)| (v, &slots[&id])).collect(),
            &device,
        );
        // Weight decay everywhere, or (Trainer) not on 1-D parameters: biases and LayerNorms.
        let decay_mask = (!self.settings.decay_bias_and_norm
            && slots.values().any(|s| s.dims.len() == 1))
        .then(|| {
            let mut mask = vec![0f32; total];
            for slot in slots.values().filter(|s| s.dims.len() > 1) {
                mask[slot.offset..slot.offset + slot.padded()].fill(1.0);
            }
            Tensor::from_data(TensorData::new(mask, [total]), &device)
        });
        let flat = Flat {
            slots,
            order,
            m: zeros(total, &device),
            v: zeros(total, &device),
            params,
            decay_mask,
            step: 0,
        };
        let model = model.map(&mut Views {
            slots: &flat.slots,
            flat: &flat.params,
        });
        (model, flat)
    }

    /// The flat buffers and step as host data (for a checkpoint); `None` before the first step.
    pub async fn state(&self) -> Result<Option<OptimState>, crate::model::ModelError> {
        let Some(flat) = &self.flat else {
            return Ok(None);
        };
        Ok(Some(OptimState {
            step: flat.step,
            params: crate::model::read_f32(flat.params.clone()).await?,
            m: crate::model::read_f32(flat.m.clone()).await?,
            v: crate::model::read_f32(flat.v.clone()).await?,
        }))
    }

    /// Puts a checkpoint's state back: `model`'s trainable parameters become views of the saved
    /// weights, and the moments and step are the saved ones. `model` must have the parameters
    /// (in order and shape) of the model the state was taken from.
    pub fn restore<M: Module>(&mut self, model: M, state: &OptimState) -> Result<M, String> {
        let (model, mut flat) = self.flatten(model);
        let total = flat.params.dims()[0];
        if [&state.params, &state.m, &state.v]
            .iter()
            .any(|b| b.len() != total)
        {
            return Err(format!(
                "the checkpoint holds {} trainable weights, this model has {total}",
                state.params.len()
            ));
        }
        let device = flat.params.device();
        let upload =
            |v: &[f32]| Tensor::<1>::from_data(TensorData::new(v.to_vec(), [total]), &device);
        flat.params = upload(&state.params);
        flat.m = upload(&state.m);
        flat.v = upload(&state.v);
        flat.step = state.step;
        let model = model.map(&mut Views {
            slots: &flat.slots,
            flat: &flat.params,
        });
        self.flat = Some(flat);
        Ok(model)
    }

    /// Backpropagates `loss`, clips the global gradient norm, and updates `model` with rate `lr`.
    /// Returns the updated model and the gradient norm before clipping (on the device). `model`
    /// must be the model the previous step returned.
    pub fn step<M: Module>(&mut self, lr: f64, model: M, loss: Tensor<1>) -> (M, Tensor<1>) {
        let grads = loss.backward();
        let mut grads = GradientsParams::from_grads(grads, &model);
        let (model, flat) = match self.flat.take() {
            Some(flat) => (model, flat),
            None => self.flatten(model),
        };
        let device = flat.params.device();
        let mut found = Gradients {
            grads: &mut grads,
            slots: &flat.slots,
            found: HashMap::new(),
        };
        model.visit(&mut found);
        let found = found.found;
        if flat.order.is_empty() {
            self.flat = Some(flat);
            return (model, Tensor::zeros([1], &device));
        }
        let mut buffers = vec![&flat.params, &flat.m, &flat.v];
        buffers.extend(&flat.decay_mask);
        if flex::adamw_applies(&buffers, found.values()) {
            return self.step_on_cpu(lr, model, flat, found);
        }
        #[cfg(feature = "webgpu")]
        let (model, mut flat, mut found) = match self.step_on_gpu(lr, model, flat, found) {
            Ok(done) => return done,
            Err(back) => back,
        };
        #[cfg(not(feature = "webgpu"))]
        let (mut flat, mut found) = (flat, found);
        let grads_in_order = flat
            .order
            .iter()
            .map(|id| {
                let slot = &flat.slots[id];
                let g = found
                    .remove(id)
                    .unwrap_or_else(|| Tensor::zeros([slot.len], &device));
                (g, slot)
            })
            .collect();
        let mut g = concat_slots(grads_in_order, &device);
        let norm = g.clone().square().sum().sqrt();
        let s = self.settings;
        if s.max_grad_norm > 0.0 {
            // torch: clip_coef = max_norm / (total_norm + 1e-6), clamped to 1.
            let factor = (norm.clone() + 1e-6)
                .recip()
                .mul_scalar(s.max_grad_norm)
                .clamp_max(1.0);
            g = g * factor;
        }
        // torch.optim.AdamW (decoupled weight decay, bias-corrected moments).
        flat.step += 1;
        let t = flat.step;
        let bias1 = 1.0 - s.beta1.powi(t);
        let bias2 = 1.0 - s.beta2.powi(t);
        flat.m = flat.m.mul_scalar(s.beta1) + g.clone().mul_scalar(1.0 - s.beta1);
        flat.v = flat.v.mul_scalar(s.beta2) + g.square().mul_scalar(1.0 - s.beta2);
        let denom = flat
            .v
            .clone()
            .sqrt()
            .div_scalar(bias2.sqrt())
            .add_scalar(s.epsilon);
        let update = flat.m.clone().div(denom).mul_scalar(lr / bias1);
        let mut params = flat.params.clone();
        if s.weight_decay != 0.0 {
            let decay = lr * s.weight_decay;
            params = match &flat.decay_mask {
                None => params.mul_scalar(1.0 - decay),
                Some(mask) => params.clone() - params.mul(mask.clone()).mul_scalar(decay),
            };
        }
        flat.params = params - update;
        let model = model.map(&mut Views {
            slots: &flat.slots,
            flat: &flat.params,
        });
        self.flat = Some(flat);
        (model, norm)
    }
}
