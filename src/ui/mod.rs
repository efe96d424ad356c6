//! The leptos front end (wasm only). It talks to the engine in a Web Worker through `client`,
//! and imports engine types only from `crate::protocol`.

pub mod app;
pub mod charts;
pub mod classify;
pub mod client;
pub mod components;
pub mod files;
pub mod finetune;
pub mod models;
pub mod prompt;
pub mod request;
pub mod similarity;
pub mod state;
pub mod widget;

pub use app::App;
