//! Training over several machines (nodes) on burn's collective: a global orchestrator (the coordinator) that nodes
//! register with over WebSocket, and each node's data service, which moves gradients to the other nodes (a ring
//! all-reduce between nodes, a tree among a node's own devices). This file holds what burn leaves to its user: the
//! node's settings, the coordinator command, the check that every node starts the same run, and a watchdog —
//! burn's collective waits for a missing peer forever, and a run must not.

use std::net::TcpListener;
use std::str::FromStr;
use std::sync::{Mutex, Once};
use std::time::{Duration, Instant};

use anyhow::{anyhow, bail, Context, Result};
use burn::collective::{all_reduce, CollectiveConfig, PeerId, ReduceOperation};
use burn::tensor::backend::Backend;
use burn::tensor::{Tensor, TensorPrimitive};
use burn_communication::Address;
use clap::Args;

/// Flags of a run over several machines (nodes), each also readable from the environment so that a scheduler
/// (SLURM's `srun`, a job array) can start the same command everywhere.
#[derive(Debug, Clone, Args)]
pub struct ClusterArgs {
    /// Nodes (machines) in the run, each training --devices replicas: the global batch is split over all of them.
    #[arg(long, env = "HNET_GPT_NODES", default_value_t = 1, value_parser = at_least_one)]
    pub nodes: usize,
    /// This node's rank, 0 to --nodes − 1. Rank 0 writes the run directory; the others write nothing.
    #[arg(long, env = "HNET_GPT_NODE_RANK", default_value_t = 0)]
    pub node_rank: usize,
    /// The coordinator, HOST:PORT, started with `hnet-gpt coordinator --port PORT` and reachable from every node.
    #[arg(long, env = "HNET_GPT_COORDINATOR")]
    pub coordinator: Option<String>,
    /// HOST:PORT at which the other nodes reach this one's gradient service (default with a coordinator on this
    /// machine: 127.0.0.1 and the coordinator's port + 1 + rank).
    #[arg(long, env = "HNET_GPT_NODE_ADDRESS")]
    pub node_address: Option<String>,
    /// Seconds to wait for the other nodes (registration, each all-reduce) before stopping with an error.
    #[arg(long, env = "HNET_GPT_PEER_TIMEOUT", default_value_t = 60, value_parser = at_least_one)]
    pub peer_timeout: usize,
}

fn at_least_one(s: &str) -> Result<usize, String> {
    match s.parse::<usize>() {
        Ok(n) if n >= 1 => Ok(n),
        _ => Err(format!("{s} is not a whole number of at least 1")),
    }
}

/// One node's place in a run over several nodes.
#[derive(Debug, Clone, PartialEq)]
pub struct Cluster {
    /// Nodes in the run.
    pub nodes: usize,
    /// This node's rank, 0..nodes.
    pub rank: usize,
    /// The coordinator, HOST:PORT.
    pub coordinator: String,
    /// Where the other nodes reach this one's data service, HOST:PORT.
    pub node_address: String,
    /// The data service's port (the port of `node_address`).
    pub data_port: u16,
    /// How long to wait for the other nodes.
    pub timeout: Duration,
}

/// The port of `HOST:PORT`.
fn port_of(address: &str, flag: &str) -> Result<u16> {
    let (host, port) = address.rsplit_once(':').with_context(|| format!("{flag} {address}: expected HOST:PORT"))?;
    anyhow::ensure!(!host.is_empty(), "{flag} {address}: expected HOST:PORT");
    port.parse().with_context(|| format!("{flag} {address}: {port} is not a port number"))
}

impl Cluster {
    /// The cluster settings of `train`'s flags: None for a run on one node.
    pub fn from_args(a: &ClusterArgs) -> Result<Option<Cluster>> {
        if a.nodes == 1 {
            anyhow::ensure!(a.node_rank == 0, "--node-rank {} needs --nodes above it", a.node_rank);
            return Ok(None);
        }
        anyhow::ensure!(a.node_rank < a.nodes, "--node-rank {} is not below --nodes {}", a.node_rank, a.nodes);
        let coordinator = a.coordinator.clone().context("--nodes above 1 needs --coordinator HOST:PORT (see `hnet-gpt coordinator`)")?;
        let coordinator_port = port_of(&coordinator, "--coordinator")?;
        let node_address = match &a.node_address {
            Some(address) => address.clone(),
            None => {
                let host = coordinator.rsplit_once(':').map_or("", |(h, _)| h);
                anyhow::ensure!(
                    matches!(host, "127.0.0.1" | "localhost"),
                    "give --node-address HOST:PORT, where the other nodes reach this one (the default only suits nodes on \
                     the coordinator's machine)"
                );
                let port = coordinator_port as usize + 1 + a.node_rank;
                anyhow::ensure!(port <= u16::MAX as usize, "no port above the coordinator's for rank {}: give --node-address", a.node_rank);
                format!("127.0.0.1:{port}")
            }
        };
        let data_port = port_of(&node_address, "--node-address")?;
        Ok(Some(Cluster {
            nodes: a.nodes,
            rank: a.node_rank,
            coordinator,
            node_address,
            data_port,
            timeout: Duration::from_secs(a.peer_timeout as u64),
        }))
    }

    /// burn's collective settings for this node with `devices` local replicas.
    pub fn config(&self, devices: usize) -> Result<CollectiveConfig> {
        let address = |a: &str| Address::from_str(&format!("ws://{a}")).map_err(|e| anyhow!("{a}: {e}"));
        Ok(CollectiveConfig::default()
            .with_num_devices(devices)
            .with_num_nodes(self.nodes as u32)
            .with_global_address(address(&self.coordinator)?)
            .with_node_address(address(&self.node_address)?)
            .with_data_service_port(self.data_port))
    }

    /// Keeps burn's network services to warnings and errors: at its default (info) they log every tensor transfer,
    /// hundreds of lines per step. Call before registering (burn installs its own logger only when none is).
    pub fn quiet_logs() {
        quiet_logs();
    }

    /// Fails clearly when this node's data-service port is taken (burn's server would only log it and the run
    /// would wait forever).
    pub fn check_port(&self) -> Result<()> {
        port_free(self.data_port, "this node's gradient service (--node-address)")
    }
}

fn port_free(port: u16, what: &str) -> Result<()> {
    TcpListener::bind(("0.0.0.0", port)).map(drop).map_err(|e| anyhow!("port {port}, for {what}, cannot be used: {e}"))
}

fn quiet_logs() {
    let _ = tracing_subscriber::fmt().with_max_level(tracing_subscriber::filter::LevelFilter::WARN).with_writer(std::io::stderr).try_init();
}

/// `hnet-gpt coordinator --port P`: burn's global orchestrator, serving until Ctrl+C.
pub fn coordinate(port: u16) -> Result<()> {
    port_free(port, "the coordinator")?;
    quiet_logs();
    eprintln!("coordinator listening on port {port} (all interfaces); start the nodes with --coordinator THIS_HOST:{port}");
    let runtime = tokio::runtime::Builder::new_multi_thread().enable_all().build()?;
    runtime.block_on(burn_collective::start_global_orchestrator(port));
    Ok(())
}

/// The watched operation: what it is, when it started, how long it may take.
static ARMED: Mutex<Option<(String, Instant, Duration)>> = Mutex::new(None);
static WATCHDOG: Once = Once::new();

/// Runs `f`, a wait on the other nodes, and ends the process with `what` as the error when it takes longer than
/// `timeout`: burn's collective has no timeout, and a node that died would leave the others waiting forever.
/// Checkpoints are written atomically, so ending the process here leaves the run resumable.
pub fn watch<T>(what: impl Into<String>, timeout: Duration, f: impl FnOnce() -> T) -> T {
    WATCHDOG.call_once(|| {
        std::thread::spawn(|| loop {
            std::thread::sleep(Duration::from_millis(250));
            let armed = ARMED.lock().map(|a| a.clone()).unwrap_or(None);
            if let Some((what, since, timeout)) = armed {
                if since.elapsed() > timeout {
                    eprintln!("Error: {what}");
                    std::process::exit(1);
                }
            }
        });
    });
    set_armed(Some((what.into(), Instant::now(), timeout)));
    let out = f();
    set_armed(None);
    out
}

fn set_armed(value: Option<(String, Instant, Duration)>) {
    if let Ok(mut armed) = ARMED.lock() {
        *armed = value;
    }
}

/// What a node says when the others are gone while it is `doing` something with them: it stopped answering, or
/// burn's collective failed (a peer closed its connection).
pub fn lost(doing: &str) -> String {
    format!(
        "a node stopped or the network between the nodes failed while {doing}. This node stops too; the last \
         checkpoint (written by rank 0) is intact — start every node again with --resume"
    )
}

/// Runs `f`, a collective operation with the other nodes while `doing` something: its error, or no answer within
/// `timeout`, ends the run with [`lost`]'s message.
pub fn with_nodes<T>(doing: &str, timeout: Duration, f: impl FnOnce() -> Result<T>) -> Result<T> {
    let silent = format!("no answer from the other nodes for {} s: {}", timeout.as_secs(), lost(doing));
    watch(silent, timeout, f).map_err(|e| anyhow!("{} ({e:#})", lost(doing)))
}

/// What every node of a run must agree on, as 64-bit hashes: the training settings, the training data, the step
/// it starts from (or ends at) and the weights.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct Fingerprint {
    /// The training config (model, optimizer, schedule, batch, seed).
    pub config: u64,
    /// The training token stream.
    pub data: u64,
    /// The step.
    pub step: u64,
    /// The model's weights.
    pub weights: u64,
}

/// f32 values per fingerprint: four 64-bit fields as 16-bit pieces, each exact in f32.
const PIECES: usize = 16;

impl Fingerprint {
    fn fields(&self) -> [u64; 4] {
        [self.config, self.data, self.step, self.weights]
    }

    fn encode(&self) -> Vec<f32> {
        self.fields().iter().flat_map(|&v| (0..4).map(move |k| ((v >> (16 * k)) & 0xffff) as f32)).collect()
    }

    fn decode(values: &[f32]) -> Fingerprint {
        let field = |i: usize| (0..4).fold(0u64, |acc, k| acc | ((values[4 * i + k].round() as u64 & 0xffff) << (16 * k)));
        Fingerprint { config: field(0), data: field(1), step: field(2), weights: field(3) }
    }
}

/// Every node's fingerprint, on every node: an all-reduce (sum) of a nodes × [`PIECES`] table in which each node's
/// peer 0 fills its own row (`mine`) and every other peer contributes zeros. Every local peer must call it.
pub fn gather<B: Backend>(peer: usize, cluster: &Cluster, mine: Option<&Fingerprint>, device: &B::Device) -> Result<Vec<Fingerprint>> {
    let mut table = vec![0.0f32; cluster.nodes * PIECES];
    if let Some(fp) = mine {
        table[cluster.rank * PIECES..(cluster.rank + 1) * PIECES].copy_from_slice(&fp.encode());
    }
    let tensor = Tensor::<B, 1>::from_floats(table.as_slice(), device);
    let summed = all_reduce::<B>(PeerId(peer as u32), tensor.into_primitive().tensor(), ReduceOperation::Sum)
        .map_err(|e| anyhow!("exchanging run fingerprints with the other nodes: {e:?}"))?;
    let values =
        Tensor::<B, 1>::from_primitive(TensorPrimitive::Float(summed)).into_data().to_vec::<f32>().map_err(|e| anyhow!("{e:?}"))?;
    Ok(values.chunks(PIECES).map(Fingerprint::decode).collect())
}

/// Refuses a run whose nodes disagree, naming the first difference from rank 0. `when`: "at the start", "at the end".
pub fn check_agree(all: &[Fingerprint], when: &str) -> Result<()> {
    let Some(first) = all.first() else { return Ok(()) };
    for (rank, fp) in all.iter().enumerate().skip(1) {
        let what = if fp.config != first.config {
            format!(
                "its training settings (config hash {:016x}, rank 0 {:016x}): start every node with the same flags",
                fp.config, first.config
            )
        } else if fp.data != first.data {
            format!("its training data (hash {:016x}, rank 0 {:016x}): give every node the same --data", fp.data, first.data)
        } else if fp.step != first.step {
            format!("its step ({}, rank 0 {}): resume every node from the same checkpoint", fp.step, first.step)
        } else if fp.weights != first.weights {
            format!("its weights (hash {:016x}, rank 0 {:016x})", fp.weights, first.weights)
        } else {
            continue;
        };
        bail!("node {rank} differs from node 0 {when} in {what}");
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn fingerprints_survive_f32_encoding() {
        let fp = Fingerprint { config: u64::MAX, data: 0x0123_4567_89ab_cdef, step: 40, weights: 1 << 63 };
        assert_eq!(Fingerprint::decode(&fp.encode()), fp);
    }

    #[test]
    fn a_difference_is_named() {
        let a = Fingerprint { config: 1, data: 2, step: 3, weights: 4 };
        assert!(check_agree(&[a, a], "at the start").is_ok());
        let e = check_agree(&[a, Fingerprint { step: 5, ..a }], "at the start").unwrap_err().to_string();
        assert!(e.contains("node 1 differs from node 0 at the start in its step (5, rank 0 3)"), "{e}");
        let e = check_agree(&[a, a, Fingerprint { config: 9, ..a }], "at the start").unwrap_err().to_string();
        assert!(e.contains("node 2") && e.contains("training settings"), "{e}");
    }

    #[test]
    fn node_addresses_default_beside_a_local_coordinator() {
        let args = |coordinator: &str, node_address: Option<&str>| ClusterArgs {
            nodes: 2,
            node_rank: 1,
            coordinator: Some(coordinator.into()),
            node_address: node_address.map(Into::into),
            peer_timeout: 60,
        };
        let c = Cluster::from_args(&args("127.0.0.1:29500", None)).unwrap().unwrap();
        assert_eq!((c.node_address.as_str(), c.data_port), ("127.0.0.1:29502", 29502));
        assert!(Cluster::from_args(&args("head:29500", None)).unwrap_err().to_string().contains("--node-address"));
        let c = Cluster::from_args(&args("head:29500", Some("node7:40000"))).unwrap().unwrap();
        assert_eq!(c.data_port, 40000);
        assert!(Cluster::from_args(&args("head", Some("node7:1"))).is_err());
    }
}
