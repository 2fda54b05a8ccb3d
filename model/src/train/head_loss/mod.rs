//! The tied LM head and the next-token cross-entropy as one operation whose gradient is written in closed form.
//!
//! Over GPT-2's 50,257-token vocabulary the logits `[N, V]` are by far the largest tensor of a training step (206 MB
//! for a batch of 8 × 128), and autodiff through `matmul → log_softmax → gather → mean` walks them about a dozen
//! times: the decomposed log-softmax forward, the one-hot its `gather` scatters back, the backward of each
//! elementwise op, with every intermediate held for the backward pass. The loss splits into two parts,
//!
//! `ce = Σₙ wₙ · (lse(logitsₙ) − ⟨hₙ, W[tₙ]⟩)`, with `w = mask / n_real` per row,
//!
//! and only the log-sum-exp needs the logits. Its gradient with respect to them is known in closed form,
//! `P = softmax(logits) · w`, so the forward pass builds `P` in place — `e = exp(logits − top)`, `s = Σ e`, `lse =
//! top + ln s` (exact and finite: the top's own term makes `s ≥ 1`), `P = e · (w / s)` — and turns it into the two
//! gradients the rest of the graph needs, `∂h = P·W` and `∂W = Pᵀ·h`, before dropping it. Autodiff receives them
//! through a surrogate `σ = Σ h⊙∂h + Σ W⊙∂W` added as `σ − detach(σ)`: zero in value, exactly `∂h` and `∂W` in
//! gradient. The picked logit `⟨hₙ, W[tₙ]⟩` is an `[N, C]` row lookup and dot product, differentiated by autodiff
//! as usual — so no `[N, V]` one-hot, gather or scatter exists anywhere. Only tensor ops, so every backend runs the
//! same code; what is not needed (no autodiff, a frozen head) is not computed.
//!
//! Where the tensors live in host memory (burn's Flex backend), [`host`] computes the same loss and gradients in
//! one fused pass over the logits, and hands them to autodiff through the same surrogate; the tests below hold the
//! two paths to the same reference. There too, [`Precision::Bf16`] runs the products over the vocabulary on bf16
//! operands with f32 sums, without ever storing the logits ([`host::head_cross_entropy_bf16`]); other backends
//! compute in f32 (the CLI refuses bf16 there).

mod host;

use burn::tensor::backend::Backend;
use burn::tensor::{Bool, Int, Tensor};

use crate::host::{all_f32_on_host, from_vec, Values};
use crate::train::config::Precision;

/// Mean cross-entropy of the tied head `h · Wᵀ` against `targets` over the rows where `mask` is true, with the
/// gradients of `h` and of the table `W` attached in closed form (see the module docs). Equal in value and gradient
/// to `cross_entropy(h·Wᵀ, targets, mask)` through autodiff (in f32; within bf16's rounding in
/// [`Precision::Bf16`]). `w` is the table's parts in row order (one, unless the table is held in parts,
/// `nn::embedding`): each part that requires a gradient receives its rows of `∂W`.
///
/// # Shapes
/// `h: [N, C]`, `w: [[V₁, C], …]` with `Σ Vᵢ = V`, `targets, mask: [N]` → `[1]`.
pub fn head_cross_entropy<B: Backend>(
    h: Tensor<B, 2>,
    w: &[Tensor<B, 2>],
    targets: Tensor<B, 1, Int>,
    mask: Tensor<B, 1, Bool>,
    precision: Precision,
) -> Tensor<B, 1> {
    if all_f32_on_host(&std::iter::once(&h).chain(w).collect::<Vec<_>>()) {
        on_host(h, w, targets, mask, precision)
    } else {
        with_tensor_ops(h, w, targets, mask)
    }
}

/// The table whose parts are `parts`, as one `[V, C]` tensor (the part itself when there is one). On the autodiff
/// graph a joined table is a derived tensor, which never reports `is_require_grad`: whether `∂W` is needed is asked
/// of the parts ([`needs_grad`]), and it is attached to them ([`attach`]).
fn joined<B: Backend>(parts: &[Tensor<B, 2>]) -> Tensor<B, 2> {
    match parts {
        [one] => one.clone(),
        parts => Tensor::cat(parts.to_vec(), 0),
    }
}

/// Whether any part of the table trains.
fn needs_grad<B: Backend>(parts: &[Tensor<B, 2>]) -> bool {
    parts.iter().any(Tensor::is_require_grad)
}

/// Constants for autodiff: `detach` alone keeps a parameter's `require_grad`, which would put the whole [N, V]
/// computation back on the graph.
fn constant<B: Backend, const D: usize>(t: &Tensor<B, D>) -> Tensor<B, D> {
    t.clone().detach().set_require_grad(false)
}

/// `ce + σ − detach(σ)` with `σ = Σ h⊙∂h + Σᵢ Wᵢ⊙∂W[rows of part i]` over the gradients given: `ce` in value, and
/// exactly those gradients for `h` and each part `Wᵢ` of the table that requires one under autodiff.
fn attach<B: Backend>(
    ce: Tensor<B, 1>,
    h: Tensor<B, 2>,
    h_grad: Option<Tensor<B, 2>>,
    w: &[Tensor<B, 2>],
    w_grad: Option<Tensor<B, 2>>,
) -> Tensor<B, 1> {
    let mut surrogate = Tensor::<B, 1>::zeros([1], &ce.device());
    if let Some(g) = w_grad {
        let mut lo = 0;
        for part in w {
            let rows = part.dims()[0];
            if part.is_require_grad() {
                surrogate = surrogate + (part.clone() * g.clone().narrow(0, lo, rows)).sum();
            }
            lo += rows;
        }
    }
    if let Some(g) = h_grad {
        surrogate = surrogate + (h * g).sum();
    }
    ce + surrogate.clone() - surrogate.detach()
}

/// The fused host kernel ([`host`]); the loss and both gradients come back as constants and are attached.
fn on_host<B: Backend>(
    h: Tensor<B, 2>,
    parts: &[Tensor<B, 2>],
    targets: Tensor<B, 1, Int>,
    mask: Tensor<B, 1, Bool>,
    precision: Precision,
) -> Tensor<B, 1> {
    let device = h.device();
    let w = joined(parts);
    let ([n, c], [v, _]) = (h.dims(), w.dims());
    let need_h = B::ad_enabled(&device);
    let need_w = needs_grad(parts);
    let targets = targets.into_data().convert::<i64>().into_vec::<i64>().expect("i64 targets");
    let mask = mask.into_data().convert::<bool>().into_vec::<bool>().expect("a boolean mask");
    let real = mask.iter().filter(|&&m| m).count().max(1) as f32;
    let weight: Vec<f32> = mask.iter().map(|&m| if m { 1.0 / real } else { 0.0 }).collect();
    // Read in place where the buffers allow it (the usual case), copied otherwise.
    let (hv, wv) = (Values::of(&h), Values::of(&w));
    let (h_values, w_values) = (hv.as_slice(), wv.as_slice());
    let out = match precision {
        Precision::F32 => host::head_cross_entropy(h_values, w_values, c, &targets, &weight, need_h, need_w),
        Precision::Bf16 => host::head_cross_entropy_bf16(h_values, w_values, c, &targets, &weight, need_h, need_w),
    };
    let ce = from_vec::<B, 1>(vec![out.loss as f32], [1], &device);
    let h_grad = out.h_grad.map(|g| from_vec(g, [n, c], &device));
    let w_grad = out.w_grad.map(|g| from_vec(g, [v, c], &device));
    attach(ce, h, h_grad, parts, w_grad)
}

/// The tensor-op path every backend can run (see the module docs).
fn with_tensor_ops<B: Backend>(
    h: Tensor<B, 2>,
    parts: &[Tensor<B, 2>],
    targets: Tensor<B, 1, Int>,
    mask: Tensor<B, 1, Bool>,
) -> Tensor<B, 1> {
    let [n, _] = h.dims();
    let w = joined(parts);
    let real = mask.float().reshape([n, 1]);
    // [N, 1]: 1 / n_real on real rows, 0 elsewhere.
    let weight = real.clone() / real.sum().clamp_min(1.0).unsqueeze::<2>();
    // The picked logits ⟨hₙ, W[tₙ]⟩, on the graph: [N, 1].
    let picked = (h.clone() * w.clone().select(0, targets)).sum_dim(1);

    let (hd, wd) = (constant(&h), constant(&w));
    // Each [N, V] step below consumes the only reference to its input, so backends that can work in place do.
    let logits = hd.clone().matmul(wd.clone().transpose()); // [N, V]
    let top = logits.clone().max_dim(1); // [N, 1]
    let e = (logits - top.clone()).exp(); // [N, V]
    let s = e.clone().sum_dim(1); // [N, 1], ≥ 1
    let lse = top + s.clone().log(); // [N, 1]
    let ce = ((lse - picked) * weight.clone()).sum();

    let need_h = B::ad_enabled(&h.device());
    let need_w = needs_grad(parts);
    if !need_h && !need_w {
        return ce;
    }
    let p = e * (weight / s); // [N, V]: ∂(Σ w·lse)/∂logits
                              // ∂W = Pᵀ·h: [V, C]; ∂h = P·W: [N, C]
    let w_grad = need_w.then(|| p.clone().transpose().matmul(hd));
    let h_grad = need_h.then(|| p.matmul(wd));
    attach(ce, h, h_grad, parts, w_grad)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::train::loss::cross_entropy;
    use crate::{TestAutodiffBackend as A, TestBackend};
    use burn::module::Param;
    use burn::tensor::TensorData;

    /// `h [n, c]`, `w [v, c]`, targets, mask (every fourth row masked).
    type Inputs = (Tensor<A, 2>, Tensor<A, 2>, Tensor<A, 1, Int>, Tensor<A, 1, Bool>);
    type HeadLoss<B> = fn(Tensor<B, 2>, &[Tensor<B, 2>], Tensor<B, 1, Int>, Tensor<B, 1, Bool>) -> Tensor<B, 1>;

    /// Every implementation, each held to the same reference by every test: the reference's inputs rounded to bf16
    /// for the bf16 path (whose products take them so), with a looser tolerance for its gradients (the
    /// probabilities, too, are rounded to bf16 before the products).
    struct Path<B: Backend> {
        name: &'static str,
        head: HeadLoss<B>,
        bf16: bool,
    }

    fn paths<B: Backend>() -> [Path<B>; 3] {
        [
            Path { name: "host", head: |h, w, t, m| on_host::<B>(h, w, t, m, Precision::F32), bf16: false },
            Path { name: "host bf16", head: |h, w, t, m| on_host::<B>(h, w, t, m, Precision::Bf16), bf16: true },
            Path { name: "tensor ops", head: with_tensor_ops::<B>, bf16: false },
        ]
    }

    /// `t` as the path's products see it.
    fn operand<B: Backend>(t: Tensor<B, 2>, bf16: bool) -> Tensor<B, 2> {
        if !bf16 {
            return t;
        }
        let (dims, device) = (t.dims(), t.device());
        let values: Vec<f32> = crate::host::to_vec(t).into_iter().map(|x| crate::host::bf16::widen(crate::host::bf16::round(x))).collect();
        from_vec(values, dims, &device)
    }

    fn inputs(n: usize, c: usize, v: usize) -> Inputs {
        let d = Default::default();
        // Deterministic values; logits spread over tens of nats, so some targets are far from the top (the
        // log-normaliser's hard case).
        let grid = |rows: usize, scale: f32, f: fn(f32) -> f32, a: f32, b: f32| {
            let data: Vec<f32> = (0..rows * c).map(|k| scale * f((k / c) as f32 * a + (k % c) as f32 * b)).collect();
            Tensor::<A, 2>::from_data(TensorData::new(data, [rows, c]), &d)
        };
        let h = grid(n, 3.0, f32::sin, 1.3, 0.7);
        let w = grid(v, 1.0, f32::cos, 0.9, 1.1);
        let targets =
            Tensor::<A, 1, Int>::from_data(TensorData::new((0..n as i64).map(|i| (i * 5 + 3) % v as i64).collect::<Vec<_>>(), [n]), &d);
        let mask = Tensor::<A, 1, Bool>::from_data(TensorData::new((0..n).map(|i| i % 4 != 1).collect::<Vec<_>>(), [n]), &d);
        (h, w, targets, mask)
    }

    fn reference(h: Tensor<A, 2>, w: Tensor<A, 2>, targets: Tensor<A, 1, Int>, mask: Tensor<A, 1, Bool>) -> Tensor<A, 1> {
        let [n, _] = h.dims();
        let v = w.dims()[0];
        cross_entropy(h.matmul(w.transpose()).reshape([1, n, v]), targets.reshape([1, n]), mask.reshape([1, n]))
    }

    fn max_diff(a: Tensor<TestBackend, 2>, b: Tensor<TestBackend, 2>) -> f32 {
        (a - b).abs().max().into_scalar()
    }

    #[test]
    fn the_flex_backend_takes_the_host_path_and_a_half_precision_head_does_not() {
        let (h, w, _, _) = inputs(2, 4, 5);
        assert!(all_f32_on_host(&[&h, &w]));
        assert!(!all_f32_on_host(&[&h, &w.cast(burn::tensor::DType::F16)]));
    }

    #[test]
    fn value_and_both_gradients_match_autodiff_through_the_logits() {
        // The small case, and one with a vocabulary wide enough for the host path's vector lanes and threads.
        for (n, c, v) in [(24, 16, 37), (40, 24, 3001)] {
            for Path { name: path, head, bf16 } in paths::<A>() {
                let (h0, w0, targets, mask) = inputs(n, c, v);
                let (h, w) = (Param::from_tensor(h0.clone()), Param::from_tensor(w0.clone()));
                let fused = head(h.val(), &[w.val()], targets.clone(), mask.clone());
                let (h_ref, w_ref) = (Param::from_tensor(operand(h0, bf16)), Param::from_tensor(operand(w0, bf16)));
                let want = reference(h_ref.val(), w_ref.val(), targets, mask);
                let (fv, rv) = (fused.clone().into_scalar(), want.clone().into_scalar());
                assert!(rv > 1.0 && (fv - rv).abs() < 1e-5 * rv, "{path} {v}: loss {fv} vs {rv}");
                let (g, g_ref) = (fused.backward(), want.backward());
                let gh = h.val().grad(&g).expect("∂h");
                let gh_ref = h_ref.val().grad(&g_ref).expect("∂h reference");
                assert!(gh_ref.clone().abs().max().into_scalar() > 1e-3, "the reference gradient is not trivial");
                // Sums over C of products in f32; in bf16, probabilities off by up to 2⁻⁹ of themselves.
                let tolerance =
                    |g: &Tensor<TestBackend, 2>| if bf16 { 4e-3 * g.clone().abs().max().into_scalar() } else { 2e-6 * c as f32 };
                let t = tolerance(&gh_ref);
                assert!(max_diff(gh, gh_ref) < t, "{path} {v}: ∂h");
                let gw = w.val().grad(&g).expect("∂W");
                let gw_ref = w_ref.val().grad(&g_ref).expect("∂W reference");
                let t = tolerance(&gw_ref);
                assert!(max_diff(gw, gw_ref) < t, "{path} {v}: ∂W");
            }
        }
    }

    /// A table held in parts (a GPU whose buffers are smaller than it): the same loss, and each part gets its rows
    /// of the whole table's gradient; a frozen part gets none while the others still train.
    #[test]
    fn a_table_in_parts_gets_the_tables_gradient_in_each_part() {
        let (n, c, v) = (24, 16, 37);
        for Path { name: path, head, .. } in paths::<A>() {
            let (h0, w0, targets, mask) = inputs(n, c, v);
            let (h, w) = (Param::from_tensor(h0.clone()), Param::from_tensor(w0.clone()));
            let whole = head(h.val(), &[w.val()], targets.clone(), mask.clone());
            let g_whole = whole.clone().backward();
            let gw = w.val().grad(&g_whole).expect("∂W");
            for frozen in [None, Some(1)] {
                let parts: Vec<_> = [(0, 10), (10, 20), (30, 7)]
                    .iter()
                    .enumerate()
                    .map(|(i, &(lo, rows))| Param::from_tensor(w0.clone().narrow(0, lo, rows)).set_require_grad(frozen != Some(i)))
                    .collect();
                let h = Param::from_tensor(h0.clone());
                let split = head(h.val(), &parts.iter().map(Param::val).collect::<Vec<_>>(), targets.clone(), mask.clone());
                assert!((split.clone().into_scalar() - whole.clone().into_scalar()).abs() < 1e-6, "{path}: loss");
                let g = split.backward();
                for (i, (part, lo)) in parts.iter().zip([0, 10, 30]).enumerate() {
                    match part.val().grad(&g) {
                        None => assert_eq!(frozen, Some(i), "{path}: part {i} got no gradient"),
                        Some(got) => {
                            assert_ne!(frozen, Some(i), "{path}: frozen part {i} got a gradient");
                            let want = gw.clone().narrow(0, lo, got.dims()[0]);
                            assert!(max_diff(got, want) < 1e-6, "{path}: part {i}'s ∂W");
                        }
                    }
                }
            }
        }
    }

    #[test]
    fn masked_rows_get_no_gradient_and_a_frozen_head_gets_none() {
        for Path { name: path, head, .. } in paths::<A>() {
            let (h0, w0, targets, mask) = inputs(8, 4, 11);
            let h = Param::from_tensor(h0);
            let w = Param::from_tensor(w0).set_require_grad(false);
            let g = head(h.val(), &[w.val()], targets, mask.clone()).backward();
            assert!(w.val().grad(&g).is_none(), "{path}: a frozen head has no gradient");
            let gh = h.val().grad(&g).expect("∂h");
            let norms = gh.abs().sum_dim(1).into_data().to_vec::<f32>().unwrap();
            let real = mask.into_data().to_vec::<bool>().unwrap();
            for (norm, real) in norms.iter().zip(real) {
                assert_eq!(*norm > 0.0, real, "{path}: row gradient {norm} on a {} row", if real { "real" } else { "masked" });
            }
        }
    }

    #[test]
    fn without_autodiff_it_is_the_plain_cross_entropy_even_far_from_the_top() {
        let d = Default::default();
        for Path { name: path, head, .. } in paths::<TestBackend>() {
            // One row whose target sits 200 nats below the top: its probability underflows f32, the loss must not.
            // (Every weight is a bf16 value: the bf16 path computes the same.)
            let h = Tensor::<TestBackend, 2>::from_floats([[1.0, 0.0], [0.0, 1.0]], &d);
            let w = Tensor::<TestBackend, 2>::from_floats([[200.0, 0.0], [0.0, 0.0], [0.0, 0.75]], &d);
            let targets = Tensor::<TestBackend, 1, Int>::from_ints([1, 2], &d);
            let mask = Tensor::<TestBackend, 1, Bool>::from_data(TensorData::from([true, true]), &d);
            let got = head(h, &[w], targets, mask).into_scalar();
            // Row 0: logits (200, 0, 0) → 200 + ln(1 + 2e-200) ≈ 200; row 1: logits (0, 0, ¾), target 2 →
            // ln(2 + e^¾) − ¾.
            let want = (200.0 + (2.0 + 0.75f32.exp()).ln() - 0.75) / 2.0;
            assert!((got - want).abs() < 1e-4, "{path}: {got} vs {want}");
        }
    }

    #[test]
    fn a_non_finite_hidden_state_gives_a_non_finite_loss() {
        // The training step skips a step whose loss is not finite; the host path must not hide a NaN or an ∞.
        let d = Default::default();
        for bad in [f32::NAN, f32::INFINITY] {
            for Path { name: path, head, .. } in paths::<TestBackend>() {
                let h = Tensor::<TestBackend, 2>::from_floats([[1.0, 0.0], [0.0, bad]], &d);
                let w = Tensor::<TestBackend, 2>::from_floats([[1.0, 0.0], [0.0, 1.0], [0.5, 0.5]], &d);
                let targets = Tensor::<TestBackend, 1, Int>::from_ints([1, 2], &d);
                let mask = Tensor::<TestBackend, 1, Bool>::from_data(TensorData::from([true, true]), &d);
                let got = head(h, &[w], targets, mask).into_scalar();
                assert!(!got.is_finite(), "{path}: {bad} in h gave the loss {got}");
            }
        }
    }
}
