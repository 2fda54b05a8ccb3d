//! HNet-GPT models on burn.
//!
//! One code path for every backend (native CPU, native wgpu/CUDA, WebGPU in the browser): every module is
//! generic over `B: Backend`, and nothing here reads tensors synchronously except where a function says so.
//!
//! Layout: one file per paper concept, one folder per concern, arrows only downward — ground floor first, each module
//! uses only those before it (checked by `tests/layers.rs`):
//! - [`error`]: the typed errors; [`util`]: a stable hash, the seeded RNG, bounded and atomic file access;
//! - [`tokenizer`]: any Hugging Face `tokenizer.json`, FIM and stop tokens;
//! - [`host`]: fused kernels for tensors in host memory (burn's Flex backend), called by the nn ops they speed up;
//! - [`nn`]: the causal attention core, linear layers, isotropic stacks, rotary positions, the KV cache;
//! - [`hnet`]: H-Net's dynamic chunking (routing, chunk, dechunk, STE, ratio loss, the stage) and the fusion gate;
//! - [`arch`]: [`ModelConfig`], [`Arch`] and the presets, the decoders, the pure H-Net, the hybrid, and [`Model`];
//! - [`io`]: checkpoints, Hugging Face import, the half-precision codec, parameter paths;
//! - [`generate`]: the pure sampler, cached generation, stop rules and completions;
//! - [`eval`]: scoring, the causality check, chunk inspection, the seed's evaluation, Python syntax;
//! - [`train`]: data, the schedule, AdamW, the one training step.

// `!(x > 0.0)` is written on purpose throughout: unlike `x <= 0.0`, it also rejects NaN.
#![allow(clippy::neg_cmp_op_on_partial_ord)]

pub mod arch;
pub mod error;
pub mod eval;
pub mod generate;
pub mod hnet;
pub(crate) mod host;
pub mod io;
pub mod nn;
pub mod tokenizer;
pub mod train;
pub mod util;

pub use arch::config::{Arch, ModelConfig};
pub use arch::model::Model;
pub use error::{LoadError, ModelError};

/// The backend unit tests run on: burn's pure-Rust CPU backend.
#[cfg(test)]
pub(crate) type TestBackend = burn::backend::Flex;
/// The autodiff backend unit tests run gradients on.
#[cfg(test)]
#[allow(dead_code)]
pub(crate) type TestAutodiffBackend = burn::backend::Autodiff<TestBackend>;
