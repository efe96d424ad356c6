//! The messages between the page (UI) and the engine running in a Web Worker. Requests go in,
//! events come out; both are JSON, with bulky bytes (a CSV, model files, a saved model) carried
//! beside the JSON as a transferable payload.

use serde::{Deserialize, Serialize};

use crate::data::{ImportReport, TableOptions};
use crate::device::Backend;
use crate::pipeline::{LabelScore, MaskCandidate};
use crate::prompt::generate::{Generation, GenerationConfig};
use crate::prompt::score::LabelScores;
use crate::prompt::template::Template;
use crate::train::{Metrics, TrainEvent, TrainingArgs};

/// The default model source: the Hugging Face Hub. `{id}` and `{file}` are filled in.
pub const HUB_URL_TEMPLATE: &str = "https://huggingface.co/{id}/resolve/main/{file}";

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
}

impl Slot {
    pub fn describe(self) -> &'static str {
        match self {
            Slot::Classifier => "classifier",
            Slot::FillMask => "fill-mask model",
            Slot::LanguageModel => "language model",
            Slot::Base => "base model",
        }
    }
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub enum ModelSource {
    /// A model id on the Hub (or a mirror): files come from `url_template`.
    Hub { id: String, url_template: String },
    /// Files the user chose; they travel in the payload as `File` objects.
    Local,
    /// A model kept in browser storage, by its key.
    Cached { key: String },
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub enum Request {
    Start {
        backend: BackendChoice,
    },
    Load {
        slot: Slot,
        source: ModelSource,
    },
    ListCached,
    DeleteCached {
        key: String,
    },
    Classify {
        texts: Vec<String>,
    },
    FillMask {
        text: String,
        k: usize,
    },
    Generate {
        prompt: String,
        config: GenerationConfig,
    },
    ScoreLabels {
        text: String,
        scorer: ScorerSpec,
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
    /// Stops the request with this id between steps.
    Cancel {
        target: u64,
    },
    /// The trained model as a zip of its Hugging Face folder (event payload).
    ExportTrained,
    /// Puts the trained model in the classifier slot and keeps it in browser storage.
    UseTrained {
        name: String,
    },
}

/// Label scoring settings, as the Prompt page edits them.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ScorerSpec {
    pub template: Template,
    pub labels: Vec<String>,
    pub verbalizers: Vec<String>,
    pub calibrate: bool,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ToWorker {
    pub id: u64,
    pub request: Request,
}

/// What a loaded model is.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ModelInfo {
    pub name: String,
    pub architecture: String,
    pub labels: Vec<String>,
    pub parameters: usize,
    pub bytes: usize,
}

/// A model in browser storage.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct CachedModel {
    pub key: String,
    pub name: String,
    pub source: String,
    pub files: Vec<(String, u64)>,
    pub bytes: u64,
    pub saved_ms: f64,
}

/// The first rows of a parsed table, for the preview.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct TablePreview {
    pub name: String,
    pub columns: Vec<String>,
    pub rows: Vec<Vec<String>>,
    pub total_rows: usize,
    pub delimiter: char,
    pub has_header: bool,
    pub text_column: usize,
    pub label_column: usize,
    pub ragged: usize,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub enum Event {
    /// The worker is listening (sent once, unsolicited).
    Ready,
    Started {
        backend: Backend,
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
    CachedModels {
        models: Vec<CachedModel>,
        usage: Option<(f64, f64)>,
    },
    Classified {
        results: Vec<Vec<LabelScore>>,
    },
    Filled {
        masks: Vec<Vec<MaskCandidate>>,
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
    Progress {
        done: usize,
        total: usize,
    },
    PromptEvaluated {
        metrics: Metrics,
        report: ImportReport,
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
    Done,
    Error {
        message: String,
    },
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct FromWorker {
    /// The request this answers (0 for unsolicited events).
    pub id: u64,
    pub event: Event,
}

/// The URL of `file` of model `id` under a template with `{id}` and `{file}`.
pub fn file_url(template: &str, id: &str, file: &str) -> String {
    template.replace("{id}", id.trim()).replace("{file}", file)
}

/// Checks a Hub model id (`name` or `owner/name`).
pub fn check_model_id(id: &str) -> Result<(), String> {
    let id = id.trim();
    let ok_char = |c: char| c.is_ascii_alphanumeric() || "-_.".contains(c);
    let parts: Vec<&str> = id.split('/').collect();
    if id.is_empty() {
        return Err(
            "enter a model id such as distilbert-base-uncased-finetuned-sst-2-english".into(),
        );
    }
    if parts.len() > 2
        || parts
            .iter()
            .any(|p| p.is_empty() || !p.chars().all(ok_char) || p.starts_with('.'))
    {
        return Err(format!(
            "\"{id}\" is not a model id (owner/name, letters, digits, - _ .)"
        ));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn urls_and_ids() {
        assert_eq!(
            file_url(HUB_URL_TEMPLATE, "gpt2", "config.json"),
            "https://huggingface.co/gpt2/resolve/main/config.json"
        );
        assert_eq!(
            file_url(
                "http://127.0.0.1:9/models/{id}/{file}",
                "tiny-bert",
                "model.safetensors"
            ),
            "http://127.0.0.1:9/models/tiny-bert/model.safetensors"
        );
        assert!(check_model_id("sentence-transformers/all-MiniLM-L6-v2").is_ok());
        assert!(check_model_id("gpt2").is_ok());
        assert!(check_model_id("../etc").is_err());
        assert!(check_model_id("a/b/c").is_err());
        assert!(check_model_id("").is_err());
    }

    #[test]
    fn messages_round_trip_as_json() {
        let m = ToWorker {
            id: 7,
            request: Request::Load {
                slot: Slot::Classifier,
                source: ModelSource::Hub {
                    id: "x/y".into(),
                    url_template: HUB_URL_TEMPLATE.into(),
                },
            },
        };
        let back: ToWorker = serde_json::from_str(&serde_json::to_string(&m).unwrap()).unwrap();
        assert_eq!(back, m);
    }
}
