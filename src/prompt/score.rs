//! Classification by label scoring: each label's verbalizer (one or more tokens with a leading
//! space) is scored by the summed log-probability of its tokens after the prompt; label
//! probabilities are a softmax over those scores, optionally calibrated (Zhao et al. 2021:
//! divided by the label probabilities of a content-free input such as "N/A", renormalised).

#[cfg(feature = "engine")]
use crate::clock::{Breather, BREATHE_EVERY_MS};
#[cfg(feature = "engine")]
use burn::tensor::activation;
use serde::{Deserialize, Serialize};

#[cfg(feature = "engine")]
use std::rc::Rc;

use super::template::Template;
#[cfg(feature = "engine")]
use super::LanguageModel;
#[cfg(feature = "engine")]
use crate::data::{Dataset, Text};
#[cfg(feature = "engine")]
use crate::error::Error;
#[cfg(feature = "engine")]
use crate::math::{argmax, softmax};
use crate::math::{ranked, LabelScore};
#[cfg(feature = "engine")]
use crate::metrics::{evaluate, Average, Metrics};
#[cfg(feature = "engine")]
use crate::model::gpt2::KvCache;
#[cfg(feature = "engine")]
use crate::model::read_f32;
#[cfg(feature = "engine")]
use crate::pool::{spread, Helpers, Replica, ScorerLane, Watch};

/// Summed log-probabilities of each continuation (token ids) after `prompt_ids`. The prompt runs
/// once; each continuation reuses its KV cache.
#[cfg(feature = "engine")]
pub async fn continuation_log_probs(
    lm: &LanguageModel,
    prompt_ids: &[u32],
    continuations: &[Vec<u32>],
) -> Result<Vec<f32>, Error> {
    if prompt_ids.is_empty() {
        return Err(Error::Usage("the prompt is empty".into()));
    }
    let longest = continuations.iter().map(Vec::len).max().unwrap_or(0);
    if prompt_ids.len() + longest > lm.max_positions() {
        return Err(Error::Usage(format!(
            "the prompt and label take {} tokens; this model reads at most {}",
            prompt_ids.len() + longest,
            lm.max_positions()
        )));
    }
    let mut cache = KvCache::default();
    let first = activation::log_softmax(lm.step(prompt_ids, &mut cache), 1);
    let first = read_f32(first).await?;
    let vocab = lm.model.vocab_size();
    let mut out = Vec::with_capacity(continuations.len());
    for tokens in continuations {
        let Some((&t0, rest)) = tokens.split_first() else {
            return Err(Error::Usage("a label has no tokens".into()));
        };
        let mut total = first[t0 as usize];
        if !rest.is_empty() {
            // Feed all but the last token; position i predicts token i + 1.
            let mut c = cache.clone();
            let feed = &tokens[..tokens.len() - 1];
            let hidden = lm.model.forward(lm.ids_tensor(feed), &mut c);
            let lp = activation::log_softmax(lm.model.logits(hidden), 2);
            let lp = read_f32(lp).await?;
            for (i, &t) in rest.iter().enumerate() {
                total += lp[i * vocab + t as usize];
            }
        }
        out.push(total);
    }
    Ok(out)
}

/// Label probabilities for one text.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct LabelScores {
    pub labels: Vec<String>,
    /// Summed log-probability of each label's tokens.
    pub log_probs: Vec<f32>,
    /// Softmax over labels (calibrated when calibration is on).
    pub probs: Vec<f32>,
    /// Index of the most probable label.
    pub best: usize,
    /// Whether the text was cut (keeping its beginning) to fit the model's positions beside the
    /// template and the longest label.
    #[serde(default)]
    pub truncated: bool,
}

/// A prompt's evaluation on a labelled table.
#[derive(Debug, Clone, PartialEq)]
#[cfg(feature = "engine")]
pub struct Evaluation {
    pub metrics: Metrics,
    /// The predicted label of each row scored: all of them, or those before a cancel.
    pub predicted: Vec<usize>,
    /// How many of them were cut to fit the model.
    pub truncated: usize,
}

impl LabelScores {
    /// Every label with its probability, most probable first (as the pipelines report them).
    pub fn ranked(&self) -> Vec<LabelScore> {
        ranked(&self.probs, &self.labels)
    }
}

/// Scores labels for texts with a template.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct LabelScorer {
    pub template: Template,
    /// Label names, as the dataset spells them.
    pub labels: Vec<String>,
    /// The words scored for each label (a leading space is added when missing).
    pub verbalizers: Vec<String>,
    pub calibrate: bool,
    /// The content-free input of calibration.
    pub content_free: String,
    /// Label probabilities of the content-free input, computed on first use.
    #[serde(skip)]
    calibration: Option<Vec<f32>>,
    /// Send each prompt as a chat turn through the model's chat template (the label words then
    /// open the assistant's answer, without a leading space).
    #[serde(default)]
    pub chat: Option<super::chat::ChatSpec>,
}

impl LabelScorer {
    pub fn new(template: Template, labels: Vec<String>, verbalizers: Vec<String>) -> Self {
        Self {
            template,
            labels,
            verbalizers,
            calibrate: false,
            content_free: "N/A".into(),
            calibration: None,
            chat: None,
        }
    }
}

#[cfg(feature = "engine")]
impl LabelScorer {
    /// The prompt for `text`: the template, through the chat template when asked.
    pub fn prompt_text(&self, lm: &LanguageModel, text: &str) -> Result<String, Error> {
        let rendered = self.template.render(text);
        match &self.chat {
            Some(spec) => lm.chat_prompt(&rendered, spec),
            None => Ok(rendered),
        }
    }

    fn verbalizer_ids(&self, lm: &LanguageModel) -> Result<Vec<Vec<u32>>, Error> {
        if self.labels.len() < 2 || self.labels.len() != self.verbalizers.len() {
            return Err(Error::Usage(
                "label scoring needs at least 2 labels, each with its word(s)".into(),
            ));
        }
        self.verbalizers
            .iter()
            .map(|v| {
                let v = v.trim();
                if v.is_empty() {
                    return Err(Error::Usage("a label word is empty".into()));
                }
                let word = if self.chat.is_some() {
                    v.to_string()
                } else {
                    format!(" {v}")
                };
                Ok(lm.tokenizer.encode(&word, false)?)
            })
            .collect()
    }

    /// Log-probabilities and probabilities of the labels after the prompt for `text`, and
    /// whether `text` had to be cut: a text too long for the model beside the template and the
    /// longest label keeps its beginning, as training's truncation does (a template too long on
    /// its own stays an error).
    async fn raw_probs(
        &self,
        lm: &LanguageModel,
        text: &str,
    ) -> Result<(Vec<f32>, Vec<f32>, bool), Error> {
        let ids = self.verbalizer_ids(lm)?;
        let longest = ids.iter().map(Vec::len).max().unwrap_or(0);
        let limit = lm.max_positions().saturating_sub(longest);
        let chat = self.chat.is_some();
        let mut prompt = lm.prompt_ids(&self.prompt_text(lm, text)?, chat)?;
        let truncated = prompt.len() > limit;
        if truncated {
            let own = lm.tokenizer.encode(text, false)?.len();
            let mut budget = limit.saturating_sub(prompt.len().saturating_sub(own));
            loop {
                let cut = lm.tokenizer.truncate_text(text, budget)?;
                prompt = lm.prompt_ids(&self.prompt_text(lm, cut)?, chat)?;
                if prompt.len() <= limit || budget == 0 {
                    break;
                }
                // Tokens can merge differently at the cut: take off what is still over.
                budget = budget.saturating_sub((prompt.len() - limit).max(1));
            }
        }
        let log_probs = continuation_log_probs(lm, &prompt, &ids).await?;
        let probs = softmax(&log_probs);
        Ok((log_probs, probs, truncated))
    }

    /// Computes the content-free probabilities (when calibration is on and not yet done).
    pub async fn prepare(&mut self, lm: &LanguageModel) -> Result<(), Error> {
        if self.calibrate && self.calibration.is_none() {
            let (_, p, _) = self.raw_probs(lm, &self.content_free.clone()).await?;
            self.calibration = Some(p);
        }
        Ok(())
    }

    pub async fn score(&mut self, lm: &LanguageModel, text: &str) -> Result<LabelScores, Error> {
        self.prepare(lm).await?;
        self.score_prepared(lm, text).await
    }

    /// [`LabelScorer::score`] once [`LabelScorer::prepare`] ran.
    pub async fn score_prepared(
        &self,
        lm: &LanguageModel,
        text: &str,
    ) -> Result<LabelScores, Error> {
        if self.calibrate && self.calibration.is_none() {
            return Err(Error::usage("the scorer's calibration was not computed"));
        }
        let (log_probs, mut probs, truncated) = self.raw_probs(lm, text).await?;
        if let (true, Some(cf)) = (self.calibrate, &self.calibration) {
            let q: Vec<f32> = probs
                .iter()
                .zip(cf)
                .map(|(p, c)| p / c.max(1e-30))
                .collect();
            let total: f32 = q.iter().sum();
            probs = q.iter().map(|x| x / total).collect();
        }
        let best = argmax(&probs);
        Ok(LabelScores {
            labels: self.labels.clone(),
            log_probs,
            probs,
            best,
            truncated,
        })
    }

    /// Scores a labelled dataset; label names must match the scorer's labels. `on_progress`
    /// receives (done, total) and returns `false` to cancel. Returns the metrics and the
    /// predictions of the rows scored: all of them, or those before a cancel.
    pub async fn evaluate(
        &mut self,
        lm: &LanguageModel,
        data: &Dataset,
        on_progress: &mut dyn FnMut(usize, usize) -> bool,
    ) -> Result<Evaluation, Error> {
        let map = self.label_map(data)?;
        let mut truth = Vec::with_capacity(data.len());
        let mut predicted = Vec::with_capacity(data.len());
        let mut truncated = 0;
        let mut breather = Breather::new(BREATHE_EVERY_MS);
        for (i, (text, &label)) in data.texts.iter().zip(&data.labels).enumerate() {
            breather.breathe().await;
            let s = self.score(lm, text).await?;
            truth.push(map[label]);
            predicted.push(s.best);
            truncated += usize::from(s.truncated);
            if !on_progress(i + 1, data.len()) {
                break;
            }
        }
        Ok(self.evaluation(truth, predicted, truncated))
    }

    /// [`LabelScorer::evaluate`] with the rows spread over helper engines holding `replica`
    /// (a language model with this scorer): one row per batch, so that a cancel stops within a
    /// row on each engine. The rows scored before a cancel are not always the first ones.
    pub async fn evaluate_spread(
        &mut self,
        lm: &LanguageModel,
        data: &Dataset,
        helpers: &dyn Helpers,
        replica: &Rc<Replica>,
        on_progress: &mut dyn FnMut(usize, usize) -> bool,
    ) -> Result<Evaluation, Error> {
        let map = self.label_map(data)?;
        self.prepare(lm).await?;
        let chunks: Vec<Vec<Text>> = data.texts.iter().map(|t| vec![t.clone()]).collect();
        let mut watch = ProgressFn {
            on_progress,
            total: data.len(),
            go_on: true,
        };
        let local = ScorerLane { lm, scorer: self };
        let spread = spread(&local, Some((helpers, replica)), &chunks, &mut watch).await?;
        let (mut truth, mut predicted, mut truncated) = (Vec::new(), Vec::new(), 0);
        for (row, values) in spread.rows.iter().enumerate() {
            if let Some(v) = values {
                truth.push(map[data.labels[row]]);
                predicted.push(v[0] as usize);
                truncated += usize::from(v[1] > 0.5);
            }
        }
        Ok(self.evaluation(truth, predicted, truncated))
    }

    fn evaluation(&self, truth: Vec<usize>, predicted: Vec<usize>, truncated: usize) -> Evaluation {
        let metrics = evaluate(
            &truth,
            &predicted,
            &self.labels,
            Average::default_for(&self.labels),
        );
        Evaluation {
            metrics,
            predicted,
            truncated,
        }
    }

    /// The scorer's label of each of the dataset's labels (by name, ignoring case).
    fn label_map(&self, data: &Dataset) -> Result<Vec<usize>, Error> {
        data.label_names
            .iter()
            .map(|name| {
                self.labels
                    .iter()
                    .position(|l| l.eq_ignore_ascii_case(name))
                    .ok_or_else(|| {
                        Error::Usage(format!(
                            "the dataset's label \"{name}\" is not one of the prompt's labels ({})",
                            self.labels.join(", ")
                        ))
                    })
            })
            .collect()
    }
}

/// Progress through a callback that says whether to go on.
#[cfg(feature = "engine")]
struct ProgressFn<'f> {
    on_progress: &'f mut dyn FnMut(usize, usize) -> bool,
    total: usize,
    go_on: bool,
}

#[cfg(feature = "engine")]
impl Watch for ProgressFn<'_> {
    fn done(&mut self, rows: usize) {
        self.go_on = (self.on_progress)(rows, self.total);
    }
    fn cancelled(&self) -> bool {
        !self.go_on
    }
}
