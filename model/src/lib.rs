//! HNet-GPT models on burn.
//!
//! One code path for every backend (native CPU, native wgpu/CUDA, WebGPU in the browser): every module is
//! generic over `B: Backend`, and nothing here reads tensors synchronously except where a function says so.
//!
//! Layout (one file per concept, as in nanoGPT / the H-Net reference):
//! - [`config`]: [`ModelConfig`] and its presets;
//! - [`gpt2`]: the GPT-2 decoder (nanoGPT names: `wte, wpe, h, ln_1, attn.c_attn, …, ln_f`);
//! - H-Net dynamic chunking, one file per concept of the paper: [`routing`], [`chunk`], [`dechunk`], [`ste`],
//!   [`ratio_loss`], [`isotropic`] (the causal encoder/main/decoder stacks, with [`rope`]), composed in
//!   [`chunking`]; the architectures [`hnet`] and [`hybrid`] (with the seed's gated [`fusion`]);
//! - [`cache`]: the KV cache used by cached decoding;
//! - [`model`]: [`Model`], the architecture-independent front the rest of the crate talks to;
//! - [`sampling`]: the pure next-token sampler and its seeded RNG;
//! - [`generate`]: the prefill/step loop over token ids;
//! - [`tokenizer`]: GPT-2 byte-level BPE with offsets;
//! - [`checkpoint`]: the project's own checkpoint format; [`load`]: Hugging Face GPT-2 import.

pub mod cache;
pub mod causality;
pub mod checkpoint;
pub mod chunk;
pub mod chunking;
#[cfg(not(target_arch = "wasm32"))]
pub mod complete;
pub mod config;
pub mod data;
pub mod dechunk;
pub mod error;
pub mod fusion;
pub mod generate;
pub mod gpt2;
pub mod hnet;
pub mod hybrid;
pub mod inspect;
pub mod isotropic;
pub mod load;
pub mod model;
pub mod pysyntax;
pub mod optim;
pub mod ratio_loss;
pub mod rope;
pub mod routing;
pub mod sampling;
pub mod score;
pub mod seed_eval;
pub mod ste;
pub mod tokenizer;
pub mod train;

pub use config::{Arch, ModelConfig};
pub use error::{LoadError, ModelError};
pub use model::Model;

/// The backend unit tests run on: burn's pure-Rust CPU backend.
#[cfg(test)]
pub(crate) type TestBackend = burn::backend::Flex;
/// The autodiff backend unit tests run gradients on.
#[cfg(test)]
#[allow(dead_code)]
pub(crate) type TestAutodiffBackend = burn::backend::Autodiff<TestBackend>;
