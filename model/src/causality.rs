//! The causality check: change tokens after position t and make sure nothing at positions ≤ t moves — logits, and
//! for chunking models the boundary probabilities too. The seed's results came from exactly this kind of leak, so
//! `hnet-gpt compare` runs this on every architecture and refuses to report when it fails.

use burn::tensor::backend::Backend;
use burn::tensor::{Bool, Int, Tensor, TensorData};

use crate::model::Model;
use crate::sampling::Rng;

/// Largest change (max abs) allowed at positions ≤ t.
pub const TOLERANCE: f32 = 1e-5;

fn outputs<B: Backend>(model: &Model<B>, ids: &[u32]) -> (Vec<f32>, Vec<f32>) {
    let device = model.device();
    let n = ids.len();
    let tokens = Tensor::<B, 2, Int>::from_data(TensorData::new(ids.iter().map(|&i| i as i32).collect::<Vec<_>>(), [1, n]), &device);
    let mask = Tensor::<B, 2, Bool>::from_data(TensorData::new(vec![true; n], [1, n]), &device);
    let out = model.forward_full(tokens, mask, None);
    let p = out.aux.map(|a| a.routing.boundary_prob.into_data().to_vec::<f32>().unwrap_or_default()).unwrap_or_default();
    (out.logits.into_data().to_vec::<f32>().unwrap_or_default(), p)
}

/// Runs `cases` random cases (sequence of 8–32 tokens, a random t, later tokens changed) and returns the largest
/// change observed at positions ≤ t. Reads tensors synchronously (native backends).
pub fn max_leak<B: Backend>(model: &Model<B>, cases: usize, seed: u64) -> f32 {
    let vocab = model.config.vocab_size();
    let max_len = 32.min(model.n_ctx());
    let mut rng = Rng::new(seed);
    let mut worst = 0.0f32;
    for _ in 0..cases {
        let len = (8 + rng.below(max_len.saturating_sub(7).max(1))).min(max_len).max(2);
        let ids: Vec<u32> = (0..len).map(|_| rng.below(vocab) as u32).collect();
        let t = rng.below(len - 1);
        let mut changed = ids.clone();
        for id in changed.iter_mut().skip(t + 1) {
            if rng.below(2) == 0 {
                *id = rng.below(vocab) as u32;
            }
        }
        changed[t + 1] = ((ids[t + 1] as usize + 1 + rng.below(vocab - 1)) % vocab) as u32;
        let (la, pa) = outputs(model, &ids);
        let (lb, pb) = outputs(model, &changed);
        let per = la.len() / len;
        let diff = |a: &[f32], b: &[f32], k: usize| a[..k].iter().zip(&b[..k]).map(|(x, y)| (x - y).abs()).fold(0.0f32, f32::max);
        worst = worst.max(diff(&la, &lb, (t + 1) * per));
        if !pa.is_empty() {
            worst = worst.max(diff(&pa, &pb, t + 1));
        }
    }
    worst
}
