//! H-Net's dynamic chunking (Hwang, Wang & Gu 2025, arXiv:2507.07955), one file per concept of the paper:
//! [`routing`] (boundary probabilities from adjacent-state similarity), [`chunk`] (gather the boundary states),
//! [`dechunk`] (the EMA smoothing and plug-back), [`ste`] (the straight-through estimator), [`ratio_loss`] (the
//! compression target), composed as one stage in [`chunking`]; and the seed project's complexity-aware gate,
//! [`fusion`], which feeds the stage's output into GPT-2 blocks in the hybrid.

pub mod chunk;
pub mod chunking;
pub mod dechunk;
pub mod fusion;
pub mod ratio_loss;
pub mod routing;
pub mod ste;
