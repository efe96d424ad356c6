//! "Export as a training script": the generated `train.py` runs in Python (transformers' Trainer,
//! PEFT for LoRA; the venv scripts/setup-test.sh makes) for one epoch on tiny-bert, reads the file
//! as Tunelab does, splits it exactly as Tunelab does, trains, writes its metrics, and saves a model
//! (or a PEFT adapter) that Tunelab loads and classifies with.

mod common;

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::process::Command;

use burn::prelude::*;
use common::*;
use tunelab::data::{import_dataset, stratified_split, TableOptions};
use tunelab::hub::ModelFiles;
use tunelab::pipelines::TextClassifier;
use tunelab::train::script::{requirements, training_script, DataLayout, ScriptSpec};
use tunelab::train::{LoraSettings, Mode, TrainingArgs};

/// The venv's interpreter (scripts/setup-test.sh makes it where scripts/env.sh says).
fn python() -> PathBuf {
    let venv = std::env::var("TUNELAB_TORCH_VENV")
        .map(PathBuf::from)
        .unwrap_or_else(|_| {
            PathBuf::from(std::env::var("HOME").unwrap_or_default())
                .join(".cache/tunelab/pyenv-torch")
        });
    let py = venv.join("bin/python");
    assert!(
        py.exists(),
        "{} is missing: run scripts/setup-test.sh (it installs torch, transformers, peft and \
         accelerate there)",
        py.display()
    );
    py
}

/// A CSV with an id column, a header, a blank line, a ragged row and a row without a label:
/// what the script must skip as Tunelab does.
fn reviews() -> String {
    let mut csv = String::from("id,review,sentiment\n");
    for i in 0..24 {
        csv.push_str(&format!("{i},a good film number {i},positive\n"));
        csv.push_str(&format!("{i}b,\"a bad, bad film number {i}\",negative\n"));
        if i == 3 {
            csv.push('\n');
            csv.push_str("x,too,many,fields\n");
            csv.push_str("y,no label here,\n");
        }
    }
    csv
}

fn run_script(dir: &Path, spec: &ScriptSpec) -> serde_json::Value {
    std::fs::create_dir_all(dir).unwrap();
    std::fs::write(dir.join("train.py"), training_script(spec)).unwrap();
    std::fs::write(dir.join("requirements.txt"), requirements(spec.args.mode)).unwrap();
    std::fs::write(dir.join("reviews.csv"), reviews()).unwrap();
    let out = Command::new(python())
        .current_dir(dir)
        .env("HF_HUB_OFFLINE", "1")
        .env("TOKENIZERS_PARALLELISM", "false")
        .env("CUDA_VISIBLE_DEVICES", "")
        .args(["train.py", "--model"])
        .arg(fixture_model("tiny-bert"))
        .output()
        .unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        out.status.success(),
        "train.py failed:\n{stdout}\n{}",
        &stderr[stderr.len().saturating_sub(3000)..]
    );
    eprintln!("{stdout}");
    serde_json::from_slice(&std::fs::read(dir.join("output/metrics.json")).unwrap()).unwrap()
}

fn spec(mode: Mode) -> ScriptSpec {
    ScriptSpec {
        base_model: "tiny-bert".into(),
        args: TrainingArgs {
            mode,
            num_train_epochs: 1,
            per_device_train_batch_size: 4,
            max_length: 32,
            learning_rate: 1e-3,
            dropout: false,
            lora: LoraSettings {
                r: 4,
                ..LoraSettings::default()
            },
            ..TrainingArgs::default()
        },
        data: DataLayout {
            file: "reviews.csv".into(),
            delimiter: ',',
            has_header: true,
            columns: 3,
            text_column: 1,
            label_column: 2,
        },
        test: None,
        test_fraction: 0.25,
        split_seed: 7,
        lora_targets: vec!["query".into(), "value".into()],
        modules_to_save: vec!["classifier".into()],
    }
}

/// Tunelab's own split of `reviews()`, as the page would make it.
fn tunelab_split() -> (Vec<usize>, Vec<usize>) {
    let (data, report) =
        import_dataset(reviews().as_bytes(), &TableOptions::default(), None, None).unwrap();
    assert_eq!((report.text_column.as_str(), data.len()), ("review", 48));
    let split = stratified_split(&data.labels, data.num_classes(), 0.25, 7).unwrap();
    (split.train, split.test)
}

fn texts_scored(files: ModelFiles) -> Vec<Vec<(String, f32)>> {
    let clf = TextClassifier::load(&files, &Device::flex()).unwrap();
    assert_eq!(clf.labels, vec!["negative", "positive"]);
    block_on(clf.classify(&["a good film number 99", "a bad film"]))
        .unwrap()
        .into_iter()
        .map(|r| r.into_iter().map(|s| (s.label, s.score)).collect())
        .collect()
}

#[test]
fn the_exported_script_trains_with_trainer_on_tunelabs_split_full_and_lora() {
    let root = Path::new(env!("CARGO_TARGET_TMPDIR")).join("training-script");
    let (train, test) = tunelab_split();
    for mode in [Mode::Full, Mode::Lora] {
        let dir = root.join(format!("{mode:?}"));
        let metrics = run_script(&dir, &spec(mode));
        // The same rows in each part, in the same order.
        let split: serde_json::Value =
            serde_json::from_slice(&std::fs::read(dir.join("output/split.json")).unwrap()).unwrap();
        let indices = |k: &str| -> Vec<usize> {
            split[k]
                .as_array()
                .unwrap()
                .iter()
                .map(|v| v.as_u64().unwrap() as usize)
                .collect()
        };
        assert_eq!(indices("train"), train, "{mode:?}: training part");
        assert_eq!(indices("test"), test, "{mode:?}: test part");
        // One evaluation, with Tunelab's metrics (binary: "positive" is the positive class).
        assert_eq!(
            metrics["labels"],
            serde_json::json!(["negative", "positive"])
        );
        assert_eq!(metrics["average"], "binary");
        let epochs = metrics["epochs"].as_array().unwrap();
        assert_eq!(epochs.len(), 1, "{metrics}");
        let accuracy = epochs[0]["accuracy"].as_f64().unwrap();
        assert!((0.0..=1.0).contains(&accuracy), "{metrics}");
        let confusion = &epochs[0]["confusion"];
        let total: u64 = confusion
            .as_array()
            .unwrap()
            .iter()
            .flat_map(|r| r.as_array().unwrap().iter().map(|v| v.as_u64().unwrap()))
            .sum();
        assert_eq!(total as usize, test.len());
        // What it saved, Tunelab loads: the model folder, or the adapter on the base.
        let saved = dir.join("output/model");
        let files = match mode {
            Mode::Lora => {
                let adapter: BTreeMap<String, Vec<u8>> = std::fs::read_dir(&saved)
                    .unwrap()
                    .map(|e| {
                        let e = e.unwrap();
                        (
                            e.file_name().to_string_lossy().into_owned(),
                            std::fs::read(e.path()).unwrap(),
                        )
                    })
                    .collect();
                let base = ModelFiles::from_dir(fixture_model("tiny-bert")).unwrap();
                // The label names from the labels.json the script writes beside the adapter.
                ModelFiles::from_entries(
                    block_on(tunelab::train::adapter::apply_adapter(
                        &base,
                        &adapter,
                        &Device::flex(),
                    ))
                    .unwrap(),
                )
            }
            _ => ModelFiles::from_dir(&saved).unwrap(),
        };
        let scores = texts_scored(files);
        eprintln!("{mode:?}: accuracy {accuracy}, scores {scores:?}");
    }
}
