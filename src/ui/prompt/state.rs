//! The prompt box's state and what it asks of the engine: generation, label scores, evaluation
//! on a labelled CSV, and few-shot examples sampled from one.

use leptos::prelude::*;

use crate::protocol::{
    Event, Example, GenerationConfig, LabelScore, Metrics, Request, ScorerSpec, TableOptions,
    Template,
};
use crate::ui::files;
use crate::ui::request::Call;
use crate::ui::state::AppState;

/// How the input becomes the prompt.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Shots {
    /// The template, without examples.
    Zero,
    /// The template with the examples.
    Few,
    /// The input is the whole prompt, no template.
    Raw,
}

fn split_list(s: &str) -> Vec<String> {
    s.split(',')
        .map(|x| x.trim().to_string())
        .filter(|x| !x.is_empty())
        .collect()
}

/// Everything a prompt box shows and edits; its methods are what the box does.
#[derive(Clone, Copy)]
pub struct PromptState {
    app: AppState,
    pub shots: RwSignal<Shots>,
    pub template: RwSignal<Template>,
    pub examples: RwSignal<Vec<Example>>,
    /// Examples per class when sampling them from a CSV.
    pub sample_k: RwSignal<usize>,
    pub text: RwSignal<String>,
    pub generation: RwSignal<GenerationConfig>,
    /// Stop strings, one per line (`\n` stands for a newline).
    pub stop_text: RwSignal<String>,
    /// Send the prompt as a chat turn through the model's chat template, after this system
    /// message (none when empty).
    pub chat: RwSignal<bool>,
    pub system: RwSignal<String>,
    /// The prompt as the model read it, after its chat template.
    pub sent_prompt: RwSignal<Option<String>>,
    pub output: RwSignal<String>,
    /// The generated token ids, comma-separated.
    pub generated_ids: RwSignal<String>,
    pub stop_reason: RwSignal<String>,
    /// The label words, comma-separated.
    pub labels: RwSignal<String>,
    pub calibrate: RwSignal<bool>,
    pub scores: RwSignal<Option<Vec<LabelScore>>>,
    /// The metrics, with the rows they cover of the table's (fewer after a Stop) and how many
    /// of those were cut to fit the model.
    pub eval_metrics: RwSignal<Option<(Metrics, usize, usize, usize)>>,
    /// (rows scored, rows)
    pub eval_progress: RwSignal<(usize, usize)>,
    /// Generation, scoring and evaluation: one at a time (the Stop button cancels it).
    pub call: Call,
    /// Sampling examples; its errors show with the others.
    sampling: Call,
}

impl PromptState {
    pub fn new(app: AppState) -> Self {
        let call = Call::new();
        Self {
            app,
            shots: RwSignal::new(Shots::Zero),
            template: RwSignal::new(Template::default()),
            examples: RwSignal::new(vec![
                Example {
                    text: "The food was delicious and the staff were friendly.".into(),
                    label: "Positive".into(),
                },
                Example {
                    text: "The service was slow and the room was dirty.".into(),
                    label: "Negative".into(),
                },
            ]),
            sample_k: RwSignal::new(2),
            text: RwSignal::new("I love the food here. It's amazing!".into()),
            generation: RwSignal::new(GenerationConfig {
                max_new_tokens: 10,
                stop_at_newline: true,
                ..GenerationConfig::default()
            }),
            stop_text: RwSignal::new(String::new()),
            chat: RwSignal::new(false),
            system: RwSignal::new(String::new()),
            sent_prompt: RwSignal::new(None),
            output: RwSignal::new(String::new()),
            generated_ids: RwSignal::new(String::new()),
            stop_reason: RwSignal::new(String::new()),
            labels: RwSignal::new("Positive, Negative".into()),
            calibrate: RwSignal::new(false),
            scores: RwSignal::new(None),
            eval_metrics: RwSignal::new(None),
            eval_progress: RwSignal::new((0, 0)),
            call,
            sampling: Call::reporting_to(call.error()),
        }
    }

    /// The template as sent: empty when raw, with the examples when few-shot.
    fn template_sent(self) -> Template {
        match self.shots.get_untracked() {
            Shots::Raw => Template {
                instruction: String::new(),
                input_prefix: String::new(),
                cue: String::new(),
                examples: Vec::new(),
            },
            shots => {
                let mut t = self.template.get_untracked();
                if shots == Shots::Few {
                    t.examples = self.examples.get_untracked();
                }
                t
            }
        }
    }

    /// The prompt for `input`.
    fn prompt_for(self, input: &str) -> String {
        match self.shots.get_untracked() {
            Shots::Raw => input.to_string(),
            _ => self.template_sent().render(input),
        }
    }

    /// The prompt sent to the model for the input (tracked).
    pub fn preview(self) -> String {
        let _ = (
            self.template.track(),
            self.shots.track(),
            self.examples.track(),
        );
        self.prompt_for(&self.text.get())
    }

    fn scorer(self) -> ScorerSpec {
        let labels = split_list(&self.labels.get_untracked());
        ScorerSpec {
            template: self.template_sent(),
            labels: labels.clone(),
            verbalizers: labels,
            calibrate: self.calibrate.get_untracked(),
            chat: self.chat_spec(),
        }
    }

    /// The chat settings when prompts go as chat turns.
    fn chat_spec(self) -> Option<crate::prompt::chat::ChatSpec> {
        self.chat.get_untracked().then(|| {
            let system = self.system.get_untracked();
            crate::prompt::chat::ChatSpec {
                system: (!system.trim().is_empty()).then_some(system),
                kwargs: Default::default(),
            }
        })
    }

    /// Whether generation, scoring or evaluation can start (tracked).
    pub fn ready(self) -> bool {
        !self.call.busy() && self.app.language_model.with(Option::is_some)
    }

    pub fn generate(self) {
        self.output.set(String::new());
        self.stop_reason.set(String::new());
        self.generated_ids.set(String::new());
        let mut config = self.generation.get_untracked();
        config.stop = self
            .stop_text
            .get_untracked()
            .lines()
            .map(|s| s.replace("\\n", "\n"))
            .filter(|s| !s.is_empty())
            .collect();
        config.chat = self.chat_spec();
        self.sent_prompt.set(None);
        let sent_prompt = self.sent_prompt;
        let prompt = self.prompt_for(&self.text.get_untracked());
        let (output, ids, reason) = (self.output, self.generated_ids, self.stop_reason);
        self.call.send(
            Request::Generate { prompt, config },
            None,
            move |event, _| match event {
                Event::Token { text } => output.update(|o| o.push_str(&text)),
                Event::Generated { generation } => {
                    let list: Vec<String> = generation.ids.iter().map(u32::to_string).collect();
                    ids.set(list.join(","));
                    reason.set(format!(
                        "{} new tokens; stopped: {:?}",
                        generation.ids.len(),
                        generation.stop
                    ));
                    output.set(generation.text);
                    sent_prompt.set(generation.sent_prompt);
                }
                _ => {}
            },
        );
    }

    /// Stops the generation (or scoring, or evaluation) under way.
    pub fn stop(self) {
        self.call.cancel();
    }

    pub fn score(self) {
        let scores = self.scores;
        let request = Request::ScoreLabels {
            text: self.text.get_untracked(),
            scorer: self.scorer(),
        };
        self.call.send(request, None, move |event, _| {
            if let Event::Scored { scores: s } = event {
                scores.set(Some(s.ranked()));
            }
        });
    }

    /// Scores every row of a labelled CSV with the current prompt.
    pub fn evaluate(self, file: web_sys::File) {
        self.call.clear_error();
        self.eval_metrics.set(None);
        let (progress, metrics) = (self.eval_progress, self.eval_metrics);
        files::read_then(file, move |_, bytes| {
            let bytes = match bytes {
                Ok(b) => b,
                Err(e) => return self.call.fail(e),
            };
            let request = Request::EvaluatePrompt {
                scorer: self.scorer(),
                options: TableOptions::default(),
                text_column: None,
                label_column: None,
            };
            self.call
                .send(request, Some(bytes), move |event, _| match event {
                    Event::Progress { done, total } => progress.set((done, total)),
                    Event::PromptEvaluated {
                        metrics: m,
                        scored,
                        total,
                        truncated,
                        ..
                    } => metrics.set(Some((m, scored, total, truncated))),
                    _ => {}
                });
        });
    }

    /// Replaces the examples with `sample_k` per class drawn (with the generation seed) from a
    /// labelled CSV, and turns few-shot on.
    pub fn sample(self, file: web_sys::File) {
        let (examples, shots) = (self.examples, self.shots);
        files::read_then(file, move |name, bytes| {
            let bytes = match bytes {
                Ok(b) => b,
                Err(e) => return self.sampling.fail(e),
            };
            let request = Request::SampleExamples {
                per_class: self.sample_k.get_untracked().max(1),
                seed: self.generation.get_untracked().seed,
                options: TableOptions::default(),
            };
            self.sampling.send_with(
                request,
                Some(bytes),
                move |event, _| {
                    if let Event::Examples { examples: sampled } = event {
                        examples.set(sampled);
                        shots.set(Shots::Few);
                    }
                },
                move |message| *message = format!("{name}: {message}"),
            );
        });
    }
}
