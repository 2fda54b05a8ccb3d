//! Data parallelism over several devices through burn's own collective (`burn::collective`, an all-reduce
//! across peers registered in one process).
//!
//! Peer 0 is the training loop in `train.rs`; peers 1.. run in threads. Every peer holds a replica cloned from
//! peer 0's model (so parameter ids match, which is how the all-reduce pairs gradients) and an optimizer with the
//! same state. Each step, peer 0 draws the global batch and deals an equal share of every micro-batch to each
//! peer; each peer computes its gradients, the loss statistics and then the gradients are averaged with an
//! all-reduce, and every peer applies the same AdamW step. Replicas therefore stay identical (checked at the
//! end of the run), and the averaged gradient is the full batch's gradient: the loss is a mean over equally
//! many real tokens per share (sequences are packed, never padded).
//!
//! The one exception is H-Net's ratio loss, a product of batch means: averaged over shares it differs slightly
//! from the full batch's, as it does in the H-Net paper's own data-parallel training.

use std::sync::mpsc::{channel, Receiver, Sender};
use std::sync::Arc;
use std::thread::JoinHandle;

use anyhow::{anyhow, bail, Result};
use burn::collective::{all_reduce, finish_collective, register, reset_collective, CollectiveConfig, PeerId, ReduceOperation};
use burn::module::{AutodiffModule, Module};
use burn::optim::{GradientsAccumulator, GradientsParams};
use burn::tensor::backend::AutodiffBackend;
use burn::tensor::{ElementConversion, Tensor, TensorPrimitive};
use hnet_gpt_model::checkpoint;
use hnet_gpt_model::data::Packed;
use hnet_gpt_model::optim::AdamW;
use hnet_gpt_model::train::{batch_tensor, loss, TrainConfig};
use hnet_gpt_model::Model;

/// One peer's share of a step, before the all-reduce.
pub struct Local {
    /// Mean total loss over the peer's micro-batches (NaN when one was not finite).
    pub total: f64,
    /// Mean cross-entropy over the peer's micro-batches.
    pub ce: f64,
    /// Gradients of the mean loss, accumulated over the micro-batches (None when a loss was not finite).
    pub grads: Option<GradientsParams>,
}

/// What every peer agrees on after the all-reduce.
pub struct Reduced {
    /// Mean total loss over all peers (NaN when any peer's was not finite: then every peer skips the step).
    pub total: f64,
    /// Mean cross-entropy over all peers.
    pub ce: f64,
    /// The averaged gradients (None when the step is skipped).
    pub grads: Option<GradientsParams>,
}

/// A fault the tests inject into one step (the training loop's hooks `HNET_FAULT_NAN_STEPS`, `HNET_FAULT_INF_GRAD_STEPS`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Fault {
    None,
    /// The loss reads as NaN.
    NanLoss,
    /// The loss stays finite, but its gradient is scaled until the gradient norm overflows.
    InfGrad,
}

/// Loss and gradients over `micro` (one index list per micro-batch), averaged over the micro-batches.
pub fn local_grads<A: AutodiffBackend>(model: &Model<A>, data: &Packed, micro: &[Vec<usize>], c: &TrainConfig, device: &A::Device, fault: Fault) -> Local {
    let mut accumulator = GradientsAccumulator::<Model<A>>::new();
    let (mut total, mut ce) = (0.0, 0.0);
    let n = micro.len() as f64;
    for idx in micro {
        let parts = loss(model, batch_tensor::<A>(data, idx, device), None, c.ratio_loss_weight);
        let value = if fault == Fault::NanLoss { f64::NAN } else { parts.total.clone().into_scalar().elem::<f64>() };
        if !value.is_finite() {
            return Local { total: f64::NAN, ce: f64::NAN, grads: None };
        }
        total += value / n;
        ce += parts.ce.clone().into_scalar().elem::<f64>() / n;
        let scale = if fault == Fault::InfGrad { 1e30 } else { 1.0 };
        accumulator.accumulate(model, GradientsParams::from_grads((parts.total * scale / n).backward(), model));
    }
    Local { total, ce, grads: Some(accumulator.grads()) }
}

/// Averages one peer's share with the others' (a no-op for a single device). Every peer must call it each step.
pub fn reduce<A: AutodiffBackend>(local: Local, peer: usize, peers: usize, device: &A::Device) -> Result<Reduced> {
    if peers == 1 {
        return Ok(Reduced { total: local.total, ce: local.ce, grads: local.grads });
    }
    let id = PeerId(peer as u32);
    let stats = Tensor::<A::InnerBackend, 1>::from_floats([local.total as f32, local.ce as f32], device);
    let stats = all_reduce::<A::InnerBackend>(id, stats.into_primitive().tensor(), ReduceOperation::Mean).map_err(|e| anyhow!("all-reduce of the loss: {e:?}"))?;
    let stats = Tensor::<A::InnerBackend, 1>::from_primitive(TensorPrimitive::Float(stats)).into_data().to_vec::<f32>().map_err(|e| anyhow!("{e:?}"))?;
    let (total, ce) = (stats[0] as f64, stats[1] as f64);
    let grads = match local.grads {
        Some(g) if total.is_finite() => {
            Some(g.all_reduce::<A::InnerBackend>(id, ReduceOperation::Mean).map_err(|e| anyhow!("all-reduce of the gradients: {e:?}"))?)
        }
        _ => None,
    };
    Ok(Reduced { total, ce, grads })
}

/// Splits each micro-batch into `peers` equal, contiguous shares: `result[p]` is peer `p`'s micro-batches.
pub fn shard(micro: &[Vec<usize>], peers: usize) -> Vec<Vec<Vec<usize>>> {
    (0..peers)
        .map(|p| {
            micro
                .iter()
                .map(|idx| {
                    let k = idx.len() / peers;
                    idx[p * k..(p + 1) * k].to_vec()
                })
                .collect()
        })
        .collect()
}

enum Msg {
    Step { step: usize, lr: f64, micro: Vec<Vec<usize>> },
    Finish,
}

/// Peers 1.. of a data-parallel run.
pub struct Peers {
    senders: Vec<Sender<Msg>>,
    handles: Vec<JoinHandle<Result<Vec<u8>>>>,
}

impl Peers {
    /// Registers peer 0 (the caller, on `devices[0]`) and starts one thread per further device with a replica
    /// of `model` and a copy of `opt`'s state.
    pub fn start<A: AutodiffBackend>(devices: &[A::Device], model: &Model<A>, opt: &AdamW<A>, c: &TrainConfig, data: Arc<Packed>) -> Result<Self>
    where
        Model<A>: Send + 'static,
    {
        let n = devices.len();
        if c.batch_size % n != 0 {
            bail!("--batch-size {} must be a multiple of the number of devices ({n}): each device gets an equal share", c.batch_size);
        }
        reset_collective::<A::InnerBackend>();
        let config = CollectiveConfig::default().with_num_devices(n);
        materialize(model); // before any clone: replicas must share peer 0's weights
        let (tensors, steps) = opt.state_tensors();
        let (mut senders, mut handles) = (Vec::new(), Vec::new());
        for (peer, device) in devices.iter().enumerate().skip(1) {
            let (tx, rx) = channel();
            let replica = model.clone().fork(device);
            let (device, config, c, data) = (device.clone(), config.clone(), c.clone(), data.clone());
            let (adamw, state, steps) = (c.adamw.clone(), tensors.clone(), steps.clone());
            handles.push(std::thread::spawn(move || -> Result<Vec<u8>> {
                let run = std::panic::AssertUnwindSafe(|| -> Result<Vec<u8>> {
                    register::<A::InnerBackend>(PeerId(peer as u32), device.clone(), config).map_err(|e| anyhow!("registering: {e:?}"))?;
                    let mut opt = AdamW::<A>::new(adamw, c.groups_at(0));
                    opt.load_state(state.into_iter().collect(), &steps, &device).map_err(anyhow::Error::msg)?;
                    worker(peer, n, replica, opt, &c, &data, &device, rx)
                });
                // The other peers would wait for this one forever in the next all-reduce: a failing peer ends the
                // process (the last checkpoint stays loadable, as after any crash).
                match std::panic::catch_unwind(run) {
                    Ok(Ok(weights)) => Ok(weights),
                    Ok(Err(e)) => {
                        eprintln!("Error: training device {peer}: {e:#}");
                        std::process::exit(1);
                    }
                    Err(_) => {
                        eprintln!("Error: training device {peer} panicked");
                        std::process::exit(101);
                    }
                }
            }));
            senders.push(tx);
        }
        // Registration waits until every peer has registered, so peer 0 registers last.
        register::<A::InnerBackend>(PeerId(0), devices[0].clone(), config).map_err(|e| anyhow!("registering device 0: {e:?}"))?;
        Ok(Self { senders, handles })
    }

    /// Hands peers 1.. their shares of step `step` (`shares[p - 1]` for peer `p`).
    pub fn step(&self, step: usize, lr: f64, shares: Vec<Vec<Vec<usize>>>) -> Result<()> {
        for (tx, micro) in self.senders.iter().zip(shares) {
            tx.send(Msg::Step { step, lr, micro }).map_err(|_| anyhow!("a training device stopped"))?;
        }
        Ok(())
    }

    /// Ends the run: every peer leaves the collective, and its final weights must equal peer 0's `model`.
    pub fn finish<A: AutodiffBackend>(self, model: &Model<A>) -> Result<()> {
        for tx in &self.senders {
            let _ = tx.send(Msg::Finish);
        }
        finish_collective::<A::InnerBackend>(PeerId(0)).map_err(|e| anyhow!("leaving the collective: {e:?}"))?;
        let mine = checkpoint::to_bytes(model, &[])?;
        for (i, handle) in self.handles.into_iter().enumerate() {
            let theirs = handle.join().map_err(|_| anyhow!("device {} panicked", i + 1))??;
            if !same_weights(&theirs, &mine)? {
                bail!("the replica on device {} diverged from device 0", i + 1);
            }
        }
        Ok(())
    }
}

/// Initialises every parameter of `model` now, in module order. burn initialises parameters lazily, on first
/// use: a replica cloned before that would draw its own random weights, and the order of first use would decide
/// the weights. The training loop calls this right after building the model, with one device or several.
pub fn materialize<A: AutodiffBackend>(model: &Model<A>) {
    struct Touch;
    impl<B: burn::tensor::backend::Backend> burn::module::ModuleVisitor<B> for Touch {
        fn visit_float<const D: usize>(&mut self, param: &burn::module::Param<Tensor<B, D>>) {
            let _ = param.val();
        }
    }
    model.visit(&mut Touch);
}

/// A peer's loop: the same step as peer 0's, without checkpoints or metrics. Returns its final weights.
#[allow(clippy::too_many_arguments)]
fn worker<A: AutodiffBackend>(peer: usize, n: usize, mut model: Model<A>, mut opt: AdamW<A>, c: &TrainConfig, data: &Packed, device: &A::Device, rx: Receiver<Msg>) -> Result<Vec<u8>> {
    while let Ok(Msg::Step { step, lr, micro }) = rx.recv() {
        opt.groups = c.groups_at(step);
        let local = local_grads(&model, data, &micro, c, device, Fault::None);
        if let Reduced { grads: Some(grads), .. } = reduce::<A>(local, peer, n, device)? {
            // Every peer holds the same averaged gradients, so every peer skips a non-finite norm alike.
            model = opt.step_if_finite(model, grads, lr).0;
        }
    }
    finish_collective::<A::InnerBackend>(PeerId(peer as u32)).map_err(|e| anyhow!("leaving the collective: {e:?}"))?;
    Ok(checkpoint::to_bytes(&model.valid(), &[])?)
}

/// Whether two checkpoints hold the same tensors, bit for bit (metadata aside).
fn same_weights(a: &[u8], b: &[u8]) -> Result<bool> {
    let (a, b) = (safetensors::SafeTensors::deserialize(a)?, safetensors::SafeTensors::deserialize(b)?);
    let names = a.names();
    Ok(names.len() == b.names().len() && names.iter().all(|n| b.tensor(n).is_ok_and(|t| a.tensor(n).is_ok_and(|u| u.data() == t.data()))))
}
