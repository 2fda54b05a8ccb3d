//! The `hnet-gpt` binary end to end: real arguments, real files, exit codes and messages.

mod common;
use common::Scratch;

use std::io::Write;
use std::path::Path;
use std::process::{Command, Output, Stdio};

fn bin() -> Command {
    Command::new(env!("CARGO_BIN_EXE_hnet-gpt"))
}

fn run(args: &[&str]) -> Output {
    bin().args(args).output().unwrap()
}

fn run_stdin(args: &[&str], stdin: &[u8]) -> Output {
    let mut child = bin().args(args).stdin(Stdio::piped()).stdout(Stdio::piped()).stderr(Stdio::piped()).spawn().unwrap();
    child.stdin.take().unwrap().write_all(stdin).unwrap();
    child.wait_with_output().unwrap()
}

fn ok(out: &Output) -> String {
    assert!(out.status.success(), "failed: {}", String::from_utf8_lossy(&out.stderr));
    String::from_utf8(out.stdout.clone()).unwrap()
}

/// A failure must be a clean error (exit 1, `Error: …`), never a panic (exit 101).
fn err(out: &Output) -> String {
    assert_eq!(out.status.code(), Some(1), "stderr: {}", String::from_utf8_lossy(&out.stderr));
    let stderr = String::from_utf8(out.stderr.clone()).unwrap();
    assert!(stderr.starts_with("Error: "), "{stderr}");
    stderr
}

fn tmp(name: &str) -> Scratch {
    Scratch::new("cli", name)
}

fn tiny_checkpoint(dir: &Path) -> String {
    let path = dir.join("tiny.safetensors");
    if !path.exists() {
        ok(&run(&["init", "--arch", "gpt2", "--preset", "tiny", "--seed", "3", "--out", path.to_str().unwrap()]));
    }
    path.to_str().unwrap().to_string()
}

#[test]
fn tokenize_prints_exact_ids_and_tokens() {
    let out: serde_json::Value = serde_json::from_str(&ok(&run(&["tokenize", "def add(a, b):\n    return a + b"]))).unwrap();
    assert_eq!(out["ids"], serde_json::json!([4299, 751, 7, 64, 11, 275, 2599, 198, 220, 220, 220, 1441, 257, 1343, 275]));
    assert_eq!(out["tokens"][1], "Ġadd");
    assert_eq!(out["spans"][1], serde_json::json!([3, 7]));
    let ids = ok(&run_stdin(&["tokenize", "--ids", "-"], b"hello<|endoftext|>world"));
    assert_eq!(ids.trim(), "[31373,50256,6894]");
}

#[test]
fn init_then_info_then_score_and_generate() {
    let dir = tmp("flow");
    let ckpt = tiny_checkpoint(&dir);
    let info: serde_json::Value = serde_json::from_str(&ok(&run(&["info", "--checkpoint", &ckpt, "--json"]))).unwrap();
    assert_eq!(info["arch"], "gpt2");
    assert_eq!(info["config"]["gpt2"]["n_embd"], 64);
    assert_eq!(info["metadata"]["init_seed"], "3");
    let params = info["parameters"].as_u64().unwrap();
    assert!(params > 3_000_000 && params < 4_000_000, "{params}");

    let file = dir.join("code.py");
    std::fs::write(&file, "def add(a, b):\n    return a + b\n").unwrap();
    let score: serde_json::Value =
        serde_json::from_str(&ok(&run(&["score", "--checkpoint", &ckpt, "--json", file.to_str().unwrap()]))).unwrap();
    assert_eq!(score["tokens"].as_array().unwrap().len(), 16);
    assert_eq!(score["bytes"], 32);
    let ppl = score["perplexity"].as_f64().unwrap();
    // A random tiny model is close to uniform over 50257 tokens.
    assert!(ppl > 10_000.0 && ppl < 200_000.0, "{ppl}");
    let text = ok(&run(&["score", "--checkpoint", &ckpt, file.to_str().unwrap()]));
    assert!(text.contains("bits per byte"), "{text}");

    let gen = |seed: &str| ok(&run(&["generate", "--checkpoint", &ckpt, "--prompt", "def f(x):", "--max-new-tokens", "8", "--seed", seed]));
    assert_eq!(gen("1"), gen("1"), "same seed, same text");
    let greedy = ok(&run(&["generate", "--checkpoint", &ckpt, "--prompt", "x", "--temperature", "0", "--max-new-tokens", "5"]));
    assert!(!greedy.trim().is_empty());
}

#[test]
fn bad_input_gives_clear_errors() {
    let dir = tmp("bad");
    let ckpt = tiny_checkpoint(&dir);
    // Non-UTF-8 file to score.
    let latin1 = dir.join("latin1.py");
    std::fs::write(&latin1, b"x = '\xe9t\xe9'\n").unwrap();
    let e = err(&run(&["score", "--checkpoint", &ckpt, latin1.to_str().unwrap()]));
    assert!(e.contains("not valid UTF-8"), "{e}");
    // Empty prompt.
    let e = err(&run(&["generate", "--checkpoint", &ckpt, "--prompt", ""]));
    assert!(e.contains("empty"), "{e}");
    // Truncated checkpoint.
    let bytes = std::fs::read(&ckpt).unwrap();
    let cut = dir.join("cut.safetensors");
    std::fs::write(&cut, &bytes[..bytes.len() / 3]).unwrap();
    let e = err(&run(&["info", "--checkpoint", cut.to_str().unwrap()]));
    assert!(e.contains("not a valid safetensors file"), "{e}");
    let e = err(&run(&["generate", "--checkpoint", cut.to_str().unwrap(), "--prompt", "x"]));
    assert!(e.contains("not a valid safetensors file"), "{e}");
    // Missing file, unknown preset, bad sampling flags.
    let e = err(&run(&["info", "--checkpoint", "/nonexistent/x.safetensors"]));
    assert!(e.contains("/nonexistent/x.safetensors"), "{e}");
    let e = err(&run(&["init", "--preset", "enormous", "--out", dir.join("x").to_str().unwrap()]));
    assert!(e.contains("unknown preset"), "{e}");
    // A flag out of range is a usage error (exit 2), before the checkpoint is read.
    let out = run(&["generate", "--checkpoint", &ckpt, "--prompt", "x", "--top-p", "0"]);
    assert_eq!(out.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&out.stderr).contains("--top-p"), "{out:?}");
}

#[test]
fn import_hf_writes_a_checkpoint_the_cli_reads() {
    let dir = tmp("hf");
    let out = dir.join("imported.safetensors");
    let fixture = Path::new(env!("CARGO_MANIFEST_DIR")).join("../model/tests/fixtures/hf-tiny-gpt2");
    ok(&run(&["import-hf", fixture.to_str().unwrap(), "--out", out.to_str().unwrap()]));
    let info: serde_json::Value = serde_json::from_str(&ok(&run(&["info", "--checkpoint", out.to_str().unwrap(), "--json"]))).unwrap();
    assert_eq!(info["config"]["gpt2"]["vocab_size"], 1000);
    // Importing a directory without config.json names the file.
    let e = err(&run(&["import-hf", dir.to_str().unwrap(), "--out", dir.join("y").to_str().unwrap()]));
    assert!(e.contains("config.json"), "{e}");
}

#[test]
fn generate_on_wgpu_streams_text() {
    if std::env::var_os("HNET_SKIP_WGPU").is_some() {
        return;
    }
    let dir = tmp("wgpu");
    let ckpt = tiny_checkpoint(&dir);
    let args = ["generate", "--checkpoint", &ckpt, "--prompt", "import os\n", "--temperature", "0", "--max-new-tokens", "6"];
    let cpu = ok(&run(&args));
    let mut gpu_args = args.to_vec();
    gpu_args.extend(["--device", "wgpu"]);
    let gpu = ok(&run(&gpu_args));
    assert_eq!(cpu, gpu, "greedy text differs between CPU and wgpu");
}

/// `bench --weights f16` on wgpu keeps the weight matrices in half the bytes, and on a GPU the report says how much
/// device memory the allocator holds with the model loaded (at least the weights) — the figures a GPU's f16 and f32
/// memory are read from (scripts/bench-decoder-gpu.sh).
#[test]
fn bench_on_wgpu_reports_the_weights_and_the_device_memory() {
    if std::env::var_os("HNET_SKIP_WGPU").is_some() {
        return;
    }
    let dir = tmp("bench-weights");
    let ckpt = tiny_checkpoint(&dir);
    let bench = |device: &str, weights: &str| -> serde_json::Value {
        let args = ["bench", "--checkpoint", &ckpt, "--device", device, "--weights", weights, "--train-steps", "0"];
        let out = ok(&run(&[&args[..], &["--prompt-tokens", "4", "--new-tokens", "3", "--gen-runs", "1", "--matmul-size", "32"]].concat()));
        serde_json::from_str(&out).unwrap()
    };
    let (full, half, cpu) = (bench("wgpu", "f32"), bench("wgpu", "f16"), bench("cpu", "f32"));
    let bytes = |r: &serde_json::Value| r["weights"]["bytes"].as_u64().unwrap();
    assert_eq!((full["weights"]["dtype"].as_str(), half["weights"]["dtype"].as_str()), (Some("f32"), Some("f16")));
    let (f32_bytes, f16_bytes) = (bytes(&full), bytes(&half));
    assert!(f16_bytes < f32_bytes * 6 / 10 && f16_bytes > f32_bytes * 4 / 10, "f32 {f32_bytes} bytes, f16 {f16_bytes}");
    for r in [&full, &half] {
        let held = r["weights"]["device_memory_bytes"]["loaded"].as_u64().expect("a GPU reports its memory");
        assert!(held >= bytes(r), "the device holds {held} bytes with {} bytes of weights on it", bytes(r));
        assert_eq!(r["generate"]["new_tokens"], 3);
    }
    assert_eq!(bytes(&cpu), bytes(&full));
    assert!(cpu["weights"]["device_memory_bytes"]["loaded"].is_null(), "the CPU has no device memory to report");
}

#[test]
fn chunks_marks_boundaries_and_reports_json_for_chunking_models() {
    let dir = tmp("chunks");
    let text = "def add(a, b):\n    return a + b\n";
    let file = dir.join("add.py");
    std::fs::write(&file, text).unwrap();
    for arch in ["hnet", "hybrid"] {
        let ckpt = dir.join(format!("{arch}.safetensors"));
        ok(&run(&["init", "--arch", arch, "--preset", "tiny", "--seed", "1", "--out", ckpt.to_str().unwrap()]));
        // `info` counts parameters per component; they add up to the total.
        let info: serde_json::Value = serde_json::from_str(&ok(&run(&["info", "--checkpoint", ckpt.to_str().unwrap(), "--json"]))).unwrap();
        let components = info["components"].as_object().unwrap();
        for c in ["embeddings", "encoder", "routing", "main"] {
            assert!(components[c].as_u64().unwrap() > 0, "{arch}: {c}");
        }
        assert_eq!(components.contains_key("fusion"), arch == "hybrid");
        assert_eq!(components.values().map(|n| n.as_u64().unwrap()).sum::<u64>(), info["parameters"].as_u64().unwrap());
        let json: serde_json::Value =
            serde_json::from_str(&ok(&run(&["chunks", "--checkpoint", ckpt.to_str().unwrap(), "--json", file.to_str().unwrap()]))).unwrap();
        let chunks = json["chunks"].as_array().unwrap();
        assert_eq!(json["n_chunks"].as_u64().unwrap() as usize, chunks.len());
        assert_eq!(json["tokens"].as_array().unwrap().len(), 16);
        assert_eq!(chunks.last().unwrap()["end"], text.len());
        // The plain-text view is the text with `▏` before every chunk but the first.
        let plain = ok(&run(&["chunks", "--checkpoint", ckpt.to_str().unwrap(), file.to_str().unwrap()]));
        assert_eq!(plain.matches('▏').count(), chunks.len() - 1);
        assert_eq!(plain.replace('▏', ""), format!("{text}\n"));
    }
    let gpt2 = tiny_checkpoint(&dir);
    let e = err(&run(&["chunks", "--checkpoint", &gpt2, file.to_str().unwrap()]));
    assert!(e.contains("no chunking"), "{e}");
}

#[test]
fn convert_to_half_precision_halves_the_file_and_still_generates() {
    let dir = tmp("convert");
    let ckpt = tiny_checkpoint(&dir);
    let half = dir.join("half.safetensors");
    ok(&run(&["convert", "--checkpoint", &ckpt, "--out", half.to_str().unwrap(), "--half"]));
    let (full_len, half_len) = (std::fs::metadata(&ckpt).unwrap().len(), std::fs::metadata(&half).unwrap().len());
    assert!(half_len * 10 < full_len * 6, "{half_len} vs {full_len}");
    let info: serde_json::Value = serde_json::from_str(&ok(&run(&["info", "--checkpoint", half.to_str().unwrap(), "--json"]))).unwrap();
    assert_eq!(info["metadata"]["init_seed"], "3", "provenance metadata survives conversion");
    let text =
        ok(&run(&["generate", "--checkpoint", half.to_str().unwrap(), "--prompt", "x = ", "--temperature", "0", "--max-new-tokens", "4"]));
    assert!(!text.trim().is_empty());
}
