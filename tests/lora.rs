//! LoRA: PEFT's 3-step trace on tiny-bert reproduced from PEFT's own initial adapter, a PEFT
//! adapter applied as PEFT scores it, LoRA fine-tuning through the trainer (only adapters and
//! head move), and adapter folders that PEFT loads and scores as Tunelab does.

mod common;

use std::collections::BTreeMap;

use burn::prelude::*;
use common::*;
use tunelab::hub::ModelFiles;
use tunelab::model::bert::{AdapterSource, Pooling, SequenceClassifier, PEFT_PREFIX};
use tunelab::model::layers::Exporter;
use tunelab::model::lora::PeftConfig;
use tunelab::model::weights::Weights;
use tunelab::train::adapter::{apply_adapter, export_adapter, ADAPTER_CONFIG, ADAPTER_WEIGHTS};
use tunelab::train::batches::cross_entropy;
use tunelab::train::optim::AdamW;
use tunelab::train::{fine_tune, LoraSettings, Mode, Outcome, TrainingArgs};

/// An adapter folder of the fixtures, by file name.
fn adapter_folder(name: &str) -> BTreeMap<String, Vec<u8>> {
    std::fs::read_dir(fixture_model(name))
        .unwrap()
        .map(|e| {
            let e = e.unwrap();
            (
                e.file_name().to_string_lossy().into_owned(),
                std::fs::read(e.path()).unwrap(),
            )
        })
        .collect()
}

/// Every tensor of a safetensors file, by name.
fn tensors_of(bytes: &[u8]) -> BTreeMap<String, Vec<f32>> {
    let st = safetensors::SafeTensors::deserialize(bytes).unwrap();
    st.tensors()
        .into_iter()
        .map(|(n, v)| {
            let f: Vec<f32> = v
                .data()
                .chunks_exact(4)
                .map(|c| f32::from_le_bytes([c[0], c[1], c[2], c[3]]))
                .collect();
            (n, f)
        })
        .collect()
}

/// tiny-bert with a PEFT adapter folder's adapters and head, on `dev` (inference), or on its
/// autodiff device frozen for LoRA training.
fn tiny_bert_with(adapter: &str, dev: &Device, training: bool) -> SequenceClassifier {
    let folder = adapter_folder(adapter);
    let peft = PeftConfig::parse(&folder[ADAPTER_CONFIG]).unwrap();
    let model = fixture_classifier("tiny-bert", dev);
    let (model, at) = if training {
        (model.train().frozen_for_lora(), dev.clone().autodiff())
    } else {
        (model, dev.clone())
    };
    let w = Weights::from_bytes(&folder[ADAPTER_WEIGHTS], PEFT_PREFIX, &at).unwrap();
    let (model, facts) = model
        .with_lora(&peft.settings, AdapterSource::Peft(&w))
        .unwrap();
    w.finish_strict().unwrap();
    // query, value and every dense layer of both layers, and the pooler.
    assert_eq!(facts.adapted.len(), 2 * 5 + 1, "{:?}", facts.adapted);
    model
}

#[test]
fn lora_training_reproduces_peft_trace_from_its_initial_adapter() {
    let (g, meta) = golden("lora-trace");
    let dev = Device::flex();
    let ad = dev.clone().autodiff();
    let (input, labels) = train_trace_inputs(&ad);
    let mut model = tiny_bert_with("tiny-bert-lora-init", &dev, true);
    let mut opt = AdamW::new(&model, trace_settings());
    let mut losses = Vec::new();
    for _ in 0..3 {
        let loss = cross_entropy(model.forward(&input), labels.clone());
        losses.push(values(loss.clone())[0]);
        model = opt.step(1e-3, model, loss).0;
    }
    assert_close("losses", &losses, &g["losses"].f32(), 1e-5);
    // The adapters and head after the steps, as PEFT saved them, by PEFT's names.
    let mut out = Exporter::default();
    model.valid().export_lora(&mut out).unwrap();
    let ours = block_on(out.read()).unwrap();
    let theirs = tensors_of(&adapter_folder("tiny-bert-lora")[ADAPTER_WEIGHTS]);
    let names: Vec<&String> = ours.keys().collect();
    assert_eq!(names, theirs.keys().collect::<Vec<_>>());
    assert_eq!(
        meta["adapter_tensors"].as_array().unwrap().len(),
        theirs.len()
    );
    for (name, (_, got)) in &ours {
        assert_close(name, got, &theirs[name], 1e-5);
    }
}

#[test]
fn a_peft_adapter_applies_as_peft_scores_it_merged_or_not() {
    let (g, _) = golden("lora-trace");
    let dev = Device::flex();
    let (input, _) = train_trace_inputs(&dev);
    let adapted = tiny_bert_with("tiny-bert-lora", &dev, false);
    assert!(adapted.has_lora());
    let want = g["logits"].f32();
    assert_close("unmerged", &values(adapted.forward(&input)), &want, 1e-5);
    let merged = adapted.merge_lora();
    assert!(!merged.has_lora());
    assert_close("merged", &values(merged.forward(&input)), &want, 1e-5);
    // Through the app's path: the base's files and the adapter folder give a plain folder.
    let base = ModelFiles::from_dir(fixture_model("tiny-bert")).unwrap();
    let files = block_on(apply_adapter(
        &base,
        &adapter_folder("tiny-bert-lora"),
        &dev,
    ))
    .unwrap();
    let files = ModelFiles::from_entries(files);
    let config = files.config().unwrap();
    let model = SequenceClassifier::from_checkpoint(
        &files.weights,
        &config,
        Pooling::Cls,
        &dev,
        Default::default(),
    )
    .unwrap();
    assert_close("applied", &values(model.forward(&input)), &want, 1e-5);
    // tiny-bert's own label names: the adapter has no labels.json and as many outputs.
    assert_eq!(config.id2label, vec!["NEGATIVE", "POSITIVE"]);
}

#[test]
fn adapters_that_do_not_fit_are_refused_by_name() {
    let dev = Device::flex();
    let base = ModelFiles::from_dir(fixture_model("tiny-bert")).unwrap();
    let mut folder = adapter_folder("tiny-bert-lora");
    let config = |edit: &dyn Fn(&mut serde_json::Value)| {
        let mut v: serde_json::Value =
            serde_json::from_slice(&adapter_folder("tiny-bert-lora")[ADAPTER_CONFIG]).unwrap();
        edit(&mut v);
        serde_json::to_vec(&v).unwrap()
    };
    let refused = |folder: &BTreeMap<String, Vec<u8>>| {
        block_on(apply_adapter(&base, folder, &dev))
            .expect_err("refused")
            .to_string()
    };
    for (edit, says) in [
        (
            Box::new(|v: &mut serde_json::Value| v["use_dora"] = true.into())
                as Box<dyn Fn(&mut serde_json::Value)>,
            "DoRA",
        ),
        (
            Box::new(|v: &mut serde_json::Value| v["target_modules"] = ".*query".into()),
            "regular expression",
        ),
        (
            Box::new(|v: &mut serde_json::Value| v["peft_type"] = "IA3".into()),
            "only LoRA",
        ),
        (
            Box::new(|v: &mut serde_json::Value| v["r"] = 8.into()),
            "does not fit the base model",
        ),
        (
            Box::new(|v: &mut serde_json::Value| v["target_modules"] = vec!["query"].into()),
            "unexpected",
        ),
    ] {
        folder.insert(ADAPTER_CONFIG.into(), config(&*edit));
        let message = refused(&folder);
        assert!(message.contains(says), "{says}: {message}");
    }
    folder.remove(ADAPTER_WEIGHTS);
    folder.insert("adapter_model.bin".into(), vec![0; 8]);
    assert!(refused(&folder).contains("pickle"));
    // A target no layer has: the message lists what can be adapted.
    let settings = LoraSettings {
        target_modules: vec!["q_proj".into()],
        ..LoraSettings::default()
    };
    let err = fixture_classifier("tiny-bert", &dev)
        .with_lora(&settings, AdapterSource::Fresh(1))
        .err()
        .unwrap()
        .to_string();
    assert!(
        err.contains("q_proj") && err.contains("attention.self.query") && err.contains("pooler"),
        "{err}"
    );
}

/// A fixture's files with every dropout rate at zero (the trained weights then do not depend on
/// the device's random generator, which other tests draw from).
fn without_dropout(base: &str) -> ModelFiles {
    let mut files = ModelFiles::from_dir(fixture_model(base)).unwrap();
    let mut config: serde_json::Value = serde_json::from_slice(&files.config).unwrap();
    for key in [
        "hidden_dropout_prob",
        "attention_probs_dropout_prob",
        "dropout",
        "attention_dropout",
        "seq_classif_dropout",
    ] {
        if config.get(key).is_some() {
            config[key] = 0.0.into();
        }
    }
    files.config = serde_json::to_vec(&config).unwrap();
    files
}

/// PEFT and transformers score the folders Tunelab saves after LoRA fine-tuning as Tunelab does:
/// this test trains each family with LoRA on the toy task (three labels, "meh" never seen) and
/// writes the adapter and merged folders to `$CARGO_TARGET_TMPDIR/lora-export/`;
/// `tests/fixtures/pipeline/gen_lora_expected.py` loaded them once (the adapter with
/// `PeftModel.from_pretrained` on the untouched fixture, the merged folder with
/// `pipeline("text-classification")`, no tensor missing or unused) and its scores are committed.
#[test]
fn lora_fine_tuning_trains_only_adapters_and_head_and_peft_scores_the_export_alike() {
    let golden_path = root().join("tests/fixtures/golden/lora-export.json");
    let golden: serde_json::Value =
        serde_json::from_slice(&std::fs::read(&golden_path).unwrap()).unwrap();
    let texts: Vec<&str> = golden["texts"]
        .as_array()
        .unwrap()
        .iter()
        .map(|t| t.as_str().unwrap())
        .collect();
    let dev = Device::flex();
    let (train, test) = toy_data();
    let labels: Vec<String> = ["NEGATIVE", "POSITIVE", "meh"].map(String::from).to_vec();
    let relabel = |d: tunelab::data::Dataset| tunelab::data::Dataset {
        label_names: labels.clone(),
        ..d
    };
    let (train, test) = (relabel(train), relabel(test));
    let out = std::path::Path::new(env!("CARGO_TARGET_TMPDIR")).join("lora-export");
    let mut scored = Vec::new();
    for (base, targets) in [
        ("tiny-bert", vec![]),
        ("tiny-distilbert", vec![]),
        ("tiny-roberta", vec!["query", "value", "dense"]),
        ("tiny-modernbert", vec![]),
    ] {
        let files = without_dropout(base);
        let args = TrainingArgs {
            mode: Mode::Lora,
            num_train_epochs: 10,
            per_device_train_batch_size: 4,
            learning_rate: 2e-2,
            lora: LoraSettings {
                r: 4,
                alpha: 8.0,
                dropout: 0.0,
                target_modules: targets.iter().map(|t| t.to_string()).collect(),
                rslora: false,
            },
            ..TrainingArgs::default()
        };
        let pooling = tunelab::train::default_pooling(&files, Mode::Lora);
        let (model, config) =
            tunelab::train::classifier_for_training(&files, &labels, &args, pooling, &dev).unwrap();
        let before = model.encoder.layers[0].qkv.weight.val();
        let tok = files.tokenizer().unwrap();
        let result = block_on(fine_tune(
            model,
            &tok,
            &train,
            &test,
            &args,
            &dev,
            &mut Collect::default(),
        ))
        .unwrap();
        assert_eq!(result.outcome, Outcome::Completed);
        let trained = result.model;
        assert!(trained.has_lora(), "{base}: the adapters are kept apart");
        // The frozen weights did not move; the adapters did.
        let after = trained.encoder.layers[0].qkv.weight.val();
        assert_eq!(
            values(before),
            values(after),
            "{base}: frozen query/key/value"
        );
        // Rank 4 adapters on the first layer's query/key/value (query and value at least).
        let qkv = &trained.encoder.layers[0].lora.as_ref().unwrap().qkv;
        let ranks: Vec<usize> = qkv.parts.iter().flatten().map(|a| a.a.dims()[1]).collect();
        assert!(
            !ranks.is_empty() && ranks.iter().all(|&r| r == 4),
            "{base}: {ranks:?}"
        );
        let dir = out.join(base);
        let write = |sub: &str, files: &[(String, Vec<u8>)]| {
            let d = dir.join(sub);
            std::fs::create_dir_all(&d).unwrap();
            for (name, bytes) in files {
                std::fs::write(d.join(name), bytes).unwrap();
            }
        };
        let adapter =
            block_on(export_adapter(&trained, &args.lora, base, &labels, &files)).unwrap();
        write("adapter", &adapter);
        let merged = block_on(tunelab::train::export::export_classifier(
            &trained, &config, &labels, &files,
        ))
        .unwrap();
        write("merged", &merged);
        let ours = block_on(
            tunelab::pipelines::TextClassifier::load(&ModelFiles::from_entries(merged), &dev)
                .unwrap()
                .classify(&texts),
        )
        .unwrap();
        // The adapter folder applied to the untouched fixture gives the same scores.
        let adapter: BTreeMap<String, Vec<u8>> = adapter.into_iter().collect();
        let applied = block_on(apply_adapter(
            &ModelFiles::from_dir(fixture_model(base)).unwrap(),
            &adapter,
            &dev,
        ))
        .unwrap();
        let again = block_on(
            tunelab::pipelines::TextClassifier::load(&ModelFiles::from_entries(applied), &dev)
                .unwrap()
                .classify(&texts),
        )
        .unwrap();
        for (a, b) in ours.iter().zip(&again) {
            for (x, y) in a.iter().zip(b) {
                assert_eq!(x.label, y.label, "{base}: labels from labels.json");
                assert!((x.score - y.score).abs() < 1e-6, "{base}: {x:?} {y:?}");
            }
        }
        scored.push((base, ours));
    }
    let mut worst = 0f32;
    for (base, ours) in scored {
        for key in ["peft", "merged"] {
            let theirs = golden["results"][base][key]
                .as_array()
                .expect("no PEFT results: run tests/fixtures/pipeline/gen_lora_expected.py");
            for (o, t) in ours.iter().zip(theirs) {
                let t = t.as_array().unwrap();
                assert_eq!(o.len(), t.len());
                for (os, ts) in o.iter().zip(t) {
                    assert_eq!(os.label, ts["label"].as_str().unwrap(), "{base} {key}");
                    worst = worst.max((os.score - ts["score"].as_f64().unwrap() as f32).abs());
                }
            }
        }
        // Trained: "meh" (never seen) keeps a small score (a fresh head gives each label ~1/3).
        assert!(
            ours.iter()
                .all(|r| r.iter().any(|s| s.label == "meh" && s.score < 0.1)),
            "{base}: {ours:?}"
        );
    }
    println!("max |score - PEFT score| = {worst:e}");
    assert!(worst <= 1e-5, "scores differ from PEFT by {worst}");
}

#[test]
fn fresh_adapters_start_from_the_base_models_outputs() {
    // B is zeros: the adapted model computes what the base does, and merging changes nothing.
    let dev = Device::flex();
    let (input, _) = train_trace_inputs(&dev);
    let base = fixture_classifier("tiny-bert", &dev);
    let want = values(base.forward(&input));
    let (adapted, facts) = base
        .with_lora(&LoraSettings::default(), AdapterSource::Fresh(7))
        .unwrap();
    assert_eq!(facts.settings.target_modules, vec!["query", "value"]);
    assert_eq!(facts.modules_to_save, vec!["classifier"]);
    assert_eq!(facts.adapted.len(), 4);
    assert_close("fresh", &values(adapted.forward(&input)), &want, 1e-6);
    let merged = adapted.merge_lora();
    assert_close("merged", &values(merged.forward(&input)), &want, 1e-6);
}
