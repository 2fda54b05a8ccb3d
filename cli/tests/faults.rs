//! The training loop's and the comparison's recovery paths, driven by test hooks that only a build with the
//! `fault-injection` feature has (`cargo test --features hnet-gpt/fault-injection`, as scripts/test.sh runs it): a
//! shipped binary reads no `HNET_FAULT_*` variable.

mod common;
use common::Scratch;

use std::path::{Path, PathBuf};
use std::process::{Command, Output};

fn bin() -> Command {
    Command::new(env!("CARGO_BIN_EXE_hnet-gpt"))
}

fn tmp(name: &str) -> Scratch {
    Scratch::new("faults", name)
}

/// Small, fast settings shared by the tests.
const TINY: &[&str] = &["--preset", "tiny", "--seq-len", "32", "--batch-size", "4", "--eval-batches", "2", "--warmup", "2", "--quiet"];

fn ok(out: Output) -> String {
    assert!(out.status.success(), "failed ({:?}): {}", out.status.code(), String::from_utf8_lossy(&out.stderr));
    String::from_utf8_lossy(&out.stderr).into_owned()
}

fn metrics(run: &Path) -> Vec<serde_json::Value> {
    std::fs::read_to_string(run.join("metrics.jsonl")).unwrap().lines().map(|l| serde_json::from_str(l).unwrap()).collect()
}

fn summary(run: &Path) -> serde_json::Value {
    serde_json::from_slice(&std::fs::read(run.join("summary.json")).unwrap()).unwrap()
}

/// One tensor of a checkpoint, as raw bytes.
fn tensor(path: &Path, name: &str) -> Vec<u8> {
    let bytes = std::fs::read(path).unwrap();
    let st = safetensors::SafeTensors::deserialize(&bytes).unwrap();
    st.tensor(name).unwrap().data().to_vec()
}

#[test]
fn non_finite_losses_are_skipped_and_counted_then_abort() {
    let dir = tmp("nan");
    let run = dir.join("one");
    let out = bin()
        .arg("train")
        .args(TINY)
        .args(["--steps", "5", "--eval-every", "5", "--out", run.to_str().unwrap()])
        .env("HNET_FAULT_NAN_STEPS", "3")
        .output()
        .unwrap();
    let stderr = ok(out);
    assert!(stderr.contains("step 3: non-finite loss, step skipped"), "{stderr}");
    assert_eq!(summary(&run)["skipped_steps"], 1);
    let run = dir.join("many");
    let out = bin()
        .arg("train")
        .args(TINY)
        .args(["--steps", "10", "--max-bad-steps", "3", "--out", run.to_str().unwrap()])
        .env("HNET_FAULT_NAN_STEPS", "2,3,4")
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(1));
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(stderr.contains("3 consecutive steps were skipped (non-finite loss or gradient); stopped at step 4"), "{stderr}");
    assert!(run.join("checkpoints/step-000004/model.safetensors").is_file());
}

#[test]
fn a_non_finite_gradient_norm_is_skipped_and_a_skipped_last_step_still_ends_the_run() {
    let dir = tmp("infgrad");
    let run = dir.join("run");
    let out = bin()
        .arg("train")
        .args(TINY)
        .args(["--steps", "4", "--eval-every", "4", "--checkpoint-every", "1", "--keep-last", "10", "--out", run.to_str().unwrap()])
        .env("HNET_FAULT_INF_GRAD_STEPS", "2,4")
        .output()
        .unwrap();
    let stderr = ok(out);
    assert!(stderr.contains("step 2: non-finite gradient norm (inf), step skipped"), "{stderr}");
    assert_eq!(summary(&run)["skipped_steps"], 2);
    // The loss was finite, the step still changed nothing.
    let at = |step: usize| tensor(&run.join(format!("checkpoints/step-{step:06}/model.safetensors")), "net.h.0.mlp.c_fc.weight");
    assert_eq!(at(1), at(2));
    assert_ne!(at(2), at(3));
    assert_eq!(at(3), at(4));
    // Step 4, skipped, is the last: the final validation and checkpoint happen anyway.
    assert!(metrics(&run).iter().any(|m| m["kind"] == "valid" && m["step"] == 4));
    assert_eq!(metrics(&run).iter().filter(|m| m["skipped"] == true).count(), 2);
}

#[test]
fn a_leaking_architecture_stops_the_comparison_before_a_table_is_written() {
    let dir = tmp("leak");
    let refused = dir.join("refused");
    let failed = bin()
        .args(["compare", "--preset", "tiny", "--seeds", "1", "--steps", "2", "--batch-size", "4", "--seq-len", "32"])
        .args(["--out", refused.to_str().unwrap()])
        .env("HNET_FAULT_LEAKY_ARCH", "hybrid")
        .output()
        .unwrap();
    assert_eq!(failed.status.code(), Some(1));
    assert!(String::from_utf8_lossy(&failed.stderr).contains("hybrid fails the causality check"));
    assert!(!refused.join("results.md").exists());
}

/// The wgpu tests' start: a scratch directory `name` holding a tiny gpt2 checkpoint (seed 3), or None where wgpu is
/// skipped (`HNET_SKIP_WGPU`).
fn wgpu_tiny_checkpoint(name: &str) -> Option<(Scratch, PathBuf)> {
    if std::env::var_os("HNET_SKIP_WGPU").is_some() {
        return None;
    }
    let dir = tmp(name);
    let ckpt = dir.join("tiny.safetensors");
    ok(bin().args(["init", "--arch", "gpt2", "--preset", "tiny", "--seed", "3", "--out", ckpt.to_str().unwrap()]).output().unwrap());
    Some((dir, ckpt))
}

/// A GPU whose buffers are smaller than the token table (`HNET_FAULT_MAX_BUFFER_BYTES`, as lavapipe's 128 MiB is
/// for Qwen2.5's 545 MB table): the table goes to the device in parts, and greedy generation on wgpu gives the
/// CPU's tokens.
#[test]
fn a_token_table_larger_than_a_gpu_buffer_runs_in_parts() {
    let Some((_dir, ckpt)) = wgpu_tiny_checkpoint("buffer-parts") else {
        return;
    };
    let bench = |device: &str| -> serde_json::Value {
        let args = ["bench", "--checkpoint", ckpt.to_str().unwrap(), "--device", device, "--train-steps", "0", "--prompt-tokens", "5"];
        let out = bin()
            .args(args)
            .args(["--new-tokens", "6", "--gen-runs", "1", "--matmul-size", "32"])
            .env("HNET_FAULT_MAX_BUFFER_BYTES", "1000000")
            .output()
            .unwrap();
        ok(out.clone());
        serde_json::from_slice(&out.stdout).unwrap()
    };
    let (gpu, cpu) = (bench("wgpu"), bench("cpu"));
    let parts = gpu["weights"]["token_table_parts"].as_u64().unwrap();
    let (vocab, width) = (gpu["config"]["gpt2"]["vocab_size"].as_u64().unwrap(), gpu["config"]["gpt2"]["n_embd"].as_u64().unwrap());
    let rows = 1_000_000 / (4 * width);
    assert_eq!(parts, vocab.div_ceil(rows), "a {vocab} × {width} f32 table in parts of at most 1 MB ({rows} rows)");
    assert_eq!(cpu["weights"]["token_table_parts"], 1, "the CPU has no buffer limit");
    assert_eq!(gpu["generate"]["generated"], cpu["generate"]["generated"], "greedy tokens differ between the CPU and wgpu in parts");
}

/// Training on a GPU whose buffers are smaller than the token table: the table trains in parts (its gradient reaches
/// every part through the lookup and the tied head's loss) and takes the same steps as the table in one part, from
/// the same weights; the checkpoint holds one table.
#[test]
fn a_token_table_larger_than_a_gpu_buffer_trains_in_parts() {
    let Some((dir, start)) = wgpu_tiny_checkpoint("buffer-train") else {
        return;
    };
    let train = |name: &str, buffer: Option<&str>| {
        let run = dir.join(name);
        let mut cmd = bin();
        cmd.arg("train").args(TINY).args(["--steps", "2", "--eval-every", "2", "--device", "wgpu"]);
        cmd.args(["--init-from", start.to_str().unwrap(), "--out", run.to_str().unwrap()]);
        if let Some(bytes) = buffer {
            cmd.env("HNET_FAULT_MAX_BUFFER_BYTES", bytes);
        }
        ok(cmd.output().unwrap());
        let losses: Vec<f64> = metrics(&run).iter().filter(|m| m["kind"] == "train").map(|m| m["loss"].as_f64().unwrap()).collect();
        let table = tensor(&run.join("checkpoints/step-000002/model.safetensors"), "net.wte.weight");
        (losses, table)
    };
    let (whole, whole_table) = train("whole", None);
    let (parts, parts_table) = train("parts", Some("1000000"));
    assert_eq!(whole.len(), 2);
    for (a, b) in whole.iter().zip(&parts) {
        assert!((a - b).abs() <= 1e-5 * a.abs(), "losses in one part {whole:?}, in parts {parts:?}");
    }
    assert!(whole[1] < whole[0], "the loss falls: {whole:?}");
    // One stored table, trained: it moved from the start, as far as in one part.
    let values = |bytes: &[u8]| bytes.chunks(4).map(|c| f32::from_le_bytes(c.try_into().unwrap())).collect::<Vec<_>>();
    let (start, whole, parts) = (values(&tensor(&start, "net.wte.weight")), values(&whole_table), values(&parts_table));
    assert_eq!(parts.len(), start.len());
    let max_diff = |a: &[f32], b: &[f32]| a.iter().zip(b).map(|(x, y)| (x - y).abs()).fold(0.0, f32::max);
    assert!(max_diff(&parts, &start) > 1e-4, "the table in parts did not train");
    assert!(max_diff(&parts, &whole) <= 1e-4, "the table in parts trained differently: {}", max_diff(&parts, &whole));
}

/// A GPU whose buffers hold a token table's rows in parts but not some other weight whole (a 7B model's MLP matrix
/// on lavapipe's 128 MiB binding): the command refuses the model before loading it, naming the weight, instead of
/// failing inside the device's thread and going on without it.
#[test]
fn a_weight_larger_than_a_gpu_buffer_is_refused_by_name() {
    let Some((_dir, ckpt)) = wgpu_tiny_checkpoint("buffer-refused") else {
        return;
    };
    let out = bin()
        .args(["generate", "--checkpoint", ckpt.to_str().unwrap(), "--device", "wgpu", "--prompt", "def f(x):", "--max-new-tokens", "4"])
        .env("HNET_FAULT_MAX_BUFFER_BYTES", "2048")
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(1), "{stderr}");
    assert!(stderr.contains("does not fit one buffer of this device (at most 2 KB)") && stderr.contains("weight `net."), "{stderr}");
    assert!(!stderr.contains("panicked") && out.stdout.is_empty(), "{stderr}");
}
