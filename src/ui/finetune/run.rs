//! A training run as its events tell it: phase, progress, losses, evaluations and how it ended.

use crate::protocol::{ImportReport, Metrics, Mode, Outcome, Phase, TrainEvent};

/// A training run, as its events tell it.
#[derive(Clone, Debug, PartialEq)]
pub struct Run {
    pub started_ms: f64,
    pub phase: Option<Phase>,
    pub done: usize,
    pub total: usize,
    pub elapsed_s: f64,
    /// (step, training loss)
    pub losses: Vec<(f64, f64)>,
    /// (epoch, test loss, test metrics)
    pub evals: Vec<(usize, f64, Metrics)>,
    pub outcome: Option<Outcome>,
    /// Optimisation steps done when training ended.
    pub steps: usize,
    /// What was imported: the report, train and test sizes.
    pub report: Option<(ImportReport, usize, usize)>,
    /// The engine reported an error (shown above the run).
    pub failed: bool,
    /// The engine stopped after the run, and its model with it.
    pub lost: bool,
    /// What the run trains (known once it starts).
    pub mode: Option<Mode>,
    /// The step of the last checkpoint kept in browser storage.
    pub saved_step: Option<usize>,
    /// Not sent yet: it waits for the WebGPU engine, which is loading, to run on it.
    pub waiting: bool,
}

impl Run {
    pub fn new(started_ms: f64) -> Self {
        Self {
            started_ms,
            phase: None,
            done: 0,
            total: 0,
            elapsed_s: 0.0,
            losses: Vec::new(),
            evals: Vec::new(),
            outcome: None,
            steps: 0,
            report: None,
            failed: false,
            lost: false,
            mode: None,
            saved_step: None,
            waiting: false,
        }
    }

    /// Takes in a training event.
    pub fn apply(&mut self, event: TrainEvent) {
        match event {
            TrainEvent::Progress {
                phase,
                done,
                total,
                elapsed_s,
            } => {
                self.phase = Some(phase);
                self.done = done;
                self.total = total;
                self.elapsed_s = elapsed_s;
            }
            TrainEvent::Log { step, loss, .. } => self.losses.push((step as f64, loss)),
            TrainEvent::Evaluated {
                epoch,
                loss,
                metrics,
                ..
            } => self.evals.push((epoch, loss, metrics)),
            TrainEvent::Finished {
                outcome,
                steps,
                elapsed_s,
                ..
            } => {
                self.outcome = Some(outcome);
                self.steps = steps;
                self.elapsed_s = elapsed_s;
            }
            TrainEvent::Started { mode, .. } => self.mode = Some(mode),
            TrainEvent::Saved { step, .. } => self.saved_step = Some(step),
            TrainEvent::MaskedLm { .. } => {}
        }
    }

    /// The engine stopped the run with an error.
    pub fn fail(&mut self) {
        self.failed = true;
        self.outcome.get_or_insert(Outcome::Cancelled);
    }

    /// The engine that held the trained model stopped (a run under way fails by its error).
    pub fn lose_model(&mut self) {
        if self.has_model() {
            self.lost = true;
        }
    }

    pub fn running(&self) -> bool {
        self.outcome.is_none()
    }

    /// A model exists once training ended (completed or cancelled) after at least one step.
    pub fn has_model(&self) -> bool {
        !self.lost
            && matches!(
                self.outcome,
                Some(Outcome::Completed) | Some(Outcome::Cancelled)
            )
            && self.steps > 0
    }

    /// How far the current phase is, in percent.
    pub fn percent(&self) -> f64 {
        if self.outcome == Some(Outcome::Completed) {
            100.0
        } else if self.total > 0 {
            self.done as f64 * 100.0 / self.total as f64
        } else {
            0.0
        }
    }

    /// The progress line: the phase and its count (with the time left), or how it ended.
    pub fn status(&self) -> String {
        let phase = match self.phase {
            Some(Phase::Extracting) => "Extracting features",
            Some(Phase::Evaluating) => "Evaluating",
            Some(Phase::Training) => "Training",
            None => "Preparing",
        };
        match &self.outcome {
            None if self.waiting => {
                "Waiting for the WebGPU engine to load: the run starts on it".to_string()
            }
            None => {
                let left = if self.done > 0
                    && self.total > self.done
                    && self.phase == Some(Phase::Training)
                {
                    let per = (js_sys::Date::now() - self.started_ms) / 1000.0 / self.done as f64;
                    format!(
                        ", about {:.0} s left",
                        per * (self.total - self.done) as f64
                    )
                } else {
                    String::new()
                };
                format!("{phase}: {} / {}{left}", self.done, self.total)
            }
            Some(_) if self.lost => {
                "The engine stopped after this run, so its model is gone from the engine (one put \
                 on the Classify page stays in browser storage): train again to export it"
                    .to_string()
            }
            Some(Outcome::Completed) => format!("Finished in {:.0} s", self.elapsed_s),
            Some(_) if self.failed => "Stopped by the error above".to_string(),
            Some(Outcome::Cancelled) => {
                "Stopped; the model keeps the weights of the last finished step".to_string()
            }
            Some(Outcome::Diverged(m)) => m.clone(),
        }
    }
}
