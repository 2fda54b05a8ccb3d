//! The hybrid: an H-Net dynamic-chunking encoder in front of a decoder (GPT-2 in the seed; here any family), joined
//! by the seed's gated fusion: `decoder embeddings h → encoder → dynamic chunking → z; fusion(h, z) → decoder blocks
//! → final norm → LM head`.
//!
//! The decoder keeps its family's names under `gpt2.` — the field's name from when GPT-2 was the only decoder, kept so
//! that every hybrid checkpoint names its weights alike — so a pretrained decoder (imported, pulled or trained here)
//! can initialise it. Unlike the seed's hybrid, every step is causal: chunks come from the learned router with causal
//! plug-back, not from means over spans that reach into the future.

use burn::module::Module;
use burn::tensor::backend::Backend;
use burn::tensor::{Bool, Int, Tensor};

use crate::arch::decoder::Decoder;
use crate::arch::family::DecoderConfig;
use crate::arch::hnet::HNetConfig;
use crate::error::ModelError;
use crate::hnet::chunking::{DynamicChunking, StageAux, StageState};
use crate::hnet::fusion::Fusion;
use crate::hnet::routing::Routing;
use crate::nn::cache::KvCache;
use crate::nn::isotropic::Isotropic;

/// The hybrid model.
#[derive(Module, Debug)]
pub struct Hybrid<B: Backend> {
    /// The decoder (any family): embeddings, blocks, final norm, LM head.
    pub gpt2: Decoder<B>,
    /// H-Net encoder over the GPT-2 embeddings.
    pub encoder: Isotropic<B>,
    /// Routing, main network, dechunk.
    pub stage: DynamicChunking<B>,
    /// Gated fusion of the embeddings with the stage's output.
    pub fusion: Fusion<B>,
}

/// Decoding state of [`Hybrid`].
#[derive(Debug, Clone)]
pub struct HybridState<B: Backend> {
    pub(crate) encoder: KvCache<B>,
    pub(crate) stage: StageState<B>,
    pub(crate) decoder: KvCache<B>,
}

/// Builds a hybrid.
pub fn init_hybrid<B: Backend>(decoder: &DecoderConfig, hnet: &HNetConfig, device: &B::Device) -> Hybrid<B> {
    Hybrid {
        gpt2: decoder.init(device),
        encoder: hnet.encoder.init(device),
        stage: DynamicChunking::init(decoder.n_embd, &hnet.main, device),
        fusion: Fusion::init(decoder.n_embd, device),
    }
}

impl<B: Backend> Hybrid<B> {
    /// Whole-batch pass.
    ///
    /// # Shapes
    /// `tokens, mask: [B, L]` → hidden states `[B, L, C]` (after `ln_f`) and the stage's outputs.
    pub fn forward(&self, tokens: Tensor<B, 2, Int>, mask: Tensor<B, 2, Bool>, m: Option<usize>) -> (Tensor<B, 3>, StageAux<B>) {
        let h = self.gpt2.embed(tokens, 0);
        let x = self.encoder.forward(h.clone(), 0, None);
        let (z, aux) = self.stage.forward(x, mask, m);
        let (fused, _) = self.fusion.forward(h, z);
        (self.gpt2.blocks(fused, 0, None), aux)
    }

    /// A fresh decoding state.
    pub fn new_state(&self) -> HybridState<B> {
        HybridState { encoder: self.encoder.new_cache(), stage: self.stage.new_state(), decoder: self.gpt2.new_cache() }
    }

    /// Cached pass over the next tokens: hidden states `[1, T, C]` and the router's outputs.
    pub async fn forward_cached(
        &self,
        tokens: Tensor<B, 2, Int>,
        state: &mut HybridState<B>,
    ) -> Result<(Tensor<B, 3>, Routing<B>), ModelError> {
        let start = state.encoder.len();
        let h = self.gpt2.embed(tokens, start);
        let x = self.encoder.forward(h.clone(), start, Some(&mut state.encoder));
        let (z, routing) = self.stage.forward_cached(x, &mut state.stage).await?;
        let (fused, _) = self.fusion.forward(h, z);
        Ok((self.gpt2.blocks(fused, start, Some(&mut state.decoder)), routing))
    }
}
