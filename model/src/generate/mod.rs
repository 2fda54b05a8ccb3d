//! Generation over token ids, outside the model: [`sampling`] (a pure next-token sampler with a seeded RNG),
//! [`generation`] (prefill, then cached steps; sync and async) and, natively, [`complete`] (text in, text out,
//! with stop strings).

#[cfg(not(target_arch = "wasm32"))]
pub mod complete;
pub mod generation;
pub mod sampling;

pub use generation::*;
