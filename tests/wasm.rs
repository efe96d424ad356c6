//! Browser-only checks, run by wasm-bindgen-test in headless Chromium (webdriver.json gives it
//! WebGPU through SwiftShader): tiny-bert on WebGPU and on the CPU backend in wasm against
//! transformers' golden outputs, tiny-gpt2 greedy generation on WebGPU, and the backend probe.
#![cfg(target_arch = "wasm32")]

use std::collections::BTreeMap;

use burn::prelude::Device;
use safetensors::{Dtype, SafeTensors};
use tunelab::counts::{Counter, Counts};
use tunelab::data::Dataset;
use tunelab::device::{self, Compute};
use tunelab::hub::ModelFiles;
use tunelab::model::bert::EncoderInput;
use tunelab::model::gpt2::KvCache;
use tunelab::model::{read_f32, read_i64};
use tunelab::pipelines::TextClassifier;
use tunelab::prompt::generate::{generate_ids, GenerationConfig};
use tunelab::prompt::LanguageModel;
use tunelab::text::EncodedBatch;
use tunelab::train::{fine_tune, Mode, Phase, TrainEvent, TrainHooks, TrainingArgs};
use wasm_bindgen_test::*;

#[path = "common/kernel_checks.rs"]
mod kernel_checks;

#[path = "common/half_checks.rs"]
mod half_checks;
#[path = "common/store_checks.rs"]
mod store_checks;
#[path = "common/trace.rs"]
mod trace;
#[path = "common/training_checks.rs"]
mod training_checks;

use trace::trace_settings;

wasm_bindgen_test_configure!(run_in_browser);

/// Kernel launches of one tiny-bert classification, one tiny-gpt2 decode token and one tiny-bert
/// full fine-tuning step on WebGPU (`webgpu_launches_and_readbacks_per_forward_token_and_training_step`):
/// what the engine launched on SwiftShader (29 and 27 on 2026-11-28 since an encoder's attention
/// outside training is one kernel on the fused query/key/value output; 31 before, since the row
/// kernel adds a linear layer's bias, activation and residual itself; 38 and 33 before that, 128
/// and 115 before the engine's fused kernels; a training step 168.5 on 2026-11-28, 571 before
/// training's own kernels) plus about 10%.
const FORWARD_LAUNCHES: u64 = 32;
const DECODE_LAUNCHES: u64 = 30;
const STEP_LAUNCHES: u64 = 185;
/// Per token of a Llama-family decoder (tiny-qwen3, 2 layers), likewise: 41 on 2026-11-28 since
/// the up projection's row kernel multiplies by the gate's SiLU (57 before; 61 before the row
/// kernel's epilogue, 147 before the RMSNorm and rotary kernels and grouped-query attention in
/// the decoding kernel), plus about 10%.
const LLAMA_DECODE_LAUNCHES: u64 = 45;

fn files(config: &[u8], tokenizer: &[u8], weights: &[u8]) -> ModelFiles {
    ModelFiles {
        config: config.to_vec(),
        tokenizer: tokenizer.to_vec(),
        weights: weights.to_vec(),
        extra: BTreeMap::new(),
    }
}

fn tiny_bert() -> ModelFiles {
    files(
        include_bytes!("fixtures/models/tiny-bert/config.json"),
        include_bytes!("fixtures/models/tiny-bert/tokenizer.json"),
        include_bytes!("fixtures/models/tiny-bert/model.safetensors"),
    )
}

fn tiny_gpt2() -> ModelFiles {
    files(
        include_bytes!("fixtures/models/tiny-gpt2/config.json"),
        include_bytes!("fixtures/models/tiny-gpt2/tokenizer.json"),
        include_bytes!("fixtures/models/tiny-gpt2/model.safetensors"),
    )
}

fn golden(bytes: &[u8], name: &str) -> (Vec<usize>, Vec<f64>) {
    let st = SafeTensors::deserialize(bytes).unwrap();
    let v = st.tensor(name).unwrap();
    let values = match v.dtype() {
        Dtype::F32 => v
            .data()
            .chunks_exact(4)
            .map(|c| f32::from_le_bytes(c.try_into().unwrap()) as f64)
            .collect(),
        Dtype::I64 => v
            .data()
            .chunks_exact(8)
            .map(|c| i64::from_le_bytes(c.try_into().unwrap()) as f64)
            .collect(),
        other => panic!("{other:?}"),
    };
    (v.shape().to_vec(), values)
}

fn rows(shape: &[usize], values: &[f64]) -> Vec<Vec<u32>> {
    values
        .chunks(shape[1])
        .map(|r| r.iter().map(|&x| x as u32).collect())
        .collect()
}

fn max_abs(a: &[f32], b: &[f64]) -> f64 {
    a.iter()
        .zip(b)
        .map(|(x, y)| (*x as f64 - y).abs())
        .fold(0.0, f64::max)
}

async fn tiny_bert_errors(compute: &Compute) -> (f64, f64) {
    let g = include_bytes!("fixtures/golden/tiny-bert.golden.safetensors");
    let (s, ids) = golden(g, "input_ids");
    let (_, mask) = golden(g, "attention_mask");
    let (_, types) = golden(g, "token_type_ids");
    let batch = EncodedBatch::from_rows(&rows(&s, &ids), &rows(&s, &mask), Some(&rows(&s, &types)));
    let clf = TextClassifier::load(&tiny_bert(), &compute.device).unwrap();
    let input = EncoderInput::new(&batch, &compute.device);
    let hidden = read_f32(clf.model.encoder.forward(&input)).await.unwrap();
    let logits = read_f32(clf.model.forward(&input)).await.unwrap();
    (
        max_abs(&hidden, &golden(g, "last_hidden_state").1),
        max_abs(&logits, &golden(g, "logits").1),
    )
}

/// The largest errors of a classifier's last hidden state (at real tokens) and logits on its
/// golden batch.
async fn classifier_errors(
    compute: &Compute,
    model: ModelFiles,
    g: &[u8],
    last_hidden: &str,
) -> (f64, f64) {
    let (s, ids) = golden(g, "input_ids");
    let (_, mask) = golden(g, "attention_mask");
    let batch = EncodedBatch::from_rows(&rows(&s, &ids), &rows(&s, &mask), None);
    let clf = TextClassifier::load(&model, &compute.device).unwrap();
    let input = EncoderInput::new(&batch, &compute.device);
    let hidden = read_f32(clf.model.encoder.forward(&input)).await.unwrap();
    let logits = read_f32(clf.model.forward(&input)).await.unwrap();
    let want = golden(g, last_hidden).1;
    let d = hidden.len() / mask.len();
    let real = |i: usize| mask[i / d] == 1.0;
    let hidden_error = hidden
        .iter()
        .zip(&want)
        .enumerate()
        .filter(|(i, _)| real(*i))
        .map(|(_, (x, y))| (*x as f64 - y).abs())
        .fold(0.0, f64::max);
    (hidden_error, max_abs(&logits, &golden(g, "logits").1))
}

/// RoBERTa's positions, counted on the device from the padding, and its two-layer head; and
/// ModernBERT's rotary positions, sliding window (which hides keys in this 32-token batch), gated
/// MLP and mean-pooled head.
#[wasm_bindgen_test]
async fn tiny_xlm_roberta_and_modernbert_on_webgpu_and_the_cpu_in_wasm_match_transformers() {
    for (name, compute) in [("WebGPU", webgpu().await), ("CPU", Compute::cpu("test"))] {
        let xlmr = files(
            include_bytes!("fixtures/models/tiny-xlm-roberta/config.json"),
            include_bytes!("fixtures/models/tiny-xlm-roberta/tokenizer.json"),
            include_bytes!("fixtures/models/tiny-xlm-roberta/model.safetensors"),
        );
        let g = include_bytes!("fixtures/golden/tiny-xlm-roberta.golden.safetensors");
        let (hidden, logits) = classifier_errors(&compute, xlmr, g, "hidden_states.2").await;
        console_log!("{name} tiny-xlm-roberta: last_hidden_state {hidden:e}, logits {logits:e}");
        assert!(
            hidden <= 1e-4 && logits <= 1e-4,
            "{name} tiny-xlm-roberta: hidden {hidden:e}, logits {logits:e}"
        );
        let modern = files(
            include_bytes!("fixtures/models/tiny-modernbert/config.json"),
            include_bytes!("fixtures/models/tiny-modernbert/tokenizer.json"),
            include_bytes!("fixtures/models/tiny-modernbert/model.safetensors"),
        );
        let g = include_bytes!("fixtures/golden/tiny-modernbert.golden.safetensors");
        let (hidden, logits) = classifier_errors(&compute, modern, g, "last_hidden_state").await;
        console_log!("{name} tiny-modernbert: last_hidden_state {hidden:e}, logits {logits:e}");
        assert!(
            hidden <= 1e-4 && logits <= 1e-4,
            "{name} tiny-modernbert: hidden {hidden:e}, logits {logits:e}"
        );
    }
}

/// WebGPU as the app starts it.
async fn webgpu() -> Compute {
    device::webgpu()
        .await
        .expect("WebGPU (SwiftShader) must start in the test browser")
}

#[wasm_bindgen_test]
async fn fused_kernels_on_webgpu_match_the_composed_ops() {
    let compute = webgpu().await;
    let checks = kernel_checks::fused_kernel_checks(&compute.device).await;
    for c in &checks {
        console_log!(
            "{}: max abs {:e}, {} launches",
            c.name,
            c.max_abs,
            c.launches
        );
    }
    kernel_checks::assert_checks(&checks, 1e-4, true);
}

#[wasm_bindgen_test]
async fn half_precision_checkpoints_on_webgpu_give_the_cpus_outputs() {
    // Kept in f16 where the adapter has `shader-f16`; SwiftShader has not: converted to f32.
    let compute = webgpu().await;
    let files = ModelFiles {
        config: include_bytes!("fixtures/models/tiny-qwen2/config.json").to_vec(),
        tokenizer: include_bytes!("fixtures/models/tiny-qwen2/tokenizer.json").to_vec(),
        weights: include_bytes!("fixtures/models/tiny-qwen2/model.safetensors").to_vec(),
        extra: Default::default(),
    };
    let f16 = tunelab::model::weights::half_on(&compute.device);
    console_log!("WebGPU computes in f16 here: {f16}");
    for c in half_checks::half_checkpoint_checks(&compute.device, &files).await {
        console_log!(
            "{}: kept in f16: {}, max abs {:e}, step {:e}",
            c.name,
            c.kept_f16,
            c.max_abs,
            c.step_max_abs
        );
        assert_eq!(c.kept_f16, f16, "{}", c.name);
        assert!(
            c.max_abs <= c.tolerance && c.step_max_abs <= c.tolerance,
            "{}",
            c.name
        );
    }
}

#[wasm_bindgen_test]
async fn cpu_kernels_in_wasm_match_the_composed_ops() {
    let checks = kernel_checks::fused_kernel_checks(&Device::flex()).await;
    for c in &checks {
        console_log!(
            "{}: max abs {:e}, {} CPU kernels",
            c.name,
            c.max_abs,
            c.cpu_kernels
        );
    }
    kernel_checks::assert_checks(&checks, 1e-4, false);
    kernel_checks::assert_cpu_kernels_ran(&checks);
}

#[wasm_bindgen_test]
async fn cpu_kernels_in_wasm_training_give_burns_outputs_and_gradients() {
    let checks = training_checks::training_kernel_checks(&Device::flex()).await;
    for c in &checks {
        console_log!(
            "{}: max abs {:e}, {} CPU kernels",
            c.name,
            c.max_abs,
            c.engine_ops
        );
    }
    training_checks::assert_training_checks(&checks, 1e-5);
    training_checks::dropout_check(&Device::flex()).await;
    training_checks::attention_dropout_check(&Device::flex()).await;
}

#[wasm_bindgen_test]
async fn gpu_kernels_in_webgpu_training_give_burns_outputs_and_gradients() {
    let compute = webgpu().await;
    let checks = training_checks::training_kernel_checks(&compute.device).await;
    for c in &checks {
        console_log!(
            "WebGPU {}: max abs {:e}, {} engine ops",
            c.name,
            c.max_abs,
            c.engine_ops
        );
    }
    training_checks::assert_training_checks(&checks, 1e-5);
    training_checks::dropout_check(&compute.device).await;
    training_checks::attention_dropout_check(&compute.device).await;
}

#[wasm_bindgen_test]
async fn tiny_bert_on_the_cpu_backend_in_wasm_matches_transformers() {
    let (hidden, logits) = tiny_bert_errors(&Compute::cpu("test")).await;
    console_log!("wasm CPU tiny-bert: last_hidden_state {hidden:e}, logits {logits:e}");
    assert!(
        hidden <= 1e-4 && logits <= 1e-4,
        "hidden {hidden:e}, logits {logits:e}"
    );
}

#[wasm_bindgen_test]
async fn tiny_bert_on_webgpu_matches_transformers() {
    let compute = webgpu().await;
    console_log!(
        "WebGPU: {} (max binding {} bytes)",
        compute.backend.describe(),
        compute.max_binding_bytes
    );
    let (hidden, logits) = tiny_bert_errors(&compute).await;
    console_log!("WebGPU tiny-bert: last_hidden_state {hidden:e}, logits {logits:e}");
    assert!(
        hidden <= 1e-3 && logits <= 1e-3,
        "hidden {hidden:e}, logits {logits:e}"
    );
}

#[wasm_bindgen_test]
async fn tiny_gpt2_greedy_on_webgpu_gives_the_golden_tokens() {
    let compute = webgpu().await;
    let g = include_bytes!("fixtures/golden/tiny-gpt2.golden.safetensors");
    let (s, prompt) = golden(g, "input_ids");
    let prompt: Vec<u32> = rows(&s, &prompt).remove(0);
    let (gs, greedy) = golden(g, "greedy_ids");
    let want: Vec<u32> = rows(&gs, &greedy).remove(0)[prompt.len()..].to_vec();
    let files = tiny_gpt2();
    // Chunk the embeddings as for real GPT-2 on a small binding limit (4 chunks here).
    let lm = LanguageModel::load(&files, &compute.device, (50257 / 4 + 1) as u64 * 64 * 4).unwrap();
    assert_eq!(lm.model.gpt2().unwrap().wte.chunks.len(), 4);
    let cfg = GenerationConfig {
        max_new_tokens: 8,
        ..Default::default()
    };
    let out = generate_ids(&lm, &prompt, &cfg, &mut |_| true)
        .await
        .unwrap();
    assert_eq!(out.ids, want);
}

#[wasm_bindgen_test]
async fn the_backend_probe_finds_the_webgpu_adapter() {
    let status = tunelab::probe::probe().await;
    console_log!("Backend: {}", status.describe());
    assert!(
        matches!(status, tunelab::device::Backend::WebGpu { .. }),
        "Backend: {}",
        status.describe()
    );
}

/// Launches and readbacks at each training step's progress event.
#[derive(Default)]
struct StepCounts {
    counter: Option<Counter>,
    at_step: Vec<Counts>,
}

impl TrainHooks for StepCounts {
    fn event(&mut self, e: &TrainEvent) {
        if let TrainEvent::Progress {
            phase: Phase::Training,
            ..
        } = e
        {
            self.at_step
                .push(self.counter.as_ref().map(Counter::read).unwrap_or_default());
        }
    }
}

/// Launches and readbacks of 4 greedy tokens decoded with the KV cache after an 8-token prompt
/// (kernels compiled by the prompt's step).
async fn decode_counts(lm: &LanguageModel) -> Counts {
    let mut cache = KvCache::default();
    let prompt: Vec<u32> = (0..8).map(|i| 100 + i * 37).collect();
    let mut next = read_i64(lm.step(&prompt, &mut cache).argmax(1))
        .await
        .unwrap()[0] as u32;
    let c = Counter::start();
    for _ in 0..4 {
        next = read_i64(lm.step(&[next], &mut cache).argmax(1))
            .await
            .unwrap()[0] as u32;
    }
    c.finish()
}

/// The kernels `run` launches, by name, counted while it runs.
async fn kernels_of<F: std::future::Future<Output = ()>>(
    run: impl FnOnce() -> F,
) -> std::collections::BTreeSet<&'static str> {
    let c = Counter::start();
    run().await;
    let names = c.kernels().into_iter().map(|(name, _)| name).collect();
    drop(c);
    names
}

/// Asserts that every kernel in `asked` (what `what` launched) is in `warmed`.
fn assert_warmed(
    asked: &std::collections::BTreeSet<&'static str>,
    warmed: &std::collections::BTreeSet<&'static str>,
    what: &str,
) {
    let missing: Vec<_> = asked.difference(warmed).collect();
    assert!(
        missing.is_empty(),
        "{what} launched kernels the warm-up did not: {missing:?}"
    );
}

/// The warm-up the engine runs after a load on WebGPU (`pipelines::warm`) launches every kernel
/// that a first request then launches (one text; a batch of texts past the row kernel's rows; a
/// generation), the row kernel and the tiled product among them, so that the browser has compiled
/// them before the user asks.
#[wasm_bindgen_test]
async fn webgpu_warm_up_launches_the_kernels_of_a_first_request() {
    use tunelab::pipelines::warm;
    let compute = webgpu().await;
    let device = &compute.device;
    let clf = TextClassifier::load(&tiny_bert(), device).unwrap();
    let warmed = kernels_of(|| async { warm::classifier(&clf).await.unwrap() }).await;
    let reviews: Vec<String> = (0..12)
        .map(|i| format!("review {i}: the acting was fine, the story dragged on and on, and the ending came far too late for anyone to care"))
        .collect();
    let reviews: Vec<&str> = reviews.iter().map(|r| &**r).collect();
    let asked = kernels_of(|| async {
        clf.logits(&["great film"]).await.unwrap();
        clf.logits(&reviews).await.unwrap();
    })
    .await;
    assert_warmed(&asked, &warmed, "the classifier's first requests");
    for kernel in ["matmul_rows_kernel", "gemm_kernel"] {
        assert!(
            warmed.iter().any(|k| k.contains(kernel)),
            "the warm-up launched no {kernel}: {warmed:?}"
        );
    }

    let lm = LanguageModel::load(&tiny_gpt2(), device, u64::MAX).unwrap();
    let warmed = kernels_of(|| async { warm::language_model(&lm).await.unwrap() }).await;
    let prompt: Vec<u32> = (0..12).map(|i| 100 + i * 37).collect();
    let cfg = GenerationConfig {
        max_new_tokens: 4,
        ..GenerationConfig::default()
    };
    let asked = kernels_of(|| async {
        generate_ids(&lm, &prompt, &cfg, &mut |_| true)
            .await
            .unwrap();
    })
    .await;
    assert_warmed(&asked, &warmed, "a first generation");
}

/// Launches and readbacks per unit of work: figures that do not depend on the machine, so the
/// browser's SwiftShader tracks them as a GPU would (`scripts/bench.sh gpu` prints the same
/// natively). Each bound is the count this engine reaches, with a little room: a change that
/// launches many more kernels or reads back more often fails here.
#[wasm_bindgen_test]
async fn webgpu_launches_and_readbacks_per_forward_token_and_training_step() {
    let compute = webgpu().await;
    let device = &compute.device;

    // One classification (tiny-bert, 2 layers): kernels compiled by a first call.
    let clf = TextClassifier::load(&tiny_bert(), device).unwrap();
    clf.logits(&["warm up the kernels"]).await.unwrap();
    let c = Counter::start();
    clf.logits(&["great film"]).await.unwrap();
    let forward = c.finish();

    // Greedy decoding (tiny-gpt2) with the KV cache.
    let lm = LanguageModel::load(&tiny_gpt2(), device, u64::MAX).unwrap();
    let decode = decode_counts(&lm).await;

    // The same for a Llama-family decoder (tiny-qwen3, 2 layers: grouped-query attention,
    // per-head query/key norms, rotary positions, SwiGLU).
    let qwen3 = LanguageModel::load(
        &files(
            include_bytes!("fixtures/models/tiny-qwen3/config.json"),
            include_bytes!("fixtures/models/tiny-qwen3/tokenizer.json"),
            include_bytes!("fixtures/models/tiny-qwen3/model.safetensors"),
        ),
        device,
        u64::MAX,
    )
    .unwrap();
    let llama_decode = decode_counts(&qwen3).await;

    // Full fine-tuning (tiny-bert), 12 steps of batch 2, logging every 5 steps.
    let texts = [
        "great film",
        "awful film",
        "loved it",
        "hated it",
        "wonderful acting",
        "terrible acting",
        "a joy",
        "a bore",
        "superb",
        "dreadful",
        "brilliant story",
        "dull story",
        "so good",
        "so bad",
        "fantastic",
        "horrible",
        "a delight",
        "a mess",
        "moving",
        "tedious",
        "touching",
        "boring",
        "charming",
        "lifeless",
    ];
    let train = Dataset {
        texts: texts
            .iter()
            .map(|s| tunelab::data::Text::from(*s))
            .collect(),
        labels: (0..texts.len()).map(|i| 1 - i % 2).collect(),
        label_names: vec!["NEGATIVE".into(), "POSITIVE".into()],
    };
    let args = TrainingArgs {
        mode: Mode::Full,
        num_train_epochs: 1,
        per_device_train_batch_size: 2,
        logging_steps: 5,
        ..TrainingArgs::default()
    };
    let model = TextClassifier::load(&tiny_bert(), device).unwrap().model;
    let tokenizer = tiny_bert().tokenizer().unwrap();
    let mut hooks = StepCounts {
        counter: Some(Counter::start()),
        ..Default::default()
    };
    let empty = Dataset {
        texts: vec![],
        labels: vec![],
        label_names: train.label_names.clone(),
    };
    fine_tune(model, &tokenizer, &train, &empty, &args, device, &mut hooks)
        .await
        .unwrap();
    let steps: Vec<Counts> = hooks
        .at_step
        .windows(2)
        .map(|w| Counts {
            launches: w[1].launches - w[0].launches,
            reads: w[1].reads - w[0].reads,
        })
        .collect();
    let (step_launches, _) = Counts {
        launches: steps[5..9].iter().map(|c| c.launches).sum(),
        reads: 0,
    }
    .per(4);
    console_log!(
        "WebGPU ({}): classify {forward:?}; decode per token {:?} (GPT-2), {:?} (Qwen3); training steps {:?}",
        compute.backend.describe(),
        decode.per(4),
        llama_decode.per(4),
        steps
    );
    assert_eq!(llama_decode.reads, 4, "one readback per decoded token");
    assert!(
        llama_decode.launches <= 4 * LLAMA_DECODE_LAUNCHES,
        "{llama_decode:?}"
    );
    assert_eq!(forward.reads, 1, "one readback per classification");
    assert_eq!(decode.reads, 4, "one readback per decoded token");
    let reads: Vec<u64> = steps.iter().map(|c| c.reads).collect();
    assert_eq!(
        reads,
        vec![0, 0, 0, 1, 0, 0, 0, 0, 1, 0, 1],
        "readbacks per training step"
    );
    assert!(forward.launches <= FORWARD_LAUNCHES, "{forward:?}");
    assert!(decode.launches <= 4 * DECODE_LAUNCHES, "{decode:?}");
    assert!(
        step_launches <= STEP_LAUNCHES as f64,
        "{step_launches} launches per step"
    );
}

/// transformers' 3-step AdamW trace (full fine-tuning of tiny-bert, train-trace) through
/// training's graph on WebGPU: the engine's GPU training kernels (layer norm, softmax, the linear
/// layers' epilogues, each with its backward kernel) and its GPU AdamW give transformers' losses
/// and weights.
#[wasm_bindgen_test]
async fn full_fine_tuning_on_webgpu_reproduces_the_adamw_trace() {
    use burn::module::Module;
    use burn::prelude::{Int, Tensor, TensorData};
    let g = include_bytes!("fixtures/golden/train-trace.golden.safetensors");
    let compute = webgpu().await;
    let ad = compute.device.clone().autodiff();
    let input = EncoderInput::new(&trace_batch(), &ad);
    let labels: Vec<i32> = golden(g, "labels").1.iter().map(|&v| v as i32).collect();
    let labels = Tensor::<1, Int>::from_data(TensorData::new(labels, [4]), &ad);
    let mut model = TextClassifier::load(&tiny_bert(), &compute.device)
        .unwrap()
        .model
        .train();
    let mut opt = tunelab::train::optim::AdamW::new(&model, trace_settings());
    let before = tunelab::model::flex::calls();
    let mut losses = Vec::new();
    for _ in 0..3 {
        let loss = tunelab::train::batches::cross_entropy(model.forward(&input), labels.clone());
        losses.push(read_f32(loss.clone()).await.unwrap()[0]);
        model = opt.step(1e-3, model, loss).0;
    }
    let engine_ops = tunelab::model::flex::calls() - before;
    let m = model.valid();
    let classifier = read_f32(m.head.classifier.weight.val().transpose())
        .await
        .unwrap();
    let query = read_f32(
        m.encoder.layers[0]
            .qkv
            .weight
            .val()
            .narrow(1, 0, 32)
            .transpose(),
    )
    .await
    .unwrap();
    let errors = [
        max_abs(&losses, &golden(g, "full.losses").1),
        max_abs(&classifier, &golden(g, "full.classifier.weight").1),
        max_abs(&query, &golden(g, "full.layer0.query.weight").1),
    ];
    console_log!(
        "WebGPU full fine-tuning trace: losses, classifier, layer 0 query max abs {errors:?}; {engine_ops} engine ops"
    );
    assert!(errors.iter().all(|e| *e <= 1e-4), "{errors:?}");
    assert!(engine_ops > 0, "the engine's GPU training kernels ran");
}

/// The PEFT adapter `tiny-bert-lora` (tests/fixtures/gen_lora_fixtures.py) by file name.
fn tiny_bert_lora(trained: bool) -> BTreeMap<String, Vec<u8>> {
    let (config, weights): (&[u8], &[u8]) = if trained {
        (
            include_bytes!("fixtures/models/tiny-bert-lora/adapter_config.json"),
            include_bytes!("fixtures/models/tiny-bert-lora/adapter_model.safetensors"),
        )
    } else {
        (
            include_bytes!("fixtures/models/tiny-bert-lora-init/adapter_config.json"),
            include_bytes!("fixtures/models/tiny-bert-lora-init/adapter_model.safetensors"),
        )
    };
    BTreeMap::from([
        ("adapter_config.json".to_string(), config.to_vec()),
        ("adapter_model.safetensors".to_string(), weights.to_vec()),
    ])
}

/// train-trace's batch (the LoRA goldens' too).
fn trace_batch() -> EncodedBatch {
    let g = include_bytes!("fixtures/golden/train-trace.golden.safetensors");
    let (s, ids) = golden(g, "input_ids");
    let (_, mask) = golden(g, "attention_mask");
    let (_, types) = golden(g, "token_type_ids");
    EncodedBatch::from_rows(&rows(&s, &ids), &rows(&s, &mask), Some(&rows(&s, &types)))
}

/// A PEFT adapter applied to tiny-bert (merged into the weights, which on WebGPU keep the layout
/// the GPU kernels read) scores as PEFT does; and PEFT's 3-step LoRA trace from its initial
/// adapter, through autodiff on the device, gives PEFT's losses: on WebGPU and on the CPU in wasm.
#[wasm_bindgen_test]
async fn lora_adapters_apply_and_train_as_peft_on_webgpu_and_the_cpu() {
    use burn::module::Module;
    use burn::prelude::{Int, Tensor, TensorData};
    use tunelab::model::bert::{AdapterSource, PEFT_PREFIX};
    use tunelab::model::lora::PeftConfig;
    use tunelab::model::weights::Weights;
    let g = include_bytes!("fixtures/golden/lora-trace.golden.safetensors");
    let want_logits = golden(g, "logits").1;
    let want_losses = golden(g, "losses").1;
    for compute in [webgpu().await, Compute::cpu("test")] {
        let device = &compute.device;
        let files =
            tunelab::train::adapter::apply_adapter(&tiny_bert(), &tiny_bert_lora(true), device)
                .await
                .unwrap();
        let clf = TextClassifier::load(&ModelFiles::from_entries(files), device).unwrap();
        let input = EncoderInput::new(&trace_batch(), device);
        let logits = read_f32(clf.model.forward(&input)).await.unwrap();
        let applied = max_abs(&logits, &want_logits);
        // Training: PEFT's initial adapter on the frozen model, three AdamW steps.
        let ad = device.clone().autodiff();
        let lora = tiny_bert_lora(false);
        let peft = PeftConfig::parse(&lora["adapter_config.json"]).unwrap();
        let w = Weights::from_bytes(&lora["adapter_model.safetensors"], PEFT_PREFIX, &ad).unwrap();
        let base = TextClassifier::load(&tiny_bert(), device).unwrap().model;
        let (mut model, _) = base
            .train()
            .frozen_for_lora()
            .with_lora(&peft.settings, AdapterSource::Peft(&w))
            .unwrap();
        let input = EncoderInput::new(&trace_batch(), &ad);
        let labels = golden(
            include_bytes!("fixtures/golden/train-trace.golden.safetensors"),
            "labels",
        )
        .1;
        let labels: Vec<i32> = labels.iter().map(|&v| v as i32).collect();
        let labels = Tensor::<1, Int>::from_data(TensorData::new(labels, [4]), &ad);
        let mut opt = tunelab::train::optim::AdamW::new(&model, trace_settings());
        let mut losses = Vec::new();
        for _ in 0..3 {
            let loss =
                tunelab::train::batches::cross_entropy(model.forward(&input), labels.clone());
            losses.push(read_f32(loss.clone()).await.unwrap()[0]);
            model = opt.step(1e-3, model, loss).0;
        }
        let trained = max_abs(&losses, &want_losses);
        console_log!(
            "{}: adapter applied, logits max abs {applied:e}; LoRA trace losses max abs {trained:e}",
            compute.backend.describe()
        );
        assert!(
            applied <= 1e-4 && trained <= 1e-4,
            "{applied:e} {trained:e}"
        );
    }
}
