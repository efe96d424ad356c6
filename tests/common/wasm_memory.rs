// The engine's WebAssembly memory in bytes (it only grows: its high-water mark), for the
// benchmarks in wasm (tests/wasm_bench.rs, tests/wasm_table_bench.rs), included with `include!`.

fn wasm_memory_bytes() -> f64 {
    use wasm_bindgen::JsCast;
    wasm_bindgen::memory()
        .unchecked_into::<js_sys::WebAssembly::Memory>()
        .buffer()
        .unchecked_into::<js_sys::ArrayBuffer>()
        .byte_length() as f64
}
