//! Pure H-Net over GPT-2 tokens (Hwang, Wang, Gu 2025, a one-stage H-Net):
//! `embed → encoder → dynamic chunking (routing, chunk, main network, dechunk, residual) → decoder → head`.
//!
//! The reference is byte-level with Mamba-2 encoder/decoder; here the tokens are GPT-2 BPE ids and every stage is
//! causal attention with rotary positions (spec §11). The LM head is tied to the token embedding, as in GPT-2, so
//! parameter counts stay comparable with the other architectures.

use crate::nn::embedding::{TokenEmbedding, TokenEmbeddingConfig};
use burn::module::Module;
use burn::tensor::backend::Backend;
use burn::tensor::{Bool, Int, Tensor};
use serde::{Deserialize, Serialize};

use crate::error::ModelError;
use crate::hnet::chunking::{DynamicChunking, StageAux, StageState};
use crate::hnet::routing::Routing;
use crate::nn::cache::KvCache;
use crate::nn::isotropic::{Isotropic, IsotropicConfig};

/// The H-Net parts of an `hnet` or `hybrid` model.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct HNetConfig {
    /// Encoder over token positions (ends with an RMSNorm).
    pub encoder: IsotropicConfig,
    /// Main network over chunks.
    pub main: IsotropicConfig,
    /// Decoder over token positions (`hnet` only; the hybrid's decoder is its GPT-2 blocks: `n_layer` 0).
    pub decoder: IsotropicConfig,
    /// Target compression `N` of the ratio loss: one chunk per `N` tokens.
    pub ratio_target: f64,
}

/// The pure H-Net model.
#[derive(Module, Debug)]
pub struct HNet<B: Backend> {
    /// Token embedding `[V, D]`, also the LM head.
    pub wte: TokenEmbedding<B>,
    /// Encoder.
    pub encoder: Isotropic<B>,
    /// Routing, main network, dechunk.
    pub stage: DynamicChunking<B>,
    /// Decoder.
    pub decoder: Isotropic<B>,
}

/// Decoding state of [`HNet`].
#[derive(Debug, Clone)]
pub struct HNetState<B: Backend> {
    pub(crate) encoder: KvCache<B>,
    pub(crate) stage: StageState<B>,
    pub(crate) decoder: KvCache<B>,
}

impl HNetConfig {
    /// Builds the pure H-Net for `vocab_size` tokens.
    pub fn init_hnet<B: Backend>(&self, vocab_size: usize, device: &B::Device) -> HNet<B> {
        let d = self.encoder.d_model;
        HNet {
            wte: TokenEmbeddingConfig::new(vocab_size, d).init(device),
            encoder: self.encoder.init(device),
            stage: DynamicChunking::init(d, &self.main, device),
            decoder: self.decoder.init(device),
        }
    }

    /// Checks the H-Net parts fit together.
    pub fn validate(&self, with_decoder: bool) -> Result<(), ModelError> {
        self.check(with_decoder).map_err(ModelError::InvalidConfig)
    }

    fn check(&self, with_decoder: bool) -> Result<(), String> {
        self.encoder.check("encoder")?;
        self.main.check("main")?;
        if with_decoder {
            self.decoder.check("decoder")?;
        }
        let d = self.encoder.d_model;
        if self.main.d_model != d || (with_decoder && self.decoder.d_model != d) {
            return Err(format!("encoder, main network and decoder must share one width (encoder: {d})"));
        }
        if self.main.n_layer == 0 {
            return Err("the main network needs at least one layer".into());
        }
        if !(self.ratio_target > 1.0) {
            return Err(format!("ratio_target must exceed 1, got {}", self.ratio_target));
        }
        Ok(())
    }
}

impl<B: Backend> HNet<B> {
    /// Whole-batch pass.
    ///
    /// # Shapes
    /// `tokens, mask: [B, L]` → hidden states `[B, L, D]` (before the head) and the stage's outputs.
    pub fn forward(&self, tokens: Tensor<B, 2, Int>, mask: Tensor<B, 2, Bool>, m: Option<usize>) -> (Tensor<B, 3>, StageAux<B>) {
        let x = self.encoder.forward(self.wte.forward(tokens), 0, None);
        let (z, aux) = self.stage.forward(x, mask, m);
        (self.decoder.forward(z, 0, None), aux)
    }

    /// The tied head.
    pub fn lm_head(&self, h: Tensor<B, 3>) -> Tensor<B, 3> {
        self.wte.head(h)
    }

    /// A fresh decoding state.
    pub fn new_state(&self) -> HNetState<B> {
        HNetState { encoder: self.encoder.new_cache(), stage: self.stage.new_state(), decoder: self.decoder.new_cache() }
    }

    /// Cached pass over the next tokens: hidden states `[1, T, D]` and the router's outputs.
    pub async fn forward_cached(
        &self,
        tokens: Tensor<B, 2, Int>,
        state: &mut HNetState<B>,
    ) -> Result<(Tensor<B, 3>, Routing<B>), ModelError> {
        let start = state.encoder.len();
        let x = self.encoder.forward(self.wte.forward(tokens), start, Some(&mut state.encoder));
        let (z, routing) = self.stage.forward_cached(x, &mut state.stage).await?;
        Ok((self.decoder.forward(z, start, Some(&mut state.decoder)), routing))
    }
}
