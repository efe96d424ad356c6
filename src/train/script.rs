//! "Export as a training script": a self-contained Python script (and its `requirements.txt`)
//! that runs the same fine-tuning with transformers' `Trainer` on a GPU machine: the same base
//! model, the same reading of the data file, Tunelab's own stratified split ported bit for bit
//! (SplitMix64 with the same seed), the same arguments and metrics; `--gpus N` runs it under
//! `accelerate launch` on several GPUs. The script's text is `train_script.py`, with the run's
//! settings written into it as JSON.

use serde_json::json;

use super::args::{Mode, TrainingArgs};

/// Where the data comes from and how it is read.
#[derive(Debug, Clone, PartialEq)]
pub struct DataLayout {
    pub file: String,
    pub delimiter: char,
    pub has_header: bool,
    pub columns: usize,
    pub text_column: usize,
    pub label_column: usize,
}

/// Everything the script reproduces.
#[derive(Debug, Clone, PartialEq)]
pub struct ScriptSpec {
    /// A Hub id, or the name of the base model's folder.
    pub base_model: String,
    pub args: TrainingArgs,
    pub data: DataLayout,
    /// The separate test file, when the run has one (else the split below).
    pub test: Option<DataLayout>,
    pub test_fraction: f64,
    pub split_seed: u64,
    /// LoRA's target layers (resolved) and modules to save.
    pub lora_targets: Vec<String>,
    pub modules_to_save: Vec<String>,
}

const TEMPLATE: &str = include_str!("train_script.py");

fn layout(d: &DataLayout) -> serde_json::Value {
    json!({
        "file": d.file,
        "delimiter": d.delimiter.to_string(),
        "has_header": d.has_header,
        "columns": d.columns,
        "text_column": d.text_column,
        "label_column": d.label_column,
    })
}

/// The script: the template with the run's settings as a JSON string literal.
pub fn training_script(spec: &ScriptSpec) -> String {
    let mut data = layout(&spec.data);
    data["test_file"] = spec.test.as_ref().map(|t| t.file.clone()).into();
    data["test_fraction"] = spec.test_fraction.into();
    data["split_seed"] = spec.split_seed.into();
    let config = json!({
        "base_model": spec.base_model,
        "args": spec.args,
        "data": data,
        "test_data": spec.test.as_ref().map(layout),
        "lora": {
            "r": spec.args.lora.r,
            "alpha": spec.args.lora.alpha,
            "dropout": spec.args.lora.dropout,
            "target_modules": spec.lora_targets,
            "modules_to_save": spec.modules_to_save,
            "rslora": spec.args.lora.rslora,
        },
    });
    let text = serde_json::to_string_pretty(&config).unwrap_or_default();
    // A JSON string literal is a Python string literal too.
    let literal = serde_json::to_string(&text).unwrap_or_default();
    TEMPLATE.replacen("TUNELAB_CONFIG", &literal, 1)
}

/// `requirements.txt`: what the script imports (PEFT for LoRA).
pub fn requirements(mode: Mode) -> String {
    let mut out = String::from("torch\ntransformers>=4.46\naccelerate\nnumpy\nsafetensors\n");
    if mode == Mode::Lora {
        out.push_str("peft>=0.13\n");
    }
    out
}

/// The folder's `README.md`: how to run it, and where it differs from the browser's run.
pub fn readme(spec: &ScriptSpec) -> String {
    let mut out = format!(
        "# Fine-tuning `{}` on `{}` with transformers' Trainer\n\n\
         Exported by Tunelab. Put `{}` next to `train.py` (or pass `--data`), then:\n\n\
         ```sh\npip install -r requirements.txt\npython train.py                 # one GPU, or the CPU\n\
         python train.py --gpus 4        # four GPUs on this machine (accelerate launch)\n```\n\n\
         Use it when the data or the model is too big for a browser tab. It reads the file as \
         Tunelab did, splits it with Tunelab's own seeded stratified split (seed {}), and trains \
         with the same arguments; the metrics (accuracy, and precision, recall and F1 of the \
         positive class with two labels, macro averages otherwise) are Tunelab's. Weights will \
         not match the browser's run to the last digit: the new head's initialisation and the \
         dropout masks come from torch's generator.\n",
        spec.base_model, spec.data.file, spec.data.file, spec.split_seed
    );
    match spec.args.mode {
        Mode::Head => out.push_str(
            "\nHead-only mode freezes the encoder and trains transformers' classification head; \
             for a sentence-transformers model Tunelab's head read the mean of the tokens, \
             transformers' reads the first token (through BERT's pooler).\n",
        ),
        Mode::Lora => out.push_str(
            "\nLoRA: the adapter (PEFT) is saved in `output/model`; `--merge` saves the merged \
             model instead.\n",
        ),
        Mode::Full => {}
    }
    out
}
