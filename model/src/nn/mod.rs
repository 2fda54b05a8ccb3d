//! Neural-network building blocks shared by the architectures: the linear layer, activations, the token embedding and the tied LM head
//! (each with its CPU fast path beside it), the one causal attention core and its mask (grouped and multi-query
//! heads included), rotary positions, the SwiGLU MLP, the isotropic (pre-norm, rotary) transformer stacks H-Net
//! runs at every stage, the KV cache that cached decoding appends to, and weights kept in f16 (widened where used).

pub mod activation;
pub mod attention;
pub mod cache;
pub mod embedding;
pub mod head;
pub mod isotropic;
pub mod linear;
pub mod rope;
pub mod swiglu;
pub mod weights;
