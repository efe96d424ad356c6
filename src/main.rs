//! The web app's entry point: mounts the leptos app (wasm32 only).

#[cfg(target_arch = "wasm32")]
fn main() {
    console_error_panic_hook::set_once();
    leptos::mount::mount_to_body(tunelab::ui::App);
}

#[cfg(not(target_arch = "wasm32"))]
fn main() {
    eprintln!(
        "Tunelab is a web app: serve it with scripts/serve.sh and open http://127.0.0.1:8080"
    );
    std::process::exit(2);
}
