//! The linear layer, [`Linear`]: burn's, with its CPU fast paths behind `forward` where no model file sees them. A
//! few rows (decoding's tokens) in host memory without autodiff multiply on every core through [`rows_times`], where
//! burn's matmul would read the weights on one core (gemm's choice for products this small); within a bf16
//! [`autocast`] scope on the host the product takes bf16 operands, with its own backward pass; everything else is
//! one matrix product over the batch's rows.

use burn::module::{Module, Param};
use burn::tensor::backend::Backend;
use burn::tensor::Tensor;

use crate::host::{self, gemm::rows_times};
use crate::nn::weights::widen;

/// Up to this many rows (tokens) a projection, and the tied LM head, take the host kernels; above it (prefill,
/// scoring), gemm uses every core by itself.
pub(crate) const FEW_ROWS: usize = 8;

/// `y = x·W + b`, burn's `Linear` with its fast paths inside: decoding's few rows on every core, the batch's rows as
/// one matrix, bf16 products inside an [`autocast`] scope. Every linear layer of every architecture is one.
///
/// Its fields are burn's `Linear`'s (`weight`, `bias`), so checkpoints name them as before; it is built from
/// burn's `LinearConfig` (`LinearConfig::new(i, o).init(device).into()`), whose initialisation it keeps.
#[derive(Module, Debug)]
pub struct Linear<B: Backend> {
    /// `[d_in, d_out]`.
    pub weight: Param<Tensor<B, 2>>,
    /// `[d_out]`.
    pub bias: Option<Param<Tensor<B, 1>>>,
}

impl<B: Backend> From<burn::nn::Linear<B>> for Linear<B> {
    fn from(l: burn::nn::Linear<B>) -> Self {
        Self { weight: l.weight, bias: l.bias }
    }
}

impl<B: Backend> Linear<B> {
    /// A layer with these weights and no bias (e.g. an identity-initialised projection).
    pub fn from_weight(weight: Tensor<B, 2>) -> Self {
        Self { weight: Param::from_tensor(weight), bias: None }
    }

    /// `[d_in, d_out]`.
    pub fn dims(&self) -> [usize; 2] {
        self.weight.dims()
    }

    /// `x·W + b` (with bf16 operands inside an [`autocast`] scope).
    ///
    /// # Shapes
    /// `x: [B, T, d_in]` → `[B, T, d_out]`.
    pub fn forward(&self, x: Tensor<B, 3>) -> Tensor<B, 3> {
        let [b, t, k] = x.dims();
        let n = self.weight.dims()[1];
        let device = x.device();
        // Every path multiplies the batch's rows as one [B·T, d_in] matrix: burn's `linear` on a 3-D input
        // multiplies batch by batch against the broadcast weight, and its backward pass then computes ∂W as B
        // separate [d_in, d_out] products and sums them — B times the weight's size written and read again per
        // layer, and products over only T rows each.
        let rows = x.reshape([b * t, k]);
        // A weight kept in f16 multiplies in f32 (a no-op for one in f32).
        let weight = widen(self.weight.val());
        let rows = if host::autocast::enabled() {
            match host::autocast::matmul(rows, weight.clone()) {
                Ok(y) => return self.add_bias(y).reshape([b, t, n]),
                Err((rows, _)) => rows,
            }
        } else {
            rows
        };
        if b * t <= FEW_ROWS && !B::ad_enabled(&device) {
            let bias = match &self.bias {
                Some(bias) => host::view(&bias.val()),
                None => Some(host::HostView::empty()),
            };
            if let (Some(wv), Some(xv), Some(bv)) = (host::view(&weight), host::view(&rows), bias) {
                return host::from_vec(rows_times(xv.as_slice(), wv.as_slice(), bv.as_slice(), k, n), [b, t, n], &device);
            }
        }
        self.add_bias(rows.matmul(weight)).reshape([b, t, n])
    }

    fn add_bias(&self, y: Tensor<B, 2>) -> Tensor<B, 2> {
        match &self.bias {
            Some(bias) => y + bias.val().unsqueeze(),
            None => y,
        }
    }
}

/// Runs `f` with every linear layer's products in bf16 (operands rounded from f32, sums in f32) when `bf16`, as
/// PyTorch's `torch.autocast` does, and as before otherwise; the previous setting comes back afterwards, even on a
/// panic. This is the model's one piece of global state: a thread-local scope, because the setting must reach every
/// linear layer of a forward pass through architectures that know nothing of it. Only CPU training (burn's Flex
/// under autodiff) honours it; other backends compute in f32 inside it.
pub fn autocast<R>(bf16: bool, f: impl FnOnce() -> R) -> R {
    host::autocast::scope(bf16, f)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::host::autocast;
    use crate::{TestAutodiffBackend as A, TestBackend};
    use burn::nn::LinearConfig;
    use burn::tensor::Distribution;

    /// burn's own layer with the same weights: the reference.
    fn burns<B: Backend>(l: &Linear<B>) -> burn::nn::Linear<B> {
        burn::nn::Linear { weight: l.weight.clone(), bias: l.bias.clone() }
    }

    #[test]
    fn the_decoding_path_is_linear_forward_with_and_without_bias() {
        let d = Default::default();
        for bias in [true, false] {
            let linear: Linear<TestBackend> = LinearConfig::new(96, 40).with_bias(bias).init(&d).into();
            let linear = Linear { bias: linear.bias.map(|b| b.map(|t| t.random_like(Distribution::Normal(0.0, 1.0)))), ..linear };
            // Few rows take the host path, many the tensor one; both must be burn's `Linear::forward`.
            for t in [1, 3, FEW_ROWS, FEW_ROWS + 1] {
                let x = Tensor::<TestBackend, 3>::random([1, t, 96], Distribution::Normal(0.0, 1.0), &d);
                linear
                    .forward(x.clone())
                    .into_data()
                    .assert_approx_eq::<f32>(&burns(&linear).forward(x).into_data(), burn::tensor::Tolerance::absolute(1e-5));
            }
        }
    }

    #[test]
    fn the_batch_as_one_matrix_has_linear_forwards_values_and_gradients() {
        use crate::TestAutodiffBackend as A;
        use burn::module::Param;
        let d = Default::default();
        let linear: Linear<A> = LinearConfig::new(7, 5).init(&d).into();
        let bias = |b: Param<Tensor<A, 1>>| b.map(|t| t.random_like(Distribution::Normal(0.0, 1.0)).require_grad());
        let linear = Linear { bias: linear.bias.map(bias), ..linear };
        let x0 = Tensor::<A, 3>::random([3, 4, 7], Distribution::Normal(0.0, 1.0), &d);
        let weights = Tensor::<A, 3>::random([3, 4, 5], Distribution::Normal(0.0, 1.0), &d);
        let mut results = Vec::new();
        for ours in [true, false] {
            let x = Param::from_tensor(x0.clone());
            let y = if ours { linear.forward(x.val()) } else { burns(&linear).forward(x.val()) };
            let g = (y.clone() * weights.clone()).sum().backward();
            let grad = |t: Tensor<A, 2>| t.grad(&g).expect("a gradient").into_data();
            let bias = linear.bias.as_ref().expect("a bias").val();
            results.push([
                y.inner().into_data(),
                x.val().grad(&g).expect("∂x").into_data(),
                grad(linear.weight.val()),
                bias.grad(&g).expect("∂b").into_data(),
            ]);
        }
        let tolerance = burn::tensor::Tolerance::absolute(1e-5);
        for ((name, ours), burns) in ["y", "∂x", "∂W", "∂b"].into_iter().zip(&results[0]).zip(&results[1]) {
            assert!(burns.iter::<f32>().any(|v| v.abs() > 1e-3), "{name} is not trivial");
            ours.assert_approx_eq::<f32>(burns, tolerance);
        }
    }

    #[test]
    fn the_scope_turns_linear_layers_to_bf16_and_back_even_after_a_panic() {
        let d = Default::default();
        let linear: Linear<A> = LinearConfig::new(24, 40).init(&d).into();
        let x = Tensor::<A, 3>::random([2, 5, 24], Distribution::Normal(0.0, 1.0), &d);
        let f32_out = linear.forward(x.clone());
        let bf16_out = autocast::scope(true, || linear.forward(x.clone()));
        assert!(!autocast::enabled());
        let diff = (bf16_out.inner() - f32_out.clone().inner()).abs().max().into_scalar();
        // bf16 operands: each product off by up to ~2⁻⁸ of itself; the bias added in f32.
        assert!(diff > 0.0 && diff < 0.05, "bf16 and f32 differ by {diff}");
        let _ = std::panic::catch_unwind(|| autocast::scope(true, || panic!("inside")));
        assert!(!autocast::enabled(), "the scope ends with the panic");
        assert!(autocast::scope(false, || autocast::scope(true, autocast::enabled)), "the inner scope decides");
    }
}
