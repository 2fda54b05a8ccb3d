//! burn's `Linear` with a decoding fast path: a few rows (tokens) in host memory without autodiff multiply on every
//! core through [`rows_times`], where burn's matmul would read the weights on one core (gemm's choice for
//! products this small). Within a bf16 training step on the host ([`crate::host::autocast`]) the product is
//! bf16's, with its own backward pass. Everything else is `Linear::forward` over the batch's rows as one matrix.
//! Every linear layer of every architecture goes through [`forward`].

use burn::nn::Linear;
use burn::tensor::backend::Backend;
use burn::tensor::Tensor;

use crate::host::{self, gemm::rows_times};

/// Up to this many rows (tokens) a projection, and the tied LM head, take the host kernels; above it (prefill,
/// scoring), gemm uses every core by itself.
pub(crate) const FEW_ROWS: usize = 8;

/// `linear(x)`, the same function as `linear.forward(x)` (with bf16 operands inside an autocast scope).
///
/// # Shapes
/// `x: [B, T, d_in]` → `[B, T, d_out]`.
pub fn forward<B: Backend>(linear: &Linear<B>, x: Tensor<B, 3>) -> Tensor<B, 3> {
    let [b, t, k] = x.dims();
    let n = linear.weight.dims()[1];
    let device = x.device();
    // Every path multiplies the batch's rows as one [B·T, d_in] matrix: burn's `linear` on a 3-D input multiplies
    // batch by batch against the broadcast weight, and its backward pass then computes ∂W as B separate
    // [d_in, d_out] products and sums them — B times the weight's size written and read again per layer, and
    // products over only T rows each.
    let rows = x.reshape([b * t, k]);
    let rows = if host::autocast::enabled() {
        match host::autocast::matmul(rows, linear.weight.val()) {
            Ok(y) => {
                let y = match &linear.bias {
                    Some(bias) => y + bias.val().unsqueeze(),
                    None => y,
                };
                return y.reshape([b, t, n]);
            }
            Err((rows, _)) => rows,
        }
    } else {
        rows
    };
    if b * t <= FEW_ROWS && !B::ad_enabled(&device) {
        let bias = match &linear.bias {
            Some(bias) => host::view(&bias.val()),
            None => Some(host::HostView::empty()),
        };
        if let (Some(wv), Some(xv), Some(bv)) = (host::view(&linear.weight.val()), host::view(&rows), bias) {
            return host::from_vec(rows_times(xv.as_slice(), wv.as_slice(), bv.as_slice(), k, n), [b, t, n], &device);
        }
    }
    linear.forward(rows).reshape([b, t, n])
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::TestBackend;
    use burn::nn::LinearConfig;
    use burn::tensor::Distribution;

    #[test]
    fn the_decoding_path_is_linear_forward_with_and_without_bias() {
        let d = Default::default();
        for bias in [true, false] {
            let linear: Linear<TestBackend> = LinearConfig::new(96, 40).with_bias(bias).init(&d);
            let linear = Linear { bias: linear.bias.map(|b| b.map(|t| t.random_like(Distribution::Normal(0.0, 1.0)))), ..linear };
            // Few rows take the host path, many the tensor one; both must be `Linear::forward`.
            for t in [1, 3, FEW_ROWS, FEW_ROWS + 1] {
                let x = Tensor::<TestBackend, 3>::random([1, t, 96], Distribution::Normal(0.0, 1.0), &d);
                forward(&linear, x.clone())
                    .into_data()
                    .assert_approx_eq::<f32>(&linear.forward(x).into_data(), burn::tensor::Tolerance::absolute(1e-5));
            }
        }
    }

    #[test]
    fn the_batch_as_one_matrix_has_linear_forwards_values_and_gradients() {
        use crate::TestAutodiffBackend as A;
        use burn::module::Param;
        let d = Default::default();
        let linear: Linear<A> = LinearConfig::new(7, 5).init(&d);
        let bias = |b: Param<Tensor<A, 1>>| b.map(|t| t.random_like(Distribution::Normal(0.0, 1.0)).require_grad());
        let linear = Linear { bias: linear.bias.map(bias), ..linear };
        let x0 = Tensor::<A, 3>::random([3, 4, 7], Distribution::Normal(0.0, 1.0), &d);
        let weights = Tensor::<A, 3>::random([3, 4, 5], Distribution::Normal(0.0, 1.0), &d);
        let mut results = Vec::new();
        for ours in [true, false] {
            let x = Param::from_tensor(x0.clone());
            let y = if ours { forward(&linear, x.val()) } else { linear.forward(x.val()) };
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
}
