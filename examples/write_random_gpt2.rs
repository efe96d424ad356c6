//! Writes a model folder of GPT-2 small's shape (random weights, tiny-gpt2's tokenizer) for the
//! in-browser benchmarks, which serve it as a model source:
//!
//!     cargo run --example write_random_gpt2 -- <folder>

include!("common/random_models.rs");

fn main() {
    let dir = std::path::PathBuf::from(std::env::args().nth(1).expect("usage: <folder>"));
    let fixtures = concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/tests/fixtures/models/tiny-gpt2"
    );
    let tokenizer = std::fs::read(format!("{fixtures}/tokenizer.json")).expect("tokenizer");
    let files = random_gpt2(768, tokenizer);
    std::fs::create_dir_all(&dir).expect("folder");
    for (name, bytes) in [
        ("config.json", &files.config),
        ("tokenizer.json", &files.tokenizer),
        ("model.safetensors", &files.weights),
    ] {
        std::fs::write(dir.join(name), bytes).expect("write");
    }
    println!("wrote {}", dir.display());
}
