//! Scoring text: the log-probability the model gives each actual next token, total NLL, perplexity, bits per byte.
//!
//! The text is scored as a document: the end-of-document token (GPT-2's `<|endoftext|>`) is put in front, so every token
//! of the text — the first one included — is predicted, and bits per byte cover every byte of the text. Texts
//! longer than the context are scored in overlapping windows: each window keeps the last `n_ctx / 2` tokens of the
//! previous one as context and scores only tokens not yet scored, so each token is scored exactly once.

use burn::tensor::activation::log_softmax;
use burn::tensor::backend::Backend;
use burn::tensor::{Int, Tensor, TensorData};
use serde::Serialize;

use crate::arch::model::Model;
use crate::error::ModelError;
#[cfg(not(target_arch = "wasm32"))]
use crate::tokenizer::Tokenizer;

/// `log p(ids[i] | ids[..i])` for every `i ≥ 1` (natural log). Reads results synchronously (native backends).
#[cfg(not(target_arch = "wasm32"))]
pub fn token_logprobs<B: Backend>(model: &Model<B>, ids: &[u32]) -> Result<Vec<f32>, ModelError> {
    futures_lite::future::block_on(token_logprobs_async(model, ids))
}

/// [`token_logprobs`], awaiting device reads (the browser).
pub async fn token_logprobs_async<B: Backend>(model: &Model<B>, ids: &[u32]) -> Result<Vec<f32>, ModelError> {
    let n = ids.len();
    let n_ctx = model.n_ctx();
    let mut out = Vec::with_capacity(n.saturating_sub(1));
    let mut begin = 0;
    while out.len() + 1 < n {
        let end = (begin + n_ctx).min(n);
        let first = out.len() + 1; // the first position this window scores
        let logits = model.forward(model.tokens_tensor(&ids[begin..end])?); // [1, L, V]
        let [_, l, v] = logits.dims();
        // Logits at position p-1 predict ids[p]; keep the rows for p in first..end.
        let rows = log_softmax(logits.narrow(1, first - 1 - begin, end - first), 2); // [1, k, V]
        let k = end - first;
        let targets: Vec<i32> = ids[first..end].iter().map(|&t| t as i32).collect();
        let targets = Tensor::<B, 3, Int>::from_data(TensorData::new(targets, [1, k, 1]), &rows.device());
        let picked = rows.gather(2, targets).reshape([k]).into_data_async().await.map_err(|e| ModelError::Device(format!("{e:?}")))?;
        let values = picked.as_slice::<f32>().map_err(|e| ModelError::Device(format!("{e:?}")))?;
        debug_assert!(l <= n_ctx && v == model.config.vocab_size());
        out.extend_from_slice(values);
        begin = end.saturating_sub(n_ctx / 2).max(begin + 1);
    }
    Ok(out)
}

/// `log p` of every token of a document, the first one predicted after the end-of-document token `eos`.
pub async fn document_logprobs_async<B: Backend>(model: &Model<B>, ids: &[u32], eos: u32) -> Result<Vec<f32>, ModelError> {
    let mut with_bos = Vec::with_capacity(ids.len() + 1);
    with_bos.push(eos);
    with_bos.extend(ids);
    token_logprobs_async(model, &with_bos).await
}

/// [`document_logprobs_async`], reading results synchronously (native backends).
#[cfg(not(target_arch = "wasm32"))]
pub fn document_logprobs<B: Backend>(model: &Model<B>, ids: &[u32], eos: u32) -> Result<Vec<f32>, ModelError> {
    futures_lite::future::block_on(document_logprobs_async(model, ids, eos))
}

/// Totals over scored documents, and what they give: perplexity per token, bits per byte.
#[derive(Debug, Default, Clone, Copy, PartialEq, Serialize)]
pub struct NllTotals {
    /// Documents scored.
    pub documents: usize,
    /// Tokens scored.
    pub tokens: usize,
    /// Bytes of text those tokens cover.
    pub bytes: usize,
    /// Sum of −log p (nats).
    pub nll: f64,
}

impl NllTotals {
    /// Adds one document: its tokens' log-probabilities and its length in bytes. Returns the document's NLL.
    pub fn add(&mut self, logprobs: &[f32], bytes: usize) -> f64 {
        let nll = -logprobs.iter().map(|&l| l as f64).sum::<f64>();
        (self.documents, self.tokens, self.bytes, self.nll) =
            (self.documents + 1, self.tokens + logprobs.len(), self.bytes + bytes, self.nll + nll);
        nll
    }

    /// Mean NLL per token (nats).
    pub fn nll_per_token(&self) -> f64 {
        self.nll / self.tokens as f64
    }

    /// exp(mean NLL per token).
    pub fn perplexity(&self) -> f64 {
        self.nll_per_token().exp()
    }

    /// Total NLL in bits divided by the text's UTF-8 length: comparable across tokenisations.
    pub fn bits_per_byte(&self) -> f64 {
        self.nll / std::f64::consts::LN_2 / self.bytes as f64
    }
}

/// One scored token.
#[derive(Debug, Clone, Serialize)]
pub struct ScoredToken {
    /// Token id.
    pub id: u32,
    /// The token's text (lossy for tokens that split a character).
    pub text: String,
    /// Natural-log probability the model gave it.
    pub logprob: f32,
}

/// The score of a text.
#[derive(Debug, Clone, Serialize)]
pub struct ScoreReport {
    /// Every token with its log-probability.
    pub tokens: Vec<ScoredToken>,
    /// Sum of −log p over the tokens (nats).
    pub total_nll: f64,
    /// exp(mean NLL per token).
    pub perplexity: f64,
    /// Total NLL in bits divided by the text's UTF-8 length: comparable across tokenisations.
    pub bits_per_byte: f64,
    /// The text's length in bytes.
    pub bytes: usize,
}

/// Scores a text as a document (see the module docs).
#[cfg(not(target_arch = "wasm32"))]
pub fn score_text<B: Backend>(model: &Model<B>, tokenizer: &Tokenizer, text: &str) -> Result<ScoreReport, ModelError> {
    let ids = tokenizer.encode(text)?;
    if ids.is_empty() {
        return Err(ModelError::EmptyPrompt);
    }
    let logprobs = document_logprobs(model, &ids, tokenizer.eos_id())?;
    let tokens: Vec<ScoredToken> = ids
        .iter()
        .zip(&logprobs)
        .map(|(&id, &logprob)| Ok(ScoredToken { id, text: tokenizer.decode(&[id])?, logprob }))
        .collect::<Result<_, ModelError>>()?;
    let mut totals = NllTotals::default();
    totals.add(&logprobs, text.len());
    Ok(ScoreReport {
        perplexity: totals.perplexity(),
        bits_per_byte: totals.bits_per_byte(),
        bytes: text.len(),
        total_nll: totals.nll,
        tokens,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::arch::config::{Arch, ModelConfig};
    use crate::TestBackend;

    #[test]
    fn windowed_scoring_matches_a_single_window_and_scores_each_token_once() {
        let mut config = ModelConfig::preset(Arch::Gpt2, "tiny").unwrap();
        config.decoder.n_positions = 8;
        let small: Model<TestBackend> = Model::init(&config, &Default::default()).unwrap();
        let ids: Vec<u32> = (0..21).map(|i| (i * 37 % 500) as u32).collect();
        let lp = token_logprobs(&small, &ids).unwrap();
        assert_eq!(lp.len(), 20);
        assert!(lp.iter().all(|&l| l < 0.0 && l.is_finite()));
        // The first window is a plain forward pass: its log-probs equal a direct computation.
        let direct = token_logprobs(&small, &ids[..8]).unwrap();
        for (a, b) in lp[..7].iter().zip(&direct) {
            assert!((a - b).abs() < 1e-5);
        }
        // Later tokens are scored with n_ctx/2 = 4 tokens of context: position 8 sees ids[4..8].
        let later = token_logprobs(&small, &ids[4..9]).unwrap();
        assert!((lp[7] - later[3]).abs() < 1e-5, "{} vs {}", lp[7], later[3]);
    }

    #[test]
    fn a_uniform_model_scores_log_vocab_per_token() {
        // Zero weights everywhere make every logit 0: each token costs exactly ln(V) nats.
        let config = ModelConfig::preset(Arch::Gpt2, "tiny").unwrap();
        let model: Model<TestBackend> = Model::init(&config, &Default::default()).unwrap();
        let model = burn::module::Module::map(model, &mut Zero);
        let lp = token_logprobs(&model, &[1, 2, 3, 4]).unwrap();
        let expected = -(config.vocab_size() as f32).ln();
        assert!(lp.iter().all(|&l| (l - expected).abs() < 1e-4), "{lp:?}");
    }

    struct Zero;
    impl<B: Backend> burn::module::ModuleMapper<B> for Zero {
        fn map_float<const D: usize>(&mut self, param: burn::module::Param<Tensor<B, D>>) -> burn::module::Param<Tensor<B, D>> {
            param.map(|t| t.zeros_like())
        }
    }

    #[test]
    fn totals_give_perplexity_and_bits_per_byte() {
        let mut t = NllTotals::default();
        assert_eq!(t.add(&[-1.0, -3.0], 4), 4.0);
        t.add(&[-2.0], 2);
        assert_eq!((t.documents, t.tokens, t.bytes, t.nll), (2, 3, 6, 6.0));
        assert!((t.perplexity() - 2f64.exp()).abs() < 1e-12);
        assert!((t.bits_per_byte() - 1.0 / std::f64::consts::LN_2).abs() < 1e-12);
    }
}
