//! Generation over token ids, outside the model: [`sampling`] (a pure next-token sampler with a seeded RNG),
//! [`generation`] (prefill, then cached steps; sync and async), [`stop`] (where a code completion ends: line,
//! block), [`stream`] (ids to text deltas, ended by the stop rules) and [`complete`] (text in, text out).

pub mod complete;
pub mod generation;
pub mod sampling;
pub mod stop;
pub mod stream;

pub use generation::*;
