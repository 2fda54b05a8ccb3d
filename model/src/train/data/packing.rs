//! Packing: documents joined with the end-of-document token (GPT-2's `<|endoftext|>`) into one stream, cut into `seq_len + 1`-token sequences (every
//! position a real token, so padding never enters the loss), and a seeded, resumable epoch order over them.

use std::borrow::Cow;
#[cfg(not(target_arch = "wasm32"))]
use std::sync::Arc;

use serde::{Deserialize, Serialize};

use crate::util::rng::Rng;

/// A token stream: in memory, or memory-mapped from a prepared corpus's shards.
#[derive(Debug, Clone)]
pub enum Tokens {
    /// Tokenised here.
    Owned(Vec<u32>),
    /// A split of a prepared corpus ([`super::corpus`]).
    #[cfg(not(target_arch = "wasm32"))]
    Mapped(Arc<super::corpus::MappedTokens>),
}

impl Tokens {
    /// Tokens in the stream.
    pub fn len(&self) -> usize {
        match self {
            Tokens::Owned(v) => v.len(),
            #[cfg(not(target_arch = "wasm32"))]
            Tokens::Mapped(m) => m.len(),
        }
    }

    /// True when the stream is empty.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// Tokens `start..end` (borrowed when in memory, read from the map otherwise).
    pub fn range(&self, start: usize, end: usize) -> Cow<'_, [u32]> {
        match self {
            Tokens::Owned(v) => Cow::Borrowed(&v[start..end]),
            #[cfg(not(target_arch = "wasm32"))]
            Tokens::Mapped(m) => Cow::Owned(m.range(start, end)),
        }
    }

    /// The whole stream, copied.
    pub fn to_vec(&self) -> Vec<u32> {
        self.range(0, self.len()).into_owned()
    }
}

impl PartialEq for Tokens {
    /// In-memory streams compare by value; mapped ones by identity (the same mapping).
    fn eq(&self, other: &Self) -> bool {
        match (self, other) {
            (Tokens::Owned(a), Tokens::Owned(b)) => a == b,
            #[cfg(not(target_arch = "wasm32"))]
            (Tokens::Mapped(a), Tokens::Mapped(b)) => Arc::ptr_eq(a, b),
            #[cfg(not(target_arch = "wasm32"))]
            _ => false,
        }
    }
}

/// Documents packed into training sequences of `seq_len + 1` tokens.
#[derive(Debug, Clone, PartialEq)]
pub struct Packed {
    /// The token stream: documents separated by `<|endoftext|>`.
    pub stream: Tokens,
    /// Sequence length (inputs; each sequence holds one more token for the targets).
    pub seq_len: usize,
    /// UTF-8 bytes of text the stream encodes (for bits per byte).
    pub bytes: usize,
}

impl Packed {
    /// Joins tokenised documents, each followed by `eos` (the tokenizer's end-of-document token).
    pub fn new(docs: impl IntoIterator<Item = (Vec<u32>, usize)>, seq_len: usize, eos: u32) -> Self {
        let mut stream = Vec::new();
        let mut bytes = 0;
        for (ids, n_bytes) in docs {
            stream.extend(ids);
            stream.push(eos);
            bytes += n_bytes;
        }
        Self { stream: Tokens::Owned(stream), seq_len, bytes }
    }

    /// A prepared corpus's split (its documents already end with the end-of-document token), memory-mapped.
    #[cfg(not(target_arch = "wasm32"))]
    pub fn mapped(tokens: super::corpus::MappedTokens, seq_len: usize, bytes: usize) -> Self {
        Self { stream: Tokens::Mapped(Arc::new(tokens)), seq_len, bytes }
    }

    /// Number of whole sequences.
    pub fn len(&self) -> usize {
        self.stream.len().saturating_sub(1) / self.seq_len
    }

    /// True when not even one sequence fits.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// Sequence `i`: `seq_len + 1` tokens.
    pub fn sequence(&self, i: usize) -> Cow<'_, [u32]> {
        self.stream.range(i * self.seq_len, i * self.seq_len + self.seq_len + 1)
    }
}

/// Where the sampler is in the data: which epoch, and how far into that epoch's shuffled order.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, Default)]
pub struct DataPosition {
    /// Epoch number.
    pub epoch: u64,
    /// Sequences already drawn in this epoch.
    pub index: usize,
}

/// The shuffled order of epoch `epoch` (Fisher–Yates with a seed derived from `seed` and the epoch).
pub fn epoch_order(n: usize, seed: u64, epoch: u64) -> Vec<usize> {
    let mut order: Vec<usize> = (0..n).collect();
    let mut rng = Rng::new(seed ^ epoch.wrapping_mul(0x9E37_79B9_7F4A_7C15));
    for i in (1..n).rev() {
        order.swap(i, rng.below(i + 1));
    }
    order
}

/// Draws the next `batch` sequence indices and advances the position (crossing into the next epoch as needed).
pub fn next_batch(n: usize, seed: u64, pos: &mut DataPosition, batch: usize) -> Vec<usize> {
    let mut order = epoch_order(n, seed, pos.epoch);
    let mut out = Vec::with_capacity(batch);
    while out.len() < batch {
        if pos.index >= n {
            pos.epoch += 1;
            pos.index = 0;
            order = epoch_order(n, seed, pos.epoch);
        }
        out.push(order[pos.index]);
        pos.index += 1;
    }
    out
}
