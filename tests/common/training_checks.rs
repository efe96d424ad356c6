//! The engine's CPU kernels inside training's graph (`tunelab::model::flex::tracked`, reached
//! through `tunelab::model::kernels`) and its one-pass AdamW (`flex::adamw`, reached through
//! `train::optim::AdamW`), against burn's composition of the same ops (`kernels::composed`): the
//! outputs and every gradient, on the CPU backend with autodiff. Dropout draws its own mask, so it
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
/// of the engine's CPU kernels ran for it.
pub struct TrainingCheck {
    pub name: String,
    pub max_abs: f64,
    pub cpu_kernels: u64,
}

/// `run` (which builds its inputs on the training device, runs the op and returns what to
/// compare) with the engine's kernels, and within `kernels::composed`.
async fn compare(name: &str, run: impl Fn(&Device) -> Vec<Tensor<1>>) -> TrainingCheck {
    let device = Device::flex().autodiff();
    let mut expected = Vec::new();
    for t in kernels::composed(|| run(&device)) {
        expected.extend(read_f32(t).await.expect("read"));
    }
    let before = flex::calls();
    let outs = run(&device);
    let cpu_kernels = flex::calls() - before;
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
        cpu_kernels,
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

pub async fn training_kernel_checks() -> Vec<TrainingCheck> {
    let mut checks = Vec::new();
    for act in [Activation::Gelu, Activation::GeluTanh, Activation::Relu] {
        checks.push(
            compare(&format!("{act:?} and its gradient [3, 37, 50]"), |d| {
                output_and_grad(tensor([3, 37, 50], 1, 4.0, d), |x| {
                    kernels::activate(x, act)
                })
            })
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
            compare(&format!("attention probabilities, {name}"), |d| {
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
    // Layer norm: the input's, gamma's and beta's gradients (rows of 37: not a multiple of the
    // kernels' lanes).
    checks.push(
        compare("layer norm and its three gradients [3, 5, 37]", |d| {
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
    // An embedding table read at repeated ids: its gradient adds the rows up.
    checks.push(
        compare(
            "embedding and its table's gradient [11, 6] at [2, 5]",
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
    // A linear layer over 3-D input: the output and the gradients of the input, the weight and
    // the bias (20 rows: the packed product's path in wasm; 5 rows: burn's).
    for rows in [4usize, 1] {
        checks.push(
            compare(
                &format!("linear and its three gradients [{rows}, 5, 37] -> 9"),
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
    // AdamW over a linear layer (a weight that decays, a bias that does not, or both), with the
    // gradient clipped: three steps, then the weights and the norms.
    for (decay_bias_and_norm, name) in [(false, "Trainer's mask"), (true, "every weight")] {
        checks.push(
            compare(&format!("AdamW, 3 steps, decay on {name}, clipped"), |d| {
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
            })
            .await,
        );
    }
    checks
}

/// Dropout (p = 0.25) in training: values kept times 4/3 or zeroed, about 3/4 kept, the gradient
/// through the same mask, the same mask after the same seed; the engine's op ran.
pub async fn dropout_check() {
    let device = Device::flex().autodiff();
    let d = DropoutConfig::new(0.25).init();
    let run = |seed: u64| {
        device.seed(seed);
        let x = (tensor([4, 100, 101], 8, 1.0, &device).abs() + 0.5).require_grad();
        let before = flex::calls();
        let y = kernels::dropout(&d, x.clone());
        let ran = flex::calls() - before;
        let grads = y.clone().sum().backward();
        let g = x.grad(&grads).expect("a gradient");
        (x.inner(), y.inner(), g, ran)
    };
    let (x, y, g, ran) = run(7);
    assert!(ran > 0, "the engine's dropout ran");
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
        assert!(c.cpu_kernels > 0, "{}: no CPU kernel ran", c.name);
    }
}
