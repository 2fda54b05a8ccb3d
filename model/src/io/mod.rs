//! What crosses the crate's edge: [`checkpoint`] (the project's safetensors format), [`hf`] (Hugging Face import of
//! every decoder family: every name quirk in one place), `weights` (filling a model tensor by tensor from either),
//! [`half`] (the f16/bf16 codec), [`stream`] (a safetensors file read as it downloads), [`params`] (parameter paths and components, named once), [`tokenizer`] (GPT-2's
//! BPE or a model's own, fill-in-the-middle tokens) and [`files`] (reading what may be anything, writing
//! atomically). Checkpoint names appear here and nowhere else.

pub mod checkpoint;
pub mod half;
pub mod hf;
pub mod params;
pub mod stream;
pub mod transplant;
pub(crate) mod weights;
