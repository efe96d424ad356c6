//! Models from Hugging Face files: config, weights, and the burn modules.

// Without the engine (the page's build) only the config and the error types.
#[cfg(feature = "engine")]
#[macro_use]
mod simd;

#[cfg(feature = "engine")]
pub mod bert;
pub mod config;
#[cfg(feature = "engine")]
pub mod flex;
#[cfg(feature = "engine")]
pub mod gpt2;
#[cfg(feature = "engine")]
pub mod kernels;
#[cfg(feature = "engine")]
pub mod layers;
#[cfg(feature = "engine")]
pub mod llama;
#[cfg(feature = "engine")]
pub mod lora;
#[cfg(feature = "engine")]
pub mod matmul;
pub mod memory;
#[cfg(feature = "engine")]
pub mod weights;

#[cfg(feature = "engine")]
use burn::prelude::*;

pub use config::{
    Activation, Arch, EncoderConfig, Family, Gpt2Config, LlamaConfig, ModelConfig, RopeScaling,
    Task,
};

#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum ModelError {
    #[error("config.json: {0}")]
    Config(String),
    #[error("{0}")]
    Unsupported(String),
    #[error("{0}")]
    Weights(String),
    #[error("the weights do not match config.json: {0}")]
    Mismatch(String),
    #[error("reading a result from the device failed: {0}")]
    Device(String),
}

#[cfg(feature = "engine")]
/// Reads a tensor back to the host as f32 (async: on WebGPU a synchronous read is not possible).
/// Every read waits for the device: `crate::counts` counts them.
pub async fn read_f32<const D: usize>(t: Tensor<D>) -> Result<Vec<f32>, ModelError> {
    crate::counts::note_read();
    t.into_data_async()
        .await
        .map_err(|e| ModelError::Device(format!("{e:?}")))?
        .try_into_vec_as::<f32>()
        .map_err(|e| ModelError::Device(format!("{e:?}")))
}

#[cfg(feature = "engine")]
/// Reads an int tensor back to the host.
pub async fn read_i64<const D: usize>(t: Tensor<D, Int>) -> Result<Vec<i64>, ModelError> {
    crate::counts::note_read();
    t.into_data_async()
        .await
        .map_err(|e| ModelError::Device(format!("{e:?}")))?
        .try_into_vec_as::<i64>()
        .map_err(|e| ModelError::Device(format!("{e:?}")))
}
