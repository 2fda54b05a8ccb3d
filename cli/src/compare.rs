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
use hnet_gpt_model::eval::causality;
use hnet_gpt_model::io::checkpoint;
use hnet_gpt_model::train::TrainConfig;
use hnet_gpt_model::util::files::write_atomic;
use hnet_gpt_model::{Arch, ModelConfig};
use serde_json::{json, Value};

use crate::args::CompareArgs;
use crate::eval::{evaluate, EvalSettings};
use crate::plot;
use crate::run_dir::{self, RunConfig};

fn mean_std(xs: &[f64]) -> (f64, f64) {
    let n = xs.len() as f64;
    let mean = xs.iter().sum::<f64>() / n;
    let var = if xs.len() > 1 { xs.iter().map(|x| (x - mean).powi(2)).sum::<f64>() / (n - 1.0) } else { 0.0 };
    (mean, var.sqrt())
}

/// A table row: its label, which direction is better ("" when neither), and how to read it from a run's row.
type Metric = (&'static str, &'static str, fn(&Value) -> Option<f64>);

/// Test hook (builds with the `fault-injection` feature only): `HNET_FAULT_LEAKY_ARCH=<arch>` makes that
/// architecture's causality check report a leak, so the refusal path can be tested without shipping a leaky model.
#[cfg(feature = "fault-injection")]
fn injected_leak(arch: Arch) -> f32 {
    if std::env::var("HNET_FAULT_LEAKY_ARCH").is_ok_and(|a| a == arch.name()) {
        1.0
    } else {
        0.0
    }
}

#[cfg(not(feature = "fault-injection"))]
fn injected_leak(_: Arch) -> f32 {
    0.0
}

/// Causality of freshly initialised models of every architecture.
fn check_fresh<B: Backend>(preset: &str, device: &B::Device) -> Result<Vec<(Arch, f32)>> {
    Arch::ALL
        .iter()
        .map(|&arch| {
            B::seed(device, 7);
            let model = checkpoint::init::<B>(&ModelConfig::preset(arch, preset)?, device)?;
            Ok((arch, causality::max_leak(&model, 20, 11).max(injected_leak(arch))))
        })
        .collect()
}

/// The training settings of one run of the comparison: identical for every architecture but the model.
fn run_config(args: &CompareArgs, arch: Arch, seed: u64, command: &str) -> Result<RunConfig> {
    let mut t = TrainConfig::new(ModelConfig::preset(arch, &args.preset)?);
    args.settings.apply(&mut t);
    t.seed = seed;
    t.validate()?;
    Ok(RunConfig { checkpoint_every: t.steps, ..RunConfig::new(t, args.data.clone(), command.to_string()) })
}

/// `hnet-gpt compare`: causality and sizes checked, every architecture trained with every seed, evaluated, tabled.
pub fn run<B: Backend>(args: &CompareArgs, device: &B::Device) -> Result<()> {
    let out = args.out.clone().unwrap_or_else(|| PathBuf::from(format!("runs/compare-{}", args.preset)));
    std::fs::create_dir_all(&out).with_context(|| format!("creating {}", out.display()))?;
    // Everything this invocation prints (training included) also goes to compare.log, next to the table.
    let _log = crate::tee::stderr_to(&out.join("compare.log")).with_context(|| format!("creating {}/compare.log", out.display()))?;
    // The command as a user would type it: `hnet-gpt`, not this machine's path to the binary.
    let command = std::iter::once("hnet-gpt".to_string()).chain(std::env::args().skip(1)).collect::<Vec<_>>().join(" ");
    let accelerator = crate::backend::describe(args.device);
    eprintln!("$ {command}\non {accelerator}");
    // HumanEval runs generated code: the sandbox is verified before hours of training, not after.
    let sandbox = if args.humaneval > 0 { Some(args.sandbox.sandbox()?) } else { None };
    let checks = Checks::before_training::<B>(args, device)?;
    let runs = train_all(args, &out, &command)?;
    let rows = evaluate_all::<B>(args, &out, &runs, sandbox, device)?;
    let plan = &runs.first().context("no runs to compare")?.planned.train;
    let (md, table) = tables(args, plan, &command, &accelerator, &checks, &rows);
    let results = json!({"command": command, "device": accelerator, "preset": args.preset, "table": table, "runs": rows});
    write_atomic(&out.join("results.md"), md.as_bytes())?;
    write_atomic(&out.join("results.json"), serde_json::to_string_pretty(&results)?.as_bytes())?;
    plot::compare_plots(&out, &rows)?;
    println!("{md}");
    eprintln!("wrote {}", out.join("results.md").display());
    Ok(())
}

/// What is checked before anything is trained: causality of fresh models, parameter counts within 10%.
struct Checks {
    /// Each architecture's largest change at positions ≤ t (fresh weights).
    fresh: Vec<(Arch, f32)>,
    /// Each architecture's parameter count in the preset.
    counts: Vec<(Arch, usize)>,
}

impl Checks {
    fn before_training<B: Backend>(args: &CompareArgs, device: &B::Device) -> Result<Self> {
        let fresh = check_fresh::<B>(&args.preset, device)?;
        for (arch, leak) in &fresh {
            eprintln!("causality ({arch}, fresh): max change at positions ≤ t = {leak:.2e}");
            if *leak > causality::TOLERANCE {
                bail!("{arch} fails the causality check ({leak:.2e} > {:.0e}): refusing to compare", causality::TOLERANCE);
            }
        }
        let counts: Vec<(Arch, usize)> =
            Arch::ALL.iter().map(|&a| Ok((a, ModelConfig::preset(a, &args.preset)?.param_count()))).collect::<Result<_>>()?;
        let (lo, hi) = counts.iter().fold((usize::MAX, 0), |(lo, hi), (_, c)| (lo.min(*c), hi.max(*c)));
        if hi as f64 / lo as f64 > 1.10 {
            bail!("parameter counts differ by more than 10% in preset {}: {counts:?}", args.preset);
        }
        Ok(Self { fresh, counts })
    }
}

/// One trained run of the comparison.
struct Run {
    arch: Arch,
    seed: u64,
    dir: PathBuf,
    planned: RunConfig,
}

/// Trains every architecture with every seed, through the same training job `hnet-gpt train` runs. A run already
/// there is reused only when it was trained with exactly these settings on this data; an interrupted one continues.
fn train_all(args: &CompareArgs, out: &std::path::Path, command: &str) -> Result<Vec<Run>> {
    let mut runs = Vec::new();
    for seed in 0..args.seeds as u64 {
        for arch in Arch::ALL {
            let name = format!("{arch}-seed{seed}");
            let dir = out.join(&name);
            let planned = run_config(args, arch, seed, command)?;
            let recorded = run_dir::read_config(&dir).ok();
            let same = recorded.as_ref().is_some_and(|r| r.train == planned.train && r.data == planned.data);
            let fresh = match (recorded.is_some(), same, run_dir::summary_file(&dir).exists()) {
                (true, true, true) => {
                    eprintln!("{name}: already trained with these settings, reusing it");
                    runs.push(Run { arch, seed, dir, planned });
                    continue;
                }
                (true, true, false) => {
                    eprintln!("{name}: continuing the interrupted run");
                    None
                }
                (exists, _, _) => {
                    if exists {
                        eprintln!("{name}: {} was trained with other settings or data: training it again", dir.display());
                    }
                    if dir.exists() {
                        std::fs::remove_dir_all(&dir).with_context(|| format!("removing {}", dir.display()))?;
                    }
                    eprintln!("training {name}");
                    Some(planned.clone())
                }
            };
            let job =
                crate::train::Job { run: dir.clone(), fresh, stop_at: None, device: args.device, devices: 1, cluster: None, quiet: true };
            crate::train::execute(&job)?;
            runs.push(Run { arch, seed, dir, planned });
        }
    }
    Ok(runs)
}

/// Evaluates every final checkpoint (the trained models' causality checked too): one row per run.
fn evaluate_all<B: Backend>(
    args: &CompareArgs,
    out: &std::path::Path,
    runs: &[Run],
    sandbox: Option<hnet_gpt::sandbox::Sandbox>,
    device: &B::Device,
) -> Result<Vec<Value>> {
    let settings = EvalSettings {
        data: args.data.clone(),
        valid_only: true,
        valid_fraction: 0.05,
        max_tokens: args.eval_tokens,
        whole_files: false,
        headers: args.headers,
        humaneval_problems: args.humaneval,
        humaneval_samples: 1,
        seed: 0,
        sandbox,
    };
    let tok = crate::input::tokenizer()?;
    let mut rows = Vec::new();
    for Run { arch, seed, dir, planned } in runs {
        let summary: Value = serde_json::from_slice(&std::fs::read(run_dir::summary_file(dir))?)?;
        let ckpt = run_dir::model_file(&run_dir::step_dir(dir, planned.train.steps));
        let model = checkpoint::load::<B>(&ckpt, device).with_context(|| format!("loading {}", ckpt.display()))?;
        let leak = causality::max_leak(&model, 20, 13 + seed).max(injected_leak(*arch));
        if leak > causality::TOLERANCE {
            bail!("trained {arch} (seed {seed}) fails the causality check ({leak:.2e}): refusing to report");
        }
        eprintln!("evaluating {arch} seed {seed}");
        let mut eval = evaluate(&model, &tok, &settings, &ckpt)?;
        // Results name runs relative to the output directory: no machine's paths in them.
        let name = dir.strip_prefix(out).unwrap_or(dir).display().to_string();
        eval["checkpoint"] = json!(format!("{name}/checkpoints/{}/model.safetensors", run_dir::step_name(planned.train.steps)));
        eval["scored"]["reason"] = json!(format!("the files {name} held out from training (its recorded split)"));
        let mut summary = summary;
        summary["run"] = json!(name);
        rows.push(json!({"arch": arch, "seed": seed, "run": name, "train_config": planned.train, "summary": summary, "eval": eval, "causality_max_change": leak}));
    }
    Ok(rows)
}

/// The table's rows: a label, which direction is better, and how to read the value from a run's row.
const METRICS: [Metric; 15] = [
    ("valid loss (nats/token)", "lower", |r| r["summary"]["best_valid_loss"].as_f64()),
    ("perplexity", "lower", |r| r["eval"]["perplexity"]["perplexity"].as_f64()),
    ("bits per byte", "lower", |r| r["eval"]["perplexity"]["bits_per_byte"].as_f64()),
    ("mean chunk (tokens)", "", |r| r["eval"]["chunks"]["mean_chunk_tokens"].as_f64()),
    ("statement-start precision", "higher", |r| r["eval"]["chunks"]["statement_starts"]["precision"].as_f64()),
    ("…at chance (as many random boundaries)", "", |r| r["eval"]["chunks"]["statement_starts"]["chance_precision"].as_f64()),
    ("statement-start recall", "higher", |r| r["eval"]["chunks"]["statement_starts"]["recall"].as_f64()),
    ("…at chance (as many random boundaries)", "", |r| r["eval"]["chunks"]["statement_starts"]["chance_recall"].as_f64()),
    ("header completions with ≥ 1 complete line (count)", "", |r| r["eval"]["header_syntax"]["with_code"].as_f64()),
    ("…of those, share that parse", "higher", |r| r["eval"]["header_syntax"]["rate"].as_f64()),
    ("seed 5-prompt syntax", "higher", |r| r["eval"]["seed_five_prompts"]["syntax"].as_f64()),
    ("seed 5-prompt pattern", "higher", |r| r["eval"]["seed_five_prompts"]["pattern"].as_f64()),
    ("seed 5-prompt overall", "higher", |r| r["eval"]["seed_five_prompts"]["overall"].as_f64()),
    ("HumanEval pass@1", "higher", |r| r["eval"]["humaneval"]["pass@1"].as_f64()),
    ("training tokens/s", "", |r| r["summary"]["tokens_per_s"].as_f64()),
];

/// results.md and the table of results.json: each metric's mean ± standard deviation over seeds, per architecture.
fn tables(
    args: &CompareArgs,
    plan: &TrainConfig,
    command: &str,
    accelerator: &str,
    checks: &Checks,
    rows: &[Value],
) -> (String, serde_json::Map<String, Value>) {
    let mut md = format!(
        "# Three-way comparison, preset `{}`\n\nCommand: `{command}`\n\nDevice: {accelerator}\n\n\
         Each architecture trained {} steps × {} sequences × {} tokens = {} tokens per run, {} seeds, identical data \
         order and schedule. Parameters: {}.\n\nCausality (max change at positions ≤ t when later tokens change; must be \
         ≤ 1e-5): {}.\n\n| metric | {} |\n|---|{}\n",
        args.preset,
        plan.steps,
        plan.batch_size,
        plan.seq_len,
        plan.steps * plan.batch_size * plan.seq_len,
        args.seeds,
        checks.counts.iter().map(|(a, c)| format!("{a} {c}")).collect::<Vec<_>>().join(", "),
        checks.fresh.iter().map(|(a, l)| format!("{a} {l:.1e}")).collect::<Vec<_>>().join(", "),
        Arch::ALL.map(|a| a.name()).join(" | "),
        "---|".repeat(3),
    );
    let mut table = serde_json::Map::new();
    for (name, better, get) in METRICS {
        let mut cells = Vec::new();
        for arch in Arch::ALL {
            let runs = rows.iter().filter(|r| r["arch"] == arch.name()).count();
            let xs: Vec<f64> = rows.iter().filter(|r| r["arch"] == arch.name()).filter_map(get).collect();
            // A metric that measured nothing (a ratio over zero items, a row that does not apply) says so.
            if xs.is_empty() {
                cells.push(format!("n/a (0 of {runs} runs)"));
                continue;
            }
            let (m, s) = mean_std(&xs);
            table.insert(format!("{name}/{arch}"), json!({"mean": m, "std": s, "n": xs.len()}));
            let partial = if xs.len() < runs { format!(" ({} of {runs} runs; n/a in the others)", xs.len()) } else { String::new() };
            cells.push(format!("{m:.4} ± {s:.4}{partial}"));
        }
        let label = if better.is_empty() { name.to_string() } else { format!("{name} ({better} is better)") };
        md.push_str(&format!("| {label} | {} |\n", cells.join(" | ")));
    }
    md.push_str(
        "\nMean ± standard deviation over seeds; `n/a` where a metric measured nothing (no boundaries, no completion \
         with a complete line, not run). Chance rows: the same number of boundaries placed at random among the same \
         tokens. Plots: `valid_loss.svg`, `chunk_lengths.svg`. Per-run data: `results.json`. Log: `compare.log`.\n",
    );
    (md, table)
}
