//! The ground floor: plain Rust that every other module may use and that uses nothing of the model.

#[cfg(not(target_arch = "wasm32"))]
pub mod files;
pub mod hash;
pub mod pylex;
pub mod rng;
