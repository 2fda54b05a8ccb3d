//! HNet-GPT models on burn.
//!
//! One code path for every backend (native CPU, native wgpu/CUDA, WebGPU in the browser): every module is
//! generic over `B: Backend`, and nothing here reads tensors synchronously except where a function says so.
//!
//! Layout: one file per paper concept, one folder per concern, arrows only downward.
//! - [`config`]: [`ModelConfig`], [`Arch`] and the presets; [`error`]: the typed errors;
//! - [`nn`]: the causal attention core, isotropic stacks, rotary positions, the KV cache;
//! - [`hnet`]: H-Net's dynamic chunking (routing, chunk, dechunk, STE, ratio loss, the stage) and the fusion gate;
//! - [`arch`]: the GPT-2 decoder, the pure H-Net, the hybrid, and [`Model`], their one front;
//! - [`io`]: checkpoints, Hugging Face import, the half-precision codec, the tokenizer;
//! - [`generate`]: the pure sampler and cached generation; [`train`]: data, AdamW, the one training step;
//! - [`eval`]: scoring, the causality check, chunk inspection, the seed's evaluation, Python syntax;
//! - [`host`]: fused kernels for tensors in host memory (burn's Flex backend), where its eager passes cost most.

// `!(x > 0.0)` is written on purpose throughout: unlike `x <= 0.0`, it also rejects NaN.
#![allow(clippy::neg_cmp_op_on_partial_ord)]

pub mod arch;
pub mod config;
pub mod error;
pub mod eval;
pub mod generate;
pub mod hnet;
pub(crate) mod host;
pub mod io;
pub mod nn;
pub mod train;

pub use arch::model::Model;
pub use config::{Arch, ModelConfig};
pub use error::{LoadError, ModelError};

/// The backend unit tests run on: burn's pure-Rust CPU backend.
#[cfg(test)]
pub(crate) type TestBackend = burn::backend::Flex;
/// The autodiff backend unit tests run gradients on.
#[cfg(test)]
#[allow(dead_code)]
pub(crate) type TestAutodiffBackend = burn::backend::Autodiff<TestBackend>;
