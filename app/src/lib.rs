//! The HNet-GPT playground: a Leptos page (client-side rendered, built by trunk) and the Web Worker that runs the
//! model for it. Two wasm binaries share this library: `hnet-gpt-app` (the page: [`page`]) and `worker` (the
//! model: [`worker`]); they speak [`protocol`]. The page's binary links no burn code, so it stays small and its
//! thread stays free while the worker generates, chunks and trains.

pub mod page;
pub mod protocol;
pub mod web;
pub mod worker;
