//! A benchmark, not a test: reading a 100,000-row labelled CSV in wasm in headless Chromium, as
//! the engine does when a user drops one on the Fine-tune page: the table read from the file's
//! bytes, then the training and test sets built from it. Prints the time of each stage and the
//! wasm memory it took, against the file's size (wasm memory only grows, so its size after a
//! stage is the peak up to it).
//!
//!     scripts/bench.sh table
//!
//! (= cargo test --target wasm32-unknown-unknown --test wasm_table_bench -- --nocapture)
#![cfg(target_arch = "wasm32")]

use tunelab::data::{parse_table, stratified_split, TableOptions};
use wasm_bindgen_test::*;

wasm_bindgen_test_configure!(run_in_browser);

const ROWS: usize = 100_000;

include!("common/wasm_memory.rs");

/// A review-like CSV: a quoted text of 20–60 words (some with commas and doubled quotes), a
/// label of three classes; written to `sink` piece by piece.
fn write_csv(rows: usize, sink: &mut dyn FnMut(&str)) {
    const WORDS: [&str; 16] = [
        "the",
        "film",
        "was",
        "a",
        "quite",
        "moving",
        "story",
        "but",
        "its",
        "ending",
        "felt",
        "rushed,",
        "and",
        "\"\"great\"\"",
        "acting",
        "overall",
    ];
    sink("text,label\n");
    let mut seed: u64 = 0x2545_F491_4F6C_DD1D;
    for i in 0..rows {
        sink("\"");
        seed ^= seed << 13;
        seed ^= seed >> 7;
        seed ^= seed << 17;
        let n = 20 + (seed % 41) as usize;
        for w in 0..n {
            if w > 0 {
                sink(" ");
            }
            sink(WORDS[((seed >> (w % 48)) as usize + w) % WORDS.len()]);
        }
        sink("\",");
        sink(["positive", "negative", "neutral"][i % 3]);
        sink("\n");
    }
}

/// The CSV's bytes in one allocation of their exact size (no slack left for later stages).
fn csv(rows: usize) -> Vec<u8> {
    let mut len = 0;
    write_csv(rows, &mut |s| len += s.len());
    let mut out = Vec::with_capacity(len);
    write_csv(rows, &mut |s| out.extend_from_slice(s.as_bytes()));
    out
}

#[wasm_bindgen_test]
fn a_100000_row_csv_in_wasm() {
    let mb = |b: f64| b / 1e6;
    let bytes = csv(ROWS);
    let file = bytes.len() as f64;
    let base = wasm_memory_bytes();
    let t0 = js_sys::Date::now();
    let table = parse_table(&bytes, &TableOptions::default()).unwrap();
    let t_parse = js_sys::Date::now() - t0;
    let after_parse = wasm_memory_bytes();
    drop(bytes);
    let t1 = js_sys::Date::now();
    let (data, report) = table.to_dataset(0, 1).unwrap();
    let split = stratified_split(&data.labels, data.num_classes(), 0.2, 42).unwrap();
    let (train, test) = (data.subset(&split.train), data.subset(&split.test));
    let t_dataset = js_sys::Date::now() - t1;
    let after_dataset = wasm_memory_bytes();
    assert_eq!(report.rows_used, ROWS);
    assert_eq!(train.len() + test.len(), ROWS);
    let ua = js_sys::Reflect::get(&js_sys::global(), &"navigator".into())
        .and_then(|n| js_sys::Reflect::get(&n, &"userAgent".into()))
        .ok()
        .and_then(|u| u.as_string())
        .unwrap_or_default();
    console_log!("table bench: {ua}");
    console_log!(
        "table bench: {ROWS} rows, file {:.1} MB; wasm memory with the file's bytes held {:.1} MB",
        mb(file),
        mb(base)
    );
    console_log!(
        "table bench: read the table {:.0} ms, wasm memory +{:.1} MB ({:.2}x the file)",
        t_parse,
        mb(after_parse - base),
        (after_parse - base) / file
    );
    console_log!(
        "table bench: training and test sets {:.0} ms, wasm memory +{:.1} MB more ({:.2}x the file); \
         peak {:.1} MB = {:.2}x the file beside the bytes",
        t_dataset,
        mb(after_dataset - after_parse),
        (after_dataset - after_parse) / file,
        mb(after_dataset - base),
        (after_dataset - base) / file
    );
}
