//! AdamW's update on host slices (burn's Flex backend; see [`crate::host`]): the tensor path's arithmetic, element
//! by element in one pass over the weights, the gradient and both moments, vectorised and over all cores.

use super::Update;
use crate::host::vector::simd;
use crate::host::{team, CHUNK};

/// One task's slices: ((weights, m), v), gradient — the shape zipping them gives.
type Chunk<'a> = (((&'a mut [f32], &'a mut [f32]), &'a mut [f32]), &'a [f32]);

/// Applies `u` to `weights`, `m` and `v` in place, with the gradient scaled by `clip` first.
///
/// # Panics
/// When the four slices differ in length.
pub(crate) fn update(u: &Update, clip: f32, grad: &[f32], weights: &mut [f32], m: &mut [f32], v: &mut [f32]) {
    let n = grad.len();
    assert!(weights.len() == n && m.len() == n && v.len() == n, "AdamW over slices of different lengths");
    let chunk = |(((w, m), v), g): Chunk| {
        simd(
            #[inline(always)]
            || {
                for (((w, m), v), &g) in w.iter_mut().zip(m.iter_mut()).zip(v.iter_mut()).zip(g) {
                    let g = g * clip;
                    *m = *m * u.beta1 + g * (1.0 - u.beta1);
                    *v = *v * u.beta2 + (g * g) * (1.0 - u.beta2);
                    *w = *w * u.keep - *m / (v.sqrt() + u.eps_hat) * u.step_size;
                }
            },
        )
    };
    let chunks = weights.chunks_mut(CHUNK).zip(m.chunks_mut(CHUNK)).zip(v.chunks_mut(CHUNK)).zip(grad.chunks(CHUNK));
    team::for_each(chunks.collect(), |_, parts| chunk(parts));
}
