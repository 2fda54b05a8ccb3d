//! Fused kernels for tensors in host memory: burn's CPU backend, Flex, natively and in the browser's wasm fallback.
//!
//! Flex runs every tensor operation as its own eager pass over memory, and its elementwise passes are scalar and
//! single-threaded (`exp` calls libm once per element). That is fine for most of a step, not for its two widest
//! parts: the LM head's softmax over `[N, V]` logits (51M values for a batch of 8 × 128 over GPT-2's vocabulary,
//! walked about eight times) and AdamW's update (a dozen passes over every parameter). Where the tensors live in
//! host memory those two are written here as loops over slices instead: one pass where the tensor ops take
//! several, vectorised through runtime CPU dispatch ([`vector`], `pulp`: AVX-512, AVX2, NEON or wasm SIMD), over
//! all cores (rayon), with matrix products through the `gemm` crate Flex itself calls ([`gemm`]). The math is the
//! same as the tensor-op path every other backend runs, and each caller tests that the two agree.

pub mod gemm;
pub mod vector;

use std::any::TypeId;

use burn::tensor::backend::Backend;
use burn::tensor::{DType, Tensor, TensorData};

/// Whether `B`'s tensors live in host memory (burn's Flex backend, with or without autodiff), so that reading
/// them into slices and back costs a copy at most.
pub fn on_host<B: Backend>() -> bool {
    TypeId::of::<B::Device>() == TypeId::of::<burn::backend::flex::FlexDevice>()
}

/// Whether every tensor is f32 on the host: what the fused kernels take (f16 or bf16 weights go the tensor way).
pub fn all_f32_on_host<B: Backend, const D: usize>(tensors: &[&Tensor<B, D>]) -> bool {
    on_host::<B>() && tensors.iter().all(|t| t.dtype() == DType::F32)
}

/// The values of an f32 tensor, row-major. On the host this moves the buffer out when the tensor holds the only
/// reference to it, and copies it otherwise.
///
/// # Panics
/// When the tensor is not f32 (callers check [`all_f32_on_host`] first).
pub fn to_vec<B: Backend, const D: usize>(t: Tensor<B, D>) -> Vec<f32> {
    t.into_data().into_vec::<f32>().expect("an f32 tensor")
}

/// A tensor of `shape` from row-major values (on the host, without a copy).
pub fn from_vec<B: Backend, const D: usize>(values: Vec<f32>, shape: [usize; D], device: &B::Device) -> Tensor<B, D> {
    Tensor::from_data(TensorData::new(values, shape), device)
}

/// Runs `f` once for each `width`-long row of `buf` with the row's index, on every core natively (rows are
/// independent), one after another in wasm (no threads there), and returns what it returned for each row, in row
/// order (so that sums over them do not depend on how the rows were scheduled).
pub fn for_rows<T, F>(buf: &mut [f32], width: usize, f: F) -> Vec<T>
where
    T: Send,
    F: Fn(usize, &mut [f32]) -> T + Sync + Send,
{
    assert!(width > 0 && buf.len() % width == 0, "{} values are not rows of {width}", buf.len());
    #[cfg(not(target_arch = "wasm32"))]
    {
        use rayon::prelude::*;
        buf.par_chunks_mut(width).enumerate().map(|(i, row)| f(i, row)).collect()
    }
    #[cfg(target_arch = "wasm32")]
    {
        buf.chunks_mut(width).enumerate().map(|(i, row)| f(i, row)).collect()
    }
}
