//! One H-Net stage's dynamic chunking (H-Net §2.2, reference `hnet.py` between encoder and decoder):
//! routing → chunk → main network over chunks → dechunk (EMA + plug-back) → `z = z̃·STE(c) + residual_proj(x̂)`.
//!
//! Two ways to run it, which give the same numbers (tested in `crate::arch::model`):
//! - [`DynamicChunking::forward`] over whole (right-padded) batches, device-only: no tensor is read back, so it runs
//!   unchanged on WebGPU. The main network runs over `m` chunk slots; `m = L` unless the caller knows the largest
//!   chunk count (slots past a row's last chunk hold junk that, by causality, never reaches a real chunk).
//! - [`DynamicChunking::forward_cached`] for decoding, one sequence at a time: the boundary mask of the new
//!   positions is read back (asynchronously), the main network runs only on new boundaries and extends its KV cache
//!   over chunks, and the last EMA value carries over (spec §6).

use burn::module::Module;
use burn::nn::LinearConfig;
use burn::tensor::backend::Backend;
use burn::tensor::{Bool, Int, Tensor, TensorData};

use crate::error::ModelError;
use crate::hnet::chunk::{boundary_cumsum, chunk, chunk_indices};
use crate::hnet::dechunk::{ema, plug_back, P_EPS};
use crate::hnet::routing::{Routing, RoutingModule};
use crate::hnet::ste::ste;
use crate::nn::cache::KvCache;
use crate::nn::isotropic::{Isotropic, IsotropicConfig};
use crate::nn::linear::Linear;

/// Routing, the main network over chunks, and the residual path of one stage.
#[derive(Module, Debug)]
pub struct DynamicChunking<B: Backend> {
    /// The boundary predictor.
    pub routing: RoutingModule<B>,
    /// The main network, causal over chunk indices.
    pub main: Isotropic<B>,
    /// `W_r x̂ + b_r`, weight zero-initialised so training starts from "decoder sees the chunks".
    pub residual_proj: Linear<B>,
}

/// What a stage reports besides its output.
#[derive(Debug, Clone)]
pub struct StageAux<B: Backend> {
    /// The router's outputs. `[B, L]` each.
    pub routing: Routing<B>,
    /// Boundaries up to each position (`cs_t`). `[B, L]`.
    pub boundary_cumsum: Tensor<B, 2, Int>,
}

/// Decoding state of a stage (batch size 1).
#[derive(Debug, Clone)]
pub struct StageState<B: Backend> {
    /// The previous position's encoder output x̂ (routing compares against it). `[1, 1, D]`.
    last_hidden: Option<Tensor<B, 3>>,
    /// KV cache of the main network, over chunks.
    main: KvCache<B>,
    /// Chunks so far (the main network's next position).
    n_chunks: usize,
    /// The current z̄ (the latest chunk's smoothed value). `[1, 1, D]`.
    last_value: Option<Tensor<B, 3>>,
}

impl<B: Backend> StageState<B> {
    /// Number of chunks seen so far.
    pub fn n_chunks(&self) -> usize {
        self.n_chunks
    }
}

impl<B: Backend> DynamicChunking<B> {
    /// A stage of width `d` with the given main network.
    pub fn init(d: usize, main: &IsotropicConfig, device: &B::Device) -> Self {
        let mut residual_proj: Linear<B> = LinearConfig::new(d, d).init(device).into();
        residual_proj.weight = residual_proj.weight.map(|w| w.zeros_like().require_grad());
        Self { routing: RoutingModule::new(d, device), main: main.init(device), residual_proj }
    }

    /// A fresh decoding state.
    pub fn new_state(&self) -> StageState<B> {
        StageState { last_hidden: None, main: self.main.new_cache(), n_chunks: 0, last_value: None }
    }

    /// Whole-batch pass over encoder outputs `x̂`.
    ///
    /// # Shapes
    /// `x: [B, L, D]`, `mask: [B, L]` (right-padded: real tokens first), `m` chunk slots (`None` = `L`)
    /// → `z: [B, L, D]` and [`StageAux`].
    pub fn forward(&self, x: Tensor<B, 3>, mask: Tensor<B, 2, Bool>, m: Option<usize>) -> (Tensor<B, 3>, StageAux<B>) {
        let l = x.dims()[1];
        let routing = self.routing.forward(x.clone(), None, mask);
        let cs = boundary_cumsum(routing.boundary_mask.clone()); // [B, L]
        let idx = chunk_indices(cs.clone(), m.unwrap_or(l).clamp(1, l)); // [B, m]
        let (chunks, p) = chunk(x.clone(), routing.boundary_prob.clone(), idx); // [B, m, D], [B, m]
        let z_hat = self.main.forward(chunks, 0, None); // [B, m, D]
        let z_bar = ema(z_hat, p.clamp(P_EPS, 1.0 - P_EPS), None); // [B, m, D]
                                                                   // cs_t ≥ 1 wherever the row has a real first token; padded rows clamp to slot 0 (their output is unused).
        let z_tilde = plug_back(z_bar, (cs.clone() - 1).clamp_min(0)); // [B, L, D]
        let z = self.combine(z_tilde, x, routing.selected_probs.clone());
        (z, StageAux { routing, boundary_cumsum: cs })
    }

    /// `z = z̃ · STE(c) + residual_proj(x̂)`.
    fn combine(&self, z_tilde: Tensor<B, 3>, x: Tensor<B, 3>, c: Tensor<B, 2>) -> Tensor<B, 3> {
        let [b, l] = c.dims();
        z_tilde * ste(c).reshape([b, l, 1]) + self.residual_proj.forward(x)
    }

    /// Cached pass over the next positions of one sequence (batch size 1).
    ///
    /// # Shapes
    /// `x: [1, T, D]` (encoder outputs of the new positions) → `z: [1, T, D]` and the router's outputs.
    pub async fn forward_cached(&self, x: Tensor<B, 3>, state: &mut StageState<B>) -> Result<(Tensor<B, 3>, Routing<B>), ModelError> {
        let [_, t, d] = x.dims();
        let device = x.device();
        let all = Tensor::<B, 2, Bool>::from_data(TensorData::new(vec![true; t], [1, t]), &device);
        let routing = self.routing.forward(x.clone(), state.last_hidden.take(), all);
        state.last_hidden = Some(x.clone().narrow(1, t - 1, 1));
        // Read as integers: backends store booleans differently (u8, u32), integers read back uniformly.
        let flags = routing.boundary_mask.clone().int().into_data_async().await.map_err(|e| ModelError::Device(format!("{e:?}")))?;
        let flags: Vec<bool> =
            flags.convert::<i32>().to_vec::<i32>().map_err(|e| ModelError::Device(format!("{e:?}")))?.into_iter().map(|b| b != 0).collect();
        let starts: Vec<i32> = flags.iter().enumerate().filter(|(_, &b)| b).map(|(i, _)| i as i32).collect();
        let previous = state.last_value.take().unwrap_or_else(|| Tensor::zeros([1, 1, d], &device));
        // Slot 0 is the chunk in progress before these positions; new chunks follow it.
        let slots = if starts.is_empty() {
            previous
        } else {
            let n = starts.len();
            let idx = Tensor::<B, 1, Int>::from_data(TensorData::new(starts, [n]), &device);
            let chunks = x.clone().select(1, idx.clone()); // [1, n, D]
            let p = routing.boundary_prob.clone().select(1, idx).clamp(P_EPS, 1.0 - P_EPS); // [1, n]
            let z_hat = self.main.forward(chunks, state.n_chunks, Some(&mut state.main)); // [1, n, D]
            state.n_chunks += n;
            let z_bar = ema(z_hat, p, Some(previous.clone())); // [1, n, D]
            Tensor::cat(vec![previous, z_bar], 1) // [1, 1 + n, D]
        };
        let n_slots = slots.dims()[1];
        state.last_value = Some(slots.clone().narrow(1, n_slots - 1, 1));
        // Position t reads slot "boundaries among the new positions up to t".
        let mut seen = 0;
        let idx: Vec<i32> = flags
            .iter()
            .map(|&b| {
                seen += b as i32;
                seen
            })
            .collect();
        let idx = Tensor::<B, 2, Int>::from_data(TensorData::new(idx, [1, t]), &device);
        let z = self.combine(plug_back(slots, idx), x, routing.selected_probs.clone());
        Ok((z, routing))
    }
}
