//! The straight-through estimator on the router's confidence (H-Net §2.2.2, reference `ste_func`):
//! forward exactly 1, backward the identity — so `∂L/∂c_t = ⟨∂L/∂z_t, z̃_t⟩` trains the router through every
//! position without changing what the decoder sees.

use burn::tensor::backend::Backend;
use burn::tensor::Tensor;

/// `c − stopgrad(c) + 1`: exactly ones in the forward pass, gradient 1 with respect to `c`.
pub fn ste<B: Backend, const D: usize>(c: Tensor<B, D>) -> Tensor<B, D> {
    c.clone() - c.detach() + 1.0
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::TestAutodiffBackend;
    use burn::tensor::TensorData;

    #[test]
    fn forward_is_one_and_the_gradient_matches_finite_differences() {
        let device = Default::default();
        let c = Tensor::<TestAutodiffBackend, 1>::from_floats([0.6, 0.93, 0.51], &device).require_grad();
        let z = Tensor::<TestAutodiffBackend, 1>::from_floats([2.0, -1.0, 0.5], &device);
        let out = ste(c.clone());
        assert_eq!(out.clone().into_data().to_vec::<f32>().unwrap(), vec![1.0, 1.0, 1.0]);
        // L = Σ z·ste(c)²: autodiff gives ∂L/∂c = 2·z·ste(c) = 2z (identity through the STE, forward value 1).
        let loss = (out.clone() * out * z.clone()).sum();
        let grad = c.grad(&loss.backward()).unwrap();
        // Finite differences of the surrogate c ↦ Σ z·(c − c₀ + 1)², which has the same gradient at c₀.
        let surrogate = |cv: [f32; 3], i: usize, h: f32| -> f32 {
            let base = [0.6f32, 0.93, 0.51];
            (0..3)
                .map(|k| {
                    let ck = cv[k] + if k == i { h } else { 0.0 };
                    let s = ck - base[k] + 1.0;
                    [2.0f32, -1.0, 0.5][k] * s * s
                })
                .sum()
        };
        let fd: Vec<f32> =
            (0..3).map(|i| (surrogate([0.6, 0.93, 0.51], i, 1e-3) - surrogate([0.6, 0.93, 0.51], i, -1e-3)) / 2e-3).collect();
        grad.into_data().assert_approx_eq::<f32>(&TensorData::from(fd.as_slice()), burn::tensor::Tolerance::absolute(1e-2));
        let _ = z;
    }
}
