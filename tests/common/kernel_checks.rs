//! The engine's fused kernels (`tunelab::model::kernels`: on a GPU, or on the CPU backend) against
//! burn's composition of the same ops on the CPU backend (`kernels::composed`), on shapes that exercise the kernels' edges: rows longer than a cube
//! (strided loops), dimensions not a multiple of anything, broadcast biases, hidden keys, and more
//! rows than fit a one-dimensional grid. Shared by the browser test (WebGPU on SwiftShader) and the
//! native one (`--features gpu`, Vulkan).

use burn::module::Param;
use burn::nn::Linear;
use burn::prelude::*;
use tunelab::counts::Counter;
use tunelab::model::{flex, kernels};
use tunelab::model::{read_f32, read_i64, Activation};

/// Deterministic values in [-scale, scale).
pub fn values(n: usize, seed: u64, scale: f32) -> Vec<f32> {
    let mut s = seed
        .wrapping_mul(6364136223846793005)
        .wrapping_add(1442695040888963407);
    (0..n)
        .map(|_| {
            s = s
                .wrapping_mul(6364136223846793005)
                .wrapping_add(1442695040888963407);
            ((s >> 40) as f32 / (1u64 << 24) as f32 * 2.0 - 1.0) * scale
        })
        .collect()
}

pub fn tensor<const D: usize>(
    shape: [usize; D],
    seed: u64,
    scale: f32,
    device: &Device,
) -> Tensor<D> {
    let n = shape.iter().product();
    Tensor::from_data(TensorData::new(values(n, seed, scale), shape), device)
}

/// One comparison: the name, the largest absolute difference from the composition, how many
/// kernels the GPU launched for it, and how many of the engine's CPU kernels ran for it.
pub struct Check {
    pub name: String,
    pub max_abs: f64,
    pub launches: u64,
    pub cpu_kernels: u64,
}

/// `op` on the inputs `make` builds, on the CPU and on `gpu`; launches are counted for `op` alone.
async fn compare<I, const D: usize>(
    name: String,
    gpu: &Device,
    make: impl Fn(&Device) -> I,
    op: impl Fn(I) -> Tensor<D>,
) -> Check {
    compare_all(name, gpu, make, |i| vec![op(i)]).await
}

/// [`compare`] for an op with several outputs (compared one after the other).
async fn compare_all<I, const D: usize>(
    name: String,
    gpu: &Device,
    make: impl Fn(&Device) -> I,
    op: impl Fn(I) -> Vec<Tensor<D>>,
) -> Check {
    let mut expected = Vec::new();
    for t in kernels::composed(|| op(make(&Device::flex()))) {
        expected.extend(read_f32(t).await.expect("cpu read"));
    }
    let inputs = make(gpu);
    let counter = Counter::start();
    let cpu_before = flex::calls();
    let outs = op(inputs);
    let launches = counter.read().launches;
    let cpu_kernels = flex::calls() - cpu_before;
    let mut got = Vec::new();
    for t in outs {
        got.extend(read_f32(t).await.expect("gpu read"));
    }
    assert_eq!(got.len(), expected.len(), "{name}: length");
    let max_abs = got
        .iter()
        .zip(&expected)
        .map(|(a, b)| (a - b).abs() as f64)
        .fold(0.0, f64::max);
    assert!(
        got.iter().all(|v| v.is_finite()),
        "{name}: non-finite output"
    );
    Check {
        name,
        max_abs,
        launches,
        cpu_kernels,
    }
}

/// [`compare`] for an op with an integer output: the number of positions that differ.
async fn compare_ints<I, const D: usize>(
    name: String,
    gpu: &Device,
    make: impl Fn(&Device) -> I,
    op: impl Fn(I) -> Tensor<D, Int>,
) -> Check {
    let expected = read_i64(kernels::composed(|| op(make(&Device::flex()))))
        .await
        .expect("cpu read");
    let inputs = make(gpu);
    let counter = Counter::start();
    let out = op(inputs);
    let launches = counter.read().launches;
    let got = read_i64(out).await.expect("gpu read");
    assert_eq!(got.len(), expected.len(), "{name}: length");
    let differ = got.iter().zip(&expected).filter(|(a, b)| a != b).count();
    Check {
        name,
        max_abs: differ as f64,
        launches,
        cpu_kernels: 0,
    }
}

/// Every check, run on `gpu`.
pub async fn fused_kernel_checks(gpu: &Device) -> Vec<Check> {
    let mut out = Vec::new();
    for (shape, eps) in [
        ([3, 5, 37], 1e-5),
        ([2, 1, 1000], 1e-12),
        ([70_000, 1, 3], 1e-5),
    ] {
        out.push(
            compare(
                format!("layer_norm {shape:?}"),
                gpu,
                |d| {
                    (
                        tensor(shape, 1, 3.0, d),
                        tensor([shape[2]], 2, 1.0, d),
                        tensor([shape[2]], 3, 1.0, d),
                    )
                },
                |(x, gamma, beta)| kernels::layer_norm(x, gamma, beta, eps),
            )
            .await,
        );
    }
    // RMSNorm (Llama's, Qwen's): rows longer than a cube, and more rows than a 1-D grid holds.
    for (shape, eps) in [([3, 5, 300], 1e-5), ([70_000, 1, 3], 1e-6)] {
        out.push(
            compare(
                format!("rms_norm {shape:?}"),
                gpu,
                |d| (tensor(shape, 31, 3.0, d), tensor([shape[2]], 32, 1.0, d)),
                |(x, w)| kernels::rms_norm(x, w, eps),
            )
            .await,
        );
    }
    // Rotary positions on the heads as the model makes them (a strided view of [b, t, h, dh]).
    out.push(
        compare(
            "rotary [2, 4, 5, 16] from a strided view".into(),
            gpu,
            |d| {
                (
                    tensor([2, 5, 4, 16], 33, 2.0, d).swap_dims(1, 2),
                    tensor([1, 1, 5, 16], 34, 1.0, d),
                    tensor([1, 1, 5, 16], 35, 1.0, d),
                )
            },
            |(x, cos, sin)| kernels::rotary(x, &cos, &sin),
        )
        .await,
    );
    // A padding bias [b, 1, 1, n] (one key hidden per row of the batch's second example) and a
    // causal one [1, 1, t, n] over a buffer longer than the queries see.
    for (shape, causal) in [([2, 3, 5, 200], false), ([1, 4, 3, 64], true)] {
        out.push(
            compare(
                format!("attention_probs {shape:?} causal {causal}"),
                gpu,
                |d| {
                    let [b, _, t, n] = shape;
                    let bias = if causal {
                        Tensor::<4>::zeros([1, 1, t, n], d).mask_fill(
                            Tensor::<2, Bool>::tril_mask([t, n], 40, d).reshape([1, 1, t, n]),
                            f32::MIN,
                        )
                    } else {
                        let mut hidden = vec![0.0f32; b * n];
                        hidden[n + 7] = f32::MIN;
                        hidden[2 * n - 1] = f32::MIN;
                        Tensor::from_data(TensorData::new(hidden, [b, 1, 1, n]), d)
                    };
                    (tensor(shape, 4, 8.0, d), bias)
                },
                |(scores, bias)| kernels::attention_probs(scores, 0.125, bias),
            )
            .await,
        );
    }
    // Decoding's attention: one query (and three) over a cache of 64 keys, the last ones hidden,
    // with the query a strided view as the model makes it; 4 key/value heads, and 2 (grouped-query
    // attention: the kernel reads each for its group, the composition repeats them). Then a
    // prompt's 20 queries at once, whose last sees key 49 (the CPU's products skip the hidden
    // keys past it, the unused part of the cache).
    for (t, kv) in [(1, 4), (3, 4), (1, 2), (3, 2), (20, 4), (20, 2)] {
        let past = if t > 3 { 30 } else { 50 };
        let grouped = if kv < 4 { ", 4 heads over 2" } else { "" };
        out.push(
            compare(
                format!("attention t {t} over 64 keys{grouped}"),
                gpu,
                |d| {
                    let seed = if kv < 4 { 36 } else { 6 };
                    let q = tensor([2, t, 4, 16], seed, 2.0, d).swap_dims(1, 2);
                    let bias = Tensor::<4>::zeros([1, 1, t, 64], d).mask_fill(
                        Tensor::<2, Bool>::tril_mask([t, 64], past, d).reshape([1, 1, t, 64]),
                        f32::MIN,
                    );
                    (
                        q,
                        tensor([2, kv, 64, 16], seed + 1, 2.0, d),
                        tensor([2, kv, 64, 16], seed + 2, 2.0, d),
                        bias,
                    )
                },
                |(q, k, v, bias)| kernels::attention(q, k, v, 0.25, bias),
            )
            .await,
        );
    }
    // An encoder's attention, two ways from the same inputs: the heads split from one fused
    // query/key/value matmul (views of its output) then `attention`, and outside training on a
    // GPU one kernel on the fused output (`self_attention`; the CPU splits the heads). Every
    // query over every key, a padding bias; heads 12 wide (not a multiple of the CPU kernels' 8
    // lanes), 32 and 64, and a batch big enough to be spread over threads natively, whose last
    // example hides every key (as the composition does, its weights are then uniform).
    for (b, heads, t, dh, all_hidden) in [
        (2, 3, 9, 12, false),
        (4, 12, 40, 32, true),
        (2, 2, 17, 64, false),
    ] {
        let inputs = |d: &Device| {
            let width = heads * dh;
            let lin = Linear {
                weight: Param::from_tensor(tensor([width, 3 * width], 25, 0.3, d)),
                bias: Some(Param::from_tensor(tensor([3 * width], 26, 0.3, d))),
            };
            let mut hidden = vec![0.0f32; b * t];
            hidden[t + 2] = f32::MIN;
            hidden[2 * t - 1] = f32::MIN;
            if all_hidden {
                hidden[(b - 1) * t..].fill(f32::MIN);
            }
            let bias = Tensor::from_data(TensorData::new(hidden, [b, 1, 1, t]), d);
            (lin, tensor([b, t, width], 27, 1.0, d), bias)
        };
        let scale = 1.0 / (dh as f64).sqrt();
        out.push(
            compare(
                format!("attention [{b}, {heads}, {t}, {dh}] from split_heads, padding"),
                gpu,
                inputs,
                |(lin, x, bias)| {
                    let (q, k, v) = kernels::split_heads(&lin, x, heads);
                    kernels::attention(q, k, v, scale, bias)
                },
            )
            .await,
        );
        out.push(
            compare(
                format!("self_attention [{b}, {heads}, {t}, {dh}] from the fused output, padding"),
                gpu,
                inputs,
                |(lin, x, bias)| match kernels::self_attention(
                    kernels::linear(&lin, x),
                    heads,
                    scale,
                    &bias,
                ) {
                    Ok(context) => context,
                    Err(qkv) => {
                        let (q, k, v) = kernels::split_qkv(qkv, heads);
                        kernels::attention(q, k, v, scale, bias)
                    }
                },
            )
            .await,
        );
    }
    // The query, key and value heads of one step, the keys and values written into filled cache
    // buffers at position 5 (the rest of the buffers must stay as they were).
    for t in [1, 3] {
        out.push(
            compare_all(
                format!("heads_into_cache t {t} at 5"),
                gpu,
                |d| {
                    let lin = Linear {
                        weight: Param::from_tensor(tensor([16, 48], 14, 0.5, d)),
                        bias: Some(Param::from_tensor(tensor([48], 15, 0.5, d))),
                    };
                    let cache = (
                        tensor([2, 4, 64, 4], 16, 1.0, d),
                        tensor([2, 4, 64, 4], 17, 1.0, d),
                    );
                    (lin, tensor([2, t, 16], 18, 1.0, d), cache)
                },
                |(lin, x, cache)| {
                    let (q, k, v) = kernels::heads_into_cache(&lin, x, 4, cache, 5);
                    vec![q, k, v]
                },
            )
            .await,
        );
    }
    out.push(
        compare_all(
            "split_heads [2, 7, 16], 4 heads".into(),
            gpu,
            |d| {
                let lin = Linear {
                    weight: Param::from_tensor(tensor([16, 48], 19, 0.5, d)),
                    bias: Some(Param::from_tensor(tensor([48], 20, 0.5, d))),
                };
                (lin, tensor([2, 7, 16], 21, 1.0, d))
            },
            |(lin, x)| {
                let (q, k, v) = kernels::split_heads(&lin, x, 4);
                vec![q, k, v]
            },
        )
        .await,
    );
    // One row and a few, against weights stored [k, n] and read transposed (the LM head's, and
    // a decoder's on the CPU: a dot product per weight row up to 4 rows); 20 rows for wasm's
    // packed product, which packs the transposed view.
    for (m, transposed) in [
        (1, false),
        (3, false),
        (1, true),
        (3, true),
        (5, true),
        (8, true),
        (20, true),
    ] {
        out.push(
            compare(
                format!("matmul_rows [{m}, 200] x [200, 333] transposed {transposed}"),
                gpu,
                |d| {
                    let w = if transposed {
                        tensor([333, 200], 22, 0.5, d).transpose()
                    } else {
                        tensor([200, 333], 22, 0.5, d)
                    };
                    (tensor([m, 200], 23, 1.0, d), w)
                },
                |(x, w)| kernels::matmul_rows(x, w),
            )
            .await,
        );
    }
    // GPT-2's vocabulary, and ties (the first of equal maxima wins, as torch's).
    for (b, n, ties) in [(2, 50257, false), (3, 300, true)] {
        out.push(
            compare_ints(
                format!("argmax_rows [{b}, {n}] ties {ties}"),
                gpu,
                |d| {
                    let x = tensor([b, n], 24, 4.0, d);
                    if ties {
                        x.clamp_max(1.0)
                    } else {
                        x
                    }
                },
                kernels::argmax_rows,
            )
            .await,
        );
    }
    let linear = |d: &Device| Linear {
        weight: Param::from_tensor(tensor([40, 24], 9, 0.5, d)),
        bias: Some(Param::from_tensor(tensor([24], 10, 0.5, d))),
    };
    out.push(
        compare(
            "linear_residual [3, 5, 40] -> 24".into(),
            gpu,
            |d| {
                (
                    linear(d),
                    tensor([3, 5, 40], 11, 1.0, d),
                    tensor([3, 5, 24], 12, 1.0, d),
                )
            },
            |(lin, x, r)| kernels::linear_residual(&lin, x, r, None),
        )
        .await,
    );
    // Without a bias, one row by a transposed weight (a Llama layer's output projection while
    // decoding).
    out.push(
        compare(
            "linear_residual [1, 1, 40] -> 24, no bias, weight transposed".into(),
            gpu,
            |d| {
                let lin = Linear {
                    weight: Param::from_tensor(tensor([24, 40], 25, 0.5, d).transpose()),
                    bias: None,
                };
                (
                    lin,
                    tensor([1, 1, 40], 26, 1.0, d),
                    tensor([1, 1, 24], 27, 1.0, d),
                )
            },
            |(lin, x, r)| kernels::linear_residual(&lin, x, r, None),
        )
        .await,
    );
    // A SwiGLU's up projection times its activated gate (a Llama layer's MLP), one row and
    // three.
    for m in [1, 3] {
        out.push(
            compare(
                format!("linear gated by SiLU [1, {m}, 40] -> 24, weight transposed"),
                gpu,
                |d| {
                    let lin = Linear {
                        weight: Param::from_tensor(tensor([24, 40], 32, 0.5, d).transpose()),
                        bias: None,
                    };
                    (
                        lin,
                        tensor([1, m, 40], 33, 1.0, d),
                        tensor([1, m, 24], 34, 3.0, d),
                    )
                },
                |(lin, x, gate)| kernels::gated_linear(&lin, x, gate),
            )
            .await,
        );
    }
    out.push(
        compare(
            "linear_activate Gelu [3, 5, 40] -> 24".into(),
            gpu,
            |d| (linear(d), tensor([3, 5, 40], 13, 1.0, d)),
            |(lin, x)| kernels::linear_activate(&lin, x, Activation::Gelu),
        )
        .await,
    );
    // Enough rows for wasm's packed matmul (16 or more), 37 outputs (not a multiple of its
    // 8-column panels), the weight a transposed view as the models load it.
    out.push(
        compare(
            "linear_residual [2, 9, 40] -> 37, weight transposed".into(),
            gpu,
            |d| {
                let lin = Linear {
                    weight: Param::from_tensor(tensor([37, 40], 28, 0.5, d).transpose()),
                    bias: Some(Param::from_tensor(tensor([37], 29, 0.5, d))),
                };
                (
                    lin,
                    tensor([2, 9, 40], 30, 1.0, d),
                    tensor([2, 9, 37], 31, 1.0, d),
                )
            },
            |(lin, x, r)| kernels::linear_residual(&lin, x, r, None),
        )
        .await,
    );
    // Past the row kernel's rows, the tiled product with the epilogue in the same launch: its
    // 64-row tiles with edges on every side (300 rows, 70 deep, 130 outputs), a transposed weight
    // gated by SiLU, and its 128-row tiles (2,048 rows by 1,030 outputs).
    out.push(
        compare(
            "linear_residual [2, 150, 70] -> 130, tiled".into(),
            gpu,
            |d| {
                let lin = Linear {
                    weight: Param::from_tensor(tensor([70, 130], 35, 0.5, d)),
                    bias: Some(Param::from_tensor(tensor([130], 36, 0.5, d))),
                };
                (
                    lin,
                    tensor([2, 150, 70], 37, 1.0, d),
                    tensor([2, 150, 130], 38, 1.0, d),
                )
            },
            |(lin, x, r)| kernels::linear_residual(&lin, x, r, None),
        )
        .await,
    );
    out.push(
        compare(
            "linear gated by SiLU [1, 300, 40] -> 24, weight transposed, tiled".into(),
            gpu,
            |d| {
                let lin = Linear {
                    weight: Param::from_tensor(tensor([24, 40], 39, 0.5, d).transpose()),
                    bias: None,
                };
                (
                    lin,
                    tensor([1, 300, 40], 40, 1.0, d),
                    tensor([1, 300, 24], 41, 3.0, d),
                )
            },
            |(lin, x, gate)| kernels::gated_linear(&lin, x, gate),
        )
        .await,
    );
    // A deep product of few tiles: in splits of its depth, summed with the bias and the
    // residual by a second launch.
    out.push(
        compare(
            "linear_residual [1, 300, 1100] -> 30, tiled in splits".into(),
            gpu,
            |d| {
                let lin = Linear {
                    weight: Param::from_tensor(tensor([1100, 30], 45, 0.5, d)),
                    bias: Some(Param::from_tensor(tensor([30], 46, 0.5, d))),
                };
                (
                    lin,
                    tensor([1, 300, 1100], 47, 0.25, d),
                    tensor([1, 300, 30], 48, 1.0, d),
                )
            },
            |(lin, x, r)| kernels::linear_residual(&lin, x, r, None),
        )
        .await,
    );
    out.push(
        compare(
            "linear_activate Gelu [1, 2048, 40] -> 1030, tiled".into(),
            gpu,
            |d| {
                let lin = Linear {
                    weight: Param::from_tensor(tensor([40, 1030], 42, 0.5, d)),
                    bias: Some(Param::from_tensor(tensor([1030], 43, 0.5, d))),
                };
                (lin, tensor([1, 2048, 40], 44, 1.0, d))
            },
            |(lin, x)| kernels::linear_activate(&lin, x, Activation::Gelu),
        )
        .await,
    );
    for act in [Activation::Gelu, Activation::GeluTanh, Activation::Relu] {
        out.push(
            compare(
                format!("activate {act:?} [3, 1031]"),
                gpu,
                |d| tensor([3, 1031], 5, 6.0, d),
                |x| kernels::activate(x, act),
            )
            .await,
        );
    }
    out
}

/// Asserts every check within `tolerance` of the CPU (the project's f32 bar is 1e-4; measured on
/// lavapipe: at most 2.4e-7, except 1.1e-5 for layer norm over 3 values, where a row's variance
/// can be close to epsilon) and, where `count_launches`, that the kernels ran rather than the
/// composed fallback: one launch per op (attention reads its strided query as it is; a linear
/// layer's row kernel adds the bias, the activation and the residual on its way out), two for the
/// query/key/value layer (the product, and the kernel that adds the bias and splits the heads into
/// the cache); three for an encoder's attention over many queries taken as split heads (the fused
/// query/key/value matmul, its head split, one attention kernel), two taken as
/// [`kernels::self_attention`] (the product, then one attention kernel); one for a prompt's 20
/// queries over a cache, grouped-query attention included; two for a tiled product in splits of its depth (the parts, then
/// their sum with the epilogue).
pub fn assert_checks(checks: &[Check], tolerance: f64, count_launches: bool) {
    for c in checks {
        assert!(
            c.max_abs <= tolerance,
            "{}: max abs error {:e} > {tolerance:e}",
            c.name,
            c.max_abs
        );
        if count_launches {
            let most = if c.name.starts_with("attention [") {
                3
            } else if c.name.starts_with("heads")
                || c.name.starts_with("split")
                || c.name.starts_with("self_attention")
                || c.name.ends_with("in splits")
            {
                2
            } else {
                1
            };
            assert!(
                c.launches >= 1 && c.launches <= most,
                "{}: {} launches, not the fused kernel",
                c.name,
                c.launches
            );
        }
    }
}

/// Asserts that the engine's CPU kernels, not burn's composition, computed each check that has
/// one (every op but the plain matmul and the argmax, which stay burn's on the CPU).
#[allow(dead_code)] // the GPU tests do not call it
pub fn assert_cpu_kernels_ran(checks: &[Check]) {
    for c in checks {
        // (Rotary positions are a GPU kernel only: on the CPU the composition's few passes; a
        // bias-less layer over hundreds of rows is one plain product there, nothing to fuse.)
        if c.name.starts_with("matmul_rows")
            || c.name.starts_with("argmax")
            || c.name.starts_with("rotary")
            || (c.name.starts_with("linear gated") && c.name.ends_with("tiled"))
        {
            continue;
        }
        assert!(c.cpu_kernels >= 1, "{}: no CPU kernel ran", c.name);
    }
}
