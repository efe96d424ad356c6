//! AdamW as `torch.optim.AdamW` with transformers' Trainer conventions: no weight decay on biases
//! and LayerNorm weights (all 1-D parameters), global gradient-norm clipping
//! (`clip_grad_norm_`), and a learning rate given per step.

use burn::module::ParamGroup;
use burn::module::{ModuleVisitor, Param, ParamId};
use burn::optim::{AdamWConfig, GradientsParams, ModuleOptimizer};
use burn::prelude::*;

pub struct AdamW {
    inner: ModuleOptimizer,
    max_grad_norm: f64,
}

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

struct OneDimIds(Vec<ParamId>);

impl ModuleVisitor for OneDimIds {
    fn visit_float<const D: usize>(&mut self, param: &Param<Tensor<D>>) {
        if D == 1 {
            self.0.push(param.id);
        }
    }
}

struct SquaredNorm<'a> {
    grads: &'a GradientsParams,
    total: Option<Tensor<1>>,
}

impl ModuleVisitor for SquaredNorm<'_> {
    fn visit_float<const D: usize>(&mut self, param: &Param<Tensor<D>>) {
        if let Some(g) = self.grads.get::<D>(param.id) {
            let s = g.square().sum();
            self.total = Some(match self.total.take() {
                Some(t) => t + s,
                None => s,
            });
        }
    }
}

struct Scale<'a> {
    grads: &'a mut GradientsParams,
    factor: Tensor<1>,
}

impl ModuleVisitor for Scale<'_> {
    fn visit_float<const D: usize>(&mut self, param: &Param<Tensor<D>>) {
        if let Some(g) = self.grads.remove::<D>(param.id) {
            let f = self.factor.clone().reshape([1; D]);
            self.grads.register::<D>(param.id, g * f);
        }
    }
}

impl AdamW {
    pub fn new<M: Module>(model: &M, s: AdamWSettings) -> Self {
        let config = |wd: f64| {
            AdamWConfig::new()
                .with_beta_1(s.beta1 as f32)
                .with_beta_2(s.beta2 as f32)
                .with_epsilon(s.epsilon as f32)
                .with_weight_decay(wd as f32)
        };
        let mut inner = config(s.weight_decay).init();
        if !s.decay_bias_and_norm && s.weight_decay != 0.0 {
            let mut ids = OneDimIds(Vec::new());
            model.visit(&mut ids);
            inner = inner.with_group(ParamGroup::from_ids(ids.0), config(0.0).build(), None);
        }
        Self {
            inner,
            max_grad_norm: s.max_grad_norm,
        }
    }

    /// Backpropagates `loss`, clips the global gradient norm, and updates `model` with rate `lr`.
    /// Returns the updated model and the gradient norm before clipping (on the device).
    pub fn step<M: Module>(&mut self, lr: f64, model: M, loss: Tensor<1>) -> (M, Tensor<1>) {
        let grads = loss.backward();
        let mut grads = GradientsParams::from_grads(grads, &model);
        let mut norm = SquaredNorm {
            grads: &grads,
            total: None,
        };
        model.visit(&mut norm);
        let norm = norm
            .total
            .unwrap_or_else(|| Tensor::zeros([1], &loss.device().without_autodiff()))
            .sqrt();
        if self.max_grad_norm > 0.0 {
            // torch: clip_coef = max_norm / (total_norm + 1e-6), clamped to 1.
            let factor = (norm.clone() + 1e-6)
                .recip()
                .mul_scalar(self.max_grad_norm)
                .clamp_max(1.0);
            let mut scale = Scale {
                grads: &mut grads,
                factor,
            };
            model.visit(&mut scale);
        }
        (self.inner.step(lr, model, grads), norm)
    }
}
