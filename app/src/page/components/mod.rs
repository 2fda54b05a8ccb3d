//! One component per file.

pub mod chunk_view;
pub mod completion;
pub mod editor;
pub mod finetune;
pub mod models;
pub mod status;
