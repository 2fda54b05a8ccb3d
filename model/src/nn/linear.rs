//! burn's `Linear` with a decoding fast path: a few rows (tokens) in host memory without autodiff multiply on every
//! core through [`rows_times`], where burn's matmul would read the weights on one core (gemm's choice for
//! products this small). Within a bf16 training step on the host ([`crate::host::autocast`]) the product is
//! bf16's, with its own backward pass. Everything else is `Linear::forward`.

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
    let device = x.device();
    let x = if host::autocast::enabled() {
        let w = linear.weight.val();
        let n = w.dims()[1];
        match host::autocast::matmul(x.reshape([b * t, k]), w) {
            Ok(y) => {
                let y = y.reshape([b, t, n]);
                return match &linear.bias {
                    Some(bias) => y + bias.val().unsqueeze(),
                    None => y,
                };
            }
            Err((x, _)) => x.reshape([b, t, k]),
        }
    } else {
        x
    };
    if b * t <= FEW_ROWS && !B::ad_enabled(&device) {
        let w = linear.weight.val();
        let n = w.dims()[1];
        let bias = match &linear.bias {
            Some(bias) => host::view(&bias.val()),
            None => Some(host::HostView::empty()),
        };
        if let (Some(wv), Some(xv), Some(bv)) = (host::view(&w), host::view(&x), bias) {
            return host::from_vec(rows_times(xv.as_slice(), wv.as_slice(), bv.as_slice(), k, n), [b, t, n], &device);
        }
    }
    linear.forward(x)
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
}
