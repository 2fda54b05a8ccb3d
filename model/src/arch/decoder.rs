//! A pretrained decoder of any supported family: what the `gpt2` architecture is on its own and what the hybrid
//! wraps. Each family is one file built from the shared `nn/` parts; this one holds their common config and the
//! dispatch.
//!
//! | family | file | blocks | positions | heads | MLP |
//! |---|---|---|---|---|---|
//! | GPT-2 (`GPT2LMHeadModel`) | [`gpt2`](super::gpt2) | pre-LayerNorm | learned | all | 4× `gelu_new` |
//! | GPTBigCode (StarCoder family) | [`gpt2`](super::gpt2) | as GPT-2 | learned | multi-query (`n_kv_head` 1) | 4× `gelu_pytorch_tanh` (the same function) |
//! | Llama (SmolLM2, TinyLlama) | [`llama`](super::llama) | pre-RMSNorm | rotary (`rope_theta`) | grouped-query | SwiGLU |
//! | Qwen2 (Qwen2.5-Coder) | [`llama`](super::llama) | as Llama | as Llama | as Llama | as Llama; biases on q, k, v |

use burn::module::Module;
use burn::tensor::backend::Backend;
use burn::tensor::{Int, Tensor};
use serde::{Deserialize, Serialize};

use crate::arch::gpt2::Gpt2;
use crate::arch::llama::Llama;
use crate::nn::cache::KvCache;

/// A decoder family.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Family {
    /// GPT-2.
    #[default]
    Gpt2,
    /// GPTBigCode: GPT-2 with multi-query attention (StarCoder, SantaCoder).
    #[serde(rename = "gpt_bigcode")]
    GptBigCode,
    /// Llama.
    Llama,
    /// Qwen2: Llama with biases on the query, key and value projections.
    Qwen2,
}

impl Family {
    /// Every family.
    pub const ALL: [Family; 4] = [Family::Gpt2, Family::GptBigCode, Family::Llama, Family::Qwen2];

    /// The name reports and configs use.
    pub fn name(self) -> &'static str {
        match self {
            Family::Gpt2 => "gpt2",
            Family::GptBigCode => "gpt_bigcode",
            Family::Llama => "llama",
            Family::Qwen2 => "qwen2",
        }
    }

    /// Whether its blocks are Llama's (RMSNorm, rotary positions, SwiGLU) rather than GPT-2's.
    pub fn is_llama_like(self) -> bool {
        matches!(self, Family::Llama | Family::Qwen2)
    }
}

impl std::fmt::Display for Family {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.name())
    }
}

fn tied() -> bool {
    true
}

/// Sizes of a decoder, every family's in one type (the fields a family does not use keep their defaults).
/// Serialised in every checkpoint; a checkpoint from before the families existed reads as GPT-2.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct DecoderConfig {
    /// The family.
    #[serde(default)]
    pub family: Family,
    /// Vocabulary size: 50257 for the GPT-2 BPE.
    pub vocab_size: usize,
    /// Context length: learned positions (GPT-2, GPTBigCode) or the longest rotary context (Llama, Qwen2).
    pub n_positions: usize,
    /// Width of the residual stream.
    pub n_embd: usize,
    /// Number of transformer blocks.
    pub n_layer: usize,
    /// Query heads; `n_embd` must be divisible by it.
    pub n_head: usize,
    /// Key/value heads (grouped-query attention; 1 = multi-query); `None` = `n_head`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub n_kv_head: Option<usize>,
    /// MLP width; `None` = GPT-2's 4 × `n_embd`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub d_intermediate: Option<usize>,
    /// The norms' epsilon: LayerNorm's (GPT-2: 1e-5) or RMSNorm's (Llama, Qwen2).
    pub layer_norm_epsilon: f64,
    /// Rotary base frequency θ (Llama, Qwen2); `None` for learned positions.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub rope_theta: Option<f64>,
    /// The LM head is the token embedding (false: a head of its own).
    #[serde(default = "tied")]
    pub tie_word_embeddings: bool,
    /// Biases on the query, key and value projections of Llama-like blocks (Qwen2: true).
    #[serde(default)]
    pub attention_bias: bool,
}

/// GPT-2's BPE vocabulary size.
pub const GPT2_VOCAB_SIZE: usize = 50257;

impl DecoderConfig {
    fn gpt2_sized(n_positions: usize, n_embd: usize, n_layer: usize, n_head: usize) -> Self {
        Self {
            family: Family::Gpt2,
            vocab_size: GPT2_VOCAB_SIZE,
            n_positions,
            n_embd,
            n_layer,
            n_head,
            n_kv_head: None,
            d_intermediate: None,
            layer_norm_epsilon: 1e-5,
            rope_theta: None,
            tie_word_embeddings: true,
            attention_bias: false,
        }
    }

    /// Tests and the end-to-end browser suite: a GPT-2 of 2 layers of width 64 (≈3.3M parameters, 97% embedding).
    pub fn tiny() -> Self {
        Self::gpt2_sized(256, 64, 2, 4)
    }

    /// The browser default: a GPT-2 of 6 layers of width 256 (≈17.7M parameters including embeddings).
    pub fn small() -> Self {
        Self::gpt2_sized(512, 256, 6, 8)
    }

    /// Hugging Face `gpt2` (124M).
    pub fn gpt2() -> Self {
        Self::gpt2_sized(1024, 768, 12, 12)
    }

    /// Key/value heads.
    pub fn kv_heads(&self) -> usize {
        self.n_kv_head.unwrap_or(self.n_head)
    }

    /// Width of one head.
    pub fn head_dim(&self) -> usize {
        self.n_embd / self.n_head.max(1)
    }

    /// The MLP's hidden width.
    pub fn hidden(&self) -> usize {
        self.d_intermediate.unwrap_or(4 * self.n_embd)
    }

    /// Width of the fused `[q | k | v]` projection.
    pub fn qkv_width(&self) -> usize {
        (self.n_head + 2 * self.kv_heads()) * self.head_dim()
    }

    /// What a decoder with this config needs, or why it cannot be built.
    pub fn check(&self) -> Result<(), String> {
        if self.n_layer == 0 || self.n_head == 0 || !self.n_embd.is_multiple_of(self.n_head) {
            return Err(format!("n_layer must be positive and n_embd ({}) divisible by n_head ({})", self.n_embd, self.n_head));
        }
        let kv = self.kv_heads();
        if kv == 0 || !self.n_head.is_multiple_of(kv) {
            return Err(format!("n_kv_head ({kv}) must divide n_head ({})", self.n_head));
        }
        if self.hidden() == 0 || self.hidden() > 1 << 18 {
            return Err(format!("d_intermediate ({}) must be in 1..=262144", self.hidden()));
        }
        match (self.family.is_llama_like(), self.rope_theta) {
            (true, Some(t)) if t > 0.0 && t.is_finite() && self.head_dim().is_multiple_of(2) => {}
            (true, Some(_)) => return Err("rotary positions need a positive rope_theta and an even head width".into()),
            (true, None) => return Err(format!("a {} decoder needs rope_theta", self.family)),
            (false, Some(_)) => return Err(format!("a {} decoder has learned positions, not rope_theta", self.family)),
            (false, None) => {}
        }
        if !self.tie_word_embeddings && !self.family.is_llama_like() {
            return Err(format!("a {} decoder's LM head is its token embedding (tie_word_embeddings)", self.family));
        }
        if self.attention_bias && !self.family.is_llama_like() {
            return Err("attention_bias is a Llama-family setting (GPT-2's projections always have biases)".into());
        }
        if !(self.layer_norm_epsilon > 0.0) {
            return Err(format!("the norm epsilon must be positive, got {}", self.layer_norm_epsilon));
        }
        Ok(())
    }

    /// Parameters of a decoder with this config, from the sizes alone.
    pub fn param_count(&self) -> usize {
        let (c, v, l) = (self.n_embd, self.vocab_size, self.n_layer);
        let (qkv, hidden) = (self.qkv_width(), self.hidden());
        let head = if self.tie_word_embeddings { 0 } else { v * c };
        if self.family.is_llama_like() {
            let bias = if self.attention_bias { qkv } else { 0 };
            // q/k/v and o projections, gate/up/down, two norms per block; embedding, final norm, head.
            v * c + l * (c * qkv + bias + c * c + 3 * c * hidden + 2 * c) + c + head
        } else {
            // c_attn, c_proj, c_fc, c_proj with biases, two LayerNorms per block; wte, wpe, ln_f.
            v * c + self.n_positions * c + l * (c * qkv + qkv + c * c + c + 2 * c * hidden + hidden + c + 4 * c) + 2 * c
        }
    }

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

    /// The LM head's matrix (the token embedding when tied). `[V, C]`.
    pub fn head_weight(&self) -> Tensor<B, 2> {
        match self {
            Decoder::Gpt2(m) => m.wte.weight.val(),
            Decoder::Llama(m) => m.head_weight(),
        }
    }

    /// The LM head: hidden states → logits.
    ///
    /// # Shapes
    /// `[B, T, C]` → `[B, T, V]`.
    pub fn lm_head(&self, h: Tensor<B, 3>) -> Tensor<B, 3> {
        crate::nn::head::tied_head(self.head_weight(), h)
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

    /// The device the weights live on.
    pub fn device(&self) -> B::Device {
        match self {
            Decoder::Gpt2(m) => m.wte.weight.device(),
            Decoder::Llama(m) => m.embed_tokens.weight.device(),
        }
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
    use crate::TestBackend;

    fn llama(family: Family, tied: bool) -> DecoderConfig {
        DecoderConfig {
            family,
            vocab_size: 50,
            n_positions: 64,
            n_embd: 32,
            n_layer: 2,
            n_head: 4,
            n_kv_head: Some(2),
            d_intermediate: Some(48),
            layer_norm_epsilon: 1e-6,
            rope_theta: Some(10_000.0),
            tie_word_embeddings: tied,
            attention_bias: family == Family::Qwen2,
        }
    }

    #[test]
    fn analytic_parameter_counts_match_built_decoders_of_every_family() {
        let d = Default::default();
        let bigcode = DecoderConfig { family: Family::GptBigCode, n_kv_head: Some(1), ..DecoderConfig::tiny() };
        for c in [DecoderConfig::tiny(), bigcode, llama(Family::Llama, true), llama(Family::Llama, false), llama(Family::Qwen2, true)] {
            c.check().unwrap();
            assert_eq!(c.param_count(), c.init::<TestBackend>(&d).num_params(), "{c:?}");
        }
        assert_eq!(DecoderConfig::gpt2().param_count(), 124_439_808, "Hugging Face gpt2");
    }

    #[test]
    fn configs_that_cannot_build_a_decoder_say_why() {
        let bad = |c: DecoderConfig| c.check().unwrap_err();
        assert!(bad(DecoderConfig { n_kv_head: Some(3), ..DecoderConfig::tiny() }).contains("n_kv_head"));
        assert!(bad(DecoderConfig { rope_theta: None, ..llama(Family::Llama, true) }).contains("rope_theta"));
        assert!(bad(DecoderConfig { rope_theta: Some(1e4), ..DecoderConfig::tiny() }).contains("learned positions"));
        assert!(bad(DecoderConfig { tie_word_embeddings: false, ..DecoderConfig::tiny() }).contains("tie_word_embeddings"));
        // A checkpoint config from before the families: GPT-2, tied, all heads.
        let old: DecoderConfig =
            serde_json::from_str(r#"{"vocab_size":100,"n_positions":16,"n_embd":8,"n_layer":1,"n_head":2,"layer_norm_epsilon":1e-5}"#)
                .unwrap();
        assert_eq!((old.family, old.kv_heads(), old.hidden(), old.tie_word_embeddings), (Family::Gpt2, 2, 32, true));
    }
}
