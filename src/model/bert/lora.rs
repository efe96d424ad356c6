//! LoRA on the encoders' sequence classifiers under PEFT's names: which linear layers a
//! `target_modules` list picks (matched on the names the layers have in transformers' model),
//! adapters fresh or from PEFT's `adapter_model.safetensors`, the merge into the weights, and the
//! export under the names PEFT saves (`base_model.model.{layer}.lora_A.weight`, the trained head
//! as `base_model.model.classifier.weight`, ...).

use super::layout::layout;
use super::{ClassifierHead, LayerLora, Pooling, SequenceClassifier};
use crate::model::config::Family;
use crate::model::layers::Exporter;
use crate::model::lora::{Adapter, LinearLora};
use crate::model::weights::{join, Weights};
use crate::model::ModelError;
use crate::rng::Rng;
use crate::train::args::LoraSettings;

/// Where PEFT's saved names start.
pub const PEFT_PREFIX: &str = "base_model.model.";

/// Where the adapters' first values come from.
#[derive(Clone, Copy)]
pub enum AdapterSource<'w, 'a> {
    /// Drawn as PEFT draws them, from this seed.
    Fresh(u64),
    /// A saved PEFT adapter (opened with the prefix [`PEFT_PREFIX`]); its head too.
    Peft(&'w Weights<'a>),
}

/// What an adapted classifier's `adapter_config.json` says beside its settings.
#[derive(Debug, Clone, PartialEq)]
pub struct LoraFacts {
    /// The settings, `target_modules` written out (the family's defaults when it was empty).
    pub settings: LoraSettings,
    /// PEFT's `modules_to_save`: the head, trained in full (and a pooler the base lacked).
    pub modules_to_save: Vec<String>,
    /// The full names of the adapted layers.
    pub adapted: Vec<String>,
}

/// PEFT's default targets for a family: the attention's query and value.
pub fn default_targets(family: Family) -> &'static [&'static str] {
    match family {
        Family::DistilBert => &["q_lin", "v_lin"],
        Family::ModernBert => &["Wqkv"],
        _ => &["query", "value"],
    }
}

/// PEFT's `modules_to_save` for a family's classifier: its head (DistilBERT's `pre_classifier`
/// when it has one), and `pooler` when BERT's pooler is new.
pub fn modules_to_save(family: Family, pre_classifier: bool, fresh_pooler: bool) -> Vec<String> {
    let mut names: Vec<String> = match family {
        Family::ModernBert => vec!["head".into(), "classifier".into()],
        Family::DistilBert if pre_classifier => vec!["pre_classifier".into(), "classifier".into()],
        _ => vec!["classifier".into()],
    };
    if fresh_pooler {
        names.push("pooler".into());
    }
    names
}

/// The names of one layer's linear layers: the fused query/key/value parts (one for
/// ModernBERT's `Wqkv`), the attention output, the feed-forward input and output.
fn layer_names(family: Family, i: usize) -> (Vec<String>, [String; 3]) {
    let l = layout(family);
    let base = join(&join(l.prefix, l.layers), i);
    let mut parts: Vec<&str> = l.qkv().to_vec();
    parts.dedup();
    (
        parts.iter().map(|p| join(&base, p)).collect(),
        [
            join(&base, l.attn_out),
            join(&base, l.ffn_in),
            join(&base, l.ffn_out),
        ],
    )
}

impl SequenceClassifier {
    /// The linear layers LoRA can adapt, by their full names (for messages).
    fn adaptable(&self) -> Vec<String> {
        let family = self.encoder.config.family;
        let mut names = Vec::new();
        if !self.encoder.layers.is_empty() {
            let (parts, rest) = layer_names(family, 0);
            names.extend(parts);
            names.extend(rest);
        }
        if let (Some(_), Some(p)) = (&self.pooler, layout(family).pooler) {
            names.push(join(layout(family).prefix, p));
        }
        names
    }

    /// PEFT's `modules_to_save` for this classifier: its head, and BERT's pooler when the base
    /// had none (a fresh pooler would otherwise differ from the one transformers draws).
    pub fn lora_modules_to_save(&self) -> Vec<String> {
        modules_to_save(
            self.encoder.config.family,
            self.head.pre_classifier.is_some(),
            self.pooler.as_ref().is_some_and(|p| p.fresh),
        )
    }

    /// The classifier with LoRA adapters on the layers `settings` targets (in the encoder's
    /// layers and BERT's pooler), fresh or read from a PEFT adapter, whose head (and pooler,
    /// when it saved one) replaces this one's. Nothing is frozen here: training does that.
    pub fn with_lora(
        mut self,
        settings: &LoraSettings,
        source: AdapterSource,
    ) -> Result<(Self, LoraFacts), ModelError> {
        settings.validate().map_err(ModelError::Config)?;
        let family = self.encoder.config.family;
        let defaults = default_targets(family);
        let device = self.head.classifier.weight.device();
        let mut rng = Rng::new(match source {
            AdapterSource::Fresh(seed) => seed,
            AdapterSource::Peft(_) => 0,
        });
        let mut adapted = Vec::new();
        let mut make = |name: String, d_in: usize, d_out: usize| -> Option<Adapter> {
            if !settings.targets(&name, defaults) {
                return None;
            }
            let adapter = match source {
                AdapterSource::Fresh(_) => Adapter::fresh(&mut rng, d_in, d_out, settings, &device),
                AdapterSource::Peft(w) => Adapter::load(&w.pp(&name), d_in, d_out, settings),
            };
            adapted.push(name);
            Some(adapter)
        };
        // One adapter slot per linear layer (a fused layer's parts each of their own width).
        let mut one = |name: String, [d_in, d_out]: [usize; 2]| LinearLora {
            parts: vec![make(name, d_in, d_out)],
        };
        for (i, layer) in self.encoder.layers.iter_mut().enumerate() {
            let (parts, [attn_out, ffn_in, ffn_out]) = layer_names(family, i);
            let [d_in, total] = layer.qkv.weight.dims();
            let width = total / parts.len();
            let qkv = parts
                .into_iter()
                .map(|p| one(p, [d_in, width]).parts.pop().flatten())
                .collect();
            layer.lora = Some(LayerLora {
                qkv: LinearLora { parts: qkv },
                attn_out: one(attn_out, layer.attn_out.weight.dims()),
                ffn_in: one(ffn_in, layer.ffn_in.weight.dims()),
                ffn_out: one(ffn_out, layer.ffn_out.weight.dims()),
            });
        }
        let l = layout(family);
        if let (Some(pooler), Some(name)) = (&mut self.pooler, l.pooler) {
            pooler.lora = Some(one(join(l.prefix, name), pooler.dense.weight.dims()));
        }
        if adapted.is_empty() {
            let asked = if settings.target_modules.iter().all(|t| t.trim().is_empty()) {
                defaults.join(", ")
            } else {
                settings.target_modules.join(", ")
            };
            return Err(ModelError::Config(format!(
                "LoRA: no linear layer of this {family:?} model is named {asked}; it can adapt {}",
                short_names(&self.adaptable()).join(", ")
            )));
        }
        let modules_to_save = self.lora_modules_to_save();
        if let AdapterSource::Peft(w) = source {
            let config = self.encoder.config.clone();
            let num_labels = w
                .pp(l.classifier)
                .shape_of("weight")
                .and_then(|s| s.first().copied())
                .unwrap_or(self.num_labels());
            self.head = ClassifierHead::from_weights(
                w,
                &config,
                self.pooling,
                num_labels,
                self.head.dropout.prob,
            );
            if let (Some(pooler), Some(name)) = (&mut self.pooler, l.pooler) {
                let at = w.pp(join(l.prefix, name));
                if at.contains("weight") {
                    let d = config.hidden_size;
                    pooler.dense = at.linear(d, d);
                }
            }
        }
        let mut settings = settings.clone();
        if settings.target_modules.iter().all(|t| t.trim().is_empty()) {
            settings.target_modules = defaults.iter().map(|t| t.to_string()).collect();
        }
        Ok((
            self,
            LoraFacts {
                settings,
                modules_to_save,
                adapted,
            },
        ))
    }

    /// The classifier as LoRA trains it (on the autodiff device): the encoder and BERT's pooler
    /// frozen (a pooler the base lacked excepted), the head trainable; then [`Self::with_lora`].
    pub fn frozen_for_lora(self) -> Self {
        use burn::module::Module;
        Self {
            encoder: self.encoder.no_grad(),
            pooler: self.pooler.map(|p| if p.fresh { p } else { p.no_grad() }),
            ..self
        }
    }

    /// Whether any layer carries unmerged adapters.
    pub fn has_lora(&self) -> bool {
        self.encoder.layers.iter().any(|l| l.lora.is_some())
            || self.pooler.as_ref().is_some_and(|p| p.lora.is_some())
    }

    /// The adapters folded into the weights (`W + scale · B A`) and removed: the same outputs
    /// (without LoRA's dropout), at the speed of the plain model.
    pub fn merge_lora(mut self) -> Self {
        self.encoder.layers = std::mem::take(&mut self.encoder.layers)
            .into_iter()
            .map(|mut layer| {
                if let Some(lora) = layer.lora.take() {
                    layer.qkv = lora.qkv.merge(layer.qkv);
                    layer.attn_out = lora.attn_out.merge(layer.attn_out);
                    layer.ffn_in = lora.ffn_in.merge(layer.ffn_in);
                    layer.ffn_out = lora.ffn_out.merge(layer.ffn_out);
                }
                layer
            })
            .collect();
        if let Some(mut pooler) = self.pooler.take() {
            if let Some(lora) = pooler.lora.take() {
                pooler.dense = lora.merge(pooler.dense);
            }
            self.pooler = Some(pooler);
        }
        self
    }

    /// PEFT's `adapter_model.safetensors`: every adapter, then the modules to save (the head,
    /// a fresh pooler), under [`PEFT_PREFIX`].
    pub fn export_lora(&self, out: &mut Exporter) -> Result<(), ModelError> {
        let family = self.encoder.config.family;
        if self.pooling == Pooling::Mean && family != Family::ModernBert {
            return Err(ModelError::Unsupported(
                "this classifier reads the mean of the tokens, which transformers' model (and so \
                 a PEFT adapter on it) cannot: export the merged model instead"
                    .into(),
            ));
        }
        let l = layout(family);
        let mut root = out.pp(PEFT_PREFIX);
        for (i, layer) in self.encoder.layers.iter().enumerate() {
            let Some(lora) = &layer.lora else { continue };
            let (parts, [attn_out, ffn_in, ffn_out]) = layer_names(family, i);
            let named = parts.iter().zip(&lora.qkv.parts).chain([
                (&attn_out, &lora.attn_out.parts[0]),
                (&ffn_in, &lora.ffn_in.parts[0]),
                (&ffn_out, &lora.ffn_out.parts[0]),
            ]);
            for (name, adapter) in named {
                if let Some(adapter) = adapter {
                    adapter.export(&mut root.pp(name));
                }
            }
        }
        if let (Some(pooler), Some(name)) = (&self.pooler, l.pooler) {
            let name = join(l.prefix, name);
            if let Some(Some(adapter)) = pooler.lora.as_ref().map(|p| &p.parts[0]) {
                adapter.export(&mut root.pp(&name));
            }
            if pooler.fresh {
                root.pp(&name).linear(&pooler.dense);
            }
        }
        self.head.export(family, &mut root);
        Ok(())
    }
}

/// The names without the layer index's prefix (`attention.self.query`), once each.
fn short_names(names: &[String]) -> Vec<String> {
    let mut out: Vec<String> = Vec::new();
    for n in names {
        let short = match n.rsplit_once(".0.") {
            Some((_, tail)) => tail.to_string(),
            None => n.clone(),
        };
        if !out.contains(&short) {
            out.push(short);
        }
    }
    out
}
