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
    /// LoRA (PEFT's): the encoder frozen, low-rank adapters on the chosen linear layers and the
    /// classification head trained ([`LoraSettings`]).
    Lora,
}

/// PEFT's `LoraConfig`, as far as Tunelab trains with it: each adapted linear layer `W` computes
/// `W x + (alpha / r) B A dropout(x)`, `A` `[r, in]` drawn as PEFT draws it, `B` `[out, r]`
/// zeros, so training starts from the base model's outputs.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct LoraSettings {
    /// The rank of the adapters.
    pub r: usize,
    /// `lora_alpha`: the adapters' output is scaled by `alpha / r`.
    pub alpha: f64,
    /// `lora_dropout`: on the adapters' input only.
    pub dropout: f64,
    /// PEFT's `target_modules` as a list: a linear layer is adapted when its name (as in the
    /// transformers model) equals one of these or ends with `.` and one of these. Empty: the
    /// family's attention query and value (PEFT's defaults: `query`/`value`, DistilBERT's
    /// `q_lin`/`v_lin`, ModernBERT's fused `Wqkv`).
    pub target_modules: Vec<String>,
    /// `use_rslora`: scale by `alpha / √r` instead.
    #[serde(default)]
    pub rslora: bool,
}

impl Default for LoraSettings {
    fn default() -> Self {
        Self {
            r: 8,
            alpha: 16.0,
            dropout: 0.1,
            target_modules: Vec::new(),
            rslora: false,
        }
    }
}

impl LoraSettings {
    /// The adapters' scale, `alpha / r` (`alpha / √r` with rsLoRA).
    pub fn scale(&self) -> f64 {
        let r = self.r.max(1) as f64;
        if self.rslora {
            self.alpha / r.sqrt()
        } else {
            self.alpha / r
        }
    }

    /// Whether the layer named `name` is a target.
    pub fn targets(&self, name: &str, defaults: &[&str]) -> bool {
        let matches = |t: &str| {
            let t = t.trim();
            !t.is_empty()
                && (name == t || name.strip_suffix(t).is_some_and(|head| head.ends_with('.')))
        };
        if self.target_modules.iter().all(|t| t.trim().is_empty()) {
            defaults.iter().any(|t| matches(t))
        } else {
            self.target_modules.iter().any(|t| matches(t))
        }
    }

    /// A clear message for settings that cannot work.
    pub fn validate(&self) -> Result<(), String> {
        if self.r == 0 {
            return Err("the LoRA rank must be at least 1".into());
        }
        if !(self.alpha > 0.0 && self.alpha.is_finite()) {
            return Err("LoRA's alpha must be a positive number".into());
        }
        if !(0.0..1.0).contains(&self.dropout) {
            return Err("LoRA's dropout must be in [0, 1)".into());
        }
        Ok(())
    }
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
    /// The adapters of LoRA mode.
    #[serde(default)]
    pub lora: LoraSettings,
    /// A checkpoint every this many steps (full and LoRA modes; every mode keeps one after each
    /// epoch) when the host keeps them; 0: after each epoch only.
    #[serde(default = "default_save_steps")]
    pub save_steps: usize,
}

fn default_save_steps() -> usize {
    200
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
            lora: LoraSettings::default(),
            save_steps: default_save_steps(),
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

    /// Defaults for LoRA: full fine-tuning's, with the larger rate adapters train at (PEFT's
    /// sequence-classification examples use 1e-4 to 1e-3).
    pub fn lora_defaults() -> Self {
        Self {
            mode: Mode::Lora,
            learning_rate: 5e-4,
            ..Self::default()
        }
    }

    /// The defaults of `mode` ([`TrainingArgs::default`] for full fine-tuning,
    /// [`TrainingArgs::head_defaults`] for head only, [`TrainingArgs::lora_defaults`]): the one
    /// place the UI takes them from.
    pub fn defaults_for(mode: Mode) -> Self {
        match mode {
            Mode::Head => Self::head_defaults(),
            Mode::Full => Self::default(),
            Mode::Lora => Self::lora_defaults(),
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
        if self.mode == Mode::Lora {
            self.lora.validate()?;
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
