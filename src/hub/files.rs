//! A model folder's files as bytes, whatever they came from: a folder on disk (native), a zip,
//! files the user picked, a server, or browser storage.

use std::collections::BTreeMap;

use super::{archive, is_model_file, INDEX_FILE, REQUIRED_FILES};
use crate::error::Error;
#[cfg(feature = "engine")]
use crate::model::weights::WeightFiles;
use crate::model::{ModelConfig, ModelError};
use crate::text::TextTokenizer;

/// The files of a Hugging Face model folder, as bytes.
#[derive(Debug, Clone, Default)]
pub struct ModelFiles {
    pub config: Vec<u8>,
    pub tokenizer: Vec<u8>,
    pub weights: Vec<u8>,
    /// Optional files by path in the folder (`modules.json`, `1_Pooling/config.json`, ...).
    pub extra: BTreeMap<String, Vec<u8>>,
}

impl ModelFiles {
    /// Reads a model folder from disk (native only: tests, benchmarks, tools): the required files
    /// and every optional one present.
    #[cfg(not(target_arch = "wasm32"))]
    pub fn from_dir(dir: impl AsRef<std::path::Path>) -> std::io::Result<Self> {
        let dir = dir.as_ref();
        let read = |name: &str| std::fs::read(dir.join(name));
        let mut files = Self::default();
        for name in super::optional_files().chain([INDEX_FILE]) {
            if let Ok(bytes) = read(name) {
                files.insert(name, bytes);
            }
        }
        for name in REQUIRED_FILES {
            match read(name) {
                Ok(bytes) => files.insert(name, bytes),
                // A sharded checkpoint: its index names the files.
                Err(_) if name == "model.safetensors" && files.extra.contains_key(INDEX_FILE) => {
                    let shards = files
                        .shard_names()
                        .map_err(|e| std::io::Error::other(e.to_string()))?
                        .unwrap_or_default();
                    for shard in shards {
                        let bytes = read(&shard)?;
                        files.insert(&shard, bytes);
                    }
                }
                Err(e) => return Err(e),
            }
        }
        Ok(files)
    }

    /// A folder's files from (path, bytes) pairs as a zip or a folder picker gives them: paths
    /// are reduced to their place in the model folder ([`folder_path`]); folders and desktop
    /// metadata are dropped.
    pub fn from_entries(entries: impl IntoIterator<Item = (String, Vec<u8>)>) -> Self {
        let mut files = Self::default();
        for (path, bytes) in entries {
            if let Some(name) = folder_path(&path) {
                files.insert(&name, bytes);
            }
        }
        files
    }

    /// The model folder inside a zip archive (stored or deflated entries, the folder at the top
    /// or one level down).
    pub fn from_zip(bytes: &[u8]) -> Result<Self, Error> {
        Ok(Self::from_entries(archive::read_zip(bytes)?))
    }

    /// Puts a file in by its path in the folder.
    pub fn insert(&mut self, name: &str, bytes: Vec<u8>) {
        match name {
            "config.json" => self.config = bytes,
            "tokenizer.json" => self.tokenizer = bytes,
            "model.safetensors" => self.weights = bytes,
            other => {
                self.extra.insert(other.to_string(), bytes);
            }
        }
    }

    /// A file by its path in the folder, if present.
    pub fn get(&self, name: &str) -> Option<&[u8]> {
        match name {
            "config.json" => Some(&self.config),
            "tokenizer.json" => Some(&self.tokenizer),
            "model.safetensors" => Some(&self.weights),
            other => self.extra.get(other).map(Vec::as_slice),
        }
    }

    /// Every file present, as (path, bytes), required files first.
    pub fn entries(&self) -> Vec<(&str, &[u8])> {
        REQUIRED_FILES
            .iter()
            .filter_map(|&n| self.get(n).filter(|b| !b.is_empty()).map(|b| (n, b)))
            .chain(self.extra.iter().map(|(n, b)| (n.as_str(), b.as_slice())))
            .collect()
    }

    /// The required files that are missing (empty): of a sharded checkpoint (an index and no
    /// `model.safetensors`), the shards its index names that are not here.
    pub fn missing(&self) -> Vec<String> {
        let mut missing = Vec::new();
        for name in REQUIRED_FILES {
            if name == "model.safetensors" {
                if let Ok(Some(shards)) = self.shard_names() {
                    missing.extend(shards.into_iter().filter(|s| !self.extra.contains_key(s)));
                    continue;
                }
            }
            if self.get(name).is_none_or(<[u8]>::is_empty) {
                missing.push(name.to_string());
            }
        }
        missing
    }

    /// Of a sharded checkpoint (no `model.safetensors`, and `model.safetensors.index.json`),
    /// the shard files its index names; `None` for a checkpoint in one file.
    pub fn shard_names(&self) -> Result<Option<Vec<String>>, Error> {
        if !self.weights.is_empty() {
            return Ok(None);
        }
        match self.extra.get(INDEX_FILE) {
            Some(index) => shard_names(index).map(Some),
            None => Ok(None),
        }
    }

    /// The weights as the models read them: `model.safetensors`, or every shard of a sharded
    /// checkpoint (an error names the shards that are missing).
    #[cfg(feature = "engine")]
    pub fn checkpoint(&self) -> Result<WeightFiles<'_>, Error> {
        let Some(shards) = self.shard_names()? else {
            return Ok(WeightFiles::from(&self.weights));
        };
        let mut files = Vec::with_capacity(shards.len());
        let mut missing = Vec::new();
        for shard in &shards {
            match self.extra.get_key_value(shard) {
                Some((name, bytes)) => files.push((name.as_str(), bytes.as_slice())),
                None => missing.push(shard.as_str()),
            }
        }
        if !missing.is_empty() {
            return Err(Error::files(format!(
                "missing {} of the {} weight files {INDEX_FILE} names: {}",
                missing.len(),
                shards.len(),
                missing.join(", ")
            )));
        }
        Ok(WeightFiles(files))
    }

    /// Bytes of the weights (all shards of a sharded checkpoint).
    pub fn weights_bytes(&self) -> u64 {
        match self.shard_names() {
            Ok(Some(shards)) => shards
                .iter()
                .filter_map(|s| self.extra.get(s))
                .map(|b| b.len() as u64)
                .sum(),
            _ => self.weights.len() as u64,
        }
    }

    /// An error naming the missing required files, if any.
    pub fn check_complete(&self) -> Result<(), Error> {
        let missing = self.missing();
        if missing.is_empty() {
            Ok(())
        } else {
            Err(Error::files(format!("missing {}", missing.join(", "))))
        }
    }

    pub fn config(&self) -> Result<ModelConfig, Error> {
        let text = std::str::from_utf8(&self.config)
            .map_err(|_| ModelError::Config("config.json is not UTF-8 text".into()))?;
        Ok(ModelConfig::from_json(text)?)
    }

    /// The tokenizer, refused when it has more tokens than the model's vocabulary (its ids past
    /// the embeddings would panic on the CPU and read garbage on WebGPU).
    pub fn tokenizer(&self) -> Result<TextTokenizer, Error> {
        let tokenizer = TextTokenizer::from_bytes(&self.tokenizer)?;
        let vocab = self.config().ok().and_then(|c| {
            c.encoder()
                .map(|e| e.vocab_size)
                .or_else(|| c.gpt2().map(|g| g.vocab_size))
                .or_else(|| c.llama().map(|l| l.vocab_size))
        });
        if let Some(vocab) = vocab {
            if tokenizer.vocab_size() > vocab {
                return Err(Error::files(format!(
                    "tokenizer.json has {} tokens but the model's vocabulary (vocab_size in \
                     config.json) has {vocab}: the tokenizer belongs to another model",
                    tokenizer.vocab_size()
                )));
            }
        }
        Ok(tokenizer)
    }

    /// An optional JSON file, parsed (`None` when absent or not JSON).
    pub fn json(&self, name: &str) -> Option<serde_json::Value> {
        serde_json::from_slice(self.extra.get(name)?).ok()
    }
}

/// The weight files a sharded checkpoint's index (`model.safetensors.index.json`, transformers'
/// `{"metadata": .., "weight_map": {tensor: file}}`) names, each once, sorted. Each must be a
/// `.safetensors` file beside the index (it is fetched by name from the same folder).
pub fn shard_names(index: &[u8]) -> Result<Vec<String>, Error> {
    let value: serde_json::Value = serde_json::from_slice(index)
        .map_err(|e| Error::files(format!("{INDEX_FILE} is not JSON: {e}")))?;
    let map = value
        .get("weight_map")
        .and_then(|m| m.as_object())
        .ok_or_else(|| Error::files(format!("{INDEX_FILE} has no \"weight_map\"")))?;
    let mut names = std::collections::BTreeSet::new();
    for (tensor, file) in map {
        let file = file.as_str().unwrap_or_default();
        let plain = file.ends_with(".safetensors")
            && !file.starts_with('.')
            && !file.contains(['/', '\\'])
            && file.len() <= 200;
        if !plain {
            return Err(Error::files(format!(
                "{INDEX_FILE} puts {tensor} in \"{file}\": a weight file must be a .safetensors \
                 file beside the index"
            )));
        }
        names.insert(file.to_string());
    }
    if names.is_empty() {
        return Err(Error::files(format!("{INDEX_FILE} names no weight files")));
    }
    Ok(names.into_iter().collect())
}

/// Where a path of an archive or a picked folder sits in the model folder: the longest tail of
/// the path that names a model file (`my-model/1_Pooling/config.json` ->
/// `1_Pooling/config.json`), else the file name. `None` for folders and for the metadata
/// desktop tools add (`__MACOSX/`, `._*`, `.DS_Store`).
pub fn folder_path(path: &str) -> Option<String> {
    let path = path.replace('\\', "/");
    let parts: Vec<&str> = path.split('/').filter(|p| !p.is_empty()).collect();
    let file = *parts.last()?;
    if path.ends_with('/')
        || parts.contains(&"__MACOSX")
        || file.starts_with("._")
        || file == ".DS_Store"
    {
        return None;
    }
    let known = (0..parts.len())
        .map(|i| parts[i..].join("/"))
        .find(|tail| is_model_file(tail));
    Some(known.unwrap_or_else(|| file.to_string()))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn paths_in_archives_map_onto_the_folder() {
        assert_eq!(folder_path("config.json").as_deref(), Some("config.json"));
        assert_eq!(
            folder_path("my-model/model.safetensors").as_deref(),
            Some("model.safetensors")
        );
        assert_eq!(
            folder_path("a/b/1_Pooling/config.json").as_deref(),
            Some("1_Pooling/config.json")
        );
        assert_eq!(folder_path("my-model/").as_deref(), None);
        assert_eq!(folder_path("__MACOSX/my-model/._config.json"), None);
        assert_eq!(folder_path("my-model/.DS_Store"), None);
        assert_eq!(folder_path("m\\vocab.txt").as_deref(), Some("vocab.txt"));
    }

    #[test]
    fn entries_and_missing_files() {
        let files = ModelFiles::from_entries([
            ("m/config.json".to_string(), b"{}".to_vec()),
            ("m/1_Pooling/config.json".to_string(), b"{}".to_vec()),
        ]);
        assert_eq!(files.missing(), ["tokenizer.json", "model.safetensors"]);
        // A sharded checkpoint: its index stands for model.safetensors and names the shards.
        let index = br#"{"metadata": {"total_size": 8}, "weight_map": {
            "a": "model-00001-of-00002.safetensors", "b": "model-00002-of-00002.safetensors",
            "c": "model-00001-of-00002.safetensors"}}"#;
        let mut sharded = ModelFiles::from_entries([
            ("m/config.json".to_string(), b"{}".to_vec()),
            ("m/tokenizer.json".to_string(), b"{}".to_vec()),
            ("m/model.safetensors.index.json".to_string(), index.to_vec()),
            (
                "m/model-00002-of-00002.safetensors".to_string(),
                b"x".to_vec(),
            ),
        ]);
        assert_eq!(sharded.missing(), ["model-00001-of-00002.safetensors"]);
        assert_eq!(
            sharded.checkpoint().unwrap_err().to_string(),
            "missing 1 of the 2 weight files model.safetensors.index.json names: \
             model-00001-of-00002.safetensors"
        );
        sharded.insert("model-00001-of-00002.safetensors", b"yy".to_vec());
        assert!(sharded.missing().is_empty());
        let names: Vec<&str> = sharded
            .checkpoint()
            .unwrap()
            .0
            .iter()
            .map(|f| f.0)
            .collect();
        assert_eq!(
            names,
            [
                "model-00001-of-00002.safetensors",
                "model-00002-of-00002.safetensors"
            ]
        );
        assert_eq!(sharded.weights_bytes(), 3);
        for bad in [
            r#"{"weight_map": {"a": "../secret.safetensors"}}"#,
            r#"{"weight_map": {"a": "model.bin"}}"#,
            r#"{"weight_map": {}}"#,
            r#"{"metadata": {}}"#,
            "not json",
        ] {
            assert!(shard_names(bad.as_bytes()).is_err(), "{bad}");
        }
        assert_eq!(
            files.check_complete().unwrap_err().to_string(),
            "missing tokenizer.json, model.safetensors"
        );
        let names: Vec<&str> = files.entries().iter().map(|(n, _)| *n).collect();
        assert_eq!(names, ["config.json", "1_Pooling/config.json"]);
    }
}
