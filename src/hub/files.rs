//! A model folder's files as bytes, whatever they came from: a folder on disk (native), a zip,
//! files the user picked, a server, or browser storage.

use std::collections::BTreeMap;

use super::{archive, is_model_file, REQUIRED_FILES};
use crate::error::Error;
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
        for name in REQUIRED_FILES {
            files.insert(name, read(name)?);
        }
        for name in super::optional_files() {
            if let Ok(bytes) = read(name) {
                files.insert(name, bytes);
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

    /// The required files that are missing (empty).
    pub fn missing(&self) -> Vec<&'static str> {
        REQUIRED_FILES
            .into_iter()
            .filter(|n| self.get(n).is_none_or(<[u8]>::is_empty))
            .collect()
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
        assert_eq!(
            files.check_complete().unwrap_err().to_string(),
            "missing tokenizer.json, model.safetensors"
        );
        let names: Vec<&str> = files.entries().iter().map(|(n, _)| *n).collect();
        assert_eq!(names, ["config.json", "1_Pooling/config.json"]);
    }
}
