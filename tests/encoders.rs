//! BERT, DistilBERT, masked-LM and the real all-MiniLM-L6-v2 against transformers' outputs
//! (golden fixtures), on burn's CPU backend.

mod common;

use burn::prelude::*;
use common::*;
use tunelab::hub::ModelFiles;
use tunelab::math::cosine;
use tunelab::model::bert::{EncoderInput, MaskedLm, Pooling};
use tunelab::model::weights::Weights;
use tunelab::pipelines::{Embedder, FillMask, TextClassifier};
use tunelab::text::EncodedBatch;

const TOL: f32 = 1e-4;

fn device() -> Device {
    Device::flex()
}

fn golden_input(g: &std::collections::BTreeMap<String, Golden>, dev: &Device) -> EncoderInput {
    let ids = g["input_ids"].rows_u32();
    let mask = g["attention_mask"].rows_u32();
    let types = g.get("token_type_ids").map(|t| t.rows_u32());
    EncoderInput::new(&EncodedBatch::from_rows(&ids, &mask, types.as_deref()), dev)
}

fn load_classifier(name: &str, dev: &Device) -> tunelab::model::bert::SequenceClassifier {
    fixture_classifier(name, dev)
}

#[test]
fn tiny_bert_hidden_states_pooler_and_logits_match_transformers() {
    let dev = device();
    let (g, _) = golden("tiny-bert");
    let model = load_classifier("tiny-bert", &dev);
    let input = golden_input(&g, &dev);
    let states = model.encoder.hidden_states(&input);
    assert_eq!(states.len(), 3);
    for (i, s) in states.iter().enumerate() {
        assert_close(
            &format!("hidden_states.{i}"),
            &values(s.clone()),
            &g[&format!("hidden_states.{i}")].f32(),
            TOL,
        );
    }
    let last = states.last().unwrap().clone();
    assert_close(
        "last_hidden_state",
        &values(last.clone()),
        &g["last_hidden_state"].f32(),
        TOL,
    );
    let pooled = model.pooler.as_ref().unwrap().forward(last);
    assert_close(
        "pooler_output",
        &values(pooled),
        &g["pooler_output"].f32(),
        TOL,
    );
    assert_close(
        "logits",
        &values(model.forward(&input)),
        &g["logits"].f32(),
        TOL,
    );
}

#[test]
fn tiny_distilbert_matches_transformers() {
    let dev = device();
    let (g, _) = golden("tiny-distilbert");
    let model = load_classifier("tiny-distilbert", &dev);
    let input = golden_input(&g, &dev);
    let hidden = model.encoder.forward(&input);
    assert_close(
        "last_hidden_state",
        &values(hidden),
        &g["last_hidden_state"].f32(),
        TOL,
    );
    assert_close(
        "logits",
        &values(model.forward(&input)),
        &g["logits"].f32(),
        TOL,
    );
}

#[test]
fn tiny_bert_mlm_logits_and_top5_match_transformers() {
    let dev = device();
    let (g, json) = golden("tiny-bert-mlm");
    let files = ModelFiles::from_dir(fixture_model("tiny-bert-mlm")).unwrap();
    let config = files.config().unwrap();
    let w = Weights::from_bytes(&files.weights, "bert.", &dev).unwrap();
    let model = MaskedLm::load(&w, config.encoder().unwrap());
    w.finish().unwrap();
    let input = golden_input(&g, &dev);
    let positions: Vec<(usize, usize)> = json["mask_positions"]
        .as_array()
        .unwrap()
        .iter()
        .map(|p| {
            (
                p[0].as_u64().unwrap() as usize,
                p[1].as_u64().unwrap() as usize,
            )
        })
        .collect();
    let logits = values(model.logits_at_positions(&input, &positions));
    assert_close("logits_at_masks", &logits, &g["logits_at_masks"].f32(), TOL);

    // The fill-mask pipeline on the same texts gives transformers' top-5 ids, mask by mask.
    let fill = FillMask::load(&files, &dev).unwrap();
    let texts = json["texts"].as_array().unwrap();
    let top5 = json["top5_ids_at_masks"].as_object().unwrap();
    let mut mask_index = 0;
    for (row, text) in texts.iter().enumerate() {
        let results = block_on(fill.fill_mask(text.as_str().unwrap(), 5)).unwrap();
        for candidates in results {
            let (r, p) = positions[mask_index];
            assert_eq!(r, row);
            let want: Vec<u64> = top5[&format!("{r},{p}")]
                .as_array()
                .unwrap()
                .iter()
                .map(|v| v.as_u64().unwrap())
                .collect();
            let got: Vec<u64> = candidates.iter().map(|c| c.token as u64).collect();
            assert_eq!(got, want, "top-5 at mask {mask_index}");
            let total: f32 = candidates.iter().map(|c| c.score).sum();
            assert!(total > 0.0 && total <= 1.0001);
            // As the pipeline's `sequence`: with one mask the special tokens are dropped, with
            // several they stay and the other masks show.
            let several = text.as_str().unwrap().matches("[MASK]").count() > 1;
            let sequence = &candidates[0].sequence;
            assert_eq!(sequence.contains("[MASK]"), several, "{sequence}");
            assert_eq!(sequence.starts_with("[CLS]"), several, "{sequence}");
            mask_index += 1;
        }
    }
    assert_eq!(mask_index, positions.len());
}

#[test]
fn tiny_bert_tokenizer_ids_equal_golden() {
    let (_, json) = golden("tiny-bert");
    let files = ModelFiles::from_dir(fixture_model("tiny-bert")).unwrap();
    let tok = files.tokenizer().unwrap();
    let texts = json["texts"].as_array().unwrap();
    let singles: Vec<&str> = texts.iter().filter_map(|t| t.as_str()).collect();
    let batch = tok.encode_batch(&singles, 128).unwrap();
    let pair = texts.iter().find_map(|t| t.as_array()).unwrap();
    let pairs = tok
        .encode_pairs(
            &[(pair[0].as_str().unwrap(), pair[1].as_str().unwrap())],
            128,
        )
        .unwrap();
    let want_ids = json["input_ids"].as_array().unwrap();
    let want_types = json["token_type_ids"].as_array().unwrap();
    let strip = |row: &serde_json::Value, mask: &serde_json::Value| -> Vec<u32> {
        row.as_array()
            .unwrap()
            .iter()
            .zip(mask.as_array().unwrap())
            .filter(|(_, m)| m.as_u64() == Some(1))
            .map(|(v, _)| v.as_u64().unwrap() as u32)
            .collect()
    };
    let masks = json["attention_mask"].as_array().unwrap();
    for i in 0..singles.len() {
        assert_eq!(batch.row_ids(i), strip(&want_ids[i], &masks[i]), "text {i}");
    }
    assert_eq!(pairs.row_ids(0), strip(&want_ids[2], &masks[2]), "the pair");
    let n = pairs.row_len(0);
    let want_t: Vec<u32> = want_types[2].as_array().unwrap()[..n]
        .iter()
        .map(|v| v.as_u64().unwrap() as u32)
        .collect();
    assert_eq!(&pairs.token_type_ids[..n], &want_t[..], "pair token types");
    // Padding is to the longest of the batch, not to the file's fixed 128.
    assert_eq!(batch.seq_len, batch.row_len(0).max(batch.row_len(1)));
}

#[test]
fn classifier_pipeline_gives_labels_with_softmax_scores() {
    let dev = device();
    let (g, json) = golden("tiny-bert");
    let files = ModelFiles::from_dir(fixture_model("tiny-bert")).unwrap();
    let clf = TextClassifier::load(&files, &dev).unwrap();
    let texts: Vec<&str> = json["texts"]
        .as_array()
        .unwrap()
        .iter()
        .filter_map(|t| t.as_str())
        .collect();
    let results = block_on(clf.classify(&texts)).unwrap();
    let logits = g["logits"].f32();
    for (i, scores) in results.iter().enumerate() {
        let row = &logits[i * 2..i * 2 + 2];
        let p = tunelab::math::softmax(row);
        let best = if p[1] > p[0] { "POSITIVE" } else { "NEGATIVE" };
        assert_eq!(scores[0].label, best);
        assert!((scores[0].score - p[0].max(p[1])).abs() < 1e-5);
        assert_eq!(scores.len(), 2);
    }
}

/// A model folder zipped as desktop tools do it: deflated entries, the folder one level down,
/// macOS metadata beside it. It loads and classifies exactly as the folder does.
#[test]
fn a_deflated_zip_of_a_model_folder_loads_like_the_folder() {
    use std::io::Write;
    let dev = device();
    let dir = fixture_model("tiny-bert");
    let mut zip = zip::ZipWriter::new(std::io::Cursor::new(Vec::new()));
    let deflated = zip::write::SimpleFileOptions::default()
        .compression_method(zip::CompressionMethod::Deflated);
    zip.add_directory("tiny-bert/", deflated).unwrap();
    for name in [
        "config.json",
        "tokenizer.json",
        "model.safetensors",
        "vocab.txt",
    ] {
        zip.start_file(format!("tiny-bert/{name}"), deflated)
            .unwrap();
        zip.write_all(&read(dir.join(name))).unwrap();
    }
    zip.start_file("__MACOSX/tiny-bert/._config.json", deflated)
        .unwrap();
    zip.write_all(b"\x00\x05\x16\x07 resource fork").unwrap();
    let bytes = zip.finish().unwrap().into_inner();

    let mut archive = zip::ZipArchive::new(std::io::Cursor::new(&bytes)).unwrap();
    let weights = archive.by_name("tiny-bert/model.safetensors").unwrap();
    assert_eq!(weights.compression(), zip::CompressionMethod::Deflated);
    drop(weights);
    let files = ModelFiles::from_zip(&bytes).unwrap();
    assert_eq!(files.missing(), Vec::<&str>::new());
    assert!(files.extra.contains_key("vocab.txt"));
    assert!(
        !files.extra.keys().any(|k| k.contains("._")),
        "macOS metadata is skipped"
    );

    let texts = ["a deflated zip", "loads like its folder"];
    let from_zip = block_on(TextClassifier::load(&files, &dev).unwrap().logits(&texts)).unwrap();
    let folder = ModelFiles::from_dir(&dir).unwrap();
    let from_dir = block_on(TextClassifier::load(&folder, &dev).unwrap().logits(&texts)).unwrap();
    assert_eq!(from_zip, from_dir);
}

#[test]
fn minilm_sentence_embeddings_match_sentence_transformers() {
    let dev = device();
    let (g, json) = golden("minilm");
    let files = ModelFiles::from_dir(minilm_dir()).unwrap();
    let embedder = Embedder::load(&files, &dev).unwrap();
    assert_eq!(embedder.pooling, Pooling::Mean);
    assert!(embedder.normalize, "modules.json declares Normalize");
    let texts: Vec<&str> = json["texts"]
        .as_array()
        .unwrap()
        .iter()
        .map(|t| t.as_str().unwrap())
        .collect();
    // Same token ids as transformers.
    let batch = embedder.tokenizer.encode_batch(&texts, 256).unwrap();
    let want = g["input_ids"].rows_u32();
    let want_mask = g["attention_mask"].rows_u32();
    for i in 0..texts.len() {
        let w: Vec<u32> = want[i]
            .iter()
            .zip(&want_mask[i])
            .filter(|(_, &m)| m == 1)
            .map(|(&v, _)| v)
            .collect();
        assert_eq!(batch.row_ids(i), w);
    }
    let input = EncoderInput::new(&batch, &dev);
    assert_close(
        "last_hidden_state",
        &values(embedder.encoder.forward(&input)),
        &g["last_hidden_state"].f32(),
        TOL,
    );
    let emb = block_on(embedder.embed(&texts)).unwrap();
    let flat: Vec<f32> = emb.iter().flatten().copied().collect();
    assert_close(
        "sentence_embedding",
        &flat,
        &g["sentence_embedding"].f32(),
        TOL,
    );
    // Same cosine ordering: for each sentence, the others ranked alike.
    let want_cos = json["cosine"].as_array().unwrap();
    for i in 0..texts.len() {
        let rank = |score: &dyn Fn(usize) -> f32| {
            let mut others: Vec<usize> = (0..texts.len()).filter(|&j| j != i).collect();
            others.sort_by(|&a, &b| score(b).total_cmp(&score(a)));
            others
        };
        let got = rank(&|j| cosine(&emb[i], &emb[j]));
        let want = rank(&|j| want_cos[i][j].as_f64().unwrap() as f32);
        assert_eq!(got, want, "cosine ranking for sentence {i}");
        for j in 0..texts.len() {
            let c = cosine(&emb[i], &emb[j]);
            assert!((c - want_cos[i][j].as_f64().unwrap() as f32).abs() < 1e-4);
        }
    }
}
