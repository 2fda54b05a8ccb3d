//! What crosses the crate's edge: [`checkpoint`] (the project's safetensors format), [`hf`] (Hugging Face GPT-2
//! import: every name quirk in one place), [`half`] (the f16/bf16 codec both use), [`params`] (parameter paths and
//! components, named once) and [`tokenizer`] (GPT-2 BPE). Checkpoint names appear here and nowhere else.

pub mod checkpoint;
#[cfg(not(target_arch = "wasm32"))]
pub mod files;
pub mod half;
pub mod hf;
pub mod params;
pub mod tokenizer;
