//! Fused kernels for tensors in host memory: burn's CPU backend, Flex, natively and in the browser's wasm fallback.
//!
//! Flex runs every tensor operation as its own eager pass over memory, and its elementwise passes are scalar and
//! single-threaded (`exp` calls libm once per element). That is fine for most of a step, not for its two widest
//! parts: the LM head's softmax over `[N, V]` logits (51M values for a batch of 8 × 128 over GPT-2's vocabulary,
//! walked about eight times) and AdamW's update (a dozen passes over every parameter). Where the tensors live in
//! host memory those two are written here as loops over slices instead: one pass where the tensor ops take
//! several, vectorised through runtime CPU dispatch ([`vector`], `pulp`: AVX-512, AVX2, NEON or wasm SIMD), over
//! all cores ([`team`]: rayon's pool, kept awake through a decoding step), with matrix products through the `gemm`
//! crate Flex itself calls ([`gemm`]). The math is the same as the tensor-op path every other backend runs, and
//! each caller tests that the two agree.

pub mod autocast;
pub mod bf16;
pub mod gemm;
pub mod team;
pub mod vector;

use std::any::{Any, TypeId};

use burn::backend::flex::{Flex, FlexTensor};
use burn::backend::Autodiff;
use burn::tensor::backend::{Backend, BackendTypes};
use burn::tensor::{DType, Tensor, TensorData, TensorPrimitive};

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

/// A read-only view of an f32 tensor's values in host memory, sharing its buffer (no copy).
pub struct HostView(Option<FlexTensor>);

impl HostView {
    /// The values, row-major.
    pub fn as_slice(&self) -> &[f32] {
        match &self.0 {
            Some(t) => {
                let start = t.layout().start_offset();
                &t.storage::<f32>()[start..start + t.layout().num_elements()]
            }
            None => &[],
        }
    }

    /// A view of no values (an absent bias).
    pub fn empty() -> Self {
        Self(None)
    }
}

/// A view of `t`'s values when it is a contiguous f32 tensor of burn's Flex backend (with or without autodiff),
/// without copying them: the autodiff wrapper and the generic backend are looked through by their concrete types.
/// `None` for anything else (callers then copy with [`to_vec`]).
pub fn view<B: Backend, const D: usize>(t: &Tensor<B, D>) -> Option<HostView> {
    let TensorPrimitive::Float(primitive) = t.clone().into_primitive() else { return None };
    let flex = match downcast::<_, FlexTensor>(primitive) {
        Ok(plain) => plain,
        Err(primitive) => downcast::<_, <Autodiff<Flex> as BackendTypes>::FloatTensorPrimitive>(primitive).ok()?.primitive,
    };
    (flex.dtype() == DType::F32 && flex.is_contiguous()).then_some(HostView(Some(flex)))
}

/// `value` as a `U` when `T` is `U` (a generic type looked through by its concrete one), else `value` back.
pub(crate) fn downcast<T: 'static, U: 'static>(value: T) -> Result<U, T> {
    let mut slot = Some(value);
    let any: &mut dyn Any = &mut slot;
    if let Some(u) = any.downcast_mut::<Option<U>>() {
        return Ok(u.take().expect("just put there"));
    }
    Err(slot.take().expect("just put there"))
}

/// An f32 tensor's row-major values on the host: its own buffer where [`view`] can share it, else a copy.
pub struct Values {
    view: Option<HostView>,
    copy: Vec<f32>,
}

impl Values {
    /// `t`'s values, shared or copied.
    pub fn of<B: Backend, const D: usize>(t: &Tensor<B, D>) -> Self {
        let view = view(t);
        let copy = if view.is_none() { to_vec(t.clone()) } else { Vec::new() };
        Self { view, copy }
    }

    /// The values.
    pub fn as_slice(&self) -> &[f32] {
        self.view.as_ref().map_or(self.copy.as_slice(), HostView::as_slice)
    }
}

/// Lets `f` change an f32 tensor of burn's Flex backend (without autodiff) through its row-major values, in place
/// when nothing else shares its buffer (a copy first otherwise, so no other tensor sees the change). burn's
/// `slice_assign` on Flex always copies the whole tensor (it keeps a second reference to the buffer while writing),
/// which decoding's KV cache cannot afford per token. `Err(t)` unchanged for any other backend or dtype.
pub fn modify<B: Backend, const D: usize>(t: Tensor<B, D>, f: impl FnOnce(&mut [f32])) -> Result<Tensor<B, D>, Tensor<B, D>> {
    if TypeId::of::<B::FloatTensorPrimitive>() != TypeId::of::<FlexTensor>() || t.dtype() != DType::F32 {
        return Err(t);
    }
    let TensorPrimitive::Float(primitive) = t.into_primitive() else { unreachable!("an f32 tensor is a float primitive") };
    let Ok(owned) = downcast::<_, FlexTensor>(primitive) else { unreachable!("the type was checked above") };
    // A buffer that is exactly the tensor's values (the usual case, kept without a copy), or a fresh one.
    let mut flex = owned.to_contiguous();
    drop(owned);
    f(flex.storage_mut::<f32>());
    let Ok(primitive) = downcast::<FlexTensor, B::FloatTensorPrimitive>(flex) else { unreachable!("the type was checked above") };
    Ok(Tensor::from_primitive(TensorPrimitive::Float(primitive)))
}

/// A tensor of `shape` from row-major values (on the host, without a copy).
pub fn from_vec<B: Backend, const D: usize>(values: Vec<f32>, shape: [usize; D], device: &B::Device) -> Tensor<B, D> {
    Tensor::from_data(TensorData::new(values, shape), device)
}

/// Runs `f` once for each `width`-long row of `buf` with the row's index, on every core natively (rows are
/// independent; [`team::for_each`]), one after another in wasm (no threads there), and returns what it returned
/// for each row, in row order (so that sums over them do not depend on how the rows were scheduled).
pub fn for_rows<T, F>(buf: &mut [f32], width: usize, f: F) -> Vec<T>
where
    T: Send,
    F: Fn(usize, &mut [f32]) -> T + Sync + Send,
{
    assert!(width > 0 && buf.len().is_multiple_of(width), "{} values are not rows of {width}", buf.len());
    let mut results: Vec<Option<T>> = std::iter::repeat_with(|| None).take(buf.len() / width).collect();
    team::for_each(buf.chunks_mut(width).zip(&mut results).collect(), |i, (row, result)| *result = Some(f(i, row)));
    results.into_iter().map(|r| r.expect("every row ran")).collect()
}

/// Elements per task of elementwise host passes ([`map2`], AdamW's update): enough work to outweigh scheduling,
/// several tasks per core for balance (both cores get work even on a bias).
pub(crate) const CHUNK: usize = 1 << 14;

/// Runs `f` over `x` in chunks, natively on every core ([`team::for_each`]), returning two outputs per element (`f`
/// fills the chunks of both that match its chunk of `x`).
pub fn map2<F>(x: &[f32], f: F) -> (Vec<f32>, Vec<f32>)
where
    F: Fn(&[f32], &mut [f32], &mut [f32]) + Sync + Send,
{
    let (mut a, mut b) = (vec![0.0f32; x.len()], vec![0.0f32; x.len()]);
    // A single chunk (decoding's few tokens) runs on this thread: `team::split` runs a lone task in place.
    team::for_each(x.chunks(CHUNK).zip(a.chunks_mut(CHUNK)).zip(b.chunks_mut(CHUNK)).collect(), |_, ((x, a), b)| f(x, a, b));
    (a, b)
}

/// An elementwise function computed on the host: `f` maps `x`'s values (row-major, read in place when `x` is
/// contiguous) to `y = f(x)` and its derivative `dy_dx = f′(x)`, and the result is a tensor that autodiff
/// differentiates: `y + (x − detach(x))·f′(x)` is `y` in value (the bracket is exactly zero for finite `x`, NaN
/// otherwise, as the function would be) and gives `x` the gradient `f′(x)·∂y`. Without autodiff it is just `y`.
/// Burn's decomposed activations cost a dozen eager passes forward and backward; this costs the one host pass and
/// three tensor ones. For f32 tensors on the host (callers check [`all_f32_on_host`]).
pub fn attach_elementwise<B: Backend, const D: usize>(x: Tensor<B, D>, f: impl FnOnce(&[f32]) -> (Vec<f32>, Vec<f32>)) -> Tensor<B, D> {
    let (y, dy_dx) = f(Values::of(&x).as_slice());
    let (shape, device) = (x.dims(), x.device());
    let y = from_vec::<B, D>(y, shape, &device);
    if !B::ad_enabled(&device) {
        return y;
    }
    let zero = x.clone() - x.detach();
    y + zero * from_vec::<B, D>(dy_dx, shape, &device)
}

/// Test support: holds a host elementwise function to its reference over `[lo, hi]`, in value and, under autodiff,
/// in gradient (a loss weighing each output differently, so that each gradient element is checked).
#[cfg(test)]
pub(crate) fn assert_elementwise_matches(
    what: &str,
    host: fn(Tensor<crate::TestAutodiffBackend, 1>) -> Tensor<crate::TestAutodiffBackend, 1>,
    reference: fn(Tensor<crate::TestAutodiffBackend, 1>) -> Tensor<crate::TestAutodiffBackend, 1>,
    lo: f32,
    hi: f32,
) {
    use burn::module::Param;
    let d = Default::default();
    let xs: Vec<f32> = (0..20_001).map(|i| lo + (hi - lo) * i as f32 / 20_000.0).collect();
    let x0 = Tensor::<crate::TestAutodiffBackend, 1>::from_floats(xs.as_slice(), &d);
    let (xh, xr) = (Param::from_tensor(x0.clone()), Param::from_tensor(x0));
    assert!(all_f32_on_host(&[&xh.val()]), "the test must take the host path");
    let weights = Tensor::<crate::TestAutodiffBackend, 1>::from_floats(xs.iter().map(|x| 1.0 + x.sin()).collect::<Vec<_>>().as_slice(), &d);
    let (yh, yr) = (host(xh.val()), reference(xr.val()));
    let close = |a: Vec<f32>, b: Vec<f32>, part: &str| {
        for ((a, b), x) in a.iter().zip(&b).zip(&xs) {
            assert!((a - b).abs() <= 2e-6 * (1.0 + b.abs()), "{what}{part} at {x}: host {a}, reference {b}");
        }
    };
    close(yh.clone().into_data().to_vec().unwrap(), yr.clone().into_data().to_vec().unwrap(), "");
    let (gh, gr) = ((yh * weights.clone()).sum().backward(), (yr * weights).sum().backward());
    close(xh.val().grad(&gh).unwrap().into_data().to_vec().unwrap(), xr.val().grad(&gr).unwrap().into_data().to_vec().unwrap(), "′");
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::{TestAutodiffBackend as A, TestBackend as F};
    use burn::module::Param;

    #[test]
    fn views_share_flex_buffers_with_or_without_autodiff_and_refuse_what_is_not_contiguous() {
        let d = Default::default();
        let values: Vec<f32> = (0..12).map(|i| i as f32).collect();
        let plain = from_vec::<F, 2>(values.clone(), [3, 4], &d);
        assert_eq!(view(&plain).expect("a Flex tensor").as_slice(), values.as_slice());
        // A parameter under autodiff: the view looks through the autodiff wrapper.
        let tracked = Param::from_tensor(from_vec::<A, 2>(values.clone(), [3, 4], &d)).val();
        assert_eq!(view(&tracked).expect("an autodiff tensor").as_slice(), values.as_slice());
        // A slice starting inside its buffer is still contiguous; a transpose is not.
        assert_eq!(view(&plain.clone().narrow(0, 1, 2)).expect("rows 1..3").as_slice(), &values[4..]);
        assert!(view(&plain.clone().transpose()).is_none());
        assert!(view(&plain.cast(DType::F16)).is_none());
        assert!(on_host::<F>() && on_host::<A>());
    }

    #[test]
    fn modify_writes_in_place_when_alone_and_never_changes_another_tensor() {
        let d = Default::default();
        let values: Vec<f32> = (0..12).map(|i| i as f32).collect();
        let address = |t: &Tensor<F, 2>| view(t).unwrap().as_slice().as_ptr() as usize;
        // Alone: the same buffer, changed.
        let t = from_vec::<F, 2>(values.clone(), [3, 4], &d);
        let before = address(&t);
        let t = modify(t, |v| v[5] = -1.0).ok().unwrap();
        assert_eq!(address(&t), before, "copied although nothing else held the buffer");
        assert_eq!(to_vec(t)[5], -1.0);
        // Shared with a clone: the clone keeps its values.
        let t = from_vec::<F, 2>(values.clone(), [3, 4], &d);
        let other = t.clone();
        let t = modify(t, |v| v[0] = 100.0).ok().unwrap();
        assert_eq!(to_vec(other), values);
        assert_eq!(to_vec(t)[0], 100.0);
        // A transposed view: its values in logical order, the source untouched.
        let source = from_vec::<F, 2>(values.clone(), [3, 4], &d);
        let t = modify(source.clone().transpose(), |v| v[1] = 7.5).ok().unwrap(); // [4, 3]: element (0, 1) is 4
        assert_eq!(to_vec(t)[..3], [0.0, 7.5, 8.0]);
        assert_eq!(to_vec(source), values);
        // Autodiff and other dtypes are refused, unchanged.
        let tracked = from_vec::<A, 2>(values.clone(), [3, 4], &d);
        assert_eq!(to_vec(modify(tracked, |v| v[0] = 1.0).err().unwrap()), values);
        assert!(modify(from_vec::<F, 2>(values, [3, 4], &d).cast(DType::F16), |_| ()).is_err());
    }

    #[test]
    fn values_share_a_contiguous_buffer_and_copy_a_strided_one_in_logical_order() {
        let d = Default::default();
        let values: Vec<f32> = (0..6).map(|i| i as f32).collect();
        let t = from_vec::<F, 2>(values.clone(), [2, 3], &d);
        assert_eq!(Values::of(&t).as_slice().as_ptr(), view(&t).unwrap().as_slice().as_ptr(), "shared, not copied");
        assert_eq!(Values::of(&from_vec::<A, 2>(values.clone(), [2, 3], &d)).as_slice(), values.as_slice());
        assert_eq!(Values::of(&t.transpose()).as_slice(), [0.0, 3.0, 1.0, 4.0, 2.0, 5.0]);
        assert_eq!(downcast::<u8, u8>(7), Ok(7));
        assert_eq!(downcast::<u8, u16>(7), Err(7));
    }
}
