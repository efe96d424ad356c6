//! The engine's Web Worker entry point (wasm32 only; Trunk builds it as a worker).

#[cfg(target_arch = "wasm32")]
fn main() {
    tunelab::worker::run();
}

#[cfg(not(target_arch = "wasm32"))]
fn main() {
    eprintln!("the Tunelab worker runs in the browser only");
    std::process::exit(2);
}
