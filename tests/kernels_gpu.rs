//! The engine's fused GPU kernels against burn's composition on the CPU, natively on Vulkan (a
//! GPU, or Mesa's lavapipe without one): `cargo test --features gpu --test kernels_gpu`. The same
//! checks run in the browser on WebGPU in `tests/wasm.rs`, which `scripts/test.sh` runs.
#![cfg(feature = "gpu")]

mod common;

#[path = "common/kernel_checks.rs"]
mod kernel_checks;

#[path = "common/half_checks.rs"]
mod half_checks;

#[path = "common/training_checks.rs"]
mod training_checks;

use burn::prelude::*;

/// The Vulkan device, set up once for the process (a second setup is refused).
fn vulkan() -> Device {
    static DEVICE: std::sync::OnceLock<Device> = std::sync::OnceLock::new();
    DEVICE
        .get_or_init(|| {
            Device::wgpu_options()
                .init_with_setup()
                .expect("wgpu init (a Vulkan driver is needed: Mesa's lavapipe will do)")
                .0
        })
        .clone()
}

/// Held by each test for its whole run: launches are counted process-wide, so a test running
/// beside another would count the other's kernels too.
fn one_at_a_time() -> std::sync::MutexGuard<'static, ()> {
    static GPU: std::sync::Mutex<()> = std::sync::Mutex::new(());
    GPU.lock().unwrap_or_else(|e| e.into_inner())
}

#[test]
fn gpu_kernels_in_training_on_vulkan_give_burns_outputs_and_gradients() {
    let _gpu = one_at_a_time();
    let device = vulkan();
    let checks = pollster::block_on(training_checks::training_kernel_checks(&device));
    for c in &checks {
        println!(
            "{:<56} max abs {:.1e}, {} engine ops",
            c.name, c.max_abs, c.engine_ops
        );
    }
    training_checks::assert_training_checks(&checks, 1e-5);
    pollster::block_on(training_checks::dropout_check(&device));
    pollster::block_on(training_checks::attention_dropout_check(&device));
}

#[test]
fn fused_kernels_on_vulkan_match_the_composed_ops() {
    let _gpu = one_at_a_time();
    let device = vulkan();
    let checks = pollster::block_on(kernel_checks::fused_kernel_checks(&device));
    for c in &checks {
        println!(
            "{:<48} max abs {:.1e}, {} launches",
            c.name, c.max_abs, c.launches
        );
    }
    kernel_checks::assert_checks(&checks, 1e-4, true);
}

#[test]
fn half_precision_checkpoints_stay_f16_on_vulkan_and_give_the_cpus_outputs() {
    let _gpu = one_at_a_time();
    let device = vulkan();
    let dir = concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/tests/fixtures/models/tiny-qwen2"
    );
    let files = tunelab::hub::ModelFiles::from_dir(dir).unwrap();
    let checks = pollster::block_on(half_checks::half_checkpoint_checks(&device, &files));
    let f16 = tunelab::model::weights::half_on(&device);
    for c in &checks {
        println!(
            "{:<60} kept in f16: {}, max abs {:.1e}, step {:.1e}",
            c.name, c.kept_f16, c.max_abs, c.step_max_abs
        );
        assert_eq!(c.kept_f16, f16, "{}", c.name);
        assert!(
            c.max_abs <= c.tolerance && c.step_max_abs <= c.tolerance,
            "{}",
            c.name
        );
    }
}

/// Decoders in half precision on Vulkan (lavapipe has 16-bit floats), as WebGPU runs them where
/// the adapter has `shader-f16`: matrices, the KV cache and what the products read in f16, the
/// residual stream, sums, norms and softmaxes in f32. Against transformers' f32 goldens: the
/// logits within 1e-2, or within transformers' own error in f16 where that misses 1e-2
/// (`golden/half-precision.json`, `gen_half_reference.py`); the same argmax at every position of
/// the prompt; then 16 greedy steps fed the f32 run's tokens, each with the f32 run's next token
/// wherever its lead over the runner-up is more than three times that tolerance (a closer race
/// may go either way in f16, transformers' own included). `Precision::F32` on the same device:
/// within 1e-4 and transformers' greedy tokens.
#[test]
fn decoders_in_half_precision_stay_within_transformers_f16_error_with_the_same_tokens() {
    use tunelab::model::gpt2::KvCache;
    use tunelab::model::read_f32;
    use tunelab::prompt::generate::{generate_ids, GenerationConfig};
    use tunelab::prompt::{LanguageModel, Precision};
    let _gpu = one_at_a_time();
    let device = vulkan();
    let half = tunelab::model::weights::half_on(&device);
    println!("Vulkan computes in f16 here: {half}");
    // The best and the runner-up of a row of logits.
    let top2 = |row: &[f32]| {
        let mut best = (0, f32::MIN, f32::MIN);
        for (i, &x) in row.iter().enumerate() {
            if x > best.1 {
                best = (i, x, best.1);
            } else if x > best.2 {
                best.2 = x;
            }
        }
        (best.0, best.1 - best.2)
    };
    for name in ["tiny-gpt2", "tiny-llama", "tiny-qwen2", "tiny-qwen3"] {
        let (g, _) = common::golden(name);
        let files = tunelab::hub::ModelFiles::from_dir(common::fixture_model(name)).unwrap();
        let prompt = g["input_ids"].rows_u32().remove(0);
        let greedy = g["greedy_ids"].rows_u32().remove(0);
        let want = g["logits"].f32();
        let tolerance = half_checks::f16_tolerance(name);
        let f32_lm = LanguageModel::load_with(&files, &device, u64::MAX, Precision::F32).unwrap();
        let half_lm = LanguageModel::load_with(&files, &device, u64::MAX, Precision::Auto).unwrap();
        let vocab = f32_lm.model.vocab_size();
        let prompt_logits = |lm: &LanguageModel, expected: burn::tensor::DType| {
            let mut cache = KvCache::default();
            let hidden = lm.model.forward(lm.ids_tensor(&prompt), &mut cache);
            // The residual stream, and so the hidden states, stay f32.
            assert_eq!(
                hidden.dtype(),
                burn::tensor::DType::F32,
                "{name}: hidden states"
            );
            assert_eq!(cache.dtype(), Some(expected), "{name}: the KV cache's type");
            common::block_on(read_f32(lm.model.logits(hidden))).unwrap()
        };
        let f16 = if half {
            burn::tensor::DType::F16
        } else {
            burn::tensor::DType::F32
        };
        let exact = prompt_logits(&f32_lm, burn::tensor::DType::F32);
        let halved = prompt_logits(&half_lm, f16);
        let exact_max = common::max_abs_diff(&exact, &want);
        let half_max = common::max_abs_diff(&halved, &want);
        let same_argmax = halved
            .chunks(vocab)
            .zip(want.chunks(vocab))
            .all(|(a, b)| top2(a).0 == top2(b).0);
        // f32: transformers' greedy tokens.
        let cfg = GenerationConfig {
            max_new_tokens: greedy.len() - prompt.len(),
            do_sample: false,
            stop_at_eos: false,
            ..Default::default()
        };
        let out = common::block_on(generate_ids(&f32_lm, &prompt, &cfg, &mut |_| true)).unwrap();
        assert_eq!(out.ids, greedy[prompt.len()..], "{name} f32: greedy tokens");
        // f16 fed the f32 run's tokens, step by step.
        let (mut a, mut b) = (KvCache::default(), KvCache::default());
        let mut next = prompt.clone();
        let (mut checked, mut close) = (0, 0);
        for step in 0..16 {
            let x = common::block_on(read_f32(f32_lm.step(&next, &mut a))).unwrap();
            let y = common::block_on(read_f32(half_lm.step(&next, &mut b))).unwrap();
            let (token, lead) = top2(&x);
            let step_max = common::max_abs_diff(&x, &y);
            if (lead as f64) > 3.0 * tolerance {
                checked += 1;
                assert_eq!(top2(&y).0, token, "{name} f16: step {step}'s token");
            } else {
                close += 1;
            }
            assert!(
                step_max as f64 <= 2.0 * tolerance,
                "{name} f16: step {step}'s logits differ by {step_max:e}"
            );
            next = vec![token as u32];
        }
        println!(
            "{name:<11} logits max abs: f32 {exact_max:.1e}; f16 {half_max:.1e} (tolerance \
             {tolerance:.1e}), same argmax at every position: {same_argmax}; 16 steps: \
             {checked} with a clear lead, all the same token; {close} close"
        );
        assert!(exact_max <= 1e-4, "{name} f32: logits {exact_max:e}");
        assert!(
            half_max as f64 <= tolerance,
            "{name} f16: logits {half_max:e} (tolerance {tolerance:e})"
        );
        assert!(same_argmax, "{name} f16: the argmax of a position");
        assert!(
            checked >= 12,
            "{name}: too few steps with a clear lead ({checked})"
        );
    }
}

/// The linear kernels with f16 activations: the tiled kernel (300 rows, split along a shared
/// dimension of 1024) and the row kernel (3 rows), each with an f32 bias and an f16 residual
/// written in f16; and the LM head's product written in f32. Against the CPU's f32 product of
/// the same (f16-rounded) values: within f16's rounding of the output.
#[test]
fn linear_kernels_take_and_write_f16_activations() {
    use burn::tensor::DType;
    use tunelab::model::{kernels, read_f32};
    let _gpu = one_at_a_time();
    let device = vulkan();
    if !tunelab::model::weights::half_on(&device) {
        println!("no f16 on this device: nothing to check");
        return;
    }
    let (m, k, n) = (300, 1024, 40);
    let rounded = |v: Vec<f32>| -> Vec<f32> {
        v.into_iter()
            .map(|x| half::f16::from_f32(x).to_f32())
            .collect()
    };
    let x = rounded(kernel_checks::values(m * k, 1, 1.0));
    let w = rounded(kernel_checks::values(k * n, 2, 0.05));
    let r = rounded(kernel_checks::values(m * n, 3, 1.0));
    let bias = kernel_checks::values(n, 4, 1.0);
    let on = |d: &Device, dtype: DType| {
        let t = |v: &Vec<f32>, shape: [usize; 2]| {
            Tensor::<2>::from_data(TensorData::new(v.clone(), shape), d).cast(dtype)
        };
        let lin = burn::nn::Linear {
            weight: burn::module::Param::from_tensor(t(&w, [k, n])),
            bias: Some(burn::module::Param::from_tensor(Tensor::from_data(
                TensorData::new(bias.clone(), [n]),
                d,
            ))),
        };
        (lin, t(&x, [m, k]), t(&r, [m, n]))
    };
    let (lin, x16, r16) = on(&device, DType::F16);
    let (lin32, xc, rc) = on(&Device::flex(), DType::F32);
    let want = common::block_on(read_f32(kernels::linear_residual(
        &lin32,
        xc.clone(),
        rc,
        None,
    )))
    .unwrap();
    let plain = common::block_on(read_f32(xc.matmul(lin32.weight.val()))).unwrap();
    // f16's rounding of the output: half a unit in the last place, 2^-11 relative.
    let within = |got: &[f32], want: &[f32], what: &str| {
        for (i, (g, w)) in got.iter().zip(want).enumerate() {
            assert!(
                (g - w).abs() <= w.abs() * 2f32.powi(-10) + 1e-3,
                "{what}: [{i}] {g} vs {w}"
            );
        }
        println!("{what}: max abs {:.1e}", common::max_abs_diff(got, want));
    };
    let tiled = kernels::linear_residual(&lin, x16.clone(), r16.clone(), None);
    assert_eq!(tiled.dtype(), DType::F16);
    within(
        &common::block_on(read_f32(tiled)).unwrap(),
        &want,
        "300 rows (tiled, split), bias and residual, in f16",
    );
    let few =
        kernels::linear_residual(&lin, x16.clone().narrow(0, 0, 3), r16.narrow(0, 0, 3), None);
    assert_eq!(few.dtype(), DType::F16);
    within(
        &common::block_on(read_f32(few)).unwrap(),
        &want[..3 * n],
        "3 rows (row kernel), bias and residual, in f16",
    );
    for rows in [3, m] {
        let logits = kernels::matmul_rows_f32(x16.clone().narrow(0, 0, rows), lin.weight.val());
        assert_eq!(logits.dtype(), DType::F32);
        let got = common::block_on(read_f32(logits)).unwrap();
        let max = common::max_abs_diff(&got, &plain[..rows * n]);
        println!("{rows} rows, f16 in, f32 out: max abs {max:.1e}");
        assert!(max <= 1e-3, "{rows} rows in f32: {max:e}");
    }
}

/// Encoders loaded for inference in half precision on Vulkan: their matrices in f16, the
/// queries, keys, values and feed-forward activations their products write in f16 (the
/// post-norm families), the residual stream, norms, softmaxes and the head in f32. Against
/// transformers' f32 goldens: the logits within 1e-2 (transformers' own f16 lands within
/// 0.7–3.8e-3 on these, `golden/half-precision.json`) with every row's label; `Precision::F32`
/// on the same device within 1e-4.
#[test]
fn encoders_in_half_precision_stay_within_1e_2_of_transformers_with_the_same_labels() {
    use tunelab::model::bert::EncoderInput;
    use tunelab::pipelines::TextClassifier;
    use tunelab::prompt::Precision;
    let _gpu = one_at_a_time();
    let device = vulkan();
    let half = tunelab::model::weights::half_on(&device);
    let argmax =
        |row: &[f32]| (0..row.len()).fold(0, |best, i| if row[i] > row[best] { i } else { best });
    for name in [
        "tiny-bert",
        "tiny-distilbert",
        "tiny-roberta",
        "tiny-xlm-roberta",
        "tiny-modernbert",
    ] {
        let (g, _) = common::golden(name);
        let files = tunelab::hub::ModelFiles::from_dir(common::fixture_model(name)).unwrap();
        let ids = g["input_ids"].rows_u32();
        let mask = g["attention_mask"].rows_u32();
        let types = g.get("token_type_ids").map(|t| t.rows_u32());
        let batch = tunelab::text::EncodedBatch::from_rows(&ids, &mask, types.as_deref());
        let want = g["logits"].f32();
        let labels = want.len() / ids.len();
        for (precision, tolerance) in [
            (Precision::Auto, half_checks::f16_tolerance(name)),
            (Precision::F32, 1e-4),
        ] {
            let c = TextClassifier::load_with(&files, &device, precision).unwrap();
            let f16 = half && precision == Precision::Auto;
            let expected = if f16 {
                burn::tensor::DType::F16
            } else {
                burn::tensor::DType::F32
            };
            let layer = &c.model.encoder.layers[0];
            assert_eq!(
                layer.ffn_in.weight.val().dtype(),
                expected,
                "{name}: matrices"
            );
            assert_eq!(
                c.model.head.classifier.weight.val().dtype(),
                burn::tensor::DType::F32,
                "{name}: the head"
            );
            let input = EncoderInput::new(&batch, &device);
            let logits =
                common::block_on(tunelab::model::read_f32(c.model.forward(&input))).unwrap();
            let max = common::max_abs_diff(&logits, &want);
            let same = logits
                .chunks(labels)
                .zip(want.chunks(labels))
                .all(|(a, b)| argmax(a) == argmax(b));
            println!(
                "{name:<16} {precision:?} ({expected:?} matrices): logits max abs {max:.1e} \
                 (tolerance {tolerance:.0e}), every label the same: {same}"
            );
            assert!(
                max as f64 <= tolerance,
                "{name} {precision:?}: logits {max:e}"
            );
            assert!(same, "{name} {precision:?}: a row's label");
        }
    }
}
