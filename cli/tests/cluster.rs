//! `hnet-gpt train` over several nodes, on localhost: node processes registered with `hnet-gpt coordinator` train
//! like one process with as many devices, resume exactly, stop when a node dies, and refuse nodes that disagree.

mod common;
use common::Scratch;

use std::net::{TcpListener, TcpStream};
use std::path::Path;
use std::process::{Child, Command, Output, Stdio};
use std::time::{Duration, Instant};

fn bin() -> Command {
    Command::new(env!("CARGO_BIN_EXE_hnet-gpt"))
}

/// The same small settings as tests/train.rs, on GPT-2 (whose averaged gradient is exactly the full batch's).
const TINY: &[&str] = &[
    "--preset",
    "tiny",
    "--seq-len",
    "32",
    "--batch-size",
    "4",
    "--eval-batches",
    "2",
    "--warmup",
    "2",
    "--quiet",
    "--arch",
    "gpt2",
    "--eval-every",
    "3",
    "--seed",
    "2",
    "--grad-accum",
    "2",
];

/// Six steps, for the runs that compare.
const SIX: &[&str] = &["--steps", "6"];

/// A port nothing listens on now.
fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port()
}

/// `hnet-gpt coordinator` on a free port, stopped when dropped.
struct Coordinator {
    child: Child,
    port: u16,
}

impl Coordinator {
    fn start() -> Coordinator {
        let port = free_port();
        let child = bin().args(["coordinator", "--port", &port.to_string()]).stderr(Stdio::null()).spawn().unwrap();
        let start = Instant::now();
        while TcpStream::connect(("127.0.0.1", port)).is_err() {
            assert!(start.elapsed() < Duration::from_secs(30), "the coordinator did not start listening");
            std::thread::sleep(Duration::from_millis(50));
        }
        Coordinator { child, port }
    }

    fn address(&self) -> String {
        format!("127.0.0.1:{}", self.port)
    }
}

impl Drop for Coordinator {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// Starts node `rank` of `nodes` with `args` after the tiny settings.
fn node(coordinator: &str, nodes: usize, rank: usize, args: &[&str]) -> Child {
    bin()
        .arg("train")
        .args(TINY)
        .args(["--nodes", &nodes.to_string(), "--node-rank", &rank.to_string(), "--coordinator", coordinator])
        .args(["--node-address", &format!("127.0.0.1:{}", free_port())])
        .args(args)
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap()
}

fn ok(out: Output) -> String {
    let stderr = String::from_utf8_lossy(&out.stderr).into_owned();
    assert!(out.status.success(), "failed ({:?}): {stderr}", out.status.code());
    stderr
}

/// Runs two nodes, rank 0 with `args0` and rank 1 with `args1`, to the end; returns their outputs.
fn two_nodes(args0: &[&str], args1: &[&str]) -> (Output, Output) {
    let coordinator = Coordinator::start();
    let a = node(&coordinator.address(), 2, 0, args0);
    let b = node(&coordinator.address(), 2, 1, args1);
    (a.wait_with_output().unwrap(), b.wait_with_output().unwrap())
}

fn metrics(run: &Path, kind: &str) -> Vec<f64> {
    std::fs::read_to_string(run.join("metrics.jsonl"))
        .unwrap()
        .lines()
        .map(|l| serde_json::from_str::<serde_json::Value>(l).unwrap())
        .filter(|m| m["kind"] == kind)
        .map(|m| m["loss"].as_f64().unwrap())
        .collect()
}

/// The largest difference between two checkpoints' tensors (they must hold the same names and shapes).
fn weight_difference(a: &Path, b: &Path) -> f32 {
    let (a, b) = (std::fs::read(a).unwrap(), std::fs::read(b).unwrap());
    let (a, b) = (safetensors::SafeTensors::deserialize(&a).unwrap(), safetensors::SafeTensors::deserialize(&b).unwrap());
    assert_eq!(a.names().len(), b.names().len());
    let floats = |bytes: &[u8]| bytes.chunks(4).map(|c| f32::from_le_bytes(c.try_into().unwrap())).collect::<Vec<_>>();
    a.names()
        .iter()
        .map(|name| {
            let (x, y) = (a.tensor(name).unwrap(), b.tensor(name).unwrap());
            assert_eq!(x.shape(), y.shape(), "{name}");
            floats(x.data()).iter().zip(floats(y.data())).map(|(p, q)| (p - q).abs()).fold(0.0, f32::max)
        })
        .fold(0.0, f32::max)
}

fn assert_close(a: &[f64], b: &[f64], what: &str) {
    assert_eq!(a.len(), b.len(), "{what}: {a:?} vs {b:?}");
    for (i, (x, y)) in a.iter().zip(b).enumerate() {
        assert!((x - y).abs() <= 1e-4, "{what} {i}: {x} vs {y}");
    }
}

/// Two nodes × one device give what one process with two devices gives — train and validation losses and final
/// weights — rank 1 writes nothing, and two nodes stopped at step 3 and resumed end where uninterrupted ones do.
#[test]
fn two_nodes_train_like_two_devices_and_resume_exactly() {
    let dir = Scratch::new("cluster", "same");
    let path = |name: &str| dir.join(name).to_str().unwrap().to_string();
    ok(bin().arg("train").args(TINY).args(SIX).args(["--devices", "2", "--out", &path("devices")]).output().unwrap());

    let (a, b) = two_nodes(&[SIX, &["--out", &path("nodes")]].concat(), &[SIX, &["--out", &path("rank1")]].concat());
    let log = ok(a);
    ok(b);
    assert!(log.contains("data parallel over 2 nodes × 1 devices"), "{log}");
    assert!(log.contains("all nodes start the same run"), "{log}");
    assert!(!dir.join("rank1").exists(), "rank 1 wrote a run directory");
    let (reference, nodes) = (dir.join("devices"), dir.join("nodes"));
    assert_close(&metrics(&reference, "train"), &metrics(&nodes, "train"), "train loss at step");
    assert_close(&metrics(&reference, "valid"), &metrics(&nodes, "valid"), "validation loss");
    let last = "checkpoints/step-000006/model.safetensors";
    let diff = weight_difference(&reference.join(last), &nodes.join(last));
    assert!(diff <= 1e-5, "final weights differ by {diff}");

    // Two nodes × two devices (a tree inside each node, a ring between them) train like one process with four.
    ok(bin().arg("train").args(TINY).args(SIX).args(["--devices", "4", "--out", &path("four")]).output().unwrap());
    let both = [SIX, &["--devices", "2"]].concat();
    let (a, b) = two_nodes(&[&both[..], &["--out", &path("2x2")]].concat(), &[&both[..], &["--out", &path("rank1")]].concat());
    assert!(ok(a).contains("data parallel over 2 nodes × 2 devices"));
    ok(b);
    assert_close(&metrics(&dir.join("four"), "train"), &metrics(&dir.join("2x2"), "train"), "2 × 2 train loss at step");

    // Stopped at step 3 on both nodes, then resumed on both (rank 1 reads rank 0's run directory, as on a shared
    // file system): the same losses and weights as the uninterrupted run.
    let resumed = path("resumed");
    let (a, b) =
        two_nodes(&[SIX, &["--out", &resumed, "--stop-at", "3"]].concat(), &[SIX, &["--out", &path("rank1"), "--stop-at", "3"]].concat());
    ok(a);
    ok(b);
    let (a, b) = two_nodes(&["--resume", &resumed], &["--resume", &resumed]);
    assert!(ok(a).contains("from step 3"));
    ok(b);
    assert!(!dir.join("rank1").exists());
    assert_close(&metrics(&nodes, "train"), &metrics(&dir.join("resumed"), "train"), "resumed train loss at step");
    let diff = weight_difference(&nodes.join(last), &dir.join("resumed").join(last));
    assert!(diff <= 1e-6, "resumed final weights differ by {diff}");
}

/// A node killed mid-run stops the other with a clear error within its --peer-timeout, leaving complete
/// checkpoints only.
#[test]
fn a_killed_node_stops_the_other() {
    let dir = Scratch::new("cluster", "killed");
    let run = dir.join("run");
    let coordinator = Coordinator::start();
    let long = ["--steps", "100000", "--checkpoint-every", "2", "--peer-timeout", "10"];
    let rank0 = node(&coordinator.address(), 2, 0, &[&long[..], &["--out", run.to_str().unwrap()]].concat());
    let mut rank1 = node(&coordinator.address(), 2, 1, &long);
    let start = Instant::now();
    while !run.join("metrics.jsonl").exists() || metrics(&run, "train").len() < 3 {
        assert!(start.elapsed() < Duration::from_secs(120), "the nodes did not train");
        std::thread::sleep(Duration::from_millis(100));
    }
    rank1.kill().unwrap();
    rank1.wait().unwrap();
    let killed = Instant::now();
    let out = rank0.wait_with_output().unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(!out.status.success());
    assert!(killed.elapsed() < Duration::from_secs(40), "rank 0 took {:?} to stop", killed.elapsed());
    assert!(stderr.contains("a node stopped or the network between the nodes failed while averaging the gradients of step"), "{stderr}");
    // Every step checkpoint is whole (a write in progress lives in a temporary directory until renamed).
    let steps: Vec<_> = std::fs::read_dir(run.join("checkpoints"))
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| p.file_name().unwrap().to_string_lossy().starts_with("step-"))
        .collect();
    assert!(!steps.is_empty());
    for step in steps {
        for file in ["model.safetensors", "optimizer.safetensors", "trainer.json"] {
            assert!(step.join(file).is_file(), "{} lacks {file}", step.display());
        }
    }
}

/// Nodes that would train different runs, an unreachable coordinator and a port in use are refused with a message
/// that names the problem.
#[test]
fn nodes_that_cannot_train_together_are_refused() {
    let dir = Scratch::new("cluster", "refused");
    let path = |name: &str| dir.join(name).to_str().unwrap().to_string();
    let (a, b) = two_nodes(&[SIX, &["--out", &path("a")]].concat(), &[SIX, &["--out", &path("b"), "--lr", "0.01"]].concat());
    for out in [a, b] {
        assert!(!out.status.success());
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert!(stderr.contains("node 1 differs from node 0 at the start in its training settings"), "{stderr}");
    }

    // The same settings on other data (the built-in corpus read as a file, so split by another rule).
    let corpus = concat!(env!("CARGO_MANIFEST_DIR"), "/../model/data/builtin_corpus.py");
    let (a, b) = two_nodes(&[SIX, &["--out", &path("c")]].concat(), &[SIX, &["--out", &path("d"), "--data", corpus]].concat());
    for out in [a, b] {
        assert!(!out.status.success());
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert!(stderr.contains("node 1 differs from node 0 at the start in its training data"), "{stderr}");
    }

    let nobody = format!("127.0.0.1:{}", free_port());

    // Rank 1 resuming without rank 0's run directory is told where it must come from.
    let missing = path("elsewhere");
    let out = node(&nobody, 2, 1, &["--resume", &missing]).wait_with_output().unwrap();
    assert!(!out.status.success());
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(stderr.contains("resumes from rank 0's run directory"), "{stderr}");
    let out = node(&nobody, 2, 1, &["--peer-timeout", "3"]).wait_with_output().unwrap();
    assert!(!out.status.success());
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(stderr.contains(&format!("could not register with the coordinator at {nobody}")), "{stderr}");

    let taken = TcpListener::bind("0.0.0.0:0").unwrap();
    let port = taken.local_addr().unwrap().port();
    let out = bin()
        .arg("train")
        .args(TINY)
        .args(["--nodes", "2", "--node-rank", "1", "--coordinator", &nobody, "--node-address", &format!("127.0.0.1:{port}")])
        .output()
        .unwrap();
    assert!(!out.status.success());
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(stderr.contains(&format!("port {port}")) && stderr.contains("cannot be used"), "{stderr}");
}
