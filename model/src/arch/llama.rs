//! The Llama decoder (Touvron et al. 2023; SmolLM2, TinyLlama) and Qwen2 (Qwen2.5-Coder), which is Llama with biases
//! on the query, key and value projections.
//!
//! `RMSNorm → attention → RMSNorm → SwiGLU`, pre-norm blocks with rotary positions (Hugging Face's rotate-half
//! layout, the config's `rope_theta`), grouped-query attention, no biases elsewhere, a final RMSNorm and an LM head
//! that is the token embedding or a matrix of its own. Field names follow Hugging Face's (`embed_tokens, layers,
//! input_layernorm, self_attn, post_attention_layernorm, mlp, norm, lm_head`); where this file fuses what Hugging Face
//! keeps apart — `q_proj | k_proj | v_proj` as one `qkv_proj`, `gate_proj | up_proj` as SwiGLU's `fc1` — the loader
//! joins them ([`crate::io::hf`]).

use burn::module::Module;
use burn::nn::{Initializer, LinearConfig, RmsNorm, RmsNormConfig};
use burn::tensor::backend::Backend;
use burn::tensor::{Int, Tensor};

use crate::arch::family::DecoderConfig;
use crate::nn::attention::{causal_attention, split_heads};
use crate::nn::cache::{KvCache, LayerKv};
use crate::nn::embedding::{TokenEmbedding, TokenEmbeddingConfig};
use crate::nn::linear::Linear;
use crate::nn::rope::apply_rope_with;
use crate::nn::swiglu::SwiGlu;

/// Grouped-query causal attention with rotary positions.
#[derive(Module, Debug)]
pub struct Attention<B: Backend> {
    /// `[C, (nh + 2·nkv)·hs]`: x → [q | k | v] (with biases in Qwen2).
    pub qkv_proj: Linear<B>,
    /// `[C, C]`, no bias.
    pub o_proj: Linear<B>,
    /// Query heads.
    pub n_head: usize,
    /// Key/value heads.
    pub n_kv_head: usize,
    /// Rotary base frequency.
    pub rope_theta: f64,
}

impl<B: Backend> Attention<B> {
    /// # Shapes
    /// `x: [B, T, C]` at positions `start..start + T` (the cache, if any, holds `0..start`) → `[B, T, C]`.
    pub fn forward(&self, x: Tensor<B, 3>, start: usize, cache: Option<&mut LayerKv<B>>) -> Tensor<B, 3> {
        let [q, k, v] = split_heads(self.qkv_proj.forward(x), self.n_head, self.n_kv_head); // [B, nh | nkv, T, hs]
        let (q, k) = (apply_rope_with(q, start, self.rope_theta), apply_rope_with(k, start, self.rope_theta));
        self.o_proj.forward(causal_attention(q, k, v, 0, cache))
    }
}

/// A pre-norm block.
#[derive(Module, Debug)]
pub struct Block<B: Backend> {
    /// Norm before attention.
    pub input_layernorm: RmsNorm<B>,
    /// Attention.
    pub self_attn: Attention<B>,
    /// Norm before the MLP.
    pub post_attention_layernorm: RmsNorm<B>,
    /// SwiGLU: `fc1` = `[gate | up]`, `fc2` = `down`.
    pub mlp: SwiGlu<B>,
}

impl<B: Backend> Block<B> {
    /// # Shapes
    /// `[B, T, C]` → `[B, T, C]`.
    pub fn forward(&self, x: Tensor<B, 3>, start: usize, cache: Option<&mut LayerKv<B>>) -> Tensor<B, 3> {
        let x = x.clone() + self.self_attn.forward(self.input_layernorm.forward(x), start, cache);
        x.clone() + self.mlp.forward(self.post_attention_layernorm.forward(x))
    }
}

/// The Llama (or Qwen2) decoder.
#[derive(Module, Debug)]
pub struct Llama<B: Backend> {
    /// Token embedding `[V, C]` (also the LM head when tied).
    pub embed_tokens: TokenEmbedding<B>,
    /// The blocks.
    pub layers: Vec<Block<B>>,
    /// Final RMSNorm.
    pub norm: RmsNorm<B>,
    /// The LM head `[V, C]` when it is not the embedding (Hugging Face's `lm_head.weight`, as stored): a table
    /// of the vocabulary's rows like the embedding, so that it too is held in parts on a device whose buffers are
    /// smaller than it.
    pub lm_head: Option<TokenEmbedding<B>>,
}

impl<B: Backend> Llama<B> {
    /// Builds a decoder: N(0, 0.02) weights as Hugging Face's `initializer_range` default, no biases but Qwen2's
    /// (zero), norms at 1.
    pub fn init(c: &DecoderConfig, device: &B::Device) -> Self {
        let normal = Initializer::Normal { mean: 0.0, std: 0.02 };
        let theta = c.rope_theta.expect("a Llama-family config has rope_theta (DecoderConfig::check)");
        let linear = |d_in, d_out, bias: bool| {
            let mut l: Linear<B> = LinearConfig::new(d_in, d_out).with_bias(bias).with_initializer(normal.clone()).init(device).into();
            l.bias = l.bias.map(|b| b.map(|t| t.zeros_like().require_grad()));
            l
        };
        let norm = || RmsNormConfig::new(c.n_embd).with_epsilon(c.layer_norm_epsilon).init(device);
        let (w, hidden) = (c.n_embd, c.hidden());
        let layers = (0..c.n_layer)
            .map(|_| Block {
                input_layernorm: norm(),
                self_attn: Attention {
                    qkv_proj: linear(w, c.qkv_width(), c.attention_bias),
                    o_proj: linear(w, w, false),
                    n_head: c.n_head,
                    n_kv_head: c.kv_heads(),
                    rope_theta: theta,
                },
                post_attention_layernorm: norm(),
                mlp: SwiGlu { fc1: linear(w, 2 * hidden, false), fc2: linear(hidden, w, false) },
            })
            .collect();
        let table = TokenEmbeddingConfig::new(c.vocab_size, w);
        let lm_head = (!c.tie_word_embeddings).then(|| table.init(device));
        Llama { embed_tokens: table.init(device), layers, norm: norm(), lm_head }
    }

    /// Token embeddings (positions enter as rotations inside attention).
    ///
    /// # Shapes
    /// `tokens: [B, T]` → `[B, T, C]`.
    pub fn embed(&self, tokens: Tensor<B, 2, Int>) -> Tensor<B, 3> {
        self.embed_tokens.forward(tokens)
    }

    /// The blocks and the final norm over positions `start..start + T`.
    ///
    /// # Shapes
    /// `x: [B, T, C]` → `[B, T, C]`.
    pub fn blocks(&self, mut x: Tensor<B, 3>, start: usize, mut cache: Option<&mut KvCache<B>>) -> Tensor<B, 3> {
        for (i, block) in self.layers.iter().enumerate() {
            x = block.forward(x, start, cache.as_deref_mut().map(|c| c.layer(i)));
        }
        self.norm.forward(x)
    }

    /// The LM head's table: its own, or the token embedding. `[V, C]`.
    pub fn head_table(&self) -> &TokenEmbedding<B> {
        self.lm_head.as_ref().unwrap_or(&self.embed_tokens)
    }

    /// The LM head: hidden states → logits, by its table's parts (the embedding's when tied).
    ///
    /// # Shapes
    /// `[B, T, C]` → `[B, T, V]`.
    pub fn lm_head(&self, h: Tensor<B, 3>) -> Tensor<B, 3> {
        self.head_table().head(h)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::arch::decoder::Decoder;
    use crate::arch::family::Family;
    use crate::TestBackend;
    use burn::tensor::{Distribution, Tolerance};

    fn config(family: Family, tied: bool) -> DecoderConfig {
        DecoderConfig {
            family,
            vocab_size: 40,
            n_positions: 64,
            n_embd: 24,
            n_layer: 2,
            n_head: 6,
            n_kv_head: Some(2),
            d_intermediate: Some(40),
            layer_norm_epsilon: 1e-6,
            rope_theta: Some(500.0),
            tie_word_embeddings: tied,
            attention_bias: family == Family::Qwen2,
        }
    }

    #[test]
    fn cached_steps_equal_the_full_pass_with_grouped_heads() {
        let d = Default::default();
        for (family, tied) in [(Family::Llama, true), (Family::Llama, false), (Family::Qwen2, true)] {
            let m = config(family, tied).init::<TestBackend>(&d);
            let tokens = Tensor::<TestBackend, 2, Int>::random([1, 9], Distribution::Uniform(0.0, 40.0), &d);
            let full = m.forward(tokens.clone());
            let mut cache = m.new_cache();
            let mut parts = vec![m.lm_head(m.forward_cached(tokens.clone().narrow(1, 0, 4), &mut cache))];
            for t in 4..9 {
                parts.push(m.lm_head(m.forward_cached(tokens.clone().narrow(1, t, 1), &mut cache)));
            }
            Tensor::cat(parts, 1).into_data().assert_approx_eq::<f32>(&full.into_data(), Tolerance::absolute(1e-4));
            assert!(matches!(m, Decoder::Llama(_)));
        }
    }

    #[test]
    fn an_untied_head_is_its_own_matrix() {
        let d = Default::default();
        let Decoder::Llama(m) = config(Family::Llama, false).init::<TestBackend>(&d) else { panic!("a Llama") };
        let head = m.lm_head.as_ref().expect("untied");
        assert_eq!(head.weight().dims(), [40, 24]);
        assert_ne!(m.head_table().weight().into_data(), m.embed_tokens.weight().into_data());
    }
}
