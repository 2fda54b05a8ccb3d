//! Training, shared by every driver (the CLI's loop, its data-parallel peers, the browser's fine-tune panel):
//! [`data`] (records, the split, packing), [`config`] (every setting and its default), [`schedule`] (learning
//! rates), [`loss`], [`optim`] (AdamW with parameter groups) and [`step`] (the one training step).

pub mod config;
pub mod data;
pub mod head_loss;
pub mod loss;
pub mod optim;
pub mod schedule;
pub mod step;

pub use config::{Objective, Precision, TrainConfig, Unfreeze};
pub use loss::{batch_tensor, cross_entropy, loss, LossParts};
pub use schedule::{LrCurve, Schedule};
