//! The engine's Web Worker entry point without WebGPU (wasm32 only; Trunk builds it as a worker,
//! with the `engine` feature but not `webgpu`): what every page starts on, a third of the WebGPU
//! worker's download (which, where the browser offers WebGPU, loads beside it and takes over).

#[cfg(target_arch = "wasm32")]
fn main() {
    tunelab::worker::run();
}

#[cfg(not(target_arch = "wasm32"))]
fn main() {
    eprintln!("the Tunelab worker runs in the browser only");
    std::process::exit(2);
}
