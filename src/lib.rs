//! Tunelab's engine: pre-trained NLP models from Hugging Face files, run with burn on WebGPU or
//! the CPU, natively and in the browser. The web app (`ui`, wasm only) sits on top, and talks to
//! the engine in a Web Worker (`worker`) through `protocol`. ARCHITECTURE.md draws the layers.

// Without the `engine` feature (the page's own build) only what the UI and the protocol need:
// the plain types the engine and the page exchange, and no burn.
pub mod clock;
#[cfg(feature = "engine")]
pub mod counts;
pub mod data;
pub mod device;
pub mod error;
pub mod hub;
pub mod math;
pub mod metrics;
pub mod model;
pub mod pipelines;
pub mod pool;
pub mod prompt;
pub mod protocol;
pub mod rng;
pub mod text;
pub mod train;

pub use error::Error;

#[cfg(target_arch = "wasm32")]
pub mod js;
#[cfg(target_arch = "wasm32")]
pub mod probe;
#[cfg(target_arch = "wasm32")]
pub mod ui;
#[cfg(all(target_arch = "wasm32", feature = "engine"))]
pub mod worker;
