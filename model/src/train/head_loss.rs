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

use burn::tensor::backend::Backend;
use burn::tensor::{Bool, Int, Tensor};

/// Mean cross-entropy of the tied head `h · Wᵀ` against `targets` over the rows where `mask` is true, with the
/// gradients of `h` and `w` attached in closed form (see the module docs). Equal in value and gradient to
/// `cross_entropy(h·Wᵀ, targets, mask)` through autodiff.
///
/// # Shapes
/// `h: [N, C]`, `w: [V, C]`, `targets, mask: [N]` → `[1]`.
pub fn head_cross_entropy<B: Backend>(
    h: Tensor<B, 2>,
    w: Tensor<B, 2>,
    targets: Tensor<B, 1, Int>,
    mask: Tensor<B, 1, Bool>,
) -> Tensor<B, 1> {
    let [n, _] = h.dims();
    let real = mask.float().reshape([n, 1]);
    // [N, 1]: 1 / n_real on real rows, 0 elsewhere.
    let weight = real.clone() / real.sum().clamp_min(1.0).unsqueeze::<2>();
    // The picked logits ⟨hₙ, W[tₙ]⟩, on the graph: [N, 1].
    let picked = (h.clone() * w.clone().select(0, targets)).sum_dim(1);

    // Constants for autodiff: `detach` alone keeps a parameter's `require_grad`, which would put the whole [N, V]
    // computation below back on the graph.
    let constant = |t: &Tensor<B, 2>| t.clone().detach().set_require_grad(false);
    let (hd, wd) = (constant(&h), constant(&w));
    // Each [N, V] step below consumes the only reference to its input, so backends that can work in place do.
    let logits = hd.clone().matmul(wd.clone().transpose()); // [N, V]
    let top = logits.clone().max_dim(1); // [N, 1]
    let e = (logits - top.clone()).exp(); // [N, V]
    let s = e.clone().sum_dim(1); // [N, 1], ≥ 1
    let lse = top + s.clone().log(); // [N, 1]
    let ce = ((lse - picked) * weight.clone()).sum();

    let need_h = B::ad_enabled(&h.device());
    let need_w = w.is_require_grad();
    if !need_h && !need_w {
        return ce;
    }
    let p = e * (weight / s); // [N, V]: ∂(Σ w·lse)/∂logits
    let mut surrogate = Tensor::<B, 1>::zeros([1], &h.device());
    if need_w {
        // ∂W = Pᵀ·h: [V, C]
        surrogate = surrogate + (w * p.clone().transpose().matmul(hd)).sum();
    }
    if need_h {
        // ∂h = P·W: [N, C]
        surrogate = surrogate + (h * p.matmul(wd)).sum();
    }
    ce + surrogate.clone() - surrogate.detach()
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
    fn value_and_both_gradients_match_autodiff_through_the_logits() {
        let (h0, w0, targets, mask) = inputs(24, 16, 37);
        let (h, w) = (Param::from_tensor(h0.clone()), Param::from_tensor(w0.clone()));
        let fused = head_cross_entropy(h.val(), w.val(), targets.clone(), mask.clone());
        let (h_ref, w_ref) = (Param::from_tensor(h0), Param::from_tensor(w0));
        let want = reference(h_ref.val(), w_ref.val(), targets, mask);
        let (fv, rv) = (fused.clone().into_scalar(), want.clone().into_scalar());
        assert!(rv > 1.0 && (fv - rv).abs() < 1e-5 * rv, "loss {fv} vs {rv}");
        let (g, g_ref) = (fused.backward(), want.backward());
        let gh = h.val().grad(&g).expect("∂h");
        let gh_ref = h_ref.val().grad(&g_ref).expect("∂h reference");
        assert!(gh_ref.clone().abs().max().into_scalar() > 1e-3, "the reference gradient is not trivial");
        assert!(max_diff(gh, gh_ref) < 1e-5);
        let gw = w.val().grad(&g).expect("∂W");
        let gw_ref = w_ref.val().grad(&g_ref).expect("∂W reference");
        assert!(max_diff(gw, gw_ref) < 1e-5);
    }

    #[test]
    fn masked_rows_get_no_gradient_and_a_frozen_head_gets_none() {
        let (h0, w0, targets, mask) = inputs(8, 4, 11);
        let h = Param::from_tensor(h0);
        let w = Param::from_tensor(w0).set_require_grad(false);
        let g = head_cross_entropy(h.val(), w.val(), targets, mask.clone()).backward();
        assert!(w.val().grad(&g).is_none(), "a frozen head has no gradient");
        let gh = h.val().grad(&g).expect("∂h");
        let norms = gh.abs().sum_dim(1).into_data().to_vec::<f32>().unwrap();
        let real = mask.into_data().to_vec::<bool>().unwrap();
        for (norm, real) in norms.iter().zip(real) {
            assert_eq!(*norm > 0.0, real, "row gradient {norm} on a {} row", if real { "real" } else { "masked" });
        }
    }

    #[test]
    fn without_autodiff_it_is_the_plain_cross_entropy_even_far_from_the_top() {
        let d = Default::default();
        // One row whose target sits 200 nats below the top: its probability underflows f32, the loss must not.
        let h = Tensor::<TestBackend, 2>::from_floats([[1.0, 0.0], [0.0, 1.0]], &d);
        let w = Tensor::<TestBackend, 2>::from_floats([[200.0, 0.0], [0.0, 0.0], [0.0, 2f32.ln()]], &d);
        let targets = Tensor::<TestBackend, 1, Int>::from_ints([1, 2], &d);
        let mask = Tensor::<TestBackend, 1, Bool>::from_data(TensorData::from([true, true]), &d);
        let got = head_cross_entropy(h, w, targets, mask).into_scalar();
        // Row 0: logits (200, 0, 0) → 200 + ln(1 + 2e-200) ≈ 200; row 1: logits (0, 0, ln 2), target 2 → ln(4 / 2).
        let want = (200.0 + 2f32.ln()) / 2.0;
        assert!((got - want).abs() < 1e-4, "{got} vs {want}");
    }
}
