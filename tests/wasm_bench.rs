//! A benchmark, not a test: burn's CPU backends in wasm, in headless Chromium, on a model of
//! all-MiniLM-L6-v2's shape (6 layers, 384 wide, 12 heads, BERT's uncased vocabulary; random
//! weights: speed does not depend on their values) with BERT's real tokenizer. Prints sentences
//! per second at batch 1 × 128 tokens and batch 32 × 32 tokens, for Flex and, when built with
//! `--features ndarray`, for ndarray, alternating the two so that load on the machine hits both.
//!
//!     scripts/bench.sh wasm
//!
//! (= cargo test --target wasm32-unknown-unknown --features ndarray --test wasm_bench -- --nocapture)
#![cfg(target_arch = "wasm32")]

use burn::prelude::*;
use tunelab::data::{import_dataset, TableOptions};
use tunelab::hub::ModelFiles;
use tunelab::pipelines::Embedder;
use wasm_bindgen_test::*;

wasm_bindgen_test_configure!(run_in_browser);

include!("../examples/common/random_models.rs");
include!("../examples/common/matmul_shapes.rs");
include!("../examples/common/decode_bench.rs");

/// Prints the browser's user agent (the machine of the numbers that follow).
fn log_browser() {
    let ua = js_sys::Reflect::get(&js_sys::global(), &"navigator".into())
        .and_then(|n| js_sys::Reflect::get(&n, &"userAgent".into()))
        .ok()
        .and_then(|u| u.as_string())
        .unwrap_or_default();
    web_sys::console::log_1(&format!("browser: {ua}").into());
}

include!("common/wasm_memory.rs");

/// Decoders on the CPU in wasm (one thread): Qwen2.5-0.5B's shape first (its bfloat16 file made
/// in this memory, then loaded beside it, as a download would be: the memory's high-water mark
/// against the engine's estimate, `memory::Footprint`), then SmolLM2-135M's and GPT-2 small's;
/// for each the time to the first token after 64 tokens and greedy decoding's tokens/s.
/// `scripts/bench.sh decoders` prints it beside the native run.
#[wasm_bindgen_test]
async fn decoders_in_wasm() {
    use tunelab::model::memory::Footprint;
    use tunelab::prompt::LanguageModel;
    log_browser();
    let fixtures_gpt2 = include_bytes!("fixtures/models/tiny-gpt2/tokenizer.json").to_vec();
    let fixtures_llama = include_bytes!("fixtures/models/tiny-llama/tokenizer.json").to_vec();
    web_sys::console::log_1(
        &"decoders: burn Flex (CPU) with Tunelab's kernels, wasm32, one thread, f32; random weights"
            .into(),
    );
    let device = Device::flex();
    let before = wasm_memory_bytes();
    for (name, shape) in [
        (QWEN25_05B.name, Some(&QWEN25_05B)),
        (SMOLLM2_135M.name, Some(&SMOLLM2_135M)),
        ("GPT-2 small (f32 file)", None),
    ] {
        let files = match shape {
            Some(s) => random_llama(s, fixtures_llama.clone()),
            None => random_gpt2(768, fixtures_gpt2.clone()),
        };
        let t0 = js_sys::Date::now();
        let lm = LanguageModel::load(&files, &device, u64::MAX).unwrap();
        let load_s = (js_sys::Date::now() - t0) / 1e3;
        let estimate =
            Footprint::for_decoder(&files.config().unwrap(), Some(files.weights_bytes()), false)
                .unwrap()
                .engine_peak();
        let file = files.weights_bytes();
        drop(files);
        let (ttft, rate) = decode_speed(&lm, 16, 2).await;
        web_sys::console::log_1(
            &format!(
                "wasm {name}: {:.1} M parameters ({:.2} GB file), load {load_s:.1} s; prefill 64 tokens -> first token {ttft:.0} ms; decode {rate:.1} tokens/s over 16 (medians of 2); wasm memory {:.2} GB (from {:.2} GB; the engine's estimate of this model's peak: {:.2} GB)",
                lm.model.num_params() as f64 / 1e6,
                file as f64 / 1e9,
                wasm_memory_bytes() / 1e9,
                before / 1e9,
                estimate as f64 / 1e9,
            )
            .into(),
        );
    }
}

/// GPT-2 small's shape alone, as `benches/transformersjs_gpt2.mjs` times transformers.js: the
/// first token after the same 64-token prompt, then greedy decoding's tokens/s over 32 more,
/// medians of 3 runs after a warm-up (`scripts/bench.sh peer-gpt2` prints the two in turn).
#[wasm_bindgen_test]
async fn gpt2_in_wasm() {
    log_browser();
    let lm = gpt2_small();
    let (ttft, rate) = decode_speed(&lm, 32, 3).await;
    web_sys::console::log_1(
        &format!(
            "Tunelab GPT-2 small (Flex with its kernels, wasm32, one thread, f32): prefill 64 tokens -> first token {ttft:.0} ms; decode {rate:.1} tokens/s over 32 (medians of 3)"
        )
        .into(),
    );
}

fn random_minilm() -> ModelFiles {
    random_bert(
        &MINILM,
        include_bytes!("fixtures/models/tiny-bert/tokenizer.json").to_vec(),
    )
}

/// Median milliseconds of `runs` calls after `warmup` calls.
async fn median_ms(embedder: &Embedder, texts: &[&str], warmup: usize, runs: usize) -> f64 {
    for _ in 0..warmup {
        embedder.embed(texts).await.unwrap();
    }
    let mut times = Vec::with_capacity(runs);
    for _ in 0..runs {
        let t0 = js_sys::Date::now();
        embedder.embed(texts).await.unwrap();
        times.push(js_sys::Date::now() - t0);
    }
    times.sort_by(|a, b| a.total_cmp(b));
    times[runs / 2]
}

/// The backends, each with whether the engine's own CPU kernels are on (`tunelab::model::flex`;
/// off, burn's composition of the same ops runs).
fn devices() -> Vec<(&'static str, Device, bool)> {
    #[allow(unused_mut)]
    let mut d = vec![
        ("Flex + Tunelab kernels", Device::flex(), true),
        ("Flex, burn's ops only", Device::flex(), false),
    ];
    #[cfg(feature = "ndarray")]
    #[allow(deprecated)]
    d.push(("NdArray", Device::ndarray(), false));
    d
}

#[wasm_bindgen_test]
async fn cpu_backends_in_wasm() {
    let files = random_minilm();
    let csv = include_bytes!("data/movie_reviews.csv");
    let (data, _) = import_dataset(csv, &TableOptions::default(), None, None).unwrap();
    let long: String = data.texts[..20].join(" ");
    let reviews: Vec<&str> = data
        .texts
        .iter()
        .map(|t| t.trim())
        .filter(|t| !t.is_empty())
        .take(1000)
        .collect();
    log_browser();
    web_sys::console::log_1(
        &"model: all-MiniLM-L6-v2's shape, random weights, f32; wasm32, one thread".into(),
    );

    let mut embedders: Vec<(&str, Embedder, bool)> = devices()
        .into_iter()
        .map(|(name, device, kernels)| {
            // Loading lays weights out for the kernels too: off, as burn alone would.
            tunelab::model::flex::set_enabled(kernels);
            (name, Embedder::load(&files, &device).unwrap(), kernels)
        })
        .collect();
    let short: Vec<&str> = {
        let e = &embedders[0].1;
        data.texts
            .iter()
            .filter(|t| e.tokenizer.encode(t, true).unwrap().len() >= 32)
            .take(32)
            .map(|t| &**t)
            .collect()
    };
    // Two rounds, alternating backends; each prints its medians.
    for round in 1..=2 {
        for (name, e, kernels) in embedders.iter_mut() {
            tunelab::model::flex::set_enabled(*kernels);
            e.max_length = 128;
            assert_eq!(
                e.tokenizer.encode_batch(&[&long], 128).unwrap().seq_len,
                128
            );
            let one = median_ms(e, &[&long], 1, 7).await;
            e.max_length = 32;
            let batch = e.tokenizer.encode_batch(&short, 32).unwrap();
            assert_eq!((batch.batch, batch.seq_len), (32, 32));
            let many = median_ms(e, &short, 1, 5).await;
            // Feature extraction (with the kernels only: burn's ops alone would double the
            // run): the first 1,000 reviews in batches of 32, longest (in characters) first, at
            // most 128 tokens, as transformers.js does in `benches/transformersjs.mjs`.
            let extraction = if *kernels {
                e.max_length = 128;
                let mut sorted: Vec<&str> = reviews.clone();
                sorted.sort_by_key(|t| std::cmp::Reverse(t.chars().count()));
                let t0 = js_sys::Date::now();
                for batch in sorted.chunks(32) {
                    e.embed(batch).await.unwrap();
                }
                let secs = (js_sys::Date::now() - t0) / 1e3;
                format!(
                    "; {} reviews in batches of 32 (<= 128 tokens): {:.1} texts/s ({secs:.1} s)",
                    reviews.len(),
                    reviews.len() as f64 / secs
                )
            } else {
                String::new()
            };
            web_sys::console::log_1(
                &format!(
                    "round {round} {name}: batch 1 x 128: {:.1} sentences/s ({one:.0} ms); batch 32 x 32: {:.1} sentences/s ({many:.0} ms){extraction}",
                    1e3 / one,
                    32e3 / many
                )
                .into(),
            );
        }
    }
    tunelab::model::flex::set_enabled(true);
}

/// The encoder's matrix products in wasm: burn's Flex matmul (the gemm crate's `simd128`
/// kernels) against the engine's packed product (`tunelab::model::matmul`), GFLOP/s each.
#[wasm_bindgen_test]
async fn matmuls_in_wasm() {
    use tunelab::model::matmul::{matmul_packed, pack_b};
    let device = Device::flex();
    for (m, k, n) in MATMUL_SHAPES {
        let a = matmul_values(m * k, 1);
        let w = matmul_values(n * k, 2);
        let at = Tensor::<2>::from_data(TensorData::new(a.clone(), [m, k]), &device);
        let wt = Tensor::<2>::from_data(TensorData::new(w.clone(), [n, k]), &device).transpose();
        let flops = 2.0 * (m * k * n) as f64;
        let mut c = vec![0.0f32; m * n];
        let median = |f: &mut dyn FnMut()| {
            f();
            let mut t: Vec<f64> = (0..5)
                .map(|_| {
                    let t0 = js_sys::Date::now();
                    f();
                    js_sys::Date::now() - t0
                })
                .collect();
            t.sort_by(|a, b| a.total_cmp(b));
            t[2]
        };
        for round in 1..=2 {
            let burn = median(&mut || {
                let _ = at.clone().matmul(wt.clone()).into_data();
            });
            let own = median(&mut || {
                let packed = pack_b(&w, 0, 1, k, k, n);
                matmul_packed(&a, &packed, &mut c, m, k, n);
            });
            web_sys::console::log_1(
                &format!(
                    "round {round} matmul [{m}, {k}] x [{k}, {n}]: burn (gemm) {:.1} GFLOP/s ({burn:.0} ms), packed {:.1} GFLOP/s ({own:.0} ms)",
                    flops / burn / 1e6,
                    flops / own / 1e6
                )
                .into(),
            );
        }
    }
}

/// Parts of the CPU path in wasm that the README's figures name: attention per layer of
/// all-MiniLM-L6-v2's shape at batch 1 × 128 and 32 × 32 (the heads read in place from the fused
/// query/key/value buffer), and what decoding is bound by: the memory bandwidth a plain loop
/// reads (the sum of a 384 MiB buffer), and the product of one row by cold weights (40 of
/// GPT-2 small's `[768, 3072]`, then its LM head's `[768, 50257]` transposed view by burn's
/// matmul and by the engine's dot product per vocabulary row), in GB/s of weights read.
/// `scripts/bench.sh wasm-parts`.
#[wasm_bindgen_test]
async fn cpu_parts_in_wasm() {
    use tunelab::model::flex;
    log_browser();
    let device = Device::flex();
    let ms_each = |runs: usize, f: &mut dyn FnMut()| {
        f();
        let t0 = js_sys::Date::now();
        for _ in 0..runs {
            f();
        }
        (js_sys::Date::now() - t0) / runs as f64
    };
    for (b, t) in [(1, 128), (32, 32)] {
        let qkv = Tensor::<3>::random([b, t, 1152], burn::tensor::Distribution::Default, &device);
        let bias = Tensor::<4>::zeros([b, 1, 1, t], &device);
        let (q, k, v) = flex::split_qkv(&qkv, 12).unwrap();
        let ms = ms_each(50, &mut || {
            flex::attention(&q, &k, &v, 0.17, &bias).unwrap();
        });
        web_sys::console::log_1(
            &format!("attention, one layer, batch {b} x {t} (12 heads of 32): {ms:.2} ms").into(),
        );
    }
    let buffer: Vec<f32> = (0..(96usize << 20)).map(|i| (i % 7) as f32).collect();
    let mut total = 0.0f32;
    let ms = ms_each(5, &mut || {
        let mut acc = [0.0f32; 16];
        for c in buffer.chunks_exact(16) {
            for l in 0..16 {
                acc[l] += c[l];
            }
        }
        total += acc.iter().sum::<f32>();
    });
    drop(buffer);
    web_sys::console::log_1(
        &format!(
            "memory read by a summing loop: {:.1} GB/s (sum {total})",
            (96usize << 22) as f64 / ms / 1e6
        )
        .into(),
    );
    microkernel_peak(&ms_each);
    let x = Tensor::<2>::from_data(TensorData::new(matmul_values(768, 9), [1, 768]), &device);
    let weights: Vec<Tensor<2>> = (0..40)
        .map(|s| {
            Tensor::from_data(
                TensorData::new(matmul_values(768 * 3072, s), [768, 3072]),
                &device,
            )
        })
        .collect();
    let ms = ms_each(3, &mut || {
        for w in &weights {
            x.clone().matmul(w.clone()).into_data();
        }
    });
    drop(weights);
    web_sys::console::log_1(
        &format!(
            "one row times 40 cold [768, 3072] weights (burn's matmul): {:.1} GB/s",
            (40 * 768 * 3072 * 4) as f64 / ms / 1e6
        )
        .into(),
    );
    let head = Tensor::<2>::from_data(
        TensorData::new(matmul_values(50257 * 768, 3), [50257, 768]),
        &device,
    );
    let other = matmul_values(50257 * 768, 4);
    let mut evict = 0.0f32;
    let ms = ms_each(3, &mut || {
        // The head leaves the caches first, as a decoding step's other weights push it out.
        evict += other.iter().step_by(16).sum::<f32>();
        x.clone().matmul(head.clone().transpose()).into_data();
    }) - ms_each(3, &mut || evict += other.iter().step_by(16).sum::<f32>());
    web_sys::console::log_1(
        &format!(
            "one row times the LM head's [768, 50257] transposed view (burn's matmul): {:.1} GB/s ({evict})",
            (50257 * 768 * 4) as f64 / ms / 1e6
        )
        .into(),
    );
    let head_values = matmul_values(50257 * 768, 3);
    let x_values = matmul_values(768, 9);
    let mut logits = vec![0.0f32; 50257];
    let ms = ms_each(3, &mut || {
        evict += other.iter().step_by(16).sum::<f32>();
        flex::times_rows_transposed(&x_values, 1, &head_values, 50257, &mut logits);
    }) - ms_each(3, &mut || evict += other.iter().step_by(16).sum::<f32>());
    let burns = x.clone().matmul(head.clone().transpose()).into_data();
    let most = burns
        .as_slice::<f32>()
        .unwrap()
        .iter()
        .zip(&logits)
        .map(|(a, b)| (a - b).abs())
        .fold(0.0f32, f32::max);
    web_sys::console::log_1(
        &format!(
            "one row times the LM head [50257, 768], a dot product per row (flex::times_rows_transposed): {:.1} GB/s ({evict}; {most:.1e} from burn's)",
            (50257 * 768 * 4) as f64 / ms / 1e6
        )
        .into(),
    );
}

/// Records the loop's training speed.
#[derive(Default)]
struct Speed {
    examples_per_s: f64,
}

impl tunelab::train::TrainHooks for Speed {
    fn event(&mut self, e: &tunelab::train::TrainEvent) {
        if let tunelab::train::TrainEvent::Finished {
            train_examples_per_s,
            ..
        } = e
        {
            self.examples_per_s = *train_examples_per_s;
        }
    }
}

/// The packed product's register tile at its peak (a depth block of its operands in the L1
/// cache, as the product reads them): the engine's tile (`model::matmul::tile`, portable Rust
/// that LLVM turns into `simd128` multiplies and adds), and the same tile with relaxed SIMD's
/// fused multiply-add (`f32x4.relaxed_madd`, which V8 runs as an FMA where the CPU has one), to
/// tell what fusing would give before building a second engine for browsers with relaxed SIMD.
fn microkernel_peak(ms_each: &dyn Fn(usize, &mut dyn FnMut()) -> f64) {
    use tunelab::model::matmul::{tile, KC, MR, NR};
    let a = matmul_values(MR * KC, 5);
    let b = matmul_values(NR * KC, 6);
    let mut acc = [[0.0f32; NR]; MR];
    let calls = 20_000;
    let flops = (2 * MR * NR * KC * calls) as f64;
    for round in 1..=3 {
        let plain = ms_each(3, &mut || {
            for _ in 0..calls {
                tile(&a, &b, &mut acc);
            }
        });
        let fused = ms_each(3, &mut || {
            for _ in 0..calls {
                tile_relaxed_madd(&a, &b, &mut acc);
            }
        });
        web_sys::console::log_1(
            &format!(
                "round {round} register tile {MR}x{NR}, depth {KC}: multiply and add {:.1} GFLOP/s, relaxed fused multiply-add {:.1} GFLOP/s ({})",
                flops / plain / 1e6,
                flops / fused / 1e6,
                acc[0][0]
            )
            .into(),
        );
    }
}

/// `model::matmul::tile` written with relaxed SIMD's fused multiply-add.
#[target_feature(enable = "relaxed-simd")]
fn tile_relaxed_madd(a: &[f32], b: &[f32], acc: &mut [[f32; 8]; 4]) {
    use std::arch::wasm32::*;
    let mut sum = [[f32x4_splat(0.0); 2]; 4];
    for (x, y) in a.chunks_exact(4).zip(b.chunks_exact(8)) {
        let y0 = f32x4(y[0], y[1], y[2], y[3]);
        let y1 = f32x4(y[4], y[5], y[6], y[7]);
        for r in 0..4 {
            let xr = f32x4_splat(x[r]);
            sum[r][0] = f32x4_relaxed_madd(xr, y0, sum[r][0]);
            sum[r][1] = f32x4_relaxed_madd(xr, y1, sum[r][1]);
        }
    }
    for r in 0..4 {
        for (h, s) in sum[r].iter().enumerate() {
            let mut lanes = [0.0f32; 4];
            // SAFETY: four f32 lanes into four f32s.
            unsafe { v128_store(lanes.as_mut_ptr().cast(), *s) };
            for l in 0..4 {
                acc[r][h * 4 + l] += lanes[l];
            }
        }
    }
}

/// Training examples/s of one epoch of `mode` on `train` (batch 8, at most 128 tokens, no
/// evaluation), the model built first; `mark`, when given, is logged (and a second waited for
/// the profiler) between building the model and training it.
async fn examples_per_s(
    files: &ModelFiles,
    train: &tunelab::data::Dataset,
    mode: tunelab::train::Mode,
    mark: Option<&str>,
) -> f64 {
    use tunelab::model::bert::Pooling;
    use tunelab::train::{classifier_for_training, fine_tune, TrainingArgs};
    let args = TrainingArgs {
        num_train_epochs: 1,
        per_device_train_batch_size: 8,
        max_length: 128,
        ..TrainingArgs::defaults_for(mode)
    };
    let (tokenizer, empty) = (files.tokenizer().unwrap(), train.subset(&[]));
    let device = Device::flex();
    let (model, _) =
        classifier_for_training(files, &train.label_names, &args, Pooling::Cls, &device).unwrap();
    if let Some(line) = mark {
        web_sys::console::log_1(&line.into());
        sleep_ms(1000).await;
    }
    let mut speed = Speed::default();
    fine_tune(model, &tokenizer, train, &empty, &args, &device, &mut speed)
        .await
        .unwrap();
    speed.examples_per_s
}

/// GPT-2 small's shape (random weights) on the CPU.
fn gpt2_small() -> tunelab::prompt::LanguageModel {
    let files = random_gpt2(
        768,
        include_bytes!("fixtures/models/tiny-gpt2/tokenizer.json").to_vec(),
    );
    tunelab::prompt::LanguageModel::load(&files, &Device::flex(), u64::MAX).unwrap()
}

/// Fine-tuning in wasm on the CPU: LoRA (defaults: r 8 on query and value) then full, on 400
/// movie reviews (as many as the native benchmark trains on) at batch 8 and up to 128 tokens, one
/// epoch each, with a new two-label head. Prints training examples per second and the wasm memory
/// after each (it only grows: the figure after LoRA is LoRA's peak; after full, the larger of the
/// two).
///
///     scripts/bench.sh lora
#[wasm_bindgen_test]
async fn fine_tuning_in_wasm() {
    use tunelab::train::Mode;
    let files = random_minilm();
    let csv = include_bytes!("data/movie_reviews.csv");
    let (data, _) = import_dataset(csv, &TableOptions::default(), None, None).unwrap();
    let train = data.subset(&(0..400).collect::<Vec<_>>());
    web_sys::console::log_1(
        &"model: all-MiniLM-L6-v2's shape, random weights, f32; wasm32, one thread; 400 reviews, batch 8, max length 128, one epoch".into(),
    );
    // Each mode with the engine's CPU kernels, then full fine-tuning with burn's ops alone (the
    // kernels off: what training ran before they reached its graph).
    for (mode, kernels) in [(Mode::Lora, true), (Mode::Full, true), (Mode::Full, false)] {
        tunelab::model::flex::set_enabled(kernels);
        let speed = examples_per_s(&files, &train, mode, None).await;
        web_sys::console::log_1(
            &format!(
                "wasm {mode:?} fine-tuning{}: {speed:.2} training examples/s; wasm memory {:.0} MB",
                if kernels { "" } else { " (burn's ops alone)" },
                wasm_memory_bytes() / 1e6
            )
            .into(),
        );
    }
    tunelab::model::flex::set_enabled(true);
}

/// Waits `ms` milliseconds (for the profiler to start).
async fn sleep_ms(ms: i32) {
    let sleep = js_sys::Promise::new(&mut |resolve, _| {
        web_sys::window()
            .unwrap()
            .set_timeout_with_callback_and_timeout_and_arguments_0(&resolve, ms)
            .unwrap();
    });
    wasm_bindgen_futures::JsFuture::from(sleep).await.unwrap();
}

/// Not numbers to report: all-MiniLM-L6-v2's shape embedding one 128-token text 40 times, then
/// fully fine-tuned on 48 reviews (batch 8, length 128), then GPT-2 small's shape decoding 64
/// tokens after a 64-token prompt, each between "profile: start" and
/// "profile: stop" lines (after loading and a first run), for Chromium's sampling profiler
/// (`benches/wasm_profile.mjs`, `scripts/bench.sh wasm-profile`).
#[wasm_bindgen_test]
async fn encoder_for_the_profiler() {
    let files = random_minilm();
    let csv = include_bytes!("data/movie_reviews.csv");
    let (data, _) = import_dataset(csv, &TableOptions::default(), None, None).unwrap();
    let long: String = data.texts[..20].join(" ");
    let mut e = Embedder::load(&files, &Device::flex()).unwrap();
    e.max_length = 128;
    e.embed(&[&long]).await.unwrap();
    web_sys::console::log_1(&"profile: start embedding one 128-token text, 40 times".into());
    sleep_ms(1000).await;
    let t0 = js_sys::Date::now();
    for _ in 0..40 {
        e.embed(&[&long]).await.unwrap();
    }
    let each = (js_sys::Date::now() - t0) / 40.0;
    web_sys::console::log_1(&format!("profile: stop ({each:.1} ms each)").into());
    // The page's console lines reach the profiler's script when the page is idle.
    sleep_ms(500).await;
    drop(e);

    let train = data.subset(&(0..48).collect::<Vec<_>>());
    let mark = "profile: start full fine-tuning, 48 reviews";
    let speed = examples_per_s(&files, &train, tunelab::train::Mode::Full, Some(mark)).await;
    web_sys::console::log_1(&format!("profile: stop ({speed:.2} training examples/s)").into());
    sleep_ms(500).await;

    let lm = gpt2_small();
    web_sys::console::log_1(
        &"profile: start GPT-2 small, 64-token prompt then 64 tokens, twice".into(),
    );
    sleep_ms(1000).await;
    let (ttft, rate) = decode_speed(&lm, 64, 1).await;
    web_sys::console::log_1(
        &format!("profile: stop (first token {ttft:.0} ms, {rate:.1} tokens/s)").into(),
    );
}
