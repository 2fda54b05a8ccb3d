//! H-Net's ratio loss (§2.3.1, reference `load_balancing_loss`): steers the router toward one boundary every
//! `N` positions. With `F` the fraction of positions selected (no gradient) and `G` the mean boundary probability,
//! `L = N/(N−1) · ((N−1)·F·G + (1−F)·(1−G))`, minimal (= 1) at `F = G = 1/N`.
//! Means are taken over real tokens only (the mask), so padding does not count.

use burn::tensor::backend::Backend;
use burn::tensor::{Bool, Tensor};

/// The ratio loss of one stage (a scalar tensor).
///
/// # Shapes
/// `boundary_mask, mask: [B, L]`, `boundary_prob: [B, L]` → `[1]`.
pub fn ratio_loss<B: Backend>(
    boundary_mask: Tensor<B, 2, Bool>,
    boundary_prob: Tensor<B, 2>,
    mask: Tensor<B, 2, Bool>,
    target: f64,
) -> Tensor<B, 1> {
    assert!(target > 1.0, "the ratio target N must exceed 1, got {target}");
    let m = mask.float();
    let count = m.clone().sum().clamp_min(1.0);
    let f = (boundary_mask.float() * m.clone()).sum() / count.clone(); // no gradient: b comes from a comparison
    let g = (boundary_prob * m).sum() / count;
    let n = target;
    (f.clone() * g.clone() * (n - 1.0) + (f.neg() + 1.0) * (g.neg() + 1.0)) * (n / (n - 1.0))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::TestBackend;
    use burn::tensor::TensorData;

    fn t2(v: &[f32]) -> Tensor<TestBackend, 2> {
        Tensor::from_data(TensorData::new(v.to_vec(), [1, v.len()]), &Default::default())
    }
    fn b2(v: &[bool]) -> Tensor<TestBackend, 2, Bool> {
        Tensor::from_data(TensorData::new(v.to_vec(), [1, v.len()]), &Default::default())
    }

    #[test]
    fn equals_one_at_f_equals_g_equals_one_over_n() {
        // N = 4: one boundary in four positions, mean probability 1/4.
        let loss = ratio_loss(b2(&[true, false, false, false]), t2(&[0.7, 0.1, 0.1, 0.1]), b2(&[true; 4]), 4.0);
        assert!((loss.into_scalar() - 1.0).abs() < 1e-6);
    }

    #[test]
    fn padding_is_ignored_and_too_many_boundaries_cost_more() {
        // The same real tokens followed by padding that would otherwise change F and G.
        let padded = ratio_loss(
            b2(&[true, false, false, false, true, true]),
            t2(&[0.7, 0.1, 0.1, 0.1, 0.9, 0.9]),
            b2(&[true, true, true, true, false, false]),
            4.0,
        );
        assert!((padded.into_scalar() - 1.0).abs() < 1e-6);
        let dense = ratio_loss(b2(&[true; 4]), t2(&[0.9; 4]), b2(&[true; 4]), 4.0).into_scalar();
        assert!(dense > 1.5, "{dense}");
    }
}
