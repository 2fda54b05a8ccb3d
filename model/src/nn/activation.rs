//! Activations with their CPU kernels beside them: GPT-2's `gelu_new` (the tanh approximation of GELU, also
//! GPTBigCode's `gelu_pytorch_tanh`) and SiLU (SwiGLU's gate). On the host (burn's Flex backend) each is one
//! vectorised pass computing the function and its derivative, attached to autodiff by
//! [`host::attach_elementwise`]; elsewhere tensor operations. The tests hold the two to each other.

use burn::tensor::activation::sigmoid;
use burn::tensor::backend::Backend;
use burn::tensor::Tensor;

use crate::host::{self, vector, vector::simd};

/// GPT-2's "gelu_new": the tanh approximation of GELU, which the released weights were trained with,
/// `0.5·x·(1 + tanh(u))` with `u = √(2/π)·(x + 0.044715·x³)`.
///
/// Computed as `x·σ(2u)`, the same function (`(1 + tanh u) / 2 = σ(2u)`), because backends have a sigmoid op with
/// its own fused backward and an exp-based kernel, where `tanh` on the CPU is a libm call several times slower, and
/// `x³` as `x·x²` rather than a `powf`.
///
/// On the host (burn's Flex backend) the function and its derivative are one vectorised pass
/// ([`gelu_new_on_host`]), attached to autodiff by [`host::attach_elementwise`].
pub fn gelu_new<B: Backend, const D: usize>(x: Tensor<B, D>) -> Tensor<B, D> {
    if host::all_f32_on_host(&[&x]) {
        return host::attach_elementwise(x, gelu_new_on_host);
    }
    gelu_new_with_tensor_ops(x)
}

/// `√(2/π)`, GELU's tanh-approximation constant, and its cubic term's coefficient.
const SQRT_2_OVER_PI: f64 = 0.797_884_560_802_865_4;
const CUBIC: f64 = 0.044715;

/// [`gelu_new`] as tensor operations (every backend).
fn gelu_new_with_tensor_ops<B: Backend, const D: usize>(x: Tensor<B, D>) -> Tensor<B, D> {
    let two_u = ((x.clone() * x.clone()).mul_scalar(CUBIC).add_scalar(1.0) * x.clone()).mul_scalar(2.0 * SQRT_2_OVER_PI);
    x * sigmoid(two_u)
}

/// `gelu_new(x)` and its derivative over a slice: with `s = σ(2u)`, `y = x·s` and
/// `y′ = s + x·s·(1 − s)·2u′`, `u′ = √(2/π)·(1 + 3·0.044715·x²)`.
fn gelu_new_on_host(x: &[f32]) -> (Vec<f32>, Vec<f32>) {
    let (k, cubic) = ((2.0 * SQRT_2_OVER_PI) as f32, CUBIC as f32);
    host::map2(x, |x, y, dy| {
        simd(
            #[inline(always)]
            || {
                for ((&x, y), dy) in x.iter().zip(y).zip(dy) {
                    let x2 = x * x;
                    let s = vector::sigmoid(k * (x + cubic * x2 * x));
                    *y = x * s;
                    *dy = s + x * s * (1.0 - s) * k * (1.0 + 3.0 * cubic * x2);
                }
            },
        )
    })
}

/// SiLU, `x·σ(x)`. On the host (burn's Flex backend) the function and its derivative `σ(x)·(1 + x·(1 − σ(x)))` are
/// one vectorised pass, attached to autodiff by [`host::attach_elementwise`]; elsewhere burn's `silu`.
pub fn silu<B: Backend, const D: usize>(x: Tensor<B, D>) -> Tensor<B, D> {
    if !host::all_f32_on_host(&[&x]) {
        return burn::tensor::activation::silu(x);
    }
    host::attach_elementwise(x, silu_on_host)
}

/// `silu(x)` and its derivative over a slice.
fn silu_on_host(x: &[f32]) -> (Vec<f32>, Vec<f32>) {
    host::map2(x, |x, y, dy| {
        vector::simd(
            #[inline(always)]
            || {
                for ((&x, y), dy) in x.iter().zip(y).zip(dy) {
                    let s = vector::sigmoid(x);
                    *y = x * s;
                    *dy = s * (1.0 + x * (1.0 - s));
                }
            },
        )
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::TestBackend;
    use burn::tensor::TensorData;

    #[test]
    fn gelu_new_on_the_host_is_the_tensor_form_in_value_and_gradient() {
        host::assert_elementwise_matches("gelu_new", gelu_new, gelu_new_with_tensor_ops, -12.0, 12.0);
    }

    #[test]
    fn gelu_new_matches_hand_values() {
        let x = Tensor::<TestBackend, 1>::from_floats([-1.0, 0.0, 1.0, 3.0], &Default::default());
        // 0.5·x·(1 + tanh(√(2/π)(x + 0.044715x³))) computed by hand.
        let expected = TensorData::from([-0.158_808_f32, 0.0, 0.841_192, 2.996_363]);
        gelu_new(x).into_data().assert_approx_eq::<f32>(&expected, burn::tensor::Tolerance::absolute(1e-5));
    }

    #[test]
    fn gelu_new_is_the_tanh_form_over_the_range_activations_take() {
        // x·σ(2u) against Hugging Face's 0.5·x·(1 + tanh(u)) in f64, from -12 to 12 (σ saturates at both ends).
        let xs: Vec<f32> = (-240..=240).map(|i| i as f32 * 0.05).collect();
        let got = gelu_new(Tensor::<TestBackend, 1>::from_floats(xs.as_slice(), &Default::default())).into_data().to_vec::<f32>().unwrap();
        for (&x, g) in xs.iter().zip(got) {
            let x = x as f64;
            let want = 0.5 * x * (1.0 + ((2.0 / std::f64::consts::PI).sqrt() * (x + 0.044715 * x.powi(3))).tanh());
            assert!((g as f64 - want).abs() <= 1e-6 * (1.0 + want.abs()), "gelu_new({x}) = {g}, want {want}");
        }
    }

    #[test]
    fn silu_on_the_host_is_burns_in_value_and_gradient() {
        host::assert_elementwise_matches("silu", silu, burn::tensor::activation::silu, -20.0, 20.0);
    }
}
