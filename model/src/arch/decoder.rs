//! A pretrained decoder of any supported family: what the `gpt2` architecture is on its own and what the hybrid
//! wraps. Each family is one file built from the shared `nn/` parts; this one holds their
//! dispatch (their common config is [`family`](super::family)).
//!
//! | family | file | blocks | positions | heads | MLP |
//! |---|---|---|---|---|---|
//! | GPT-2 (`GPT2LMHeadModel`) | [`gpt2`](super::gpt2) | pre-LayerNorm | learned | all | 4× `gelu_new` |
//! | GPTBigCode (StarCoder family) | [`gpt2`](super::gpt2) | as GPT-2 | learned | multi-query (`n_kv_head` 1) | 4× `gelu_pytorch_tanh` (the same function) |
//! | Llama (SmolLM2, TinyLlama) | [`llama`](super::llama) | pre-RMSNorm | rotary (`rope_theta`) | grouped-query | SwiGLU |
//! | Qwen2 (Qwen2.5-Coder) | [`llama`](super::llama) | as Llama | as Llama | as Llama | as Llama; biases on q, k, v |

use crate::nn::embedding::TokenEmbedding;
use burn::module::Module;
use burn::tensor::backend::Backend;
use burn::tensor::{Int, Tensor};

use crate::arch::family::DecoderConfig;
use crate::arch::gpt2::Gpt2;
use crate::arch::llama::Llama;
use crate::nn::cache::KvCache;

impl DecoderConfig {
    /// Builds a freshly initialised decoder of this family.
    pub fn init<B: Backend>(&self, device: &B::Device) -> Decoder<B> {
        if self.family.is_llama_like() {
            Decoder::Llama(Llama::init(self, device))
        } else {
            Decoder::Gpt2(Gpt2::init(self, device))
        }
    }
}

/// A decoder of one of the families.
#[derive(Module, Debug)]
#[allow(clippy::large_enum_variant)]
pub enum Decoder<B: Backend> {
    /// GPT-2 or GPTBigCode.
    Gpt2(Gpt2<B>),
    /// Llama or Qwen2.
    Llama(Llama<B>),
}

impl<B: Backend> Decoder<B> {
    /// The token embeddings (plus learned positions) of tokens starting at absolute position `offset`.
    ///
    /// # Shapes
    /// `tokens: [B, T]` → `[B, T, C]`.
    pub fn embed(&self, tokens: Tensor<B, 2, Int>, offset: usize) -> Tensor<B, 3> {
        match self {
            Decoder::Gpt2(m) => m.embed(tokens, offset),
            Decoder::Llama(m) => m.embed(tokens),
        }
    }

    /// The blocks and the final norm over embedded positions `start..start + T` (the cache, if any, holds
    /// `0..start`).
    ///
    /// # Shapes
    /// `x: [B, T, C]` → `[B, T, C]`.
    pub fn blocks(&self, x: Tensor<B, 3>, start: usize, cache: Option<&mut KvCache<B>>) -> Tensor<B, 3> {
        match self {
            Decoder::Gpt2(m) => m.blocks(x, cache),
            Decoder::Llama(m) => m.blocks(x, start, cache),
        }
    }

    /// The LM head's table (the token embedding when tied). `[V, C]`.
    pub fn head_table(&self) -> &TokenEmbedding<B> {
        match self {
            Decoder::Gpt2(m) => &m.wte,
            Decoder::Llama(m) => m.head_table(),
        }
    }

    /// The LM head: hidden states → logits.
    ///
    /// # Shapes
    /// `[B, T, C]` → `[B, T, V]`.
    pub fn lm_head(&self, h: Tensor<B, 3>) -> Tensor<B, 3> {
        match self {
            Decoder::Gpt2(m) => m.wte.head(h),
            Decoder::Llama(m) => m.lm_head(h),
        }
    }

    /// Number of blocks.
    pub fn n_layer(&self) -> usize {
        match self {
            Decoder::Gpt2(m) => m.h.len(),
            Decoder::Llama(m) => m.layers.len(),
        }
    }

    /// A fresh KV cache for the blocks.
    pub fn new_cache(&self) -> KvCache<B> {
        KvCache::new(self.n_layer())
    }

    /// The token embedding.
    pub fn embedding(&self) -> &TokenEmbedding<B> {
        match self {
            Decoder::Gpt2(m) => &m.wte,
            Decoder::Llama(m) => &m.embed_tokens,
        }
    }

    /// The device the weights live on.
    pub fn device(&self) -> B::Device {
        self.embedding().device()
    }

    /// Full forward pass: logits at every position.
    ///
    /// # Shapes
    /// `tokens: [B, T]` → `[B, T, V]`.
    pub fn forward(&self, tokens: Tensor<B, 2, Int>) -> Tensor<B, 3> {
        self.lm_head(self.blocks(self.embed(tokens, 0), 0, None))
    }

    /// Cached pass: `tokens` continue what `cache` holds; hidden states of the new positions.
    ///
    /// # Shapes
    /// `tokens: [B, T]` → `[B, T, C]`.
    pub fn forward_cached(&self, tokens: Tensor<B, 2, Int>, cache: &mut KvCache<B>) -> Tensor<B, 3> {
        let start = cache.len();
        let x = self.embed(tokens, start);
        self.blocks(x, start, Some(cache))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::arch::family::Family;
    use crate::TestBackend;

    #[test]
    fn analytic_parameter_counts_match_built_decoders_of_every_family() {
        let d = Default::default();
        let bigcode = DecoderConfig { family: Family::GptBigCode, n_kv_head: Some(1), ..DecoderConfig::tiny() };
        for c in [
            DecoderConfig::tiny(),
            bigcode,
            DecoderConfig::tiny_llama(Family::Llama, true),
            DecoderConfig::tiny_llama(Family::Llama, false),
            DecoderConfig::tiny_llama(Family::Qwen2, true),
        ] {
            c.check().unwrap();
            assert_eq!(c.param_count(), c.init::<TestBackend>(&d).num_params(), "{c:?}");
        }
        assert_eq!(DecoderConfig::gpt2().param_count(), 124_439_808, "Hugging Face gpt2");
    }
}
