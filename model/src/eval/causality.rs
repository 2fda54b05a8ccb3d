//! The causality check: change tokens after position t and make sure nothing at positions ≤ t moves — logits, and
//! for chunking models the boundary probabilities too. The seed's results came from exactly this kind of leak, so
//! `hnet-gpt compare` runs this on every architecture and refuses to report when it fails.
//!
//! It fails closed: a NaN anywhere in a compared output, or an output that cannot be read, counts as an infinite
//! change, never as none. Cases are batches of 1–3 rows of different lengths (padding masked, and the padding
//! tokens themselves changed too), and the same cases run through cached decoding, feeding several new tokens at
//! once after a prefill.

use burn::tensor::backend::Backend;
use burn::tensor::{Bool, Int, Tensor, TensorData};

use crate::arch::model::Model;
use crate::util::rng::Rng;

/// Largest change (max abs) allowed at positions ≤ t.
pub const TOLERANCE: f32 = 1e-5;

/// Outputs of one row: logits (`len × V`, flattened) and boundary probabilities (`len`; empty without chunking).
pub type RowOutputs = (Vec<f32>, Vec<f32>);

/// What the check found.
#[derive(Debug, Clone, PartialEq)]
pub struct Report {
    /// Largest change at positions ≤ t over all cases (infinite on NaN or a failed read).
    pub max_change: f32,
    /// Rows checked.
    pub rows: usize,
    /// For chunking models: whether the boundary decisions differed between positions in the cases — a check over
    /// a router that never (or always) fires would prove little about the chunk paths.
    pub boundaries_varied: bool,
}

/// Largest |a − b| over the first `k` values; NaN on either side, or too few values, is an infinite change.
fn max_diff(a: &[f32], b: &[f32], k: usize) -> f32 {
    if a.len() < k || b.len() < k {
        return f32::INFINITY;
    }
    a[..k].iter().zip(&b[..k]).map(|(x, y)| if x.is_nan() || y.is_nan() { f32::INFINITY } else { (x - y).abs() }).fold(0.0, f32::max)
}

/// Runs `cases` random batches through `probe` (rows of token ids → per-row outputs, `None` when a read failed):
/// 1–3 rows of 8–`max_len` tokens each, a random t per row, the tokens after it changed. Returns the largest change
/// seen at positions ≤ t.
pub fn check_with(probe: impl Fn(&[Vec<u32>]) -> Option<Vec<RowOutputs>>, vocab: usize, max_len: usize, cases: usize, seed: u64) -> Report {
    let mut rng = Rng::new(seed);
    let (mut worst, mut rows_checked) = (0.0f32, 0);
    let (mut saw_boundary, mut saw_no_boundary) = (false, false);
    for _ in 0..cases {
        let n_rows = 1 + rng.below(3);
        let lens: Vec<usize> = (0..n_rows).map(|_| (8 + rng.below(max_len.saturating_sub(7).max(1))).min(max_len).max(2)).collect();
        let ids: Vec<Vec<u32>> = lens.iter().map(|&len| (0..len).map(|_| rng.below(vocab) as u32).collect()).collect();
        let ts: Vec<usize> = lens.iter().map(|&len| rng.below(len - 1)).collect();
        let changed: Vec<Vec<u32>> = ids
            .iter()
            .zip(&ts)
            .map(|(row, &t)| {
                let mut c = row.clone();
                for id in c.iter_mut().skip(t + 1) {
                    if rng.below(2) == 0 {
                        *id = rng.below(vocab) as u32;
                    }
                }
                // At least one change.
                c[t + 1] = ((row[t + 1] as usize + 1 + rng.below(vocab - 1)) % vocab) as u32;
                c
            })
            .collect();
        let (Some(a), Some(b)) = (probe(&ids), probe(&changed)) else {
            return Report { max_change: f32::INFINITY, rows: rows_checked, boundaries_varied: false };
        };
        if a.len() != n_rows || b.len() != n_rows {
            return Report { max_change: f32::INFINITY, rows: rows_checked, boundaries_varied: false };
        }
        for (r, &t) in ts.iter().enumerate() {
            let ((la, pa), (lb, pb)) = (&a[r], &b[r]);
            let per = la.len() / lens[r];
            worst = worst.max(max_diff(la, lb, (t + 1) * per));
            if per == 0 {
                worst = f32::INFINITY;
            }
            if !pa.is_empty() {
                worst = worst.max(max_diff(pa, pb, t + 1));
                // Position 0 is always a boundary; look at the decisions after it.
                saw_boundary |= pa[1..].iter().any(|&p| p >= 0.5);
                saw_no_boundary |= pa[1..].iter().any(|&p| p < 0.5);
            }
            rows_checked += 1;
        }
    }
    Report { max_change: worst, rows: rows_checked, boundaries_varied: saw_boundary && saw_no_boundary }
}

/// The full forward pass over a padded batch (mask false on padding; padding tokens are arbitrary ids).
fn full_pass<B: Backend>(model: &Model<B>, rows: &[Vec<u32>]) -> Option<Vec<RowOutputs>> {
    let device = model.device();
    let width = rows.iter().map(Vec::len).max()?;
    let n = rows.len();
    let (mut ids, mut mask) = (Vec::with_capacity(n * width), Vec::with_capacity(n * width));
    for row in rows {
        for i in 0..width {
            // The padding repeats the row's own tokens backwards: varied ids, and different in the changed batch.
            ids.push(*row.get(i).unwrap_or(&row[(width - i) % row.len()]) as i32);
            mask.push(i < row.len());
        }
    }
    let tokens = Tensor::<B, 2, Int>::from_data(TensorData::new(ids, [n, width]), &device);
    let mask = Tensor::<B, 2, Bool>::from_data(TensorData::new(mask, [n, width]), &device);
    let out = model.forward_full(tokens, mask, None);
    let logits = out.logits.into_data().to_vec::<f32>().ok()?; // [n, width, V]
    let probs = match out.aux {
        Some(a) => Some(a.routing.boundary_prob.into_data().to_vec::<f32>().ok()?), // [n, width]
        None => None,
    };
    let v = logits.len() / (n * width);
    Some(
        rows.iter()
            .enumerate()
            .map(|(r, row)| {
                let l = logits[r * width * v..(r * width + row.len()) * v].to_vec();
                let p = probs.as_ref().map_or(Vec::new(), |p| p[r * width..r * width + row.len()].to_vec());
                (l, p)
            })
            .collect(),
    )
}

/// Cached decoding, one row at a time: a prefill of the first third, then the rest fed in pieces of up to five
/// tokens at once.
#[cfg(not(target_arch = "wasm32"))]
fn cached_pass<B: Backend>(model: &Model<B>, rows: &[Vec<u32>]) -> Option<Vec<RowOutputs>> {
    rows.iter()
        .map(|row| {
            let mut state = model.new_state();
            let (mut logits, mut probs) = (Vec::new(), Vec::new());
            let mut start = 0;
            let mut piece = (row.len() / 3).max(1);
            while start < row.len() {
                let end = (start + piece).min(row.len());
                let out = model.forward_cached_blocking(model.tokens_tensor(&row[start..end]).ok()?, &mut state, false).ok()?;
                logits.extend(out.logits.into_data().to_vec::<f32>().ok()?);
                if let Some(r) = out.routing {
                    probs.extend(r.boundary_prob.into_data().to_vec::<f32>().ok()?);
                }
                start = end;
                piece = 5;
            }
            Some((logits, probs))
        })
        .collect()
}

/// The check on `model`'s full forward pass with padded multi-row batches. Reads tensors synchronously (native
/// backends).
pub fn check<B: Backend>(model: &Model<B>, cases: usize, seed: u64) -> Report {
    check_with(|rows| full_pass(model, rows), model.config.vocab_size(), 32.min(model.n_ctx()), cases, seed)
}

/// The check through cached decoding (prefill, then several new tokens per call).
#[cfg(not(target_arch = "wasm32"))]
pub fn check_cached<B: Backend>(model: &Model<B>, cases: usize, seed: u64) -> Report {
    check_with(|rows| cached_pass(model, rows), model.config.vocab_size(), 32.min(model.n_ctx()), cases, seed)
}

/// The largest change at positions ≤ t over both checks (full pass and cached decoding).
#[cfg(not(target_arch = "wasm32"))]
pub fn max_leak<B: Backend>(model: &Model<B>, cases: usize, seed: u64) -> f32 {
    check(model, cases, seed).max_change.max(check_cached(model, cases.div_ceil(2), seed ^ 0x5eed).max_change)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn constant(rows: &[Vec<u32>], value: f32) -> Option<Vec<RowOutputs>> {
        Some(rows.iter().map(|r| (vec![value; r.len() * 2], Vec::new())).collect())
    }

    #[test]
    fn a_nan_or_a_failed_read_is_a_failure_not_zero() {
        assert_eq!(check_with(|r| constant(r, 1.0), 100, 16, 4, 1).max_change, 0.0);
        assert_eq!(check_with(|r| constant(r, f32::NAN), 100, 16, 4, 1).max_change, f32::INFINITY);
        assert_eq!(check_with(|_| None, 100, 16, 4, 1).max_change, f32::INFINITY);
        // Too few values for the positions checked.
        assert_eq!(
            check_with(|rows| Some(rows.iter().map(|_| (vec![0.0], Vec::new())).collect()), 100, 16, 4, 1).max_change,
            f32::INFINITY
        );
    }

    #[test]
    fn a_probe_that_looks_ahead_is_caught() {
        // Each position's output is the sum of all ids of its row, future included.
        let leaky = |rows: &[Vec<u32>]| Some(rows.iter().map(|r| (vec![r.iter().sum::<u32>() as f32; r.len()], Vec::new())).collect());
        assert!(check_with(leaky, 100, 16, 8, 3).max_change >= 1.0);
    }
}
