//! The engine in a Web Worker: it owns the device and the models and answers the page's
//! requests (see `protocol`), so downloads, feature extraction and training never block the page.

pub mod hub;

use std::cell::RefCell;
use std::collections::HashSet;
use std::future::Future;
use std::pin::Pin;
use std::rc::Rc;

use wasm_bindgen::prelude::*;
use wasm_bindgen::JsCast;

use crate::data::{import_dataset, parse_table, stratified_split, Table};
use crate::device::{self, Compute};
use crate::js::{bytes_to_js, files_of, js_to_bytes, message, yield_now};
use crate::model::bert::SequenceClassifier;
use crate::model::ModelConfig;
use crate::pipeline::{Embedder, FillMask, ModelFiles, TextClassifier};
use crate::prompt::generate::generate;
use crate::prompt::{LabelScorer, LanguageModel};
use crate::protocol::*;
use crate::train::export::{as_model_files, export_classifier};
use crate::train::{classifier_for_training, default_pooling, fine_tune, TrainEvent, TrainHooks};

/// A fine-tuned model kept after training.
struct Trained {
    model: SequenceClassifier,
    config: ModelConfig,
    labels: Vec<String>,
    source: ModelFiles,
    base_name: String,
}

#[derive(Default)]
struct State {
    compute: Option<Compute>,
    classifier: Option<Rc<TextClassifier>>,
    fill: Option<Rc<FillMask>>,
    lm: Option<Rc<LanguageModel>>,
    base: Option<Rc<(ModelFiles, String)>>,
    table: Option<Rc<(String, Table)>>,
    test_table: Option<Rc<(String, Table)>>,
    trained: Option<Rc<Trained>>,
}

thread_local! {
    static STATE: RefCell<State> = RefCell::new(State::default());
    static CANCELLED: RefCell<HashSet<u64>> = RefCell::new(HashSet::new());
}

fn post(id: u64, event: Event, payload: Option<&JsValue>) {
    let json = serde_json::to_string(&FromWorker { id, event }).unwrap_or_else(|e| {
        format!("{{\"id\":{id},\"event\":{{\"Error\":{{\"message\":\"{e}\"}}}}}}")
    });
    let scope: web_sys::DedicatedWorkerGlobalScope = js_sys::global().unchecked_into();
    let _ = scope.post_message(&message(&json, payload));
}

fn is_cancelled(id: u64) -> bool {
    CANCELLED.with(|c| c.borrow().contains(&id))
}

fn compute() -> Result<Compute, String> {
    STATE
        .with(|s| s.borrow().compute.clone())
        .ok_or_else(|| "the engine has not started".into())
}

fn need<T: Clone>(get: impl Fn(&State) -> Option<T>, what: &str) -> Result<T, String> {
    STATE
        .with(|s| get(&s.borrow()))
        .ok_or_else(|| format!("load a {what} first"))
}

/// Starts the worker: answers every message on its own task.
pub fn run() {
    console_error_panic_hook::set_once();
    let scope: web_sys::DedicatedWorkerGlobalScope = js_sys::global().unchecked_into();
    let on_message = Closure::<dyn Fn(web_sys::MessageEvent)>::new(|e: web_sys::MessageEvent| {
        let data = e.data();
        let json = crate::js::get(&data, "json")
            .and_then(|j| j.as_string())
            .unwrap_or_default();
        let payload = crate::js::get(&data, "payload");
        let msg: ToWorker = match serde_json::from_str(&json) {
            Ok(m) => m,
            Err(err) => {
                return post(
                    0,
                    Event::Error {
                        message: format!("bad request: {err}"),
                    },
                    None,
                )
            }
        };
        if let Request::Cancel { target } = msg.request {
            CANCELLED.with(|c| c.borrow_mut().insert(target));
            return;
        }
        wasm_bindgen_futures::spawn_local(async move {
            let id = msg.id;
            match handle(id, msg.request, payload).await {
                Ok(()) => post(id, Event::Done, None),
                Err(message) => post(id, Event::Error { message }, None),
            }
            CANCELLED.with(|c| c.borrow_mut().remove(&id));
        });
    });
    scope.set_onmessage(Some(on_message.as_ref().unchecked_ref()));
    on_message.forget();
    // Messages posted before the handler existed were dropped: the page waits for this.
    post(0, Event::Ready, None);
}

fn describe_info(
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
        bytes: files.weights.len(),
    }
}

async fn load_files(
    id: u64,
    slot: Slot,
    source: &ModelSource,
    payload: Option<&JsValue>,
) -> Result<(ModelFiles, String, Option<(String, Vec<(String, String)>)>), String> {
    let mut progress = |p: hub::Progress| {
        post(
            id,
            Event::Download {
                file: p.file.to_string(),
                loaded: p.loaded,
                total: p.total,
                bytes_per_s: p.bytes_per_s,
                from_cache: p.from_cache,
            },
            None,
        );
    };
    match source {
        ModelSource::Hub {
            id: model_id,
            url_template,
        } => {
            check_model_id(model_id)?;
            if !url_template.contains("{id}") || !url_template.contains("{file}") {
                return Err("the model source URL must contain {id} and {file}".into());
            }
            let optional = if slot == Slot::Base {
                hub::BASE_MODEL_FILES
            } else {
                &[]
            };
            let (files, urls) =
                hub::fetch_model(url_template, model_id, optional, &mut progress).await?;
            let key = format!("{}|{}", url_template, model_id.trim());
            Ok((files, model_id.trim().to_string(), Some((key, urls))))
        }
        ModelSource::Cached { key } => {
            let (files, name) = hub::load_cached(key).await?;
            Ok((files, name, None))
        }
        ModelSource::Local => {
            let list = payload.map(files_of).unwrap_or_default();
            if list.is_empty() {
                return Err("choose the model's files: config.json, tokenizer.json and model.safetensors (or a .zip of them)".into());
            }
            let mut files = ModelFiles::default();
            let mut name = String::from("local model");
            let mut entries: Vec<(String, Vec<u8>)> = Vec::new();
            for f in list {
                let bytes = js_to_bytes(&f.clone().into()).await?;
                if f.name().to_ascii_lowercase().ends_with(".zip") {
                    name = f.name().trim_end_matches(".zip").to_string();
                    entries.extend(
                        crate::zip::read_zip(&bytes).map_err(|e| format!("{}: {e}", f.name()))?,
                    );
                } else {
                    entries.push((f.name(), bytes));
                }
            }
            for (path, bytes) in entries {
                let file = path.rsplit('/').next().unwrap_or(&path).to_string();
                let file = if path.contains("1_Pooling/") {
                    format!("1_Pooling/{file}")
                } else {
                    file
                };
                files.insert(&file, bytes);
            }
            let missing: Vec<&str> = [
                ("config.json", files.config.is_empty()),
                ("tokenizer.json", files.tokenizer.is_empty()),
                ("model.safetensors", files.weights.is_empty()),
            ]
            .iter()
            .filter(|(_, m)| *m)
            .map(|(n, _)| *n)
            .collect();
            if !missing.is_empty() {
                return Err(format!("missing {}", missing.join(", ")));
            }
            Ok((files, name, None))
        }
    }
}

/// Hooks that post training events and let cancel messages in between steps.
struct WorkerHooks {
    id: u64,
}

impl TrainHooks for WorkerHooks {
    fn event(&mut self, event: &TrainEvent) {
        post(
            self.id,
            Event::Train {
                event: event.clone(),
            },
            None,
        );
    }
    fn cancelled(&self) -> bool {
        is_cancelled(self.id)
    }
    fn pause(&mut self) -> Pin<Box<dyn Future<Output = ()> + '_>> {
        Box::pin(yield_now())
    }
}

fn label_scorer(spec: ScorerSpec) -> LabelScorer {
    let mut s = LabelScorer::new(spec.template, spec.labels, spec.verbalizers);
    s.calibrate = spec.calibrate;
    s
}

/// The stored models at once, then again with the storage use (which the browser may be slow to
/// report).
async fn list_cached(id: u64) -> Result<(), String> {
    let models = hub::list().await?;
    post(
        id,
        Event::CachedModels {
            models: models.clone(),
            usage: None,
        },
        None,
    );
    if let Some(usage) = hub::estimate().await {
        post(
            id,
            Event::CachedModels {
                models,
                usage: Some(usage),
            },
            None,
        );
    }
    Ok(())
}

async fn handle(id: u64, request: Request, payload: Option<JsValue>) -> Result<(), String> {
    match request {
        Request::Start { backend } => {
            let c = match backend {
                BackendChoice::Cpu => Compute::cpu("chosen in the settings"),
                // Ask the browser first: burn's wgpu start-up is only tried where an adapter
                // exists, and the browser's words explain a missing one.
                BackendChoice::Auto => match crate::probe::probe().await {
                    crate::probe::BackendStatus::Cpu { reason } => Compute::cpu(reason),
                    crate::probe::BackendStatus::WebGpu { adapter } => match device::webgpu().await
                    {
                        Ok(mut c) => {
                            c.backend = crate::device::Backend::WebGpu { adapter };
                            c
                        }
                        Err(reason) => Compute::cpu(reason),
                    },
                },
            };
            post(
                id,
                Event::Started {
                    backend: c.backend.clone(),
                },
                None,
            );
            // A switch drops the models: their tensors live on the old device.
            STATE.with(|s| {
                *s.borrow_mut() = State {
                    compute: Some(c),
                    ..State::default()
                }
            });
        }
        Request::Load { slot, source } => {
            let c = compute()?;
            let (files, name, to_store) = load_files(id, slot, &source, payload.as_ref()).await?;
            let config = files.config().map_err(|e| e.to_string())?;
            use burn::module::Module;
            // Each slot loads its model, keeps it, and reports its labels and size.
            let (labels, parameters) = match slot {
                Slot::Classifier => {
                    let m = TextClassifier::load(&files, &c.device).map_err(|e| e.to_string())?;
                    let described = (m.labels.clone(), m.model.num_params());
                    STATE.with(|s| s.borrow_mut().classifier = Some(Rc::new(m)));
                    described
                }
                Slot::FillMask => {
                    let m = FillMask::load(&files, &c.device).map_err(|e| e.to_string())?;
                    let described = (vec![], m.model.num_params());
                    STATE.with(|s| s.borrow_mut().fill = Some(Rc::new(m)));
                    described
                }
                Slot::LanguageModel => {
                    let m = LanguageModel::load(&files, &c.device, c.max_binding_bytes)
                        .map_err(|e| e.to_string())?;
                    let described = (vec![], m.model.num_params());
                    STATE.with(|s| s.borrow_mut().lm = Some(Rc::new(m)));
                    described
                }
                Slot::Base => {
                    // Check that the encoder loads (and report its size) before keeping the files.
                    let e = Embedder::load(&files, &c.device).map_err(|e| e.to_string())?;
                    STATE.with(|s| {
                        s.borrow_mut().base = Some(Rc::new((files.clone(), name.clone())))
                    });
                    (config.id2label.clone(), e.encoder.num_params())
                }
            };
            let info = describe_info(&name, &config, labels, &files, parameters);
            // Only a model that loaded is kept in browser storage.
            if let (Some((key, urls)), ModelSource::Hub { url_template, .. }) = (to_store, &source)
            {
                hub::store(&key, &name, url_template, &files, &urls).await?;
            }
            post(id, Event::Loaded { slot, info }, None);
        }
        Request::ListCached => list_cached(id).await?,
        Request::DeleteCached { key } => {
            hub::delete(&key).await?;
            list_cached(id).await?;
        }
        Request::Classify { texts } => {
            let m = need(|s| s.classifier.clone(), "classifier")?;
            let texts: Vec<String> = texts
                .into_iter()
                .map(|t| t.trim().to_string())
                .filter(|t| !t.is_empty())
                .collect();
            if texts.is_empty() {
                return Err("enter a text to classify".into());
            }
            let refs: Vec<&str> = texts.iter().map(String::as_str).collect();
            let results = m.classify(&refs).await.map_err(|e| e.to_string())?;
            post(id, Event::Classified { results }, None);
        }
        Request::FillMask { text, k } => {
            let m = need(|s| s.fill.clone(), "fill-mask model")?;
            let masks = m
                .fill_mask(&text, k.clamp(1, 50))
                .await
                .map_err(|e| e.to_string())?;
            post(id, Event::Filled { masks }, None);
        }
        Request::Generate { prompt, config } => {
            let lm = need(|s| s.lm.clone(), "language model")?;
            let mut on_token = |piece: &str| {
                post(
                    id,
                    Event::Token {
                        text: piece.to_string(),
                    },
                    None,
                );
                !is_cancelled(id)
            };
            let generation = generate(&lm, &prompt, &config, &mut on_token)
                .await
                .map_err(|e| e.to_string())?;
            post(id, Event::Generated { generation }, None);
        }
        Request::ScoreLabels { text, scorer } => {
            let lm = need(|s| s.lm.clone(), "language model")?;
            let scores = label_scorer(scorer)
                .score(&lm, &text)
                .await
                .map_err(|e| e.to_string())?;
            post(id, Event::Scored { scores }, None);
        }
        Request::EvaluatePrompt {
            scorer,
            options,
            text_column,
            label_column,
        } => {
            let lm = need(|s| s.lm.clone(), "language model")?;
            let bytes = js_to_bytes(&payload.ok_or("choose a labelled CSV")?).await?;
            let (data, report) = import_dataset(
                &bytes,
                &options,
                text_column.as_deref(),
                label_column.as_deref(),
            )
            .map_err(|e| e.to_string())?;
            let mut s = label_scorer(scorer);
            let total = data.len();
            let mut last = 0.0;
            let mut progress = |done: usize, _: usize| {
                let now = crate::clock::now_ms();
                if now - last > 200.0 || done == total {
                    last = now;
                    post(id, Event::Progress { done, total }, None);
                }
                !is_cancelled(id)
            };
            let (metrics, _) = s
                .evaluate(&lm, &data, &mut progress)
                .await
                .map_err(|e| e.to_string())?;
            post(id, Event::PromptEvaluated { metrics, report }, None);
        }
        Request::ParseTable {
            name,
            options,
            test,
        } => {
            let bytes = js_to_bytes(&payload.ok_or("choose a CSV or TSV file")?).await?;
            let table = parse_table(&bytes, &options).map_err(|e| format!("{name}: {e}"))?;
            let preview = TablePreview {
                name: name.clone(),
                columns: table.columns.clone(),
                rows: table.rows.iter().take(8).map(|(_, r)| r.clone()).collect(),
                total_rows: table.rows.len(),
                delimiter: table.delimiter as char,
                has_header: table.has_header,
                text_column: table.default_text_column(),
                label_column: table.default_label_column(),
                ragged: table.ragged.len(),
            };
            let kept = Some(Rc::new((name, table)));
            STATE.with(|s| {
                let mut s = s.borrow_mut();
                if test {
                    s.test_table = kept;
                } else {
                    s.table = kept;
                }
            });
            post(id, Event::Table { preview }, None);
        }
        Request::Train {
            text_column,
            label_column,
            test_fraction,
            split_seed,
            separate_test,
            args,
        } => {
            let c = compute()?;
            let base = need(|s| s.base.clone(), "base model to fine-tune")?;
            let table = need(|s| s.table.clone(), "dataset")?;
            let (data, report) = table
                .1
                .to_dataset(text_column, label_column)
                .map_err(|e| e.to_string())?;
            let (train, test) = if separate_test {
                let test_table = need(|s| s.test_table.clone(), "test file")?;
                let (name, t) = (&test_table.0, &test_table.1);
                let (tc, lc) = t
                    .matching_columns(&table.1, text_column, label_column)
                    .map_err(|e| format!("{name}: {e}"))?;
                let (test, _) = t
                    .to_test_dataset(tc, lc, &data.label_names)
                    .map_err(|e| format!("{name}: {e}"))?;
                (data, test)
            } else {
                let split =
                    stratified_split(&data.labels, data.num_classes(), test_fraction, split_seed)
                        .map_err(|e| e.to_string())?;
                (data.subset(&split.train), data.subset(&split.test))
            };
            post(
                id,
                Event::Imported {
                    report,
                    train: train.len(),
                    test: test.len(),
                },
                None,
            );
            let (files, base_name) = (&base.0, &base.1);
            let tokenizer = files.tokenizer().map_err(|e| e.to_string())?;
            let pooling = default_pooling(files, args.mode);
            let (model, config) =
                classifier_for_training(files, &train.label_names, &args, pooling, &c.device)
                    .map_err(|e| e.to_string())?;
            let mut hooks = WorkerHooks { id };
            let result = fine_tune(
                model, &tokenizer, &train, &test, &args, &c.device, &mut hooks,
            )
            .await
            .map_err(|e| e.to_string())?;
            let trained = Trained {
                model: result.model,
                config,
                labels: train.label_names.clone(),
                source: files.clone(),
                base_name: base_name.clone(),
            };
            STATE.with(|s| s.borrow_mut().trained = Some(Rc::new(trained)));
        }
        Request::ExportTrained => {
            let t = need(|s| s.trained.clone(), "trained model (fine-tune one first)")?;
            let files = export_classifier(&t.model, &t.config, &t.labels, &t.source)
                .await
                .map_err(|e| e.to_string())?;
            let folder = format!("{}-finetuned", t.base_name.replace('/', "-"));
            let entries: Vec<(String, Vec<u8>)> = files
                .into_iter()
                .map(|(n, b)| (format!("{folder}/{n}"), b))
                .collect();
            let zip = crate::zip::write_zip(&entries);
            post(
                id,
                Event::Exported {
                    file_name: format!("{folder}.zip"),
                },
                Some(&bytes_to_js(&zip)),
            );
        }
        Request::UseTrained { name } => {
            let c = compute()?;
            let t = need(|s| s.trained.clone(), "trained model (fine-tune one first)")?;
            let files = export_classifier(&t.model, &t.config, &t.labels, &t.source)
                .await
                .map_err(|e| e.to_string())?;
            let model_files = as_model_files(&files);
            let m = TextClassifier::load(&model_files, &c.device).map_err(|e| e.to_string())?;
            let name = if name.trim().is_empty() {
                format!("{} (fine-tuned)", t.base_name)
            } else {
                name.trim().to_string()
            };
            let info = describe_info(
                &name,
                &m.config,
                m.labels.clone(),
                &model_files,
                burn::module::Module::num_params(&m.model),
            );
            STATE.with(|s| s.borrow_mut().classifier = Some(Rc::new(m)));
            // Kept in browser storage, so it survives a reload.
            let key = format!("trained|{name}");
            let urls: Vec<(String, String)> = files
                .iter()
                .map(|(n, _)| {
                    (
                        n.clone(),
                        hub::local_url(&format!(
                            "trained/{}/{n}",
                            js_sys::encode_uri_component(&name)
                        )),
                    )
                })
                .collect();
            hub::store(&key, &name, "fine-tuned here", &model_files, &urls).await?;
            post(
                id,
                Event::Loaded {
                    slot: Slot::Classifier,
                    info,
                },
                None,
            );
        }
        Request::Cancel { .. } => {}
    }
    Ok(())
}
