//! The decoder families and their one config: which sizes each family reads, their checks and parameter counts.
//! The families' modules ([`gpt2`](super::gpt2), [`llama`](super::llama)) and their dispatch
//! ([`decoder`](super::decoder)) build on it.

use serde::{Deserialize, Serialize};

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
    /// A tiny Llama-layout config (grouped heads 4:2; Qwen2's q/k/v biases when `family` is Qwen2), for tests.
    #[cfg(test)]
    pub(crate) fn tiny_llama(family: Family, tied: bool) -> Self {
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
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn configs_that_cannot_build_a_decoder_say_why() {
        let bad = |c: DecoderConfig| c.check().unwrap_err();
        assert!(bad(DecoderConfig { n_kv_head: Some(3), ..DecoderConfig::tiny() }).contains("n_kv_head"));
        assert!(bad(DecoderConfig { rope_theta: None, ..DecoderConfig::tiny_llama(Family::Llama, true) }).contains("rope_theta"));
        assert!(bad(DecoderConfig { rope_theta: Some(1e4), ..DecoderConfig::tiny() }).contains("learned positions"));
        assert!(bad(DecoderConfig { tie_word_embeddings: false, ..DecoderConfig::tiny() }).contains("tie_word_embeddings"));
        // A checkpoint config from before the families: GPT-2, tied, all heads.
        let old: DecoderConfig =
            serde_json::from_str(r#"{"vocab_size":100,"n_positions":16,"n_embd":8,"n_layer":1,"n_head":2,"layer_norm_epsilon":1e-5}"#)
                .unwrap();
        assert_eq!((old.family, old.kv_heads(), old.hidden(), old.tie_word_embeddings), (Family::Gpt2, 2, 32, true));
    }
}
