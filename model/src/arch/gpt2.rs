//! The GPT-2 decoder (Radford et al. 2019), in nanoGPT's shape and with GPT-2's checkpoint names — and GPTBigCode
//! (Allal et al. 2023, "SantaCoder"; the StarCoder family), which is GPT-2 with multi-query attention.
//!
//! `LayerNorm → CausalSelfAttention → Mlp → Block → Gpt2`, pre-LN blocks, `gelu_new` (GPTBigCode's
//! `gelu_pytorch_tanh` is the same function), learned positions, and an LM head tied to the token embedding. Field
//! names are Hugging Face's (`wte, wpe, h, ln_1, attn.c_attn, attn.c_proj, ln_2, mlp.c_fc, mlp.c_proj, ln_f`), so
//! importing a checkpoint is a checked copy ([`crate::io::hf`]). `c_attn` projects to `[q | k | v]` with
//! `n_kv_head` key and value heads: all of them in GPT-2, one in GPTBigCode's multi-query attention.

use burn::module::Module;
use burn::nn::{Embedding, EmbeddingConfig, Initializer, LayerNorm, LayerNormConfig, LinearConfig};

use crate::nn::embedding::{TokenEmbedding, TokenEmbeddingConfig};
use burn::tensor::backend::Backend;
use burn::tensor::{Int, Tensor};

use crate::arch::family::DecoderConfig;
use crate::nn::activation::gelu_new;
use crate::nn::attention::{causal_attention, split_heads};
use crate::nn::cache::{KvCache, LayerKv};
use crate::nn::linear::Linear;

/// Multi-head causal self-attention with a fused `c_attn` projection (Q, K, V side by side).
#[derive(Module, Debug)]
pub struct CausalSelfAttention<B: Backend> {
    /// `[C, (nh + 2·nkv)·hs]`: x → [q | k | v] (`[C, 3C]` in GPT-2).
    pub c_attn: Linear<B>,
    /// `[C, C]`: heads → residual stream.
    pub c_proj: Linear<B>,
    /// Query heads.
    pub n_head: usize,
    /// Key/value heads (GPT-2: `n_head`; GPTBigCode: 1).
    pub n_kv_head: usize,
}

impl<B: Backend> CausalSelfAttention<B> {
    /// Attends each new position to every cached position and to the new positions up to itself.
    ///
    /// # Shapes
    /// - `x`: `[B, T, C]` — the new positions, which sit after the `cache.len()` cached ones;
    /// - returns `[B, T, C]`.
    pub fn forward(&self, x: Tensor<B, 3>, cache: Option<&mut LayerKv<B>>) -> Tensor<B, 3> {
        let [q, k, v] = split_heads(self.c_attn.forward(x), self.n_head, self.n_kv_head); // [B, nh | nkv, T, hs]
        self.c_proj.forward(causal_attention(q, k, v, 0, cache))
    }
}

/// The position-wise MLP: `c_proj(gelu_new(c_fc(x)))`, 4× wide in GPT-2.
#[derive(Module, Debug)]
pub struct Mlp<B: Backend> {
    /// `[C, H]`.
    pub c_fc: Linear<B>,
    /// `[H, C]`.
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
    pub wte: TokenEmbedding<B>,
    /// Position embedding `[n_positions, C]`.
    pub wpe: Embedding<B>,
    /// The blocks.
    pub h: Vec<Block<B>>,
    /// Final LayerNorm.
    pub ln_f: LayerNorm<B>,
}

impl<B: Backend> Gpt2<B> {
    /// Builds a decoder with GPT-2's initialisation: N(0, 0.02) weights, zero biases, residual projections
    /// scaled by 1/√(2·n_layer) (GPT-2 paper §2.3; nanoGPT `_init_weights`).
    pub fn init(c: &DecoderConfig, device: &B::Device) -> Self {
        let normal = |std: f64| Initializer::Normal { mean: 0.0, std };
        let resid_std = 0.02 / ((2 * c.n_layer) as f64).sqrt();
        let linear = |d_in, d_out, std| {
            let mut l: Linear<B> = LinearConfig::new(d_in, d_out).with_initializer(normal(std)).init(device).into();
            l.bias = l.bias.map(|b| b.map(|t| t.zeros_like().require_grad()));
            l
        };
        let ln = || LayerNormConfig::new(c.n_embd).with_epsilon(c.layer_norm_epsilon).init(device);
        let (w, qkv, hidden) = (c.n_embd, c.qkv_width(), c.hidden());
        let h = (0..c.n_layer)
            .map(|_| Block {
                ln_1: ln(),
                attn: CausalSelfAttention {
                    c_attn: linear(w, qkv, 0.02),
                    c_proj: linear(w, w, resid_std),
                    n_head: c.n_head,
                    n_kv_head: c.kv_heads(),
                },
                ln_2: ln(),
                mlp: Mlp { c_fc: linear(w, hidden, 0.02), c_proj: linear(hidden, w, resid_std) },
            })
            .collect();
        Gpt2 {
            wte: TokenEmbeddingConfig::new(c.vocab_size, w).init(device),
            wpe: EmbeddingConfig::new(c.n_positions, w).with_initializer(normal(0.02)).init(device),
            h,
            ln_f: ln(),
        }
    }

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
    /// `x: [B, T, C]` → `[B, T, C]` (normalised hidden states, ready for the LM head).
    pub fn blocks(&self, mut x: Tensor<B, 3>, mut cache: Option<&mut KvCache<B>>) -> Tensor<B, 3> {
        for (i, block) in self.h.iter().enumerate() {
            x = block.forward(x, cache.as_deref_mut().map(|c| c.layer(i)));
        }
        self.ln_f.forward(x)
    }

    /// The context length this decoder was built for.
    pub fn n_positions(&self) -> usize {
        self.wpe.weight.dims()[0]
    }
}
