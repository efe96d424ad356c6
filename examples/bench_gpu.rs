//! The GPU benchmark: the app's own code paths (`Embedder::embed`, `LanguageModel::step`,
//! `fine_tune`) through native burn-wgpu, i.e. the WGSL kernels the browser runs, on Vulkan (Mesa's
//! lavapipe where there is no GPU: slow, but it proves the path and gives the counts). Random
//! all-MiniLM-L6-v2-, GPT-2-small-, SmolLM2-135M- and Qwen2.5-0.5B-shaped weights (speed does not
//! depend on their values; the last two as bfloat16 files, kept in f16 where the GPU computes in
//! it), BERT's and GPT-2's real tokenizers from the fixtures, movie reviews from `tests/data`.
//!
//! Prints the adapter, then per workload its time or rate and the kernel launches (dispatches) and
//! readbacks (host↔device syncs) per forward, per decode token and per training step
//! (`tunelab::counts`). `benches/torch_gpu.py` prints the same rows for PyTorch on the same machine.
//!
//!     scripts/bench.sh gpu              # = cargo run --features gpu --example bench_gpu
//!     bench_gpu [encoder] [gpt2] [llama] [train] [counts] [probe]
//!
//! `counts` alone runs every workload once on models of the same architecture (same layers and
//! heads, so the same kernels) but narrow widths, so that it finishes on a software rasterizer.
//! `probe` (only when named) times the parts of a decode step one at a time: a readback, a launch,
//! the matmuls of one token with burn's kernel and the engine's row kernel, the LM head.
//! Environment: TUNELAB_DEVICE=wgpu|cpu (default wgpu), TUNELAB_TASKS_MAX (default
//! `tunelab::device::TASKS_MAX`), TUNELAB_FUSED_KERNELS=0 (the engine's fused kernels off, to
//! measure what they gain), TUNELAB_TILED_MATMUL=0 (burn's matmul for many rows and in training
//! instead of the engine's tiled kernel), TUNELAB_KERNEL_TIMES=1 (each kernel of a training run
//! and of an embedding call timed: where the time goes), TUNELAB_KERNELS=1 (the launches by kernel name).

use burn::prelude::*;
use tunelab::counts::{Counter, Counts};
use tunelab::data::{import_dataset, stratified_sample, stratified_split, Dataset, TableOptions};
use tunelab::hub::ModelFiles;
use tunelab::model::gpt2::KvCache;
use tunelab::model::kernels::{argmax_rows, matmul_rows, row_kernel_matmul, tiled_matmul};
use tunelab::model::{read_f32, read_i64};
use tunelab::pipelines::Embedder;
use tunelab::prompt::{LanguageModel, Precision};
use tunelab::train::{
    classifier_for_training, default_pooling, fine_tune, Mode, Phase, TrainEvent, TrainHooks,
    TrainingArgs,
};

include!("common/bench.rs");
include!("common/random_models.rs");

fn root() -> std::path::PathBuf {
    std::env::var("TUNELAB_ROOT")
        .map(Into::into)
        .unwrap_or_else(|_| env!("CARGO_MANIFEST_DIR").into())
}

/// MiniLM's layers and heads at 1/8 of its width: the same kernels, a fraction of the work.
const NARROW_MINILM: BertShape = BertShape {
    hidden: 48,
    ffn: 192,
    layers: 6,
    heads: 12,
};

fn bert_tokenizer() -> Vec<u8> {
    std::fs::read(root().join("tests/fixtures/models/tiny-bert/tokenizer.json")).unwrap()
}

fn gpt2_tokenizer() -> Vec<u8> {
    std::fs::read(root().join("tests/fixtures/models/tiny-gpt2/tokenizer.json")).unwrap()
}

/// One row of the table.
fn row(name: &str, figure: String, counts: Option<(Counts, usize, &str)>) {
    let per = counts.map_or(String::new(), |(c, n, unit)| {
        let (l, r) = c.per(n);
        format!("{l:>9.1} launches, {r:>5.2} reads per {unit}")
    });
    println!("| {name:<52} | {figure:>24} | {per}");
}

/// With TUNELAB_KERNELS set, the kernels behind a count: launches per unit by kernel name.
fn kernels(c: &Counter, n: usize, what: &str) {
    if std::env::var_os("TUNELAB_KERNELS").is_none() {
        return;
    }
    println!("  kernels per {what}:");
    for (name, count) in c.kernels() {
        println!("  {:>9.1}  {name}", count as f64 / n.max(1) as f64);
    }
}

/// With TUNELAB_KERNEL_TIMES set, each kernel timed as it runs (one at a time, so the run is
/// slower than the table's): where a unit of work's device time goes.
fn timing() -> bool {
    std::env::var_os("TUNELAB_KERNEL_TIMES").is_some()
}

/// A kernel's name without its path: `KernelBinop<MulOp>` for
/// `burn_cubecl::kernel::binary::kernel_binop::KernelBinop<burn_cubecl::…::MulOp>`.
fn short(kernel: &str) -> String {
    let last = |p: &str| p.rsplit("::").next().unwrap_or(p).to_string();
    match kernel.split_once('<') {
        Some((head, args)) => {
            let inner = args.trim_end_matches('>');
            let arg = inner.rsplit(", ").next().unwrap_or(inner);
            format!(
                "{}<{}>",
                last(head),
                last(arg.split('<').next().unwrap_or(arg))
            )
        }
        None => last(kernel),
    }
}

/// The profile of a timed count: per unit, the kernels taking the most time.
fn kernel_times(c: &Counter, n: usize, what: &str) {
    let times = c.times();
    if times.is_empty() {
        return;
    }
    let n = n.max(1) as f64;
    let total: f64 = times.iter().map(|t| t.secs).sum();
    println!(
        "  kernel time per {what}: {:.2} ms in all (each kernel waited for)",
        total / n * 1e3
    );
    for t in times.iter().take(25) {
        println!(
            "  {:>8.3} ms {:>7.1} launches  {}{}",
            t.secs / n * 1e3,
            t.launches as f64 / n,
            short(t.kernel),
            if t.device_clock { "" } else { " (host clock)" }
        );
    }
}

/// Rate of the training loop, and the launches and reads from the second step to the last.
#[derive(Default)]
struct TrainWatch {
    counter: Option<Counter>,
    at_second: Option<(usize, Counts)>,
    at_last: Option<(usize, Counts)>,
    ex_per_s: f64,
}

impl TrainHooks for TrainWatch {
    fn event(&mut self, e: &TrainEvent) {
        match e {
            TrainEvent::Progress {
                phase: Phase::Training,
                done,
                ..
            } => {
                let c = self.counter.as_ref().map(Counter::read).unwrap_or_default();
                if *done == 2 {
                    self.at_second = Some((*done, c));
                }
                self.at_last = Some((*done, c));
            }
            TrainEvent::Finished {
                train_examples_per_s,
                ..
            } => self.ex_per_s = *train_examples_per_s,
            _ => {}
        }
    }
}

impl TrainWatch {
    fn per_step(&self) -> (Counts, usize) {
        match (self.at_second, self.at_last) {
            (Some((a, ca)), Some((b, cb))) if b > a => (
                Counts {
                    launches: cb.launches - ca.launches,
                    reads: cb.reads - ca.reads,
                },
                b - a,
            ),
            _ => (Counts::default(), 1),
        }
    }
}

fn device(which: &str) -> (Device, u64) {
    if which == "cpu" {
        return (Device::flex(), u64::MAX);
    }
    gpu_device()
}

#[cfg(feature = "gpu")]
fn gpu_device() -> (Device, u64) {
    let tasks_max = std::env::var("TUNELAB_TASKS_MAX")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or(tunelab::device::TASKS_MAX);
    let (device, setup) = Device::wgpu_options()
        .tasks_max(tasks_max)
        .init_with_setup()
        .expect("wgpu init (no adapter? a Vulkan driver is needed: Mesa's lavapipe will do)");
    let info = setup.adapter.get_info();
    let described =
        tunelab::device::describe_adapter(&[&info.name, &info.driver, &info.driver_info]);
    let l = setup.device.limits();
    println!(
        "adapter: {described} / {:?} / {:?}; tasks_max {tasks_max}",
        info.backend, info.device_type
    );
    (
        device,
        l.max_storage_buffer_binding_size.min(l.max_buffer_size),
    )
}

#[cfg(not(feature = "gpu"))]
fn gpu_device() -> (Device, u64) {
    panic!("built without the `gpu` feature: run scripts/bench.sh gpu, or set TUNELAB_DEVICE=cpu")
}

fn main() {
    let which = std::env::var("TUNELAB_DEVICE").unwrap_or_else(|_| "wgpu".into());
    let t0 = std::time::Instant::now();
    let (device, max_bind) = device(&which);
    println!(
        "machine: {}; device {which}; fused kernels {}{}; burn fusion {}, autotune {}; init {:.2} s",
        machine(),
        if tunelab::model::kernels::fused_kernels_enabled() {
            "on"
        } else {
            "off (TUNELAB_FUSED_KERNELS=0)"
        },
        if std::env::var("TUNELAB_TILED_MATMUL").is_ok_and(|v| v == "0") {
            ", tiled matmul off (TUNELAB_TILED_MATMUL=0)"
        } else {
            ""
        },
        if cfg!(feature = "gpu-fusion") || cfg!(feature = "gpu-fast") {
            "on"
        } else {
            "off"
        },
        if cfg!(feature = "gpu-fast") || cfg!(feature = "gpu-autotune") {
            "on"
        } else {
            "off"
        },
        t0.elapsed().as_secs_f64()
    );
    let steps: Vec<String> = std::env::args().skip(1).collect();
    let counts_only = steps.iter().any(|s| s == "counts");
    let want = |s: &str| counts_only || steps.is_empty() || steps.iter().any(|x| x == s);
    let csv = std::fs::read(root().join("tests/data/movie_reviews.csv")).unwrap();
    let (data, _) = import_dataset(&csv, &TableOptions::default(), None, None).unwrap();
    if counts_only {
        println!(
            "counts only: the same layers and heads at narrow widths (timings are not the table's)"
        );
    }
    println!("| {:<52} | {:>24} | per unit of work", "workload", "figure");
    if want("encoder") {
        encoder(&data, &device, counts_only);
    }
    if want("gpt2") {
        gpt2(&device, max_bind, counts_only);
    }
    if want("llama") {
        llama(&device, max_bind, counts_only);
    }
    if steps.iter().any(|x| x == "probe") {
        probe(&device, max_bind);
    }
    if want("train") {
        train(&data, &device, counts_only);
    }
}

fn block<T>(f: impl std::future::Future<Output = T>) -> T {
    pollster::block_on(f)
}

/// The encoder's rows in half precision (where the device computes in f16: the app's default,
/// `Precision::Auto`) and in f32 (`TUNELAB_F16=0` keeps to f32 alone).
fn encoder(data: &Dataset, device: &Device, narrow: bool) {
    let files = random_bert(
        if narrow { &NARROW_MINILM } else { &MINILM },
        bert_tokenizer(),
    );
    if tunelab::model::weights::half_on(device) {
        encoder_in(data, &files, device, narrow, Precision::Auto, "f16");
    }
    encoder_in(data, &files, device, narrow, Precision::F32, "f32");
}

fn encoder_in(
    data: &Dataset,
    files: &ModelFiles,
    device: &Device,
    narrow: bool,
    precision: Precision,
    label: &str,
) {
    let mut emb = Embedder::load_with(files, device, precision).expect("load");
    let (warm, runs) = if narrow { (1, 1) } else { (3, 20) };
    let long: String = data.texts[..20].join(" ");
    emb.max_length = 128;
    let first = std::time::Instant::now();
    block(emb.embed(&[&long])).unwrap();
    row(
        &format!("MiniLM embed ({label}): first call (compiles kernels)"),
        format!("{:.0} ms", first.elapsed().as_secs_f64() * 1e3),
        None,
    );
    let (one, counts) = timed_and_counted(&emb, &[&long], warm, runs);
    row(
        &format!("MiniLM embed 1x128 ({label})"),
        format!("{:.2} ms", one * 1e3),
        Some((counts, 1, "forward")),
    );
    emb.max_length = 32;
    let texts: Vec<&str> = data
        .texts
        .iter()
        .filter(|t| emb.tokenizer.encode(t, true).unwrap().len() >= 32)
        .take(32)
        .map(|t| &**t)
        .collect();
    let (many, counts) = timed_and_counted(&emb, &texts, warm, runs);
    row(
        &format!("MiniLM embed 32x32 ({label})"),
        format!("{:.2} ms", many * 1e3),
        Some((counts, 1, "forward")),
    );
    emb.max_length = 128;
    let reviews: Vec<&str> = data.texts.iter().take(256).map(|t| &**t).collect();
    let (big, counts) = timed_and_counted(&emb, &reviews, warm.min(1), if narrow { 1 } else { 5 });
    row(
        &format!("256 reviews (<=128 tokens, tokenization incl.), one call ({label})"),
        format!("{:.1} ms = {:.0} /s", big * 1e3, 256.0 / big),
        Some((counts, 1, "call")),
    );
}

/// The median seconds of `emb.embed(texts)` over `runs` calls after `warm`, then the launches
/// and readbacks of one more call (and with TUNELAB_KERNEL_TIMES its profile).
fn timed_and_counted(emb: &Embedder, texts: &[&str], warm: usize, runs: usize) -> (f64, Counts) {
    let secs = median_secs(warm, runs, || {
        block(emb.embed(texts)).unwrap();
    });
    let c = if timing() {
        Counter::start_timed()
    } else {
        Counter::start()
    };
    block(emb.embed(texts)).unwrap();
    kernels(&c, 1, "call");
    kernel_times(&c, 1, "call");
    (secs, c.finish())
}

/// Where a decode step's time goes: fixed costs measured one at a time, each ending in a read of
/// a few bytes (the sync every token pays), median of 20 after 3 warm-ups.
fn probe(device: &Device, max_bind: u64) {
    let time = |name: &str, f: &mut dyn FnMut()| {
        let secs = median_secs(3, 20, f);
        println!("| probe: {name:<45} | {:>21.3} ms |", secs * 1e3);
    };
    let one = Tensor::<1>::from_floats([1.0], device);
    time("read back 1 float after 1 kernel", &mut || {
        block(read_f32(one.clone().add_scalar(1.0))).unwrap();
    });
    time("read back 1 float after 100 kernels", &mut || {
        let mut x = one.clone();
        for _ in 0..100 {
            x = x.add_scalar(1.0);
        }
        block(read_f32(x)).unwrap();
    });
    let x = Tensor::<2>::random([1, 768], burn::tensor::Distribution::Default, device);
    let w = Tensor::<2>::random([768, 3072], burn::tensor::Distribution::Default, device);
    time("matmul [1,768]x[768,3072] x12 (decode's c_fc)", &mut || {
        let mut acc = x.clone().matmul(w.clone());
        for _ in 0..11 {
            acc = x.clone().matmul(w.clone());
        }
        block(read_f32(acc.narrow(1, 0, 1))).unwrap();
    });
    time("the same with the engine's row kernel", &mut || {
        let mut acc = matmul_rows(x.clone(), w.clone());
        for _ in 0..11 {
            acc = matmul_rows(x.clone(), w.clone());
        }
        block(read_f32(acc.narrow(1, 0, 1))).unwrap();
    });
    let x128 = Tensor::<2>::random([128, 384], burn::tensor::Distribution::Default, device);
    let w384 = Tensor::<2>::random([384, 1536], burn::tensor::Distribution::Default, device);
    time(
        "matmul [128,384]x[384,1536] x12 (MiniLM's FFN)",
        &mut || {
            let mut acc = x128.clone().matmul(w384.clone());
            for _ in 0..11 {
                acc = x128.clone().matmul(w384.clone());
            }
            block(read_f32(acc.narrow(1, 0, 1))).unwrap();
        },
    );
    if row_kernel_matmul(x128.clone(), w384.clone()).is_some() {
        time(
            "the same with the engine's row kernel (16 blocks)",
            &mut || {
                let mut acc = row_kernel_matmul(x128.clone(), w384.clone()).expect("row kernel");
                for _ in 0..11 {
                    acc = row_kernel_matmul(x128.clone(), w384.clone()).expect("row kernel");
                }
                block(read_f32(acc.narrow(1, 0, 1))).unwrap();
            },
        );
    }
    // Many rows (a training batch of 32 × 128 tokens): burn's matmul and the engine's tiled
    // kernel at both its tile sizes, forward and for the weight's gradient `xᵀ · dy`.
    let x4k = Tensor::<2>::random([4096, 384], burn::tensor::Distribution::Default, device);
    let dy = Tensor::<2>::random([4096, 1536], burn::tensor::Distribution::Default, device);
    let twelve = |f: &dyn Fn() -> Tensor<2>| {
        let mut acc = f();
        for _ in 0..11 {
            acc = f();
        }
        block(read_f32(acc.narrow(1, 0, 1))).unwrap();
    };
    time("matmul [4096,384]x[384,1536] x12, burn", &mut || {
        twelve(&|| x4k.clone().matmul(w384.clone()))
    });
    time("xT dy [384,4096]x[4096,1536] x12, burn", &mut || {
        twelve(&|| x4k.clone().transpose().matmul(dy.clone()))
    });
    for tile in [64, 128] {
        if tiled_matmul(x4k.clone(), w384.clone(), tile).is_none() {
            break;
        }
        time(&format!("the same forward, tiled {tile}"), &mut || {
            twelve(&|| tiled_matmul(x4k.clone(), w384.clone(), tile).expect("tiled"))
        });
        time(&format!("the same xT dy, tiled {tile}"), &mut || {
            twelve(&|| tiled_matmul(x4k.clone().transpose(), dy.clone(), tile).expect("tiled"))
        });
    }
    drop((x4k, dy));
    // The whole vocabulary where one binding holds it (lavapipe's 128 MiB does not).
    let vocab = 50257.min((max_bind / (768 * 4)) as usize);
    let wte = Tensor::<2>::random([vocab, 768], burn::tensor::Distribution::Default, device);
    time(
        &format!("LM head x·Wᵀ, W [{vocab},768] + argmax"),
        &mut || {
            let logits = x.clone().matmul(wte.clone().transpose());
            block(read_i64(logits.argmax(1))).unwrap();
        },
    );
    let wt = Tensor::<2>::random([768, vocab], burn::tensor::Distribution::Default, device);
    let logits = x.clone().matmul(wte.clone().transpose());
    time("LM head x·Wᵀ alone (1 logit read)", &mut || {
        let l = x.clone().matmul(wte.clone().transpose());
        block(read_f32(l.narrow(1, 0, 1))).unwrap();
    });
    time(&format!("argmax of [1, {vocab}] logits, burn"), &mut || {
        block(read_i64(logits.clone().argmax(1))).unwrap();
    });
    time(
        &format!("argmax of [1, {vocab}] logits, the engine's"),
        &mut || {
            block(read_i64(argmax_rows(logits.clone()))).unwrap();
        },
    );
    time("LM head x·Wᵀ with the row kernel", &mut || {
        let logits = matmul_rows(x.clone(), wte.clone().transpose());
        block(read_i64(logits.argmax(1))).unwrap();
    });
    time(
        &format!("LM head x·W, W [768,{vocab}] + argmax"),
        &mut || {
            let logits = x.clone().matmul(wt.clone());
            block(read_i64(logits.argmax(1))).unwrap();
        },
    );
    drop((wte, wt));
    let width = std::env::var("TUNELAB_PROBE_WIDTH").map_or(768, |w| w.parse().unwrap());
    let files = random_gpt2(width, gpt2_tokenizer());
    let lm = LanguageModel::load(&files, device, max_bind).expect("load gpt2");
    let prompt: Vec<u32> = (0..64).map(|i| 100 + i * 37).collect();
    let mut cache = KvCache::default();
    block(read_f32(lm.step(&prompt, &mut cache).narrow(1, 0, 1))).unwrap();
    // 46 steps in all on one cache: 64 + 46 positions stay within its first 128.
    time("GPT-2 small: 12 blocks at t=1, no LM head", &mut || {
        let ids = Tensor::<2, Int>::from_ints([[500]], device);
        let hidden = lm.model.forward(ids, &mut cache);
        block(read_f32(hidden.narrow(2, 0, 1))).unwrap();
    });
    time("GPT-2 small: a whole step (greedy token)", &mut || {
        block(read_i64(argmax_rows(lm.step(&[500], &mut cache)))).unwrap();
    });
}

fn gpt2(device: &Device, max_bind: u64, narrow: bool) {
    let files = random_gpt2(if narrow { 96 } else { 768 }, gpt2_tokenizer());
    decoder("GPT-2 small", &files, device, max_bind, narrow);
}

/// SmolLM2-135M's and Qwen2.5-0.5B's shapes (bfloat16 files; f16 kept on a GPU that computes
/// in it, else f32), the rows `gpt2` prints for GPT-2; narrow: 2 layers of each, for the counts.
fn llama(device: &Device, max_bind: u64, narrow: bool) {
    let tokenizer =
        std::fs::read(root().join("tests/fixtures/models/tiny-llama/tokenizer.json")).unwrap();
    for shape in [&SMOLLM2_135M, &QWEN25_05B] {
        let layers = if narrow { 2 } else { shape.layers };
        let shape = LlamaShape { layers, ..*shape };
        let files = random_llama(&shape, tokenizer.clone());
        decoder(shape.name, &files, device, max_bind, narrow);
    }
}

/// A decoder's rows in half precision (where the device computes in f16: the app's default,
/// `Precision::Auto`) and in f32 (`TUNELAB_F16=0` keeps to f32 alone).
fn decoder(name: &str, files: &ModelFiles, device: &Device, max_bind: u64, narrow: bool) {
    if tunelab::model::weights::half_on(device) {
        decoder_in(name, files, device, max_bind, narrow, Precision::Auto);
    }
    decoder_in(name, files, device, max_bind, narrow, Precision::F32);
}

/// A decoder's rows in `precision`: the first run's time to the first token (compiling the
/// kernels), then the medians of the prefill of 64 tokens and of 32 greedy tokens with the KV
/// cache.
fn decoder_in(
    name: &str,
    files: &ModelFiles,
    device: &Device,
    max_bind: u64,
    narrow: bool,
    precision: Precision,
) {
    let lm =
        LanguageModel::load_with(files, device, max_bind, precision).expect("load the decoder");
    let half = lm.activation_dtype() == burn::tensor::DType::F16;
    let name = &format!("{name} ({})", if half { "f16" } else { "f32" });
    let prompt: Vec<u32> = (0..64).map(|i| 100 + i * 37).collect();
    // As the app decodes greedily (prompt::generate).
    let greedy =
        |logits: Tensor<2>| -> u32 { block(read_i64(argmax_rows(logits))).unwrap()[0] as u32 };
    let tokens = if narrow { 4 } else { 32 };
    let (mut ttft, mut rates) = (vec![], vec![]);
    let mut decode_counts = Counts::default();
    let mut prefill_counts = Counts::default();
    for run in 0..if narrow { 2 } else { 4 } {
        let c = Counter::start();
        let s = std::time::Instant::now();
        let mut cache = KvCache::default();
        let mut next = greedy(lm.step(&prompt, &mut cache));
        let f = s.elapsed().as_secs_f64();
        prefill_counts = c.finish();
        let c = Counter::start();
        let t = std::time::Instant::now();
        for _ in 0..tokens {
            next = greedy(lm.step(&[next], &mut cache));
        }
        let dec = t.elapsed().as_secs_f64();
        if run == 1 {
            kernels(&c, tokens, "decoded token");
        }
        decode_counts = c.finish();
        if run > 0 {
            ttft.push(f);
            rates.push(tokens as f64 / dec);
        } else {
            row(
                &format!("{name}: first run (compiles kernels), TTFT"),
                format!("{:.0} ms", f * 1e3),
                None,
            );
        }
    }
    ttft.sort_by(|a, b| a.total_cmp(b));
    rates.sort_by(|a, b| a.total_cmp(b));
    let mid = ttft.len() / 2;
    row(
        &format!("{name}: prefill 64 -> first token"),
        format!("{:.1} ms", ttft[mid] * 1e3),
        Some((prefill_counts, 1, "prefill")),
    );
    row(
        &format!("{name}: decode with KV cache"),
        format!("{:.1} tok/s", rates[mid]),
        Some((decode_counts, tokens, "token")),
    );
}

fn train(data: &Dataset, device: &Device, narrow: bool) {
    let files = random_bert(
        if narrow { &NARROW_MINILM } else { &MINILM },
        bert_tokenizer(),
    );
    let split = stratified_split(&data.labels, data.num_classes(), 0.2, 42).unwrap();
    let n = if narrow { 96 } else { 512 };
    let train = stratified_sample(&data.subset(&split.train), n, 42);
    let test = stratified_sample(&data.subset(&split.test), if narrow { 8 } else { 64 }, 42);
    for bs in [8usize, 32] {
        let args = TrainingArgs {
            mode: Mode::Full,
            num_train_epochs: 1,
            per_device_train_batch_size: bs,
            learning_rate: 5e-5,
            max_length: 128,
            ..TrainingArgs::default()
        };
        let tok = files.tokenizer().unwrap();
        let pooling = default_pooling(&files, Mode::Full);
        let (model, _) =
            classifier_for_training(&files, &train.label_names, &args, pooling, device).unwrap();
        let s = std::time::Instant::now();
        let mut h = TrainWatch {
            counter: Some(if timing() {
                Counter::start_timed()
            } else {
                Counter::start()
            }),
            ..Default::default()
        };
        block(fine_tune(model, &tok, &train, &test, &args, device, &mut h)).unwrap();
        let (c, steps) = h.per_step();
        if let Some(all) = &h.counter {
            let steps = h.at_last.map_or(1, |(n, _)| n);
            kernels(all, steps, "step (whole run, evaluation included)");
            kernel_times(all, steps, "step (whole run, evaluation included)");
        }
        row(
            &format!("full fine-tuning, {n} reviews, batch {bs}, <=128 tokens"),
            format!(
                "{:.1} ex/s (wall {:.1} s)",
                h.ex_per_s,
                s.elapsed().as_secs_f64()
            ),
            Some((c, steps, "step")),
        );
    }
}
