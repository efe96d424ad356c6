//! all-MiniLM-L6-v2 sentence embeddings per second on burn's CPU backend (native):
//! batch 1 of 128 tokens, and batch 32 of 32 tokens.
//!
//!     cargo run --example bench_encoder   (scripts/bench.sh runs every benchmark)

use burn::prelude::*;
use tunelab::data::{import_dataset, TableOptions};
use tunelab::hub::ModelFiles;
use tunelab::pipelines::Embedder;

include!("common/bench.rs");

/// Flex, or ndarray with `--features ndarray` and `TUNELAB_CPU=ndarray`.
fn cpu_device() -> (Device, &'static str) {
    #[cfg(feature = "ndarray")]
    if std::env::var("TUNELAB_CPU").as_deref() == Ok("ndarray") {
        #[allow(deprecated)]
        return (Device::ndarray(), "NdArray");
    }
    (Device::flex(), "Flex")
}

fn main() {
    let dir = models_dir().join("all-MiniLM-L6-v2");
    let files = ModelFiles::from_dir(&dir).unwrap_or_else(|e| {
        panic!(
            "{}: {e} (run scripts/setup-test.sh to fetch it)",
            dir.display()
        )
    });
    let (device, backend) = cpu_device();
    let mut embedder = Embedder::load(&files, &device).expect("load");
    let csv = std::fs::read(concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/tests/data/movie_reviews.csv"
    ))
    .unwrap();
    let (data, _) = import_dataset(&csv, &TableOptions::default(), None, None).unwrap();

    // 128 tokens: several reviews joined, truncated at 128.
    let long: String = data.texts[..20].join(" ");
    embedder.max_length = 128;
    let n = embedder
        .tokenizer
        .encode_batch(&[&long], 128)
        .unwrap()
        .seq_len;
    assert_eq!(n, 128);
    let one = median_secs(2, 15, || {
        pollster::block_on(embedder.embed(&[&long])).unwrap();
    });
    let tokenize = median_secs(2, 15, || {
        embedder.tokenizer.encode_batch(&[&long], 128).unwrap();
    });

    // 32 texts of exactly 32 tokens.
    embedder.max_length = 32;
    let texts: Vec<&str> = data
        .texts
        .iter()
        .filter(|t| embedder.tokenizer.encode(t, true).unwrap().len() >= 32)
        .take(32)
        .map(|t| &**t)
        .collect();
    let batch = embedder.tokenizer.encode_batch(&texts, 32).unwrap();
    assert_eq!((batch.batch, batch.seq_len), (32, 32));
    let many = median_secs(2, 10, || {
        pollster::block_on(embedder.embed(&texts)).unwrap();
    });

    println!("machine: {}", machine());
    println!("backend: burn {backend} (CPU), native, f32");
    println!("all-MiniLM-L6-v2 batch 1 x 128 tokens: {:.1} sentences/s ({:.1} ms per batch, median of 15; tokenizing the {}-character text takes {:.1} ms of it)", 1.0 / one, one * 1e3, long.len(), tokenize * 1e3);
    println!("all-MiniLM-L6-v2 batch 32 x 32 tokens: {:.1} sentences/s ({:.1} ms per batch, median of 10)", 32.0 / many, many * 1e3);
}
