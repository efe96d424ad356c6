//! Fine-tuning: arguments, the optimiser, the training loop and its metrics.

pub mod args;
pub mod metrics;
pub mod optim;
pub mod trainer;

pub use args::{Mode, TrainingArgs};
pub use metrics::{evaluate, Average, ClassMetrics, Metrics};
pub use trainer::{fine_tune, Collect, Outcome, Phase, TrainEvent, TrainHooks, TrainResult};
