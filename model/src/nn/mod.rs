//! Neural-network building blocks shared by the architectures: the one causal attention core and its mask,
//! the isotropic (pre-norm, rotary) transformer stacks H-Net runs at every stage, rotary positions, and the KV
//! cache that cached decoding appends to.

pub mod activation;
pub mod attention;
pub mod cache;
pub mod head;
pub mod isotropic;
pub mod linear;
pub mod rope;
