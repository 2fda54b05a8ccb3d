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
use burn::tensor::backend::AutodiffBackend;
use burn::tensor::{Tensor, TensorPrimitive};
use hnet_gpt_model::io::checkpoint;
use hnet_gpt_model::train::data::Packed;
use hnet_gpt_model::train::optim::AdamW;
use hnet_gpt_model::train::step::{self, Gradients};
use hnet_gpt_model::train::TrainConfig;
use hnet_gpt_model::Model;

/// Averages one peer's gradients and loss with the others' (a no-op for a single device). Every peer must call it
/// each step; when any peer's loss was not finite, every peer gets none and skips the step alike.
pub fn reduce<A: AutodiffBackend>(local: Gradients, peer: usize, peers: usize, device: &A::Device) -> Result<Gradients> {
    if peers == 1 {
        return Ok(local);
    }
    let id = PeerId(peer as u32);
    let stats = Tensor::<A::InnerBackend, 1>::from_floats([local.loss as f32, local.ce as f32], device);
    let stats = all_reduce::<A::InnerBackend>(id, stats.into_primitive().tensor(), ReduceOperation::Mean)
        .map_err(|e| anyhow!("all-reduce of the loss: {e:?}"))?;
    let stats = Tensor::<A::InnerBackend, 1>::from_primitive(TensorPrimitive::Float(stats))
        .into_data()
        .to_vec::<f32>()
        .map_err(|e| anyhow!("{e:?}"))?;
    let (loss, ce) = (stats[0] as f64, stats[1] as f64);
    let grads = match local.grads {
        Some(g) if loss.is_finite() => {
            Some(g.all_reduce::<A::InnerBackend>(id, ReduceOperation::Mean).map_err(|e| anyhow!("all-reduce of the gradients: {e:?}"))?)
        }
        _ => None,
    };
    Ok(Gradients { loss, ce, grads })
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
    pub fn start<A: AutodiffBackend>(
        devices: &[A::Device],
        model: &Model<A>,
        opt: &AdamW<A>,
        c: &TrainConfig,
        data: Arc<Packed>,
    ) -> Result<Self>
    where
        Model<A>: Send + 'static,
    {
        let n = devices.len();
        if !c.batch_size.is_multiple_of(n) {
            bail!("--batch-size {} must be a multiple of the number of devices ({n}): each device gets an equal share", c.batch_size);
        }
        reset_collective::<A::InnerBackend>();
        let config = CollectiveConfig::default().with_num_devices(n);
        model.materialize(); // before any clone: replicas must share peer 0's weights
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
                    opt.load_state(state.into_iter().collect(), &steps, &device)?;
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

/// A peer's loop: the same step as peer 0's, without checkpoints or metrics. Returns its final weights.
#[allow(clippy::too_many_arguments)]
fn worker<A: AutodiffBackend>(
    peer: usize,
    n: usize,
    mut model: Model<A>,
    mut opt: AdamW<A>,
    c: &TrainConfig,
    data: &Packed,
    device: &A::Device,
    rx: Receiver<Msg>,
) -> Result<Vec<u8>> {
    while let Ok(Msg::Step { step, lr, micro }) = rx.recv() {
        opt.groups = c.groups_at(step);
        // The same step as peer 0's (the library's), with the all-reduce between its two phases.
        let local = step::blocking::backward_pass(&model, data, &micro, c.objective())?;
        let reduced = reduce::<A>(local, peer, n, device)?;
        model = step::blocking::optimizer_step(model, &mut opt, reduced, lr)?.0;
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
