//! What a training run reports while it runs (events, its phase, how it ended) and the hooks
//! through which it reports, checks for a cancel, and lets the host run between steps.

use std::future::Future;
use std::pin::Pin;

use serde::{Deserialize, Serialize};

use super::args::Mode;
use crate::metrics::Metrics;

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub enum Phase {
    /// Head mode: running the frozen encoder once over the data.
    Extracting,
    Training,
    Evaluating,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub enum Outcome {
    Completed,
    /// Stopped by the user between steps; the weights are those of the last finished step.
    Cancelled,
    /// The loss became NaN or infinite; the weights are those before that step.
    Diverged(String),
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub enum TrainEvent {
    Started {
        mode: Mode,
        train_examples: usize,
        test_examples: usize,
        epochs: usize,
        total_steps: usize,
    },
    Progress {
        phase: Phase,
        done: usize,
        total: usize,
        elapsed_s: f64,
    },
    /// Mean training loss since the previous log, as the Trainer logs it.
    Log {
        step: usize,
        epoch: f64,
        loss: f64,
        learning_rate: f64,
        grad_norm: f64,
    },
    Evaluated {
        epoch: usize,
        step: usize,
        loss: f64,
        metrics: Metrics,
    },
    Finished {
        outcome: Outcome,
        steps: usize,
        elapsed_s: f64,
        /// Training examples processed per second (excluding evaluation and extraction).
        train_examples_per_s: f64,
    },
}

/// Where the loop reports to, and how it yields.
pub trait TrainHooks {
    fn event(&mut self, event: &TrainEvent);
    /// Checked between steps.
    fn cancelled(&self) -> bool {
        false
    }
    /// Lets the host run (a browser processes messages here). Natively: nothing.
    fn pause(&mut self) -> Pin<Box<dyn Future<Output = ()> + '_>> {
        Box::pin(async {})
    }
}
