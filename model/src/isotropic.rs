//! The H-Net "isotropic" network: a stack of pre-norm causal transformer blocks with a final RMSNorm
//! (H-Net reference `isotropic.py`; the final norm is the paper's "norm balance", §2.3).
//!
//! Used for every H-Net stage here — encoder, main network and decoder. The reference also offers Mamba-2
//! layers; this project uses causal attention with rotary positions (`T` layers when `d_intermediate > 0`,
//! `t` layers without MLP otherwise), optionally with a sliding window, as the spec's §11 allows.
//! Positions are explicit so the main network can run over chunk indices.

use burn::module::Module;
use burn::nn::{Initializer, Linear, LinearConfig, RmsNorm, RmsNormConfig};
use burn::tensor::activation::{silu, softmax};
use burn::tensor::backend::Backend;
use burn::tensor::{Bool, Tensor, TensorData};
use serde::{Deserialize, Serialize};

use crate::cache::{KvCache, LayerKv};
use crate::rope::apply_rope;

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
    pub fn validate(&self, what: &str) -> Result<(), String> {
        if self.d_model == 0 || self.n_head == 0 || self.d_model % self.n_head != 0 || (self.d_model / self.n_head) % 2 != 0 {
            return Err(format!("{what}: d_model ({}) must split into n_head ({}) heads of even width", self.d_model, self.n_head));
        }
        Ok(())
    }

    /// Builds the stack. Linear weights N(0, 0.02); the projections that write into the residual stream are scaled
    /// down by √(2·n_layer) as in GPT-2; norms start at 1.
    pub fn init<B: Backend>(&self, device: &B::Device) -> Isotropic<B> {
        let d = self.d_model;
        let out_std = 0.02 / ((2 * self.n_layer.max(1)) as f64).sqrt();
        let linear = |i, o, std| LinearConfig::new(i, o).with_bias(false).with_initializer(Initializer::Normal { mean: 0.0, std }).init(device);
        let layers = (0..self.n_layer)
            .map(|_| TBlock {
                norm1: RmsNormConfig::new(d).with_epsilon(1e-5).init(device),
                mixer: Attention { wqkv: linear(d, 3 * d, 0.02), out_proj: linear(d, d, out_std), n_head: self.n_head, window: self.window },
                norm2: (self.d_intermediate > 0).then(|| RmsNormConfig::new(d).with_epsilon(1e-5).init(device)),
                mlp: (self.d_intermediate > 0)
                    .then(|| SwiGlu { fc1: linear(d, 2 * self.d_intermediate, 0.02), fc2: linear(self.d_intermediate, d, out_std) }),
            })
            .collect();
        Isotropic { layers, norm_f: RmsNormConfig::new(d).with_epsilon(1e-5).init(device) }
    }
}

/// `mask[i][j]` is true where query `i` (at absolute position `start + i`) must NOT see key `j`.
pub(crate) fn attention_mask<B: Backend>(t: usize, tk: usize, window: usize, device: &B::Device) -> Tensor<B, 2, Bool> {
    let start = tk - t;
    let mut data = Vec::with_capacity(t * tk);
    for i in 0..t {
        let q = start + i;
        for j in 0..tk {
            data.push(j > q || (window > 0 && j + window <= q));
        }
    }
    Tensor::from_data(TensorData::new(data, [t, tk]), device)
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
        let [b, t, d] = x.dims();
        let hs = d / self.n_head;
        let qkv = self.wqkv.forward(x); // [B, T, 3D]
        let heads = |i: usize| qkv.clone().narrow(2, i * d, d).reshape([b, t, self.n_head, hs]).swap_dims(1, 2); // [B, nh, T, hs]
        let q = apply_rope(heads(0), start);
        let (mut k, mut v) = (apply_rope(heads(1), start), heads(2));
        if let Some(kv) = cache {
            (k, v) = kv.append(k, v); // [B, nh, Tk, hs]
        }
        let tk = k.dims()[2];
        let att = q.matmul(k.swap_dims(2, 3)).mul_scalar(1.0 / (hs as f64).sqrt()); // [B, nh, T, Tk]
        let hidden = attention_mask::<B>(t, tk, self.window, &att.device());
        let y = softmax(att.mask_fill(hidden.unsqueeze::<4>(), -1e9), 3).matmul(v); // [B, nh, T, hs]
        self.out_proj.forward(y.swap_dims(1, 2).reshape([b, t, d]))
    }
}

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
    fn the_mask_hides_the_future_and_what_falls_out_of_the_window() {
        let m = attention_mask::<TestBackend>(2, 4, 2, &Default::default()).into_data().to_vec::<bool>().unwrap();
        // Queries at positions 2 and 3; window 2 lets each see itself and one predecessor.
        assert_eq!(m, vec![true, false, false, true, true, true, false, false]);
        let global = attention_mask::<TestBackend>(3, 3, 0, &Default::default()).into_data().to_vec::<bool>().unwrap();
        assert_eq!(global, vec![false, true, true, false, false, true, false, false, false]);
    }

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
