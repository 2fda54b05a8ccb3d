//! Mixed precision for the linear layers of a training step on the host (`--precision bf16`), the way PyTorch's
//! `torch.autocast` does it: within [`scope`], every `x·W` of a linear layer ([`crate::nn::linear::Linear`])
//! multiplies bf16 operands, rounded from the f32 activations and weights, with f32 sums — on AMX through
//! [`bf16::matmul`] — and so do its two products in the backward pass (`∂x = ∂y·Wᵀ`, `∂W = xᵀ·∂y`). Weights,
//! gradients, biases, norms, attention and the optimiser stay f32.
//!
//! Autodiff would differentiate whatever ops the forward pass ran, so a product computed outside burn gets its own
//! backward op: [`matmul`] registers a node in burn's autodiff graph (burn-autodiff's `Backward` trait, as its own
//! `float_matmul` does) whose backward pass runs the two bf16 products. It applies to burn's Flex backend under
//! autodiff — the CPU training backend — and hands anything else back to the caller.

use std::any::TypeId;
use std::cell::Cell;

use burn::backend::autodiff::checkpoint::base::Checkpointer;
use burn::backend::autodiff::checkpoint::strategy::NoCheckpointing;
use burn::backend::autodiff::grads::Gradients;
use burn::backend::autodiff::ops::{binary, Backward, Ops, OpsKind};
use burn::backend::flex::{Flex, FlexTensor};
use burn::backend::Autodiff;
use burn::tensor::backend::{Backend, BackendTypes};
use burn::tensor::{DType, Tensor, TensorPrimitive};

use crate::host::gemm::Matrix;
use crate::host::{self, bf16, downcast, Values};

thread_local! {
    static ON: Cell<bool> = const { Cell::new(false) };
}

/// Runs `f` with this thread's linear layers in bf16 when `on` (and as they were otherwise), restoring the previous
/// setting afterwards, even if `f` panics.
pub fn scope<R>(on: bool, f: impl FnOnce() -> R) -> R {
    struct Restore(bool);
    impl Drop for Restore {
        fn drop(&mut self) {
            ON.with(|c| c.set(self.0));
        }
    }
    let _restore = Restore(ON.with(|c| c.replace(on)));
    f()
}

/// Whether this thread is inside a bf16 [`scope`].
pub fn enabled() -> bool {
    ON.with(|c| c.get())
}

/// The autodiff tensor type of CPU training.
type Tracked = <Autodiff<Flex> as BackendTypes>::FloatTensorPrimitive;

/// `x · w` with bf16 operands and f32 sums, its backward pass likewise, when `B` is Flex under autodiff and both
/// tensors are f32; otherwise both tensors come back untouched.
///
/// # Shapes
/// `x: [N, K]`, `w: [K, M]` → `[N, M]`.
pub fn matmul<B: Backend>(x: Tensor<B, 2>, w: Tensor<B, 2>) -> Result<Tensor<B, 2>, (Tensor<B, 2>, Tensor<B, 2>)> {
    if TypeId::of::<B>() != TypeId::of::<Autodiff<Flex>>() || x.dtype() != DType::F32 || w.dtype() != DType::F32 {
        return Err((x, w));
    }
    let (Some(xt), Some(wt)) = (tracked(x), tracked(w)) else {
        unreachable!("B is Autodiff<Flex> (checked above), whose float primitive is Tracked")
    };
    let Ok(primitive) = downcast::<Tracked, B::FloatTensorPrimitive>(forward(xt, wt)) else { unreachable!("B is Autodiff<Flex>") };
    Ok(Tensor::from_primitive(TensorPrimitive::Float(primitive)))
}

/// `t`'s autodiff primitive, when `B` is Autodiff<Flex>.
fn tracked<B: Backend, const D: usize>(t: Tensor<B, D>) -> Option<Tracked> {
    let TensorPrimitive::Float(primitive) = t.into_primitive() else { return None };
    downcast(primitive).ok()
}

/// The product's node in the graph; its state is the two operands (Flex tensors share their buffers: no copy).
#[derive(Debug)]
struct MatmulBf16;

impl Backward<Flex, 2> for MatmulBf16 {
    type State = (FlexTensor, FlexTensor);

    fn backward(self, ops: Ops<Self::State, 2>, grads: &mut Gradients, _: &mut Checkpointer) {
        let (x, w) = ops.state;
        binary::<Flex, _, _>(
            ops.parents,
            ops.node,
            grads,
            // ∂x = ∂y · Wᵀ
            |g| product(&g, false, &w, true),
            // ∂W = xᵀ · ∂y
            |g| product(&x, true, &g, false),
        );
    }
}

fn forward(x: Tracked, w: Tracked) -> Tracked {
    let out = product(&x.primitive, false, &w.primitive, false);
    match MatmulBf16.prepare::<NoCheckpointing>([x.node.clone(), w.node.clone()]).compute_bound().stateful() {
        OpsKind::Tracked(prep) => prep.finish((x.primitive, w.primitive), out),
        OpsKind::UnTracked(prep) => prep.finish(out),
    }
}

/// `a · b` of two 2-D Flex tensors, each optionally transposed (a view: no copy), through [`bf16::matmul`].
fn product(a: &FlexTensor, a_t: bool, b: &FlexTensor, b_t: bool) -> FlexTensor {
    let tensor = |t: &FlexTensor| Tensor::<Flex, 2>::from_primitive(TensorPrimitive::Float(t.clone()));
    let (a, b) = (tensor(a), tensor(b));
    let (av, bv) = (Values::of(&a), Values::of(&b));
    let (am, bm) = (matrix(&av, a.dims(), a_t), matrix(&bv, b.dims(), b_t));
    let (rows, cols) = (am.rows(), bm.cols());
    host::from_vec::<Flex, 2>(bf16::matmul(am, bm), [rows, cols], &Default::default()).into_primitive().tensor()
}

/// `values` as a `[rows, cols]` row-major matrix, or its transpose.
fn matrix(values: &Values, [rows, cols]: [usize; 2], transposed: bool) -> Matrix<'_> {
    let m = Matrix::row_major(values.as_slice(), rows, cols);
    if transposed {
        m.t()
    } else {
        m
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::{TestAutodiffBackend as A, TestBackend};
    use burn::module::Param;
    use burn::tensor::Distribution;

    /// Values rounded to bf16: what the bf16 products see, so that f32 autodiff over them is the reference.
    fn rounded<B: Backend, const D: usize>(t: Tensor<B, D>) -> Tensor<B, D> {
        let dims = t.dims();
        let values: Vec<f32> = host::to_vec(t.clone()).into_iter().map(|x| bf16::widen(bf16::round(x))).collect();
        host::from_vec(values, dims, &t.device())
    }

    fn max_diff<const D: usize>(a: Tensor<TestBackend, D>, b: Tensor<TestBackend, D>) -> f32 {
        (a - b).abs().max().into_scalar()
    }

    #[test]
    fn the_product_and_both_gradients_match_autodiff_over_the_rounded_operands() {
        let d = Default::default();
        for (n, k, m) in [(37, 50, 33), (64, 96, 128), (1, 3, 2)] {
            let x0 = rounded(Tensor::<TestBackend, 2>::random([n, k], Distribution::Normal(0.0, 1.0), &d));
            let w0 = rounded(Tensor::<TestBackend, 2>::random([k, m], Distribution::Normal(0.0, 0.5), &d));
            // A fixed upstream gradient, so that ∂y is itself a bf16 value and the reference sees what the op sees.
            let up = rounded(Tensor::<TestBackend, 2>::random([n, m], Distribution::Normal(0.0, 1.0), &d));
            let run = |bf16: bool| {
                let (x, w) = (
                    Param::from_tensor(Tensor::<A, 2>::from_inner(x0.clone())),
                    Param::from_tensor(Tensor::<A, 2>::from_inner(w0.clone())),
                );
                let y = if bf16 {
                    let Ok(y) = matmul(x.val(), w.val()) else { panic!("Flex under autodiff takes the bf16 path") };
                    y
                } else {
                    x.val().matmul(w.val())
                };
                let g = (y.clone() * Tensor::from_inner(up.clone())).sum().backward();
                (y.inner(), x.val().grad(&g).expect("∂x"), w.val().grad(&g).expect("∂W"))
            };
            let ((y, gx, gw), (y_ref, gx_ref, gw_ref)) = (run(true), run(false));
            // Exact products of bf16 values summed in f32: the same up to the order of f32 additions.
            let tol = |t: &Tensor<TestBackend, 2>, depth: usize| 1e-6 * depth as f32 * (1.0 + t.clone().abs().max().into_scalar());
            assert!(max_diff(y.clone(), y_ref.clone()) <= tol(&y_ref, k), "{n}×{k}·{m}: y");
            assert!(max_diff(gx, gx_ref.clone()) <= tol(&gx_ref, m), "{n}×{k}·{m}: ∂x");
            assert!(max_diff(gw, gw_ref.clone()) <= tol(&gw_ref, n), "{n}×{k}·{m}: ∂W");
        }
    }

    #[test]
    fn a_frozen_weight_gets_no_gradient_and_the_input_still_does() {
        let d = Default::default();
        let x = Param::from_tensor(Tensor::<A, 2>::random([5, 4], Distribution::Normal(0.0, 1.0), &d));
        let w = Param::from_tensor(Tensor::<A, 2>::random([4, 3], Distribution::Normal(0.0, 1.0), &d)).set_require_grad(false);
        let Ok(y) = matmul(x.val(), w.val()) else { panic!("Flex under autodiff takes the bf16 path") };
        let g = y.sum().backward();
        assert!(w.val().grad(&g).is_none());
        assert_eq!(x.val().grad(&g).expect("∂x").dims(), [5, 4]);
    }

    #[test]
    fn other_backends_and_dtypes_are_handed_back() {
        let d = Default::default();
        let (x, w) = (Tensor::<TestBackend, 2>::ones([2, 3], &d), Tensor::<TestBackend, 2>::ones([3, 4], &d));
        assert!(matmul(x, w).is_err(), "Flex without autodiff: nothing to differentiate, f32 as usual");
        let (x, w) = (Tensor::<A, 2>::ones([2, 3], &d).cast(DType::F16), Tensor::<A, 2>::ones([3, 4], &d));
        assert!(matmul(x, w).is_err(), "an f16 operand");
    }
}
