//! Bad local input gets a clear error and loses nothing: special files where data or metadata should be, files far
//! larger than they should be, a gzip stream that expands to one enormous line, a checkpoint that declares a model
//! larger than anything, NaN weights, a killed checkpoint write, flags out of range. Every command here must end
//! on its own (each runs under a deadline), with exit status 1 or 2 and a message — never hang, never abort.

mod common;
use common::Scratch;

use std::io::Write;
use std::os::unix::process::CommandExt;
use std::path::Path;
use std::process::{Command, Output, Stdio};
use std::time::{Duration, Instant};

fn tmp(name: &str) -> Scratch {
    Scratch::new("hostile", name)
}

/// Runs the CLI with a deadline (a hang fails the test instead of hanging it) and, when given, an address-space
/// limit: a command that reads a huge input whole fails under it.
fn run_limited(args: &[&str], address_space: Option<u64>) -> (Output, Duration) {
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_hnet-gpt"));
    cmd.args(args).stdin(Stdio::null()).stdout(Stdio::piped()).stderr(Stdio::piped());
    if let Some(bytes) = address_space {
        // SAFETY: setrlimit only, between fork and exec.
        unsafe {
            cmd.pre_exec(move || {
                let lim = libc::rlimit { rlim_cur: bytes, rlim_max: bytes };
                if libc::setrlimit(libc::RLIMIT_AS, &lim) != 0 {
                    return Err(std::io::Error::last_os_error());
                }
                Ok(())
            });
        }
    }
    let start = Instant::now();
    let mut child = cmd.spawn().unwrap();
    let deadline = start + Duration::from_secs(120);
    while child.try_wait().unwrap().is_none() {
        if Instant::now() > deadline {
            let _ = child.kill();
            panic!("`hnet-gpt {}` hung", args.join(" "));
        }
        std::thread::sleep(Duration::from_millis(20));
    }
    (child.wait_with_output().unwrap(), start.elapsed())
}

fn run(args: &[&str]) -> Output {
    run_limited(args, None).0
}

fn stderr(out: &Output) -> String {
    String::from_utf8_lossy(&out.stderr).into_owned()
}

/// A clean refusal: exit 1 with `Error: …` (never 101, a panic, or a signal).
fn refused(out: &Output) -> String {
    let e = stderr(out);
    assert_eq!(out.status.code(), Some(1), "{e}");
    assert!(e.contains("Error: "), "{e}");
    e
}

fn mkfifo(path: &Path) {
    let c = std::ffi::CString::new(path.to_str().unwrap()).unwrap();
    assert_eq!(unsafe { libc::mkfifo(c.as_ptr(), 0o644) }, 0, "mkfifo {}", path.display());
}

fn write(path: &Path, text: &str) {
    std::fs::create_dir_all(path.parent().unwrap()).unwrap();
    std::fs::write(path, text).unwrap();
}

const MODULE: &str = "def add(a, b):\n    \"\"\"Add two numbers.\"\"\"\n    return a + b\n\n\ndef sub(a, b):\n    return a - b\n";

/// A site-packages with a permissive package, a FIFO named like a module, a FIFO `METADATA` and a 2 GiB sparse
/// file: `data prepare` passes over each (counted) without waiting on a FIFO or reading 2 GiB.
#[test]
fn data_prepare_passes_over_fifos_and_huge_files_without_reading_them() {
    let dir = tmp("prepare");
    let site = dir.join("site-packages");
    for (pkg, n) in [("alpha", 6), ("beta", 6)] {
        write(&site.join(format!("{pkg}-1.0.dist-info/METADATA")), &format!("Name: {pkg}\nVersion: 1.0\nLicense-Expression: MIT\n"));
        write(&site.join(format!("{pkg}-1.0.dist-info/top_level.txt")), pkg);
        for i in 0..n {
            write(&site.join(format!("{pkg}/m{i}.py")), &MODULE.replace("add", &format!("add_{pkg}_{i}")));
        }
    }
    mkfifo(&site.join("alpha/trap.py"));
    std::fs::create_dir_all(site.join("gamma-1.0.dist-info")).unwrap();
    mkfifo(&site.join("gamma-1.0.dist-info/METADATA"));
    write(&site.join("gamma/g.py"), MODULE);
    std::fs::File::create(site.join("beta/huge.py")).unwrap().set_len(2 << 30).unwrap();
    let out = dir.join("corpus");
    let (o, took) = run_limited(
        &["data", "prepare", "--data", site.to_str().unwrap(), "--out", out.to_str().unwrap(), "--quiet", "--min-valid-bytes", "10"],
        Some(1536 << 20),
    );
    assert!(o.status.success(), "{}", stderr(&o));
    assert!(took < Duration::from_secs(60), "{took:?}");
    let manifest: serde_json::Value = serde_json::from_str(&std::fs::read_to_string(out.join("manifest.json")).unwrap()).unwrap();
    let skipped = &manifest["skipped_files"];
    assert_eq!(skipped["not a regular file (a FIFO, socket or device)"], 1, "{skipped}");
    assert_eq!(skipped["over the size limit"], 1, "{skipped}");
}

/// `--data` naming a FIFO, and a tree holding one: skipped with a warning, and the run says there is nothing to train
/// on. A failed start leaves nothing behind: the same --out works afterwards.
#[test]
fn train_with_a_fifo_for_data_refuses_and_leaves_no_run_behind() {
    let dir = tmp("train-fifo");
    let fifo = dir.join("data.jsonl");
    mkfifo(&fifo);
    let run_dir = dir.join("run");
    let args = |data: &str| {
        vec!["train", "--data", data, "--steps", "2", "--batch-size", "2", "--seq-len", "16", "--quiet", "--out"]
            .into_iter()
            .map(String::from)
            .chain([run_dir.to_str().unwrap().to_string()])
            .collect::<Vec<_>>()
    };
    let a = args(fifo.to_str().unwrap());
    let e = refused(&run(&a.iter().map(String::as_str).collect::<Vec<_>>()));
    assert!(e.contains("not a regular file (a FIFO)") && e.contains("empty"), "{e}");
    assert!(!run_dir.join("config.json").exists(), "a failed start left a config.json behind");
    // A model too large to train here fails before anything is written, with the same --out free afterwards.
    let huge = dir.join("huge.json");
    let out = run(&["init", "--arch", "gpt2", "--preset", "small", "--out", dir.join("s.safetensors").to_str().unwrap()]);
    assert!(out.status.success(), "{}", stderr(&out));
    let info: serde_json::Value =
        serde_json::from_slice(&run(&["info", "--checkpoint", dir.join("s.safetensors").to_str().unwrap(), "--json"]).stdout).unwrap();
    let mut config = info["config"].clone();
    config["gpt2"]["n_embd"] = 16384.into();
    config["gpt2"]["n_head"] = 16.into();
    config["gpt2"]["n_layer"] = 200.into();
    std::fs::write(&huge, config.to_string()).unwrap();
    let tree = dir.join("tree");
    write(&tree.join("a.py"), &MODULE.repeat(40));
    let mut a = args(tree.to_str().unwrap());
    a.extend(["--model-config".into(), huge.to_str().unwrap().into()]);
    let e = refused(&run(&a.iter().map(String::as_str).collect::<Vec<_>>()));
    assert!(e.contains("needs about") && e.contains("GB of memory"), "{e}");
    assert!(!run_dir.join("config.json").exists(), "a failed start left a config.json behind");
    // The same --out, good data: it trains.
    let a = args(tree.to_str().unwrap());
    let o = run(&a.iter().map(String::as_str).collect::<Vec<_>>());
    assert!(o.status.success(), "{}", stderr(&o));
}

/// A 40 MB gzip that expands to one line of 3 GiB: cut off at the line limit with a warning, never held whole.
#[test]
fn a_gzip_bomb_of_one_endless_line_is_cut_off() {
    let dir = tmp("gzip");
    let path = dir.join("bomb.jsonl.gz");
    let mut gz = flate2::write::GzEncoder::new(std::fs::File::create(&path).unwrap(), flate2::Compression::fast());
    gz.write_all(b"{\"code\": \"").unwrap();
    let chunk = vec![b'a'; 1 << 20];
    for _ in 0..3072 {
        gz.write_all(&chunk).unwrap();
    }
    gz.write_all(b"\"}\n").unwrap();
    gz.finish().unwrap();
    let (o, _) = run_limited(
        &["train", "--data", path.to_str().unwrap(), "--steps", "1", "--quiet", "--out", dir.join("run").to_str().unwrap()],
        Some(2 << 30),
    );
    let e = refused(&o);
    assert!(e.contains("over the limit") && e.contains("stopped reading this file"), "{e}");
}

/// A checkpoint whose config declares an enormous (but valid) model: `init --decoder-from`, `train --decoder-from`,
/// `train --init-from` and `score` all refuse it with the same message, before allocating it.
#[test]
fn a_checkpoint_declaring_a_huge_model_is_refused_before_allocation() {
    let dir = tmp("huge-decl");
    let small = dir.join("tiny.safetensors");
    assert!(run(&["init", "--arch", "gpt2", "--preset", "tiny", "--out", small.to_str().unwrap()]).status.success());
    // Rewrite the header's config: the same tensors, a 4M × 16384 vocabulary (a 256 GB model) in the config.
    let bytes = std::fs::read(&small).unwrap();
    let st = safetensors::SafeTensors::deserialize(&bytes).unwrap();
    let (_, header) = safetensors::SafeTensors::read_metadata(&bytes).unwrap();
    let mut meta = header.metadata().clone().unwrap();
    let mut config: serde_json::Value = serde_json::from_str(&meta["config"]).unwrap();
    config["gpt2"]["vocab_size"] = (1 << 22).into();
    config["gpt2"]["n_embd"] = 16384.into();
    config["gpt2"]["n_head"] = 16.into();
    meta.insert("config".into(), config.to_string());
    let tensors: Vec<(String, safetensors::tensor::TensorView)> = st.tensors();
    let huge = dir.join("huge.safetensors");
    std::fs::write(&huge, safetensors::serialize(tensors, Some(meta)).unwrap()).unwrap();
    let h = huge.to_str().unwrap();
    let text = dir.join("t.py");
    std::fs::write(&text, MODULE).unwrap();
    let out = dir.join("out.safetensors");
    for args in [
        vec!["score", "--checkpoint", h, text.to_str().unwrap()],
        vec!["init", "--arch", "hybrid", "--decoder-from", h, "--out", out.to_str().unwrap()],
        vec!["train", "--arch", "hybrid", "--decoder-from", h, "--steps", "1", "--out", dir.join("run").to_str().unwrap()],
        vec!["train", "--arch", "gpt2", "--init-from", h, "--steps", "1", "--out", dir.join("run").to_str().unwrap()],
    ] {
        let (o, _) = run_limited(&args, Some(4 << 30));
        let e = refused(&o);
        assert!(e.contains("declares a model of") && e.contains("parameters but holds only"), "{}: {e}", args[0]);
    }
    assert!(!out.exists() && !dir.join("run/config.json").exists());
}

/// NaN weights are refused at load, naming the tensor (they would generate `!!!!` without a word).
#[test]
fn nan_weights_are_refused_naming_the_tensor() {
    let dir = tmp("nan");
    let ckpt = dir.join("tiny.safetensors");
    assert!(run(&["init", "--arch", "gpt2", "--preset", "tiny", "--out", ckpt.to_str().unwrap()]).status.success());
    let bytes = std::fs::read(&ckpt).unwrap();
    let st = safetensors::SafeTensors::deserialize(&bytes).unwrap();
    let (_, header) = safetensors::SafeTensors::read_metadata(&bytes).unwrap();
    let mut tensors: Vec<(String, Vec<usize>, Vec<u8>)> =
        st.tensors().into_iter().map(|(n, v)| (n, v.shape().to_vec(), v.data().to_vec())).collect();
    let victim = tensors.iter_mut().find(|(n, _, _)| n.contains("ln_f.gamma")).expect("a final norm");
    victim.2[..4].copy_from_slice(&f32::NAN.to_le_bytes());
    let name = victim.0.clone();
    let views: Vec<(String, safetensors::tensor::TensorView)> = tensors
        .iter()
        .map(|(n, s, d)| (n.clone(), safetensors::tensor::TensorView::new(safetensors::Dtype::F32, s.clone(), d).unwrap()))
        .collect();
    std::fs::write(&ckpt, safetensors::serialize(views, header.metadata().clone()).unwrap()).unwrap();
    let e = refused(&run(&["generate", "--checkpoint", ckpt.to_str().unwrap(), "--prompt", "def f():", "--max-new-tokens", "4"]));
    assert!(e.contains(&format!("tensor `{name}` holds 1 NaN or infinite values")), "{e}");
}

/// A checkpoint write killed mid-way left a temporary directory: the next write of the run removes it.
#[test]
fn temporaries_of_a_killed_checkpoint_write_are_removed_by_the_next_one() {
    let dir = tmp("stale");
    let tree = dir.join("tree");
    write(&tree.join("a.py"), &MODULE.repeat(40));
    let run_dir = dir.join("run");
    let r = run_dir.to_str().unwrap();
    let common = ["--data", tree.to_str().unwrap(), "--batch-size", "2", "--seq-len", "16", "--quiet"];
    let o = run(&[&["train", "--steps", "4", "--stop-at", "2", "--checkpoint-every", "1", "--out", r][..], &common[..]].concat());
    assert!(o.status.success(), "{}", stderr(&o));
    let stale = run_dir.join("checkpoints/.tmp-step-000003-999999999");
    std::fs::create_dir_all(&stale).unwrap();
    std::fs::write(stale.join("model.safetensors"), "half").unwrap();
    let o = run(&[&["train", "--resume", r][..], &common[..]].concat());
    assert!(o.status.success(), "{}", stderr(&o));
    assert!(!stale.exists(), "the stale temporary is still there");
}

/// Numeric flags out of range are usage errors (exit 2) naming the flag, before any work.
#[test]
fn numeric_flags_out_of_range_are_usage_errors() {
    for args in [
        vec!["train", "--lr", "inf"],
        vec!["train", "--lr=-1"],
        vec!["train", "--batch-size", "0"],
        vec!["train", "--valid-fraction", "1.5"],
        vec!["train", "--stage-lr", "1,nan"],
        vec!["train", "--weight-decay=-0.1"],
        vec!["generate", "--checkpoint", "x", "--prompt", "p", "--top-p", "0"],
        vec!["generate", "--checkpoint", "x", "--prompt", "p", "--temperature", "nan"],
        vec!["humaneval", "--canonical", "--timeout", "1e20"],
        vec!["data", "prepare", "--data", "x", "--out", "y", "--shard-tokens", "0"],
        vec!["bench", "--batch-size", "0"],
    ] {
        let out = run(&args);
        let e = stderr(&out);
        // `--timeout` is checked when the sandbox is made (exit 1); the rest by the parser (exit 2).
        assert!(matches!(out.status.code(), Some(1 | 2)), "{args:?}: {e}");
        assert!(!e.contains("panicked"), "{args:?}: {e}");
        let flag = args.iter().rev().find(|a| a.starts_with("--")).unwrap().split('=').next().unwrap();
        assert!(e.contains(flag), "{args:?}: {e}");
    }
}
