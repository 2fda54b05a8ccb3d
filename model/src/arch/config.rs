//! Model configuration: which architecture, its sizes, and the named presets.
//!
//! The config is saved as JSON inside every checkpoint, so a checkpoint always knows how to rebuild its model.
//! Hugging Face's `config.json` is a different format; it is translated in [`crate::io::hf`] and nowhere else.

use serde::{Deserialize, Serialize};

use crate::arch::family::DecoderConfig;
use crate::arch::hnet::HNetConfig;
use crate::error::ModelError;
use crate::nn::isotropic::IsotropicConfig;

/// The architectures the project compares.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Arch {
    /// A plain GPT-2 decoder.
    Gpt2,
    /// A one-stage H-Net: encoder, dynamic chunking, main network over chunks, decoder.
    Hnet,
    /// An H-Net dynamic-chunking encoder fused into a GPT-2 decoder.
    Hybrid,
}

impl Arch {
    /// Every architecture, in the order reports list them.
    pub const ALL: [Arch; 3] = [Arch::Gpt2, Arch::Hnet, Arch::Hybrid];

    /// The lowercase name used on the command line and in checkpoints.
    pub fn name(self) -> &'static str {
        match self {
            Arch::Gpt2 => "gpt2",
            Arch::Hnet => "hnet",
            Arch::Hybrid => "hybrid",
        }
    }
}

impl std::str::FromStr for Arch {
    type Err = ModelError;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        Arch::ALL
            .into_iter()
            .find(|a| a.name() == s)
            .ok_or_else(|| ModelError::InvalidConfig(format!("unknown architecture `{s}` (expected one of: gpt2, hnet, hybrid)")))
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
    /// The decoder (any family). `gpt2`: the whole model. `hybrid`: its embeddings, blocks and head. `hnet`: only the
    /// vocabulary, context and width are used (`n_layer` is 0). Saved under `gpt2`, its name from before the
    /// families.
    #[serde(rename = "gpt2")]
    pub decoder: DecoderConfig,
    /// The H-Net parts (`hnet`, `hybrid`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub hnet: Option<HNetConfig>,
}

/// Named size presets. Inside a preset the three architectures have parameter counts within ±10% of each other.
pub const PRESETS: [&str; 3] = ["tiny", "small", "base"];

/// Default ratio-loss target: one chunk per 3 GPT-2 tokens (≈ 6 bytes of Python, the paper's byte-level N).
pub const DEFAULT_RATIO_TARGET: f64 = 3.0;

fn iso(d_model: usize, n_layer: usize, n_head: usize, d_intermediate: usize) -> IsotropicConfig {
    IsotropicConfig { d_model, n_layer, n_head, d_intermediate, window: 0 }
}

impl ModelConfig {
    /// Builds the named preset for an architecture (`gpt2` is accepted as another name for `base`).
    ///
    /// | preset | width | gpt2 | hnet (enc / main / dec) | hybrid (GPT-2 blocks + enc / main) | params |
    /// |---|---|---|---|---|---|
    /// | tiny | 64 | 2 blocks | 1 / 2 / 1 | 2 + 1 / 1 | ≈3.3–3.5M |
    /// | small | 256 | 6 blocks | 1 / 5 / 1 | 4 + 1 / 1 | ≈17.7M |
    /// | base | 768 | 12 blocks (= HF `gpt2`) | 1 / 10 / 1 | 12 + 1 / 1 (attention-only) | ≈124–133M |
    pub fn preset(arch: Arch, name: &str) -> Result<Self, ModelError> {
        let (gpt2, d, heads, hidden) = match name {
            "tiny" => (DecoderConfig::tiny(), 64, 4, 128),
            "small" => (DecoderConfig::small(), 256, 8, 512),
            "base" | "gpt2" => (DecoderConfig::gpt2(), 768, 12, 2048),
            other => return Err(ModelError::InvalidConfig(format!("unknown preset `{other}` (expected one of: {})", PRESETS.join(", ")))),
        };
        let config = match arch {
            Arch::Gpt2 => ModelConfig { arch, decoder: gpt2, hnet: None },
            Arch::Hnet => {
                let main_layers = match name {
                    "tiny" => 2,
                    "small" => 5,
                    _ => 10,
                };
                let hnet = HNetConfig {
                    encoder: iso(d, 1, heads, hidden),
                    main: iso(d, main_layers, heads, hidden),
                    decoder: iso(d, 1, heads, hidden),
                    ratio_target: DEFAULT_RATIO_TARGET,
                };
                ModelConfig { arch, decoder: DecoderConfig { n_layer: 0, ..gpt2 }, hnet: Some(hnet) }
            }
            Arch::Hybrid => {
                // `base` keeps all 12 GPT-2 blocks so Hugging Face `gpt2` weights fit; its H-Net layers are
                // attention-only to stay within 10% of GPT-2's parameter count.
                let (blocks, hidden) = match name {
                    "tiny" => (2, hidden),
                    "small" => (4, hidden),
                    _ => (12, 0),
                };
                let hnet = HNetConfig {
                    encoder: iso(d, 1, heads, hidden),
                    main: iso(d, 1, heads, hidden),
                    decoder: iso(d, 0, heads, 0),
                    ratio_target: DEFAULT_RATIO_TARGET,
                };
                ModelConfig { arch, decoder: DecoderConfig { n_layer: blocks, ..gpt2 }, hnet: Some(hnet) }
            }
        };
        config.validate()?;
        Ok(config)
    }

    /// The context length in tokens.
    /// A hybrid built around a given decoder of any family (`--decoder-from`, a model pulled from the Hub): the
    /// decoder is exactly `decoder` (width, depth, vocabulary, context), and the H-Net encoder and main network run
    /// at its width with its head count, one layer each with an MLP twice as wide, as the presets do.
    pub fn hybrid_on(decoder: &DecoderConfig) -> Result<Self, ModelError> {
        let (d, heads) = (decoder.n_embd, decoder.n_head.max(1));
        let hnet = HNetConfig {
            encoder: iso(d, 1, heads, 2 * d),
            main: iso(d, 1, heads, 2 * d),
            decoder: iso(d, 0, heads, 0),
            ratio_target: DEFAULT_RATIO_TARGET,
        };
        let config = ModelConfig { arch: Arch::Hybrid, decoder: decoder.clone(), hnet: Some(hnet) };
        config.validate()?;
        Ok(config)
    }

    pub fn n_ctx(&self) -> usize {
        self.decoder.n_positions
    }

    /// The vocabulary size.
    pub fn vocab_size(&self) -> usize {
        self.decoder.vocab_size
    }

    /// Checks the invariants a model needs, so that bad configs fail with a message instead of a panic.
    pub fn validate(&self) -> Result<(), ModelError> {
        let g = &self.decoder;
        let bad = |msg: String| Err(ModelError::InvalidConfig(msg));
        if g.vocab_size == 0 || g.n_positions == 0 || g.n_embd == 0 {
            return bad(format!("vocab_size, n_positions and n_embd must be positive: {g:?}"));
        }
        // Bounds far beyond any real model, so that a corrupt or hostile config is refused before sizes multiply
        // (param_count) or tensors are allocated.
        let widths = [g.n_embd].into_iter().chain(self.hnet.iter().flat_map(|h| [h.encoder.d_model, h.main.d_model, h.decoder.d_model]));
        let hidden = [g.d_intermediate.unwrap_or(0)]
            .into_iter()
            .chain(self.hnet.iter().flat_map(|h| [h.encoder.d_intermediate, h.main.d_intermediate, h.decoder.d_intermediate]));
        let layers = [g.n_layer].into_iter().chain(self.hnet.iter().flat_map(|h| [h.encoder.n_layer, h.main.n_layer, h.decoder.n_layer]));
        if g.vocab_size > 1 << 22
            || g.n_positions > 1 << 20
            || widths.clone().any(|w| w > 1 << 16)
            || hidden.clone().any(|w| w > 1 << 18)
            || layers.clone().any(|n| n > 1024)
        {
            return bad(format!(
                "sizes out of range (vocabulary ≤ 4M, context ≤ 1M, width ≤ 65536, hidden ≤ 262144, layers ≤ 1024): {g:?}"
            ));
        }
        if self.arch != Arch::Hnet {
            g.check().map_err(ModelError::InvalidConfig)?;
        } else if !(g.layer_norm_epsilon > 0.0) {
            return bad(format!("layer_norm_epsilon must be positive, got {}", g.layer_norm_epsilon));
        }
        match (&self.hnet, self.arch) {
            (None, Arch::Gpt2) => Ok(()),
            (Some(_), Arch::Gpt2) => bad("a gpt2 model has no `hnet` section".into()),
            (None, _) => bad(format!("a {} model needs an `hnet` section", self.arch)),
            (Some(h), arch) => {
                h.validate(arch == Arch::Hnet)?;
                if h.encoder.d_model != g.n_embd {
                    return bad(format!("the H-Net width ({}) must equal n_embd ({})", h.encoder.d_model, g.n_embd));
                }
                if arch == Arch::Hybrid && h.decoder.n_layer != 0 {
                    return bad("the hybrid's decoder is its decoder's blocks: hnet.decoder.n_layer must be 0".into());
                }
                Ok(())
            }
        }
    }

    /// Number of parameters the config describes, computed from the sizes alone (no model is built).
    pub fn param_count(&self) -> usize {
        let g = &self.decoder;
        let iso = |i: &IsotropicConfig| {
            let d = i.d_model;
            let mlp = if i.d_intermediate > 0 { 3 * d * i.d_intermediate + d } else { 0 };
            i.n_layer * (4 * d * d + d + mlp) + d
        };
        match (&self.hnet, self.arch) {
            (_, Arch::Gpt2) | (None, _) => g.param_count(),
            (Some(h), arch) => {
                let d = h.encoder.d_model;
                // router (2 D×D) + residual projection (D×D + D) + encoder + main
                let stage = 3 * d * d + d + iso(&h.encoder) + iso(&h.main);
                match arch {
                    Arch::Hnet => g.vocab_size * d + stage + iso(&h.decoder),
                    // + fusion: proj (D×D + D) and gate (2D×D + D)
                    _ => g.param_count() + stage + 3 * d * d + 2 * d,
                }
            }
        }
    }

    /// Parses a config from JSON and validates it.
    pub fn from_json(json: &str) -> Result<Self, ModelError> {
        let config: ModelConfig = serde_json::from_str(json).map_err(|e| ModelError::InvalidConfig(format!("config JSON: {e}")))?;
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
    use crate::arch::model::Model;
    use crate::TestBackend;
    use burn::module::Module;

    #[test]
    fn presets_round_trip_through_json() {
        for arch in Arch::ALL {
            for name in PRESETS {
                let c = ModelConfig::preset(arch, name).unwrap();
                assert_eq!(ModelConfig::from_json(&c.to_json()).unwrap(), c);
            }
        }
    }

    #[test]
    fn parameter_counts_within_ten_percent_inside_each_preset() {
        let device = Default::default();
        for name in ["tiny", "small"] {
            let counts: Vec<usize> = Arch::ALL
                .iter()
                .map(|&a| Model::<TestBackend>::init(&ModelConfig::preset(a, name).unwrap(), &device).unwrap().num_params())
                .collect();
            let (lo, hi) = (*counts.iter().min().unwrap() as f64, *counts.iter().max().unwrap() as f64);
            assert!(hi / lo <= 1.10, "{name}: {counts:?}");
        }
    }

    #[test]
    fn analytic_parameter_counts_match_built_models_and_base_is_within_ten_percent() {
        let device = Default::default();
        for arch in Arch::ALL {
            for name in ["tiny", "small"] {
                let c = ModelConfig::preset(arch, name).unwrap();
                assert_eq!(c.param_count(), Model::<TestBackend>::init(&c, &device).unwrap().num_params(), "{arch} {name}");
            }
        }
        // `base` is too big to build in a unit test; the formula, checked above, gives its counts.
        let base: Vec<usize> = Arch::ALL.iter().map(|&a| ModelConfig::preset(a, "base").unwrap().param_count()).collect();
        assert_eq!(base[0], 124_439_808, "gpt2 base is Hugging Face gpt2");
        let (lo, hi) = (*base.iter().min().unwrap() as f64, *base.iter().max().unwrap() as f64);
        assert!(hi / lo <= 1.10, "{base:?}");
    }

    #[test]
    fn bad_configs_are_rejected_with_a_message() {
        let mut c = ModelConfig::preset(Arch::Gpt2, "tiny").unwrap();
        c.decoder.n_head = 3;
        let err = c.validate().unwrap_err().to_string();
        assert!(err.contains("divisible"), "{err}");
        assert!(ModelConfig::preset(Arch::Gpt2, "huge").is_err());
        assert!("hnet2".parse::<Arch>().is_err());
        assert!(ModelConfig::from_json("{\"arch\":\"gpt2\"}").is_err());
        let mut h = ModelConfig::preset(Arch::Hnet, "tiny").unwrap();
        h.hnet.as_mut().unwrap().main.d_model = 32;
        assert!(h.validate().unwrap_err().to_string().contains("width"));
        let mut h = ModelConfig::preset(Arch::Hybrid, "tiny").unwrap();
        h.hnet = None;
        assert!(h.validate().is_err());
    }
}
