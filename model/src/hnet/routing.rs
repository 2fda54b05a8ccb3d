//! H-Net's routing module (Hwang, Wang, Gu 2025, §2.2.1; reference `dc.py` `RoutingModule`).
//!
//! A boundary is predicted where adjacent encoder states stop being similar:
//! `p_t = clamp((1 − cos(W_q x̂_{t−1}, W_k x̂_t)) / 2, 0, 1)`, `p_0 = 1`, `b_t = p_t > 0.5` (strict, as in the
//! code), confidence `c_t = max(p_t, 1 − p_t)`. `W_q`, `W_k` start as the identity, so at initialisation a boundary
//! fires exactly where consecutive states point in more than orthogonal directions.

use burn::module::Module;
use burn::tensor::backend::Backend;
use burn::tensor::{Bool, Tensor};

use crate::nn::linear::{self, Linear};

/// The router's per-position outputs.
#[derive(Debug, Clone)]
pub struct Routing<B: Backend> {
    /// `p_t`, the boundary probability. `[B, L]`.
    pub boundary_prob: Tensor<B, 2>,
    /// `b_t = (p_t > 0.5) ∧ mask_t`. `[B, L]`.
    pub boundary_mask: Tensor<B, 2, Bool>,
    /// `c_t = max(p_t, 1 − p_t)`. `[B, L]`.
    pub selected_probs: Tensor<B, 2>,
}

/// `W_q`, `W_k` without bias, identity-initialised.
#[derive(Module, Debug)]
pub struct RoutingModule<B: Backend> {
    /// Applied to the previous position.
    pub q_proj: Linear<B>,
    /// Applied to the current position.
    pub k_proj: Linear<B>,
}

fn identity_linear<B: Backend>(d: usize, device: &B::Device) -> Linear<B> {
    Linear::from_weight(Tensor::eye(d, device))
}

fn normalize<B: Backend>(v: Tensor<B, 3>) -> Tensor<B, 3> {
    let norm = v.clone().powi_scalar(2).sum_dim(2).sqrt().clamp_min(1e-12); // [B, L, 1]
    v / norm
}

impl<B: Backend> RoutingModule<B> {
    /// Identity-initialised router for width `d`.
    pub fn new(d: usize, device: &B::Device) -> Self {
        Self { q_proj: identity_linear(d, device), k_proj: identity_linear(d, device) }
    }

    /// Routes positions `x̂_0..x̂_{L−1}`. `prev` is the encoder state just before `x̂_0` when continuing a sequence
    /// (cached decoding); without it position 0 starts the sequence and gets `p_0 = 1`.
    ///
    /// # Shapes
    /// `x: [B, L, D]`, `prev: [B, 1, D]`, `mask: [B, L]` (true = real token) → [`Routing`] of `[B, L]` tensors.
    pub fn forward(&self, x: Tensor<B, 3>, prev: Option<Tensor<B, 3>>, mask: Tensor<B, 2, Bool>) -> Routing<B> {
        let [b, l, _] = x.dims();
        let starts_sequence = prev.is_none();
        // The predecessor of each position that has one: `prev` for position 0 when continuing.
        let before = match (prev, l) {
            (Some(p), 1) => Some(p),
            (Some(p), _) => Some(Tensor::cat(vec![p, x.clone().narrow(1, 0, l - 1)], 1)), // [B, L, D]
            (None, 1) => None,
            (None, _) => Some(x.clone().narrow(1, 0, l - 1)), // [B, L-1, D]
        };
        let p = before.map(|before| {
            let n = before.dims()[1];
            // In f32 even within a bf16 step: boundaries are a threshold on the cosine, and bf16's rounding of q
            // and k would move the ones near it.
            let (q, k) = linear::autocast(false, || (self.q_proj.forward(before), self.k_proj.forward(x.clone().narrow(1, l - n, n))));
            let (q, k) = (normalize(q), normalize(k));
            let cos = (q * k).sum_dim(2).reshape([b, n]); // [B, n]
            ((cos.neg() + 1.0) / 2.0).clamp(0.0, 1.0)
        });
        let p = match (starts_sequence, p) {
            (true, Some(p)) => Tensor::cat(vec![Tensor::ones([b, 1], &x.device()), p], 1),
            (true, None) => Tensor::ones([b, 1], &x.device()),
            (false, Some(p)) => p,
            (false, None) => unreachable!("a continued sequence always has a predecessor"),
        }; // [B, L]
        let boundary_mask = p.clone().greater_elem(0.5).bool_and(mask);
        let selected_probs = p.clone().max_pair(p.clone().neg() + 1.0);
        Routing { boundary_prob: p, boundary_mask, selected_probs }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::TestBackend;
    use burn::tensor::{TensorData, Tolerance};

    #[test]
    fn routing_on_three_hand_made_vectors() {
        let device = Default::default();
        let router = RoutingModule::<TestBackend>::new(2, &device);
        // x0 = (1, 0); x1 = (1, 1): cos 45° → p = (1 − 0.7071)/2 = 0.1464; x2 = (−1, 0.2): cos with x1 = −0.5547 → p = 0.7774.
        let x = Tensor::<TestBackend, 3>::from_floats([[[1.0, 0.0], [1.0, 1.0], [-1.0, 0.2]]], &device);
        let mask = Tensor::<TestBackend, 2, Bool>::from_data(TensorData::from([[true, true, true]]), &device);
        let r = router.forward(x.clone(), None, mask.clone());
        r.boundary_prob
            .clone()
            .into_data()
            .assert_approx_eq::<f32>(&TensorData::from([[1.0f32, 0.146_447, 0.777_350]]), Tolerance::absolute(1e-5));
        assert_eq!(r.boundary_mask.into_data().to_vec::<bool>().unwrap(), vec![true, false, true]);
        r.selected_probs
            .into_data()
            .assert_approx_eq::<f32>(&TensorData::from([[1.0f32, 0.853_553, 0.777_350]]), Tolerance::absolute(1e-5));
        // Masked positions are never boundaries, whatever p says.
        let mask = Tensor::<TestBackend, 2, Bool>::from_data(TensorData::from([[true, true, false]]), &device);
        assert_eq!(router.forward(x.clone(), None, mask).boundary_mask.into_data().to_vec::<bool>().unwrap(), vec![true, false, false]);
        // Continuing after a known previous state gives the same p as the full pass.
        let one = Tensor::<TestBackend, 2, Bool>::from_data(TensorData::from([[true]]), &device);
        let step = router.forward(x.clone().narrow(1, 2, 1), Some(x.narrow(1, 1, 1)), one);
        step.boundary_prob.into_data().assert_approx_eq::<f32>(&TensorData::from([[0.777_350f32]]), Tolerance::absolute(1e-5));
    }

    #[test]
    fn p_of_one_half_is_not_a_boundary() {
        // Orthogonal neighbours: cos = 0, p = 0.5 exactly, and the comparison is strict.
        let device = Default::default();
        let router = RoutingModule::<TestBackend>::new(2, &device);
        let x = Tensor::<TestBackend, 3>::from_floats([[[1.0, 0.0], [0.0, 1.0]]], &device);
        let mask = Tensor::<TestBackend, 2, Bool>::from_data(TensorData::from([[true, true]]), &device);
        let r = router.forward(x, None, mask);
        assert_eq!(r.boundary_prob.into_data().to_vec::<f32>().unwrap(), vec![1.0, 0.5]);
        assert_eq!(r.boundary_mask.into_data().to_vec::<bool>().unwrap(), vec![true, false]);
    }
}
