//! The fused head loss on host slices (burn's Flex backend; see [`crate::host`]): the same math as the tensor-op
//! path in this module's parent, in one pass over the logits instead of about eight.
//!
//! `logits = h·Wᵀ` is one matrix product into a fresh `[N, V]` buffer. Then each row, on its own core, in place:
//! read the target's logit, take the maximum, replace every logit by `e = exp(logit − top)` while summing them
//! (`s`); `lse = top + ln s`, and the row's loss is `wₙ·(lse − logit[tₙ])`. The gradient with respect to the
//! logits is `Gₙ = wₙ·(eₙ / sₙ − onehot(tₙ))`; it is never written out. Its row scale `aₙ = wₙ / sₙ` moves onto
//! the small operands, and its one-hot part becomes a row update:
//!
//! `∂h = G·W = diag(a)·(E·W) − diag(w)·W[t]`,  `∂W = Gᵀ·h = Eᵀ·(diag(a)·h) − Σₙ wₙ·e_{tₙ}·hₙᵀ`,
//!
//! two more products over the same buffer. A row is 200 KB for GPT-2's vocabulary, so its second walk finds it in
//! the core's cache.

use crate::host::for_rows;
use crate::host::gemm::{matmul, Matrix};
use crate::host::vector::{exp_shifted_in_place, max, simd};

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
    assert!(c > 0 && w.len().is_multiple_of(c), "W holds {} values, not rows of {c}", w.len());
    assert_eq!(weight.len(), n, "one weight per row");
    let v = w.len() / c;
    let (hm, wm) = (Matrix::row_major(h, n, c), Matrix::row_major(w, v, c));
    let targets: Vec<Option<usize>> = targets.iter().map(|&t| usize::try_from(t).ok().filter(|&t| t < v)).collect();
    let mut e = matmul(hm, wm.t()); // [N, V]: the logits, then e = exp(logits − top) in place
                                    // Per row: (loss, a = w / s).
    let rows = for_rows(&mut e, v, |i, row| {
        simd(
            #[inline(always)]
            || {
                let picked = targets[i].map_or(f32::NAN, |t| row[t]);
                let top = max(row);
                let s = exp_shifted_in_place(row, top);
                let lse = top as f64 + s.ln();
                (weight[i] as f64 * (lse - picked as f64), (weight[i] as f64 / s) as f32)
            },
        )
    });
    // In row order: the same loss however the rows were scheduled.
    let loss = rows.iter().map(|r| r.0).sum();
    let em = Matrix::row_major(&e, n, v);
    let h_grad = need_h.then(|| {
        let mut g = matmul(em, wm); // [N, C]: E·W
        for (i, row) in g.chunks_exact_mut(c).enumerate() {
            let a = rows[i].1;
            row.iter_mut().for_each(|x| *x *= a);
            if let Some(t) = targets[i] {
                row.iter_mut().zip(&w[t * c..(t + 1) * c]).for_each(|(x, wt)| *x -= weight[i] * wt);
            }
        }
        g
    });
    let w_grad = need_w.then(|| {
        let scaled: Vec<f32> = h.chunks_exact(c).zip(&rows).flat_map(|(hn, r)| hn.iter().map(move |x| x * r.1)).collect();
        let mut g = matmul(em.t(), Matrix::row_major(&scaled, n, c)); // [V, C]: Eᵀ·(diag(a)·h)
        for (i, hn) in h.chunks_exact(c).enumerate() {
            if let Some(t) = targets[i] {
                g[t * c..(t + 1) * c].iter_mut().zip(hn).for_each(|(x, hv)| *x -= weight[i] * hv);
            }
        }
        g
    });
    HeadLoss { loss, h_grad, w_grad }
}
