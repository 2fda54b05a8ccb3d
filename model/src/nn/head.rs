//! The language-model head tied to the token embedding (GPT-2's, and every architecture's here unless its decoder
//! keeps an untied one): hidden states → logits. Decoding's few rows on the host take a kernel that splits the
//! embedding over every core.

use burn::tensor::backend::Backend;
use burn::tensor::Tensor;

use crate::host::{self, gemm::rows_times_transpose};
use crate::nn::linear::FEW_ROWS;
use crate::nn::weights::widen;

/// The LM head tied to the token embedding `w` (GPT-2's, and every architecture's here): hidden states → logits.
///
/// # Shapes
/// `w: [V, C]`, `h: [B, T, C]` → `[B, T, V]`.
pub fn tied_head<B: Backend>(w: Tensor<B, 2>, h: Tensor<B, 3>) -> Tensor<B, 3> {
    let [b, t, c] = h.dims();
    let v = w.dims()[0];
    let device = h.device();
    // Decoding on the host (a token or a few at a time, no gradients): gemm would read the whole embedding on one
    // core per token; the host kernel splits it over all of them.
    if b * t <= FEW_ROWS && !B::ad_enabled(&device) {
        if let (Some(wv), Some(hv)) = (host::view(&w), host::view(&h)) {
            return host::from_vec(rows_times_transpose(hv.as_slice(), wv.as_slice(), c), [b, t, v], &device);
        }
    }
    // A table kept in f16 (see `nn::weights`) multiplies in f16, the hidden states narrowed to it, rather than be
    // widened whole: the logits come back in the compute type.
    let (w_dtype, h_dtype) = (w.dtype(), h.dtype());
    let rows = if w_dtype == h_dtype { h.reshape([b * t, c]) } else { h.reshape([b * t, c]).cast(w_dtype) };
    widen(rows.matmul(w.transpose())).reshape([b, t, v])
}
