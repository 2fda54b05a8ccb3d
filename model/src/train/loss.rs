//! The training loss: next-token cross-entropy over real targets only, plus H-Net's ratio loss weighted by α.

use burn::tensor::activation::log_softmax;
use burn::tensor::backend::Backend;
use burn::tensor::{Bool, Int, Tensor, TensorData};

use crate::arch::model::Model;
use crate::train::config::Objective;
use crate::train::data::Packed;
use crate::train::head_loss::head_cross_entropy;

/// The sequences `indices` of `packed` as a `[B, seq_len + 1]` tensor.
pub fn batch_tensor<B: Backend>(packed: &Packed, indices: &[usize], device: &B::Device) -> Tensor<B, 2, Int> {
    let width = packed.seq_len + 1;
    let mut data: Vec<i32> = Vec::with_capacity(indices.len() * (packed.seq_len + 1));
    for &i in indices {
        data.extend(packed.sequence(i).iter().map(|&t| t as i32));
    }
    Tensor::from_data(TensorData::new(data, [indices.len(), width]), device)
}

/// Mean cross-entropy of `logits` against `targets` over positions where `mask` is true, by autodiff through
/// `log_softmax`: the definition training's [`head_cross_entropy`] is tested against.
///
/// # Shapes
/// `logits: [B, T, V]`, `targets, mask: [B, T]` → `[1]`.
pub fn cross_entropy<B: Backend>(logits: Tensor<B, 3>, targets: Tensor<B, 2, Int>, mask: Tensor<B, 2, Bool>) -> Tensor<B, 1> {
    let [b, t, _] = logits.dims();
    let picked = log_softmax(logits, 2).gather(2, targets.reshape([b, t, 1])).reshape([b, t]); // [B, T]
    let m = mask.float();
    (picked * m.clone()).sum().neg() / m.sum().clamp_min(1.0)
}

/// The parts of a training loss (unread tensors).
#[derive(Debug, Clone)]
pub struct LossParts<B: Backend> {
    /// `ce + α · ratio`.
    pub total: Tensor<B, 1>,
    /// Next-token cross-entropy (nats per token).
    pub ce: Tensor<B, 1>,
    /// The ratio loss (`hnet`, `hybrid`).
    pub ratio: Option<Tensor<B, 1>>,
    /// Boundaries per sequence position (`hnet`, `hybrid`): 1 / mean chunk length in tokens.
    pub boundary_rate: Option<Tensor<B, 1>>,
}

/// The loss of a batch of `[B, L + 1]` token sequences (inputs `[:, :L]`, targets `[:, 1:]`). `mask` marks real
/// targets (`None`: all real, as with packed data).
pub fn loss<B: Backend>(
    model: &Model<B>,
    sequences: Tensor<B, 2, Int>,
    mask: Option<Tensor<B, 2, Bool>>,
    objective: Objective,
) -> LossParts<B> {
    let [b, w] = sequences.dims();
    let l = w - 1;
    let inputs = sequences.clone().narrow(1, 0, l);
    let targets = sequences.narrow(1, 1, l);
    let mask = mask.unwrap_or_else(|| Tensor::from_data(TensorData::new(vec![true; b * l], [b, l]), &inputs.device()));
    // Mixed precision reaches the linear layers through the thread's autocast scope (the head takes it directly).
    let bf16 = objective.precision == crate::train::Precision::Bf16;
    let (h, aux) = crate::nn::linear::autocast(bf16, || model.forward_hidden(inputs, mask.clone(), None));
    let c = h.dims()[2];
    let ce = head_cross_entropy(
        h.reshape([b * l, c]),
        &model.head_table().parts.iter().map(burn::module::Param::val).collect::<Vec<_>>(),
        targets.reshape([b * l]),
        mask.clone().reshape([b * l]),
        objective.precision,
    );
    let (ratio, rate) = match &aux {
        Some(aux) => {
            let m = mask.clone().float();
            let rate = (aux.routing.boundary_mask.clone().float() * m.clone()).sum() / m.sum().clamp_min(1.0);
            (model.ratio_loss(aux, mask), Some(rate))
        }
        None => (None, None),
    };
    let total = match &ratio {
        Some(r) => ce.clone() + r.clone() * objective.ratio_loss_weight,
        None => ce.clone(),
    };
    LossParts { total, ce, ratio, boundary_rate: rate }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::TestBackend;

    #[test]
    fn cross_entropy_by_hand_and_masking() {
        let device = Default::default();
        // Two positions, vocab 2: logits (0, 0) → ln 2; logits (ln 3, 0) with target 0 → ln(4/3).
        let logits = Tensor::<TestBackend, 3>::from_floats([[[0.0, 0.0], [3f32.ln(), 0.0]]], &device);
        let targets = Tensor::<TestBackend, 2, Int>::from_ints([[1, 0]], &device);
        let all = Tensor::<TestBackend, 2, Bool>::from_data(TensorData::from([[true, true]]), &device);
        let ce = cross_entropy(logits.clone(), targets.clone(), all).into_scalar();
        assert!((ce - (2f32.ln() + (4.0f32 / 3.0).ln()) / 2.0).abs() < 1e-6);
        let first = Tensor::<TestBackend, 2, Bool>::from_data(TensorData::from([[true, false]]), &device);
        assert!((cross_entropy(logits, targets, first).into_scalar() - 2f32.ln()).abs() < 1e-6);
    }
}
