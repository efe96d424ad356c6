//! Classifies texts natively with a saved model (a folder or the .zip the app downloads) on
//! burn's CPU backend; prints every label with its score as JSON. The e2e test compares the
//! browser's numbers with these.
//!
//!     cargo run --example classify -- <model folder or .zip> "text" ["text" ...]

use burn::prelude::*;
use tunelab::hub::ModelFiles;
use tunelab::pipelines::TextClassifier;

fn main() {
    let mut args = std::env::args().skip(1);
    let path = args
        .next()
        .expect("usage: classify <model folder or .zip> <text>...");
    let texts: Vec<String> = args.collect();
    let files = if path.ends_with(".zip") {
        let bytes = std::fs::read(&path).expect("read the zip");
        ModelFiles::from_zip(&bytes).unwrap_or_else(|e| panic!("{e}"))
    } else {
        ModelFiles::from_dir(&path).expect("read the folder")
    };
    let clf = TextClassifier::load(&files, &Device::flex()).unwrap_or_else(|e| panic!("{e}"));
    let refs: Vec<&str> = texts.iter().map(String::as_str).collect();
    let results = pollster::block_on(clf.classify(&refs)).unwrap_or_else(|e| panic!("{e}"));
    println!("{}", serde_json::to_string(&results).expect("json"));
}
