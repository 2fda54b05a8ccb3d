//! The SwiGLU MLP (Shazeer 2020, "GLU Variants Improve Transformer"): `fc2(silu(a) ⊙ g)` with `[a | g] = fc1(x)`,
//! in H-Net's stacks and in Llama-family decoders (whose separate `gate_proj` and `up_proj` are `fc1`'s two halves,
//! joined at loading).

use burn::module::Module;
use burn::tensor::backend::Backend;
use burn::tensor::Tensor;

use crate::nn::activation::silu;
use crate::nn::linear::Linear;

/// SwiGLU MLP: `fc2(silu(a) ⊙ g)` with `[a | g] = fc1(x)`.
#[derive(Module, Debug)]
pub struct SwiGlu<B: Backend> {
    /// `[D, 2H]`.
    pub fc1: Linear<B>,
    /// `[H, D]`.
    pub fc2: Linear<B>,
}

impl<B: Backend> SwiGlu<B> {
    /// `[B, T, D]` → `[B, T, D]`.
    pub fn forward(&self, x: Tensor<B, 3>) -> Tensor<B, 3> {
        let h = self.fc1.forward(x);
        let width = h.dims()[2] / 2;
        self.fc2.forward(silu(h.clone().narrow(2, 0, width)) * h.narrow(2, width, width))
    }
}
