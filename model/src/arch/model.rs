//! [`Model`]: the architecture-independent front the rest of the crate (generation, scoring, checkpoints,
//! training, the app) talks to. Each architecture lives in its own file; this one only dispatches.

use burn::module::Module;
use burn::tensor::backend::Backend;
use burn::tensor::{Bool, Int, Tensor, TensorData};

use crate::arch::config::{Arch, ModelConfig};
use crate::arch::decoder::Decoder;
use crate::arch::hnet::{HNet, HNetState};
use crate::arch::hybrid::{init_hybrid, Hybrid, HybridState};
use crate::error::ModelError;
use crate::hnet::chunking::StageAux;
use crate::hnet::ratio_loss::ratio_loss;
use crate::hnet::routing::Routing;
use crate::nn::cache::KvCache;
use crate::nn::embedding::TokenEmbedding;
use crate::tokenizer::TokenizerSpec;

/// The network of one architecture. The variants differ in size, but a model holds one `Net` for its lifetime:
/// boxing would only add an indirection to every forward pass.
#[derive(Module, Debug)]
#[allow(clippy::large_enum_variant)]
pub enum Net<B: Backend> {
    /// A plain decoder (any family).
    Decoder(Decoder<B>),
    /// A pure H-Net.
    HNet(HNet<B>),
    /// The hybrid.
    Hybrid(Hybrid<B>),
}

/// A model and the config that built it.
#[derive(Module, Debug)]
pub struct Model<B: Backend> {
    /// The network.
    pub net: Net<B>,
    /// The config it was built from (not a parameter; saved as JSON beside the weights).
    #[module(skip)]
    pub config: ModelConfig,
    /// The tokenizer it reads and writes (saved beside the weights; GPT-2's unless the model came with its own).
    #[module(skip)]
    pub tokenizer: TokenizerSpec,
}

/// What a whole-batch forward pass returns.
#[derive(Debug, Clone)]
pub struct ModelOutput<B: Backend> {
    /// Logits at every position. `[B, L, V]`.
    pub logits: Tensor<B, 3>,
    /// The chunking stage's outputs (`hnet`, `hybrid`).
    pub aux: Option<StageAux<B>>,
}

/// What a cached step returns.
#[derive(Debug, Clone)]
pub struct StepOutput<B: Backend> {
    /// Logits of the new positions (or only the last). `[1, T, V]`.
    pub logits: Tensor<B, 3>,
    /// The router's outputs for the new positions (`hnet`, `hybrid`).
    pub routing: Option<Routing<B>>,
}

#[derive(Debug, Clone)]
enum StateKind<B: Backend> {
    Decoder(KvCache<B>),
    HNet(Box<HNetState<B>>),
    Hybrid(Box<HybridState<B>>),
}

/// Decoding state carried between cached calls (one sequence, batch size 1).
#[derive(Debug, Clone)]
pub struct State<B: Backend> {
    kind: StateKind<B>,
    len: usize,
}

impl<B: Backend> State<B> {
    /// Number of positions already consumed.
    pub fn len(&self) -> usize {
        self.len
    }
    /// True before the first token.
    pub fn is_empty(&self) -> bool {
        self.len == 0
    }
    /// Chunks formed so far (`hnet`, `hybrid`).
    pub fn n_chunks(&self) -> Option<usize> {
        match &self.kind {
            StateKind::Decoder(_) => None,
            StateKind::HNet(s) => Some(s.stage.n_chunks()),
            StateKind::Hybrid(s) => Some(s.stage.n_chunks()),
        }
    }
}

impl<B: Backend> Model<B> {
    /// Builds a freshly initialised model. For a device whose buffers are limited (a GPU), build through
    /// `io::checkpoint::init`, which refuses a weight no buffer holds before anything is allocated.
    pub fn init(config: &ModelConfig, device: &B::Device) -> Result<Self, ModelError> {
        config.validate()?;
        let net = match (config.arch, &config.hnet) {
            (Arch::Gpt2, _) => Net::Decoder(config.decoder.init(device)),
            (Arch::Hnet, Some(h)) => Net::HNet(h.init_hnet(config.vocab_size(), device)),
            (Arch::Hybrid, Some(h)) => Net::Hybrid(init_hybrid(&config.decoder, h, device)),
            (_, None) => unreachable!("validate() requires an hnet section"),
        };
        Ok(Self { net, config: config.clone(), tokenizer: TokenizerSpec::default() })
    }

    /// Initialises every parameter now, in module order. burn initialises parameters lazily, on first use: a copy
    /// made before that (a data-parallel replica, `valid()`) would draw its own random weights, and the order of
    /// first use would decide the weights. Training drivers call this right after building a model.
    pub fn materialize(&self) {
        struct Touch;
        impl<Bk: Backend> burn::module::ModuleVisitor<Bk> for Touch {
            fn visit_float<const D: usize>(&mut self, param: &burn::module::Param<Tensor<Bk, D>>) {
                let _ = param.val();
            }
        }
        burn::module::Module::visit(self, &mut Touch);
    }

    /// `model` (on an inference backend) taken into autodiff with every parameter trainable, its tensors shared,
    /// not copied: fine-tuning the model one holds needs no second copy of it. (burn's `from_inner` keeps the
    /// inference tensors' `require_grad`, which is off.)
    pub fn trainable(model: Model<B::InnerBackend>) -> Self
    where
        B: burn::tensor::backend::AutodiffBackend,
    {
        struct RequireGrad;
        impl<Bk: Backend> burn::module::ModuleMapper<Bk> for RequireGrad {
            fn map_float<const D: usize>(&mut self, param: burn::module::Param<Tensor<Bk, D>>) -> burn::module::Param<Tensor<Bk, D>> {
                param.map(|t| t.require_grad())
            }
        }
        <Self as burn::module::AutodiffModule<B>>::from_inner(model).map(&mut RequireGrad)
    }

    /// The context length in tokens.
    pub fn n_ctx(&self) -> usize {
        self.config.n_ctx()
    }

    /// The same model with a context of `n` positions (at most its own); learned positions past `n` are dropped.
    /// For a model trained on sequences of `n` tokens: the positions after them never trained, and nothing
    /// (scoring, completion, the page) should use them.
    pub fn with_context(mut self, n: usize) -> Result<Self, ModelError> {
        if n == 0 || n > self.n_ctx() {
            return Err(ModelError::InvalidConfig(format!("a context of {n} positions: expected 1 to {}", self.n_ctx())));
        }
        let decoder = match &mut self.net {
            Net::Decoder(d) => Some(d),
            Net::Hybrid(h) => Some(&mut h.gpt2),
            Net::HNet(_) => None,
        };
        // Learned positions (GPT-2, GPTBigCode) are a table to cut; rotary ones (Llama, Qwen2, H-Net) have none.
        if let Some(Decoder::Gpt2(g)) = decoder {
            g.wpe.weight = burn::module::Param::from_tensor(g.wpe.weight.val().narrow(0, 0, n));
        }
        self.config.decoder.n_positions = n;
        Ok(self)
    }

    /// The token embedding (also the tied LM head).
    pub fn embedding(&self) -> &TokenEmbedding<B> {
        match &self.net {
            Net::Decoder(m) => m.embedding(),
            Net::HNet(m) => &m.wte,
            Net::Hybrid(m) => m.gpt2.embedding(),
        }
    }

    /// The device the weights live on.
    pub fn device(&self) -> B::Device {
        self.embedding().device()
    }

    /// Full forward pass over a batch of real tokens: logits at every position.
    ///
    /// # Shapes
    /// `tokens: [B, T]` (T ≤ n_ctx) → `[B, T, V]`.
    pub fn forward(&self, tokens: Tensor<B, 2, Int>) -> Tensor<B, 3> {
        let [b, t] = tokens.dims();
        let mask = Tensor::<B, 2, Bool>::from_data(TensorData::new(vec![true; b * t], [b, t]), &tokens.device());
        self.forward_full(tokens, mask, None).logits
    }

    /// Full forward pass over a right-padded batch (`mask`: true = real token), with the chunking outputs.
    /// `chunk_slots` bounds the main network's length when the caller knows the largest chunk count (results are
    /// identical; it only saves work); `None` runs it over all `T` slots, which needs no read-back.
    ///
    /// # Shapes
    /// `tokens, mask: [B, T]` → logits `[B, T, V]`.
    pub fn forward_full(&self, tokens: Tensor<B, 2, Int>, mask: Tensor<B, 2, Bool>, chunk_slots: Option<usize>) -> ModelOutput<B> {
        let (h, aux) = self.forward_hidden(tokens, mask, chunk_slots);
        ModelOutput { logits: self.lm_head(h), aux }
    }

    /// [`Self::forward_full`] up to the LM head: the final hidden states, which the head multiplies by
    /// [`Self::head_table`]ᵀ. Training takes them to compute the head and its loss as one operation
    /// ([`crate::train::head_loss`]).
    ///
    /// # Shapes
    /// `tokens, mask: [B, T]` → `[B, T, C]`.
    pub fn forward_hidden(
        &self,
        tokens: Tensor<B, 2, Int>,
        mask: Tensor<B, 2, Bool>,
        chunk_slots: Option<usize>,
    ) -> (Tensor<B, 3>, Option<StageAux<B>>) {
        match &self.net {
            Net::Decoder(m) => (m.blocks(m.embed(tokens, 0), 0, None), None),
            Net::HNet(m) => {
                let (h, aux) = m.forward(tokens, mask, chunk_slots);
                (h, Some(aux))
            }
            Net::Hybrid(m) => {
                let (h, aux) = m.forward(tokens, mask, chunk_slots);
                (h, Some(aux))
            }
        }
    }

    /// The LM head: hidden states → logits (by the token embedding's parts when it is held in several).
    ///
    /// # Shapes
    /// `[B, T, C]` → `[B, T, V]`.
    pub fn lm_head(&self, h: Tensor<B, 3>) -> Tensor<B, 3> {
        match &self.net {
            Net::Decoder(m) => m.lm_head(h),
            Net::HNet(m) => m.lm_head(h),
            Net::Hybrid(m) => m.gpt2.lm_head(h),
        }
    }

    /// The LM head's table `[V, C]` (in parts or one): the token embedding, or a Llama-family decoder's own head.
    pub fn head_table(&self) -> &TokenEmbedding<B> {
        match &self.net {
            Net::Decoder(m) => m.head_table(),
            Net::HNet(m) => &m.wte,
            Net::Hybrid(m) => m.gpt2.head_table(),
        }
    }

    /// Only what decides the chunks: embeddings → encoder → router. Where the router puts boundaries depends on
    /// nothing after it (the main network, dechunking, fusion, the decoder and the LM head), so inspecting chunks
    /// skips them — for a 50257-token vocabulary the LM head alone is most of a full pass. `None` for `gpt2`.
    ///
    /// # Shapes
    /// `tokens, mask: [B, T]` → boundary probability and mask `[B, T]`.
    pub fn route(&self, tokens: Tensor<B, 2, Int>, mask: Tensor<B, 2, Bool>) -> Option<Routing<B>> {
        match &self.net {
            Net::Decoder(_) => None,
            Net::HNet(m) => {
                let x = m.encoder.forward(m.wte.forward(tokens), 0, None);
                Some(m.stage.routing.forward(x, None, mask))
            }
            Net::Hybrid(m) => {
                let x = m.encoder.forward(m.gpt2.embed(tokens, 0), 0, None);
                Some(m.stage.routing.forward(x, None, mask))
            }
        }
    }

    /// The ratio loss of a forward pass's chunking (None for `gpt2`).
    pub fn ratio_loss(&self, aux: &StageAux<B>, mask: Tensor<B, 2, Bool>) -> Option<Tensor<B, 1>> {
        let target = self.config.hnet.as_ref()?.ratio_target;
        Some(ratio_loss(aux.routing.boundary_mask.clone(), aux.routing.boundary_prob.clone(), mask, target))
    }

    /// A fresh decoding state.
    pub fn new_state(&self) -> State<B> {
        let kind = match &self.net {
            Net::Decoder(m) => StateKind::Decoder(m.new_cache()),
            Net::HNet(m) => StateKind::HNet(Box::new(m.new_state())),
            Net::Hybrid(m) => StateKind::Hybrid(Box::new(m.new_state())),
        };
        State { kind, len: 0 }
    }

    /// Cached forward: feeds `tokens` after what `state` has seen and returns the logits of the new positions
    /// (only the last one when `last_only`, which skips most of the LM head's work during generation).
    ///
    /// Async because H-Net stages read their boundary flags back to decide whether the main network runs; on
    /// WebGPU that read must be awaited. Native callers use [`Self::forward_cached_blocking`].
    ///
    /// # Shapes
    /// `tokens: [1, T]` → logits `[1, T, V]` (or `[1, 1, V]` when `last_only`).
    pub async fn forward_cached(
        &self,
        tokens: Tensor<B, 2, Int>,
        state: &mut State<B>,
        last_only: bool,
    ) -> Result<StepOutput<B>, ModelError> {
        let t = tokens.dims()[1];
        if state.len + t > self.n_ctx() {
            return Err(ModelError::InvalidConfig(format!("{} + {t} positions exceed the context of {}", state.len, self.n_ctx())));
        }
        let last = |h: Tensor<B, 3>| if last_only { h.narrow(1, t - 1, 1) } else { h };
        let out = match (&self.net, &mut state.kind) {
            (Net::Decoder(m), StateKind::Decoder(kv)) => {
                StepOutput { logits: m.lm_head(last(m.forward_cached(tokens, kv))), routing: None }
            }
            (Net::HNet(m), StateKind::HNet(s)) => {
                let (h, routing) = m.forward_cached(tokens, s).await?;
                StepOutput { logits: m.lm_head(last(h)), routing: Some(routing) }
            }
            (Net::Hybrid(m), StateKind::Hybrid(s)) => {
                let (h, routing) = m.forward_cached(tokens, s).await?;
                StepOutput { logits: m.gpt2.lm_head(last(h)), routing: Some(routing) }
            }
            _ => unreachable!("a State always comes from its own model's new_state()"),
        };
        state.len += t;
        Ok(out)
    }

    /// [`Self::forward_cached`] for native backends, where reads complete without an event loop.
    #[cfg(not(target_arch = "wasm32"))]
    pub fn forward_cached_blocking(
        &self,
        tokens: Tensor<B, 2, Int>,
        state: &mut State<B>,
        last_only: bool,
    ) -> Result<StepOutput<B>, ModelError> {
        futures_lite::future::block_on(self.forward_cached(tokens, state, last_only))
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
