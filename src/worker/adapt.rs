//! Self-supervised domain adaptation in the worker: masked-LM training of the base model on the
//! user's unlabelled text (a column of the kept table, or the lines of a text file), then the
//! adapted encoder as the base model to fine-tune, or as a `*ForMaskedLM` zip.

use std::rc::Rc;

use wasm_bindgen::JsValue;

use super::load::{install, keep, not_kept, share};
use super::state::{self, Adapted};
use super::train::{send_folder, WorkerHooks};
use super::{payload_bytes, Reply};
use crate::data::Text;
use crate::error::Error;
use crate::hub::{ModelFiles, StoreKey};
use crate::model::bert::{DropoutRates, MaskedLm};
use crate::protocol::{Event, Slot};
use crate::rng::Rng;
use crate::train::mlm::{export_masked_lm, pre_train};
use crate::train::TrainingArgs;

/// Masked-LM training of the base model (see `Request::PreTrain`).
pub async fn pre_train_base(
    reply: Reply,
    text_column: usize,
    args: TrainingArgs,
    probability: f64,
    held_out: f64,
    payload: Option<JsValue>,
) -> Result<(), Error> {
    let compute = state::compute()?;
    let base = state::need(|e| e.base.clone(), "base model")?;
    let (mut texts, text_name): (Vec<Text>, String) = if payload.is_some() {
        let bytes = payload_bytes(payload, "choose a text file").await?;
        let text = String::from_utf8(bytes)
            .map_err(|_| Error::usage("the text file is not UTF-8 (save it as UTF-8)"))?;
        let lines = text
            .lines()
            .map(str::trim)
            .filter(|l| !l.is_empty())
            .map(Text::from)
            .collect();
        (lines, "a text file".to_string())
    } else {
        let table = state::need(|e| e.train_table.clone(), "dataset or text file")?;
        let column = table
            .table
            .columns
            .get(text_column)
            .cloned()
            .ok_or_else(|| {
                Error::usage(format!(
                    "the file has {} columns",
                    table.table.columns.len()
                ))
            })?;
        let texts = table
            .table
            .rows
            .iter()
            .map(|(_, fields)| fields[text_column].trim())
            .filter(|t| !t.is_empty())
            .map(Text::from)
            .collect();
        (texts, format!("column \"{column}\" of {}", table.name))
    };
    if texts.len() < 2 {
        return Err(Error::usage(
            "masked-LM training needs at least 2 texts (some to train on, some held out)",
        ));
    }
    if !(0.0..1.0).contains(&held_out) {
        return Err(Error::usage("the held-out share must be in [0, 1)"));
    }
    // A seeded held-out share (at least one text) measures the perplexity.
    Rng::new(args.seed).shuffle(&mut texts);
    let n_held = ((held_out * texts.len() as f64).ceil() as usize).clamp(1, texts.len() - 1);
    let held: Vec<Text> = texts.drain(..n_held).collect();
    let config = base.files.config()?;
    let dropout = if args.dropout {
        DropoutRates::from_config(&config.raw, config.family())
    } else {
        DropoutRates::default()
    };
    let model = MaskedLm::for_training(
        base.files.checkpoint()?,
        &config,
        dropout,
        args.seed,
        &compute.device,
    )?;
    let tokenizer = base.files.tokenizer()?;
    let mut hooks = WorkerHooks::plain(reply);
    let result = pre_train(
        model,
        &tokenizer,
        &texts,
        &held,
        &args,
        probability,
        &compute.device,
        &mut hooks,
    )
    .await?;
    let adapted = Adapted {
        model: result.model,
        base: base.files.clone(),
        base_name: base.name.clone(),
        text_name,
    };
    state::update(|e| e.adapted = Some(Rc::new(adapted)));
    Ok(())
}

/// The adapted encoder's name: "<base> adapted on <text>".
fn adapted_name(a: &Adapted) -> String {
    format!("{} adapted on {}", a.base_name, a.text_name)
}

/// Makes the adapted encoder the base model to fine-tune, kept in browser storage.
pub async fn use_adapted(reply: Reply) -> Result<(), Error> {
    let compute = state::compute()?;
    let a = state::need(
        |e| e.adapted.clone(),
        "adapted encoder (run masked-LM training first)",
    )?;
    let files = ModelFiles::from_entries(export_masked_lm(&a.model, &a.base).await?);
    let name = adapted_name(&a);
    let mut info = install(Slot::Base, &files, &name, &compute)?;
    let key = StoreKey::Trained { name: name.clone() };
    match keep(&key, &name, &files).await {
        Ok(()) => info.stored = Some(key.key()),
        Err(e) => info.storage_warning = Some(not_kept(&e)),
    }
    // (install made it the base model.)
    let stored = info.stored.clone();
    state::update(|e| e.base_stored = stored);
    share(Slot::Base, files, info.stored.as_deref());
    reply.send(Event::Loaded {
        slot: Slot::Base,
        info,
    });
    Ok(())
}

/// The adapted encoder as a zip of its `*ForMaskedLM` folder.
pub async fn export_adapted(reply: Reply) -> Result<(), Error> {
    let a = state::need(
        |e| e.adapted.clone(),
        "adapted encoder (run masked-LM training first)",
    )?;
    let folder = format!("{}-mlm", a.base_name.replace('/', "-"));
    send_folder(reply, &folder, export_masked_lm(&a.model, &a.base).await?)
}
