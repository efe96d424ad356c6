//! The leptos front end (wasm only). It talks to the engine in a Web Worker through `client`.

pub mod app;
pub mod charts;
pub mod classify;
pub mod client;
pub mod components;
pub mod finetune;
pub mod models;
pub mod prompt;
pub mod state;
pub mod widget;

pub use app::App;
