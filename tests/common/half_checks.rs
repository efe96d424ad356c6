//! Half-precision checkpoints on a GPU: kept in f16 where the device computes in it (WebGPU's
//! `shader-f16`; natively Vulkan's 16-bit floats, Mesa's lavapipe included), else converted to
//! f32. Either way the outputs are those of the same file on the CPU (which converts it to
//! f32): within 1e-4 where f32 activations read each f16 weight as the f32 it stands for, within
//! 1e-2 for a decoder whose activations are in f16 too. Shared by
//! the browser test (WebGPU on SwiftShader, which has no `shader-f16`: the converted path) and
//! the native one (`--features gpu`: the kept path).

use burn::prelude::*;
use burn::tensor::DType;
use safetensors::{Dtype, SafeTensors};
use tunelab::hub::ModelFiles;
use tunelab::model::gpt2::KvCache;
use tunelab::model::{kernels, read_f32};
use tunelab::prompt::{Decoder, LanguageModel};

/// `f32_checkpoint` (safetensors bytes) with every tensor in `dtype` (F16 or BF16), as the
/// Hub's half-precision checkpoints are.
pub fn in_half(f32_checkpoint: &[u8], dtype: Dtype) -> Vec<u8> {
    let st = SafeTensors::deserialize(f32_checkpoint).unwrap();
    let converted: Vec<(String, Vec<usize>, Vec<u8>)> = st
        .tensors()
        .into_iter()
        .map(|(name, view)| {
            let bytes = view
                .data()
                .chunks_exact(4)
                .flat_map(|c| {
                    let x = f32::from_le_bytes([c[0], c[1], c[2], c[3]]);
                    match dtype {
                        Dtype::BF16 => half::bf16::from_f32(x).to_le_bytes(),
                        _ => half::f16::from_f32(x).to_le_bytes(),
                    }
                })
                .collect();
            (name, view.shape().to_vec(), bytes)
        })
        .collect();
    let views: Vec<(String, safetensors::tensor::TensorView<'_>)> = converted
        .iter()
        .map(|(n, s, b)| {
            let view = safetensors::tensor::TensorView::new(dtype, s.clone(), b).unwrap();
            (n.clone(), view)
        })
        .collect();
    safetensors::serialize(views, None).unwrap()
}

/// What [`half_checkpoint_checks`] found for one file.
pub struct HalfCheck {
    pub name: String,
    /// The matrices stayed in f16 on the GPU.
    pub kept_f16: bool,
    /// The largest difference of the prompt's logits from the CPU's.
    pub max_abs: f64,
    /// The KV-cache step after the prompt, likewise.
    pub step_max_abs: f64,
    /// What the two may differ by: for a decoder in half precision (activations in f16 too,
    /// [`tunelab::prompt::Precision`]) 1e-2, or transformers' own error in f16 on the same
    /// model where that is larger ([`f16_tolerance`]); 1e-4 where only the weights are rounded.
    pub tolerance: f64,
}

/// What a tiny decoder `name` in half precision may differ from f32 by: 1e-2, or transformers'
/// own error with `dtype=float16` on the same fixture where that is larger
/// (`golden/half-precision.json`, written by `gen_half_reference.py`; N(0, 0.2) weights give
/// logits up to 8.5, and transformers' f16 misses 1e-2 on all four).
pub fn f16_tolerance(name: &str) -> f64 {
    let reference: serde_json::Value =
        serde_json::from_str(include_str!("../fixtures/golden/half-precision.json")).unwrap();
    reference["models"][name]["max_abs"]
        .as_f64()
        .unwrap_or_else(|| panic!("{name}: no f16 reference"))
        .max(1e-2)
}

fn largest_difference(a: &[f32], b: &[f32]) -> f64 {
    assert_eq!(a.len(), b.len());
    a.iter()
        .zip(b)
        .map(|(x, y)| (x - y).abs() as f64)
        .fold(0.0, f64::max)
}

/// `files` (tiny-qwen2: biases, an untied head) saved in f16 and in bf16, each loaded on `gpu`
/// (its vocabulary tables in chunks of 64 KiB, as a small binding limit would cut them) and on
/// the CPU: the logits of a prompt and of a cached step after it. Then the product a long
/// prompt takes past the row kernel, with an f16 weight.
pub async fn half_checkpoint_checks(gpu: &Device, files: &ModelFiles) -> Vec<HalfCheck> {
    let prompt: Vec<u32> = vec![5, 17, 230, 41, 7, 1999, 64, 3];
    let mut checks = Vec::new();
    for (name, dtype) in [("f16", Dtype::F16), ("bf16", Dtype::BF16)] {
        let mut half = files.clone();
        half.weights = in_half(&files.weights, dtype);
        let mut outputs = Vec::new();
        let mut kept = false;
        for (device, binding) in [(gpu.clone(), 64 << 10), (Device::flex(), u64::MAX)] {
            let lm = LanguageModel::load(&half, &device, binding).unwrap();
            if device == *gpu {
                let Decoder::Llama(m) = &lm.model else {
                    panic!("a Llama-family decoder")
                };
                let types: Vec<DType> = [
                    m.embed_tokens.chunks[0].val().dtype(),
                    m.lm_head.as_ref().unwrap().chunks[0].val().dtype(),
                    m.layers[0].q_proj.weight.val().dtype(),
                    m.layers[0].down_proj.weight.val().dtype(),
                ]
                .into();
                kept = types.iter().all(|t| *t == DType::F16);
                assert!(
                    kept || types.iter().all(|t| *t == DType::F32),
                    "{name}: {types:?}"
                );
                // Norms and biases stay f32.
                assert_eq!(m.norm.weight.val().dtype(), DType::F32);
                assert_eq!(
                    m.layers[0].q_proj.bias.as_ref().unwrap().val().dtype(),
                    DType::F32
                );
            }
            let mut cache = KvCache::default();
            let hidden = lm.model.forward(lm.ids_tensor(&prompt), &mut cache);
            let logits = read_f32(lm.model.logits(hidden)).await.unwrap();
            let step = read_f32(lm.step(&[42], &mut cache)).await.unwrap();
            outputs.push((logits, step));
        }
        checks.push(HalfCheck {
            name: format!("tiny-qwen2 in {name}"),
            kept_f16: kept,
            max_abs: largest_difference(&outputs[0].0, &outputs[1].0),
            step_max_abs: largest_difference(&outputs[0].1, &outputs[1].1),
            tolerance: if kept {
                f16_tolerance("tiny-qwen2")
            } else {
                1e-4
            },
        });
    }
    // 300 rows (more than the row kernel takes): burn's matmul on an f32 copy of the weight.
    let n = 300 * 64;
    let x: Vec<f32> = (0..n)
        .map(|i| ((i * 37 % 101) as f32 - 50.0) / 50.0)
        .collect();
    let w: Vec<half::f16> = (0..64 * 40)
        .map(|i| half::f16::from_f32(((i * 13 % 29) as f32 - 14.0) / 14.0))
        .collect();
    let w32: Vec<f32> = w.iter().map(|v| v.to_f32()).collect();
    let on = |device: &Device, dtype: DType| -> (Tensor<2>, Tensor<2>) {
        let x = Tensor::from_data(TensorData::new(x.clone(), [300, 64]), device);
        let w = match dtype {
            DType::F16 if tunelab::model::weights::half_on(device) => {
                Tensor::from_data(TensorData::new(w.clone(), [64, 40]), (device, DType::F16))
            }
            _ => Tensor::from_data(TensorData::new(w32.clone(), [64, 40]), device),
        };
        (x, w)
    };
    let (x16, w16) = on(gpu, DType::F16);
    let kept = w16.dtype() == DType::F16;
    let got = read_f32(kernels::matmul_rows(x16.clone(), w16.clone()))
        .await
        .unwrap();
    let (xc, wc) = on(&Device::flex(), DType::F32);
    let want = read_f32(xc.matmul(wc)).await.unwrap();
    // And a few rows: the row kernel reading f16.
    let few = read_f32(kernels::matmul_rows(x16.narrow(0, 0, 3), w16))
        .await
        .unwrap();
    checks.push(HalfCheck {
        name: "matmul 300 x 64 x 40, f16 weight (3 rows: the row kernel)".into(),
        kept_f16: kept,
        max_abs: largest_difference(&got, &want),
        step_max_abs: largest_difference(&few, &want[..3 * 40]),
        tolerance: 1e-4,
    });
    checks
}
