//! Measuring models: [`score`] (log-probabilities, perplexity, bits per byte), [`causality`] (the future-token
//! perturbation check), [`inspect`] (chunk spans of a text), [`seed_eval`] (the seed project's five prompts) and
//! [`pysyntax`] (Python syntax checks and statement boundaries, also in wasm).

pub mod causality;
pub mod inspect;
pub mod pysyntax;
pub mod score;
pub mod seed_eval;
