//! `hnet-gpt train` end to end, at tiny scale: every architecture, real data, faults, exact resume, signals.

mod common;
use common::Scratch;

use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};
use std::time::{Duration, Instant};

fn bin() -> Command {
    Command::new(env!("CARGO_BIN_EXE_hnet-gpt"))
}

fn tmp(name: &str) -> Scratch {
    Scratch::new("train", name)
}

/// Small, fast settings shared by the tests.
const TINY: &[&str] = &["--preset", "tiny", "--seq-len", "32", "--batch-size", "4", "--eval-batches", "2", "--warmup", "2", "--quiet"];

fn train(args: &[&str]) -> Output {
    bin().arg("train").args(TINY).args(args).output().unwrap()
}

fn ok(out: Output) -> String {
    assert!(out.status.success(), "failed ({:?}): {}", out.status.code(), String::from_utf8_lossy(&out.stderr));
    String::from_utf8_lossy(&out.stderr).into_owned()
}

fn metrics(run: &Path) -> Vec<serde_json::Value> {
    std::fs::read_to_string(run.join("metrics.jsonl")).unwrap().lines().map(|l| serde_json::from_str(l).unwrap()).collect()
}

fn train_losses(run: &Path) -> Vec<f64> {
    metrics(run).iter().filter(|m| m["kind"] == "train").map(|m| m["loss"].as_f64().unwrap()).collect()
}

fn summary(run: &Path) -> serde_json::Value {
    serde_json::from_slice(&std::fs::read(run.join("summary.json")).unwrap()).unwrap()
}

#[test]
fn every_architecture_trains_on_the_builtin_corpus() {
    let dir = tmp("archs");
    for arch in ["gpt2", "hnet", "hybrid"] {
        let run = dir.join(arch);
        ok(train(&["--arch", arch, "--steps", "4", "--eval-every", "2", "--out", run.to_str().unwrap()]));
        let s = summary(&run);
        assert_eq!(s["steps"], 4, "{arch}");
        assert!(s["tokens_per_s"].as_f64().unwrap() > 0.0);
        let m = metrics(&run);
        assert_eq!(m.iter().filter(|m| m["kind"] == "train").count(), 4);
        let valid: Vec<_> = m.iter().filter(|m| m["kind"] == "valid").collect();
        assert_eq!(valid.len(), 2);
        assert!(valid[0]["bits_per_byte"].as_f64().unwrap() > 0.0);
        assert_eq!(valid[0]["mean_chunk_tokens"].is_null(), arch == "gpt2", "{arch}: chunk length reported only with chunking");
        // The final checkpoint is a normal checkpoint the other commands load.
        let ckpt = run.join("checkpoints/step-000004/model.safetensors");
        let info = bin().args(["info", "--checkpoint", ckpt.to_str().unwrap(), "--json"]).output().unwrap();
        assert!(info.status.success());
        assert!(run.join("checkpoints/best/model.safetensors").is_file());
        // Plots.
        assert!(bin().args(["plot", run.to_str().unwrap()]).status().unwrap().success());
        assert!(std::fs::read_to_string(run.join("loss.svg")).unwrap().contains("<svg"));
        assert_eq!(run.join("chunks.svg").exists(), arch != "gpt2");
    }
}

#[test]
fn learning_actually_happens() {
    let dir = tmp("learn");
    let run = dir.join("run");
    ok(train(&["--arch", "gpt2", "--steps", "40", "--eval-every", "40", "--lr", "3e-3", "--out", run.to_str().unwrap()]));
    let losses = train_losses(&run);
    let first: f64 = losses[..5].iter().sum::<f64>() / 5.0;
    let last: f64 = losses[35..].iter().sum::<f64>() / 5.0;
    assert!(last < first - 1.0, "loss went from {first:.3} to {last:.3}");
}

/// A directory of real Python (files copied from the CPython standard library when this machine has it, else the
/// repository's own scripts) with one non-UTF-8 file among them, and a CodeSearchNet JSONL with a broken line.
#[test]
fn real_python_and_codesearchnet_jsonl_with_faults() {
    let dir = tmp("data");
    let src = dir.join("src");
    std::fs::create_dir_all(src.join("pkg")).unwrap();
    let stdlib = Path::new("/usr/lib/python3.11");
    let sources: Vec<PathBuf> = if stdlib.join("textwrap.py").is_file() {
        ["textwrap.py", "heapq.py", "bisect.py", "fnmatch.py", "colorsys.py", "shlex.py", "glob.py", "keyword.py"]
            .iter()
            .map(|f| stdlib.join(f))
            .collect()
    } else {
        vec![
            Path::new(env!("CARGO_MANIFEST_DIR")).join("../scripts/fixtures/gen_reference.py"),
            Path::new(env!("CARGO_MANIFEST_DIR")).join("../model/data/builtin_corpus.py"),
        ]
    };
    for (i, s) in sources.iter().enumerate() {
        std::fs::copy(s, src.join(if i % 2 == 0 { PathBuf::from(format!("m{i}.py")) } else { Path::new("pkg").join(format!("m{i}.py")) }))
            .unwrap();
    }
    std::fs::write(src.join("latin1.py"), b"# caf\xe9\nx = 1\n").unwrap();
    std::fs::write(src.join("notes.txt"), "not code").unwrap();
    let jsonl = dir.join("train.jsonl");
    let good = serde_json::json!({"repo": "a/b", "path": "x.py", "func_name": "f", "language": "python",
        "func_code_string": "def f(x):\n    \"\"\"Double x.\"\"\"\n    return 2 * x\n", "func_documentation_string": "Double x."});
    // Thirty distinct functions (identical copies would be removed as duplicates).
    let mut lines: Vec<String> = (0..30)
        .map(|i| {
            let mut v = good.clone();
            v["func_code_string"] = serde_json::json!(format!("def f{i}(x):\n    \"\"\"Multiply x.\"\"\"\n    return {i} * x\n"));
            v.to_string()
        })
        .collect();
    lines[3] = "{not json".into();
    lines[7] = serde_json::json!({"repo": "a/b"}).to_string();
    std::fs::write(&jsonl, lines.join("\n")).unwrap();
    let run = dir.join("run");
    let stderr = ok(train(&[
        "--arch",
        "hnet",
        "--steps",
        "2",
        "--eval-every",
        "2",
        "--valid-fraction",
        "0.3",
        "--template",
        "--data",
        src.to_str().unwrap(),
        "--data",
        jsonl.to_str().unwrap(),
        "--out",
        run.to_str().unwrap(),
    ]));
    assert!(stderr.contains(&format!("{}:4: not valid JSON", jsonl.display())), "{stderr}");
    assert!(stderr.contains(&format!("{}:8: no `code`", jsonl.display())), "{stderr}");
    assert!(stderr.contains("latin1.py: not UTF-8"), "{stderr}");
    let s = summary(&run);
    assert_eq!(s["data"]["skipped"], 3);
    assert!(s["data"]["records"].as_u64().unwrap() > 28, "{s}");
}

#[test]
fn an_empty_dataset_fails_before_training() {
    let dir = tmp("empty");
    std::fs::write(dir.join("readme.md"), "# nothing to train on").unwrap();
    let out = train(&["--arch", "gpt2", "--steps", "2", "--data", dir.to_str().unwrap(), "--out", dir.join("run").to_str().unwrap()]);
    assert_eq!(out.status.code(), Some(1));
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(stderr.contains("training data is empty"), "{stderr}");
    // A failed start leaves nothing that blocks the same --out.
    assert!(!dir.join("run/metrics.jsonl").exists() && !dir.join("run/config.json").exists());
    let data = dir.join("data.jsonl");
    std::fs::write(&data, functions(31).join("\n")).unwrap();
    ok(train(&["--arch", "gpt2", "--steps", "1", "--data", data.to_str().unwrap(), "--out", dir.join("run").to_str().unwrap()]));
    let missing = train(&["--steps", "2", "--data", "/nonexistent/data", "--out", dir.join("run2").to_str().unwrap()]);
    assert!(String::from_utf8_lossy(&missing.stderr).contains("no such file"));
}

#[test]
fn resuming_continues_exactly() {
    let dir = tmp("resume");
    for arch in ["gpt2", "hybrid"] {
        let (a, b) = (dir.join(format!("{arch}-a")), dir.join(format!("{arch}-b")));
        let common = ["--arch", arch, "--steps", "20", "--eval-every", "5", "--checkpoint-every", "5", "--seed", "4"];
        ok(train(&[&common[..], &["--out", a.to_str().unwrap()]].concat()));
        ok(train(&[&common[..], &["--out", b.to_str().unwrap(), "--stop-at", "10"]].concat()));
        assert_eq!(train_losses(&b).len(), 10);
        let out = bin().args(["train", "--quiet", "--resume", b.to_str().unwrap()]).output().unwrap();
        ok(out);
        let (la, lb) = (train_losses(&a), train_losses(&b));
        assert_eq!(la.len(), 20);
        assert_eq!(lb.len(), 20);
        for (i, (x, y)) in la.iter().zip(&lb).enumerate() {
            assert!((x - y).abs() <= 1e-5, "{arch} step {}: {x} vs {y}", i + 1);
        }
    }
}

/// Data parallelism through burn's collective, on two CPU devices (two replicas in two threads; this machine has
/// no second GPU). For GPT-2 the averaged gradient of two half batches is the full batch's gradient, so the two
/// runs must agree step for step (up to float summation order); the run itself checks at the end that both
/// replicas hold identical weights. The hybrid's ratio loss is a product of batch means, so it only has to run.
#[test]
fn two_devices_train_like_one() {
    let dir = tmp("devices");
    let (one, two) = (dir.join("one"), dir.join("two"));
    let common = ["--arch", "gpt2", "--steps", "6", "--eval-every", "3", "--seed", "2", "--grad-accum", "2"];
    ok(train(&[&common[..], &["--out", one.to_str().unwrap()]].concat()));
    let log = ok(train(&[&common[..], &["--out", two.to_str().unwrap(), "--devices", "2"]].concat()));
    assert!(log.contains("data parallel over 2 devices"), "{log}");
    let (a, b) = (train_losses(&one), train_losses(&two));
    assert_eq!(a.len(), 6);
    for (i, (x, y)) in a.iter().zip(&b).enumerate() {
        assert!((x - y).abs() <= 1e-4, "step {}: one device {x}, two devices {y}", i + 1);
    }
    let hybrid = dir.join("hybrid");
    ok(train(&["--arch", "hybrid", "--steps", "3", "--eval-every", "3", "--devices", "2", "--out", hybrid.to_str().unwrap()]));
    assert_eq!(summary(&hybrid)["steps"], 3);
    // An uneven split is refused before training.
    let out = train(&["--arch", "gpt2", "--steps", "2", "--devices", "3", "--out", dir.join("uneven").to_str().unwrap()]);
    assert!(!out.status.success());
    assert!(String::from_utf8_lossy(&out.stderr).contains("multiple of the number of replicas"));
}

fn wait_for(what: &str, timeout: Duration, mut f: impl FnMut() -> bool) {
    let start = Instant::now();
    while !f() {
        assert!(start.elapsed() < timeout, "timed out waiting for {what}");
        std::thread::sleep(Duration::from_millis(50));
    }
}

fn completed_checkpoints(run: &Path) -> Vec<String> {
    std::fs::read_dir(run.join("checkpoints"))
        .map(|rd| {
            rd.filter_map(|e| e.ok()).map(|e| e.file_name().to_string_lossy().into_owned()).filter(|n| n.starts_with("step-")).collect()
        })
        .unwrap_or_default()
}

#[test]
fn ctrl_c_and_sigterm_write_a_checkpoint_then_exit() {
    for signal in ["INT", "TERM"] {
        let dir = tmp(&format!("sig{signal}"));
        let run = dir.join("run");
        let mut child = bin()
            .arg("train")
            .args(TINY)
            .args(["--steps", "100000", "--checkpoint-every", "100000", "--out", run.to_str().unwrap()])
            .stderr(Stdio::piped())
            .spawn()
            .unwrap();
        wait_for("the first training step", Duration::from_secs(120), || run.join("metrics.jsonl").metadata().is_ok_and(|m| m.len() > 0));
        Command::new("kill").args([&format!("-{signal}"), &child.id().to_string()]).status().unwrap();
        let status = child.wait().unwrap();
        assert_eq!(status.code(), Some(130), "SIG{signal}");
        let mut names = completed_checkpoints(&run);
        names.sort();
        // Step 0 (written before training) and the step the signal landed on.
        assert_eq!(names.len(), 2, "{names:?}");
        assert_eq!(names[0], "step-000000");
        let step: usize = names[1].trim_start_matches("step-").parse().unwrap();
        assert_eq!(metrics(&run).iter().filter(|m| m["kind"] == "train").count(), step);
        ok(bin().args(["train", "--quiet", "--resume", run.to_str().unwrap(), "--stop-at", &(step + 2).to_string()]).output().unwrap());
        assert_eq!(train_losses(&run).len(), step + 2);
    }
}

fn functions(n: usize) -> Vec<String> {
    (0..n)
        .map(|i| serde_json::json!({"code": format!("def scale_{i}(values):\n    \"\"\"Scale by {i}.\"\"\"\n    return [v * {i} for v in values]\n")}).to_string())
        .collect()
}

#[test]
fn small_data_without_paths_still_trains_and_tiny_data_trains_without_validation() {
    let dir = tmp("small");
    // 31 functions, no repo or path: split record by record; validation gets at least one sequence.
    let jsonl = dir.join("small.jsonl");
    std::fs::write(&jsonl, functions(31).join("\n")).unwrap();
    let run = dir.join("run");
    let stderr = ok(train(&["--steps", "2", "--eval-every", "2", "--data", jsonl.to_str().unwrap(), "--out", run.to_str().unwrap()]));
    let s = summary(&run);
    assert!(s["data"]["valid_records"].as_u64().unwrap() >= 1 && s["data"]["train_records"].as_u64().unwrap() >= 20, "{s}\n{stderr}");
    assert!(s["best_valid_loss"].as_f64().is_some());
    let config: serde_json::Value = serde_json::from_slice(&std::fs::read(run.join("config.json")).unwrap()).unwrap();
    let split = &config["split"];
    assert_eq!(split["valid_keys"].as_array().unwrap().len() as u64, s["data"]["valid_records"].as_u64().unwrap());
    assert!(split["valid_keys"][0].as_str().unwrap().starts_with("text:"), "{split}");
    assert_eq!(split["hash"].as_str().unwrap().len(), 16);
    // Duplicates are removed before the split, and counted.
    let dupes = dir.join("dupes.jsonl");
    let mut lines = functions(31);
    lines.extend(functions(5));
    std::fs::write(&dupes, lines.join("\n")).unwrap();
    let run = dir.join("dupes");
    // The settings' flags (groups shared with `compare` and `bench`) land in the run's config under one name each;
    // the ratio loss's old flag name still works.
    let flags = "--lr 0.01 --min-lr-ratio 0.5 --schedule wsd --warmup 0 --batch-size 4 --seq-len 64 --weight-decay 0.2 \
                 --grad-clip 0.5 --eval-every 5 --eval-batches 2 --ratio-weight 0.5";
    let mut args: Vec<&str> = flags.split_whitespace().collect();
    args.extend(["--preset", "tiny", "--quiet", "--steps", "1", "--data", dupes.to_str().unwrap(), "--out", run.to_str().unwrap()]);
    ok(bin().arg("train").args(&args).output().unwrap());
    let t = &serde_json::from_slice::<serde_json::Value>(&std::fs::read(run.join("config.json")).unwrap()).unwrap()["train"];
    let got = [&t["lr"], &t["min_lr_ratio"], &t["schedule"], &t["warmup_steps"], &t["batch_size"], &t["seq_len"]];
    assert_eq!(got.map(|v| v.to_string()), ["0.01", "0.5", "\"wsd\"", "0", "4", "64"]);
    let got = [&t["adamw"]["weight_decay"], &t["adamw"]["grad_clip"], &t["eval_every"], &t["eval_batches"], &t["ratio_loss_weight"]];
    assert_eq!(got.map(|v| v.to_string()), ["0.2", "0.5", "5", "2", "0.5"]);
    assert_eq!(summary(&run)["data"]["duplicates_removed"], 5);
    // One function cannot fill both sides: train without validation, and say so.
    let tiny = dir.join("tiny.jsonl");
    std::fs::write(&tiny, functions(1).join("\n")).unwrap();
    let run = dir.join("tiny");
    let stderr = ok(train(&["--steps", "2", "--eval-every", "1", "--data", tiny.to_str().unwrap(), "--out", run.to_str().unwrap()]));
    assert!(stderr.contains("training WITHOUT validation"), "{stderr}");
    assert!(summary(&run)["best_valid_loss"].is_null());
    assert!(metrics(&run).iter().all(|m| m["kind"] == "train"));
    assert!(run.join("checkpoints/step-000002/model.safetensors").is_file());
}

#[test]
fn a_single_source_file_and_hugging_face_codesearchnet_fields_train() {
    let dir = tmp("hf-fields");
    let file = dir.join("one.py");
    let body: String = (0..20).map(|i| format!("def f{i}(a, b):\n    \"\"\"Combine {i}.\"\"\"\n    return a * {i} + b\n\n")).collect();
    std::fs::write(&file, body).unwrap();
    let jsonl = dir.join("hf.jsonl");
    let lines: Vec<String> = (0..20)
        .map(|i| {
            serde_json::json!({"repository_name": "org/proj", "func_path_in_repository": format!("m{}.py", i % 7), "func_name": format!("g{i}"),
                "func_code_string": format!("def g{i}(x):\n    return x - {i}\n"), "func_documentation_string": "", "language": "python"})
            .to_string()
        })
        .collect();
    std::fs::write(&jsonl, lines.join("\n")).unwrap();
    let run = dir.join("run");
    let stderr =
        ok(train(&["--steps", "1", "--data", file.to_str().unwrap(), "--data", jsonl.to_str().unwrap(), "--out", run.to_str().unwrap()]));
    assert!(!stderr.contains("warning"), "{stderr}");
    assert_eq!(summary(&run)["data"]["records"], 40);
}

#[test]
fn sigkill_at_any_moment_leaves_a_loadable_checkpoint() {
    let dir = tmp("sigkill");
    for (attempt, delay_ms) in [150u64, 420, 777].into_iter().enumerate() {
        let run = dir.join(format!("run{attempt}"));
        let mut child = bin()
            .arg("train")
            .args(TINY)
            .args(["--steps", "100000", "--checkpoint-every", "1", "--keep-last", "2", "--out", run.to_str().unwrap()])
            .stderr(Stdio::null())
            .spawn()
            .unwrap();
        wait_for("a first checkpoint", Duration::from_secs(120), || !completed_checkpoints(&run).is_empty());
        std::thread::sleep(Duration::from_millis(delay_ms));
        child.kill().unwrap(); // SIGKILL
        child.wait().unwrap();
        let mut names = completed_checkpoints(&run);
        names.sort();
        let latest = run.join("checkpoints").join(names.last().unwrap());
        let info = bin().args(["info", "--checkpoint", latest.join("model.safetensors").to_str().unwrap()]).output().unwrap();
        assert!(info.status.success(), "{}", String::from_utf8_lossy(&info.stderr));
        let step: usize = names.last().unwrap().trim_start_matches("step-").parse().unwrap();
        let out =
            bin().args(["train", "--quiet", "--resume", run.to_str().unwrap(), "--stop-at", &(step + 1).to_string()]).output().unwrap();
        ok(out);
        assert_eq!(metrics(&run).iter().filter(|m| m["kind"] == "train").count(), step + 1);
    }
}

/// Reads one tensor of a checkpoint as f32 values.
fn tensor(path: &Path, name: &str) -> Vec<f32> {
    let bytes = std::fs::read(path).unwrap();
    let st = safetensors::SafeTensors::deserialize(&bytes).unwrap();
    st.tensor(name).unwrap().data().chunks_exact(4).map(|c| f32::from_le_bytes([c[0], c[1], c[2], c[3]])).collect()
}

#[test]
fn the_hybrid_decoder_starts_pretrained_stays_frozen_then_really_trains() {
    let dir = tmp("unfreeze");
    let gpt2 = dir.join("gpt2");
    ok(train(&["--arch", "gpt2", "--steps", "3", "--eval-every", "3", "--out", gpt2.to_str().unwrap()]));
    let source = gpt2.join("checkpoints/step-000003/model.safetensors");
    let run = dir.join("hybrid");
    ok(train(&[
        "--arch",
        "hybrid",
        "--steps",
        "6",
        "--eval-every",
        "6",
        "--checkpoint-every",
        "1",
        "--keep-last",
        "10",
        "--decoder-from",
        source.to_str().unwrap(),
        "--unfreeze-top-half-at",
        "2",
        "--unfreeze-all-at",
        "4",
        "--out",
        run.to_str().unwrap(),
    ]));
    let at = |step: usize, name: &str| tensor(&run.join(format!("checkpoints/step-{step:06}/model.safetensors")), name);
    let src = |name: &str| tensor(&source, name);
    // Steps 1–2 (frozen): everything GPT-2 equals the source exactly.
    assert_eq!(at(2, "net.gpt2.h.1.mlp.c_fc.weight"), src("net.h.1.mlp.c_fc.weight"));
    assert_eq!(at(2, "net.gpt2.wte.weight"), src("net.wte.weight"));
    // Steps 3–4 (top half): block 1 trains, block 0 and the embeddings do not.
    assert_ne!(at(4, "net.gpt2.h.1.mlp.c_fc.weight"), src("net.h.1.mlp.c_fc.weight"));
    assert_eq!(at(4, "net.gpt2.h.0.mlp.c_fc.weight"), src("net.h.0.mlp.c_fc.weight"));
    assert_eq!(at(4, "net.gpt2.wte.weight"), src("net.wte.weight"));
    // Steps 5–6 (all): block 0 and the embeddings train too.
    assert_ne!(at(6, "net.gpt2.h.0.mlp.c_fc.weight"), src("net.h.0.mlp.c_fc.weight"));
    assert_ne!(at(6, "net.gpt2.wte.weight"), src("net.wte.weight"));
    // The H-Net part trains from step 1.
    assert_ne!(at(1, "net.stage.main.layers.0.mixer.wqkv.weight"), at(2, "net.stage.main.layers.0.mixer.wqkv.weight"));
}

/// A site-packages of five MIT packages (and a GPL one) of made-up but varied Python.
fn site_packages(dir: &Path) {
    for (p, pkg) in ["alpha", "beta", "gamma", "delta", "epsilon", "copyleft"].iter().enumerate() {
        let info = dir.join(format!("{pkg}-0.{p}.dist-info"));
        std::fs::create_dir_all(&info).unwrap();
        let licence = if *pkg == "copyleft" { "GPL-3.0-only" } else { "MIT" };
        std::fs::write(
            info.join("METADATA"),
            format!("Metadata-Version: 2.1\nName: {pkg}\nVersion: 0.{p}\nLicense-Expression: {licence}\n"),
        )
        .unwrap();
        std::fs::write(info.join("top_level.txt"), pkg).unwrap();
        std::fs::create_dir_all(dir.join(pkg)).unwrap();
        for f in 0..4 {
            let body: String = (0..25)
                .map(|i| format!("def {pkg}_{f}_{i}(items, k={i}):\n    \"\"\"Scale item {i} of {pkg}.\"\"\"\n    return [x * k + {p} for x in items if x > {f}]\n\n"))
                .collect();
            std::fs::write(dir.join(pkg).join(format!("mod{f}.py")), body).unwrap();
        }
    }
}

#[test]
fn a_prepared_corpus_trains_memory_mapped_and_evaluates_on_its_held_out_packages() {
    let dir = tmp("prepared");
    site_packages(&dir.join("site-packages"));
    let corpus = dir.join("corpus");
    let prepare = |out: &Path, extra: &[&str]| {
        bin()
            .args(["data", "prepare", "--data", dir.join("site-packages").to_str().unwrap(), "--out", out.to_str().unwrap()])
            .args(["--valid-fraction", "0.3", "--min-valid-bytes", "2000", "--quiet"])
            .args(extra)
            .output()
            .unwrap()
    };
    let log = ok(prepare(&corpus, &[]));
    assert!(log.contains("packages left out: copyleft (GPL-3.0-only"), "{log}");
    let manifest: serde_json::Value = serde_json::from_slice(&std::fs::read(corpus.join("manifest.json")).unwrap()).unwrap();
    let held: Vec<String> =
        manifest["split"]["valid_packages"].as_array().unwrap().iter().map(|v| v.as_str().unwrap().to_string()).collect();
    assert!(!held.is_empty() && held.len() < 5, "{held:?}");
    assert_eq!(manifest["dtype"], "u16le");
    // Nothing is overwritten.
    let again = prepare(&corpus, &[]);
    assert!(!again.status.success() && String::from_utf8_lossy(&again.stderr).contains("already exists"));

    let run = dir.join("run");
    ok(train(&["--arch", "gpt2", "--steps", "3", "--eval-every", "3", "--data", corpus.to_str().unwrap(), "--out", run.to_str().unwrap()]));
    let data = &summary(&run)["data"];
    assert_eq!(data["prepared"], true);
    assert_eq!(data["train_tokens"], manifest["splits"]["train"]["tokens"]);
    let config: serde_json::Value = serde_json::from_slice(&std::fs::read(run.join("config.json")).unwrap()).unwrap();
    assert_eq!(config["split"]["valid_keys"].as_array().unwrap().len(), held.len());
    assert_eq!(config["split"]["hash"], manifest["split"]["hash"]);
    assert!(metrics(&run).iter().any(|m| m["kind"] == "valid"));
    // A prepared corpus is used alone.
    let both = train(&["--steps", "1", "--data", corpus.to_str().unwrap(), "--data", dir.join("site-packages").to_str().unwrap()]);
    assert!(String::from_utf8_lossy(&both.stderr).contains("only --data"));

    let ckpt = run.join("checkpoints/step-000003/model.safetensors");
    let eval = bin()
        .args([
            "eval",
            "--checkpoint",
            ckpt.to_str().unwrap(),
            "--data",
            corpus.to_str().unwrap(),
            "--headers",
            "2",
            "--max-tokens",
            "500",
            "--json",
        ])
        .output()
        .unwrap();
    assert!(eval.status.success(), "{}", String::from_utf8_lossy(&eval.stderr));
    let report: serde_json::Value = serde_json::from_slice(&eval.stdout).unwrap();
    let reason = report["scored"]["reason"].as_str().unwrap();
    assert!(reason.contains("holds out"), "{reason}");
    let files = report["scored"]["files"].as_array().unwrap();
    assert!(!files.is_empty());
    for f in files {
        let package = f.as_str().unwrap().split('/').next().unwrap();
        assert!(held.iter().any(|h| h == package), "{f} is not from a held-out package {held:?}");
    }

    // A run that starts from every weight of that checkpoint: its schedule, a fresh optimizer, other data with the
    // same tokenizer (here the same corpus with its docstrings cut).
    let summarised = dir.join("corpus-summary");
    ok(prepare(&summarised, &["--docstrings", "summary"]));
    let m: serde_json::Value = serde_json::from_slice(&std::fs::read(summarised.join("manifest.json")).unwrap()).unwrap();
    assert_eq!(m["options"]["docstrings"], "summary");
    let next = dir.join("next");
    let (c, d) = (ckpt.to_str().unwrap(), summarised.to_str().unwrap());
    ok(train(&[
        "--arch",
        "gpt2",
        "--init-from",
        c,
        "--steps",
        "2",
        "--checkpoint-every",
        "1",
        "--data",
        d,
        "--out",
        next.to_str().unwrap(),
    ]));
    let at = |step: usize| next.join(format!("checkpoints/step-{step:06}/model.safetensors"));
    for name in ["net.wte.weight", "net.h.1.mlp.c_fc.weight"] {
        assert_eq!(tensor(&at(0), name), tensor(&ckpt, name), "{name} starts as the checkpoint's");
        assert_ne!(tensor(&at(2), name), tensor(&ckpt, name), "{name} trains");
    }
    let config: serde_json::Value = serde_json::from_slice(&std::fs::read(next.join("config.json")).unwrap()).unwrap();
    assert_eq!(config["init_from"], c);
    assert_eq!(config["train"]["steps"], 2);
    // Another architecture, or data read with another tokenizer, is refused before training.
    let own = dir.join("corpus-own");
    ok(prepare(&own, &["--tokenizer-vocab", "300"]));
    for (args, says) in [
        (vec!["--arch", "hybrid", "--init-from", c, "--data", d], "is a gpt2 model, not --arch hybrid"),
        (vec!["--arch", "gpt2", "--init-from", c, "--data", own.to_str().unwrap()], "tokenizer is not the data's"),
    ] {
        let out = train(&[&args[..], &["--steps", "1", "--out", dir.join("refused").to_str().unwrap()]].concat());
        assert!(!out.status.success() && String::from_utf8_lossy(&out.stderr).contains(says), "{}", String::from_utf8_lossy(&out.stderr));
        assert!(!dir.join("refused/config.json").exists());
    }
}
