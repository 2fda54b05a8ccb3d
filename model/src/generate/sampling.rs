//! Next-token sampling: a small pure function over one row of logits, drawing from [`crate::util::rng::Rng`].
//!
//! Order of operations (as in Hugging Face `generate`): repetition penalty → temperature → top-k → top-p →
//! draw. Temperature 0 means greedy (argmax after the penalty). Top-p keeps the smallest set of most likely tokens
//! whose probability reaches `p`, and always keeps the most likely token (the seed project's top-p dropped it).

use serde::{Deserialize, Serialize};

use crate::error::ModelError;
use crate::util::rng::Rng;

/// How to pick the next token.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct SamplingParams {
    /// Softmax temperature; 0 = greedy.
    pub temperature: f32,
    /// Keep only the `top_k` most likely tokens; 0 = no limit.
    pub top_k: usize,
    /// Nucleus sampling threshold in (0, 1]; 1 = no limit.
    pub top_p: f32,
    /// CTRL-style penalty for tokens already present (logit ÷ penalty if positive, × penalty if negative); 1 = off.
    pub repetition_penalty: f32,
    /// Only the last `n` tokens of the history count for the penalty; `None` = the whole history.
    pub repetition_window: Option<usize>,
}

impl Default for SamplingParams {
    /// Sensible defaults for code: mildly cool, nucleus 0.95, top-40, light penalty.
    fn default() -> Self {
        Self { temperature: 0.8, top_k: 40, top_p: 0.95, repetition_penalty: 1.1, repetition_window: Some(64) }
    }
}

impl SamplingParams {
    /// Greedy decoding with no penalty: what Hugging Face's `generate(do_sample=False)` does.
    pub fn greedy() -> Self {
        Self { temperature: 0.0, top_k: 0, top_p: 1.0, repetition_penalty: 1.0, repetition_window: None }
    }

    /// Checks ranges so bad flags fail with a message instead of producing nonsense.
    pub fn validate(&self) -> Result<(), ModelError> {
        self.check().map_err(ModelError::InvalidConfig)
    }

    fn check(&self) -> Result<(), String> {
        if !(self.temperature >= 0.0 && self.temperature.is_finite()) {
            return Err(format!("temperature must be ≥ 0, got {}", self.temperature));
        }
        if !(self.top_p > 0.0 && self.top_p <= 1.0) {
            return Err(format!("top_p must be in (0, 1], got {}", self.top_p));
        }
        if !(self.repetition_penalty > 0.0 && self.repetition_penalty.is_finite()) {
            return Err(format!("repetition_penalty must be > 0, got {}", self.repetition_penalty));
        }
        Ok(())
    }
}

/// Index of the largest value; NaN counts as −∞, ties go to the lowest index.
pub fn argmax(values: &[f32]) -> u32 {
    let mut best = 0;
    for (i, &v) in values.iter().enumerate() {
        if v > values[best] || values[best].is_nan() && !v.is_nan() {
            best = i;
        }
    }
    best as u32
}

/// Picks the next token from one row of logits.
///
/// `history` is the sequence so far (prompt and generated tokens); it only matters for the repetition penalty.
pub fn sample(logits: &[f32], history: &[u32], params: &SamplingParams, rng: &mut Rng) -> u32 {
    let mut logits = logits.to_vec();
    apply_repetition_penalty(&mut logits, history, params);
    if params.temperature == 0.0 {
        return argmax(&logits);
    }
    // Softmax over logits / T, computed stably; NaN is treated as −∞.
    let max = logits.iter().copied().filter(|v| !v.is_nan()).fold(f32::NEG_INFINITY, f32::max);
    if !max.is_finite() {
        return argmax(&logits);
    }
    let t = params.temperature as f64;
    let mut probs: Vec<(u32, f64)> =
        logits.iter().enumerate().map(|(i, &l)| (i as u32, if l.is_nan() { 0.0 } else { ((l - max) as f64 / t).exp() })).collect();
    // Most likely first; the sort is stable so ties keep the lower id first.
    probs.sort_by(|a, b| b.1.total_cmp(&a.1));
    if params.top_k > 0 {
        probs.truncate(params.top_k);
    }
    let total: f64 = probs.iter().map(|p| p.1).sum();
    if params.top_p < 1.0 {
        // Keep the shortest prefix whose mass reaches top_p; the first token is always kept.
        let mut cumulative = 0.0;
        let mut keep = 0;
        for (_, p) in &probs {
            keep += 1;
            cumulative += p / total;
            if cumulative >= params.top_p as f64 {
                break;
            }
        }
        probs.truncate(keep.max(1));
    }
    let total: f64 = probs.iter().map(|p| p.1).sum();
    let mut u = rng.next_f64() * total;
    for &(id, p) in &probs {
        if u < p {
            return id;
        }
        u -= p;
    }
    probs.last().map_or(0, |p| p.0) // only reachable through rounding
}

fn apply_repetition_penalty(logits: &mut [f32], history: &[u32], params: &SamplingParams) {
    let penalty = params.repetition_penalty;
    if penalty == 1.0 {
        return;
    }
    let start = params.repetition_window.map_or(0, |w| history.len().saturating_sub(w));
    let mut seen: Vec<u32> = history[start..].to_vec();
    seen.sort_unstable();
    seen.dedup();
    for id in seen {
        if let Some(l) = logits.get_mut(id as usize) {
            *l = if *l > 0.0 { *l / penalty } else { *l * penalty };
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn params(temperature: f32, top_k: usize, top_p: f32) -> SamplingParams {
        SamplingParams { temperature, top_k, top_p, repetition_penalty: 1.0, repetition_window: None }
    }

    fn histogram(logits: &[f32], p: &SamplingParams, n: usize, seed: u64) -> Vec<usize> {
        let mut rng = Rng::new(seed);
        let mut counts = vec![0; logits.len()];
        for _ in 0..n {
            counts[sample(logits, &[], p, &mut rng) as usize] += 1;
        }
        counts
    }

    #[test]
    fn temperature_zero_is_argmax() {
        let mut rng = Rng::new(0);
        assert_eq!(sample(&[0.1, 0.2, 0.7, 0.4], &[], &params(0.0, 0, 1.0), &mut rng), 2);
        assert_eq!(sample(&[1.0, 3.0, 3.0], &[], &params(0.0, 0, 1.0), &mut rng), 1, "ties go to the lower id");
        assert_eq!(argmax(&[f32::NAN, 1.0, 0.5]), 1, "NaN never wins");
    }

    #[test]
    fn top_k_one_is_greedy_whatever_the_temperature() {
        let counts = histogram(&[1.0, 2.0, 0.5, 1.9], &params(5.0, 1, 1.0), 200, 7);
        assert_eq!(counts, vec![0, 200, 0, 0]);
    }

    #[test]
    fn top_k_excludes_everything_outside_the_k_best() {
        let counts = histogram(&[1.0, 2.0, 0.5, 1.9], &params(1.0, 2, 1.0), 2000, 3);
        assert_eq!(counts[0] + counts[2], 0);
        assert!(counts[1] > counts[3] && counts[3] > 700, "{counts:?}");
    }

    #[test]
    fn top_p_always_keeps_the_most_likely_token() {
        // p(top-1) ≈ 0.9995 > top_p: the nucleus is exactly the top token (the seed emptied it and emitted `!`).
        let counts = histogram(&[0.0, 10.0, 2.0], &params(1.0, 0, 0.5), 100, 1);
        assert_eq!(counts, vec![0, 100, 0]);
    }

    #[test]
    fn top_p_keeps_the_smallest_prefix_that_reaches_p() {
        // Probabilities 0.5, 0.3, 0.2 (logits are their logs): top_p 0.79 keeps {0, 1}, top_p 0.81 keeps all three.
        let logits = [0.5f32.ln(), 0.3f32.ln(), 0.2f32.ln()];
        let counts = histogram(&logits, &params(1.0, 0, 0.79), 4000, 11);
        assert_eq!(counts[2], 0);
        assert!((counts[0] as f64 / 4000.0 - 0.625).abs() < 0.03, "{counts:?}");
        let counts = histogram(&logits, &params(1.0, 0, 0.81), 4000, 11);
        assert!(counts[2] > 600, "{counts:?}");
    }

    #[test]
    fn sampling_follows_the_softmax_distribution() {
        let logits = [0.0f32, 1.0, 2.0];
        let counts = histogram(&logits, &params(1.0, 0, 1.0), 20_000, 5);
        let z: f64 = logits.iter().map(|&l| (l as f64).exp()).sum();
        for (i, &c) in counts.iter().enumerate() {
            let expected = (logits[i] as f64).exp() / z;
            assert!((c as f64 / 20_000.0 - expected).abs() < 0.015, "token {i}: {c} vs {expected}");
        }
    }

    #[test]
    fn same_seed_same_tokens_other_seed_other_tokens() {
        let logits: Vec<f32> = (0..50).map(|i| (i % 7) as f32 * 0.3).collect();
        let p = params(1.0, 0, 1.0);
        let a = histogram(&logits, &p, 50, 42);
        assert_eq!(a, histogram(&logits, &p, 50, 42));
        assert_ne!(a, histogram(&logits, &p, 50, 43));
    }

    #[test]
    fn repetition_penalty_divides_positive_and_multiplies_negative_logits() {
        let p = SamplingParams { repetition_penalty: 2.0, repetition_window: None, ..params(0.0, 0, 1.0) };
        let mut l = vec![4.0, -1.0, 3.0];
        apply_repetition_penalty(&mut l, &[0, 1, 0], &p);
        assert_eq!(l, vec![2.0, -2.0, 3.0]);
        // Greedy picks token 2 once token 0 has been penalised.
        assert_eq!(sample(&[4.0, -1.0, 3.0], &[0], &p, &mut Rng::new(0)), 2);
        // A window of 1 only penalises the last token.
        let p = SamplingParams { repetition_window: Some(1), ..p };
        let mut l = vec![4.0, -1.0, 3.0];
        apply_repetition_penalty(&mut l, &[0, 1], &p);
        assert_eq!(l, vec![4.0, -2.0, 3.0]);
    }

    #[test]
    fn invalid_params_are_rejected() {
        assert!(params(-1.0, 0, 1.0).validate().is_err());
        assert!(params(1.0, 0, 0.0).validate().is_err());
        assert!(params(1.0, 0, 1.5).validate().is_err());
        assert!(SamplingParams::default().validate().is_ok());
    }
}
