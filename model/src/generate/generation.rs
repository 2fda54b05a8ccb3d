//! Cached autoregressive generation over token ids: prefill, then one step per sampled token.
//!
//! Knows nothing about text (the tokenizer's [`crate::tokenizer::TextStream`] turns ids into streamed text and
//! handles stop strings). [`Generator`] is a small state machine so the same loop serves native code, which reads
//! logits synchronously ([`Generator::next_token`]), and the browser, which must await them
//! ([`Generator::next_token_async`]).
//!
//! **Context policy.** The model sees at most its last `n_ctx` tokens. A prompt longer than that keeps its last
//! `n_ctx` tokens ([`Generator::truncated`] says how many were dropped). When generation fills the context, the
//! window slides: the cache is rebuilt from the last `n_ctx / 2` tokens and decoding continues.

use burn::tensor::backend::Backend;
use serde::{Deserialize, Serialize};

use crate::arch::model::{Model, State};
use crate::error::ModelError;
use crate::generate::sampling::{sample, SamplingParams};
#[cfg(not(target_arch = "wasm32"))]
use crate::nn::linear::FEW_ROWS;
use crate::tokenizer::EOS_ID;
use crate::util::rng::Rng;

/// Settings of one generation.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct GenerateParams {
    /// How each token is picked.
    pub sampling: SamplingParams,
    /// Stop after this many new tokens.
    pub max_new_tokens: usize,
    /// Seed of the sampler's RNG.
    pub seed: u64,
    /// Token ids that end generation (not emitted); GPT-2's `<|endoftext|>` by default.
    pub stop_tokens: Vec<u32>,
}

impl Default for GenerateParams {
    fn default() -> Self {
        Self { sampling: SamplingParams::default(), max_new_tokens: 64, seed: 0, stop_tokens: vec![EOS_ID] }
    }
}

/// Why generation ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum StopReason {
    /// A stop token was sampled.
    StopToken,
    /// `max_new_tokens` were generated.
    MaxTokens,
    /// The caller stopped it (stop string, user pressed Stop).
    Caller,
}

/// Cached generation, one token at a time.
pub struct Generator<'m, B: Backend> {
    model: &'m Model<B>,
    state: State<B>,
    /// Every token of the sequence so far (prompt window + generated).
    sequence: Vec<u32>,
    /// Tokens of `sequence` not yet fed to the model.
    unfed: usize,
    params: GenerateParams,
    rng: Rng,
    generated: usize,
    truncated: usize,
    stopped: Option<StopReason>,
}

impl<'m, B: Backend> Generator<'m, B> {
    /// Prepares generation after `prompt` (nothing runs until the first `next_token`).
    pub fn new(model: &'m Model<B>, prompt: &[u32], params: GenerateParams) -> Result<Self, ModelError> {
        if prompt.is_empty() {
            return Err(ModelError::EmptyPrompt);
        }
        params.sampling.validate()?;
        let vocab_size = model.config.vocab_size();
        if let Some(&id) = prompt.iter().find(|&&id| id as usize >= vocab_size) {
            return Err(ModelError::TokenOutOfRange { id, vocab_size });
        }
        let truncated = prompt.len().saturating_sub(model.n_ctx());
        let sequence = prompt[truncated..].to_vec();
        Ok(Self {
            model,
            state: model.new_state(),
            unfed: sequence.len(),
            sequence,
            rng: Rng::new(params.seed),
            stopped: if params.max_new_tokens == 0 { Some(StopReason::MaxTokens) } else { None },
            params,
            generated: 0,
            truncated,
        })
    }

    /// How many prompt tokens were dropped to fit the context.
    pub fn truncated(&self) -> usize {
        self.truncated
    }

    /// Tokens generated so far.
    pub fn generated(&self) -> &[u32] {
        &self.sequence[self.sequence.len() - self.generated..]
    }

    /// Why generation ended, once it has.
    pub fn stop_reason(&self) -> Option<StopReason> {
        self.stopped
    }

    /// Ends generation (e.g. a stop string appeared in the text).
    pub fn stop(&mut self) {
        self.stopped.get_or_insert(StopReason::Caller);
    }

    /// The tokens to feed next (sliding the window when the context is full), or `None` when finished.
    fn pending_input(&mut self) -> Option<Vec<u32>> {
        if self.stopped.is_some() {
            return None;
        }
        let n_ctx = self.model.n_ctx();
        if self.state.len() + self.unfed > n_ctx {
            // Slide the window: rebuild the state from the most recent half-context.
            self.state = self.model.new_state();
            self.unfed = (n_ctx / 2).max(1);
        }
        let input = self.sequence[self.sequence.len() - self.unfed..].to_vec();
        self.unfed = 0;
        Some(input)
    }

    /// Samples the next token from its logits; returns it, or `None` at a stop token.
    pub fn accept(&mut self, logits: &[f32]) -> Option<u32> {
        let token = sample(logits, &self.sequence, &self.params.sampling, &mut self.rng);
        if self.params.stop_tokens.contains(&token) {
            self.stopped = Some(StopReason::StopToken);
            return None;
        }
        self.sequence.push(token);
        self.unfed = 1;
        self.generated += 1;
        if self.generated >= self.params.max_new_tokens {
            self.stopped = Some(StopReason::MaxTokens);
        }
        Some(token)
    }

    /// The next token, reading results synchronously (native backends). `Ok(None)` when finished.
    ///
    /// The step runs on a thread of rayon's pool, over which the kernels split their work (the LM head's rows, the
    /// projections, gemm): from a thread outside it, each parallel section is handed to the pool while the caller
    /// sleeps, its core idle, and the pool's second thread wakes late. A step of a few tokens on the host runs in a
    /// [`team`](crate::host::team), whose threads stay awake between its few dozen sections (not on a GPU, whose
    /// steps would leave them spinning for nothing). Measured with `hnet-gpt bench` (gpt2 small, 2 cores):
    /// 400 → 450 tokens/s on the pool, 570–585 in a team.
    #[cfg(not(target_arch = "wasm32"))]
    pub fn next_token(&mut self) -> Result<Option<u32>, ModelError> {
        let Some(input) = self.pending_input() else { return Ok(None) };
        let few = input.len() <= FEW_ROWS && crate::host::on_host::<B>();
        let step = || futures_lite::future::block_on(self.step(input));
        if few {
            crate::host::team::run(step)
        } else {
            rayon::scope(|_| step())
        }
    }

    /// The next token, awaiting device reads (required on WebGPU, where synchronous reads are impossible).
    pub async fn next_token_async(&mut self) -> Result<Option<u32>, ModelError> {
        let Some(input) = self.pending_input() else { return Ok(None) };
        self.step(input).await
    }

    /// Feeds `input` and samples the token after it.
    async fn step(&mut self, input: Vec<u32>) -> Result<Option<u32>, ModelError> {
        let tokens = self.model.tokens_tensor(&input)?;
        let step = self.model.forward_cached(tokens, &mut self.state, true).await?; // logits [1, 1, V]
        let data = step.logits.into_data_async().await.map_err(|e| ModelError::Device(format!("{e:?}")))?;
        let values = data.as_slice::<f32>().map_err(|e| ModelError::Device(format!("{e:?}")))?;
        Ok(self.accept(values))
    }
}

/// Generates after `prompt`, calling `on_token` for each new token (return `false` to stop). Returns the new ids.
#[cfg(not(target_arch = "wasm32"))]
pub fn generate<B: Backend>(
    model: &Model<B>,
    prompt: &[u32],
    params: GenerateParams,
    mut on_token: impl FnMut(u32) -> bool,
) -> Result<Vec<u32>, ModelError> {
    let mut generator = Generator::new(model, prompt, params)?;
    while let Some(token) = generator.next_token()? {
        if !on_token(token) {
            generator.stop();
        }
    }
    Ok(generator.generated().to_vec())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::arch::config::{Arch, ModelConfig};
    use crate::TestBackend;

    fn tiny() -> Model<TestBackend> {
        let mut config = ModelConfig::preset(Arch::Gpt2, "tiny").unwrap();
        config.decoder.n_positions = 16;
        Model::init(&config, &Default::default()).unwrap()
    }

    fn greedy(max_new_tokens: usize) -> GenerateParams {
        GenerateParams { sampling: SamplingParams::greedy(), max_new_tokens, seed: 0, stop_tokens: vec![] }
    }

    #[test]
    fn empty_prompt_is_an_error() {
        let err = Generator::new(&tiny(), &[], greedy(4)).err().unwrap();
        assert!(matches!(err, ModelError::EmptyPrompt));
        assert!(matches!(Generator::new(&tiny(), &[60_000], greedy(4)).err().unwrap(), ModelError::TokenOutOfRange { .. }));
    }

    #[test]
    fn max_new_tokens_is_respected_and_seeds_reproduce() {
        let model = tiny();
        let params = GenerateParams {
            sampling: SamplingParams { temperature: 1.0, ..Default::default() },
            max_new_tokens: 5,
            seed: 9,
            stop_tokens: vec![],
        };
        let a = generate(&model, &[1, 2, 3], params.clone(), |_| true).unwrap();
        assert_eq!(a.len(), 5);
        assert_eq!(a, generate(&model, &[1, 2, 3], params, |_| true).unwrap());
    }

    #[test]
    fn the_callback_can_stop_generation() {
        let mut seen = 0;
        let out = generate(&tiny(), &[5], greedy(10), |_| {
            seen += 1;
            seen < 3
        })
        .unwrap();
        assert_eq!(out.len(), 3);
    }

    #[test]
    fn a_stop_token_ends_generation_without_being_emitted() {
        let model = tiny();
        let first = generate(&model, &[7, 8], greedy(1), |_| true).unwrap()[0];
        let mut params = greedy(10);
        params.stop_tokens = vec![first];
        let mut generator = Generator::new(&model, &[7, 8], params).unwrap();
        assert_eq!(generator.next_token().unwrap(), None);
        assert_eq!(generator.stop_reason(), Some(StopReason::StopToken));
        assert!(generator.generated().is_empty());
    }

    #[test]
    fn long_prompts_keep_their_last_n_ctx_tokens() {
        let model = tiny(); // n_ctx = 16
        let prompt: Vec<u32> = (100..140).collect();
        let generator = Generator::new(&model, &prompt, greedy(1)).unwrap();
        assert_eq!(generator.truncated(), 24);
        // Same continuation as giving only the last 16 tokens.
        let a = generate(&model, &prompt, greedy(3), |_| true).unwrap();
        let b = generate(&model, &prompt[24..], greedy(3), |_| true).unwrap();
        assert_eq!(a, b);
    }

    #[test]
    fn generation_past_the_context_slides_the_window() {
        let model = tiny(); // n_ctx = 16
        let out = generate(&model, &[1, 2, 3], greedy(40), |_| true).unwrap();
        assert_eq!(out.len(), 40, "generation continues past n_ctx");
        // After the slide the model sees exactly the last n_ctx/2 tokens: the token after position 16 equals a fresh
        // greedy step from those 8 tokens.
        let mut sequence = vec![1, 2, 3];
        sequence.extend(&out);
        let at = 16 - 3 + 1; // index in `out` of the first token decided after the slide (out[13] fills position 16)
        let window = &sequence[3 + at - 8..3 + at];
        let fresh = generate(&model, window, greedy(1), |_| true).unwrap();
        assert_eq!(fresh[0], out[at]);
    }
}
