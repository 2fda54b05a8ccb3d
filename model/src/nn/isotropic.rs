//! The H-Net "isotropic" network: a stack of pre-norm causal transformer blocks with a final RMSNorm
//! (H-Net reference `isotropic.py`; the final norm is the paper's "norm balance", §2.3).
//!
//! Used for every H-Net stage here — encoder, main network and decoder. The reference also offers Mamba-2
//! layers; this project uses causal attention with rotary positions (`T` layers when `d_intermediate > 0`,
//! `t` layers without MLP otherwise), optionally with a sliding window, as the spec's §11 allows.
//! Positions are explicit so the main network can run over chunk indices.

use burn::module::Module;
use burn::nn::{Initializer, LinearConfig, RmsNorm, RmsNormConfig};
use burn::tensor::backend::Backend;
use burn::tensor::Tensor;
use serde::{Deserialize, Serialize};

use crate::error::ModelError;
use crate::nn::attention::{causal_attention, split_heads};
use crate::nn::cache::{KvCache, LayerKv};
use crate::nn::linear::Linear;
use crate::nn::rope::apply_rope;
use crate::nn::swiglu::SwiGlu;

/// Sizes of one isotropic stack.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct IsotropicConfig {
    /// Width.
    pub d_model: usize,
    /// Number of blocks.
    pub n_layer: usize,
    /// Attention heads (`d_model / n_head` must be even for RoPE).
    pub n_head: usize,
    /// SwiGLU hidden width; 0 = attention-only blocks.
    pub d_intermediate: usize,
    /// Sliding attention window in positions (a query sees itself and `window - 1` predecessors); 0 = global.
    #[serde(default)]
    pub window: usize,
}

impl IsotropicConfig {
    /// Checks what the module needs.
    pub fn validate(&self, what: &str) -> Result<(), ModelError> {
        self.check(what).map_err(ModelError::InvalidConfig)
    }

    pub(crate) fn check(&self, what: &str) -> Result<(), String> {
        if self.d_model == 0
            || self.n_head == 0
            || !self.d_model.is_multiple_of(self.n_head)
            || !(self.d_model / self.n_head).is_multiple_of(2)
        {
            return Err(format!("{what}: d_model ({}) must split into n_head ({}) heads of even width", self.d_model, self.n_head));
        }
        Ok(())
    }

    /// Builds the stack. Linear weights N(0, 0.02); the projections that write into the residual stream are scaled
    /// down by √(2·n_layer) as in GPT-2; norms start at 1.
    pub fn init<B: Backend>(&self, device: &B::Device) -> Isotropic<B> {
        let d = self.d_model;
        let out_std = 0.02 / ((2 * self.n_layer.max(1)) as f64).sqrt();
        let linear = |i, o, std| -> Linear<B> {
            LinearConfig::new(i, o).with_bias(false).with_initializer(Initializer::Normal { mean: 0.0, std }).init(device).into()
        };
        let layers = (0..self.n_layer)
            .map(|_| TBlock {
                norm1: RmsNormConfig::new(d).with_epsilon(1e-5).init(device),
                mixer: Attention {
                    wqkv: linear(d, 3 * d, 0.02),
                    out_proj: linear(d, d, out_std),
                    n_head: self.n_head,
                    window: self.window,
                },
                norm2: (self.d_intermediate > 0).then(|| RmsNormConfig::new(d).with_epsilon(1e-5).init(device)),
                mlp: (self.d_intermediate > 0)
                    .then(|| SwiGlu { fc1: linear(d, 2 * self.d_intermediate, 0.02), fc2: linear(self.d_intermediate, d, out_std) }),
            })
            .collect();
        Isotropic { layers, norm_f: RmsNormConfig::new(d).with_epsilon(1e-5).init(device) }
    }
}

/// Causal multi-head attention with rotary positions and no biases (H-Net `mha.py`).
#[derive(Module, Debug)]
pub struct Attention<B: Backend> {
    /// `[D, 3D]`: x → [q | k | v].
    pub wqkv: Linear<B>,
    /// `[D, D]`.
    pub out_proj: Linear<B>,
    /// Number of heads.
    pub n_head: usize,
    /// Sliding window (0 = global).
    pub window: usize,
}

impl<B: Backend> Attention<B> {
    /// # Shapes
    /// `x: [B, T, D]` at positions `start..start+T` (the cache, if any, holds positions `0..start`) → `[B, T, D]`.
    pub fn forward(&self, x: Tensor<B, 3>, start: usize, cache: Option<&mut LayerKv<B>>) -> Tensor<B, 3> {
        let [q, k, v] = split_heads(self.wqkv.forward(x), self.n_head, self.n_head); // [B, nh, T, hs] each
        let (q, k) = (apply_rope(q, start), apply_rope(k, start));
        self.out_proj.forward(causal_attention(q, k, v, self.window, cache))
    }
}

/// A pre-norm block: attention, then (optionally) SwiGLU.
#[derive(Module, Debug)]
pub struct TBlock<B: Backend> {
    /// Norm before attention.
    pub norm1: RmsNorm<B>,
    /// Causal attention.
    pub mixer: Attention<B>,
    /// Norm before the MLP (absent in attention-only blocks).
    pub norm2: Option<RmsNorm<B>>,
    /// The MLP (absent in attention-only blocks).
    pub mlp: Option<SwiGlu<B>>,
}

/// A stack of blocks and the final RMSNorm.
#[derive(Module, Debug)]
pub struct Isotropic<B: Backend> {
    /// The blocks.
    pub layers: Vec<TBlock<B>>,
    /// Final norm ("norm balance").
    pub norm_f: RmsNorm<B>,
}

impl<B: Backend> Isotropic<B> {
    /// Runs the stack over positions `start..start+T`, extending `cache` when given.
    ///
    /// # Shapes
    /// `[B, T, D]` → `[B, T, D]`.
    pub fn forward(&self, mut x: Tensor<B, 3>, start: usize, mut cache: Option<&mut KvCache<B>>) -> Tensor<B, 3> {
        for (i, block) in self.layers.iter().enumerate() {
            x = x.clone() + block.mixer.forward(block.norm1.forward(x), start, cache.as_deref_mut().map(|c| c.layer(i)));
            if let (Some(norm), Some(mlp)) = (&block.norm2, &block.mlp) {
                x = x.clone() + mlp.forward(norm.forward(x));
            }
        }
        self.norm_f.forward(x)
    }

    /// A fresh cache for this stack.
    pub fn new_cache(&self) -> KvCache<B> {
        KvCache::new(self.layers.len())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::TestBackend;
    use burn::tensor::Distribution;

    #[test]
    fn cached_steps_equal_the_full_pass() {
        let device = Default::default();
        for window in [0, 3] {
            let net = IsotropicConfig { d_model: 16, n_layer: 2, n_head: 2, d_intermediate: 32, window }.init::<TestBackend>(&device);
            let x = Tensor::<TestBackend, 3>::random([1, 7, 16], Distribution::Normal(0.0, 1.0), &device);
            let full = net.forward(x.clone(), 0, None);
            let mut cache = net.new_cache();
            let first = net.forward(x.clone().narrow(1, 0, 3), 0, Some(&mut cache));
            let mut parts = vec![first];
            for t in 3..7 {
                parts.push(net.forward(x.clone().narrow(1, t, 1), t, Some(&mut cache)));
            }
            Tensor::cat(parts, 1).into_data().assert_approx_eq::<f32>(&full.into_data(), burn::tensor::Tolerance::absolute(1e-5));
        }
    }
}
