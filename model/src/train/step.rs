//! The one training step, shared by every driver: the CLI's loop, its data-parallel peers and the browser's
//! fine-tune panel (nanoGPT's loop body, burn's custom-training-loop shape).
//!
//! A step is two phases, so that data parallelism can average gradients in between:
//! 1. [`backward_pass`]: over the micro-batches, loss → backward, accumulating gradients of the mean loss; a
//!    non-finite loss ends the phase with no gradients;
//! 2. [`optimizer_step`]: read the global gradient norm; when it is not finite, skip (weights and moments stay as
//!    they were); otherwise clip and apply AdamW.
//!
//! [`train_step`] is both phases. Everything is `async` because WebGPU reads must be awaited; `phase` is called
//! between phases with its name, so the browser can yield to the page (natively it does nothing, and the
//! `_blocking` versions drive the futures). Parameter groups (learning-rate multipliers, freezing) are the
//! optimizer's, set by the caller for the step ([`TrainConfig::groups_at`](crate::train::config::TrainConfig::groups_at)).

use std::future::Future;

use burn::optim::{GradientsAccumulator, GradientsParams};
use burn::tensor::backend::{AutodiffBackend, Backend};
use burn::tensor::Tensor;

use crate::arch::model::Model;
use crate::train::config::Objective;
use crate::train::data::Packed;
use crate::train::loss::{batch_tensor, loss};
use crate::train::optim::AdamW;

/// A fault injected into one step, for the training loop's tests: public only with the `fault-injection` feature
/// (which the shipped binaries do not enable), so that no release build has a way to corrupt a step.
#[cfg(feature = "fault-injection")]
pub use injected::Fault;
#[cfg(not(feature = "fault-injection"))]
pub(crate) use injected::Fault;

mod injected {
    /// What to corrupt.
    #[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
    #[cfg_attr(not(feature = "fault-injection"), allow(dead_code))]
    pub enum Fault {
        /// None.
        #[default]
        None,
        /// The loss reads as NaN.
        NanLoss,
        /// The loss stays finite, but its gradient is scaled until the gradient norm overflows.
        InfGrad,
    }
}

/// The outcome of phase 1 on one device.
pub struct Gradients {
    /// Mean total loss over the micro-batches (NaN when one was not finite).
    pub loss: f64,
    /// Mean cross-entropy over the micro-batches.
    pub ce: f64,
    /// Gradients of the mean loss (None when a loss was not finite).
    pub grads: Option<GradientsParams>,
}

/// Why a step changed nothing.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum Skip {
    /// The loss was NaN or infinite.
    NonFiniteLoss,
    /// The loss was finite, the gradient norm was not (this value).
    NonFiniteGradNorm(f64),
}

impl std::fmt::Display for Skip {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Skip::NonFiniteLoss => write!(f, "non-finite loss"),
            Skip::NonFiniteGradNorm(n) => write!(f, "non-finite gradient norm ({n})"),
        }
    }
}

/// What one step did.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum StepOutcome {
    /// The weights were updated.
    Applied {
        /// Mean total loss before the update.
        loss: f64,
        /// Mean cross-entropy before the update.
        ce: f64,
        /// The global gradient norm before clipping (None when nothing trains).
        grad_norm: Option<f64>,
    },
    /// Nothing changed.
    Skipped(Skip),
}

/// A tensor could not be read back.
#[derive(Debug, thiserror::Error)]
#[error("reading {what} back from the device: {reason}")]
pub struct ReadError {
    what: &'static str,
    reason: String,
}

async fn read_scalar<B: Backend>(t: Tensor<B, 1>, what: &'static str) -> Result<f64, ReadError> {
    let data = t.into_data_async().await.map_err(|e| ReadError { what, reason: format!("{e:?}") })?;
    let values = data.convert::<f32>().to_vec::<f32>().map_err(|e| ReadError { what, reason: format!("{e:?}") })?;
    values.first().map(|&v| v as f64).ok_or(ReadError { what, reason: "empty tensor".into() })
}

/// Phase 1: loss and gradients over `micro` (one list of sequence indices of `data` per micro-batch), averaged
/// over the micro-batches.
pub async fn backward_pass<A, F, Fut>(
    model: &Model<A>,
    data: &Packed,
    micro: &[Vec<usize>],
    objective: Objective,
    phase: &mut F,
) -> Result<Gradients, ReadError>
where
    A: AutodiffBackend,
    F: FnMut(&'static str) -> Fut,
    Fut: Future<Output = ()>,
{
    backward_pass_with(model, data, micro, objective, Fault::None, phase).await
}

/// [`backward_pass`] with a [`Fault`] injected.
pub(crate) async fn backward_pass_with<A, F, Fut>(
    model: &Model<A>,
    data: &Packed,
    micro: &[Vec<usize>],
    objective: Objective,
    fault: Fault,
    phase: &mut F,
) -> Result<Gradients, ReadError>
where
    A: AutodiffBackend,
    F: FnMut(&'static str) -> Fut,
    Fut: Future<Output = ()>,
{
    let device = model.device();
    let mut accumulator = GradientsAccumulator::<Model<A>>::new();
    let (mut total, mut ce) = (0.0, 0.0);
    let n = micro.len() as f64;
    for idx in micro {
        phase("forward").await;
        let parts = loss(model, batch_tensor::<A>(data, idx, &device), None, objective);
        let value = match fault {
            Fault::NanLoss => f64::NAN,
            _ => read_scalar(parts.total.clone(), "the loss").await?,
        };
        if !value.is_finite() {
            return Ok(Gradients { loss: f64::NAN, ce: f64::NAN, grads: None });
        }
        total += value / n;
        ce += read_scalar(parts.ce.clone(), "the cross-entropy").await? / n;
        phase("backward").await;
        let scale = if fault == Fault::InfGrad { 1e30 } else { 1.0 };
        accumulator.accumulate(model, GradientsParams::from_grads((parts.total * scale / n).backward(), model));
    }
    Ok(Gradients { loss: total, ce, grads: Some(accumulator.grads()) })
}

/// Phase 2: the optimizer step on (possibly all-reduced) gradients, or a skip when the loss or the gradient norm
/// is not finite.
pub async fn optimizer_step<A, F, Fut>(
    model: Model<A>,
    opt: &mut AdamW<A>,
    g: Gradients,
    lr: f64,
    phase: &mut F,
) -> Result<(Model<A>, StepOutcome), ReadError>
where
    A: AutodiffBackend,
    F: FnMut(&'static str) -> Fut,
    Fut: Future<Output = ()>,
{
    let Some(grads) = g.grads.filter(|_| g.loss.is_finite()) else {
        return Ok((model, StepOutcome::Skipped(Skip::NonFiniteLoss)));
    };
    phase("optimizer").await;
    let norm = opt.grad_norm(&model, &grads);
    let grad_norm = match &norm {
        Some(n) => Some(read_scalar(n.clone(), "the gradient norm").await?),
        None => None,
    };
    if let Some(n) = grad_norm.filter(|n| !n.is_finite()) {
        return Ok((model, StepOutcome::Skipped(Skip::NonFiniteGradNorm(n))));
    }
    let model = opt.apply(model, grads, lr, norm);
    Ok((model, StepOutcome::Applied { loss: g.loss, ce: g.ce, grad_norm }))
}

/// One whole step on one device: [`backward_pass`], then [`optimizer_step`].
pub async fn train_step<A, F, Fut>(
    model: Model<A>,
    opt: &mut AdamW<A>,
    data: &Packed,
    micro: &[Vec<usize>],
    lr: f64,
    objective: Objective,
    phase: &mut F,
) -> Result<(Model<A>, StepOutcome), ReadError>
where
    A: AutodiffBackend,
    F: FnMut(&'static str) -> Fut,
    Fut: Future<Output = ()>,
{
    let g = backward_pass(&model, data, micro, objective, phase).await?;
    optimizer_step(model, opt, g, lr, phase).await
}

/// Native drivers: the phases need no yielding.
#[cfg(not(target_arch = "wasm32"))]
pub mod blocking {
    use super::*;

    fn no_yield(_: &'static str) -> std::future::Ready<()> {
        std::future::ready(())
    }

    /// [`super::backward_pass`], driven to completion.
    pub fn backward_pass<A: AutodiffBackend>(
        model: &Model<A>,
        data: &Packed,
        micro: &[Vec<usize>],
        objective: Objective,
    ) -> Result<Gradients, ReadError> {
        backward_pass_with_fault(model, data, micro, objective, Fault::None)
    }

    /// [`backward_pass`] with a [`Fault`] injected (tests of the training loop).
    #[cfg_attr(not(feature = "fault-injection"), allow(dead_code))]
    pub(super) fn backward_pass_with_fault<A: AutodiffBackend>(
        model: &Model<A>,
        data: &Packed,
        micro: &[Vec<usize>],
        objective: Objective,
        fault: Fault,
    ) -> Result<Gradients, ReadError> {
        futures_lite::future::block_on(super::backward_pass_with(model, data, micro, objective, fault, &mut no_yield))
    }

    /// [`super::optimizer_step`], driven to completion.
    pub fn optimizer_step<A: AutodiffBackend>(
        model: Model<A>,
        opt: &mut AdamW<A>,
        g: Gradients,
        lr: f64,
    ) -> Result<(Model<A>, StepOutcome), ReadError> {
        futures_lite::future::block_on(super::optimizer_step(model, opt, g, lr, &mut no_yield))
    }

    /// [`super::train_step`], driven to completion.
    pub fn train_step<A: AutodiffBackend>(
        model: Model<A>,
        opt: &mut AdamW<A>,
        data: &Packed,
        micro: &[Vec<usize>],
        lr: f64,
        objective: Objective,
    ) -> Result<(Model<A>, StepOutcome), ReadError> {
        let g = backward_pass(&model, data, micro, objective)?;
        optimizer_step(model, opt, g, lr)
    }

    /// The blocking steps with a fault injected: only in builds with the `fault-injection` feature.
    #[cfg(feature = "fault-injection")]
    pub mod with_fault {
        use super::*;

        /// [`super::backward_pass`] with `fault`.
        pub fn backward_pass<A: AutodiffBackend>(
            model: &Model<A>,
            data: &Packed,
            micro: &[Vec<usize>],
            objective: Objective,
            fault: Fault,
        ) -> Result<Gradients, ReadError> {
            backward_pass_with_fault(model, data, micro, objective, fault)
        }

        /// [`super::train_step`] with `fault`.
        pub fn train_step<A: AutodiffBackend>(
            model: Model<A>,
            opt: &mut AdamW<A>,
            data: &Packed,
            micro: &[Vec<usize>],
            lr: f64,
            objective: Objective,
            fault: Fault,
        ) -> Result<(Model<A>, StepOutcome), ReadError> {
            let g = backward_pass_with_fault(&model, data, micro, objective, fault)?;
            optimizer_step(model, opt, g, lr)
        }
    }
}

#[cfg(test)]
mod tests {
    use burn::module::AutodiffModule;

    use super::blocking::train_step;
    use super::*;
    use crate::arch::config::{Arch, ModelConfig};
    use crate::tokenizer::EOS_ID;
    use crate::train::optim::{AdamWConfig, ParamGroups};
    use crate::TestAutodiffBackend as AD;

    const OBJECTIVE: Objective = Objective { ratio_loss_weight: 0.03, precision: crate::train::Precision::F32 };

    fn setup() -> (Model<AD>, AdamW<AD>, Packed) {
        let model = Model::<AD>::init(&ModelConfig::preset(Arch::Hnet, "tiny").unwrap(), &Default::default()).unwrap();
        model.materialize();
        let opt = AdamW::new(AdamWConfig::default(), ParamGroups::default());
        let docs = (0..8u32).map(|i| ((0..40).map(|j| (i * 7 + j) % 500).collect::<Vec<u32>>(), 40));
        let data = Packed::new(docs, 16, EOS_ID);
        assert_eq!(data.stream.to_vec().last(), Some(&EOS_ID));
        (model, opt, data)
    }

    /// Every weight's bytes, by name (the checkpoint's header order is not fixed, so not the raw file).
    fn weights(m: &Model<AD>) -> std::collections::BTreeMap<String, Vec<u8>> {
        let bytes = crate::io::checkpoint::to_bytes(&m.valid(), &[]).unwrap();
        let st = safetensors::SafeTensors::deserialize(&bytes).unwrap();
        st.tensors().into_iter().map(|(n, v)| (n, v.data().to_vec())).collect()
    }

    #[test]
    fn a_step_trains_and_accumulation_averages_micro_batches() {
        let (model, mut opt, data) = setup();
        let before = weights(&model);
        let pass = |micro: &[Vec<usize>]| super::blocking::backward_pass(&model, &data, micro, OBJECTIVE).unwrap().loss;
        let (a, b, both) = (pass(&[vec![0, 1]]), pass(&[vec![2, 3]]), pass(&[vec![0, 1], vec![2, 3]]));
        assert!((both - (a + b) / 2.0).abs() < 1e-5, "{both} is not the mean of {a} and {b}");
        let (model, outcome) = train_step(model, &mut opt, &data, &[vec![0, 1], vec![2, 3]], 1e-3, OBJECTIVE).unwrap();
        let StepOutcome::Applied { loss, ce, grad_norm } = outcome else { panic!("{outcome:?}") };
        assert!(loss.is_finite() && ce.is_finite() && loss >= ce - 1e-6, "{loss} {ce}");
        assert!(grad_norm.unwrap() > 0.0);
        assert!(weights(&model) != before, "the step changed nothing");
    }

    #[test]
    fn a_loaded_inference_model_made_trainable_steps_as_one_built_for_training_and_is_left_as_it_was() {
        type Inner = <AD as AutodiffBackend>::InnerBackend;
        let (model, _, data) = setup();
        let bytes = crate::io::checkpoint::to_bytes(&model.valid(), &[]).unwrap();
        let inference = crate::io::checkpoint::from_bytes::<Inner>(&bytes, "test", &Default::default()).unwrap();
        let step = |m: Model<AD>| {
            let mut opt = AdamW::new(AdamWConfig::default(), ParamGroups::default());
            let (m, outcome) = train_step(m, &mut opt, &data, &[vec![0, 1]], 1e-3, OBJECTIVE).unwrap();
            let StepOutcome::Applied { loss, .. } = outcome else { panic!("{outcome:?}") };
            (loss, weights(&m))
        };
        let (loss, tuned) = step(model);
        let (loss_shared, tuned_shared) = step(Model::<AD>::trainable(inference.clone()));
        assert_eq!(loss, loss_shared);
        assert!(tuned == tuned_shared, "the same step from the same weights gave other weights");
        assert_eq!(crate::io::checkpoint::to_bytes(&inference, &[]).unwrap(), bytes, "the step wrote into the shared tensors");
    }

    /// A token table held in parts (a GPU whose buffers are smaller than it) trains as the table in one part: from
    /// the same weights, the same losses over three steps and, stored joined, the same weights.
    #[test]
    fn a_table_in_parts_trains_as_the_table_in_one_part() {
        type Inner = <AD as AutodiffBackend>::InnerBackend;
        use crate::io::checkpoint::copy_to;
        use crate::nn::embedding::with_part_bytes;
        let (_, _, data) = setup();
        let device = Default::default();
        for arch in Arch::ALL {
            let model = Model::<Inner>::init(&ModelConfig::preset(arch, "tiny").unwrap(), &device).unwrap();
            model.materialize();
            // Parts of 12,000 rows: the 50,257-row table in five.
            let limit = (12_000 * 4 * model.config.decoder.n_embd) as u64;
            let whole = Model::<AD>::trainable(copy_to::<Inner, Inner>(&model, &device).unwrap());
            let parts = Model::<AD>::trainable(with_part_bytes(limit, || copy_to::<Inner, Inner>(&model, &device)).unwrap());
            assert_eq!(parts.embedding().parts.len(), 5);
            let train = |mut m: Model<AD>| {
                let mut opt = AdamW::new(AdamWConfig::default(), ParamGroups::default());
                let mut losses = Vec::new();
                for step in 0..3 {
                    let (next, outcome) = train_step(m, &mut opt, &data, &[vec![step, step + 1]], 1e-3, OBJECTIVE).unwrap();
                    let StepOutcome::Applied { loss, .. } = outcome else { panic!("{arch:?}: {outcome:?}") };
                    (m, losses) = (next, [losses, vec![loss]].concat());
                }
                (losses, weights(&m))
            };
            let ((whole_losses, whole), (parts_losses, parts)) = (train(whole), train(parts));
            for (a, b) in whole_losses.iter().zip(&parts_losses) {
                assert!((a - b).abs() <= 1e-5 * a.abs(), "{arch:?}: losses in one part {whole_losses:?}, in parts {parts_losses:?}");
            }
            assert_eq!(whole.keys().collect::<Vec<_>>(), parts.keys().collect::<Vec<_>>());
            for (name, w) in &whole {
                let values = |b: &[u8]| b.chunks(4).map(|c| f32::from_le_bytes(c.try_into().unwrap())).collect::<Vec<_>>();
                let (a, b) = (values(w), values(&parts[name]));
                let diff = a.iter().zip(&b).map(|(x, y)| (x - y).abs()).fold(0.0, f32::max);
                assert!(diff <= 1e-5, "{arch:?} {name}: {diff}");
            }
        }
    }

    #[test]
    fn a_bf16_step_stays_within_bf16_rounding_of_the_f32_step_for_every_architecture() {
        let (_, _, data) = setup();
        for arch in Arch::ALL {
            let model = Model::<AD>::init(&ModelConfig::preset(arch, "tiny").unwrap(), &Default::default()).unwrap();
            model.materialize();
            let step = |precision| {
                let mut opt = AdamW::new(AdamWConfig::default(), ParamGroups::default());
                let objective = Objective { precision, ..OBJECTIVE };
                match train_step(model.clone(), &mut opt, &data, &[vec![0, 1, 2, 3]], 1e-3, objective).unwrap().1 {
                    StepOutcome::Applied { ce, grad_norm, .. } => (ce, grad_norm.unwrap()),
                    other => panic!("{arch:?}: {other:?}"),
                }
            };
            let ((ce, norm), (ce16, norm16)) = (step(crate::train::Precision::F32), step(crate::train::Precision::Bf16));
            // Operands with 8 significant bits. At initialisation the logits are tiny beside the loss (≈ ln V), so the
            // loss moves by 0 to ~100 of f32's steps at 10.8 (measured: up to 1.5·10⁻⁴ nats) and can come out equal;
            // the gradient's norm sums millions of products rounded differently and moves by ~10⁻⁵ of itself (20 f32
            // steps at the least in 36 measured steps): that bf16 ran at all is read there.
            assert!((ce - ce16).abs() < 0.02, "{arch:?}: cross-entropy {ce} in f32, {ce16} in bf16");
            assert!(norm != norm16 && (norm - norm16).abs() < 0.05 * norm, "{arch:?}: gradient norm {norm} in f32, {norm16} in bf16");
        }
    }

    #[test]
    fn non_finite_losses_and_gradient_norms_skip_the_step_and_change_nothing() {
        for (fault, expect) in [(Fault::NanLoss, Skip::NonFiniteLoss), (Fault::InfGrad, Skip::NonFiniteGradNorm(f64::INFINITY))] {
            let (model, mut opt, data) = setup();
            let before = weights(&model);
            assert!(weights(&model) == before, "reading the weights twice differs");
            let g = super::blocking::backward_pass_with_fault(&model, &data, &[vec![0, 1]], OBJECTIVE, fault).unwrap();
            let (model, outcome) = super::blocking::optimizer_step(model, &mut opt, g, 1e-3).unwrap();
            match (outcome, expect) {
                (StepOutcome::Skipped(Skip::NonFiniteGradNorm(n)), Skip::NonFiniteGradNorm(_)) => assert!(!n.is_finite()),
                (StepOutcome::Skipped(s), e) => assert_eq!(s, e),
                other => panic!("{fault:?}: {other:?}"),
            }
            assert!(weights(&model) == before, "{fault:?} changed the weights");
            assert!(opt.state_tensors().1.is_empty(), "{fault:?} touched the moments");
        }
    }
}
