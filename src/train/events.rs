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
    /// The loss became NaN or infinite; the weights are those of the last check before it.
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
        #[serde(with = "crate::math::any_f64")]
        loss: f64,
        learning_rate: f64,
        #[serde(with = "crate::math::any_f64")]
        grad_norm: f64,
    },
    Evaluated {
        epoch: usize,
        step: usize,
        #[serde(with = "crate::math::any_f64")]
        loss: f64,
        metrics: Metrics,
    },
    /// Masked-LM training's held-out masked loss and perplexity after epoch `epoch` (0: before
    /// training).
    MaskedLm {
        epoch: usize,
        loss: f64,
        perplexity: f64,
    },
    /// A checkpoint was kept: the run can resume from `step` (epoch `epoch` under way).
    Saved { step: usize, epoch: usize },
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
    /// Whether the host keeps checkpoints: the loop then reads the weights back to make them.
    fn keeps_checkpoints(&self) -> bool {
        false
    }
    /// Keeps a checkpoint (made after each epoch, and every `save_steps` steps in full and LoRA
    /// modes, when [`TrainHooks::keeps_checkpoints`]).
    /// Returns whether it was kept.
    fn checkpoint(
        &mut self,
        _checkpoint: super::checkpoint::Checkpoint,
    ) -> Pin<Box<dyn Future<Output = bool> + '_>> {
        Box::pin(async { false })
    }
    /// Other engines to spread head mode's feature extraction and the evaluations over (the
    /// browser's helper workers on the CPU). None by default.
    #[cfg(feature = "engine")]
    fn sharing(&self) -> Option<std::rc::Rc<crate::pool::Sharing>> {
        None
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn non_finite_losses_and_norms_cross_the_json_boundary() {
        // serde_json writes NaN and infinity as null, which the page could not read back: a
        // diverging run showed an engine error instead of its events.
        let log = TrainEvent::Log {
            step: 3,
            epoch: 0.5,
            loss: f64::NAN,
            learning_rate: 1e30,
            grad_norm: f64::INFINITY,
        };
        let back: TrainEvent = serde_json::from_str(&serde_json::to_string(&log).unwrap()).unwrap();
        match back {
            TrainEvent::Log {
                loss, grad_norm, ..
            } => assert!(loss.is_nan() && grad_norm == f64::INFINITY),
            other => panic!("{other:?}"),
        }
        let evaluated = TrainEvent::Evaluated {
            epoch: 1,
            step: 3,
            loss: f64::NEG_INFINITY,
            metrics: crate::metrics::evaluate(
                &[0],
                &[0],
                &["a".to_string()],
                crate::metrics::Average::Macro,
            ),
        };
        let back: TrainEvent =
            serde_json::from_str(&serde_json::to_string(&evaluated).unwrap()).unwrap();
        assert!(matches!(back, TrainEvent::Evaluated { loss, .. } if loss == f64::NEG_INFINITY));
        // Finite numbers stay numbers.
        let json = serde_json::to_string(&TrainEvent::Log {
            step: 1,
            epoch: 1.0,
            loss: 0.25,
            learning_rate: 5e-5,
            grad_norm: 2.0,
        })
        .unwrap();
        assert!(
            json.contains("\"loss\":0.25") && json.contains("\"grad_norm\":2.0"),
            "{json}"
        );
    }
}
