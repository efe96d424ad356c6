//! Starting the engine and loading models: from a source by id, from browser storage, or from
//! files the user picked (a folder's files or a zip), into the slot the page asked for. Only a
//! model that loaded is kept in browser storage.

use std::rc::Rc;

use burn::module::Module;
use wasm_bindgen::JsValue;

use super::helpers;
use super::state::{self, BaseModel, Engine};
use super::Reply;
use crate::device::{self, Backend, Compute, Precision};
use crate::error::Error;
use crate::hub::download::{fetch_model, Progress};
use crate::hub::storage::{estimate, Store};
use crate::hub::{archive, check_model_id, check_url_template, ModelFiles, Purpose, StoreKey};
use crate::js::{files_of, js_to_bytes};
use crate::model::memory::Footprint;
use crate::model::{ModelConfig, Task};
use crate::pipelines::{Embedder, FillMask, Tagger, TextClassifier};
use crate::pool::Files;
use crate::prompt::LanguageModel;
use crate::protocol::{BackendChoice, Event, ModelInfo, ModelSource, Slot};

/// The device for the user's choice: the CPU when asked; else WebGPU when the browser offers an
/// adapter (described by the browser: burn's adapter info is empty under some drivers) and
/// burn's runtime starts on it; else the CPU with the reason.
async fn device_for(choice: BackendChoice) -> Compute {
    if choice == BackendChoice::Cpu {
        return Compute::cpu("chosen in the settings");
    }
    match crate::probe::probe().await {
        Backend::Cpu { reason } => Compute::cpu(reason),
        Backend::WebGpu { adapter } => match device::webgpu().await {
            Ok(mut c) => {
                c.backend = Backend::WebGpu { adapter };
                c
            }
            Err(reason) => Compute::cpu(reason),
        },
    }
}

/// Starts (or restarts) the engine on the chosen backend; a switch drops every model. On the
/// CPU it starts helper engines too (`workers` in all, or one per core as memory allows).
pub async fn start(
    reply: Reply,
    choice: BackendChoice,
    workers: Option<usize>,
    precision: Precision,
) -> Result<(), Error> {
    let compute = device_for(choice).await;
    helpers::stop();
    let wanted = match compute.backend {
        Backend::Cpu { .. } => helpers::wanted(workers),
        Backend::WebGpu { .. } => 1,
    };
    let started = helpers::start(wanted - 1);
    reply.send(Event::Started {
        backend: compute.backend.clone(),
        workers: 1 + started,
    });
    state::update(|e| {
        *e = Engine {
            compute: Some(compute),
            precision,
            ..Engine::default()
        }
    });
    Ok(())
}

/// Keeps a loaded model's files in browser storage.
pub async fn keep(key: &StoreKey, name: &str, files: &ModelFiles) -> Result<(), Error> {
    Store::open().await?.keep(key, name, files).await
}

/// What the page shows beside a model that could not be kept.
pub fn not_kept(e: &Error) -> String {
    format!("{e}: it works until the page closes (free space on the Models page)")
}

/// A model's files with its name, and the key to keep it under once it loaded.
struct Fetched {
    files: ModelFiles,
    name: String,
    keep_as: Option<StoreKey>,
    /// The storage key it was read from.
    stored: Option<String>,
}

/// Loads a model into `slot`, reports it, then keeps it in browser storage when it came from a
/// source.
pub async fn load(
    reply: Reply,
    slot: Slot,
    source: ModelSource,
    payload: Option<JsValue>,
) -> Result<(), Error> {
    let compute = state::compute()?;
    let fetched = fetch(reply, slot, source, payload).await?;
    let mut info = install(slot, &fetched.files, &fetched.name, &compute)?;
    // The model this one replaced is dropped now: its packed weights with it.
    crate::model::flex::release_packed_weights();
    info.stored = fetched.stored;
    if let Some(key) = &fetched.keep_as {
        // The model is loaded and serves from now on: a failure to keep it (a full quota)
        // is said beside it, not an error that would leave the page naming the old model.
        match keep(key, &fetched.name, &fetched.files).await {
            Ok(()) => info.stored = Some(key.key()),
            Err(e) => info.storage_warning = Some(not_kept(&e)),
        }
    }
    if slot == Slot::Base {
        // A run can resume after a reload only from a base model it can load again.
        let stored = info.stored.clone();
        state::update(|e| e.base_stored = stored);
    }
    share(slot, fetched.files, info.stored.as_deref());
    reply.send(Event::Loaded { slot, info });
    warm_up(slot, &compute);
    Ok(())
}

/// On WebGPU, the loaded model's kernels compiled in the background while the user reads
/// ([`crate::pipelines::warm`]): the load is done and answered; a request that comes meanwhile
/// runs beside the warm-up on the one device. A failed warm-up is only logged.
fn warm_up(slot: Slot, compute: &Compute) {
    if !matches!(compute.backend, Backend::WebGpu { .. }) {
        return;
    }
    wasm_bindgen_futures::spawn_local(async move {
        use crate::pipelines::warm;
        let done = match slot {
            Slot::Classifier => match state::peek(|e| e.classifier.clone()) {
                Some(m) => warm::classifier(&m).await,
                None => match state::peek(|e| e.tagger.clone()) {
                    Some(m) => warm::tagger(&m).await,
                    None => Ok(()),
                },
            },
            Slot::FillMask => match state::peek(|e| e.fill_mask.clone()) {
                Some(m) => warm::fill_mask(&m).await,
                None => Ok(()),
            },
            Slot::LanguageModel => match state::peek(|e| e.language_model.clone()) {
                Some(m) => warm::language_model(&m).await,
                None => Ok(()),
            },
            Slot::Embedder => match state::peek(|e| e.embedder.clone()) {
                Some(m) => warm::embedder(&m).await,
                None => Ok(()),
            },
            // Training compiles its kernels in its first steps, over a run of many.
            Slot::Base => Ok(()),
        };
        if let Err(e) = done {
            web_sys::console::warn_1(&format!("warming the kernels up: {e}").into());
        }
    });
}

async fn fetch(
    reply: Reply,
    slot: Slot,
    source: ModelSource,
    payload: Option<JsValue>,
) -> Result<Fetched, Error> {
    match source {
        ModelSource::Hub { id, url_template } => {
            check_model_id(&id).map_err(Error::Usage)?;
            // The engine's own check, whatever the page sends: a crafted `?source=` link must
            // not make it fetch from a non-http(s) scheme.
            check_url_template(&url_template).map_err(Error::Usage)?;
            let purpose = match slot {
                Slot::Base => Purpose::FineTuning,
                Slot::Embedder => Purpose::Embedding,
                Slot::LanguageModel => Purpose::Prompting,
                _ => Purpose::Inference,
            };
            let mut progress = |p: Progress| {
                reply.send(Event::Download {
                    file: p.file.to_string(),
                    loaded: p.loaded,
                    total: p.total,
                    bytes_per_s: p.bytes_per_s,
                    from_cache: p.from_cache,
                })
            };
            let id = id.trim().to_string();
            let check = |files: &ModelFiles| {
                let config = files.config()?;
                fits(slot, &config)?;
                if slot == Slot::LanguageModel {
                    // Said before the weights are downloaded.
                    room_for_language_model(&config, None, &state::compute()?)?;
                }
                Ok(())
            };
            let files = fetch_model(&url_template, &id, purpose, &mut progress, &check).await?;
            Ok(Fetched {
                files,
                name: id.clone(),
                keep_as: Some(StoreKey::Hub { url_template, id }),
                stored: None,
            })
        }
        ModelSource::Stored { key } => {
            let (files, name) = Store::open().await?.load(&key).await?;
            Ok(Fetched {
                files,
                name,
                keep_as: None,
                stored: Some(key),
            })
        }
        ModelSource::Local => {
            let Some((name, entries)) = picked_entries(payload.as_ref()).await? else {
                return Err(Error::usage(
                    "choose the model's files: config.json, tokenizer.json and model.safetensors \
                     (or a .zip of them)",
                ));
            };
            let name = name.unwrap_or_else(|| "local model".into());
            let files = ModelFiles::from_entries(entries);
            files.check_complete()?;
            Ok(Fetched {
                files,
                name,
                keep_as: None,
                stored: None,
            })
        }
    }
}

/// The files the user picked (the payload's `File` objects), a zip's entries in place of the zip,
/// as (path, bytes), with the zip's name when there was one; `None` when nothing was picked.
pub async fn picked_entries(
    payload: Option<&JsValue>,
) -> Result<Option<(Option<String>, Vec<(String, Vec<u8>)>)>, Error> {
    let picked = payload.map(files_of).unwrap_or_default();
    if picked.is_empty() {
        return Ok(None);
    }
    let mut name = None;
    let mut entries = Vec::new();
    for f in picked {
        let bytes = js_to_bytes(&f.clone().into()).await.map_err(Error::Files)?;
        if f.name().to_ascii_lowercase().ends_with(".zip") {
            name = Some(f.name().trim_end_matches(".zip").to_string());
            entries.extend(archive::read_zip(&bytes).map_err(|e| e.in_file(f.name()))?);
        } else {
            entries.push((f.name(), bytes));
        }
    }
    Ok(Some((name, entries)))
}

/// Whether a checkpoint with this `config.json` can serve `slot`: said when `config.json`
/// arrives, before the tokenizer and the weights are downloaded, with where the model fits.
pub fn fits(slot: Slot, config: &ModelConfig) -> Result<(), Error> {
    let (fits, needs) = match slot {
        Slot::Classifier => (
            matches!(
                config.task,
                Task::SequenceClassification | Task::TokenClassification
            ),
            "the classifier needs a *ForSequenceClassification or *ForTokenClassification \
             checkpoint",
        ),
        Slot::FillMask => (
            config.task == Task::MaskedLm,
            "fill-mask needs a *ForMaskedLM checkpoint",
        ),
        Slot::LanguageModel => (
            config.task == Task::CausalLm,
            "prompting needs a language model (GPT-2, Llama, SmolLM2, Qwen2, Qwen3)",
        ),
        Slot::Base => (
            config.encoder().is_some(),
            "fine-tuning needs an encoder (BERT, DistilBERT, RoBERTa, XLM-RoBERTa, ModernBERT)",
        ),
        Slot::Embedder => (
            config.encoder().is_some(),
            "sentence embeddings need an encoder (BERT, DistilBERT, RoBERTa, XLM-RoBERTa, ModernBERT), \
             such as a sentence-transformers model",
        ),
    };
    if fits {
        return Ok(());
    }
    let (is, use_it) = match config.task {
        Task::SequenceClassification => (
            "a text classifier",
            "classify with it on the Classify page, or fine-tune it",
        ),
        Task::MaskedLm => (
            "a masked language model",
            "use it in the Fill-mask box, or fine-tune it on the Fine-tune page",
        ),
        Task::Base => (
            "an encoder without a head",
            "fine-tune it on the Fine-tune page",
        ),
        Task::CausalLm => ("a language model", "prompt it on the Prompt page"),
        Task::TokenClassification => (
            "a token classifier",
            "tag named entities with it on the Classify page",
        ),
    };
    let name = config
        .raw
        .get("architectures")
        .and_then(|a| a.get(0))
        .and_then(|a| a.as_str())
        .map(|a| format!(" ({a})"))
        .unwrap_or_default();
    Err(Error::usage(format!(
        "this model is {is}{name}: {needs}; {use_it}"
    )))
}

/// Bytes of the engine's memory that its models hold now: (every model but the language
/// model, the language model). On the CPU a model's weights in f32; on WebGPU they live on the
/// GPU. Model files kept for training and export count wherever it runs.
fn held_bytes(compute: &Compute) -> (u64, u64) {
    let on_cpu = device::on_cpu(&compute.device);
    let weights = |n: usize| if on_cpu { 4 * n as u64 } else { 0 };
    state::peek(|e| {
        let models = [
            e.classifier.as_ref().map(|m| weights(m.model.num_params())),
            e.tagger.as_ref().map(|m| weights(m.model.num_params())),
            e.fill_mask.as_ref().map(|m| weights(m.model.num_params())),
            e.embedder.as_ref().map(|m| weights(m.encoder.num_params())),
            e.trained
                .as_ref()
                .map(|t| weights(t.model.num_params()) + t.source.weights_bytes()),
            e.adapted
                .as_ref()
                .map(|a| weights(a.model.num_params()) + a.base.weights_bytes()),
            e.base.as_ref().map(|b| b.files.weights_bytes()),
        ];
        let lm = e
            .language_model
            .as_ref()
            .map_or(0, |m| weights(m.model.num_params()));
        Some((models.iter().flatten().sum(), lm))
    })
    .unwrap_or((0, 0))
}

/// Whether a language model of `config` (files of `file_bytes`, when known) fits in the
/// engine's memory beside what it holds (`memory::Footprint`): an error with the numbers when
/// not; `Ok(true)` when it fits only once the language model loaded now is let go.
fn room_for_language_model(
    config: &ModelConfig,
    file_bytes: Option<u64>,
    compute: &Compute,
) -> Result<bool, Error> {
    let on_gpu = !device::on_cpu(&compute.device);
    let Some(needs) = Footprint::for_decoder(config, file_bytes, on_gpu) else {
        return Ok(false);
    };
    let (others, lm) = held_bytes(compute);
    if needs.check(others + lm).is_ok() {
        return Ok(false);
    }
    needs.check(others).map_err(Error::Usage)?;
    Ok(true)
}

/// Loads the model of `slot` from its files, keeps it in the engine, and describes it.
pub(super) fn install(
    slot: Slot,
    files: &ModelFiles,
    name: &str,
    compute: &Compute,
) -> Result<ModelInfo, Error> {
    // The packed weights of models dropped since, freed before this one takes memory.
    crate::model::flex::release_packed_weights();
    let config = files.config()?;
    let device = &compute.device;
    let precision = state::precision();
    let (labels, parameters) = match slot {
        Slot::Classifier if config.task == Task::TokenClassification => {
            let m = Tagger::load_with(files, device, precision)?;
            let described = (m.labels.clone(), m.model.num_params());
            state::update(|e| {
                e.tagger = Some(Rc::new(m));
                e.classifier = None;
                e.classifier_replica = None;
            });
            described
        }
        Slot::Classifier => {
            let m = TextClassifier::load_with(files, device, precision)?;
            let described = (m.labels.clone(), m.model.num_params());
            state::update(|e| {
                e.classifier = Some(Rc::new(m));
                e.tagger = None;
                e.classifier_replica = None;
            });
            described
        }
        Slot::FillMask => {
            let m = FillMask::load_with(files, device, precision)?;
            let described = (vec![], m.model.num_params());
            state::update(|e| e.fill_mask = Some(Rc::new(m)));
            described
        }
        Slot::LanguageModel => {
            if room_for_language_model(&config, Some(files.weights_bytes()), compute)? {
                // Room for the new model only without the old one: the old one goes first.
                state::update(|e| {
                    e.language_model = None;
                    e.language_model_files = None;
                    e.scorer_replica = None;
                });
            }
            let m = LanguageModel::load_with(files, device, compute.max_binding_bytes, precision)?;
            let described = (vec![], m.model.num_params());
            state::update(|e| {
                e.language_model = Some(Rc::new(m));
                e.language_model_files = None;
                e.scorer_replica = None;
            });
            described
        }
        Slot::Embedder => {
            let m = Embedder::load_with(files, device, precision)?;
            let described = (vec![], m.encoder.num_params());
            state::update(|e| {
                e.embedder = Some(Rc::new(m));
                e.embedded = None;
            });
            described
        }
        Slot::Base => {
            // The encoder must load (and gives its size); training decodes the files anew.
            let encoder = Embedder::load(files, device)?;
            let base = BaseModel {
                files: files.clone(),
                name: name.to_string(),
            };
            state::update(|e| e.base = Some(Rc::new(base)));
            (config.id2label.clone(), encoder.encoder.num_params())
        }
    };
    let mut info = model_info(name, &config, labels, files, parameters);
    if slot != Slot::Base {
        info.precision = precision_on(device, precision);
    }
    Ok(info)
}

/// What a model loaded for inference computes in on `device`: "f16" or "f32" on a GPU
/// ([`Precision`]), `None` on the CPU (f32).
pub fn precision_on(device: &burn::prelude::Device, precision: Precision) -> Option<String> {
    if device::on_cpu(device) {
        return None;
    }
    let half = precision == Precision::Auto
        && crate::model::weights::half_on(device)
        && crate::model::kernels::fused_kernels_enabled();
    Some(if half { "f16" } else { "f32" }.into())
}

/// Tells the engine where helper engines find the model just loaded into `slot` (when there
/// are helpers): browser storage when it is kept there (`key`), so that no copy stays here
/// for them; else its files (moved, not copied: a language model's can be a gigabyte).
pub fn share(slot: Slot, files: ModelFiles, key: Option<&str>) {
    if helpers::count() == 0 {
        return;
    }
    let source = match key {
        Some(key) => Files::Stored {
            key: key.to_string(),
            bytes: files.weights_bytes() as usize,
        },
        None => Files::Bytes(Rc::new(files)),
    };
    state::update(|e| match slot {
        Slot::Classifier => {
            e.classifier_replica = e.classifier.as_ref().map(|c| c.replica(source));
        }
        Slot::LanguageModel => {
            e.language_model_files = Some(source);
            e.scorer_replica = None;
        }
        Slot::FillMask | Slot::Base | Slot::Embedder => {}
    });
}

/// What the page shows of a loaded model.
pub fn model_info(
    name: &str,
    config: &ModelConfig,
    labels: Vec<String>,
    files: &ModelFiles,
    parameters: usize,
) -> ModelInfo {
    let architecture = config
        .raw
        .get("architectures")
        .and_then(|a| a.get(0))
        .and_then(|a| a.as_str())
        .unwrap_or("BertModel")
        .to_string();
    ModelInfo {
        name: name.to_string(),
        architecture,
        labels,
        parameters,
        bytes: files.weights_bytes() as usize,
        stored: None,
        storage_warning: None,
        precision: None,
    }
}

/// The stored models at once, then again with the storage use (which the browser may be slow to
/// report).
pub async fn list_stored(reply: Reply) -> Result<(), Error> {
    let models = Store::open().await?.list().await;
    reply.send(Event::StoredModels {
        models: models.clone(),
        usage: None,
    });
    if let Some(usage) = estimate().await {
        reply.send(Event::StoredModels {
            models,
            usage: Some(usage),
        });
    }
    Ok(())
}

pub async fn delete_stored(reply: Reply, key: &str) -> Result<(), Error> {
    Store::open().await?.delete(key).await?;
    list_stored(reply).await
}
