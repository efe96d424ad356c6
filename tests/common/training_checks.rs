//! The engine's kernels inside training's graph (on the CPU `tunelab::model::flex::tracked`, on a
//! GPU the cubecl ones with their backward kernels, both reached through `tunelab::model::kernels`)
//! and its AdamW (`flex::adamw` on the CPU, two kinds of GPU kernel, reached through
//! `train::optim::AdamW`), against burn's composition of the same ops on the same device
//! (`kernels::composed`): the outputs and every gradient, with autodiff. Dropout draws its own mask, so it
//! is checked for what a dropout must be: each value kept (times `1 / (1 - p)`) or zeroed, about
//! `1 - p` of them kept, the gradient through the same mask, and the same mask again after the
//! device's generator is seeded the same. Shared by the native test (`tests/kernels_cpu.rs`) and
//! the wasm one (`tests/wasm.rs`), each of which includes `kernel_checks.rs` beside it.

use burn::module::Param;
use burn::nn::{DropoutConfig, Embedding, LinearConfig};
use burn::prelude::*;
use tunelab::model::{flex, kernels, read_f32, Activation};
use tunelab::train::optim::{AdamW, AdamWSettings};

use super::kernel_checks::tensor;

fn flat<const D: usize>(t: Tensor<D>) -> Tensor<1> {
    let n: usize = t.dims().iter().product();
    t.reshape([n])
}

/// One comparison: the largest absolute difference over the outputs and gradients, and how many
/// of the engine's own ops ran for it (`flex::calls`, which the GPU's training ops count too).
pub struct TrainingCheck {
    pub name: String,
    pub max_abs: f64,
    pub engine_ops: u64,
}

/// `run` (which builds its inputs on the training device, runs the op and returns what to
/// compare) with the engine's kernels on `base` with autodiff, against burn's composition
/// (`kernels::composed`) on the CPU backend with autodiff (the reference the models' golden
/// tests hold to transformers).
async fn compare(
    name: &str,
    base: &Device,
    run: impl Fn(&Device) -> Vec<Tensor<1>>,
) -> TrainingCheck {
    let device = base.clone().autodiff();
    let reference = Device::flex().autodiff();
    let mut expected = Vec::new();
    for t in kernels::composed(|| run(&reference)) {
        expected.extend(read_f32(t).await.expect("read"));
    }
    let before = flex::calls();
    let outs = run(&device);
    let engine_ops = flex::calls() - before;
    let mut got = Vec::new();
    for t in outs {
        got.extend(read_f32(t).await.expect("read"));
    }
    assert_eq!(got.len(), expected.len(), "{name}: length");
    let max_abs = got
        .iter()
        .zip(&expected)
        .map(|(a, b)| (a - b).abs() as f64)
        .fold(0.0, f64::max);
    assert!(max_abs.is_finite(), "{name}: not finite");
    TrainingCheck {
        name: name.into(),
        max_abs,
        engine_ops,
    }
}

/// The op's output and the gradient of `sum(output * w)` (fixed random `w`) for `x`.
fn output_and_grad<const D: usize>(
    x: Tensor<D>,
    op: impl Fn(Tensor<D>) -> Tensor<D>,
) -> Vec<Tensor<1>> {
    let x = x.require_grad();
    let y = op(x.clone());
    let w = tensor(y.dims(), 99, 1.0, &y.device());
    let grads = (y.clone() * w).sum().backward();
    let gx = x.grad(&grads).expect("a gradient for x");
    vec![flat(y.inner()), flat(gx)]
}

/// Every op on `base` (the CPU backend, or a GPU) with autodiff.
pub async fn training_kernel_checks(base: &Device) -> Vec<TrainingCheck> {
    let mut checks = Vec::new();
    for act in [Activation::Gelu, Activation::GeluTanh, Activation::Relu] {
        checks.push(
            compare(
                &format!("{act:?} and its gradient [3, 37, 50]"),
                base,
                |d| {
                    output_and_grad(tensor([3, 37, 50], 1, 4.0, d), |x| {
                        kernels::activate(x, act)
                    })
                },
            )
            .await,
        );
    }
    // Attention probabilities with padding (hidden keys) and a causal mask, both broadcast:
    // (name, scores' shape, bias's shape, which of the bias's keys are hidden, scale, seed).
    type Case = (
        &'static str,
        [usize; 4],
        [usize; 4],
        fn(usize) -> bool,
        f64,
        u64,
    );
    let cases: [Case; 2] = [
        (
            "padding [2, 3, 5, 7]",
            [2, 3, 5, 7],
            [2, 1, 1, 7],
            |i| i % 7 >= 5 - i / 7,
            0.125,
            2,
        ),
        (
            "causal [2, 2, 6, 6]",
            [2, 2, 6, 6],
            [1, 1, 6, 6],
            |i| i % 6 > i / 6,
            0.3,
            3,
        ),
    ];
    for (name, shape, bias_shape, hidden, scale, seed) in cases {
        checks.push(
            compare(&format!("attention probabilities, {name}"), base, |d| {
                let n = bias_shape.iter().product();
                let mask = (0..n)
                    .map(|i| if hidden(i) { f32::MIN } else { 0.0 })
                    .collect();
                let bias = Tensor::<4>::from_data(TensorData::new(mask, bias_shape), d);
                output_and_grad(tensor(shape, seed, 3.0, d), |s| {
                    kernels::attention_probs(s, scale, bias.clone())
                })
            })
            .await,
        );
    }
    // Self-attention from a fused query/key/value output (on a GPU one op; elsewhere split into
    // heads, the softmax and two matmuls), with padding or a causal mask; 3 heads of 5, 2 of 32
    // (MiniLM's: the widest whose backward kernels keep their own rows in registers), one of 96,
    // and one of 150 (wider than the GPU kernels keep in registers: the composition on a GPU).
    type AttentionCase = (&'static str, [usize; 4], fn(usize) -> bool, usize, usize);
    let cases: [AttentionCase; 5] = [
        ("padding", [2, 1, 1, 7], |i| i % 7 >= 7 - 2 * (i / 7), 3, 5),
        ("causal", [1, 1, 7, 7], |i| i % 7 > i / 7, 3, 5),
        ("padding", [2, 1, 1, 7], |i| i % 7 >= 7 - (i / 7), 2, 32),
        ("padding", [2, 1, 1, 7], |i| i % 7 >= 7 - (i / 7), 1, 96),
        ("padding", [2, 1, 1, 7], |i| i % 7 >= 7 - (i / 7), 1, 150),
    ];
    for (name, bias_shape, hidden, heads, dh) in cases {
        let width = 3 * heads * dh;
        checks.push(
            compare(
                &format!("attention from fused qkv [2, 7, 3 x {heads} x {dh}], {name}"),
                base,
                |d| {
                    let n = bias_shape.iter().product();
                    let mask = (0..n)
                        .map(|i| if hidden(i) { f32::MIN } else { 0.0 })
                        .collect();
                    let bias = Tensor::<4>::from_data(TensorData::new(mask, bias_shape), d);
                    output_and_grad(tensor([2, 7, width], 25, 1.0, d), |qkv| {
                        qkv_attention(qkv, heads, &bias, &DropoutConfig::new(0.0).init())
                    })
                },
            )
            .await,
        );
    }
    // Layer norm: the input's, gamma's and beta's gradients (rows of 37: not a multiple of the
    // kernels' lanes).
    checks.push(
        compare("layer norm and its three gradients [3, 5, 37]", base, |d| {
            let (g, b) = (
                (tensor([37], 16, 0.5, d) + 1.0).require_grad(),
                tensor([37], 17, 0.5, d).require_grad(),
            );
            let x = tensor([3, 5, 37], 18, 2.0, d).require_grad();
            let y = kernels::layer_norm(x.clone(), g.clone(), b.clone(), 1e-12);
            let wy = tensor(y.dims(), 19, 1.0, d);
            let grads = (y.clone() * wy).sum().backward();
            vec![
                flat(y.inner()),
                flat(x.grad(&grads).expect("dx")),
                g.grad(&grads).expect("dgamma"),
                b.grad(&grads).expect("dbeta"),
            ]
        })
        .await,
    );
    // An embedding table read at repeated ids: its gradient adds the rows up (the CPU's own op;
    // a GPU takes burn's gather and scatter).
    if tunelab::device::on_cpu(base) {
        checks.push(
            compare(
                "embedding and its table's gradient [11, 6] at [2, 5]",
                base,
                |d| {
                    let table = tensor([11, 6], 4, 1.0, d).require_grad();
                    let e = Embedding {
                        weight: Param::from_tensor(table.clone()),
                    };
                    let ids = Tensor::<2, Int>::from_data(
                        TensorData::new(vec![3i64, 0, 3, 10, 7, 7, 7, 1, 0, 10], [2, 5]),
                        d,
                    );
                    let y = kernels::embedding(&e, ids);
                    let w = tensor(y.dims(), 5, 1.0, d);
                    let grads = (y.clone() * w).sum().backward();
                    let g = table.grad(&grads).expect("a gradient for the table");
                    vec![flat(y.inner()), flat(g)]
                },
            )
            .await,
        );
    }
    // A linear layer over 3-D input: the output and the gradients of the input, the weight and
    // the bias (20 rows: the packed product's path in wasm; 5 rows: burn's).
    for rows in [4usize, 1] {
        checks.push(
            compare(
                &format!("linear and its three gradients [{rows}, 5, 37] -> 9"),
                base,
                |d| {
                    let mut lin = LinearConfig::new(37, 9).init(d);
                    let (w, b) = (
                        tensor([37, 9], 12, 0.5, d).require_grad(),
                        tensor([9], 13, 0.5, d).require_grad(),
                    );
                    lin.weight = Param::from_tensor(w.clone());
                    lin.bias = Some(Param::from_tensor(b.clone()));
                    let x = tensor([rows, 5, 37], 14, 1.0, d).require_grad();
                    let y = kernels::linear(&lin, x.clone());
                    let wy = tensor(y.dims(), 15, 1.0, d);
                    let grads = (y.clone() * wy).sum().backward();
                    let g = |t: Tensor<1>| t;
                    vec![
                        flat(y.inner()),
                        flat(x.grad(&grads).expect("dx")),
                        flat(w.grad(&grads).expect("dw")),
                        g(b.grad(&grads).expect("db")),
                    ]
                },
            )
            .await,
        );
    }
    // A linear layer with GELU, and one with a residual added (the GPU's epilogue kernel); then
    // with more rows and outputs than one tile of the GPU's product holds, none of the three
    // sizes a multiple of its tiles (its backward products run 300 deep); and 1,200 rows, whose
    // weight's gradient (one tile, 1,200 deep) the GPU sums in four splits. These take inputs
    // and output weights of a smaller spread: f32's rounding over such long sums alone reaches
    // the checks' 1e-5 at full spread, burn's own product's too.
    for (residual, name, [b0, t, k, n], spread) in [
        (false, "GELU", [3, 7, 37, 40], 1.0),
        (true, "a residual", [3, 7, 37, 40], 1.0),
        (false, "GELU", [2, 150, 70, 130], 0.25),
        (true, "a residual", [2, 600, 24, 40], 0.1),
    ] {
        checks.push(
            compare(
                &format!("linear with {name} and its gradients [{b0}, {t}, {k}] -> {n}"),
                base,
                |d| {
                    let mut lin = LinearConfig::new(k, n).init(d);
                    let (w, b) = (
                        tensor([k, n], 20, 0.5, d).require_grad(),
                        tensor([n], 21, 0.5, d).require_grad(),
                    );
                    lin.weight = Param::from_tensor(w.clone());
                    lin.bias = Some(Param::from_tensor(b.clone()));
                    let x = tensor([b0, t, k], 22, spread, d).require_grad();
                    let r = tensor([b0, t, n], 23, 1.0, d).require_grad();
                    let y = if residual {
                        kernels::linear_residual(&lin, x.clone(), r.clone(), None)
                    } else {
                        kernels::linear_activate(&lin, x.clone(), Activation::Gelu)
                    };
                    let wy = tensor(y.dims(), 24, spread, d);
                    let grads = (y.clone() * wy).sum().backward();
                    let mut out = vec![
                        flat(y.inner()),
                        flat(x.grad(&grads).expect("dx")),
                        flat(w.grad(&grads).expect("dw")),
                        b.grad(&grads).expect("db"),
                    ];
                    if residual {
                        out.push(flat(r.grad(&grads).expect("dr")));
                    }
                    out
                },
            )
            .await,
        );
    }
    // AdamW over a linear layer (a weight that decays, a bias that does not, or both), with the
    // gradient clipped: three steps, then the weights and the norms.
    for (decay_bias_and_norm, name) in [(false, "Trainer's mask"), (true, "every weight")] {
        checks.push(
            compare(
                &format!("AdamW, 3 steps, decay on {name}, clipped"),
                base,
                |d| {
                    let settings = AdamWSettings {
                        beta1: 0.9,
                        beta2: 0.999,
                        epsilon: 1e-8,
                        weight_decay: 0.1,
                        decay_bias_and_norm,
                        max_grad_norm: 0.5,
                    };
                    let mut lin = LinearConfig::new(37, 9).init(d);
                    lin.weight = Param::from_tensor(tensor([37, 9], 6, 0.5, d).require_grad());
                    lin.bias = Some(Param::from_tensor(tensor([9], 7, 0.5, d).require_grad()));
                    let mut opt = AdamW::new(&lin, settings);
                    let mut norms = Vec::new();
                    for step in 0..3u64 {
                        let x = tensor([5, 37], 10 + step, 1.0, d);
                        let y = lin.forward(x);
                        let loss = (y.clone() * y).mean();
                        let (next, norm) = opt.step(1e-2, lin, loss);
                        lin = next;
                        norms.push(norm);
                    }
                    let mut out = vec![
                        flat(lin.weight.val().inner()),
                        lin.bias.as_ref().expect("bias").val().inner(),
                    ];
                    out.extend(norms);
                    out
                },
            )
            .await,
        );
    }
    checks
}

/// Attention over `qkv` `[b, t, 3 * heads * dh]`: the engine's op where it applies, else the
/// heads split, the probabilities, and the two matmuls.
fn qkv_attention(
    qkv: Tensor<3>,
    heads: usize,
    bias: &Tensor<4>,
    dropout: &burn::nn::Dropout,
) -> Tensor<3> {
    let dh = qkv.dims()[2] / 3 / heads;
    let scale = 1.0 / (dh as f64).sqrt();
    match kernels::qkv_attention(qkv, heads, scale, bias, dropout) {
        Ok(context) => context,
        Err(qkv) => {
            let [b, t, _] = qkv.dims();
            let (q, k, v) = kernels::split_qkv(qkv, heads);
            let probs = kernels::attention_probs(q.matmul(k.swap_dims(2, 3)), scale, bias.clone());
            let probs = kernels::dropout(dropout, probs);
            probs.matmul(v).swap_dims(1, 2).reshape([b, t, heads * dh])
        }
    }
}

/// Attention with dropout (p = 0.3) on its weights: the gradient is the derivative of the output
/// under the same mask (drawn again after the same seed), against central differences along one
/// direction.
pub async fn attention_dropout_check(base: &Device) {
    let device = base.clone().autodiff();
    let d = DropoutConfig::new(0.3).init();
    let bias = Tensor::<4>::zeros([1, 1, 6, 6], &device);
    let w = tensor([2, 6, 15], 31, 1.0, &device);
    let f = |qkv: Tensor<3>| {
        tunelab::device::seed(&device, 11);
        (qkv_attention(qkv, 3, &bias, &d) * w.clone()).sum()
    };
    let x = tensor([2, 6, 45], 30, 1.0, &device).require_grad();
    let grads = f(x.clone()).backward();
    let g = read_f32(flat(x.grad(&grads).expect("a gradient")))
        .await
        .expect("g");
    let u = tensor([2, 6, 45], 32, 1.0, &device);
    let eps = 1e-2;
    let plus = read_f32(f(x.clone() + u.clone() * eps)).await.expect("f+")[0];
    let minus = read_f32(f(x.clone() - u.clone() * eps)).await.expect("f-")[0];
    let numeric = (plus - minus) as f64 / (2.0 * eps);
    let u = read_f32(flat(u)).await.expect("u");
    let analytic: f64 = g.iter().zip(&u).map(|(a, b)| (a * b) as f64).sum();
    assert!(
        (numeric - analytic).abs() <= 2e-2 * analytic.abs().max(1.0),
        "directional derivative {numeric} against the gradient's {analytic}"
    );
}

/// Dropout (p = 0.25) in training: values kept times 4/3 or zeroed, about 3/4 kept, the gradient
/// through the same mask, the same mask after the same seed; the engine's op ran.
pub async fn dropout_check(base: &Device) {
    let device = base.clone().autodiff();
    let d = DropoutConfig::new(0.25).init();
    let run = |seed: u64| {
        tunelab::device::seed(&device, seed);
        let x = (tensor([4, 100, 101], 8, 1.0, &device).abs() + 0.5).require_grad();
        let before = flex::calls();
        let counter = tunelab::counts::Counter::start();
        let y = kernels::dropout(&d, x.clone());
        let launches = counter.finish().launches;
        let ran = flex::calls() - before;
        let grads = y.clone().sum().backward();
        let g = x.grad(&grads).expect("a gradient");
        (x.inner(), y.inner(), g, (ran, launches))
    };
    let (x, y, g, (ran, launches)) = run(7);
    assert!(ran > 0, "the engine's dropout ran");
    if !tunelab::device::on_cpu(base) {
        // The mask's keys come from the host: no launch draws them.
        assert_eq!(launches, 1, "launches of a dropout on a GPU");
    }
    let (x, y, g) = (
        read_f32(flat(x)).await.expect("x"),
        read_f32(flat(y)).await.expect("y"),
        read_f32(flat(g)).await.expect("g"),
    );
    let scale = 1.0 / 0.75f32;
    let mut kept = 0usize;
    for ((x, y), g) in x.iter().zip(&y).zip(&g) {
        if *y == 0.0 {
            assert_eq!(*g, 0.0, "a dropped value passes no gradient");
        } else {
            kept += 1;
            assert!(
                (y - x * scale).abs() <= 1e-6,
                "a kept value is scaled: {y} for {x}"
            );
            assert!(
                (g - scale).abs() <= 1e-6,
                "a kept value's gradient is scaled: {g}"
            );
        }
    }
    let share = kept as f64 / x.len() as f64;
    assert!(
        (share - 0.75).abs() < 0.01,
        "kept {share} of the values, not 0.75"
    );
    let (_, again, _, _) = run(7);
    assert_eq!(
        read_f32(flat(again)).await.expect("again"),
        y,
        "the same seed, the same mask"
    );
    let (_, other, _, _) = run(8);
    assert_ne!(
        read_f32(flat(other)).await.expect("other"),
        y,
        "another seed, another mask"
    );
}

pub fn assert_training_checks(checks: &[TrainingCheck], tolerance: f64) {
    for c in checks {
        assert!(
            c.max_abs <= tolerance,
            "{}: max abs {:e} over {tolerance:e}",
            c.name,
            c.max_abs
        );
        assert!(c.engine_ops > 0, "{}: none of the engine's ops ran", c.name);
    }
}
