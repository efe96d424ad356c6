//! Text generation with the KV cache: greedy (transformers' `do_sample=False`) or sampling with
//! temperature, top-k and top-p from a seed; `max_new_tokens`; stops at EOS, a newline or stop
//! strings; a per-token callback for streaming. The completion excludes the prompt.

#[cfg(feature = "engine")]
use crate::clock::{Breather, BREATHE_EVERY_MS};
#[cfg(feature = "engine")]
use crate::model::kernels::argmax_rows;
use serde::{Deserialize, Serialize};

#[cfg(feature = "engine")]
use super::LanguageModel;
use crate::error::Error;
#[cfg(feature = "engine")]
use crate::model::gpt2::KvCache;
#[cfg(feature = "engine")]
use crate::model::{read_f32, read_i64};
#[cfg(feature = "engine")]
use crate::rng::Rng;

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct GenerationConfig {
    pub max_new_tokens: usize,
    /// `false`: greedy.
    pub do_sample: bool,
    pub temperature: f32,
    /// 0 turns top-k off.
    pub top_k: usize,
    /// 1.0 turns top-p off.
    pub top_p: f32,
    pub seed: u64,
    pub stop_at_eos: bool,
    pub stop_at_newline: bool,
    /// Generation ends before the first of these strings.
    pub stop: Vec<String>,
    /// Send the prompt as a chat turn through the model's chat template.
    #[serde(default)]
    pub chat: Option<super::chat::ChatSpec>,
}

impl Default for GenerationConfig {
    fn default() -> Self {
        Self {
            max_new_tokens: 20,
            do_sample: false,
            temperature: 1.0,
            top_k: 50,
            top_p: 1.0,
            seed: 42,
            stop_at_eos: true,
            stop_at_newline: false,
            stop: Vec::new(),
            chat: None,
        }
    }
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub enum StopReason {
    MaxNewTokens,
    Eos,
    Newline,
    StopString(String),
    /// The model's context (`n_positions`) is full.
    ContextFull,
    Cancelled,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Generation {
    /// The new token ids (an EOS that ended generation included, as transformers returns it).
    pub ids: Vec<u32>,
    /// The completion without the prompt, cut before a stop string or newline.
    pub text: String,
    pub stop: StopReason,
    /// The prompt as the model read it (a chat prompt after its template), when it was not the
    /// text given.
    #[serde(default)]
    pub sent_prompt: Option<String>,
}

impl GenerationConfig {
    pub fn validate(&self) -> Result<(), Error> {
        if self.do_sample && !(self.temperature > 0.0 && self.temperature.is_finite()) {
            return Err(Error::Usage("temperature must be above 0".into()));
        }
        if !(self.top_p > 0.0 && self.top_p <= 1.0) {
            return Err(Error::Usage("top-p must be in (0, 1]".into()));
        }
        Ok(())
    }
}

/// Picks the next token from host logits with the sampling settings (temperature, then top-k,
/// then top-p, as transformers' logits warpers run).
#[cfg(feature = "engine")]
pub fn sample(logits: &[f32], cfg: &GenerationConfig, rng: &mut Rng) -> u32 {
    let scaled: Vec<f32> = logits.iter().map(|&l| l / cfg.temperature).collect();
    let mut order: Vec<usize> = (0..scaled.len()).collect();
    order.sort_by(|&a, &b| scaled[b].total_cmp(&scaled[a]).then(a.cmp(&b)));
    if cfg.top_k > 0 {
        order.truncate(cfg.top_k.max(1));
    }
    let max = scaled[order[0]];
    let mut probs: Vec<f64> = order
        .iter()
        .map(|&i| ((scaled[i] - max) as f64).exp())
        .collect();
    let total: f64 = probs.iter().sum();
    probs.iter_mut().for_each(|p| *p /= total);
    if cfg.top_p < 1.0 {
        let mut cumulative = 0.0;
        let mut keep = probs.len();
        for (i, p) in probs.iter().enumerate() {
            cumulative += p;
            if cumulative >= cfg.top_p as f64 {
                keep = i + 1;
                break;
            }
        }
        order.truncate(keep);
        probs.truncate(keep);
        let total: f64 = probs.iter().sum();
        probs.iter_mut().for_each(|p| *p /= total);
    }
    let mut u = rng.next_f64();
    for (i, p) in probs.iter().enumerate() {
        if u < *p {
            return order[i] as u32;
        }
        u -= p;
    }
    order[order.len() - 1] as u32
}

/// Generates a continuation of `prompt`. `on_token` receives each new piece of text as it is
/// decoded; returning `false` cancels.
#[cfg(feature = "engine")]
pub async fn generate(
    lm: &LanguageModel,
    prompt: &str,
    cfg: &GenerationConfig,
    on_token: &mut dyn FnMut(&str) -> bool,
) -> Result<Generation, Error> {
    cfg.validate()?;
    let sent = match &cfg.chat {
        Some(spec) => Some(lm.chat_prompt(prompt, spec)?),
        None => None,
    };
    let prompt_ids = lm.prompt_ids(sent.as_deref().unwrap_or(prompt), sent.is_some())?;
    let mut generation = generate_ids(lm, &prompt_ids, cfg, on_token).await?;
    generation.sent_prompt = sent;
    Ok(generation)
}

/// [`generate`] from token ids.
#[cfg(feature = "engine")]
pub async fn generate_ids(
    lm: &LanguageModel,
    prompt_ids: &[u32],
    cfg: &GenerationConfig,
    on_token: &mut dyn FnMut(&str) -> bool,
) -> Result<Generation, Error> {
    if prompt_ids.is_empty() {
        return Err(Error::Usage("the prompt is empty".into()));
    }
    let limit = lm.max_positions();
    if prompt_ids.len() >= limit {
        return Err(Error::Usage(format!(
            "the prompt has {} tokens; this model reads at most {limit}",
            prompt_ids.len()
        )));
    }
    let eos = lm.model.eos_token_ids();
    let mut rng = Rng::new(cfg.seed);
    let mut cache = KvCache::default();
    let mut logits = lm.step(prompt_ids, &mut cache);
    let mut ids: Vec<u32> = Vec::new();
    let mut shown = String::new();
    let mut stop = StopReason::MaxNewTokens;
    // On the CPU a token's reads resolve at once: let a Stop in at every token (a small model
    // makes hundreds a second). On a GPU every token awaits its read, which lets it in anyway.
    let every_ms = if crate::device::on_cpu(&lm.device) {
        0.0
    } else {
        BREATHE_EVERY_MS
    };
    let mut breather = Breather::new(every_ms);
    while ids.len() < cfg.max_new_tokens {
        breather.breathe().await;
        let next = if cfg.do_sample {
            sample(&read_f32(logits.clone()).await?, cfg, &mut rng)
        } else {
            read_i64(argmax_rows(logits.clone())).await?[0] as u32
        };
        ids.push(next);
        if cfg.stop_at_eos && eos.contains(&next) {
            stop = StopReason::Eos;
            break;
        }
        let text = lm.tokenizer.decode(&ids, true)?;
        // Stop strings and newlines end the text before them.
        let mut cut: Option<(usize, StopReason)> = None;
        for s in cfg.stop.iter().filter(|s| !s.is_empty()) {
            if let Some(at) = text.find(s.as_str()) {
                if cut.as_ref().is_none_or(|(c, _)| at < *c) {
                    cut = Some((at, StopReason::StopString(s.clone())));
                }
            }
        }
        if cfg.stop_at_newline {
            if let Some(at) = text.find('\n') {
                if cut.as_ref().is_none_or(|(c, _)| at < *c) {
                    cut = Some((at, StopReason::Newline));
                }
            }
        }
        let visible = match &cut {
            Some((at, _)) => &text[..*at],
            None => text.as_str(),
        };
        // A partial UTF-8 sequence decodes to U+FFFD: hold it back until complete.
        let stable = visible.trim_end_matches('\u{FFFD}');
        if stable.len() > shown.len() && stable.starts_with(shown.as_str()) {
            let piece = &stable[shown.len()..];
            if !on_token(piece) {
                shown = stable.to_string();
                stop = StopReason::Cancelled;
                break;
            }
            shown = stable.to_string();
        }
        if let Some((at, reason)) = cut {
            shown = text[..at].to_string();
            stop = reason;
            break;
        }
        if prompt_ids.len() + ids.len() >= limit {
            stop = StopReason::ContextFull;
            break;
        }
        if ids.len() < cfg.max_new_tokens {
            logits = lm.step(&[next], &mut cache);
        }
    }
    let text = match stop {
        StopReason::StopString(_) | StopReason::Newline | StopReason::Cancelled => shown,
        _ => lm.tokenizer.decode(&ids, true)?,
    };
    Ok(Generation {
        ids,
        text,
        stop,
        sent_prompt: None,
    })
}
