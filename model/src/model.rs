//! [`Model`]: the architecture-independent front the rest of the crate (generation, scoring, checkpoints,
//! training, the app) talks to. Each architecture lives in its own file; this one only dispatches.

use burn::module::Module;
use burn::tensor::backend::Backend;
use burn::tensor::{Int, Tensor, TensorData};

use crate::cache::KvCache;
use crate::config::{Arch, ModelConfig};
use crate::error::ModelError;
use crate::gpt2::Gpt2;

/// The network of one architecture.
#[derive(Module, Debug)]
pub enum Net<B: Backend> {
    /// A plain GPT-2 decoder.
    Gpt2(Gpt2<B>),
}

/// A model and the config that built it.
#[derive(Module, Debug)]
pub struct Model<B: Backend> {
    /// The network.
    pub net: Net<B>,
    /// The config it was built from (not a parameter; saved as JSON beside the weights).
    #[module(skip)]
    pub config: ModelConfig,
}

/// Decoding state carried between cached calls (one sequence, batch size 1).
#[derive(Debug, Clone)]
pub struct State<B: Backend> {
    kv: KvCache<B>,
}

impl<B: Backend> State<B> {
    /// Number of positions already consumed.
    pub fn len(&self) -> usize {
        self.kv.len()
    }
    /// True before the first token.
    pub fn is_empty(&self) -> bool {
        self.kv.is_empty()
    }
}

impl<B: Backend> Model<B> {
    /// Builds a freshly initialised model.
    pub fn init(config: &ModelConfig, device: &B::Device) -> Result<Self, ModelError> {
        config.validate()?;
        let net = match config.arch {
            Arch::Gpt2 => Net::Gpt2(config.gpt2.init(device)),
        };
        Ok(Self { net, config: config.clone() })
    }

    /// The context length in tokens.
    pub fn n_ctx(&self) -> usize {
        self.config.n_ctx()
    }

    /// The device the weights live on.
    pub fn device(&self) -> B::Device {
        match &self.net {
            Net::Gpt2(m) => m.wte.weight.device(),
        }
    }

    /// Full forward pass over a batch: logits at every position.
    ///
    /// # Shapes
    /// `tokens: [B, T]` (T ≤ n_ctx) → `[B, T, V]`.
    pub fn forward(&self, tokens: Tensor<B, 2, Int>) -> Tensor<B, 3> {
        match &self.net {
            Net::Gpt2(m) => m.forward(tokens),
        }
    }

    /// A fresh decoding state.
    pub fn new_state(&self) -> State<B> {
        match &self.net {
            Net::Gpt2(m) => State { kv: KvCache::new(m.h.len()) },
        }
    }

    /// Cached forward: feeds `tokens` after what `state` has seen and returns the logits of the new positions
    /// (only the last one when `last_only`, which skips most of the LM head's work during generation).
    ///
    /// # Shapes
    /// `tokens: [1, T]` → `[1, T, V]` (or `[1, 1, V]` when `last_only`).
    pub fn forward_cached(&self, tokens: Tensor<B, 2, Int>, state: &mut State<B>, last_only: bool) -> Tensor<B, 3> {
        match &self.net {
            Net::Gpt2(m) => {
                let h = m.forward_cached(tokens, &mut state.kv); // [1, T, C]
                let t = h.dims()[1];
                let h = if last_only { h.narrow(1, t - 1, 1) } else { h };
                m.lm_head(h)
            }
        }
    }

    /// Turns token ids into a `[1, T]` tensor, checking they are in the vocabulary.
    pub fn tokens_tensor(&self, ids: &[u32]) -> Result<Tensor<B, 2, Int>, ModelError> {
        let vocab_size = self.config.vocab_size();
        if let Some(&id) = ids.iter().find(|&&id| id as usize >= vocab_size) {
            return Err(ModelError::TokenOutOfRange { id, vocab_size });
        }
        let data = TensorData::new(ids.iter().map(|&i| i as i32).collect::<Vec<_>>(), [1, ids.len()]);
        Ok(Tensor::from_data(data, &self.device()))
    }
}
