//! Causal attention on host slices (burn's Flex backend; see [`crate::host`]), forward and backward, one head per
//! task on every core; the same math as the tensor path in this module's parent.
//!
//! Burn's attention under autodiff is a dozen eager passes on one core (the scores, a mask expanded to every head,
//! a decomposed softmax, the heads' split and merge) and as many backward. Here each head is two small products
//! around a masked softmax that skips what the mask hides, forward `S = Q·Kᵀ/√d`, `P = softmax(S)`, `Y = P·V`;
//! backward from `∂Y`: `∂V = Pᵀ·∂Y`, `∂P = ∂Y·Vᵀ`, `∂S = P ⊙ (∂P − rowsum(∂P ⊙ P))`, `∂Q = ∂S·K/√d`,
//! `∂K = ∂Sᵀ·Q/√d`. Under autodiff it is one graph operation ([`HostAttention`], burn's backend-extension API) whose
//! state is `Q`, `K`, `V` and `P`.

use std::any::{Any, TypeId};

use burn::backend::autodiff::checkpoint::base::Checkpointer;
use burn::backend::autodiff::checkpoint::strategy::NoCheckpointing;
use burn::backend::autodiff::grads::Gradients;
use burn::backend::autodiff::ops::{Backward, Ops, OpsKind};
use burn::backend::flex::{Flex, FlexTensor};
use burn::backend::Autodiff;
use burn::tensor::backend::{Backend, BackendTypes};
use burn::tensor::{Tensor, TensorData, TensorPrimitive};

use crate::host::gemm::{matmul, Matrix};
use crate::host::vector::{exp_shifted_in_place, max, scale_in_place, simd};
use crate::host::{all_f32_on_host, from_vec};

/// The sizes of one attention call.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Dims {
    pub b: usize,
    pub nh: usize,
    /// New (query) positions.
    pub t: usize,
    /// Key positions (cached and new); query `i` sits at position `tk − t + i`.
    pub tk: usize,
    pub hs: usize,
    /// Sliding window (0 = global).
    pub window: usize,
}

impl Dims {
    /// The keys query `i` sees: `lo..hi`.
    fn visible(&self, i: usize) -> (usize, usize) {
        let q = self.tk - self.t + i;
        let lo = if self.window > 0 { (q + 1).saturating_sub(self.window) } else { 0 };
        (lo, q + 1)
    }

    fn scale(&self) -> f32 {
        1.0 / (self.hs as f32).sqrt()
    }
}

/// Forward: `q [B, nh, T, hs]`, `k, v [B, nh, Tk, hs]` (row-major) → `y [B, T, nh·hs]` (heads merged) and the
/// probabilities `p [B, nh, T, Tk]` (zero where hidden).
pub(crate) fn forward(q: &[f32], k: &[f32], v: &[f32], d: &Dims) -> (Vec<f32>, Vec<f32>) {
    let (heads, t, tk, hs) = (d.b * d.nh, d.t, d.tk, d.hs);
    let mut p = vec![0.0f32; heads * t * tk];
    let mut y_heads = vec![0.0f32; heads * t * hs];
    let head = |h: usize, p: &mut [f32], y: &mut [f32]| {
        let (qh, kh, vh) = (&q[h * t * hs..][..t * hs], &k[h * tk * hs..][..tk * hs], &v[h * tk * hs..][..tk * hs]);
        let s = matmul(Matrix::row_major(qh, t, hs), Matrix::row_major(kh, tk, hs).t()); // [T, Tk]
        simd(
            #[inline(always)]
            || {
                for i in 0..t {
                    let (lo, hi) = d.visible(i);
                    let row = &mut p[i * tk..(i + 1) * tk];
                    row[lo..hi].copy_from_slice(&s[i * tk + lo..i * tk + hi]);
                    let seen = &mut row[lo..hi];
                    scale_in_place(seen, d.scale());
                    let top = max(seen);
                    let sum = exp_shifted_in_place(seen, top);
                    scale_in_place(seen, (1.0 / sum) as f32);
                }
            },
        );
        y.copy_from_slice(&matmul(Matrix::row_major(p, t, tk), Matrix::row_major(vh, tk, hs)));
        // [T, hs]
    };
    per_head(&mut p, t * tk, &mut y_heads, t * hs, head);
    (merge_heads(&y_heads, d), p)
}

/// Backward: from `∂y [B, T, nh·hs]` and the forward's inputs and probabilities, `(∂q, ∂k, ∂v)` in the inputs'
/// layouts.
pub(crate) fn backward(q: &[f32], k: &[f32], v: &[f32], p: &[f32], dy: &[f32], d: &Dims) -> (Vec<f32>, Vec<f32>, Vec<f32>) {
    let (heads, t, tk, hs, c) = (d.b * d.nh, d.t, d.tk, d.hs, d.nh * d.hs);
    let (mut dq, mut dk, mut dv) = (vec![0.0f32; heads * t * hs], vec![0.0f32; heads * tk * hs], vec![0.0f32; heads * tk * hs]);
    let work = |h: usize, dq: &mut [f32], dk: &mut [f32], dv: &mut [f32]| {
        let (bi, hi) = (h / d.nh, h % d.nh);
        let (qh, kh, vh) = (&q[h * t * hs..][..t * hs], &k[h * tk * hs..][..tk * hs], &v[h * tk * hs..][..tk * hs]);
        let ph = Matrix::row_major(&p[h * t * tk..][..t * tk], t, tk);
        // This head's ∂Y, gathered from the merged layout: [T, hs].
        let dyh: Vec<f32> = (0..t).flat_map(|i| &dy[(bi * t + i) * c + hi * hs..][..hs]).copied().collect();
        let dyh = Matrix::row_major(&dyh, t, hs);
        dv.copy_from_slice(&matmul(ph.t(), dyh)); // [Tk, hs]
        let mut ds = matmul(dyh, Matrix::row_major(vh, tk, hs).t()); // ∂P, then ∂S: [T, Tk]
        simd(
            #[inline(always)]
            || {
                for (i, row) in ds.chunks_exact_mut(tk).enumerate() {
                    let pr = &p[(h * t + i) * tk..][..tk];
                    let dot: f32 = row.iter().zip(pr).map(|(g, p)| g * p).sum();
                    for (g, p) in row.iter_mut().zip(pr) {
                        *g = p * (*g - dot) * d.scale();
                    }
                }
            },
        );
        let ds = Matrix::row_major(&ds, t, tk);
        dq.copy_from_slice(&matmul(ds, Matrix::row_major(kh, tk, hs))); // [T, hs]
        dk.copy_from_slice(&matmul(ds.t(), Matrix::row_major(qh, t, hs))); // [Tk, hs]
    };
    #[cfg(not(target_arch = "wasm32"))]
    {
        use rayon::prelude::*;
        dq.par_chunks_mut(t * hs)
            .zip(dk.par_chunks_mut(tk * hs))
            .zip(dv.par_chunks_mut(tk * hs))
            .enumerate()
            .for_each(|(h, ((dq, dk), dv))| work(h, dq, dk, dv));
    }
    #[cfg(target_arch = "wasm32")]
    dq.chunks_mut(t * hs)
        .zip(dk.chunks_mut(tk * hs))
        .zip(dv.chunks_mut(tk * hs))
        .enumerate()
        .for_each(|(h, ((dq, dk), dv))| work(h, dq, dk, dv));
    (dq, dk, dv)
}

/// Runs `f(head, a_chunk, b_chunk)` for every head, natively on every core.
fn per_head<F>(a: &mut [f32], a_len: usize, b: &mut [f32], b_len: usize, f: F)
where
    F: Fn(usize, &mut [f32], &mut [f32]) + Sync + Send,
{
    #[cfg(not(target_arch = "wasm32"))]
    {
        use rayon::prelude::*;
        a.par_chunks_mut(a_len).zip(b.par_chunks_mut(b_len)).enumerate().for_each(|(h, (a, b))| f(h, a, b));
    }
    #[cfg(target_arch = "wasm32")]
    a.chunks_mut(a_len).zip(b.chunks_mut(b_len)).enumerate().for_each(|(h, (a, b))| f(h, a, b));
}

/// `[B, nh, T, hs]` → `[B, T, nh·hs]`.
fn merge_heads(y: &[f32], d: &Dims) -> Vec<f32> {
    let (t, hs, c) = (d.t, d.hs, d.nh * d.hs);
    let mut out = vec![0.0f32; d.b * t * c];
    for (h, yh) in y.chunks_exact(t * hs).enumerate() {
        let (bi, hi) = (h / d.nh, h % d.nh);
        for (i, row) in yh.chunks_exact(hs).enumerate() {
            out[(bi * t + i) * c + hi * hs..][..hs].copy_from_slice(row);
        }
    }
    out
}

/// The autodiff operation: `Q`, `K`, `V` are its three parents.
#[derive(Debug)]
struct HostAttention;

/// What the backward pass needs: the inputs and the probabilities, on the host.
#[derive(Debug, Clone)]
struct Saved {
    q: Vec<f32>,
    k: Vec<f32>,
    v: Vec<f32>,
    p: Vec<f32>,
    dims: Dims,
}

impl Backward<Flex, 3> for HostAttention {
    type State = Saved;

    fn backward(self, ops: Ops<Saved, 3>, grads: &mut Gradients, _: &mut Checkpointer) {
        let s = ops.state;
        let dy = values(grads.consume::<Flex>(&ops.node));
        let (dq, dk, dv) = backward(&s.q, &s.k, &s.v, &s.p, &dy, &s.dims);
        let Dims { b, nh, t, tk, hs, .. } = s.dims;
        for ((parent, g), rows) in ops.parents.into_iter().zip([dq, dk, dv]).zip([t, tk, tk]) {
            if let Some(node) = parent {
                grads.register::<Flex>(node.id, FlexTensor::from_data(TensorData::new(g, [b, nh, rows, hs])));
            }
        }
    }
}

/// A Flex tensor's values in logical (row-major) order.
fn values(t: FlexTensor) -> Vec<f32> {
    t.into_data().into_vec::<f32>().expect("an f32 tensor")
}

/// Moves `value` into type `T` when it is that type (`B`'s primitive when `B` is the concrete backend checked).
fn cast<T: 'static, U: 'static>(value: U) -> Option<T> {
    let boxed: Box<dyn Any> = Box::new(value);
    boxed.downcast::<T>().ok().map(|b| *b)
}

/// Without autodiff, fewer queries than this (cached decoding) stay on the tensor path.
const FEW_QUERIES: usize = 8;

/// Causal attention on the host when `B` is burn's Flex backend, with or without autodiff (with burn's default
/// checkpointing): `[B, T, nh·hs]`, heads merged. `None` for any other backend or dtype, and for decoding's few
/// queries without autodiff.
///
/// # Shapes
/// `q: [B, nh, T, hs]`, `k, v: [B, nh, Tk, hs]` → `[B, T, nh·hs]`.
pub(crate) fn causal_attention<B: Backend>(q: &Tensor<B, 4>, k: &Tensor<B, 4>, v: &Tensor<B, 4>, window: usize) -> Option<Tensor<B, 3>> {
    if !all_f32_on_host(&[q, k, v]) {
        return None;
    }
    let ([b, nh, t, hs], tk, device) = (q.dims(), k.dims()[2], q.device());
    let dims = Dims { b, nh, t, tk, hs, window };
    let primitive = |x: &Tensor<B, 4>| match x.clone().into_primitive() {
        TensorPrimitive::Float(p) => Some(p),
        TensorPrimitive::QFloat(_) => None,
    };
    let (pq, pk, pv) = (primitive(q)?, primitive(k)?, primitive(v)?);
    if TypeId::of::<B>() == TypeId::of::<Flex>() {
        // Decoding a token or a few: the tensor path is faster than copying the cache out and waking every core.
        if t < FEW_QUERIES {
            return None;
        }
        let [qv, kv, vv] = [pq, pk, pv].map(|p| cast::<FlexTensor, _>(p).map(values));
        let (y, _) = forward(&qv?, &kv?, &vv?, &dims);
        return Some(from_vec(y, [b, t, nh * hs], &device));
    }
    if TypeId::of::<B>() != TypeId::of::<Autodiff<Flex>>() {
        return None;
    }
    type Tracked = <Autodiff<Flex> as BackendTypes>::FloatTensorPrimitive;
    let (aq, ak, av) = (cast::<Tracked, _>(pq)?, cast::<Tracked, _>(pk)?, cast::<Tracked, _>(pv)?);
    let (qv, kv, vv) = (values(aq.primitive.clone()), values(ak.primitive.clone()), values(av.primitive.clone()));
    let (y, p) = forward(&qv, &kv, &vv, &dims);
    let y = FlexTensor::from_data(TensorData::new(y, [b, t, nh * hs]));
    let out: Tracked =
        match HostAttention.prepare::<NoCheckpointing>([aq.node.clone(), ak.node.clone(), av.node.clone()]).compute_bound().stateful() {
            OpsKind::Tracked(prep) => prep.finish(Saved { q: qv, k: kv, v: vv, p, dims }, y),
            OpsKind::UnTracked(prep) => prep.finish(y),
        };
    Some(Tensor::from_primitive(TensorPrimitive::Float(cast::<B::FloatTensorPrimitive, _>(out)?)))
}
