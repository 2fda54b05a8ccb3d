//! The fused head loss on host slices (burn's Flex backend; see [`crate::host`]): the same math as the tensor-op
//! path in this module's parent, in one pass over the logits instead of about eight.
//!
//! `logits = h·Wᵀ` is one matrix product into a fresh `[N, V]` buffer. Then each row, on its own core, in place:
//! read the target's logit, take the maximum, replace every logit by `exp(logit − top)` while summing them (`s`),
//! `lse = top + ln s`, and the row's loss is `wₙ·(lse − logit[tₙ])`. When gradients are wanted the row becomes
//! `Gₙ = wₙ·(softmax − onehot(tₙ))` — scale by `wₙ / s`, subtract `wₙ` at the target — which is `∂ce/∂logits`
//! exactly; `∂h = G·W` and `∂W = Gᵀ·h` are two more products over the same buffer. A row is 200 KB for GPT-2's
//! vocabulary, so its second and third walk find it in the core's cache.

use crate::host::for_rows;
use crate::host::gemm::{matmul, Matrix};
use crate::host::vector::{exp_shifted_in_place, max, scale_in_place, simd};

/// What [`head_cross_entropy`] computes.
#[derive(Debug)]
pub struct HeadLoss {
    /// `Σₙ wₙ·(lse(logitsₙ) − logitsₙ[tₙ])` (NaN when a logit is not finite, or a target is out of range).
    pub loss: f64,
    /// `∂loss/∂h`, `[N, C]`, when asked for.
    pub h_grad: Option<Vec<f32>>,
    /// `∂loss/∂W`, `[V, C]`, when asked for.
    pub w_grad: Option<Vec<f32>>,
}

/// The weighted cross-entropy of the tied head `h·Wᵀ` against `targets`, and its gradients when asked for.
///
/// # Shapes
/// `h: [N, C]`, `w: [V, C]`, `targets, weight: [N]`, all row-major.
///
/// # Panics
/// When the lengths do not fit those shapes.
pub fn head_cross_entropy(h: &[f32], w: &[f32], c: usize, targets: &[i64], weight: &[f32], need_h: bool, need_w: bool) -> HeadLoss {
    let n = targets.len();
    assert!(c > 0 && w.len() % c == 0, "W holds {} values, not rows of {c}", w.len());
    assert_eq!(weight.len(), n, "one weight per row");
    let v = w.len() / c;
    let (hm, wm) = (Matrix::row_major(h, n, c), Matrix::row_major(w, v, c));
    let mut logits = matmul(hm, wm.t()); // [N, V]
    let grad = need_h || need_w;
    let losses = for_rows(&mut logits, v, |i, row| {
        simd(|| {
            let (wn, target) = (weight[i], usize::try_from(targets[i]).ok().filter(|&t| t < v));
            let picked = target.map_or(f32::NAN, |t| row[t]);
            let top = max(row);
            let s = exp_shifted_in_place(row, top);
            let lse = top as f64 + s.ln();
            if grad {
                scale_in_place(row, (wn as f64 / s) as f32);
                if let Some(t) = target {
                    row[t] -= wn;
                }
            }
            wn as f64 * (lse - picked as f64)
        })
    });
    // In row order: the same loss however the rows were scheduled.
    let loss = losses.iter().sum();
    let g = Matrix::row_major(&logits, n, v);
    HeadLoss { loss, h_grad: need_h.then(|| matmul(g, wm)), w_grad: need_w.then(|| matmul(g.t(), hm)) }
}
