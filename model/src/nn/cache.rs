//! KV cache for cached (incremental) decoding: per layer, the keys and values of every position seen so far.

use burn::tensor::backend::Backend;
use burn::tensor::Tensor;

/// Keys and values of one attention layer.
#[derive(Debug, Clone)]
pub struct LayerKv<B: Backend> {
    k: Option<Tensor<B, 4>>,
    v: Option<Tensor<B, 4>>,
}

impl<B: Backend> Default for LayerKv<B> {
    fn default() -> Self {
        Self { k: None, v: None }
    }
}

impl<B: Backend> LayerKv<B> {
    /// Appends the new positions' keys and values and returns all of them.
    ///
    /// # Shapes
    /// `k, v: [B, nh, T, hs]` → `[B, nh, T_cached + T, hs]` each.
    pub fn append(&mut self, k: Tensor<B, 4>, v: Tensor<B, 4>) -> (Tensor<B, 4>, Tensor<B, 4>) {
        let k = match self.k.take() {
            Some(prev) => Tensor::cat(vec![prev, k], 2),
            None => k,
        };
        let v = match self.v.take() {
            Some(prev) => Tensor::cat(vec![prev, v], 2),
            None => v,
        };
        self.k = Some(k.clone());
        self.v = Some(v.clone());
        (k, v)
    }

    /// Number of cached positions.
    pub fn len(&self) -> usize {
        self.k.as_ref().map_or(0, |k| k.dims()[2])
    }

    /// True when nothing is cached.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
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
