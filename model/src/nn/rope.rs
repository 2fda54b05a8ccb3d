//! Rotary position embeddings (Su et al. 2021, "RoFormer"), GPT-NeoX "rotate half" form over the whole head.
//!
//! Positions are given explicitly (a start offset), so the H-Net main network can use chunk indices and cached
//! decoding can continue where the cache ends. cos/sin tables are computed on the host from the positions alone
//! (no tensor is read back), then uploaded.

use burn::tensor::backend::Backend;
use burn::tensor::{Tensor, TensorData};

/// RoPE base frequency of H-Net's stacks (RoFormer's); Llama-family decoders bring their own (`rope_theta`).
pub const THETA: f64 = 10_000.0;

/// Rotates `x` by the angles of positions `start..start + T` at base frequency [`THETA`].
///
/// # Shapes
/// `x: [B, nh, T, hs]` (hs even) → `[B, nh, T, hs]`.
pub fn apply_rope<B: Backend>(x: Tensor<B, 4>, start: usize) -> Tensor<B, 4> {
    apply_rope_with(x, start, THETA)
}

/// Rotates `x` by the angles of positions `start..start + T` at base frequency `theta`: dimension pair
/// `(i, i + hs/2)` turns by `p·θ^(−2i/hs)`, as Hugging Face's Llama `rotate_half` does.
///
/// # Shapes
/// `x: [B, nh, T, hs]` (hs even) → `[B, nh, T, hs]`.
pub fn apply_rope_with<B: Backend>(x: Tensor<B, 4>, start: usize, theta: f64) -> Tensor<B, 4> {
    let [_, _, t, hs] = x.dims();
    let half = hs / 2;
    let mut cos = Vec::with_capacity(t * hs);
    let mut sin = Vec::with_capacity(t * hs);
    for p in start..start + t {
        for i in 0..hs {
            let freq = theta.powf(-2.0 * (i % half) as f64 / hs as f64);
            let angle = p as f64 * freq;
            cos.push(angle.cos() as f32);
            sin.push(angle.sin() as f32);
        }
    }
    let device = x.device();
    let cos = Tensor::<B, 2>::from_data(TensorData::new(cos, [t, hs]), &device).unsqueeze::<4>(); // [1, 1, T, hs]
    let sin = Tensor::<B, 2>::from_data(TensorData::new(sin, [t, hs]), &device).unsqueeze::<4>();
    let x1 = x.clone().narrow(3, 0, half);
    let x2 = x.clone().narrow(3, half, half);
    let rotated = Tensor::cat(vec![x2.neg(), x1], 3); // rotate_half(x) = [-x2, x1]
    x * cos + rotated * sin
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::TestBackend;

    #[test]
    fn position_zero_is_the_identity_and_rotation_preserves_norms() {
        let device = Default::default();
        let x = Tensor::<TestBackend, 4>::random([1, 2, 3, 8], burn::tensor::Distribution::Normal(0.0, 1.0), &device);
        let at0 = apply_rope(x.clone().narrow(2, 0, 1), 0);
        at0.into_data().assert_approx_eq::<f32>(&x.clone().narrow(2, 0, 1).into_data(), burn::tensor::Tolerance::absolute(1e-6));
        let rotated = apply_rope(x.clone(), 5);
        let norms = |t: Tensor<TestBackend, 4>| t.powi_scalar(2).sum_dim(3).into_data();
        norms(rotated).assert_approx_eq::<f32>(&norms(x), burn::tensor::Tolerance::absolute(1e-4));
    }

    #[test]
    fn scores_depend_only_on_relative_position() {
        // ⟨R(p)q, R(p+k)k⟩ is the same for every p: attention sees distances, not absolute positions.
        let device = Default::default();
        let q = Tensor::<TestBackend, 4>::random([1, 1, 1, 8], burn::tensor::Distribution::Normal(0.0, 1.0), &device);
        let k = Tensor::<TestBackend, 4>::random([1, 1, 1, 8], burn::tensor::Distribution::Normal(0.0, 1.0), &device);
        let score = |p: usize| (apply_rope(q.clone(), p) * apply_rope(k.clone(), p + 3)).sum().into_scalar();
        assert!((score(0) - score(17)).abs() < 1e-4);
    }
}
