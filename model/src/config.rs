//! Model configuration: which architecture, its sizes, and the named presets.
//!
//! The config is saved as JSON inside every checkpoint, so a checkpoint always knows how to rebuild its model.
//! Hugging Face's `config.json` is a different format; it is translated in [`crate::load`] and nowhere else.

use serde::{Deserialize, Serialize};

use crate::error::ModelError;
use crate::gpt2::Gpt2Config;

/// The architectures the project compares.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Arch {
    /// A plain GPT-2 decoder.
    Gpt2,
}

impl Arch {
    /// Every architecture, in the order reports list them.
    pub const ALL: [Arch; 1] = [Arch::Gpt2];

    /// The lowercase name used on the command line and in checkpoints.
    pub fn name(self) -> &'static str {
        match self {
            Arch::Gpt2 => "gpt2",
        }
    }
}

impl std::str::FromStr for Arch {
    type Err = ModelError;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        Arch::ALL
            .into_iter()
            .find(|a| a.name() == s)
            .ok_or_else(|| ModelError::InvalidConfig(format!("unknown architecture `{s}` (expected one of: gpt2)")))
    }
}

impl std::fmt::Display for Arch {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.name())
    }
}

/// Everything needed to rebuild a model: the architecture and its sizes.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ModelConfig {
    /// Which architecture this is.
    pub arch: Arch,
    /// The GPT-2 decoder's sizes (for `gpt2`: the whole model).
    pub gpt2: Gpt2Config,
}

/// Named size presets.
pub const PRESETS: [&str; 3] = ["tiny", "small", "gpt2"];

impl ModelConfig {
    /// Builds the named preset for an architecture.
    ///
    /// - `tiny`: for tests and the end-to-end browser suite (about 3.3M parameters, nearly all embeddings);
    /// - `small`: the browser default (about 18M parameters including the 50257-row embedding);
    /// - `gpt2`: exactly Hugging Face `gpt2` (124M).
    pub fn preset(arch: Arch, name: &str) -> Result<Self, ModelError> {
        let gpt2 = match name {
            "tiny" => Gpt2Config::tiny(),
            "small" => Gpt2Config::small(),
            "gpt2" => Gpt2Config::gpt2(),
            other => {
                return Err(ModelError::InvalidConfig(format!(
                    "unknown preset `{other}` (expected one of: {})",
                    PRESETS.join(", ")
                )))
            }
        };
        let config = ModelConfig { arch, gpt2 };
        config.validate()?;
        Ok(config)
    }

    /// The context length in tokens.
    pub fn n_ctx(&self) -> usize {
        self.gpt2.n_positions
    }

    /// The vocabulary size.
    pub fn vocab_size(&self) -> usize {
        self.gpt2.vocab_size
    }

    /// Checks the invariants a model needs, so that bad configs fail with a message instead of a panic.
    pub fn validate(&self) -> Result<(), ModelError> {
        let g = &self.gpt2;
        let bad = |msg: String| Err(ModelError::InvalidConfig(msg));
        if g.vocab_size == 0 || g.n_positions == 0 || g.n_embd == 0 || g.n_layer == 0 || g.n_head == 0 {
            return bad(format!("all sizes must be positive: {g:?}"));
        }
        if g.n_embd % g.n_head != 0 {
            return bad(format!("n_embd ({}) must be divisible by n_head ({})", g.n_embd, g.n_head));
        }
        if !(g.layer_norm_epsilon > 0.0) {
            return bad(format!("layer_norm_epsilon must be positive, got {}", g.layer_norm_epsilon));
        }
        Ok(())
    }

    /// Parses a config from JSON and validates it.
    pub fn from_json(json: &str) -> Result<Self, ModelError> {
        let config: ModelConfig =
            serde_json::from_str(json).map_err(|e| ModelError::InvalidConfig(format!("config JSON: {e}")))?;
        config.validate()?;
        Ok(config)
    }

    /// Serialises the config as JSON.
    pub fn to_json(&self) -> String {
        serde_json::to_string(self).expect("a ModelConfig always serialises")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn presets_round_trip_through_json() {
        for name in PRESETS {
            let c = ModelConfig::preset(Arch::Gpt2, name).unwrap();
            assert_eq!(ModelConfig::from_json(&c.to_json()).unwrap(), c);
        }
    }

    #[test]
    fn bad_configs_are_rejected_with_a_message() {
        let mut c = ModelConfig::preset(Arch::Gpt2, "tiny").unwrap();
        c.gpt2.n_head = 3;
        let err = c.validate().unwrap_err().to_string();
        assert!(err.contains("divisible"), "{err}");
        assert!(ModelConfig::preset(Arch::Gpt2, "huge").is_err());
        assert!("hnet2".parse::<Arch>().is_err());
        assert!(ModelConfig::from_json("{\"arch\":\"gpt2\"}").is_err());
    }
}
