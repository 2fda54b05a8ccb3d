//! H-Net's chunk layer (§2.2.1 "downsampling"; reference `dc.py` `ChunkLayer`): every chunk is represented by the
//! encoder state at its first position (its boundary); no pooling.
//!
//! The gather indices come from a cumulative sum of the boundary mask, computed on the device — not from an
//! argsort (burn's sort falls back to a synchronous CPU read, which panics on WebGPU) and not on the host (a
//! read-back would stall the GPU). With `cs_t = Σ_{k≤t} b_k`, the `j`-th boundary sits at
//! `idx_j = #{t : cs_t ≤ j}`; for `j ≥ n_b` that count is `L` and is clamped to `L − 1`, so those trailing slots
//! hold junk — they come after every real chunk, and the main network is causal, so they never reach a real one.

use burn::tensor::backend::Backend;
use burn::tensor::{Bool, Int, Tensor};

/// Number of boundaries up to and including each position: `cs_t = Σ_{k≤t} b_k`.
///
/// # Shapes
/// `[B, L]` bool → `[B, L]` int.
pub fn boundary_cumsum<B: Backend>(boundary_mask: Tensor<B, 2, Bool>) -> Tensor<B, 2, Int> {
    boundary_mask.int().cumsum(1)
}

/// Position of the `j`-th boundary for `j < m` (clamped to `L − 1` past the last boundary).
///
/// # Shapes
/// `cs: [B, L]` → `[B, m]`.
pub fn chunk_indices<B: Backend>(cs: Tensor<B, 2, Int>, m: usize) -> Tensor<B, 2, Int> {
    let [b, l] = cs.dims();
    let slots = Tensor::<B, 1, Int>::arange(0..m as i64, &cs.device()).reshape([1, m, 1]); // [1, m, 1]
    let before = cs.reshape([b, 1, l]).lower_equal(slots); // [B, m, L]: cs_t ≤ j
    before.int().sum_dim(2).reshape([b, m]).clamp_max(l as i64 - 1)
}

/// Gathers the chunk representatives `x[idx_j]` and their boundary probabilities.
///
/// # Shapes
/// `x: [B, L, D]`, `p: [B, L]`, `idx: [B, m]` → `([B, m, D], [B, m])`.
pub fn chunk<B: Backend>(x: Tensor<B, 3>, p: Tensor<B, 2>, idx: Tensor<B, 2, Int>) -> (Tensor<B, 3>, Tensor<B, 2>) {
    let [b, m] = idx.dims();
    let d = x.dims()[2];
    let x_idx = idx.clone().reshape([b, m, 1]).repeat_dim(2, d); // [B, m, D]
    (x.gather(1, x_idx), p.gather(1, idx))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::TestBackend;
    use burn::tensor::TensorData;

    fn mask(rows: &[&[bool]]) -> Tensor<TestBackend, 2, Bool> {
        let l = rows[0].len();
        let data: Vec<bool> = rows.iter().flat_map(|r| r.iter().copied()).collect();
        Tensor::from_data(TensorData::new(data, [rows.len(), l]), &Default::default())
    }

    #[test]
    fn indices_of_boundaries_from_the_cumsum() {
        let b = mask(&[&[true, false, true, true, false, false], &[true, false, false, false, false, true]]);
        let cs = boundary_cumsum(b);
        assert_eq!(cs.clone().into_data().to_vec::<i32>().unwrap(), vec![1, 1, 2, 3, 3, 3, 1, 1, 1, 1, 1, 2]);
        let idx = chunk_indices(cs, 4).into_data().to_vec::<i32>().unwrap();
        // Row 0: boundaries at 0, 2, 3, then junk (clamped to L−1 = 5). Row 1: 0, 5, junk, junk.
        assert_eq!(idx, vec![0, 2, 3, 5, 0, 5, 5, 5]);
    }

    #[test]
    fn chunk_gathers_the_boundary_states() {
        let device = Default::default();
        let x = Tensor::<TestBackend, 3>::from_floats([[[0.0, 0.5], [1.0, 1.5], [2.0, 2.5], [3.0, 3.5]]], &device);
        let p = Tensor::<TestBackend, 2>::from_floats([[1.0, 0.2, 0.9, 0.7]], &device);
        let idx = chunk_indices(boundary_cumsum(mask(&[&[true, false, true, true]])), 3);
        let (xc, pc) = chunk(x, p, idx);
        assert_eq!(xc.into_data().to_vec::<f32>().unwrap(), vec![0.0, 0.5, 2.0, 2.5, 3.0, 3.5]);
        assert_eq!(pc.into_data().to_vec::<f32>().unwrap(), vec![1.0, 0.9, 0.7]);
    }
}
