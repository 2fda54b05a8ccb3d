//! H-Net's dechunk layer (§2.2.2 "smoothing" and "upsampling"; reference `dc.py` `DeChunkLayer`).
//!
//! Smoothing is an exponential moving average over chunks, `z̄_j = P_j ẑ_j + (1 − P_j) z̄_{j−1}`, with
//! `P = clamp(p_boundary, 1e-4, 1 − 1e-4)`. It is computed with a parallel prefix scan (Hillis–Steele: ⌈log₂ M⌉
//! rounds of elementwise ops): the pairs `(a_j, u_j) = (1 − P_j, P_j ẑ_j)` compose as
//! `(a, u) ∘ (a', u') = (a·a', a·u' + u)`. Unlike the closed form `exp(S_k − S_j)` with `S` a cumulative sum of
//! logs, the scan never subtracts large numbers, so it agrees with the one-step recurrence used in cached decoding
//! to float rounding. Upsampling ("plug-back") gives each position the latest chunk that starts at or before it:
//! `z̃_t = z̄[cs_t − 1]`.

use burn::tensor::backend::Backend;
use burn::tensor::{Int, Tensor};

/// Lower and upper clamp of `P` (reference: 1e-4).
pub const P_EPS: f64 = 1e-4;

/// EMA over chunks, continuing from `init` (the previous `z̄`, zero when absent).
///
/// # Shapes
/// `z: [B, M, D]`, `p: [B, M]` (already clamped), `init: [B, 1, D]` → `[B, M, D]`.
pub fn ema<B: Backend>(z: Tensor<B, 3>, p: Tensor<B, 2>, init: Option<Tensor<B, 3>>) -> Tensor<B, 3> {
    let [b, m, d] = z.dims();
    let device = z.device();
    let p3 = p.reshape([b, m, 1]); // [B, M, 1]
    let mut a = p3.clone().neg() + 1.0; // decay 1 − P
    let mut u = z * p3; // input P·ẑ
    let mut step = 1;
    while step < m {
        // Combine each element with the one `step` places before it; the first `step` elements combine with the
        // identity (a = 1, u = 0).
        let a_prev = Tensor::cat(vec![Tensor::ones([b, step, 1], &device), a.clone().narrow(1, 0, m - step)], 1);
        let u_prev = Tensor::cat(vec![Tensor::zeros([b, step, d], &device), u.clone().narrow(1, 0, m - step)], 1);
        u = a.clone() * u_prev + u;
        a = a * a_prev;
        step *= 2;
    }
    // `a` is now Π_{i≤j}(1 − P_i): the weight the initial value still carries at chunk j.
    match init {
        Some(init) => u + a * init,
        None => u,
    }
}

/// Plug-back: position t takes slot `idx_t` of `slots`.
///
/// # Shapes
/// `slots: [B, M, D]`, `idx: [B, L]` → `[B, L, D]`.
pub fn plug_back<B: Backend>(slots: Tensor<B, 3>, idx: Tensor<B, 2, Int>) -> Tensor<B, 3> {
    let [b, l] = idx.dims();
    let d = slots.dims()[2];
    slots.gather(1, idx.reshape([b, l, 1]).repeat_dim(2, d))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::TestBackend;
    use burn::tensor::{TensorData, Tolerance};

    #[test]
    fn ema_on_four_chunks_by_hand() {
        let device = Default::default();
        // One channel: ẑ = (1, 2, 3, 4), P = (1, 0.5, 0.25, 0.9).
        // z̄0 = 1; z̄1 = .5·2 + .5·1 = 1.5; z̄2 = .25·3 + .75·1.5 = 1.875; z̄3 = .9·4 + .1·1.875 = 3.7875.
        let z = Tensor::<TestBackend, 3>::from_floats([[[1.0], [2.0], [3.0], [4.0]]], &device);
        let p = Tensor::<TestBackend, 2>::from_floats([[1.0, 0.5, 0.25, 0.9]], &device);
        ema(z.clone(), p.clone(), None)
            .into_data()
            .assert_approx_eq::<f32>(&TensorData::from([[[1.0f32], [1.5], [1.875], [3.7875]]]), Tolerance::absolute(1e-6));
        // Continuing from a previous value of 10 only changes what P_0 < 1 lets through: with P_0 = 1, nothing.
        ema(z.clone(), p.clone(), Some(Tensor::full([1, 1, 1], 10.0, &device)))
            .into_data()
            .assert_approx_eq::<f32>(&TensorData::from([[[1.0f32], [1.5], [1.875], [3.7875]]]), Tolerance::absolute(1e-6));
        let p = Tensor::<TestBackend, 2>::from_floats([[0.5, 0.5, 0.25, 0.9]], &device);
        // z̄0 = .5·1 + .5·10 = 5.5; z̄1 = 1 + 2.75 = 3.75; z̄2 = .75 + 2.8125 = 3.5625; z̄3 = 3.6 + .35625 = 3.95625.
        ema(z, p, Some(Tensor::full([1, 1, 1], 10.0, &device)))
            .into_data()
            .assert_approx_eq::<f32>(&TensorData::from([[[5.5f32], [3.75], [3.5625], [3.95625]]]), Tolerance::absolute(1e-5));
    }

    #[test]
    fn the_scan_equals_the_recurrence_on_long_sequences() {
        let device = Default::default();
        let (m, d) = (37, 3);
        let z = Tensor::<TestBackend, 3>::random([2, m, d], burn::tensor::Distribution::Normal(0.0, 1.0), &device);
        let p = Tensor::<TestBackend, 2>::random([2, m], burn::tensor::Distribution::Uniform(P_EPS, 1.0 - P_EPS), &device);
        let scan = ema(z.clone(), p.clone(), None).into_data().to_vec::<f32>().unwrap();
        let (zv, pv) = (z.into_data().to_vec::<f32>().unwrap(), p.into_data().to_vec::<f32>().unwrap());
        for batch in 0..2 {
            let mut prev = vec![0.0f32; d];
            for j in 0..m {
                let pj = pv[batch * m + j];
                for c in 0..d {
                    prev[c] = pj * zv[(batch * m + j) * d + c] + (1.0 - pj) * prev[c];
                    assert!((prev[c] - scan[(batch * m + j) * d + c]).abs() < 1e-5);
                }
            }
        }
    }

    #[test]
    fn plug_back_indices_take_the_latest_chunk() {
        let device = Default::default();
        let slots = Tensor::<TestBackend, 3>::from_floats([[[10.0], [20.0], [30.0]]], &device);
        // b = 1 0 1 1 0 → cs − 1 = 0 0 1 2 2.
        let idx = Tensor::<TestBackend, 2, Int>::from_ints([[0, 0, 1, 2, 2]], &device);
        assert_eq!(plug_back(slots, idx).into_data().to_vec::<f32>().unwrap(), vec![10.0, 10.0, 20.0, 30.0, 30.0]);
    }
}
