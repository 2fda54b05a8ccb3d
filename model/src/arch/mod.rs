//! The three architectures compared — [`gpt2`] (the GPT-2 decoder), [`hnet`] (a one-stage H-Net) and [`hybrid`]
//! (the H-Net stage fused into GPT-2 blocks) — and [`model`], the one front the rest of the crate talks to
//! (forward, cached step, logits), whatever the architecture.

pub mod gpt2;
pub mod hnet;
pub mod hybrid;
pub mod model;
