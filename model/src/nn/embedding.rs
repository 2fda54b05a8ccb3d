//! The token embedding, also the LM head (tied, or an untied head's own table), whose table may be held in parts of
//! consecutive rows.
//!
//! A GPU binds at most so many bytes of one buffer to a shader (WebGPU's `maxStorageBufferBindingSize`: 128 MiB
//! unless the adapter grants more), and a large vocabulary's table is bigger (Qwen2.5's 151,936 × 896 in f32 is
//! 545 MB). Built under [`with_part_bytes`], the table is cut into parts of at most that many bytes: a token's row
//! is read from the part that holds it, and the head multiplies by each part and joins the logits. Outside it (every
//! backend but a WebGPU adapter with a small limit) the table is one part: burn's embedding lookup and the head's
//! host fast path, unchanged. Checkpoints store the parts joined, as one `weight` (the io layer names part `n` of a
//! table `weight@n` and joins or cuts rows at the file's edge).

use std::cell::Cell;

use burn::config::Config;
use burn::module::{Initializer, Module, Param};
use burn::tensor::backend::Backend;
use burn::tensor::module::embedding;
use burn::tensor::{Int, Tensor};

use crate::nn::head::tied_head;
use crate::nn::weights::widen;

thread_local! {
    /// The most bytes of one part of a table built on this thread (f32 values).
    static PART_BYTES: Cell<u64> = const { Cell::new(u64::MAX) };
}

/// Runs `build` with tables cut into parts of at most `max_bytes` bytes each (the device's binding limit).
pub fn with_part_bytes<R>(max_bytes: u64, build: impl FnOnce() -> R) -> R {
    let before = PART_BYTES.with(|p| p.replace(max_bytes));
    let out = build();
    PART_BYTES.with(|p| p.set(before));
    out
}

/// The most bytes one part of a table built now may hold: the limit [`with_part_bytes`] set (no limit outside it).
/// Every other weight must fit it whole (`Model::init` checks).
pub fn part_bytes() -> u64 {
    PART_BYTES.with(Cell::get)
}

/// Rows per part of a `[vocab, d_model]` f32 table under the current limit (at least one row).
fn rows_per_part(vocab: usize, d_model: usize) -> usize {
    let rows = part_bytes() / (4 * d_model.max(1)) as u64;
    (rows.min(vocab as u64) as usize).max(1)
}

/// A token embedding table of `vocab` rows of `d_model`, drawn from N(0, std²).
#[derive(Config, Debug)]
pub struct TokenEmbeddingConfig {
    /// Rows: the vocabulary's size.
    pub vocab: usize,
    /// Width of a row.
    pub d_model: usize,
    /// Standard deviation of the initial values.
    #[config(default = 0.02)]
    pub std: f64,
}

impl TokenEmbeddingConfig {
    /// The table, in one part or in parts under [`with_part_bytes`]; its values are drawn only when first used
    /// (a model about to be loaded draws none).
    pub fn init<B: Backend>(&self, device: &B::Device) -> TokenEmbedding<B> {
        let init = Initializer::Normal { mean: 0.0, std: self.std };
        let rows = rows_per_part(self.vocab, self.d_model);
        let parts = (0..self.vocab).step_by(rows).map(|lo| init.init([rows.min(self.vocab - lo), self.d_model], device)).collect();
        TokenEmbedding { parts }
    }
}

/// The token embedding table, in parts of consecutive rows (usually one).
#[derive(Module, Debug)]
pub struct TokenEmbedding<B: Backend> {
    /// The parts, in row order: `[rows_i, C]`, Σ rows_i = V.
    pub parts: Vec<Param<Tensor<B, 2>>>,
}

impl<B: Backend> TokenEmbedding<B> {
    /// The rows of `ids`.
    ///
    /// # Shapes
    /// `ids: [B, T]` → `[B, T, C]`.
    pub fn forward(&self, ids: Tensor<B, 2, Int>) -> Tensor<B, 3> {
        // Rows of a table kept in f16 are widened after the lookup (not the table before it).
        if let [one] = self.parts.as_slice() {
            return widen(embedding(one.val(), ids));
        }
        // Each part looks up the ids it holds (others read its row 0, then are zeroed): one gather per part.
        let mut lo = 0i64;
        let mut out: Option<Tensor<B, 3>> = None;
        for part in &self.parts {
            let w = part.val();
            let rows = w.dims()[0] as i64;
            let local = ids.clone().sub_scalar(lo);
            let held = local.clone().greater_equal_elem(0).bool_and(local.clone().lower_elem(rows));
            let rows_of = widen(embedding(w, local.clamp(0, rows - 1))) * held.float().unsqueeze_dim::<3>(2);
            out = Some(match out {
                Some(sum) => sum + rows_of,
                None => rows_of,
            });
            lo += rows;
        }
        out.expect("a table has at least one part")
    }

    /// The tied LM head: hidden states times the table, transposed, part by part.
    ///
    /// # Shapes
    /// `h: [B, T, C]` → `[B, T, V]`.
    pub fn head(&self, h: Tensor<B, 3>) -> Tensor<B, 3> {
        match self.parts.as_slice() {
            [one] => tied_head(one.val(), h),
            parts => Tensor::cat(parts.iter().map(|p| tied_head(p.val(), h.clone())).collect(), 2),
        }
    }

    /// The whole table (its parts joined). `[V, C]`.
    pub fn weight(&self) -> Tensor<B, 2> {
        match self.parts.as_slice() {
            [one] => one.val(),
            parts => Tensor::cat(parts.iter().map(Param::val).collect(), 0),
        }
    }

    /// The device the table lives on.
    pub fn device(&self) -> B::Device {
        self.parts[0].device()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::TestBackend;
    use burn::tensor::{Distribution, TensorData};

    #[test]
    fn a_table_in_parts_looks_up_and_heads_as_one() {
        let device = Default::default();
        let config = TokenEmbeddingConfig::new(10, 4);
        let one: TokenEmbedding<TestBackend> = config.init(&device);
        assert_eq!(one.parts.len(), 1);
        // Three rows (48 bytes) per part: parts of 3, 3, 3 and 1 rows.
        let mut parts: TokenEmbedding<TestBackend> = with_part_bytes(3 * 16 + 5, || config.init(&device));
        assert_eq!(parts.parts.iter().map(|p| p.dims()[0]).collect::<Vec<_>>(), [3, 3, 3, 1]);
        assert_eq!(PART_BYTES.with(Cell::get), u64::MAX, "the limit is only for what was built under it");
        let table = one.weight();
        for (i, p) in parts.parts.iter_mut().enumerate() {
            let rows = p.dims()[0];
            *p = Param::from_tensor(table.clone().narrow(0, 3 * i, rows));
        }
        parts.weight().into_data().assert_eq(&table.clone().into_data(), true);
        let ids = Tensor::<TestBackend, 2, Int>::from_data(TensorData::from([[0i64, 9, 3, 2], [5, 6, 9, 0]]), &device);
        parts.forward(ids.clone()).into_data().assert_eq(&one.forward(ids).into_data(), true);
        let h = Tensor::<TestBackend, 3>::random([2, 3, 4], Distribution::Normal(0.0, 1.0), &device);
        parts.head(h.clone()).into_data().assert_approx_eq::<f32>(&one.head(h).into_data(), burn::tensor::Tolerance::absolute(1e-6));
    }

    #[test]
    fn a_row_wider_than_the_limit_is_a_part_of_its_own() {
        let parts: TokenEmbedding<TestBackend> = with_part_bytes(1, || TokenEmbeddingConfig::new(3, 8).init(&Default::default()));
        assert_eq!(parts.parts.len(), 3);
    }
}
