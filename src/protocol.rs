//! The messages between the page (UI) and the engine running in a Web Worker. Requests go in,
//! events come out; both are JSON, with bulky bytes (a CSV, model files, a saved model) carried
//! beside the JSON as a transferable payload.
//!
//! This is the UI's only door to the engine: every type the pages show is named (or re-exported)
//! here, and the pages do no engine work of their own.

use serde::{Deserialize, Serialize};

pub use crate::data::{ImportReport, TableOptions, TablePreview};
pub use crate::device::{Backend, Precision};
pub use crate::hub::{check_model_id, check_url_template, StoredModel, HUB_URL_TEMPLATE};
pub use crate::math::LabelScore;
pub use crate::metrics::Metrics;
pub use crate::pipelines::MaskCandidate;
pub use crate::pool::{Build, RowsOf};
pub use crate::prompt::generate::{Generation, GenerationConfig, StopReason};
pub use crate::prompt::score::LabelScores;
pub use crate::prompt::template::{Example, Template};
pub use crate::train::{Mode, Outcome, Phase, TrainEvent, TrainingArgs};

/// Which backend to start.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub enum BackendChoice {
    /// WebGPU when available, else the CPU.
    Auto,
    Cpu,
}

/// Where the engine keeps a loaded model, by what it is used for.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub enum Slot {
    /// A sequence classifier (Classify page, widget).
    Classifier,
    /// A masked LM (fill-mask box).
    FillMask,
    /// A GPT-2 model (Prompt page).
    LanguageModel,
    /// The encoder to fine-tune (Fine-tune page).
    Base,
    /// A sentence embedding model (Similarity page).
    Embedder,
}

impl Slot {
    pub const ALL: [Slot; 5] = [
        Slot::Classifier,
        Slot::FillMask,
        Slot::LanguageModel,
        Slot::Base,
        Slot::Embedder,
    ];

    pub fn describe(self) -> &'static str {
        match self {
            Slot::Classifier => "classifier",
            Slot::FillMask => "fill-mask model",
            Slot::LanguageModel => "language model",
            Slot::Base => "base model",
            Slot::Embedder => "embedding model",
        }
    }
}

/// A training run kept in browser storage (checkpoint, data, settings): resumable after a reload
/// or a crash.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct RunInfo {
    pub id: String,
    pub base_name: String,
    /// The base model's key in browser storage.
    pub base_key: String,
    pub data_file: String,
    pub test_file: Option<String>,
    pub text_column: usize,
    pub label_column: usize,
    pub test_fraction: f64,
    pub split_seed: u64,
    pub separate_test: bool,
    pub args: TrainingArgs,
    /// Where the last checkpoint stands: steps done, of how many, and the epoch under way.
    pub step: usize,
    pub total_steps: usize,
    pub epoch: usize,
    /// When the last checkpoint was kept (ms since the epoch).
    pub saved_ms: f64,
    /// Bytes of the checkpoint and data.
    pub bytes: u64,
    /// Where it is kept ("the origin-private file system" or "the Cache API").
    pub storage: String,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub enum ModelSource {
    /// A model id on the Hub (or a mirror): files come from `url_template`.
    Hub { id: String, url_template: String },
    /// Files the user chose; they travel in the payload as `File` objects.
    Local,
    /// A model kept in browser storage, by its key ([`StoredModel::key`]).
    Stored { key: String },
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub enum Request {
    Start {
        backend: BackendChoice,
        /// Engine workers on the CPU (this one and its helpers); `None`: one per core, as
        /// memory allows.
        #[serde(default)]
        workers: Option<usize>,
        /// How language models compute on a GPU.
        #[serde(default)]
        precision: Precision,
    },
    Load {
        slot: Slot,
        source: ModelSource,
    },
    ListStored,
    DeleteStored {
        key: String,
    },
    Classify {
        texts: Vec<String>,
    },
    /// Named entities with the loaded classifier, a token classifier: answered by `Tagged`.
    Tag {
        texts: Vec<String>,
    },
    /// Zero-shot classification with the loaded classifier, an NLI model: answered by
    /// `Classified`, the candidate labels scored for each text.
    ZeroShot {
        texts: Vec<String>,
        spec: crate::pipelines::zero_shot::ZeroShotSpec,
    },
    FillMask {
        text: String,
        k: usize,
    },
    /// Embeds `sentences` (and `queries`) with the embedding model: answered by `Similarities`,
    /// the matrix of every pair of sentences (up to [`MAX_MATRIX`] of them) and each query's
    /// `top_k` nearest sentences.
    ///
    /// [`MAX_MATRIX`]: crate::pipelines::similarity::MAX_MATRIX
    Similarity {
        sentences: Vec<String>,
        queries: Vec<String>,
        top_k: usize,
    },
    Generate {
        prompt: String,
        config: GenerationConfig,
    },
    ScoreLabels {
        text: String,
        scorer: ScorerSpec,
    },
    /// Few-shot examples drawn per class, with a seed, from a labelled CSV (payload: its bytes).
    SampleExamples {
        per_class: usize,
        seed: u64,
        options: TableOptions,
    },
    /// Scores every row of a labelled CSV (payload: its bytes).
    EvaluatePrompt {
        scorer: ScorerSpec,
        options: TableOptions,
        text_column: Option<String>,
        label_column: Option<String>,
    },
    /// Reads a CSV/TSV (payload: its bytes) and keeps it for training.
    ParseTable {
        name: String,
        options: TableOptions,
        /// Keep it as the separate test file instead of the training data.
        #[serde(default)]
        test: bool,
    },
    /// Evaluates the loaded classifier, an NLI model, zero-shot on the test set that `Train`
    /// with the same settings would use, the dataset's label names as candidate labels:
    /// answered by `Progress` and `ZeroShotEvaluated`.
    ZeroShotBaseline {
        text_column: usize,
        label_column: usize,
        test_fraction: f64,
        split_seed: u64,
        separate_test: bool,
        template: String,
    },
    /// Fine-tunes the base model on the kept table. The test set is a stratified, seeded split
    /// of it (`test_fraction`), or the kept test file when `separate_test` is set.
    Train {
        text_column: usize,
        label_column: usize,
        test_fraction: f64,
        split_seed: u64,
        #[serde(default)]
        separate_test: bool,
        args: TrainingArgs,
    },
    /// Masked-LM training of the base model on unlabelled text: the kept table's `text_column`,
    /// or (a text file in the payload) its non-empty lines; `held_out` of them (a seeded share)
    /// measure the perplexity before and after. Answered by `Train` events (`MaskedLm` each
    /// epoch, epoch 0 before training).
    PreTrain {
        text_column: usize,
        args: TrainingArgs,
        probability: f64,
        held_out: f64,
    },
    /// The encoder `PreTrain` adapted as the base model to fine-tune (kept in browser storage):
    /// answered by `Loaded`.
    UseAdapted,
    /// The adapted encoder as a zip of its `*ForMaskedLM` folder (event payload).
    ExportAdapted,
    /// The training runs kept in browser storage: answered by `Runs`.
    ListRuns,
    /// Forgets a kept run (its checkpoint and data).
    DeleteRun {
        id: String,
    },
    /// Resumes a kept run from its checkpoint: its base model is loaded from browser storage
    /// (`Loaded`), its data read again, and training goes on from where it stood, with `Train`
    /// events as for `Train`.
    ResumeRun {
        id: String,
    },
    /// The same run as `Train` as a Python script for transformers' Trainer: a zip of `train.py`,
    /// `requirements.txt` and `README.md` (event payload).
    ExportScript {
        text_column: usize,
        label_column: usize,
        test_fraction: f64,
        split_seed: u64,
        #[serde(default)]
        separate_test: bool,
        args: TrainingArgs,
    },
    /// The trained model as a zip of its Hugging Face folder, or (`adapter`, after LoRA) of its
    /// PEFT adapter folder (event payload).
    ExportTrained {
        #[serde(default)]
        adapter: bool,
    },
    /// Applies a PEFT LoRA adapter (its files, or a zip, as `File` objects in the payload) to the
    /// base model and puts the result in the classifier slot: answered by `Loaded`.
    ApplyAdapter,
    /// Puts the trained model in the classifier slot and keeps it in browser storage.
    UseTrained {
        name: String,
    },
    /// Between engines: a helper builds this model and keeps it as `version`. Its files are in
    /// browser storage under `stored`, or else in the payload, one after the other, with their
    /// names and sizes in `files`.
    Replicate {
        version: u64,
        build: Build,
        rows: RowsOf,
        max_length: usize,
        #[serde(default)]
        stored: Option<String>,
        #[serde(default)]
        files: Vec<(String, usize)>,
    },
    /// Between engines: the rows of `texts` from the model kept as `version`; answered with
    /// `Event::Rows`.
    Rows {
        version: u64,
        texts: Vec<String>,
    },
    /// Makes the engine fail on purpose, to test that the page recovers. Only debug builds (the
    /// test build) take it; a release build answers with an error.
    Crash {
        how: Crash,
    },
    /// Makes the first helper engine fail on purpose (debug builds only) when it is given its
    /// next rows to compute, to test that the job goes on without it.
    CrashHelper {
        how: Crash,
    },
    /// Between engines (debug builds only): fail when asked for rows next.
    CrashOnNextRows {
        how: Crash,
    },
}

/// How [`Request::Crash`] (and [`Request::CrashHelper`]) fails.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub enum Crash {
    /// A Rust panic: the panic hook reports it, then the module traps.
    Panic,
    /// A trap with no panic (as a failed allocation aborts): only the worker's error event tells.
    Abort,
}

/// Label scoring settings, as the Prompt page edits them.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ScorerSpec {
    pub template: Template,
    pub labels: Vec<String>,
    pub verbalizers: Vec<String>,
    pub calibrate: bool,
    /// Prompts as chat turns through the model's chat template.
    #[serde(default)]
    pub chat: Option<crate::prompt::chat::ChatSpec>,
}

/// A message to the engine.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub enum ToWorker {
    /// Work, answered by events tagged with `id` and closed by `Done` or `Error`.
    Request { id: u64, request: Box<Request> },
    /// Stops the request `target` at its next step (no answer of its own).
    Cancel { target: u64 },
}

/// What a loaded model is.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ModelInfo {
    pub name: String,
    pub architecture: String,
    pub labels: Vec<String>,
    pub parameters: usize,
    pub bytes: usize,
    /// Its key in browser storage ([`StoredModel::key`]), when it is kept there: a restarted
    /// engine reloads it from there.
    #[serde(default)]
    pub stored: Option<String>,
    /// Why it is not kept in browser storage though it should be (a full quota): it works
    /// until the page closes.
    #[serde(default)]
    pub storage_warning: Option<String>,
    /// What a model loaded for inference computes in on a GPU ("f16" or "f32", [`Precision`]);
    /// `None` for a base model to fine-tune (f32) and on the CPU (always f32).
    #[serde(default)]
    pub precision: Option<String>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub enum Event {
    /// The worker is listening (sent once, unsolicited).
    Ready,
    /// The engine panicked (sent unsolicited by the panic hook, just before the module traps):
    /// the worker is dead and the page starts another.
    Crashed {
        message: String,
    },
    Started {
        backend: Backend,
        /// Engine workers computing (this one and its helpers).
        #[serde(default = "one")]
        workers: usize,
    },
    Download {
        file: String,
        loaded: u64,
        total: Option<u64>,
        bytes_per_s: f64,
        from_cache: bool,
    },
    Loaded {
        slot: Slot,
        info: ModelInfo,
    },
    StoredModels {
        models: Vec<StoredModel>,
        usage: Option<(f64, f64)>,
    },
    /// The kept training runs, newest first, and the bytes they take.
    Runs {
        runs: Vec<RunInfo>,
        bytes: u64,
    },
    Classified {
        results: Vec<Vec<LabelScore>>,
    },
    Filled {
        masks: Vec<Vec<MaskCandidate>>,
    },
    /// The entities of each text (`aggregation_strategy="simple"`).
    Tagged {
        entities: Vec<Vec<crate::pipelines::ner::Entity>>,
    },
    Similarities {
        /// The model's similarity function.
        function: crate::pipelines::similarity::Similarity,
        /// Every pair of sentences, when there are at most `MAX_MATRIX`.
        matrix: Option<Vec<Vec<f32>>>,
        /// For each query, the nearest sentences, best first.
        hits: Vec<Vec<crate::pipelines::similarity::Hit>>,
    },
    Token {
        text: String,
    },
    Generated {
        generation: Generation,
    },
    Scored {
        scores: LabelScores,
    },
    /// Few-shot examples sampled from a CSV.
    Examples {
        examples: Vec<Example>,
    },
    Progress {
        done: usize,
        total: usize,
    },
    /// `scored` of the table's `total` rows: fewer when the evaluation was stopped, and then
    /// the metrics are those of the rows scored; `truncated` of them were cut to fit the model.
    PromptEvaluated {
        metrics: Metrics,
        report: ImportReport,
        scored: usize,
        total: usize,
        truncated: usize,
    },
    /// A zero-shot baseline's metrics on `scored` of the `total` test rows (fewer when stopped).
    ZeroShotEvaluated {
        metrics: Metrics,
        scored: usize,
        total: usize,
    },
    Table {
        preview: TablePreview,
    },
    Imported {
        report: ImportReport,
        train: usize,
        test: usize,
    },
    Train {
        event: TrainEvent,
    },
    /// A file for the user to save (payload: its bytes).
    Exported {
        file_name: String,
    },
    /// A helper's rows (payload: `count` rows of little-endian f32, flat).
    Rows {
        count: usize,
    },
    Done,
    Error {
        message: String,
    },
}

fn one() -> usize {
    1
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct FromWorker {
    /// The request this answers (0 for unsolicited events).
    pub id: u64,
    pub event: Event,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn messages_round_trip_as_json() {
        let m = ToWorker::Request {
            id: 7,
            request: Box::new(Request::Load {
                slot: Slot::Classifier,
                source: ModelSource::Hub {
                    id: "x/y".into(),
                    url_template: HUB_URL_TEMPLATE.into(),
                },
            }),
        };
        let back: ToWorker = serde_json::from_str(&serde_json::to_string(&m).unwrap()).unwrap();
        assert_eq!(back, m);
        let crash = ToWorker::Request {
            id: 8,
            request: Box::new(Request::Crash { how: Crash::Abort }),
        };
        let back: ToWorker = serde_json::from_str(&serde_json::to_string(&crash).unwrap()).unwrap();
        assert_eq!(back, crash);
        let c = ToWorker::Cancel { target: 7 };
        let back: ToWorker = serde_json::from_str(&serde_json::to_string(&c).unwrap()).unwrap();
        assert_eq!(back, c);
    }

    #[test]
    fn a_model_info_without_a_storage_key_reads_as_not_stored() {
        let json =
            r#"{"name":"m","architecture":"BertModel","labels":[],"parameters":1,"bytes":4}"#;
        let info: ModelInfo = serde_json::from_str(json).unwrap();
        assert_eq!(info.stored, None);
    }
}
