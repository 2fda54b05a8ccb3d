//! The three architectures compared — a plain decoder (`gpt2`), [`hnet`] (a one-stage H-Net) and [`hybrid`] (the
//! H-Net stage fused into a decoder's blocks) — the decoder families ([`decoder`]: [`gpt2`] for GPT-2 and
//! GPTBigCode, [`llama`] for Llama and Qwen2), and [`model`], the one front the rest of the crate talks to (forward,
//! cached step, logits), whatever the architecture.

pub mod config;
pub mod decoder;
pub mod family;
pub mod gpt2;
pub mod hnet;
pub mod hybrid;
pub mod llama;
pub mod model;
