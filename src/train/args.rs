//! Training arguments, mirroring transformers' `TrainingArguments` (defaults as the seed uses them).

use serde::{Deserialize, Serialize};

/// What fine-tuning updates.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub enum Mode {
    /// Partial fine-tuning (feature extraction): the encoder is frozen; its pooled features are
    /// computed once and cached, and only the classification head trains on them.
    Head,
    /// Full fine-tuning: every weight, with backpropagation through the encoder.
    Full,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct TrainingArgs {
    pub mode: Mode,
    pub num_train_epochs: usize,
    pub per_device_train_batch_size: usize,
    pub per_device_eval_batch_size: usize,
    pub learning_rate: f64,
    pub weight_decay: f64,
    /// Share of the steps with a linear warm-up; the rate then decays linearly to 0.
    pub warmup_ratio: f64,
    pub adam_beta1: f64,
    pub adam_beta2: f64,
    pub adam_epsilon: f64,
    /// Global gradient-norm clipping (`clip_grad_norm_`); 0 turns it off.
    pub max_grad_norm: f64,
    pub max_length: usize,
    pub seed: u64,
    pub logging_steps: usize,
    /// Dropout as the checkpoint's config sets it (transformers trains with it).
    pub dropout: bool,
}

impl Default for TrainingArgs {
    fn default() -> Self {
        Self {
            mode: Mode::Full,
            num_train_epochs: 3,
            per_device_train_batch_size: 8,
            per_device_eval_batch_size: 32,
            learning_rate: 5e-5,
            weight_decay: 0.0,
            warmup_ratio: 0.0,
            adam_beta1: 0.9,
            adam_beta2: 0.999,
            adam_epsilon: 1e-8,
            max_grad_norm: 1.0,
            max_length: 128,
            seed: 42,
            logging_steps: 10,
            dropout: true,
        }
    }
}

impl TrainingArgs {
    /// Defaults for head-only training: a linear head on frozen features learns with a larger
    /// rate and more epochs than full fine-tuning.
    pub fn head_defaults() -> Self {
        Self {
            mode: Mode::Head,
            num_train_epochs: 10,
            per_device_train_batch_size: 32,
            learning_rate: 1e-2,
            ..Self::default()
        }
    }

    /// The defaults of `mode` ([`TrainingArgs::default`] for full fine-tuning,
    /// [`TrainingArgs::head_defaults`] for head only): the one place the UI takes them from.
    pub fn defaults_for(mode: Mode) -> Self {
        match mode {
            Mode::Head => Self::head_defaults(),
            Mode::Full => Self::default(),
        }
    }

    /// Switches to `mode` with that mode's epochs, batch size and learning rate; every other
    /// setting (seed, maximum length, logging, ...) stays as the user set it.
    pub fn switch_mode(&mut self, mode: Mode) {
        let d = Self::defaults_for(mode);
        self.mode = mode;
        self.num_train_epochs = d.num_train_epochs;
        self.per_device_train_batch_size = d.per_device_train_batch_size;
        self.learning_rate = d.learning_rate;
    }

    /// A clear message for arguments that cannot work.
    pub fn validate(&self) -> Result<(), String> {
        if self.num_train_epochs == 0 {
            return Err("epochs must be at least 1".into());
        }
        if self.per_device_train_batch_size == 0 || self.per_device_eval_batch_size == 0 {
            return Err("batch size must be at least 1".into());
        }
        if !(self.learning_rate > 0.0 && self.learning_rate.is_finite()) {
            return Err("the learning rate must be a positive number".into());
        }
        if !(0.0..1.0).contains(&self.warmup_ratio) {
            return Err("the warm-up ratio must be in [0, 1)".into());
        }
        if self.weight_decay < 0.0 || self.max_grad_norm < 0.0 {
            return Err("weight decay and gradient clipping must not be negative".into());
        }
        if self.max_length < 2 {
            return Err("the maximum length must be at least 2 tokens".into());
        }
        if self.logging_steps == 0 {
            return Err("logging steps must be at least 1".into());
        }
        Ok(())
    }

    /// The learning rate of optimisation step `step` (0-based) of `total`: transformers'
    /// `get_linear_schedule_with_warmup`.
    pub fn learning_rate_at(&self, step: usize, total: usize) -> f64 {
        let warmup = (self.warmup_ratio * total as f64).ceil() as usize;
        let factor = if step < warmup {
            step as f64 / warmup.max(1) as f64
        } else {
            ((total - step.min(total)) as f64 / (total - warmup).max(1) as f64).max(0.0)
        };
        self.learning_rate * factor
    }
}
