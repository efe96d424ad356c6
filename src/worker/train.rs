//! Fine-tuning in the worker: reading the training (and test) table, the training run with its
//! events and cancel, then saving the model as a zip or keeping it to classify with.

use std::collections::BTreeMap;
use std::future::Future;
use std::pin::Pin;
use std::rc::Rc;

use burn::module::Module;
use wasm_bindgen::JsValue;

use super::helpers::{self, WorkerHelpers};
use super::load::{self, keep, model_info, not_kept, picked_entries, share};
use super::state::{self, NamedTable, Trained};
use super::{payload_bytes, Reply};
use crate::data::{parse_table as read_table, stratified_split, Dataset, TableOptions};
use crate::error::Error;
use crate::hub::runs::RunStore;
use crate::hub::{archive, ModelFiles, StoreKey};
use crate::js::js_to_bytes;
use crate::js::{bytes_to_js, yield_now};
use crate::metrics::{evaluate, Average};
use crate::pipelines::zero_shot::ZeroShotSpec;
use crate::pipelines::TextClassifier;
use crate::pool::Sharing;
use crate::protocol::{Event, RunInfo, Slot};
use crate::train::adapter::{export_adapter, resolved_targets};
use crate::train::card::{model_card, sha256_hex, DataFacts, RunFacts};
use crate::train::checkpoint::Checkpoint;
use crate::train::export::export_classifier;
use crate::train::script::{
    readme as script_readme, requirements, training_script, DataLayout, ScriptSpec,
};
use crate::train::{
    classifier_for_training, default_pooling, fine_tune_from, Outcome, TrainEvent, TrainHooks,
    TrainingArgs,
};

/// Reads a CSV/TSV for training (or, with `test`, the separate test file) and previews it.
pub async fn parse_table(
    reply: Reply,
    name: String,
    options: &TableOptions,
    test: bool,
    payload: Option<JsValue>,
) -> Result<(), Error> {
    let bytes = payload_bytes(payload, "choose a CSV or TSV file").await?;
    let table = read_table(&bytes, options).map_err(|e| Error::from(e).in_file(&name))?;
    let preview = table.preview(&name, 8);
    let sha256 = sha256_hex(&bytes);
    drop(bytes);
    let kept = Some(Rc::new(NamedTable {
        name,
        table,
        sha256,
    }));
    state::update(|e| {
        if test {
            e.test_table = kept;
        } else {
            e.train_table = kept;
        }
    });
    reply.send(Event::Table { preview });
    Ok(())
}

/// How the kept table becomes training and test data.
pub struct Plan {
    pub text_column: usize,
    pub label_column: usize,
    /// Share of a stratified, seeded split held out for testing...
    pub test_fraction: f64,
    pub split_seed: u64,
    /// ...unless the kept test file is the test set.
    pub separate_test: bool,
}

/// The training and test sets the plan gives, and what the import read.
fn datasets(plan: &Plan) -> Result<(Dataset, Dataset, crate::data::ImportReport), Error> {
    let table = state::need(|e| e.train_table.clone(), "dataset")?;
    let (data, report) = table
        .table
        .to_dataset(plan.text_column, plan.label_column)?;
    if plan.separate_test {
        let test = state::need(|e| e.test_table.clone(), "test file")?;
        let in_test = |e: crate::data::DataError| Error::from(e).in_file(&test.name);
        let (tc, lc) = test
            .table
            .matching_columns(&table.table, plan.text_column, plan.label_column)
            .map_err(in_test)?;
        let (test_set, _) = test
            .table
            .to_test_dataset(tc, lc, &data.label_names)
            .map_err(in_test)?;
        Ok((data, test_set, report))
    } else {
        let split = stratified_split(
            &data.labels,
            data.num_classes(),
            plan.test_fraction,
            plan.split_seed,
        )?;
        Ok((data.subset(&split.train), data.subset(&split.test), report))
    }
}

/// Hooks that post training events and let cancel messages in between steps.
pub(super) struct WorkerHooks {
    reply: Reply,
    /// The helper engines, with the base model's files (when there are helpers).
    sharing: Option<Rc<Sharing>>,
    /// `now_ms()` when the loop last let the browser run.
    last_yield: f64,
    /// Where the run keeps its checkpoints, when it does.
    keeper: Option<RunKeeper>,
}

/// How often (ms) the training loop lets the browser run: often enough that a cancel lands at
/// once, seldom enough that fast steps do not wait on timers (a browser delays nested timers by
/// at least 4 ms, longer than a training step on a fast GPU).
const YIELD_EVERY_MS: f64 = 30.0;

impl WorkerHooks {
    /// Hooks that post the events of `reply`'s request, with no helpers and no checkpoints.
    pub(super) fn plain(reply: Reply) -> Self {
        Self {
            reply,
            sharing: None,
            last_yield: crate::clock::now_ms(),
            keeper: None,
        }
    }
}

impl TrainHooks for WorkerHooks {
    fn keeps_checkpoints(&self) -> bool {
        self.keeper.is_some()
    }
    fn checkpoint(&mut self, checkpoint: Checkpoint) -> Pin<Box<dyn Future<Output = bool> + '_>> {
        Box::pin(async move {
            let Some(k) = &mut self.keeper else {
                return false;
            };
            let bytes = checkpoint.to_bytes();
            let id = k.info.id.clone();
            let kept = match k.store.write(&format!("{id}.checkpoint"), &bytes).await {
                Ok(()) => {
                    k.info.bytes = k.data_bytes + bytes.len() as u64;
                    k.info.step = checkpoint.steps;
                    k.info.epoch = checkpoint.epoch;
                    k.info.saved_ms = js_sys::Date::now();
                    k.store.put(&k.info).await
                }
                Err(e) => Err(e),
            };
            match kept {
                Ok(()) => true,
                Err(e) => {
                    // A full quota: training goes on without checkpoints.
                    web_sys::console::warn_1(&format!("checkpoint not kept: {e}").into());
                    self.keeper = None;
                    false
                }
            }
        })
    }
    fn event(&mut self, event: &TrainEvent) {
        if let (TrainEvent::Started { total_steps, .. }, Some(k)) = (event, &mut self.keeper) {
            k.info.total_steps = *total_steps;
        }
        self.reply.send(Event::Train {
            event: event.clone(),
        });
    }
    fn cancelled(&self) -> bool {
        self.reply.cancelled()
    }
    fn sharing(&self) -> Option<Rc<Sharing>> {
        self.sharing.clone()
    }
    fn pause(&mut self) -> Pin<Box<dyn Future<Output = ()> + '_>> {
        Box::pin(async move {
            if crate::clock::now_ms() - self.last_yield >= YIELD_EVERY_MS {
                yield_now().await;
                self.last_yield = crate::clock::now_ms();
            }
        })
    }
}

/// Texts per step of a zero-shot baseline: progress and cancel land between steps.
const BASELINE_STEP: usize = 32;

/// The loaded NLI classifier, zero-shot, on the test set `plan` gives, with the dataset's label
/// names as the candidate labels (single-label): the metrics training reports, for comparison.
pub async fn zero_shot_baseline(reply: Reply, plan: Plan, template: String) -> Result<(), Error> {
    let model = state::need(|e| e.classifier.clone(), "NLI classifier")?;
    model.nli_outputs()?;
    let (train, test, _) = datasets(&plan)?;
    let labels = train.label_names.clone();
    let spec = ZeroShotSpec {
        labels: labels.clone(),
        template,
        multi_label: false,
    };
    spec.hypotheses().map_err(Error::Usage)?;
    let mut predicted = Vec::with_capacity(test.len());
    for chunk in test.texts.chunks(BASELINE_STEP) {
        if reply.cancelled() {
            break;
        }
        let refs: Vec<&str> = chunk.iter().map(|t| &**t).collect();
        for scores in model.zero_shot_scores(&refs, &spec).await? {
            predicted.push(crate::math::argmax(&scores));
        }
        reply.send(Event::Progress {
            done: predicted.len(),
            total: test.len(),
        });
        yield_now().await;
    }
    let truth = &test.labels[..predicted.len()];
    let metrics = evaluate(truth, &predicted, &labels, Average::default_for(&labels));
    reply.send(Event::ZeroShotEvaluated {
        metrics,
        scored: predicted.len(),
        total: test.len(),
    });
    Ok(())
}

/// A run kept in browser storage while it trains: its checkpoints go there.
struct RunKeeper {
    store: RunStore,
    info: RunInfo,
    /// The bytes of the kept data file(s).
    data_bytes: u64,
}

/// Fine-tunes the base model on the kept table and keeps the result. With the data file(s) in
/// the payload and a base model kept in browser storage, the run keeps checkpoints there and can
/// resume after a reload ([`resume`]).
pub async fn train(
    reply: Reply,
    plan: Plan,
    args: TrainingArgs,
    payload: Option<JsValue>,
) -> Result<(), Error> {
    let keeper = match keep_run(&plan, &args, payload).await {
        Ok(k) => k,
        Err(e) => {
            web_sys::console::warn_1(&format!("this run keeps no checkpoints: {e}").into());
            None
        }
    };
    run(reply, plan, args, keeper, None).await
}

/// Opens the run store and keeps the run's data file(s) and settings, when the page sent the
/// files and the base model is in browser storage.
async fn keep_run(
    plan: &Plan,
    args: &TrainingArgs,
    payload: Option<JsValue>,
) -> Result<Option<RunKeeper>, Error> {
    let Some(base_key) = state::peek(|e| e.base_stored.clone()) else {
        return Ok(None);
    };
    let Some(files) = payload.filter(|p| p.is_array()) else {
        return Ok(None);
    };
    let files = js_sys::Array::from(&files);
    let base = state::need(|e| e.base.clone(), "base model to fine-tune")?;
    let data = state::need(|e| e.train_table.clone(), "dataset")?;
    let test = state::peek(|e| e.test_table.clone());
    let store = RunStore::open().await?;
    let id = format!("run-{}", crate::clock::now_ms() as u64);
    let mut bytes = 0u64;
    for (i, suffix) in ["data", "test"].iter().enumerate() {
        if i == 1 && !plan.separate_test {
            break;
        }
        let file = files.get(i as u32);
        if file.is_undefined() {
            return Ok(None);
        }
        let content = js_to_bytes(&file).await.map_err(Error::Files)?;
        bytes += content.len() as u64;
        store.write(&format!("{id}.{suffix}"), &content).await?;
    }
    let info = RunInfo {
        id,
        base_name: base.name.clone(),
        base_key,
        data_file: data.name.clone(),
        test_file: test.filter(|_| plan.separate_test).map(|t| t.name.clone()),
        text_column: plan.text_column,
        label_column: plan.label_column,
        test_fraction: plan.test_fraction,
        split_seed: plan.split_seed,
        separate_test: plan.separate_test,
        args: args.clone(),
        step: 0,
        total_steps: 0,
        epoch: 1,
        saved_ms: 0.0,
        bytes,
        storage: store.kind().to_string(),
    };
    Ok(Some(RunKeeper {
        store,
        info,
        data_bytes: bytes,
    }))
}

/// The runs kept in browser storage that can resume (those with a checkpoint).
pub async fn list_runs(reply: Reply) -> Result<(), Error> {
    let store = RunStore::open().await?;
    let runs: Vec<RunInfo> = store
        .list()
        .await
        .into_iter()
        .filter(|r| r.step > 0)
        .collect();
    let bytes = runs.iter().map(|r| r.bytes).sum();
    reply.send(Event::Runs { runs, bytes });
    Ok(())
}

pub async fn delete_run(reply: Reply, id: &str) -> Result<(), Error> {
    RunStore::open().await?.delete(id).await?;
    list_runs(reply).await
}

/// Resumes the kept run `id`: its base model from browser storage, its data from the run store,
/// its settings, and training from its last checkpoint.
pub async fn resume(reply: Reply, id: &str) -> Result<(), Error> {
    let store = RunStore::open().await?;
    let Some(info) = store.list().await.into_iter().find(|r| r.id == id) else {
        return Err(Error::usage(
            "this run is no longer kept (deleted in another tab?)",
        ));
    };
    let gone = |what: &str| {
        Error::usage(format!(
            "the run's {what} is missing from browser storage: delete the run"
        ))
    };
    let checkpoint = store
        .read(&format!("{id}.checkpoint"))
        .await
        .ok_or_else(|| gone("checkpoint"))?;
    let data_bytes = info.bytes.saturating_sub(checkpoint.len() as u64);
    let checkpoint = Checkpoint::from_bytes(&checkpoint).map_err(Error::Usage)?;
    load::load(
        reply,
        Slot::Base,
        crate::protocol::ModelSource::Stored {
            key: info.base_key.clone(),
        },
        None,
    )
    .await?;
    let options = TableOptions::default();
    let data = store
        .read(&format!("{id}.data"))
        .await
        .ok_or_else(|| gone("data file"))?;
    read_kept_table(info.data_file.clone(), &data, &options, false)?;
    if let (true, Some(name)) = (info.separate_test, &info.test_file) {
        let test = store
            .read(&format!("{id}.test"))
            .await
            .ok_or_else(|| gone("test file"))?;
        read_kept_table(name.clone(), &test, &options, true)?;
    }
    let plan = Plan {
        text_column: info.text_column,
        label_column: info.label_column,
        test_fraction: info.test_fraction,
        split_seed: info.split_seed,
        separate_test: info.separate_test,
    };
    let args = info.args.clone();
    let keeper = RunKeeper {
        store,
        info,
        data_bytes,
    };
    run(reply, plan, args, Some(keeper), Some(checkpoint)).await
}

/// Parses a table's bytes and keeps it as the training (or test) table.
fn read_kept_table(
    name: String,
    bytes: &[u8],
    options: &TableOptions,
    test: bool,
) -> Result<(), Error> {
    let table = read_table(bytes, options).map_err(|e| Error::from(e).in_file(&name))?;
    let kept = Some(Rc::new(NamedTable {
        name,
        table,
        sha256: sha256_hex(bytes),
    }));
    state::update(|e| {
        if test {
            e.test_table = kept;
        } else {
            e.train_table = kept;
        }
    });
    Ok(())
}

/// Runs (or resumes) the training and keeps the result.
async fn run(
    reply: Reply,
    plan: Plan,
    args: TrainingArgs,
    keeper: Option<RunKeeper>,
    resume: Option<Checkpoint>,
) -> Result<(), Error> {
    let compute = state::compute()?;
    let base = state::need(|e| e.base.clone(), "base model to fine-tune")?;
    let (train, test, report) = datasets(&plan)?;
    reply.send(Event::Imported {
        report: report.clone(),
        train: train.len(),
        test: test.len(),
    });
    let data_file = state::need(|e| e.train_table.clone(), "dataset")?;
    let test_file = if plan.separate_test {
        state::need(|e| e.test_table.clone(), "test file")
            .ok()
            .map(|t| t.name.clone())
    } else {
        None
    };
    let data = DataFacts {
        file: data_file.name.clone(),
        sha256: data_file.sha256.clone(),
        report,
        train_rows: train.len(),
        test_rows: test.len(),
        test_file,
    };
    let started_ms = crate::clock::now_ms();
    let tokenizer = base.files.tokenizer()?;
    let pooling = default_pooling(&base.files, args.mode);
    let (model, config) = classifier_for_training(
        &base.files,
        &train.label_names,
        &args,
        pooling,
        &compute.device,
    )?;
    helpers::served();
    let sharing = (helpers::count() > 0).then(|| {
        Rc::new(Sharing {
            helpers: Rc::new(WorkerHelpers),
            base: Rc::new(base.files.clone()),
        })
    });
    let mut hooks = WorkerHooks {
        reply,
        sharing,
        last_yield: crate::clock::now_ms(),
        keeper,
    };
    let result = fine_tune_from(
        model,
        &tokenizer,
        &train,
        &test,
        &args,
        &compute.device,
        &mut hooks,
        resume.as_ref(),
    )
    .await;
    if let Some(k) = &hooks.keeper {
        // Done, or ended before its first checkpoint: nothing to resume, so its data goes too
        // (a run stopped after one stays, to resume or delete).
        let completed = matches!(&result, Ok(r) if r.outcome == Outcome::Completed);
        if completed || k.info.step == 0 {
            let _ = k.store.delete(&k.info.id).await;
        }
        // The page's list of kept runs, as it now stands.
        let _ = list_runs(hooks.reply).await;
    }
    let result = result?;
    if hooks.sharing.is_some() {
        super::infer::said_spread("training extracted or evaluated", train.len() + test.len());
    }
    let facts = RunFacts {
        base_model: base.name.clone(),
        labels: train.label_names.clone(),
        args: args.clone(),
        data,
        history: result.history,
        outcome: result.outcome,
        steps: result.steps,
        elapsed_s: (crate::clock::now_ms() - started_ms) / 1000.0,
        backend: compute.backend.describe(),
        finished_at: js_sys::Date::new_0()
            .to_iso_string()
            .as_string()
            .unwrap_or_default(),
    };
    let trained = Trained {
        model: result.model,
        config,
        labels: train.label_names.clone(),
        source: base.files.clone(),
        base_name: base.name.clone(),
        facts,
    };
    state::update(|e| e.trained = Some(Rc::new(trained)));
    Ok(())
}

/// The trained model's Hugging Face folder, named `name`, with its model card (LoRA's adapters
/// merged into the weights).
async fn saved_files(t: &Trained, name: &str) -> Result<Vec<(String, Vec<u8>)>, Error> {
    let mut files = export_classifier(&t.model, &t.config, &t.labels, &t.source).await?;
    files.retain(|(n, _)| n != "README.md");
    files.push((
        "README.md".into(),
        model_card(name, &t.facts, false).into_bytes(),
    ));
    Ok(files)
}

/// A LoRA-trained model's PEFT adapter folder, named `name`, with its model card.
async fn adapter_files(t: &Trained, name: &str) -> Result<Vec<(String, Vec<u8>)>, Error> {
    let mut files = export_adapter(
        &t.model,
        &t.facts.args.lora,
        &t.base_name,
        &t.labels,
        &t.source,
    )
    .await?;
    files.push((
        "README.md".into(),
        model_card(name, &t.facts, true).into_bytes(),
    ));
    Ok(files)
}

/// The trained model as a zip of its Hugging Face folder, or (`adapter`) of its PEFT adapter
/// folder (in the event's payload).
pub async fn export(reply: Reply, adapter: bool) -> Result<(), Error> {
    let t = state::need(|e| e.trained.clone(), "trained model (fine-tune one first)")?;
    let base = t.base_name.replace('/', "-");
    let (folder, files) = if adapter {
        let folder = format!("{base}-lora");
        let files = adapter_files(&t, &folder).await?;
        (folder, files)
    } else {
        let folder = format!("{base}-finetuned");
        let files = saved_files(&t, &folder).await?;
        (folder, files)
    };
    send_folder(reply, &folder, files)
}

/// Sends `files` (name in the folder, bytes) as `{folder}.zip`, their paths under `folder/`, in
/// an `Exported` event's payload.
pub(super) fn send_folder(
    reply: Reply,
    folder: &str,
    files: Vec<(String, Vec<u8>)>,
) -> Result<(), Error> {
    let entries: Vec<(String, Vec<u8>)> = files
        .into_iter()
        .map(|(n, b)| (format!("{folder}/{n}"), b))
        .collect();
    let zip = archive::write_zip(&entries)?;
    reply.send_with(
        Event::Exported {
            file_name: format!("{folder}.zip"),
        },
        &bytes_to_js(&zip),
    );
    Ok(())
}

/// "Export as a training script": a zip of a folder with `train.py` (transformers' Trainer on the
/// same data, split, arguments and metrics), `requirements.txt` and a `README.md`.
pub async fn export_script(reply: Reply, plan: Plan, args: TrainingArgs) -> Result<(), Error> {
    args.validate().map_err(Error::Usage)?;
    let base = state::need(|e| e.base.clone(), "base model")?;
    let table = state::need(|e| e.train_table.clone(), "dataset")?;
    // The data must import as training would (its classes, the split).
    datasets(&plan)?;
    let config = base.files.config()?;
    let family = crate::pipelines::encoder_config(&config)?.family;
    let layout = |t: &NamedTable, text_column: usize, label_column: usize| DataLayout {
        file: t.name.clone(),
        delimiter: t.table.delimiter as char,
        has_header: t.table.has_header,
        columns: t.table.columns.len(),
        text_column,
        label_column,
    };
    let test = if plan.separate_test {
        let t = state::need(|e| e.test_table.clone(), "test file")?;
        let (tc, lc) =
            t.table
                .matching_columns(&table.table, plan.text_column, plan.label_column)?;
        Some(layout(&t, tc, lc))
    } else {
        None
    };
    let spec = ScriptSpec {
        base_model: base.name.clone(),
        lora_targets: resolved_targets(&args.lora, family),
        modules_to_save: crate::model::bert::lora_modules_to_save(family, true, false),
        args,
        data: layout(&table, plan.text_column, plan.label_column),
        test,
        test_fraction: plan.test_fraction,
        split_seed: plan.split_seed,
    };
    let folder = format!("{}-training", base.name.replace('/', "-"));
    let files = vec![
        ("train.py".into(), training_script(&spec).into_bytes()),
        (
            "requirements.txt".into(),
            requirements(spec.args.mode).into_bytes(),
        ),
        ("README.md".into(), script_readme(&spec).into_bytes()),
    ];
    send_folder(reply, &folder, files)
}

/// Puts the trained model in the classifier slot and keeps it in browser storage, so it
/// survives a reload.
pub async fn use_trained(reply: Reply, name: &str) -> Result<(), Error> {
    let compute = state::compute()?;
    let t = state::need(|e| e.trained.clone(), "trained model (fine-tune one first)")?;
    let name = match name.trim() {
        "" => format!("{} (fine-tuned)", t.base_name),
        n => n.to_string(),
    };
    let files = ModelFiles::from_entries(saved_files(&t, &name).await?);
    classify_with(reply, &name, files, &compute.device).await
}

/// Applies the PEFT LoRA adapter the user picked (its folder's files, or a zip) to the base model
/// loaded on the Fine-tune page, and puts the result on the Classify page (and in browser
/// storage) as [`use_trained`] does.
pub async fn apply_adapter(reply: Reply, payload: Option<JsValue>) -> Result<(), Error> {
    let compute = state::compute()?;
    let base = state::need(
        |e| e.base.clone(),
        "base model (load the adapter's base model as the model to fine-tune first)",
    )?;
    let Some((zip_name, entries)) = picked_entries(payload.as_ref()).await? else {
        return Err(Error::usage(
            "choose the adapter's files: adapter_config.json and adapter_model.safetensors (or a \
             .zip of its folder)",
        ));
    };
    // By file name: a folder picker or a zip gives paths.
    let adapter: BTreeMap<String, Vec<u8>> = entries
        .into_iter()
        .map(|(path, bytes)| {
            let name = path.rsplit(['/', '\\']).next().unwrap_or(&path).to_string();
            (name, bytes)
        })
        .collect();
    let files =
        crate::train::adapter::apply_adapter(&base.files, &adapter, &compute.device).await?;
    let name = match zip_name {
        Some(n) => n,
        None => format!("{} + LoRA adapter", base.name),
    };
    classify_with(
        reply,
        &name,
        ModelFiles::from_entries(files),
        &compute.device,
    )
    .await
}

/// Loads a classifier folder into the classifier slot, keeps it in browser storage as a trained
/// model named `name`, and tells the page.
async fn classify_with(
    reply: Reply,
    name: &str,
    files: ModelFiles,
    device: &burn::prelude::Device,
) -> Result<(), Error> {
    let name = name.to_string();
    let precision = state::precision();
    let model = TextClassifier::load_with(&files, device, precision)?;
    let mut info = model_info(
        &name,
        &model.config,
        model.labels.clone(),
        &files,
        model.model.num_params(),
    );
    info.precision = super::load::precision_on(device, precision);
    state::update(|e| {
        e.classifier = Some(Rc::new(model));
        e.tagger = None;
    });
    let key = StoreKey::Trained { name: name.clone() };
    match keep(&key, &name, &files).await {
        Ok(()) => info.stored = Some(key.key()),
        Err(e) => info.storage_warning = Some(not_kept(&e)),
    }
    share(Slot::Classifier, files, info.stored.as_deref());
    reply.send(Event::Loaded {
        slot: Slot::Classifier,
        info,
    });
    Ok(())
}
