//! LoRA adapters as PEFT folders: a LoRA-trained classifier saved as `adapter_config.json` and
//! `adapter_model.safetensors` (which `peft.PeftModel.from_pretrained(base, folder)` loads), and
//! a PEFT adapter applied to a base model's files (merged into a plain classifier folder).
//!
//! PEFT's folder has no place for the label names (they belong to the base model's config when
//! it is loaded with `num_labels`/`id2label`): Tunelab writes them beside it in `labels.json`.

use std::collections::BTreeMap;

use burn::prelude::*;
use serde_json::{json, Value};

use super::args::LoraSettings;
use super::export::{export_classifier, tokenizer_files};
use crate::error::Error;
use crate::hub::ModelFiles;
use crate::model::bert::{
    default_lora_targets, AdapterSource, DropoutRates, HeadInit, SequenceClassifier, PEFT_PREFIX,
};
use crate::model::config::{label_maps, Family};
use crate::model::layers::Exporter;
use crate::model::lora::PeftConfig;
use crate::model::weights::{write_safetensors, Weights};
use crate::pipelines::{checkpoint_pooling, encoder_config};

pub const ADAPTER_CONFIG: &str = "adapter_config.json";
pub const ADAPTER_WEIGHTS: &str = "adapter_model.safetensors";
pub const ADAPTER_LABELS: &str = "labels.json";

/// LoRA's target layers as PEFT's `target_modules`: the settings' names, or the family's
/// defaults when none are given.
pub fn resolved_targets(settings: &LoraSettings, family: Family) -> Vec<String> {
    let given: Vec<String> = settings
        .target_modules
        .iter()
        .map(|t| t.trim().to_string())
        .filter(|t| !t.is_empty())
        .collect();
    if given.is_empty() {
        default_lora_targets(family)
            .iter()
            .map(|t| t.to_string())
            .collect()
    } else {
        given
    }
}

/// PEFT's `adapter_config.json` for `model`'s adapters trained with `settings` on `base_model`.
pub fn adapter_config(
    model: &SequenceClassifier,
    settings: &LoraSettings,
    base_model: &str,
) -> Value {
    let targets = resolved_targets(settings, model.encoder.config.family);
    json!({
        "peft_type": "LORA",
        "task_type": "SEQ_CLS",
        "base_model_name_or_path": base_model,
        "r": settings.r,
        "lora_alpha": settings.alpha,
        "lora_dropout": settings.dropout,
        "target_modules": targets,
        "modules_to_save": model.lora_modules_to_save(),
        "bias": "none",
        "fan_in_fan_out": false,
        "inference_mode": true,
        "init_lora_weights": true,
        "use_rslora": settings.rslora,
        "use_dora": false,
        "layers_to_transform": null,
        "layers_pattern": null,
        "rank_pattern": {},
        "alpha_pattern": {},
        "revision": null,
    })
}

/// The files of a PEFT adapter folder for a LoRA-trained `model`: `adapter_config.json`,
/// `adapter_model.safetensors` (the adapters and the head under PEFT's names), `labels.json`,
/// and the base model's tokenizer files.
pub async fn export_adapter(
    model: &SequenceClassifier,
    settings: &LoraSettings,
    base_model: &str,
    labels: &[String],
    source: &ModelFiles,
) -> Result<Vec<(String, Vec<u8>)>, Error> {
    if !model.has_lora() {
        return Err(Error::usage(
            "this model was not trained with LoRA: it has no adapter to save (save the model instead)",
        ));
    }
    if model.pooling != checkpoint_pooling(&source.config()?) {
        return Err(Error::usage(
            "this classifier pools the tokens otherwise than the base model's config says, \
             which a PEFT adapter on that base cannot: export the merged model instead",
        ));
    }
    let mut out = Exporter::default();
    model.export_lora(&mut out)?;
    let tensors = out.read().await?;
    let pretty = |v: &Value| serde_json::to_vec_pretty(v).map_err(|e| Error::Usage(e.to_string()));
    let mut files = vec![
        (
            ADAPTER_CONFIG.to_string(),
            pretty(&adapter_config(model, settings, base_model))?,
        ),
        (ADAPTER_WEIGHTS.to_string(), write_safetensors(&tensors)?),
        (
            ADAPTER_LABELS.to_string(),
            pretty(&Value::Object(label_maps(labels)))?,
        ),
    ];
    files.extend(tokenizer_files(source));
    Ok(files)
}

/// The label names an adapter folder gives (`labels.json`), when they fit `n` outputs.
fn adapter_labels(files: &BTreeMap<String, Vec<u8>>, n: usize) -> Option<Vec<String>> {
    let v: Value = serde_json::from_slice(files.get(ADAPTER_LABELS)?).ok()?;
    let map = v.get("id2label")?.as_object()?;
    let labels: Option<Vec<String>> = (0..n)
        .map(|i| map.get(&i.to_string())?.as_str().map(str::to_string))
        .collect();
    labels.filter(|l| l.len() == n)
}

/// A PEFT LoRA adapter (its folder's files by name: `adapter_config.json`,
/// `adapter_model.safetensors`, optionally `labels.json`) applied to the base model `base`: the
/// files of a plain classifier folder with the adapters merged into the weights, and the
/// adapter's head. Label names come from `labels.json`, else the base's `id2label` when it has
/// as many, else `LABEL_i`.
pub async fn apply_adapter(
    base: &ModelFiles,
    adapter: &BTreeMap<String, Vec<u8>>,
    device: &Device,
) -> Result<Vec<(String, Vec<u8>)>, Error> {
    let config_bytes = adapter.get(ADAPTER_CONFIG).ok_or_else(|| {
        Error::usage(
            "an adapter folder needs adapter_config.json (PEFT's save_pretrained writes it)",
        )
    })?;
    let weights =
        match adapter.get(ADAPTER_WEIGHTS) {
            Some(w) => w,
            None if adapter.contains_key("adapter_model.bin") => return Err(Error::usage(
                "adapter_model.bin is a PyTorch pickle, which a browser cannot read safely: save \
                 the adapter with safe_serialization=True (PEFT's default) to get \
                 adapter_model.safetensors",
            )),
            None => {
                return Err(Error::usage(
                    "an adapter folder needs adapter_model.safetensors",
                ))
            }
        };
    let peft = PeftConfig::parse(config_bytes)?;
    let config = base.config()?;
    encoder_config(&config)?;
    let pooling = checkpoint_pooling(&config);
    // A fresh head of any size: the adapter's own replaces it.
    let model = SequenceClassifier::for_training(
        &base.weights,
        &config,
        2,
        pooling,
        DropoutRates::default(),
        HeadInit::Fresh(0),
        device,
    )?;
    let w = Weights::from_bytes(weights, PEFT_PREFIX, device)?;
    let mismatch = |e: crate::model::ModelError| {
        let base_name = peft
            .base_model
            .as_deref()
            .map(|b| format!(" (it was trained on {b})"))
            .unwrap_or_default();
        Error::usage(format!(
            "this adapter does not fit the base model{base_name}: {e}"
        ))
    };
    let (model, _) = model
        .with_lora(&peft.settings, AdapterSource::Peft(&w))
        .map_err(mismatch)?;
    w.finish_strict().map_err(mismatch)?;
    let model = model.merge_lora();
    let n = model.num_labels();
    let labels = adapter_labels(adapter, n).unwrap_or_else(|| {
        if config.id2label.len() == n {
            config.id2label.clone()
        } else {
            (0..n).map(|i| format!("LABEL_{i}")).collect()
        }
    });
    export_classifier(&model, &config, &labels, base).await
}
