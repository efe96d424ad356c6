//! Model files: the one place that knows where a model comes from and what its folder holds.
//!
//! - Model ids and the source URL template (the Hugging Face Hub, a mirror, a local server).
//! - Which files a folder has: the three every model needs, and the optional ones, by purpose.
//! - [`ModelFiles`]: a folder's files as bytes, read from disk, a zip, or a server.
//! - Zip archives ([`archive`]) in and out.
//! - In the browser: downloads with progress ([`download`]) and the Cache API store of loaded
//!   models ([`storage`]), keyed by [`StoreKey`].

pub mod archive;
mod files;

#[cfg(target_arch = "wasm32")]
pub mod download;
#[cfg(target_arch = "wasm32")]
pub mod runs;
#[cfg(target_arch = "wasm32")]
pub mod storage;

use serde::{Deserialize, Serialize};

pub use files::{shard_names, ModelFiles};

use crate::error::Error;
use crate::math::human_bytes;

/// The largest file the engine takes: in WebAssembly (32-bit) one allocation holds at most
/// `isize::MAX` bytes, 2 GiB, and the model built from it must still fit beside it.
pub const MAX_FILE_BYTES: u64 = i32::MAX as u64;

/// At most this much is reserved before a download's bytes arrive; a larger file grows as it
/// comes, so a server that announces more than it sends costs nothing.
const RESERVE_MAX: u64 = 64 << 20;

/// What a response's headers say about its body, checked before anything is allocated.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BodyPlan {
    /// The length the body must have once read (none when the server compressed it: then
    /// `content-length` counts the compressed bytes, which the browser has already inflated).
    pub expected: Option<u64>,
    /// Bytes to reserve up front.
    pub reserve: usize,
}

/// Reads `content-length` and `content-encoding`: a file announced larger than
/// [`MAX_FILE_BYTES`] is refused before a byte is read.
pub fn plan_body(
    file: &str,
    content_length: Option<&str>,
    content_encoding: Option<&str>,
) -> Result<BodyPlan, Error> {
    let encoded = content_encoding.is_some_and(|e| {
        let e = e.trim();
        !e.is_empty() && !e.eq_ignore_ascii_case("identity")
    });
    let length = content_length.and_then(|v| v.trim().parse::<u64>().ok());
    let expected = if encoded { None } else { length };
    if let Some(n) = expected {
        if n > MAX_FILE_BYTES {
            return Err(too_large(file, n));
        }
    }
    Ok(BodyPlan {
        expected,
        reserve: expected.unwrap_or(0).min(RESERVE_MAX) as usize,
    })
}

/// The capacity a download's buffer grows to when `needed` bytes no longer fit: the rest of
/// the announced length (`expected`) once the bytes pass the first reservation, else half as
/// much again (never the doubling of `Vec`'s growth, which for a file past 1 GiB would ask for
/// more than WebAssembly's one allocation of at most 2 GiB, and hold twice the file).
pub fn grown_capacity(needed: usize, expected: Option<u64>) -> usize {
    let max = MAX_FILE_BYTES as usize;
    match expected {
        Some(n) if n as usize >= needed => n as usize,
        _ => needed
            .saturating_add(needed / 2)
            .max(1 << 20)
            .min(max)
            .max(needed),
    }
}

/// "model.safetensors is 3.3 GB: too large for this browser ...": `bytes` is the size announced,
/// or how far a download got before it passed the limit.
pub fn too_large(file: &str, bytes: u64) -> Error {
    Error::files(format!(
        "{file} is {}{}: too large for this browser (WebAssembly holds one file of at most {}; \
         a model this large needs a smaller or quantised variant)",
        if bytes > MAX_FILE_BYTES { "" } else { "over " },
        human_bytes(bytes.max(MAX_FILE_BYTES + 1) as f64),
        human_bytes(MAX_FILE_BYTES as f64),
    ))
}

/// A file's fingerprint as browser storage keeps it beside the file: its length and a 64-bit
/// hash of its bytes. Storing a file whose fingerprint is already there is skipped, and a file
/// written is read back by its fingerprint before a model's listing points at it.
pub fn fingerprint(bytes: &[u8]) -> String {
    const K: u64 = 0x9E37_79B9_7F4A_7C15;
    let mut h: u64 = 0xCBF2_9CE4_8422_2325 ^ bytes.len() as u64;
    let mut words = bytes.chunks_exact(8);
    for w in &mut words {
        let w = u64::from_le_bytes(w.try_into().expect("8 bytes"));
        h = (h ^ w).wrapping_mul(K).rotate_left(29);
    }
    for &b in words.remainder() {
        h = (h ^ b as u64).wrapping_mul(K).rotate_left(29);
    }
    h ^= h >> 32;
    format!("{}-{h:016x}", bytes.len())
}

/// The default model source: the Hugging Face Hub. `{id}` and `{file}` are filled in.
pub const HUB_URL_TEMPLATE: &str = "https://huggingface.co/{id}/resolve/main/{file}";

/// The files every model needs (a sharded checkpoint's index and shards stand for
/// `model.safetensors`).
pub const REQUIRED_FILES: [&str; 3] = ["config.json", "tokenizer.json", "model.safetensors"];

/// A sharded checkpoint's index: which `.safetensors` file holds each tensor.
pub const INDEX_FILE: &str = "model.safetensors.index.json";

/// sentence-transformers' settings: `modules.json` names the pipeline (pooling, normalisation);
/// the others hold the pooling mode, the maximum sequence length and the similarity function.
pub const SENTENCE_TRANSFORMERS_FILES: [&str; 4] = [
    "modules.json",
    "1_Pooling/config.json",
    "sentence_bert_config.json",
    "config_sentence_transformers.json",
];

/// Tokenizer files beside `tokenizer.json` that a saved model carries along (transformers'
/// `save_pretrained` writes them; slow tokenizers need `vocab.txt`).
pub const TOKENIZER_FILES: [&str; 3] = [
    "tokenizer_config.json",
    "special_tokens_map.json",
    "vocab.txt",
];

/// Generation defaults of a language model.
pub const GENERATION_FILES: [&str; 1] = ["generation_config.json"];

/// Every optional file a model folder may hold: read from disk and from zips, kept in storage.
pub fn optional_files() -> impl Iterator<Item = &'static str> {
    SENTENCE_TRANSFORMERS_FILES
        .into_iter()
        .chain(TOKENIZER_FILES)
        .chain(GENERATION_FILES)
}

/// Whether `name` is a file of a model folder that Tunelab reads (a shard of a sharded
/// checkpoint included: `model-00001-of-00002.safetensors`, as transformers names them).
pub fn is_model_file(name: &str) -> bool {
    REQUIRED_FILES.contains(&name)
        || name == INDEX_FILE
        || (name.ends_with(".safetensors") && !name.contains('/'))
        || optional_files().any(|f| f == name)
}

/// What a model is loaded for; it decides which optional files are worth asking a server for.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Purpose {
    /// Inference with the checkpoint as it is (classification, fill-mask, prompting).
    Inference,
    /// A base to fine-tune: its sentence-transformers pooling and the tokenizer files a saved
    /// model carries along.
    FineTuning,
    /// Sentence embeddings: the sentence-transformers settings.
    Embedding,
    /// Prompting a language model: its chat template and generation defaults.
    Prompting,
}

impl Purpose {
    /// The optional files asked of a server first. `modules.json`, when the server has it,
    /// brings the rest of [`SENTENCE_TRANSFORMERS_FILES`] along.
    pub fn optional_files(self) -> &'static [&'static str] {
        match self {
            Purpose::Inference => &[],
            Purpose::Embedding => &["modules.json"],
            Purpose::Prompting => &["tokenizer_config.json", "generation_config.json"],
            Purpose::FineTuning => &[
                "modules.json",
                "tokenizer_config.json",
                "special_tokens_map.json",
                "vocab.txt",
            ],
        }
    }
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

/// Checks a model source template: an http(s) URL with `{id}` and `{file}`.
pub fn check_url_template(template: &str) -> Result<(), String> {
    let t = template.trim();
    if !(t.starts_with("https://") || t.starts_with("http://"))
        || !t.contains("{id}")
        || !t.contains("{file}")
    {
        return Err("the source must be an http(s) URL containing {id} and {file}".into());
    }
    Ok(())
}

/// A stored model's identity, and its key in browser storage.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum StoreKey {
    /// Downloaded from a source: the URL template and the model id.
    Hub { url_template: String, id: String },
    /// Fine-tuned in this browser, under the name the user gave it.
    Trained { name: String },
}

impl StoreKey {
    const TRAINED: &'static str = "trained|";

    /// The key as stored (`{template}|{id}` or `trained|{name}`).
    pub fn key(&self) -> String {
        match self {
            StoreKey::Hub { url_template, id } => format!("{url_template}|{}", id.trim()),
            StoreKey::Trained { name } => format!("{}{name}", Self::TRAINED),
        }
    }

    /// Reads a stored key back.
    pub fn parse(key: &str) -> Self {
        if let Some(name) = key.strip_prefix(Self::TRAINED) {
            return StoreKey::Trained { name: name.into() };
        }
        match key.rsplit_once('|') {
            Some((url_template, id)) => StoreKey::Hub {
                url_template: url_template.into(),
                id: id.into(),
            },
            None => StoreKey::Hub {
                url_template: String::new(),
                id: key.into(),
            },
        }
    }

    pub fn is_trained(&self) -> bool {
        matches!(self, StoreKey::Trained { .. })
    }
}

/// A model kept in browser storage, as the Models page lists it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct StoredModel {
    /// [`StoreKey::key`]; the page sends it back to load or delete the model.
    pub key: String,
    pub name: String,
    /// Fine-tuned in this browser (not downloaded).
    pub trained: bool,
    /// Where it came from: the source template, or "fine-tuned here".
    pub source: String,
    /// (file, size in bytes)
    pub files: Vec<(String, u64)>,
    pub bytes: u64,
    pub saved_ms: f64,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_fingerprint_tells_files_of_one_length_apart() {
        let a = vec![7u8; 1001];
        let mut b = a.clone();
        b[1000] = 8;
        let mut c = a.clone();
        c[3] = 8;
        assert_eq!(fingerprint(&a), fingerprint(&a.clone()));
        assert!(fingerprint(&a).starts_with("1001-"));
        assert_ne!(fingerprint(&a), fingerprint(&b));
        assert_ne!(fingerprint(&a), fingerprint(&c));
        assert_ne!(fingerprint(&[]), fingerprint(&[0]));
        // Two weights files of one architecture: same length, other values.
        let w1: Vec<u8> = (0..4096u32)
            .flat_map(|i| (i as f32).to_le_bytes())
            .collect();
        let w2: Vec<u8> = (0..4096u32)
            .flat_map(|i| (i as f32 + 0.5).to_le_bytes())
            .collect();
        assert_ne!(fingerprint(&w1), fingerprint(&w2));
    }

    #[test]
    fn a_body_announced_too_large_is_refused_before_any_allocation() {
        let err = plan_body("model.safetensors", Some("3300000000"), None).unwrap_err();
        assert!(
            err.to_string()
                .contains("model.safetensors is 3.3 GB: too large for this browser"),
            "{err}"
        );
        // What fits is reserved only up to a bound, whatever the server claims.
        let plan = plan_body("model.safetensors", Some("2000000000"), None).unwrap();
        assert_eq!(plan.expected, Some(2_000_000_000));
        assert_eq!(plan.reserve, 64 << 20);
        let plan = plan_body("config.json", Some(" 512 "), Some("identity")).unwrap();
        assert_eq!((plan.expected, plan.reserve), (Some(512), 512));
    }

    #[test]
    fn a_download_grows_to_its_announced_length_not_to_twice_it() {
        // 1.2 GB announced: past the first 64 MB, the rest of it at once.
        assert_eq!(
            grown_capacity(64 << 20 | 1, Some(1_200_000_000)),
            1_200_000_000
        );
        // Unknown length (compressed): half as much again, at most the largest file.
        assert_eq!(grown_capacity(100 << 20, None), 150 << 20);
        assert_eq!(grown_capacity(10, None), 1 << 20);
        assert_eq!(grown_capacity(1_900_000_000, None), MAX_FILE_BYTES as usize);
        // A server sending more than it announced: the bytes decide.
        assert_eq!(grown_capacity(2_000, Some(1_000)), 1 << 20);
    }

    #[test]
    fn a_compressed_body_is_not_held_to_its_compressed_length() {
        // content-length counts gzip's bytes; the browser hands over the inflated ones.
        let plan = plan_body("model.safetensors", Some("1000"), Some("gzip")).unwrap();
        assert_eq!((plan.expected, plan.reserve), (None, 0));
        // Even a compressed length past the limit says nothing about the inflated size.
        assert!(plan_body("model.safetensors", Some("3300000000"), Some("br")).is_ok());
        assert_eq!(plan_body("x", None, None).unwrap().expected, None);
        assert_eq!(plan_body("x", Some("lots"), None).unwrap().expected, None);
    }

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
        assert!(check_url_template(HUB_URL_TEMPLATE).is_ok());
        assert!(check_url_template("file:///{id}/{file}").is_err());
        assert!(check_url_template("https://example.org/{id}").is_err());
    }

    #[test]
    fn store_keys_round_trip() {
        for key in [
            StoreKey::Hub {
                url_template: HUB_URL_TEMPLATE.into(),
                id: "sentence-transformers/all-MiniLM-L6-v2".into(),
            },
            StoreKey::Trained {
                name: "tiny-bert fine-tuned 2026-11-27T10:00".into(),
            },
        ] {
            assert_eq!(StoreKey::parse(&key.key()), key);
        }
        assert!(StoreKey::parse("trained|x").is_trained());
        assert!(!StoreKey::parse("https://h/{id}/{file}|gpt2").is_trained());
    }

    #[test]
    fn known_files() {
        assert!(is_model_file("vocab.txt"));
        assert!(is_model_file("1_Pooling/config.json"));
        assert!(!is_model_file("README.md"));
        for f in Purpose::FineTuning.optional_files() {
            assert!(is_model_file(f), "{f}");
        }
    }
}
