//! What the engine holds between requests: the device, the loaded models by use, the base model
//! to fine-tune, the tables read for training, and the last fine-tuned model. One per worker.

use std::cell::RefCell;
use std::rc::Rc;

use crate::data::Table;
use crate::device::Compute;
use crate::error::Error;
use crate::hub::ModelFiles;
use crate::model::bert::SequenceClassifier;
use crate::model::ModelConfig;
use crate::pipelines::{FillMask, TextClassifier};
use crate::prompt::LanguageModel;

/// A model to fine-tune: its files (decoded anew for each run) and its name.
pub struct BaseModel {
    pub files: ModelFiles,
    pub name: String,
}

/// A CSV/TSV file read for training, with the name the user's file had.
pub struct NamedTable {
    pub name: String,
    pub table: Table,
    /// SHA-256 of the file's bytes (for the model card).
    pub sha256: String,
}

/// The model a training run produced, with what saving it needs.
pub struct Trained {
    pub model: SequenceClassifier,
    pub config: ModelConfig,
    pub labels: Vec<String>,
    /// The base model's files (its tokenizer files go into the saved folder).
    pub source: ModelFiles,
    pub base_name: String,
    /// What the model card says about the run.
    pub facts: crate::train::card::RunFacts,
}

/// An encoder after masked-LM training on the user's text.
pub struct Adapted {
    pub model: crate::model::bert::MaskedLm,
    /// The base model's files (config, tokenizer) and name, and the text's source.
    pub base: ModelFiles,
    pub base_name: String,
    pub text_name: String,
}

/// Sentences and their embeddings.
pub struct Embedded {
    pub sentences: Vec<String>,
    pub rows: Vec<Vec<f32>>,
}

/// The engine's state. A backend switch replaces it whole: tensors live on one device.
#[derive(Default)]
pub struct Engine {
    pub compute: Option<Compute>,
    /// How language models compute on a GPU (the page's setting).
    pub precision: crate::device::Precision,
    pub classifier: Option<Rc<TextClassifier>>,
    /// The classifier slot's model when it is a token classifier (then `classifier` is empty).
    pub tagger: Option<Rc<crate::pipelines::Tagger>>,
    pub fill_mask: Option<Rc<FillMask>>,
    pub language_model: Option<Rc<LanguageModel>>,
    pub base: Option<Rc<BaseModel>>,
    /// The base model's key in browser storage, when it is kept there.
    pub base_stored: Option<String>,
    pub embedder: Option<Rc<crate::pipelines::Embedder>>,
    /// The sentences last embedded for similarity, with their embeddings: asking again about
    /// the same sentences (another query) embeds only the query.
    pub embedded: Option<Rc<Embedded>>,
    pub train_table: Option<Rc<NamedTable>>,
    pub test_table: Option<Rc<NamedTable>>,
    pub trained: Option<Rc<Trained>>,
    /// The encoder adapted by masked-LM training, with the base it started from.
    pub adapted: Option<Rc<Adapted>>,
    /// What helper engines are sent to classify as the classifier does (when there are
    /// helpers).
    pub classifier_replica: Option<Rc<crate::pool::Replica>>,
    /// Where helper engines find the language model's files (when there are helpers).
    pub language_model_files: Option<crate::pool::Files>,
    /// The last label scorer sent to the helpers with the language model.
    pub scorer_replica: Option<Rc<crate::pool::Replica>>,
    /// A helper's model: the replica it was sent.
    pub copy: Option<Rc<crate::pool::Built>>,
}

thread_local! {
    static ENGINE: RefCell<Engine> = RefCell::new(Engine::default());
}

/// Changes the engine's state.
pub fn update(f: impl FnOnce(&mut Engine)) {
    ENGINE.with(|e| f(&mut e.borrow_mut()));
}

/// Something the engine holds, or an error saying what to load first.
/// What `get` finds in the engine's state, if anything.
pub fn peek<T>(get: impl FnOnce(&Engine) -> Option<T>) -> Option<T> {
    ENGINE.with(|e| get(&e.borrow()))
}

pub fn need<T>(get: impl FnOnce(&Engine) -> Option<T>, what: &str) -> Result<T, Error> {
    ENGINE
        .with(|e| get(&e.borrow()))
        .ok_or_else(|| Error::usage(format!("load a {what} first")))
}

/// How models loaded for inference compute on a GPU (the page's setting, with `Start`).
pub fn precision() -> crate::device::Precision {
    ENGINE.with(|e| e.borrow().precision)
}

/// The device (after `Start`).
pub fn compute() -> Result<Compute, Error> {
    ENGINE
        .with(|e| e.borrow().compute.clone())
        .ok_or_else(|| Error::usage("the engine has not started"))
}
