//! The one causal attention core (Vaswani et al. 2017, "Attention Is All You Need", §3.2.1), shared by every
//! decoder family's blocks and H-Net's isotropic stacks: split the fused projection into heads, append to the KV
//! cache, attend with one causal (optionally sliding-window) mask, merge the heads. What differs between the callers
//! — rotary positions on q and k in Llama, Qwen2 and H-Net — happens in between, in the callers.
//!
//! Grouped-query attention (Ainslie et al. 2023; Llama, Qwen2) and multi-query attention (Shazeer 2019; GPTBigCode)
//! are a shape, not a copy: `n_kv_head` key/value heads each serve `n_head / n_kv_head` consecutive query heads, as
//! Hugging Face's `repeat_kv` assigns them, without repeating the keys and values. The KV cache holds only the
//! `n_kv_head` heads. On the host (burn's Flex backend) the attention itself is [`host`]'s kernel, forward and
//! backward; the tests hold the two paths to each other.

use burn::tensor::activation::softmax;
use burn::tensor::backend::Backend;
use burn::tensor::{Bool, Tensor, TensorData};

use crate::nn::cache::LayerKv;

mod host;

/// `mask[i][j]` is true where query `i` (at absolute position `tk - t + i`) must NOT see key `j`: a later key, or
/// one that fell out of the sliding window (`window` positions including itself; 0 = global).
pub fn attention_mask<B: Backend>(t: usize, tk: usize, window: usize, device: &B::Device) -> Tensor<B, 2, Bool> {
    let start = tk - t;
    let mut data = Vec::with_capacity(t * tk);
    for i in 0..t {
        let q = start + i;
        for j in 0..tk {
            data.push(j > q || (window > 0 && j + window <= q));
        }
    }
    Tensor::from_data(TensorData::new(data, [t, tk]), device)
}

/// Splits a fused `[q | k | v]` projection into heads: `n_head` query heads, `n_kv_head` key and value heads.
///
/// # Shapes
/// `qkv: [B, T, (nh + 2·nkv)·hs]` → `q: [B, nh, T, hs]`, `k, v: [B, nkv, T, hs]`.
pub fn split_heads<B: Backend>(qkv: Tensor<B, 3>, n_head: usize, n_kv_head: usize) -> [Tensor<B, 4>; 3] {
    let [b, t, width] = qkv.dims();
    let hs = width / (n_head + 2 * n_kv_head);
    let head = |start: usize, n: usize| qkv.clone().narrow(2, start * hs, n * hs).reshape([b, t, n, hs]).swap_dims(1, 2); // [B, n, T, hs]
    [head(0, n_head), head(n_head, n_kv_head), head(n_head + n_kv_head, n_kv_head)]
}

/// Causal attention of `T` new queries over the cached keys and the new ones, then the heads merged back.
///
/// # Shapes
/// `q: [B, nh, T, hs]`, `k, v: [B, nkv, T, hs]` (the new positions, which follow the `cache`'s; `nkv` divides `nh`)
/// → `[B, T, nh·hs]`.
pub fn causal_attention<B: Backend>(
    q: Tensor<B, 4>,
    k: Tensor<B, 4>,
    v: Tensor<B, 4>,
    window: usize,
    cache: Option<&mut LayerKv<B>>,
) -> Tensor<B, 3> {
    let (k, v) = match cache {
        Some(kv) => kv.append(k, v), // [B, nkv, Tk, hs]
        None => (k, v),
    };
    match host::causal_attention(&q, &k, &v, window) {
        Some(y) => y,
        None => attend_with_tensor_ops(q, k, v, window),
    }
}

/// The attention of [`causal_attention`] as tensor operations (every backend). The `g = nh / nkv` query heads of a
/// group are stacked as `g·T` rows against their one key/value head (the mask repeats once per head of the group).
///
/// # Shapes
/// `q: [B, nh, T, hs]`, `k, v: [B, nkv, Tk, hs]` → `[B, T, nh·hs]`.
fn attend_with_tensor_ops<B: Backend>(q: Tensor<B, 4>, k: Tensor<B, 4>, v: Tensor<B, 4>, window: usize) -> Tensor<B, 3> {
    let [b, nh, t, hs] = q.dims();
    let [_, nkv, tk, _] = k.dims();
    let g = nh / nkv;
    let q = q.reshape([b, nkv, g * t, hs]); // [B, nkv, g·T, hs]
    let att = q.matmul(k.swap_dims(2, 3)).mul_scalar(1.0 / (hs as f64).sqrt()); // [B, nkv, g·T, Tk]
    let hidden = attention_mask::<B>(t, tk, window, &att.device()).repeat_dim(0, g); // [g·T, Tk]
    let y = softmax(att.mask_fill(hidden.unsqueeze::<4>(), -1e9), 3).matmul(v); // [B, nkv, g·T, hs]
    y.reshape([b, nh, t, hs]).swap_dims(1, 2).reshape([b, t, nh * hs]) // [B, T, C]
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::{TestAutodiffBackend as A, TestBackend};
    use burn::module::Param;
    use burn::tensor::Distribution;

    fn close(a: Tensor<TestBackend, 3>, b: Tensor<TestBackend, 3>, what: &str) {
        let (a, b) = (a.into_data().to_vec::<f32>().unwrap(), b.into_data().to_vec::<f32>().unwrap());
        assert_eq!(a.len(), b.len());
        for (i, (x, y)) in a.iter().zip(&b).enumerate() {
            assert!((x - y).abs() <= 1e-5 * (1.0 + y.abs()), "{what}: element {i}: host {x}, tensor ops {y}");
        }
    }

    #[test]
    fn the_host_kernel_is_the_tensor_path_with_a_window_and_with_cached_keys() {
        let d = Default::default();
        // (T, Tk, window): a full causal pass, a sliding window, and new queries after cached keys.
        // Decoding's few queries too (T < 8), with keys and values read from a larger buffer as the KV cache holds
        // them, and queries with swapped dimensions as split_heads gives them.
        for (t, tk, window) in [(8, 8, 0), (9, 9, 3), (8, 12, 0), (10, 16, 4), (1, 1, 0), (1, 13, 0), (3, 20, 0), (1, 17, 5), (2, 9, 4)] {
            let r = |n| Tensor::<TestBackend, 4>::random([2, 3, n, 4], Distribution::Normal(0.0, 2.0), &d);
            let (q, k, v) = (r(t), r(tk), r(tk));
            let host = host::causal_attention(&q, &k, &v, window).expect("Flex takes the host path");
            close(host, attend_with_tensor_ops(q.clone(), k.clone(), v.clone(), window), &format!("T {t}, Tk {tk}, window {window}"));
            let (kb, vb) = (Tensor::cat(vec![k.clone(), r(5)], 2).narrow(2, 0, tk), Tensor::cat(vec![v.clone(), r(5)], 2).narrow(2, 0, tk));
            let qs = q.clone().swap_dims(1, 2).into_data();
            let qs = Tensor::<TestBackend, 4>::from_data(qs, &d).swap_dims(1, 2);
            let host = host::causal_attention(&qs, &kb, &vb, window).expect("Flex takes the host path for views");
            close(host, attend_with_tensor_ops(q, k, v, window), &format!("views, T {t}, Tk {tk}, window {window}"));
        }
    }

    #[test]
    fn the_host_kernel_has_the_tensor_paths_gradients() {
        let d = Default::default();
        for window in [0, 3] {
            // Swapped dims, as split_heads gives them: the host path reads views in logical order.
            let r = || Tensor::<A, 4>::random([2, 6, 3, 4], Distribution::Normal(0.0, 1.5), &d).swap_dims(1, 2);
            let (q0, k0, v0) = (r(), r(), r());
            let weights = Tensor::<A, 3>::random([2, 6, 12], Distribution::Normal(0.0, 1.0), &d);
            let mut grads = Vec::new();
            for host_path in [true, false] {
                let (q, k, v) = (Param::from_tensor(q0.clone()), Param::from_tensor(k0.clone()), Param::from_tensor(v0.clone()));
                let y = if host_path {
                    host::causal_attention(&q.val(), &k.val(), &v.val(), window).expect("Autodiff<Flex> takes the host path")
                } else {
                    attend_with_tensor_ops(q.val(), k.val(), v.val(), window)
                };
                let g = (y * weights.clone()).sum().backward();
                grads.push([&q, &k, &v].map(|p| p.val().grad(&g).expect("a gradient")));
            }
            let [hq, hk, hv] = grads.remove(0);
            let [tq, tk, tv] = grads.remove(0);
            for (name, h, t) in [("∂q", hq, tq), ("∂k", hk, tk), ("∂v", hv, tv)] {
                assert!(t.clone().abs().max().into_scalar() > 1e-3, "{name} is not trivial");
                close(h.reshape([2, 3, 24]), t.reshape([2, 3, 24]), &format!("{name}, window {window}"));
            }
        }
    }

    /// Hugging Face's `repeat_kv`: key/value head `j` serves query heads `j·g .. (j+1)·g`.
    fn repeat_kv<Bk: Backend>(x: Tensor<Bk, 4>, g: usize) -> Tensor<Bk, 4> {
        let [b, nkv, t, hs] = x.dims();
        x.unsqueeze_dim::<5>(2).repeat_dim(2, g).reshape([b, nkv * g, t, hs])
    }

    #[test]
    fn grouped_and_multi_query_heads_are_repeated_keys_and_values_without_the_copy() {
        let d = Default::default();
        for (nh, nkv) in [(4, 2), (6, 1), (4, 4)] {
            for (t, tk, window) in [(8, 8, 0), (9, 9, 3), (1, 13, 0), (3, 20, 0)] {
                let r = |h, n| Tensor::<TestBackend, 4>::random([2, h, n, 4], Distribution::Normal(0.0, 2.0), &d);
                let (q, k, v) = (r(nh, t), r(nkv, tk), r(nkv, tk));
                let want = attend_with_tensor_ops(q.clone(), repeat_kv(k.clone(), nh / nkv), repeat_kv(v.clone(), nh / nkv), window);
                let what = format!("{nh}/{nkv} heads, T {t}, Tk {tk}, window {window}");
                close(attend_with_tensor_ops(q.clone(), k.clone(), v.clone(), window), want.clone(), &format!("tensor ops, {what}"));
                close(host::causal_attention(&q, &k, &v, window).expect("Flex"), want, &format!("host, {what}"));
            }
            // Gradients: the host operation against the tensor path over repeated heads.
            let r = |h| Tensor::<A, 4>::random([2, h, 5, 4], Distribution::Normal(0.0, 1.5), &d);
            let (q0, k0, v0) = (r(nh), r(nkv), r(nkv));
            let weights = Tensor::<A, 3>::random([2, 5, nh * 4], Distribution::Normal(0.0, 1.0), &d);
            let mut grads = Vec::new();
            for host_path in [true, false] {
                let (q, k, v) = (Param::from_tensor(q0.clone()), Param::from_tensor(k0.clone()), Param::from_tensor(v0.clone()));
                let y = if host_path {
                    host::causal_attention(&q.val(), &k.val(), &v.val(), 0).expect("Autodiff<Flex>")
                } else {
                    attend_with_tensor_ops(q.val(), repeat_kv(k.val(), nh / nkv), repeat_kv(v.val(), nh / nkv), 0)
                };
                let g = (y * weights.clone()).sum().backward();
                grads.push([&q, &k, &v].map(|p| p.val().grad(&g).expect("a gradient")));
            }
            let [hq, hk, hv] = grads.remove(0);
            let [tq, tk, tv] = grads.remove(0);
            for (name, h, t, n) in [("∂q", hq, tq, nh), ("∂k", hk, tk, nkv), ("∂v", hv, tv, nkv)] {
                assert!(t.clone().abs().max().into_scalar() > 1e-3, "{name} is not trivial");
                close(h.reshape([2, n * 5, 4]), t.reshape([2, n * 5, 4]), &format!("{name}, {nh}/{nkv}"));
            }
        }
    }

    #[test]
    fn the_mask_hides_the_future_and_what_falls_out_of_the_window() {
        let m = |t, tk, w| attention_mask::<TestBackend>(t, tk, w, &Default::default()).into_data().to_vec::<bool>().unwrap();
        // Three new queries after one cached key, global: query i sees keys 0..=i+1.
        assert_eq!(m(3, 4, 0), vec![false, false, true, true, false, false, false, true, false, false, false, false]);
        // Window 2: each query sees itself and one predecessor.
        assert_eq!(m(3, 3, 2), vec![false, true, true, false, false, true, true, false, false]);
    }

    #[test]
    fn a_query_attends_only_to_itself_first_then_averages_equal_keys() {
        let d = Default::default();
        // One head, width 2; equal keys make the weights uniform over the visible ones.
        let q = Tensor::<TestBackend, 4>::ones([1, 1, 3, 2], &d);
        let k = Tensor::<TestBackend, 4>::ones([1, 1, 3, 2], &d);
        let v = Tensor::<TestBackend, 4>::from_floats([[[[1.0, 0.0], [3.0, 0.0], [5.0, 0.0]]]], &d);
        let y = causal_attention(q, k, v, 0, None).into_data().to_vec::<f32>().unwrap();
        // Position 0 sees v0; 1 sees the mean of v0, v1; 2 the mean of all three.
        let firsts: Vec<f32> = y.chunks(2).map(|c| c[0]).collect();
        for (got, want) in firsts.iter().zip([1.0, 2.0, 3.0]) {
            assert!((got - want).abs() < 1e-5, "{firsts:?}");
        }
    }
}
