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
//!
//! Over several nodes ([`Cluster`]) the same holds with N × K replicas: every node draws the same global batch
//! (the sampler is deterministic), keeps the shares of its own replicas (rank r holds replicas rK..rK+K), and burn's
//! collective averages gradients over all of them. Every node first checks that all start the same run (settings,
//! data, step, weights) and at the end that all hold the same weights.

use std::sync::mpsc::{channel, Receiver, Sender};
use std::sync::Arc;
use std::thread::JoinHandle;

use anyhow::{anyhow, bail, Result};
use burn::collective::{all_reduce, finish_collective, register, reset_collective, CollectiveConfig, PeerId, ReduceOperation};
use burn::module::{AutodiffModule, Module, ModuleVisitor, Param};
use burn::optim::GradientsParams;
use burn::tensor::backend::AutodiffBackend;
use burn::tensor::{Tensor, TensorPrimitive};
use hnet_gpt_model::io::checkpoint;
use hnet_gpt_model::train::data::Packed;
use hnet_gpt_model::train::optim::AdamW;
use hnet_gpt_model::train::step::{self, Gradients};
use hnet_gpt_model::train::TrainConfig;
use hnet_gpt_model::util::hash::{fnv1a, fnv1a_from, FNV1A_START};
use hnet_gpt_model::Model;

use hnet_gpt::cluster::{self, Cluster, Fingerprint};

/// Averages one peer's gradients and loss with the others' (a no-op for a single device). Every peer must call it
/// each step; when any peer's loss was not finite, every peer gets none and skips the step alike. Also returns the
/// seconds the gradients' all-reduce took: the loss's, before it, is where the peers wait for each other, so this
/// is the transfer itself.
pub fn reduce<A: AutodiffBackend>(
    local: Gradients,
    model: &Model<A>,
    peer: usize,
    peers: usize,
    device: &A::Device,
) -> Result<(Gradients, f64)> {
    if peers == 1 {
        return Ok((local, 0.0));
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
    let start = std::time::Instant::now();
    let grads = match local.grads {
        Some(grads) if loss.is_finite() => Some(reduce_gradients(grads, model, id, device)?),
        _ => None,
    };
    Ok((Gradients { loss, ce, grads }, start.elapsed().as_secs_f64()))
}

/// A gradient taken out for the all-reduce: its number of values, and how to put its averaged values back.
type Slot<B> = (usize, Box<dyn FnOnce(&mut GradientsParams, Tensor<B, 1>)>);

/// Averages every gradient with the other peers' in one all-reduce: flattened and joined in the model's own
/// parameter order, then split back. One operation per step instead of one per parameter (each is a round of
/// messages between nodes); and the model's order, because burn's `GradientsParams::all_reduce` goes in the order of
/// parameter ids, which are random per process — replicas in one process share them (they are clones), nodes do
/// not, and would pair different tensors.
fn reduce_gradients<A: AutodiffBackend>(
    grads: GradientsParams,
    model: &Model<A>,
    peer: PeerId,
    device: &A::Device,
) -> Result<GradientsParams> {
    let mut gather = Gather::<A> { grads, flat: Vec::new(), slots: Vec::new() };
    model.visit(&mut gather);
    let Gather { mut grads, flat, slots } = gather;
    if flat.is_empty() {
        return Ok(grads);
    }
    let joined = Tensor::cat(flat, 0);
    let averaged = all_reduce::<A::InnerBackend>(peer, joined.into_primitive().tensor(), ReduceOperation::Mean)
        .map_err(|e| anyhow!("all-reduce of the gradients: {e:?}"))?;
    let averaged = Tensor::<A::InnerBackend, 1>::from_primitive(TensorPrimitive::Float(averaged)).to_device(device);
    let mut offset = 0;
    for (len, put_back) in slots {
        put_back(&mut grads, averaged.clone().slice(offset..offset + len));
        offset += len;
    }
    Ok(grads)
}

/// Takes each parameter's gradient out of `grads`, flattened, in the order the model visits its parameters.
struct Gather<A: AutodiffBackend> {
    grads: GradientsParams,
    flat: Vec<Tensor<A::InnerBackend, 1>>,
    slots: Vec<Slot<A::InnerBackend>>,
}

impl<A: AutodiffBackend> ModuleVisitor<A> for Gather<A> {
    fn visit_float<const D: usize>(&mut self, param: &Param<Tensor<A, D>>) {
        let Some(grad) = self.grads.remove::<A::InnerBackend, D>(param.id) else { return };
        let (id, shape) = (param.id, grad.shape());
        let len = shape.num_elements();
        self.flat.push(grad.reshape([len]));
        self.slots.push((len, Box::new(move |grads, values| grads.register(id, values.reshape::<D, _>(shape)))));
    }
}

/// Splits each micro-batch into `peers` equal, contiguous shares: `result[p]` is replica `p`'s micro-batches.
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

/// Replica `r` of `replicas`' shares of a global batch, for this node: `shard`'s shares of replicas
/// `rank × local ..< (rank + 1) × local` (the whole split on a single node).
pub fn node_shares(micro: &[Vec<usize>], local: usize, cluster: Option<&Cluster>) -> Vec<Vec<Vec<usize>>> {
    let (nodes, rank) = cluster.map_or((1, 0), |c| (c.nodes, c.rank));
    let mut shares = shard(micro, local * nodes);
    shares.drain(rank * local..(rank + 1) * local).collect()
}

/// A node's fingerprint of its run (see [`Fingerprint`]).
pub fn fingerprint<A: AutodiffBackend>(c: &TrainConfig, data: &Packed, step: usize, model: &Model<A>) -> Result<Fingerprint> {
    let mut data_hash = FNV1A_START;
    let n = data.stream.len();
    for start in (0..n).step_by(1 << 20) {
        let tokens = data.stream.range(start, (start + (1 << 20)).min(n));
        data_hash = fnv1a_from(data_hash, &tokens.iter().flat_map(|t| t.to_le_bytes()).collect::<Vec<u8>>());
    }
    Ok(Fingerprint {
        config: fnv1a(serde_json::to_string(c)?.as_bytes()),
        data: data_hash,
        step: step as u64,
        weights: fnv1a(&checkpoint::to_bytes(model, &[])?),
    })
}

enum Msg {
    Step { step: usize, lr: f64, micro: Vec<Vec<usize>> },
    Finish,
}

/// Peers 1.. of a data-parallel run, and the nodes beyond this one.
pub struct Peers {
    senders: Vec<Sender<Msg>>,
    handles: Vec<JoinHandle<Result<Vec<u8>>>>,
    cluster: Option<Cluster>,
}

impl Peers {
    /// Registers peer 0 (the caller, on `devices[0]`) and starts one thread per further device with a replica
    /// of `model` and a copy of `opt`'s state. Over several nodes, registers with the coordinator and refuses to
    /// start unless every node's `fingerprint` matches.
    pub fn start<A: AutodiffBackend>(
        devices: &[A::Device],
        model: &Model<A>,
        opt: &AdamW<A>,
        c: &TrainConfig,
        data: Arc<Packed>,
        cluster: Option<&Cluster>,
        fingerprint: &Fingerprint,
    ) -> Result<Self>
    where
        Model<A>: Send + 'static,
    {
        let n = devices.len();
        let replicas = n * cluster.map_or(1, |c| c.nodes);
        if !c.batch_size.is_multiple_of(replicas) {
            bail!(
                "--batch-size {} must be a multiple of the number of replicas ({replicas}: devices × nodes): each gets an equal share",
                c.batch_size
            );
        }
        reset_collective::<A::InnerBackend>();
        let config = match cluster {
            Some(cl) => {
                cl.check_port()?;
                Cluster::quiet_logs();
                cl.config(n)?
            }
            None => CollectiveConfig::default().with_num_devices(n),
        };
        model.materialize(); // before any clone: replicas must share peer 0's weights
        let (tensors, steps) = opt.state_tensors();
        let (mut senders, mut handles) = (Vec::new(), Vec::new());
        for (peer, device) in devices.iter().enumerate().skip(1) {
            let (tx, rx) = channel();
            let replica = model.clone().fork(device);
            let (device, config, c, data, cl) = (device.clone(), config.clone(), c.clone(), data.clone(), cluster.cloned());
            let (adamw, state, steps) = (c.adamw.clone(), tensors.clone(), steps.clone());
            handles.push(std::thread::spawn(move || -> Result<Vec<u8>> {
                let run = std::panic::AssertUnwindSafe(|| -> Result<Vec<u8>> {
                    register::<A::InnerBackend>(PeerId(peer as u32), device.clone(), config).map_err(|e| anyhow!("registering: {e:?}"))?;
                    if let Some(cl) = &cl {
                        cluster::gather::<A::InnerBackend>(peer, cl, None, &device)?;
                    }
                    let mut opt = AdamW::<A>::new(adamw, c.groups_at(0));
                    opt.load_state(state.into_iter().collect(), &steps, &device)?;
                    worker(peer, replicas, replica, opt, &c, &data, &device, rx, cl.as_ref())
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
        let register =
            || register::<A::InnerBackend>(PeerId(0), devices[0].clone(), config).map_err(|e| anyhow!("registering device 0: {e:?}"));
        match cluster {
            None => register()?,
            Some(cl) => {
                let timeout = cl.timeout;
                let waiting = format!(
                    "node {} could not register with the coordinator at {} within {} s: is `hnet-gpt coordinator` running \
                     there, reachable from this node, and are all {} nodes started?",
                    cl.rank,
                    cl.coordinator,
                    timeout.as_secs(),
                    cl.nodes
                );
                cluster::watch(waiting, timeout, register)?;
                let all = cluster::with_nodes("comparing the nodes' runs", timeout, || {
                    cluster::gather::<A::InnerBackend>(0, cl, Some(fingerprint), &devices[0])
                })?;
                cluster::check_agree(&all, "at the start")?;
                eprintln!("node {} of {}: registered with {}, all nodes start the same run", cl.rank, cl.nodes, cl.coordinator);
            }
        }
        Ok(Self { senders, handles, cluster: cluster.cloned() })
    }

    /// Hands peers 1.. their shares of step `step` (`shares[p - 1]` for peer `p`).
    pub fn step(&self, step: usize, lr: f64, shares: Vec<Vec<Vec<usize>>>) -> Result<()> {
        for (tx, micro) in self.senders.iter().zip(shares) {
            tx.send(Msg::Step { step, lr, micro }).map_err(|_| anyhow!("a training device stopped"))?;
        }
        Ok(())
    }

    /// Ends the run: every peer leaves the collective, and its final weights must equal peer 0's `model` — and,
    /// over several nodes, every node's must equal rank 0's (`fingerprint`, taken at the end).
    pub fn finish<A: AutodiffBackend>(self, model: &Model<A>, fingerprint: &Fingerprint, device: &A::Device) -> Result<()> {
        for tx in &self.senders {
            let _ = tx.send(Msg::Finish);
        }
        if let Some(cl) = &self.cluster {
            let all = cluster::with_nodes("comparing the nodes' final weights", cl.timeout, || {
                cluster::gather::<A::InnerBackend>(0, cl, Some(fingerprint), device)
            })?;
            cluster::check_agree(&all, "at the end")?;
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
    cluster: Option<&Cluster>,
) -> Result<Vec<u8>> {
    while let Ok(Msg::Step { step, lr, micro }) = rx.recv() {
        opt.groups = c.groups_at(step);
        // The same step as peer 0's (the library's), with the all-reduce between its two phases.
        let local = step::blocking::backward_pass(&model, data, &micro, c.objective())?;
        let (reduced, _) = reduce::<A>(local, &model, peer, n, device)?;
        model = step::blocking::optimizer_step(model, &mut opt, reduced, lr)?.0;
    }
    if let Some(cl) = cluster {
        cluster::gather::<A::InnerBackend>(peer, cl, None, device)?;
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
