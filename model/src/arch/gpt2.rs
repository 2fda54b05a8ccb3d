//! The GPT-2 decoder (Radford et al. 2019), in nanoGPT's shape and with GPT-2's checkpoint names.
//!
//! `LayerNorm → CausalSelfAttention → Mlp → Block → Gpt2`, pre-LN blocks, `gelu_new`, learned positions, and an
//! LM head tied to the token embedding. Field names are Hugging Face's (`wte, wpe, h, ln_1, attn.c_attn, attn.c_proj,
//! ln_2, mlp.c_fc, mlp.c_proj, ln_f`), so importing a checkpoint is a checked copy ([`crate::io::hf`]).
//! burn's `Linear` stores its weight as `[d_in, d_out]`, which is exactly GPT-2's Conv1D layout: no transpose.

use burn::module::Module;
use burn::nn::{Embedding, EmbeddingConfig, Initializer, LayerNorm, LayerNormConfig, LinearConfig};
use burn::tensor::backend::Backend;
use burn::tensor::{Int, Tensor};
use serde::{Deserialize, Serialize};

use crate::nn::activation::gelu_new;
use crate::nn::attention::{causal_attention, split_heads};
use crate::nn::cache::{KvCache, LayerKv};
use crate::nn::head::tied_head;
use crate::nn::linear::Linear;

/// Sizes of a GPT-2 decoder (the fields of Hugging Face's `GPT2Config` that matter for inference).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Gpt2Config {
    /// Vocabulary size: 50257 for the GPT-2 BPE.
    pub vocab_size: usize,
    /// Context length (number of learned positions).
    pub n_positions: usize,
    /// Width of the residual stream.
    pub n_embd: usize,
    /// Number of transformer blocks.
    pub n_layer: usize,
    /// Number of attention heads; `n_embd` must be divisible by it.
    pub n_head: usize,
    /// LayerNorm epsilon (GPT-2: 1e-5).
    pub layer_norm_epsilon: f64,
}

/// GPT-2's BPE vocabulary size.
pub const GPT2_VOCAB_SIZE: usize = 50257;

impl Gpt2Config {
    /// Tests and the end-to-end browser suite: 2 layers of width 64 (≈3.3M parameters, 97% embedding).
    pub fn tiny() -> Self {
        Self { vocab_size: GPT2_VOCAB_SIZE, n_positions: 256, n_embd: 64, n_layer: 2, n_head: 4, layer_norm_epsilon: 1e-5 }
    }
    /// The browser default: 6 layers of width 256 (≈17.7M parameters including embeddings).
    pub fn small() -> Self {
        Self { vocab_size: GPT2_VOCAB_SIZE, n_positions: 512, n_embd: 256, n_layer: 6, n_head: 8, layer_norm_epsilon: 1e-5 }
    }
    /// Hugging Face `gpt2` (124M).
    pub fn gpt2() -> Self {
        Self { vocab_size: GPT2_VOCAB_SIZE, n_positions: 1024, n_embd: 768, n_layer: 12, n_head: 12, layer_norm_epsilon: 1e-5 }
    }

    /// Builds a decoder with GPT-2's initialisation: N(0, 0.02) weights, zero biases, residual projections
    /// scaled by 1/√(2·n_layer) (GPT-2 paper §2.3; nanoGPT `_init_weights`).
    pub fn init<B: Backend>(&self, device: &B::Device) -> Gpt2<B> {
        let normal = |std: f64| Initializer::Normal { mean: 0.0, std };
        let resid_std = 0.02 / ((2 * self.n_layer) as f64).sqrt();
        let linear = |d_in, d_out, std| {
            let mut l: Linear<B> = LinearConfig::new(d_in, d_out).with_initializer(normal(std)).init(device).into();
            l.bias = l.bias.map(|b| b.map(|t| t.zeros_like()));
            l
        };
        let ln = || LayerNormConfig::new(self.n_embd).with_epsilon(self.layer_norm_epsilon).init(device);
        let c = self.n_embd;
        let h = (0..self.n_layer)
            .map(|_| Block {
                ln_1: ln(),
                attn: CausalSelfAttention { c_attn: linear(c, 3 * c, 0.02), c_proj: linear(c, c, resid_std), n_head: self.n_head },
                ln_2: ln(),
                mlp: Mlp { c_fc: linear(c, 4 * c, 0.02), c_proj: linear(4 * c, c, resid_std) },
            })
            .collect();
        Gpt2 {
            wte: EmbeddingConfig::new(self.vocab_size, c).with_initializer(normal(0.02)).init(device),
            wpe: EmbeddingConfig::new(self.n_positions, c).with_initializer(normal(0.02)).init(device),
            h,
            ln_f: ln(),
        }
    }
}

/// Multi-head causal self-attention with a fused `c_attn` projection (Q, K, V side by side).
#[derive(Module, Debug)]
pub struct CausalSelfAttention<B: Backend> {
    /// `[C, 3C]`: x → [q | k | v].
    pub c_attn: Linear<B>,
    /// `[C, C]`: heads → residual stream.
    pub c_proj: Linear<B>,
    /// Number of heads.
    pub n_head: usize,
}

impl<B: Backend> CausalSelfAttention<B> {
    /// Attends each new position to every cached position and to the new positions up to itself.
    ///
    /// # Shapes
    /// - `x`: `[B, T, C]` — the new positions, which sit after the `cache.len()` cached ones;
    /// - returns `[B, T, C]`.
    pub fn forward(&self, x: Tensor<B, 3>, cache: Option<&mut LayerKv<B>>) -> Tensor<B, 3> {
        let [q, k, v] = split_heads(self.c_attn.forward(x), self.n_head); // [B, nh, T, hs] each
        self.c_proj.forward(causal_attention(q, k, v, 0, cache))
    }
}

/// The position-wise MLP: `c_proj(gelu_new(c_fc(x)))`, 4× wide.
#[derive(Module, Debug)]
pub struct Mlp<B: Backend> {
    /// `[C, 4C]`.
    pub c_fc: Linear<B>,
    /// `[4C, C]`.
    pub c_proj: Linear<B>,
}

impl<B: Backend> Mlp<B> {
    /// # Shapes
    /// `[B, T, C]` → `[B, T, C]`.
    pub fn forward(&self, x: Tensor<B, 3>) -> Tensor<B, 3> {
        self.c_proj.forward(gelu_new(self.c_fc.forward(x)))
    }
}

/// A pre-LN transformer block.
#[derive(Module, Debug)]
pub struct Block<B: Backend> {
    /// Norm before attention.
    pub ln_1: LayerNorm<B>,
    /// Causal self-attention.
    pub attn: CausalSelfAttention<B>,
    /// Norm before the MLP.
    pub ln_2: LayerNorm<B>,
    /// The MLP.
    pub mlp: Mlp<B>,
}

impl<B: Backend> Block<B> {
    /// # Shapes
    /// `[B, T, C]` → `[B, T, C]`.
    pub fn forward(&self, x: Tensor<B, 3>, cache: Option<&mut LayerKv<B>>) -> Tensor<B, 3> {
        let x = x.clone() + self.attn.forward(self.ln_1.forward(x), cache);
        x.clone() + self.mlp.forward(self.ln_2.forward(x))
    }
}

/// The GPT-2 decoder: embeddings, blocks, final norm; the LM head is `wte` transposed.
#[derive(Module, Debug)]
pub struct Gpt2<B: Backend> {
    /// Token embedding `[V, C]`, also the LM head.
    pub wte: Embedding<B>,
    /// Position embedding `[n_positions, C]`.
    pub wpe: Embedding<B>,
    /// The blocks.
    pub h: Vec<Block<B>>,
    /// Final LayerNorm.
    pub ln_f: LayerNorm<B>,
}

impl<B: Backend> Gpt2<B> {
    /// Token plus position embeddings for tokens that start at absolute position `offset`.
    ///
    /// # Shapes
    /// `tokens: [B, T]` → `[B, T, C]`.
    pub fn embed(&self, tokens: Tensor<B, 2, Int>, offset: usize) -> Tensor<B, 3> {
        let t = tokens.dims()[1];
        let n_pos = self.wpe.weight.dims()[0];
        assert!(offset + t <= n_pos, "positions {offset}..{} exceed the context of {n_pos}", offset + t);
        let pos = Tensor::<B, 1, Int>::arange(offset as i64..(offset + t) as i64, &tokens.device()).unsqueeze::<2>(); // [1, T]
        self.wte.forward(tokens) + self.wpe.forward(pos)
    }

    /// Runs the blocks and the final norm over an already-embedded sequence.
    ///
    /// # Shapes
    /// `x: [B, T, C]` → `[B, T, C]` (normalised hidden states, ready for [`Self::lm_head`]).
    pub fn blocks(&self, mut x: Tensor<B, 3>, mut cache: Option<&mut KvCache<B>>) -> Tensor<B, 3> {
        for (i, block) in self.h.iter().enumerate() {
            x = block.forward(x, cache.as_deref_mut().map(|c| c.layer(i)));
        }
        self.ln_f.forward(x)
    }

    /// The tied LM head: hidden states → logits over the vocabulary.
    ///
    /// # Shapes
    /// `[B, T, C]` → `[B, T, V]`.
    pub fn lm_head(&self, h: Tensor<B, 3>) -> Tensor<B, 3> {
        tied_head(self.wte.weight.val(), h)
    }

    /// Full forward pass: logits at every position.
    ///
    /// # Shapes
    /// `tokens: [B, T]` → `[B, T, V]`.
    pub fn forward(&self, tokens: Tensor<B, 2, Int>) -> Tensor<B, 3> {
        self.lm_head(self.blocks(self.embed(tokens, 0), None))
    }

    /// Cached forward pass: `tokens` continue the sequence held in `cache`; returns hidden states of the new positions.
    ///
    /// # Shapes
    /// `tokens: [B, T]` → `[B, T, C]`.
    pub fn forward_cached(&self, tokens: Tensor<B, 2, Int>, cache: &mut KvCache<B>) -> Tensor<B, 3> {
        let x = self.embed(tokens, cache.len());
        self.blocks(x, Some(cache))
    }

    /// The context length this decoder was built for.
    pub fn n_positions(&self) -> usize {
        self.wpe.weight.dims()[0]
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::TestBackend;

    #[test]
    fn parameter_counts_of_the_presets() {
        let device = Default::default();
        // Hugging Face reports 124,439,808 for `gpt2`; the head is tied so it adds nothing.
        let count = |c: Gpt2Config| {
            let c_ = c.n_embd;
            c.vocab_size * c_ + c.n_positions * c_ + c.n_layer * (12 * c_ * c_ + 13 * c_) + 2 * c_
        };
        assert_eq!(count(Gpt2Config::gpt2()), 124_439_808);
        let tiny = Gpt2Config::tiny().init::<TestBackend>(&device);
        assert_eq!(tiny.num_params(), count(Gpt2Config::tiny()));
        assert!(count(Gpt2Config::small()) < 25_000_000);
    }
}
