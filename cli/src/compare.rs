//! `hnet-gpt compare`: the honest three-way comparison. For each seed, the three architectures train with the
//! same data, order, schedule and token budget (parameter counts within ±10%), through the very `train` command a
//! user runs; each final checkpoint is evaluated by `eval`. A causality check runs on every architecture before
//! training and on every trained model after; if any fails, no table is written.
//!
//! Output in `--out`: `results.md` (mean ± std per metric per architecture, the exact command and machine),
//! `results.json`, `valid_loss.svg` (validation curves overlaid), `chunk_lengths.svg`, and one run directory per
//! architecture and seed.

use std::path::PathBuf;

use anyhow::{bail, Context, Result};
use burn::tensor::backend::Backend;
use clap::Parser;
use hnet_gpt_model::{causality, checkpoint, Arch, Model, ModelConfig};
use serde_json::{json, Value};

use crate::args::{Cli, Command, CompareArgs};
use crate::eval::{evaluate, EvalSettings};
use crate::plot;

fn mean_std(xs: &[f64]) -> (f64, f64) {
    let n = xs.len() as f64;
    let mean = xs.iter().sum::<f64>() / n;
    let var = if xs.len() > 1 { xs.iter().map(|x| (x - mean).powi(2)).sum::<f64>() / (n - 1.0) } else { 0.0 };
    (mean, var.sqrt())
}

fn machine() -> String {
    let cpu = std::fs::read_to_string("/proc/cpuinfo")
        .ok()
        .and_then(|s| s.lines().find(|l| l.starts_with("model name")).map(|l| l.split(':').nth(1).unwrap_or("").trim().to_string()))
        .unwrap_or_else(|| "unknown CPU".into());
    let cores = std::thread::available_parallelism().map_or(0, |n| n.get());
    format!("{cpu}, {cores} cores")
}

/// Test hook: `HNET_FAULT_LEAKY_ARCH=<arch>` makes that architecture's causality check report a leak, so the
/// refusal path can be tested without shipping a leaky model.
fn injected_leak(arch: Arch) -> f32 {
    if std::env::var("HNET_FAULT_LEAKY_ARCH").is_ok_and(|a| a == arch.name()) { 1.0 } else { 0.0 }
}

/// Causality of freshly initialised models of every architecture.
fn check_fresh<B: Backend>(preset: &str, device: &B::Device) -> Result<Vec<(Arch, f32)>> {
    Arch::ALL
        .iter()
        .map(|&arch| {
            B::seed(device, 7);
            let model = Model::<B>::init(&ModelConfig::preset(arch, preset)?, device)?;
            Ok((arch, causality::max_leak(&model, 20, 11).max(injected_leak(arch))))
        })
        .collect()
}

pub fn run<B: Backend>(args: &CompareArgs, device: &B::Device) -> Result<()> {
    let out = args.out.clone().unwrap_or_else(|| PathBuf::from(format!("runs/compare-{}", args.preset)));
    std::fs::create_dir_all(&out).with_context(|| format!("creating {}", out.display()))?;
    let command = std::env::args().collect::<Vec<_>>().join(" ");

    // 1. Causality, before anything is trained.
    let fresh = check_fresh::<B>(&args.preset, device)?;
    for (arch, leak) in &fresh {
        eprintln!("causality ({arch}, fresh): max change at positions ≤ t = {leak:.2e}");
        if *leak > causality::TOLERANCE {
            bail!("{arch} fails the causality check ({leak:.2e} > {:.0e}): refusing to compare", causality::TOLERANCE);
        }
    }
    let counts: Vec<(Arch, usize)> = Arch::ALL.iter().map(|&a| Ok((a, ModelConfig::preset(a, &args.preset)?.param_count()))).collect::<Result<_>>()?;
    let (lo, hi) = counts.iter().fold((usize::MAX, 0), |(lo, hi), (_, c)| (lo.min(*c), hi.max(*c)));
    if hi as f64 / lo as f64 > 1.10 {
        bail!("parameter counts differ by more than 10% in preset {}: {counts:?}", args.preset);
    }

    // 2. Train every architecture with every seed, through the `train` command itself.
    let device_flag = format!("{:?}", args.device).to_lowercase();
    let mut runs: Vec<(Arch, u64, PathBuf, Vec<String>)> = Vec::new();
    for seed in 0..args.seeds as u64 {
        for arch in Arch::ALL {
            let run = out.join(format!("{arch}-seed{seed}"));
            let mut argv: Vec<String> = ["hnet-gpt", "train", "--arch", arch.name(), "--preset", &args.preset]
                .into_iter()
                .map(String::from)
                .collect();
            argv.extend(
                [
                    ("--steps", args.steps.to_string()),
                    ("--batch-size", args.batch_size.to_string()),
                    ("--seq-len", args.seq_len.to_string()),
                    ("--lr", args.lr.to_string()),
                    ("--warmup", args.warmup.to_string()),
                    ("--eval-every", args.eval_every.to_string()),
                    ("--checkpoint-every", args.steps.to_string()),
                    ("--seed", seed.to_string()),
                    ("--device", device_flag.clone()),
                    ("--out", run.display().to_string()),
                ]
                .into_iter()
                .flat_map(|(k, v)| [k.to_string(), v]),
            );
            for d in &args.data {
                argv.extend(["--data".to_string(), d.display().to_string()]);
            }
            if run.join("summary.json").exists() {
                eprintln!("{arch} seed {seed}: already trained in {}, reusing it", run.display());
            } else {
                if run.exists() {
                    std::fs::remove_dir_all(&run)?;
                }
                eprintln!("training {arch} seed {seed}: {}", argv[1..].join(" "));
                let Command::Train(train_args) = Cli::try_parse_from(&argv)?.command else { unreachable!() };
                crate::train::run(*train_args)?;
            }
            runs.push((arch, seed, run, argv));
        }
    }

    // 3. Evaluate every final checkpoint; check causality of the trained models too.
    let settings = EvalSettings {
        data: args.data.clone(),
        valid_only: true,
        valid_fraction: 0.05,
        max_tokens: args.eval_tokens,
        headers: args.headers,
        humaneval_problems: args.humaneval,
        humaneval_samples: 1,
        seed: 0,
    };
    let tok = crate::commands::tokenizer()?;
    let mut rows = Vec::new();
    for (arch, seed, run, argv) in &runs {
        let summary: Value = serde_json::from_slice(&std::fs::read(run.join("summary.json"))?)?;
        let ckpt = run.join(format!("checkpoints/step-{:06}/model.safetensors", args.steps));
        let model = checkpoint::load::<B>(&ckpt, device).with_context(|| format!("loading {}", ckpt.display()))?;
        let leak = causality::max_leak(&model, 20, 13 + seed).max(injected_leak(*arch));
        if leak > causality::TOLERANCE {
            bail!("trained {arch} (seed {seed}) fails the causality check ({leak:.2e}): refusing to report");
        }
        eprintln!("evaluating {arch} seed {seed}");
        let eval = evaluate(&model, &tok, &settings, &ckpt)?;
        rows.push(json!({"arch": arch, "seed": seed, "run": run, "train_command": argv[1..].join(" "), "summary": summary, "eval": eval, "causality_max_change": leak}));
    }

    // 4. Tables and plots.
    let metrics: [(&str, &str, fn(&Value) -> Option<f64>); 12] = [
        ("valid loss (nats/token)", "lower", |r| r["summary"]["best_valid_loss"].as_f64()),
        ("perplexity", "lower", |r| r["eval"]["perplexity"]["perplexity"].as_f64()),
        ("bits per byte", "lower", |r| r["eval"]["perplexity"]["bits_per_byte"].as_f64()),
        ("mean chunk (tokens)", "", |r| r["eval"]["chunks"]["mean_chunk_tokens"].as_f64()),
        ("statement-start precision", "higher", |r| r["eval"]["chunks"]["statement_starts"]["precision"].as_f64()),
        ("statement-start recall", "higher", |r| r["eval"]["chunks"]["statement_starts"]["recall"].as_f64()),
        ("header completions that parse", "higher", |r| r["eval"]["header_syntax"]["rate"].as_f64()),
        ("…of those with ≥ 1 complete line", "higher", |r| r["eval"]["header_syntax"]["rate_with_code"].as_f64()),
        ("seed 5-prompt syntax", "higher", |r| r["eval"]["seed_five_prompts"]["syntax"].as_f64()),
        ("seed 5-prompt pattern", "higher", |r| r["eval"]["seed_five_prompts"]["pattern"].as_f64()),
        ("seed 5-prompt overall", "higher", |r| r["eval"]["seed_five_prompts"]["overall"].as_f64()),
        ("training tokens/s", "", |r| r["summary"]["tokens_per_s"].as_f64()),
    ];
    let mut md = format!(
        "# Three-way comparison, preset `{}`\n\nCommand: `{command}`\n\nMachine: {} (device `{device_flag}`)\n\n\
         Each architecture trained {} steps × {} sequences × {} tokens = {} tokens per run, {} seeds, identical data \
         order and schedule. Parameters: {}.\n\nCausality (max change at positions ≤ t when later tokens change; must be \
         ≤ 1e-5): {}.\n\n| metric | {} |\n|---|{}\n",
        args.preset,
        machine(),
        args.steps,
        args.batch_size,
        args.seq_len,
        args.steps * args.batch_size * args.seq_len,
        args.seeds,
        counts.iter().map(|(a, c)| format!("{a} {c}")).collect::<Vec<_>>().join(", "),
        fresh.iter().map(|(a, l)| format!("{a} {l:.1e}")).collect::<Vec<_>>().join(", "),
        Arch::ALL.map(|a| a.name()).join(" | "),
        "---|".repeat(3),
    );
    let mut table = serde_json::Map::new();
    for (name, better, get) in metrics {
        let mut cells = Vec::new();
        for arch in Arch::ALL {
            let xs: Vec<f64> = rows.iter().filter(|r| r["arch"] == arch.name()).filter_map(get).collect();
            if xs.is_empty() {
                cells.push("–".to_string());
                continue;
            }
            let (m, s) = mean_std(&xs);
            table.insert(format!("{name}/{arch}"), json!({"mean": m, "std": s, "n": xs.len()}));
            cells.push(format!("{m:.4} ± {s:.4}"));
        }
        let label = if better.is_empty() { name.to_string() } else { format!("{name} ({better} is better)") };
        md.push_str(&format!("| {label} | {} |\n", cells.join(" | ")));
    }
    md.push_str("\nMean ± standard deviation over seeds. Plots: `valid_loss.svg`, `chunk_lengths.svg`. Per-run data: `results.json`.\n");
    std::fs::write(out.join("results.md"), &md)?;
    std::fs::write(out.join("results.json"), serde_json::to_string_pretty(&json!({"command": command, "machine": machine(), "preset": args.preset, "table": table, "runs": rows}))?)?;
    plot::compare_plots(&out, &rows)?;
    println!("{md}");
    eprintln!("wrote {}", out.join("results.md").display());
    Ok(())
}
