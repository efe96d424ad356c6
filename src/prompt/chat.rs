//! Chat templates: `tokenizer_config.json`'s `chat_template` (Jinja) rendered with a
//! conversation as transformers' `apply_chat_template(..., tokenize=False)` renders it —
//! `trim_blocks` and `lstrip_blocks` on, the special tokens (`bos_token`, `eos_token`, ...) and
//! `add_generation_prompt` in the context, Python's string methods (`startswith`, `split`,
//! `strip`, ...) through minijinja-contrib's pycompat, and `raise_exception`.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

/// One turn of a conversation.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ChatMessage {
    /// `system`, `user` or `assistant`.
    pub role: String,
    pub content: String,
}

impl ChatMessage {
    pub fn new(role: &str, content: &str) -> Self {
        Self {
            role: role.into(),
            content: content.into(),
        }
    }
}

/// How the Prompt page sends a prompt as a chat: the rendered template text becomes the user's
/// turn, after an optional system message, with the assistant's turn opened.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct ChatSpec {
    pub system: Option<String>,
    /// Extra template variables (Qwen3's `enable_thinking`, ...).
    #[serde(default)]
    pub kwargs: serde_json::Map<String, serde_json::Value>,
}

impl ChatSpec {
    /// The conversation for a prompt text.
    pub fn messages(&self, prompt: &str) -> Vec<ChatMessage> {
        let mut messages = Vec::new();
        if let Some(system) = self.system.as_deref().filter(|s| !s.trim().is_empty()) {
            messages.push(ChatMessage::new("system", system));
        }
        messages.push(ChatMessage::new("user", prompt));
        messages
    }
}

/// A model's chat template with the special tokens its context holds.
#[derive(Debug, Clone, PartialEq)]
pub struct ChatTemplate {
    pub source: String,
    /// `bos_token`, `eos_token`, ... as their text.
    pub tokens: BTreeMap<String, String>,
}

impl ChatTemplate {
    /// The template of a `tokenizer_config.json` (a string, or a list of named templates of
    /// which `default` is taken), if it has one.
    pub fn from_tokenizer_config(config: &serde_json::Value) -> Option<Self> {
        let source = match config.get("chat_template")? {
            serde_json::Value::String(s) => s.clone(),
            serde_json::Value::Array(list) => list
                .iter()
                .find(|t| t.get("name").and_then(|n| n.as_str()) == Some("default"))?
                .get("template")?
                .as_str()?
                .to_string(),
            _ => return None,
        };
        let mut tokens = BTreeMap::new();
        if let Some(map) = config.as_object() {
            for (key, value) in map {
                if !key.ends_with("_token") {
                    continue;
                }
                // A token is its text, or an AddedToken object with `content`.
                let text = value
                    .as_str()
                    .or_else(|| value.get("content").and_then(|c| c.as_str()));
                if let Some(text) = text {
                    tokens.insert(key.clone(), text.to_string());
                }
            }
        }
        Some(Self { source, tokens })
    }

    /// The conversation as the template renders it.
    #[cfg(feature = "engine")]
    pub fn render(
        &self,
        messages: &[ChatMessage],
        add_generation_prompt: bool,
        kwargs: &serde_json::Map<String, serde_json::Value>,
    ) -> Result<String, String> {
        use minijinja::{Environment, Error, ErrorKind, Value};
        let mut env = Environment::new();
        env.set_trim_blocks(true);
        env.set_lstrip_blocks(true);
        env.set_unknown_method_callback(minijinja_contrib::pycompat::unknown_method_callback);
        env.add_function(
            "raise_exception",
            |message: String| -> Result<Value, Error> {
                Err(Error::new(ErrorKind::InvalidOperation, message))
            },
        );
        env.add_template("chat_template", &self.source)
            .map_err(|e| format!("the chat template does not parse: {e}"))?;
        let mut context: BTreeMap<String, Value> = self
            .tokens
            .iter()
            .map(|(k, v)| (k.clone(), Value::from(v.as_str())))
            .collect();
        context.insert("messages".into(), Value::from_serialize(messages));
        context.insert(
            "add_generation_prompt".into(),
            Value::from(add_generation_prompt),
        );
        for (k, v) in kwargs {
            context.insert(k.clone(), Value::from_serialize(v));
        }
        env.get_template("chat_template")
            .and_then(|t| t.render(context))
            .map_err(|e| format!("the chat template failed: {e}"))
    }
}
