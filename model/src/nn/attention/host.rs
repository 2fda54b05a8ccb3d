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
use crate::host::team;
use crate::host::vector::{dot, exp_shifted_in_place, max, scale_in_place, simd};
use crate::host::{all_f32_on_host, from_vec};

/// The sizes of one attention call.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Dims {
    pub b: usize,
    pub nh: usize,
    /// Key/value heads; each serves `nh / nkv` consecutive query heads.
    pub nkv: usize,
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

    /// The key/value head (over `B·nkv`) that query head `h` (over `B·nh`) reads.
    fn kv_of(&self, h: usize) -> usize {
        (h / self.nh) * self.nkv + (h % self.nh) / (self.nh / self.nkv)
    }
}

/// Forward: `q [B, nh, T, hs]`, `k, v [B, nkv, Tk, hs]` (row-major) → `y [B, T, nh·hs]` (heads merged) and the
/// probabilities `p [B, nh, T, Tk]` (zero where hidden).
pub(crate) fn forward(q: &[f32], k: &[f32], v: &[f32], d: &Dims) -> (Vec<f32>, Vec<f32>) {
    let (heads, t, tk, hs) = (d.b * d.nh, d.t, d.tk, d.hs);
    let mut p = vec![0.0f32; heads * t * tk];
    let mut y_heads = vec![0.0f32; heads * t * hs];
    let head = |h: usize, p: &mut [f32], y: &mut [f32]| {
        let kv = d.kv_of(h);
        let (qh, kh, vh) = (&q[h * t * hs..][..t * hs], &k[kv * tk * hs..][..tk * hs], &v[kv * tk * hs..][..tk * hs]);
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
    team::for_each(p.chunks_mut(t * tk).zip(y_heads.chunks_mut(t * hs)).collect(), |h, (p, y)| head(h, p, y));
    (merge_heads(&y_heads, d), p)
}

/// Backward: from `∂y [B, T, nh·hs]` and the forward's inputs and probabilities, `(∂q, ∂k, ∂v)` in the inputs'
/// layouts (a key/value head's gradient sums those of the query heads it serves).
pub(crate) fn backward(q: &[f32], k: &[f32], v: &[f32], p: &[f32], dy: &[f32], d: &Dims) -> (Vec<f32>, Vec<f32>, Vec<f32>) {
    let (heads, t, tk, hs, c) = (d.b * d.nh, d.t, d.tk, d.hs, d.nh * d.hs);
    let (mut dq, mut dk, mut dv) = (vec![0.0f32; heads * t * hs], vec![0.0f32; heads * tk * hs], vec![0.0f32; heads * tk * hs]);
    let work = |h: usize, dq: &mut [f32], dk: &mut [f32], dv: &mut [f32]| {
        let (bi, hi) = (h / d.nh, h % d.nh);
        let kv = d.kv_of(h);
        let (qh, kh, vh) = (&q[h * t * hs..][..t * hs], &k[kv * tk * hs..][..tk * hs], &v[kv * tk * hs..][..tk * hs]);
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
    let heads = dq.chunks_mut(t * hs).zip(dk.chunks_mut(tk * hs)).zip(dv.chunks_mut(tk * hs));
    team::for_each(heads.collect(), |h, ((dq, dk), dv)| work(h, dq, dk, dv));
    if d.nkv == d.nh {
        return (dq, dk, dv);
    }
    // Each key/value head collects the gradients of its group's query heads, in head order.
    let group = |per_head: Vec<f32>| {
        let mut out = vec![0.0f32; d.b * d.nkv * tk * hs];
        for (h, part) in per_head.chunks_exact(tk * hs).enumerate() {
            out[d.kv_of(h) * tk * hs..][..tk * hs].iter_mut().zip(part).for_each(|(o, x)| *o += x);
        }
        out
    };
    (dq, group(dk), group(dv))
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
        let Dims { b, nh, nkv, t, tk, hs, .. } = s.dims;
        for ((parent, g), shape) in ops.parents.into_iter().zip([dq, dk, dv]).zip([[b, nh, t, hs], [b, nkv, tk, hs], [b, nkv, tk, hs]]) {
            if let Some(node) = parent {
                grads.register::<Flex>(node.id, FlexTensor::from_data(TensorData::new(g, shape)));
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

/// Without autodiff, fewer queries than this (cached decoding) take [`decode`].
const FEW_QUERIES: usize = 8;

/// A `[B, nh, T, hs]` Flex tensor read in place: each position's `hs` values are contiguous, the three outer
/// dimensions strided (the KV cache's view of its larger buffer, split heads' swapped dimensions).
struct Rows<'a> {
    data: &'a [f32],
    start: usize,
    /// Strides of `B`, `nh`, `T`, in values.
    strides: [usize; 3],
    hs: usize,
}

impl<'a> Rows<'a> {
    /// `None` unless the tensor is f32 with contiguous rows and non-negative strides.
    fn of(t: &'a FlexTensor) -> Option<Self> {
        let layout = t.layout();
        let (&[s0, s1, s2, s3], &[_, _, _, hs]) = (layout.strides(), &layout.shape()[..]) else { return None };
        if t.dtype() != burn::tensor::DType::F32 || (s3 != 1 && hs > 1) || [s0, s1, s2].iter().any(|&s| s < 0) {
            return None;
        }
        Some(Self { data: t.storage::<f32>(), start: layout.start_offset(), strides: [s0 as usize, s1 as usize, s2 as usize], hs })
    }

    /// Position `i` of head `n` of batch row `b`.
    fn row(&self, b: usize, n: usize, i: usize) -> &'a [f32] {
        &self.data[self.start + b * self.strides[0] + n * self.strides[1] + i * self.strides[2]..][..self.hs]
    }
}

/// Decoding's attention, without autodiff: a few queries `q` against every visible cached key, one head per task
/// of the decoding [`team`](crate::host::team), `[B, T, nh·hs]` with the heads merged. Per query the scores are
/// dot products with the keys, a softmax over the visible ones, and the values' weighted sum: the forward of
/// [`forward`] without its matrix products, which cost more in setup than in arithmetic at one row.
fn decode(q: &Rows, k: &Rows, v: &Rows, d: &Dims) -> Vec<f32> {
    let (t, tk, hs) = (d.t, d.tk, d.hs);
    let mut y_heads = vec![0.0f32; d.b * d.nh * t * hs];
    team::for_each(y_heads.chunks_mut(t * hs).collect(), |h, y: &mut [f32]| {
        let (batch, head) = (h / d.nh, h % d.nh);
        let kv_head = head / (d.nh / d.nkv);
        let mut p = vec![0.0f32; tk];
        simd(
            #[inline(always)]
            || {
                for (i, yi) in y.chunks_exact_mut(hs).enumerate() {
                    let (lo, hi) = d.visible(i);
                    let qi = q.row(batch, head, i);
                    let seen = &mut p[lo..hi];
                    for (j, s) in (lo..).zip(seen.iter_mut()) {
                        *s = dot(qi, k.row(batch, kv_head, j));
                    }
                    scale_in_place(seen, d.scale());
                    let top = max(seen);
                    let inv = (1.0 / exp_shifted_in_place(seen, top)) as f32;
                    for (j, &pj) in (lo..).zip(seen.iter()) {
                        let w = pj * inv;
                        yi.iter_mut().zip(v.row(batch, kv_head, j)).for_each(|(y, v)| *y = w.mul_add(*v, *y));
                    }
                }
            },
        );
    });
    merge_heads(&y_heads, d)
}

/// Causal attention on the host when `B` is burn's Flex backend, with or without autodiff (with burn's default
/// checkpointing): `[B, T, nh·hs]`, heads merged; decoding's few queries without autodiff read the keys and values
/// in place ([`decode`]). `None` for any other backend or dtype, and for layouts the host path does not read.
///
/// # Shapes
/// `q: [B, nh, T, hs]`, `k, v: [B, nkv, Tk, hs]` → `[B, T, nh·hs]`.
pub(crate) fn causal_attention<B: Backend>(q: &Tensor<B, 4>, k: &Tensor<B, 4>, v: &Tensor<B, 4>, window: usize) -> Option<Tensor<B, 3>> {
    if !all_f32_on_host(&[q, k, v]) {
        return None;
    }
    let ([b, nh, t, hs], [_, nkv, tk, _], device) = (q.dims(), k.dims(), q.device());
    let dims = Dims { b, nh, nkv, t, tk, hs, window };
    let primitive = |x: &Tensor<B, 4>| match x.clone().into_primitive() {
        TensorPrimitive::Float(p) => Some(p),
        TensorPrimitive::QFloat(_) => None,
    };
    let (pq, pk, pv) = (primitive(q)?, primitive(k)?, primitive(v)?);
    if TypeId::of::<B>() == TypeId::of::<Flex>() {
        let [fq, fk, fv] = [pq, pk, pv].map(cast::<FlexTensor, _>);
        let (fq, fk, fv) = (fq?, fk?, fv?);
        // Decoding a token or a few: read the cache where it lies (a view of its buffer) rather than copy it out.
        if t < FEW_QUERIES {
            let y = decode(&Rows::of(&fq)?, &Rows::of(&fk)?, &Rows::of(&fv)?, &dims);
            return Some(from_vec(y, [b, t, nh * hs], &device));
        }
        let [qv, kv, vv] = [Some(fq), Some(fk), Some(fv)].map(|p| p.map(values));
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
