//! The leptos front end (wasm only).

pub mod app;
pub mod backend;

pub use app::App;
