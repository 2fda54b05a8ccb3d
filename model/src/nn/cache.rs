//! KV cache for cached (incremental) decoding: per layer, the keys and values of every position seen so far.

use burn::tensor::backend::Backend;
use burn::tensor::Tensor;

use crate::host;

/// Keys and values of one attention layer, in buffers with room to grow: each step writes its new positions into
/// place and hands attention a view of the filled part, where concatenating copied the whole cache per token and
/// layer. A buffer doubles when full, so it holds at most twice the positions written.
#[derive(Debug, Clone)]
pub struct LayerKv<B: Backend> {
    k: Option<Tensor<B, 4>>,
    v: Option<Tensor<B, 4>>,
    len: usize,
}

impl<B: Backend> Default for LayerKv<B> {
    fn default() -> Self {
        Self { k: None, v: None, len: 0 }
    }
}

/// Room for at least this many positions in a new buffer (small, so that the reference tests, 24 and 64 steps on
/// wgpu and Flex, cross doublings).
const MIN_CAPACITY: usize = 16;

/// Writes `new` at positions `len..len + T` of `buf` (growing it when needed) and returns the filled part.
///
/// # Shapes
/// `buf: [B, nh, capacity, hs]`, `new: [B, nh, T, hs]` → `[B, nh, len + T, hs]`.
fn write<B: Backend>(buf: &mut Option<Tensor<B, 4>>, new: Tensor<B, 4>, len: usize) -> Tensor<B, 4> {
    let [b, nh, t, hs] = new.dims();
    let end = len + t;
    let capacity = buf.as_ref().map_or(0, |x| x.dims()[2]);
    let full = match buf.take() {
        Some(old) if end <= capacity => old,
        old => {
            let grown = Tensor::zeros([b, nh, end.max(2 * capacity).max(MIN_CAPACITY), hs], (&new.device(), new.dtype()));
            match old {
                Some(old) => grown.slice_assign([0..b, 0..nh, 0..len, 0..hs], old.slice([0..b, 0..nh, 0..len, 0..hs])),
                None => grown,
            }
        }
    };
    let capacity = full.dims()[2];
    // On the host, in place (the views handed out before are gone, so nothing else holds the buffer).
    let written = host::modify(full, |values| {
        let rows = host::to_vec(new.clone()); // [B·nh·T, hs], from a view of split heads
        for (i, row) in rows.chunks_exact(hs).enumerate() {
            let (head, pos) = (i / t, len + i % t);
            values[(head * capacity + pos) * hs..][..hs].copy_from_slice(row);
        }
    });
    let full = written.unwrap_or_else(|full| full.slice_assign([0..b, 0..nh, len..end, 0..hs], new));
    *buf = Some(full.clone());
    full.slice([0..b, 0..nh, 0..end, 0..hs])
}

impl<B: Backend> LayerKv<B> {
    /// Appends the new positions' keys and values and returns all of them.
    ///
    /// # Shapes
    /// `k, v: [B, nh, T, hs]` → `[B, nh, T_cached + T, hs]` each.
    pub fn append(&mut self, k: Tensor<B, 4>, v: Tensor<B, 4>) -> (Tensor<B, 4>, Tensor<B, 4>) {
        let k = write(&mut self.k, k, self.len);
        let v = write(&mut self.v, v, self.len);
        self.len = k.dims()[2];
        (k, v)
    }

    /// Number of cached positions.
    pub fn len(&self) -> usize {
        self.len
    }

    /// True when nothing is cached.
    pub fn is_empty(&self) -> bool {
        self.len == 0
    }
}

/// The KV cache of a stack of attention layers.
#[derive(Debug, Clone)]
pub struct KvCache<B: Backend> {
    layers: Vec<LayerKv<B>>,
}

impl<B: Backend> KvCache<B> {
    /// An empty cache for `n_layer` layers.
    pub fn new(n_layer: usize) -> Self {
        Self { layers: (0..n_layer).map(|_| LayerKv::default()).collect() }
    }

    /// The cache of layer `i`.
    pub fn layer(&mut self, i: usize) -> &mut LayerKv<B> {
        &mut self.layers[i]
    }

    /// Number of cached positions (the absolute position of the next token).
    pub fn len(&self) -> usize {
        self.layers.first().map_or(0, LayerKv::len)
    }

    /// True when nothing is cached.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// Forgets everything.
    pub fn reset(&mut self) {
        self.layers.iter_mut().for_each(|l| *l = LayerKv::default());
    }
}

#[cfg(test)]
mod tests {
    use burn::tensor::Distribution;

    use super::*;
    use crate::{TestAutodiffBackend, TestBackend};

    /// On Flex the writes take the host path; under autodiff (which `host::modify` refuses) they take burn's
    /// `slice_assign`, the path of every other backend.
    fn appending_is_concatenating<B: Backend>() {
        let d = Default::default();
        let r = |t: usize| Tensor::<B, 4>::random([2, 3, t, 4], Distribution::Normal(0.0, 1.0), &d);
        // Split heads arrive as swapped views; keys and values differ.
        let strided = |t: usize| Tensor::<B, 4>::random([2, t, 3, 4], Distribution::Normal(0.0, 1.0), &d).swap_dims(1, 2);
        let mut kv = LayerKv::<B>::default();
        let (mut all_k, mut all_v) = (r(0), r(0));
        // A prefill of 70 (past the first capacity), then single steps across the doubling at 140, then two at once.
        let steps: Vec<usize> = std::iter::once(70).chain(std::iter::repeat_n(1, 75)).chain([2]).collect();
        let mut snapshot = None;
        for (i, t) in steps.into_iter().enumerate() {
            let (k, v) = if i % 2 == 0 { (r(t), r(t)) } else { (strided(t), strided(t)) };
            all_k = Tensor::cat(vec![all_k, k.clone()], 2);
            all_v = Tensor::cat(vec![all_v, v.clone()], 2);
            let (gk, gv) = kv.append(k, v);
            assert_eq!(kv.len(), all_k.dims()[2]);
            gk.into_data().assert_eq(&all_k.clone().into_data(), true);
            gv.into_data().assert_eq(&all_v.clone().into_data(), true);
            if i == 10 {
                snapshot = Some((kv.clone(), all_k.clone()));
            }
        }
        // The clone taken at step 10 did not see the appends made to the original after it.
        let (mut earlier, k_then) = snapshot.unwrap();
        let (gk, _) = earlier.append(r(1), r(1));
        gk.slice([0..2, 0..3, 0..k_then.dims()[2], 0..4]).into_data().assert_eq(&k_then.into_data(), true);
    }

    #[test]
    fn appending_is_concatenating_across_growth_and_clones_stay_apart() {
        appending_is_concatenating::<TestBackend>();
        appending_is_concatenating::<TestAutodiffBackend>();
    }
}
