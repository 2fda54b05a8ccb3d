//! `hnet-gpt eval` and `hnet-gpt compare` at tiny scale.

mod common;
use common::Scratch;

use std::path::{Path, PathBuf};
use std::process::{Command, Output};

fn bin() -> Command {
    Command::new(env!("CARGO_BIN_EXE_hnet-gpt"))
}

fn tmp(name: &str) -> Scratch {
    Scratch::new("eval", name)
}

fn ok(out: Output) -> String {
    assert!(out.status.success(), "failed ({:?}): {}", out.status.code(), String::from_utf8_lossy(&out.stderr));
    String::from_utf8(out.stdout).unwrap()
}

fn trained(dir: &Path, arch: &str) -> PathBuf {
    let run = dir.join(arch);
    ok(bin()
        .args([
            "train",
            "--quiet",
            "--arch",
            arch,
            "--preset",
            "tiny",
            "--steps",
            "3",
            "--seq-len",
            "32",
            "--batch-size",
            "4",
            "--eval-every",
            "3",
            "--eval-batches",
            "1",
        ])
        .args(["--out", run.to_str().unwrap()])
        .output()
        .unwrap());
    run.join("checkpoints/step-000003/model.safetensors")
}

#[test]
fn eval_reports_every_metric() {
    let dir = tmp("eval");
    for arch in ["gpt2", "hnet"] {
        let ckpt = trained(&dir, arch);
        if arch == "gpt2" {
            // A problem set of its own, generated here: the first two of the recipe's simple headers, two samples
            // each at pass@k's temperature.
            let headers = concat!(env!("CARGO_MANIFEST_DIR"), "/../scripts/experiments/simple-headers.jsonl");
            let out = ok(bin()
                .args(["humaneval", "--problem-file", headers, "--checkpoint", ckpt.to_str().unwrap()])
                .args(["--problems", "2", "--samples", "2", "--json"])
                .output()
                .unwrap());
            let r: serde_json::Value = serde_json::from_str(&out).unwrap();
            assert_eq!((r["problems"].as_u64(), r["samples"].as_array().map(Vec::len)), (Some(2), Some(4)), "{r}");
            assert_eq!(r["samples"][2]["task_id"], "simple/fibonacci");
            assert_eq!((r["temperature"].as_f64(), r["sandboxed"].as_bool()), (Some(0.8), Some(true)), "{r}");
            assert!(r["pass@1"].is_number(), "{r}");
        }
        let out = ok(bin()
            .args(["eval", "--checkpoint", ckpt.to_str().unwrap(), "--json", "--headers", "3", "--humaneval", "2"])
            .output()
            .unwrap());
        let r: serde_json::Value = serde_json::from_str(&out).unwrap();
        let ppl = &r["perplexity"];
        assert!(ppl["tokens"].as_u64().unwrap() > 100, "{ppl}");
        assert!(ppl["perplexity"].as_f64().unwrap() > 1.0 && ppl["bits_per_byte"].as_f64().unwrap() > 0.0);
        let seed = &r["seed_five_prompts"];
        assert_eq!(seed["cases"].as_array().unwrap().len(), 5);
        let overall =
            0.4 * seed["syntax"].as_f64().unwrap() + 0.4 * seed["pattern"].as_f64().unwrap() + 0.2 * seed["code_token"].as_f64().unwrap();
        assert!((overall - seed["overall"].as_f64().unwrap()).abs() < 1e-9);
        assert_eq!(r["header_syntax"]["completions"], 3);
        assert_eq!(r["humaneval"]["problems"], 2);
        assert_eq!(r["humaneval"]["sandboxed"], true);
        match arch {
            "gpt2" => assert!(r["chunks"].is_null()),
            _ => {
                let c = &r["chunks"];
                assert!(c["mean_chunk_tokens"].as_f64().unwrap() >= 1.0, "{c}");
                let p = c["statement_starts"]["precision"].as_f64().unwrap();
                assert!((0.0..=1.0).contains(&p));
                assert!(c["statement_starts"]["reference"].as_u64().unwrap() > 0);
            }
        }
        // Deterministic given the seed.
        let again: serde_json::Value = serde_json::from_str(&ok(bin()
            .args(["eval", "--checkpoint", ckpt.to_str().unwrap(), "--json", "--headers", "3"])
            .output()
            .unwrap()))
        .unwrap();
        assert_eq!(again["seed_five_prompts"], r["seed_five_prompts"]);
        assert_eq!(again["header_syntax"], r["header_syntax"]);
        // And readable.
        let text = ok(bin().args(["eval", "--checkpoint", ckpt.to_str().unwrap(), "--headers", "1"]).output().unwrap());
        assert!(text.contains("bits per byte") && text.contains("seed 5 prompts"), "{text}");
    }
}

#[test]
fn compare_trains_all_three_and_writes_results() {
    let dir = tmp("compare");
    let out = dir.join("cmp");
    let args = [
        "compare",
        "--preset",
        "tiny",
        "--seeds",
        "2",
        "--steps",
        "3",
        "--batch-size",
        "4",
        "--seq-len",
        "32",
        "--eval-every",
        "3",
        "--eval-tokens",
        "500",
        "--headers",
        "2",
    ];
    // Run from `dir` with a relative --out, as people do: no path of this machine may appear in the results.
    let stdout = ok(bin().args(args).args(["--out", "cmp"]).current_dir(&dir).output().unwrap());
    assert!(stdout.contains("| metric | gpt2 | hnet | hybrid |"), "{stdout}");
    let md = std::fs::read_to_string(out.join("results.md")).unwrap();
    assert!(md.contains("bits per byte") && md.contains(" ± "), "{md}");
    let json: serde_json::Value = serde_json::from_slice(&std::fs::read(out.join("results.json")).unwrap()).unwrap();
    let runs = json["runs"].as_array().unwrap();
    assert_eq!(runs.len(), 6);
    // Equal budgets: every run saw the same number of tokens.
    let tokens: Vec<u64> = runs.iter().map(|r| r["summary"]["tokens"].as_u64().unwrap()).collect();
    assert!(tokens.iter().all(|&t| t == tokens[0] && t == 3 * 4 * 32), "{tokens:?}");
    assert!(runs.iter().all(|r| r["causality_max_change"].as_f64().unwrap() <= 1e-5));
    assert_eq!(json["table"]["bits per byte/gpt2"]["n"], 2);
    assert!(std::fs::read_to_string(out.join("valid_loss.svg")).unwrap().contains("<svg"));
    assert!(out.join("chunk_lengths.svg").is_file());
    let results = std::fs::read_to_string(out.join("results.json")).unwrap() + &md;
    assert!(!results.contains(dir.to_str().unwrap()) && !results.contains(env!("CARGO_BIN_EXE_hnet-gpt")), "machine paths in the results");
    assert!(json["command"].as_str().unwrap().starts_with("hnet-gpt compare --preset tiny"));
    assert!(json["device"].as_str().unwrap().starts_with("cpu"));
    // Rows over nothing say n/a: gpt2 has no chunks.
    assert!(md.contains("| statement-start precision (higher is better) | n/a (0 of 2 runs) |"), "{md}");
    assert!(md.contains("…at chance"), "{md}");
    // The complete log of the invocation sits next to the table.
    let log = std::fs::read_to_string(out.join("compare.log")).unwrap();
    assert!(
        log.starts_with("$ hnet-gpt compare") && log.contains("training hybrid-seed1") && log.contains("evaluating hybrid seed 1"),
        "{log}"
    );
    // Run again: every run matches its recorded settings and is reused; with another learning rate, retrained.
    let again = bin().args(args).args(["--out", "cmp"]).current_dir(&dir).output().unwrap();
    let err = String::from_utf8_lossy(&again.stderr);
    assert!(again.status.success() && err.matches("already trained with these settings, reusing it").count() == 6, "{err}");
    let changed = bin().args(args).args(["--out", "cmp", "--lr", "2e-3"]).current_dir(&dir).output().unwrap();
    let err = String::from_utf8_lossy(&changed.stderr);
    assert!(changed.status.success() && err.matches("trained with other settings or data: training it again").count() == 6, "{err}");
}

/// A directory of real Python: stdlib files when this machine has them, else generated functions.
fn python_dir(dir: &Path, files: &[&str]) -> PathBuf {
    std::fs::create_dir_all(dir).unwrap();
    let stdlib = Path::new("/usr/lib/python3.11");
    for (i, f) in files.iter().enumerate() {
        let target = dir.join(if i % 3 == 0 { format!("sub/{f}") } else { f.to_string() });
        std::fs::create_dir_all(target.parent().unwrap()).unwrap();
        match std::fs::read(stdlib.join(f)) {
            Ok(bytes) => std::fs::write(&target, bytes).unwrap(),
            Err(_) => {
                std::fs::write(&target, (0..30).map(|j| format!("def f{i}_{j}(x):\n    return x + {j}\n\n")).collect::<String>()).unwrap()
            }
        }
    }
    dir.to_path_buf()
}

#[test]
fn eval_scores_what_the_run_held_out_and_all_of_data_it_never_saw() {
    let dir = tmp("heldout");
    let seen = python_dir(
        &dir.join("seen"),
        &["textwrap.py", "heapq.py", "bisect.py", "fnmatch.py", "colorsys.py", "shlex.py", "glob.py", "keyword.py"],
    );
    let unseen = python_dir(&dir.join("unseen"), &["quopri.py", "stat.py", "sched.py"]);
    let run = dir.join("run");
    ok(bin()
        .args([
            "train",
            "--quiet",
            "--arch",
            "gpt2",
            "--preset",
            "tiny",
            "--steps",
            "2",
            "--seq-len",
            "32",
            "--batch-size",
            "4",
            "--eval-every",
            "2",
            "--eval-batches",
            "1",
        ])
        .args(["--valid-fraction", "0.3", "--data", seen.to_str().unwrap(), "--out", run.to_str().unwrap()])
        .output()
        .unwrap());
    let ckpt = run.join("checkpoints/step-000002/model.safetensors");
    let config: serde_json::Value = serde_json::from_slice(&std::fs::read(run.join("config.json")).unwrap()).unwrap();
    let held: Vec<String> = config["split"]["valid_keys"].as_array().unwrap().iter().map(|k| k.as_str().unwrap().to_string()).collect();
    assert!(!held.is_empty());
    let eval = |data: &Path| {
        bin()
            .args(["eval", "--checkpoint", ckpt.to_str().unwrap(), "--json", "--headers", "0", "--data", data.to_str().unwrap()])
            .output()
            .unwrap()
    };
    // The run's own data: exactly the files it held out.
    let r: serde_json::Value = serde_json::from_str(&ok(eval(&seen))).unwrap();
    let mut scored: Vec<String> = r["scored"]["files"].as_array().unwrap().iter().map(|k| k.as_str().unwrap().to_string()).collect();
    scored.sort();
    scored.dedup();
    assert_eq!(scored, held);
    assert!(r["scored"]["reason"].as_str().unwrap().contains("held out"), "{}", r["scored"]);
    // A directory the run never saw: all of it, without --all, and the output says why.
    let r: serde_json::Value = serde_json::from_str(&ok(eval(&unseen))).unwrap();
    let mut scored: Vec<String> = r["scored"]["files"].as_array().unwrap().iter().map(|k| k.as_str().unwrap().to_string()).collect();
    scored.dedup();
    assert_eq!(scored.len(), 3, "{scored:?}");
    assert!(r["scored"]["reason"].as_str().unwrap().contains("never trained on this data"), "{}", r["scored"]);
    // Part of the training data under another root: refused rather than scored as if unseen.
    let part = eval(&seen.join("sub"));
    assert_eq!(part.status.code(), Some(1));
    assert!(String::from_utf8_lossy(&part.stderr).contains("overlaps what"), "{}", String::from_utf8_lossy(&part.stderr));
}
