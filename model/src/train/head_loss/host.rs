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

use crate::host::bf16::{Packed, Scratch, Tiles};
use crate::host::gemm::{matmul, Matrix};
use crate::host::vector::{exp, exp_shifted_in_place, max, simd};
use crate::host::{for_rows, team};

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
    let (n, v, targets) = shapes(h, w, c, targets, weight);
    let (hm, wm) = (Matrix::row_major(h, n, c), Matrix::row_major(w, v, c));
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
        for (row, r) in g.chunks_exact_mut(c).zip(&rows) {
            row.iter_mut().for_each(|x| *x *= r.1);
        }
        subtract_targets_h(&mut g, w, c, &targets, weight);
        g
    });
    let w_grad = need_w.then(|| {
        let scaled: Vec<f32> = h.chunks_exact(c).zip(&rows).flat_map(|(hn, r)| hn.iter().map(move |x| x * r.1)).collect();
        let mut g = matmul(em.t(), Matrix::row_major(&scaled, n, c)); // [V, C]: Eᵀ·(diag(a)·h)
        subtract_targets_w(&mut g, h, c, &targets, weight);
        g
    });
    HeadLoss { loss, h_grad, w_grad }
}

/// `(N, V, targets)` for `h: [N, C]` and `w: [V, C]`, each target checked against the vocabulary.
fn shapes(h: &[f32], w: &[f32], c: usize, targets: &[i64], weight: &[f32]) -> (usize, usize, Vec<Option<usize>>) {
    let n = targets.len();
    assert!(c > 0 && w.len().is_multiple_of(c), "W holds {} values, not rows of {c}", w.len());
    assert_eq!(h.len(), n * c, "h holds {} values, not {n} rows of {c}", h.len());
    assert_eq!(weight.len(), n, "one weight per row");
    let v = w.len() / c;
    (n, v, targets.iter().map(|&t| usize::try_from(t).ok().filter(|&t| t < v)).collect())
}

/// The one-hot part of `∂h = G·W`: `∂hₙ −= wₙ·W[tₙ]`.
fn subtract_targets_h(g: &mut [f32], w: &[f32], c: usize, targets: &[Option<usize>], weight: &[f32]) {
    for (i, row) in g.chunks_exact_mut(c).enumerate() {
        if let Some(t) = targets[i] {
            row.iter_mut().zip(&w[t * c..(t + 1) * c]).for_each(|(x, wt)| *x -= weight[i] * wt);
        }
    }
}

/// The one-hot part of `∂W = Gᵀ·h`: `∂W[tₙ] −= wₙ·hₙ`.
fn subtract_targets_w(g: &mut [f32], h: &[f32], c: usize, targets: &[Option<usize>], weight: &[f32]) {
    for (i, hn) in h.chunks_exact(c).enumerate() {
        if let Some(t) = targets[i] {
            g[t * c..(t + 1) * c].iter_mut().zip(hn).for_each(|(x, hv)| *x -= weight[i] * hv);
        }
    }
}

/// Vocabulary columns per range of [`head_cross_entropy_bf16`]: a range's logits for 1,024 rows are 1 MB, in a
/// core's L2 beside its operands.
const RANGE: usize = 256;

/// [`head_cross_entropy`] in mixed precision: the three products over the vocabulary take bf16 operands (rounded
/// from the f32 `h` and `W`, and from the f32 probabilities) with f32 sums ([`crate::host::bf16`]: AMX where the
/// CPU has it); the softmax, the loss and the gradients' one-hot parts stay f32 (f64 sums), as under PyTorch's
/// autocast.
///
/// The vocabulary is cut into ranges of [`RANGE`] columns, and the `[N, V]` logits are never stored: each core
/// takes a contiguous run of ranges and, per range, multiplies the range's logits into its cache, then
///
/// 1. folds them into each row's running maximum and sum of exponentials (and reads the target's logit);
/// 2. with every row's `lse` known, multiplies them again and turns them into `P = softmax·w` in bf16 tiles, from
///    which `∂h += P·W[range]` (one partial sum per core, added in core order) and `∂W[range] = Pᵀ·h`.
///
/// Recomputing the logits costs a fourth product, cheap on AMX, and saves writing and reading 206 MB (batch 8 ×
/// 128, GPT-2's vocabulary) several times: with the products on AMX, memory traffic is what would be left.
///
/// # Shapes
/// As [`head_cross_entropy`].
pub fn head_cross_entropy_bf16(h: &[f32], w: &[f32], c: usize, targets: &[i64], weight: &[f32], need_h: bool, need_w: bool) -> HeadLoss {
    let (n, v, targets) = shapes(h, w, c, targets, weight);
    let (hm, wm) = (Matrix::row_major(h, n, c), Matrix::row_major(w, v, c));
    let (h_left, w_right_t) = (Packed::left(hm), Packed::right(wm.t())); // logits = h·Wᵀ
    let w_right = need_h.then(|| Packed::right(wm)); // ∂h = P·W
    let h_right = need_w.then(|| Packed::right(hm)); // ∂W = Pᵀ·h
    let (n_pad, c_pad) = (n.div_ceil(32) * 32, c.div_ceil(32) * 32);
    let ranges = v.div_ceil(RANGE);
    let tasks = team::workers().clamp(1, ranges.max(1));
    let runs = |task: usize| task * ranges / tasks..(task + 1) * ranges / tasks;
    // The columns of range r: (first column, count, panels of 32).
    let columns = |r: usize| {
        let cols = RANGE.min(v - r * RANGE);
        (r * RANGE, cols, cols.div_ceil(32))
    };
    // Range r's logits for every row into `out` ([n_pad, RANGE]).
    let logits = |tiles: &mut Tiles, r: usize, out: &mut [f32]| {
        let (first, _, panels) = columns(r);
        tiles.multiply(h_left.operand(), w_right_t.operand().panels(first / 32, panels), out, RANGE, false);
    };

    // Pass 1: per task and row, (max, Σ exp(logit − max), the target's logit where it falls in the task's ranges).
    let mut summaries: Vec<Vec<(f32, f64, f32)>> = vec![Vec::new(); tasks];
    team::for_each(summaries.iter_mut().collect(), |task, summary| {
        let (mut tiles, mut block) = (Tiles::new(), vec![0.0f32; n_pad * RANGE]);
        *summary = vec![(f32::NEG_INFINITY, 0.0, 0.0); n];
        for r in runs(task) {
            logits(&mut tiles, r, &mut block);
            let (first, cols, _) = columns(r);
            simd(
                #[inline(always)]
                || {
                    for (i, (row, s)) in block.chunks_exact_mut(RANGE).zip(summary.iter_mut()).enumerate() {
                        let row = &mut row[..cols];
                        if let Some(t) = targets[i].filter(|t| (first..first + cols).contains(t)) {
                            s.2 = row[t - first];
                        }
                        let top = max(row);
                        let sum = exp_shifted_in_place(row, top);
                        (s.0, s.1) = merge((s.0, s.1), top, sum);
                    }
                },
            );
        }
    });
    // lse per row, merged over the tasks in order; the loss in row order.
    let mut lse = vec![0.0f64; n];
    let mut loss = 0.0;
    for (i, l) in lse.iter_mut().enumerate() {
        let (mut top, mut sum, mut picked) = (f32::NEG_INFINITY, 0.0, f32::NAN);
        for (task, summary) in summaries.iter().enumerate() {
            (top, sum) = merge((top, sum), summary[i].0, summary[i].1);
            if targets[i].is_some_and(|t| runs(task).contains(&(t / RANGE))) {
                picked = summary[i].2;
            }
        }
        *l = top as f64 + sum.ln();
        loss += weight[i] as f64 * (*l - picked as f64);
    }
    if !need_h && !need_w {
        return HeadLoss { loss, h_grad: None, w_grad: None };
    }

    // Pass 2: per task, ∂h's partial sum over its ranges and ∂W's rows of its ranges.
    let mut h_parts: Vec<Vec<f32>> = vec![Vec::new(); tasks];
    let mut w_grad = vec![0.0f32; if need_w { v * c } else { 0 }];
    let mut w_rows: Vec<&mut [f32]> = Vec::with_capacity(tasks);
    let mut rest = w_grad.as_mut_slice();
    for task in 0..tasks {
        let rows = if need_w { (runs(task).end * RANGE).min(v) - (runs(task).start * RANGE).min(v) } else { 0 };
        let (mine, later) = rest.split_at_mut(rows * c);
        w_rows.push(mine);
        rest = later;
    }
    team::for_each(h_parts.iter_mut().zip(w_rows).collect(), |task, (h_part, w_rows)| {
        let mut tiles = Tiles::new();
        let mut block = vec![0.0f32; n_pad * RANGE];
        let (mut p, mut p_t) = (Scratch::zeros(n, RANGE), Scratch::zeros(RANGE, n));
        let mut w_block = vec![0.0f32; if need_w { RANGE * c_pad } else { 0 }];
        if need_h {
            *h_part = vec![0.0f32; n_pad * c_pad];
        }
        let start = runs(task).start * RANGE;
        for r in runs(task) {
            logits(&mut tiles, r, &mut block);
            let (first, cols, panels) = columns(r);
            if cols < RANGE {
                p.clear(); // columns past the vocabulary must be zeros
            }
            simd(
                #[inline(always)]
                || {
                    for (i, row) in block.chunks_exact(RANGE).take(n).enumerate() {
                        let (shift, scale) = (lse[i] as f32, weight[i]);
                        p.row_map(i, &row[..cols], |x| exp(x - shift) * scale);
                    }
                },
            );
            if let Some(w_right) = &w_right {
                tiles.multiply(p.operand().blocks(0, panels), w_right.operand().blocks(first / 32, panels), h_part, c_pad, true);
            }
            if let Some(h_right) = &h_right {
                p.transpose_into(&mut p_t);
                tiles.multiply(p_t.operand().panels(0, panels), h_right.operand(), &mut w_block, c_pad, false);
                for (j, row) in w_rows[(first - start) * c..][..cols * c].chunks_exact_mut(c).enumerate() {
                    row.copy_from_slice(&w_block[j * c_pad..][..c]);
                }
            }
        }
    });
    let h_grad = need_h.then(|| {
        let mut g = vec![0.0f32; n * c];
        for part in &h_parts {
            for (row, src) in g.chunks_exact_mut(c).zip(part.chunks_exact(c_pad)) {
                row.iter_mut().zip(src).for_each(|(x, y)| *x += y);
            }
        }
        subtract_targets_h(&mut g, w, c, &targets, weight);
        g
    });
    let w_grad = need_w.then(|| {
        subtract_targets_w(&mut w_grad, h, c, &targets, weight);
        w_grad
    });
    HeadLoss { loss, h_grad, w_grad }
}

/// A running `(max, Σ exp(x − max))` merged with another part's `(top, Σ exp(x − top))`.
fn merge((max, sum): (f32, f64), top: f32, part: f64) -> (f32, f64) {
    if part == 0.0 {
        return (max, sum);
    }
    if top > max || sum == 0.0 {
        (top, sum * ((max - top) as f64).exp() + part)
    } else {
        (max, sum + part * ((top - max) as f64).exp())
    }
}
