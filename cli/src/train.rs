//! `hnet-gpt train`: the native training loop around the library's [`loss`] and [`AdamW`] — data loading with
//! warnings, resumable atomic checkpoints, validation, metrics, a progress bar, Ctrl-C handling.
//!
//! Run directory:
//! ```text
//! RUN_DIR/config.json           everything that determines the run (and the command line)
//! RUN_DIR/metrics.jsonl         one JSON object per step ("kind": "train") and per validation ("kind": "valid")
//! RUN_DIR/checkpoints/step-N/   model.safetensors (loads anywhere), optimizer.safetensors, trainer.json
//! RUN_DIR/checkpoints/best/     the checkpoint with the best validation loss
//! RUN_DIR/summary.json          written when the run ends
//! ```
//! A checkpoint is written into a temporary directory and renamed into place, so a crash (even SIGKILL) at any
//! moment leaves the previous checkpoints intact and loadable.

use std::collections::HashMap;
use std::io::Write;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::Instant;

use anyhow::{bail, Context, Result};
use burn::module::{AutodiffModule, Module};
use burn::tensor::backend::{AutodiffBackend, Backend};
use burn::tensor::ElementConversion;
use hnet_gpt_model::checkpoint::{self, write_atomic};
use hnet_gpt_model::data::{self, next_batch, render, split_of, DataPosition, Packed, Split};
use hnet_gpt_model::optim::{AdamW, AdamWConfig};
use hnet_gpt_model::train::{batch_tensor, loss, lr_at, Schedule, TrainConfig, Unfreeze};
use hnet_gpt_model::{Arch, Model, ModelConfig};
use serde::{Deserialize, Serialize};
use serde_json::json;

use crate::args::TrainArgs;
use crate::backend::with_backend;
use crate::commands::tokenizer;
use crate::parallel::{self, Peers, Reduced};

/// What `config.json` holds.
#[derive(Debug, Clone, Serialize, Deserialize)]
struct RunConfig {
    train: TrainConfig,
    data: Vec<PathBuf>,
    template: bool,
    valid_fraction: f64,
    decoder_from: Option<PathBuf>,
    checkpoint_every: usize,
    keep_last: usize,
    max_bad_steps: usize,
    command: String,
}

/// What `trainer.json` holds: everything besides weights and moments needed to continue exactly.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
struct TrainerState {
    /// Optimizer steps completed.
    step: usize,
    /// Where the data sampler is.
    data: DataPosition,
    /// Per-parameter AdamW step counts.
    optimizer_steps: HashMap<String, u64>,
    /// Best validation loss so far.
    best_valid: Option<f64>,
    /// Steps skipped for a non-finite loss.
    bad_steps: usize,
    /// Training tokens consumed.
    tokens: u64,
    /// Seconds spent training (over all segments of the run).
    seconds: f64,
}

pub fn run(args: TrainArgs) -> Result<()> {
    if args.devices == 0 {
        bail!("--devices must be at least 1");
    }
    with_backend!(args.device, |device: B| {
        let devices = crate::backend::devices::<B>(device, args.devices);
        train::<burn::backend::Autodiff<B>>(&args, &devices)
    })
}

fn run_config(args: &TrainArgs) -> Result<RunConfig> {
    let arch: Arch = args.arch.parse()?;
    let mut model = ModelConfig::preset(arch, &args.preset)?;
    if let (Some(n), Some(h)) = (args.ratio_target, model.hnet.as_mut()) {
        h.ratio_target = n;
    }
    let mut t = TrainConfig::new(model);
    t.steps = args.steps;
    t.batch_size = args.batch_size;
    t.seq_len = args.seq_len.unwrap_or(t.seq_len);
    t.grad_accum = args.grad_accum;
    t.lr = args.lr;
    t.min_lr_ratio = args.min_lr_ratio;
    t.warmup_steps = args.warmup;
    t.schedule = match args.schedule.as_str() {
        "cosine" => Schedule::Cosine,
        "wsd" => Schedule::Wsd,
        other => bail!("unknown schedule `{other}` (expected cosine or wsd)"),
    };
    t.adamw = AdamWConfig { weight_decay: args.weight_decay, grad_clip: args.grad_clip, ..AdamWConfig::default() };
    t.ratio_loss_weight = args.ratio_weight;
    let [l0, l1] = args.stage_lr[..] else { bail!("--stage-lr takes two numbers, e.g. 2,1") };
    t.stage_lr = [l0, l1];
    t.eval_every = args.eval_every;
    t.eval_batches = args.eval_batches;
    t.seed = args.seed;
    t.unfreeze = match (args.unfreeze_top_half_at, args.unfreeze_all_at) {
        (None, None) if args.decoder_from.is_some() => Some(Unfreeze { top_half_at: args.steps / 4, all_at: args.steps / 2 }),
        (None, None) => None,
        (top, all) => Some(Unfreeze { top_half_at: top.unwrap_or(0), all_at: all.unwrap_or(args.steps) }),
    };
    if t.unfreeze.is_some() && args.decoder_from.is_none() {
        bail!("--unfreeze-* only makes sense with --decoder-from");
    }
    t.validate().map_err(anyhow::Error::msg)?;
    if !(0.0..1.0).contains(&args.valid_fraction) {
        bail!("--valid-fraction must be in [0, 1)");
    }
    Ok(RunConfig {
        train: t,
        data: args.data.clone(),
        template: args.template,
        valid_fraction: args.valid_fraction,
        decoder_from: args.decoder_from.clone(),
        checkpoint_every: args.checkpoint_every.max(1),
        keep_last: args.keep_last.max(1),
        max_bad_steps: args.max_bad_steps.max(1),
        command: std::env::args().collect::<Vec<_>>().join(" "),
    })
}

/// Loads, splits, renders, tokenises and packs the data. Problems with individual lines or files are warnings.
fn prepare_data(rc: &RunConfig, quiet: bool) -> Result<(Packed, Packed, serde_json::Value)> {
    let tok = tokenizer()?;
    let (mut records, mut files, mut skipped) = (Vec::new(), 0, Vec::new());
    if rc.data.is_empty() {
        records = data::builtin_records();
        files = 1;
    }
    for path in &rc.data {
        if !path.exists() {
            bail!("--data {}: no such file or directory", path.display());
        }
        let loaded = data::load_path(path);
        records.extend(loaded.records);
        files += loaded.files;
        skipped.extend(loaded.skipped);
    }
    for s in skipped.iter().take(20) {
        eprintln!("warning: {}: {} (skipped)", s.location, s.reason);
    }
    if skipped.len() > 20 {
        eprintln!("warning: … and {} more skipped lines or files", skipped.len() - 20);
    }
    // The built-in corpus is tiny: hold out more of it so validation has something to measure.
    let fraction = if rc.data.is_empty() { rc.valid_fraction.max(0.15) } else { rc.valid_fraction };
    let (mut train_docs, mut valid_docs) = (Vec::new(), Vec::new());
    for r in &records {
        let text = render(r, rc.template);
        let ids = tok.encode(&text)?;
        let doc = (ids, text.len());
        match split_of(&r.repo, &r.path, fraction) {
            Split::Train => train_docs.push(doc),
            Split::Valid => valid_docs.push(doc),
        }
    }
    let (n_train, n_valid) = (train_docs.len(), valid_docs.len());
    let seq_len = rc.train.seq_len;
    let train = Packed::new(train_docs, seq_len);
    let valid = Packed::new(valid_docs, seq_len);
    if train.is_empty() {
        bail!("the training data is empty: {} records from {files} files give no sequence of {seq_len} tokens", records.len());
    }
    if valid.is_empty() {
        bail!("the validation split is empty ({n_valid} records): add data or raise --valid-fraction");
    }
    let summary = json!({
        "files": files, "records": records.len(), "skipped": skipped.len(),
        "train_records": n_train, "valid_records": n_valid,
        "train_tokens": train.stream.len(), "valid_tokens": valid.stream.len(),
        "train_sequences": train.len(), "valid_sequences": valid.len(),
    });
    if !quiet {
        eprintln!(
            "data: {} records from {files} files ({} skipped) · train {} tokens ({} sequences) · valid {} tokens",
            records.len(), skipped.len(), train.stream.len(), train.len(), valid.stream.len()
        );
    }
    Ok((train, valid, summary))
}

fn checkpoints_dir(run: &Path) -> PathBuf {
    run.join("checkpoints")
}

/// The latest complete `step-N` checkpoint.
fn latest_checkpoint(run: &Path) -> Option<PathBuf> {
    let mut steps: Vec<(usize, PathBuf)> = std::fs::read_dir(checkpoints_dir(run))
        .ok()?
        .filter_map(|e| e.ok())
        .filter_map(|e| {
            let n = e.file_name().to_string_lossy().strip_prefix("step-")?.parse().ok()?;
            e.path().join("trainer.json").is_file().then(|| (n, e.path()))
        })
        .collect();
    steps.sort();
    steps.pop().map(|(_, p)| p)
}

/// Writes a checkpoint directory atomically: files into a temporary sibling, then one rename.
fn save_checkpoint<A: AutodiffBackend>(run: &Path, name: &str, model: &Model<A>, opt: &AdamW<A>, state: &TrainerState) -> Result<()> {
    let dir = checkpoints_dir(run);
    let tmp = dir.join(format!(".tmp-{name}-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&tmp);
    std::fs::create_dir_all(&tmp)?;
    let step = state.step.to_string();
    let model_bytes = checkpoint::to_bytes(model, &[("step", &step)])?;
    write_atomic(&tmp.join("model.safetensors"), &model_bytes)?;
    let (tensors, steps) = opt.state_tensors();
    let views = tensors
        .iter()
        .map(|(k, d)| Ok((k.clone(), safetensors::tensor::TensorView::new(safetensors::Dtype::F32, d.shape.to_vec(), d.as_bytes())?)))
        .collect::<Result<Vec<_>, safetensors::SafeTensorError>>()?;
    write_atomic(&tmp.join("optimizer.safetensors"), &safetensors::serialize(views, None)?)?;
    let state = TrainerState { optimizer_steps: steps, ..state.clone() };
    write_atomic(&tmp.join("trainer.json"), serde_json::to_string_pretty(&state)?.as_bytes())?;
    let target = dir.join(name);
    let old = dir.join(format!(".old-{name}-{}", std::process::id()));
    if target.exists() {
        std::fs::rename(&target, &old)?;
    }
    std::fs::rename(&tmp, &target)?;
    let _ = std::fs::remove_dir_all(&old);
    Ok(())
}

fn prune_checkpoints(run: &Path, keep: usize) {
    let Ok(entries) = std::fs::read_dir(checkpoints_dir(run)) else { return };
    let mut steps: Vec<(usize, PathBuf)> = entries
        .filter_map(|e| e.ok())
        .filter_map(|e| Some((e.file_name().to_string_lossy().strip_prefix("step-")?.parse().ok()?, e.path())))
        .collect();
    steps.sort();
    for (_, path) in steps.iter().take(steps.len().saturating_sub(keep)) {
        let _ = std::fs::remove_dir_all(path);
    }
}

fn load_checkpoint<A: AutodiffBackend>(dir: &Path, opt: &mut AdamW<A>, device: &A::Device) -> Result<(Model<A>, TrainerState)> {
    let model = checkpoint::load::<A>(&dir.join("model.safetensors"), device).with_context(|| format!("loading {}", dir.display()))?;
    let state: TrainerState = serde_json::from_slice(&std::fs::read(dir.join("trainer.json"))?)?;
    let bytes = std::fs::read(dir.join("optimizer.safetensors"))?;
    let st = safetensors::SafeTensors::deserialize(&bytes).with_context(|| format!("reading {}/optimizer.safetensors", dir.display()))?;
    let tensors = st
        .tensors()
        .into_iter()
        .map(|(k, v)| (k, burn::tensor::TensorData::from_bytes_vec(v.data().to_vec(), v.shape().to_vec(), burn::tensor::DType::F32)))
        .collect();
    opt.load_state(tensors, &state.optimizer_steps, device).map_err(anyhow::Error::msg)?;
    Ok((model, state))
}

/// Mean validation cross-entropy and boundary rate over the first `eval_batches` batches.
fn evaluate<B: Backend>(model: &Model<B>, valid: &Packed, c: &TrainConfig) -> (f64, Option<f64>) {
    let device = model.device();
    let n = valid.len();
    let batches = c.eval_batches.max(1).min(n.div_ceil(c.batch_size));
    let (mut ce, mut rate, mut count) = (0.0, 0.0, 0);
    for b in 0..batches {
        let idx: Vec<usize> = (b * c.batch_size..((b + 1) * c.batch_size).min(n)).collect();
        let parts = loss(model, batch_tensor::<B>(valid, &idx, &device), None, c.ratio_loss_weight);
        ce += parts.ce.into_scalar().elem::<f64>();
        if let Some(r) = parts.boundary_rate {
            rate += r.into_scalar().elem::<f64>();
        }
        count += 1;
    }
    let has_chunks = c.model.hnet.is_some();
    (ce / count as f64, has_chunks.then(|| rate / count as f64))
}

/// Keeps `metrics.jsonl` lines up to `step` (a resumed run rewrites what came after its checkpoint).
fn truncate_metrics(path: &Path, step: usize) -> Result<()> {
    let Ok(text) = std::fs::read_to_string(path) else { return Ok(()) };
    let kept: Vec<&str> = text
        .lines()
        .filter(|l| serde_json::from_str::<serde_json::Value>(l).ok().and_then(|v| v["step"].as_u64()).is_some_and(|s| s as usize <= step))
        .collect();
    write_atomic(path, (kept.join("\n") + if kept.is_empty() { "" } else { "\n" }).as_bytes())?;
    Ok(())
}

/// Test hook: steps (from `HNET_FAULT_NAN_STEPS`, comma-separated) whose loss is treated as NaN.
fn injected_nan_steps() -> Vec<usize> {
    std::env::var("HNET_FAULT_NAN_STEPS").map(|s| s.split(',').filter_map(|x| x.trim().parse().ok()).collect()).unwrap_or_default()
}

fn train<A: AutodiffBackend>(args: &TrainArgs, devices: &[A::Device]) -> Result<()>
where
    Model<A>: Send + 'static,
{
    let device = &devices[0];
    // Configuration: fresh, or the run's own when resuming.
    let (run, rc, resume_from) = match &args.resume {
        Some(run) => {
            let rc: RunConfig = serde_json::from_slice(&std::fs::read(run.join("config.json")).with_context(|| format!("{} is not a run directory", run.display()))?)?;
            let ckpt = latest_checkpoint(run).with_context(|| format!("no complete checkpoint in {}", checkpoints_dir(run).display()))?;
            (run.clone(), rc, Some(ckpt))
        }
        None => {
            let rc = run_config(args)?;
            let run = args.out.clone().unwrap_or_else(|| {
                let t = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map_or(0, |d| d.as_secs());
                PathBuf::from(format!("runs/{}-{}-{t}", args.arch, args.preset))
            });
            if run.join("config.json").exists() {
                bail!("{} already holds a run: continue it with --resume {0}, or choose another --out", run.display());
            }
            std::fs::create_dir_all(&run).with_context(|| format!("creating {}", run.display()))?;
            write_atomic(&run.join("config.json"), serde_json::to_string_pretty(&rc)?.as_bytes())?;
            (run, rc, None)
        }
    };
    let c = rc.train.clone();
    let (train_data, valid_data, data_summary) = prepare_data(&rc, args.quiet)?;

    let mut opt = AdamW::<A>::new(c.adamw.clone(), c.groups_at(0));
    let (mut model, mut state) = match &resume_from {
        Some(dir) => {
            let (model, state) = load_checkpoint::<A>(dir, &mut opt, device)?;
            eprintln!("resuming {} from step {}", run.display(), state.step);
            truncate_metrics(&run.join("metrics.jsonl"), state.step)?;
            (model, state)
        }
        None => {
            A::seed(device, c.seed);
            let mut model = Model::<A>::init(&c.model, device)?;
            parallel::materialize(&model);
            if let Some(path) = &rc.decoder_from {
                let bytes = std::fs::read(path).with_context(|| format!("reading {}", path.display()))?;
                checkpoint::load_gpt2_decoder(&mut model, &bytes, &path.display().to_string())?;
                eprintln!("hybrid decoder initialised from {}", path.display());
            }
            (model, TrainerState::default())
        }
    };
    let train_data = Arc::new(train_data);
    let peers = match devices.len() {
        1 => None,
        n => {
            eprintln!("data parallel over {n} devices: {} sequences per device per micro-batch", c.batch_size / n);
            Some(Peers::start::<A>(devices, &model, &opt, &c, train_data.clone())?)
        }
    };
    let stop_at = args.stop_at.unwrap_or(c.steps).min(c.steps);
    let interrupted = Arc::new(AtomicBool::new(false));
    {
        let flag = interrupted.clone();
        // First Ctrl-C: finish the step, write a checkpoint, exit. Second: exit at once.
        let _ = ctrlc::set_handler(move || {
            if flag.swap(true, Ordering::SeqCst) {
                std::process::exit(130);
            }
        });
    }
    let mut metrics = std::fs::OpenOptions::new().create(true).append(true).open(run.join("metrics.jsonl"))?;
    let bar = if args.quiet || !std::io::IsTerminal::is_terminal(&std::io::stderr()) {
        indicatif::ProgressBar::hidden()
    } else {
        indicatif::ProgressBar::new(stop_at as u64)
    };
    bar.set_style(
        indicatif::ProgressStyle::with_template("{bar:30.cyan/blue} {pos}/{len} {msg} [{elapsed_precise} < {eta_precise}]")
            .expect("a valid template"),
    );
    bar.set_position(state.step as u64);
    let nan_steps = injected_nan_steps();
    let tokens_per_step = (c.batch_size * c.seq_len * c.grad_accum) as u64;
    let tokens_per_byte = valid_data.stream.len() as f64 / valid_data.bytes.max(1) as f64;
    let mut consecutive_bad = 0;
    let mut last_loss = f64::NAN;
    let segment_start = Instant::now();
    let seconds_before = state.seconds;

    while state.step < stop_at {
        let step = state.step;
        let t0 = Instant::now();
        opt.groups = c.groups_at(step);
        let lr = lr_at(step, &c);
        let micro: Vec<Vec<usize>> = (0..c.grad_accum).map(|_| next_batch(train_data.len(), c.seed, &mut state.data, c.batch_size)).collect();
        let mut shares = parallel::shard(&micro, devices.len());
        let mine = shares.remove(0);
        if let Some(peers) = &peers {
            peers.step(step, lr, shares)?;
        }
        let local = parallel::local_grads(&model, &train_data, &mine, &c, device, nan_steps.contains(&(step + 1)));
        let Reduced { total, ce: ce_sum, grads } = parallel::reduce::<A>(local, 0, devices.len(), device)?;
        state.step += 1;
        state.tokens += tokens_per_step;
        let Some(grads) = grads else {
            state.bad_steps += 1;
            consecutive_bad += 1;
            eprintln!("warning: step {}: non-finite loss, step skipped ({consecutive_bad} in a row)", state.step);
            writeln!(metrics, "{}", json!({"kind": "train", "step": state.step, "skipped": true}))?;
            if consecutive_bad >= rc.max_bad_steps {
                state.seconds = seconds_before + segment_start.elapsed().as_secs_f64();
                save_checkpoint(&run, &format!("step-{:06}", state.step), &model, &opt, &state)?;
                bail!(
                    "{consecutive_bad} consecutive steps had a non-finite loss; stopped at step {}. The last checkpoint \
                     is in {} — lower --lr or check the data, then --resume",
                    state.step,
                    checkpoints_dir(&run).display()
                );
            }
            continue;
        };
        consecutive_bad = 0;
        let (next, norm) = opt.step(model, grads, lr);
        model = next;
        let grad_norm = norm.map(|n| n.into_scalar().elem::<f64>());
        let dt = t0.elapsed().as_secs_f64();
        let tps = tokens_per_step as f64 / dt;
        last_loss = total;
        writeln!(
            metrics,
            "{}",
            json!({"kind": "train", "step": state.step, "loss": total, "ce": ce_sum, "lr": lr, "grad_norm": grad_norm, "tokens_per_s": tps, "tokens": state.tokens})
        )?;
        bar.set_position(state.step as u64);
        bar.set_message(format!("loss {total:.3} · {tps:.0} tok/s"));

        let last = state.step == stop_at;
        if state.step % c.eval_every == 0 || last {
            let (vloss, rate) = evaluate(&model.valid(), &valid_data, &c);
            let bpb = vloss * tokens_per_byte / std::f64::consts::LN_2;
            let chunk_len = rate.filter(|r| *r > 0.0).map(|r| 1.0 / r);
            writeln!(
                metrics,
                "{}",
                json!({"kind": "valid", "step": state.step, "loss": vloss, "ppl": vloss.exp(), "bits_per_byte": bpb, "mean_chunk_tokens": chunk_len})
            )?;
            bar.suspend(|| {
                eprintln!(
                    "step {:>6}  train {total:.4}  valid {vloss:.4}  ppl {:.2}  bpb {bpb:.3}{}",
                    state.step,
                    vloss.exp(),
                    chunk_len.map(|l| format!("  chunk {l:.2} tok")).unwrap_or_default()
                )
            });
            if state.best_valid.is_none_or(|b| vloss < b) {
                state.best_valid = Some(vloss);
                state.seconds = seconds_before + segment_start.elapsed().as_secs_f64();
                save_checkpoint(&run, "best", &model, &opt, &state)?;
            }
        }
        let stop = interrupted.load(Ordering::SeqCst);
        if state.step % rc.checkpoint_every == 0 || last || stop {
            state.seconds = seconds_before + segment_start.elapsed().as_secs_f64();
            save_checkpoint(&run, &format!("step-{:06}", state.step), &model, &opt, &state)?;
            prune_checkpoints(&run, rc.keep_last);
        }
        if stop {
            bar.abandon();
            eprintln!("interrupted: checkpoint at step {} in {}; continue with --resume {}", state.step, checkpoints_dir(&run).display(), run.display());
            std::process::exit(130);
        }
    }
    bar.finish_and_clear();
    if let Some(peers) = peers {
        peers.finish(&model)?;
    }
    let seconds = seconds_before + segment_start.elapsed().as_secs_f64();
    let summary = json!({
        "run": run, "arch": c.model.arch, "steps": state.step, "target_steps": c.steps, "tokens": state.tokens,
        "seconds": seconds, "tokens_per_s": state.tokens as f64 / seconds.max(1e-9),
        "final_train_loss": last_loss, "best_valid_loss": state.best_valid,
        "skipped_steps": state.bad_steps, "data": data_summary, "parameters": model.num_params(),
    });
    write_atomic(&run.join("summary.json"), serde_json::to_string_pretty(&summary)?.as_bytes())?;
    eprintln!(
        "done: {} steps · {} tokens · {:.0} s · {:.0} tokens/s · best valid loss {} · {} skipped steps · run {}",
        state.step,
        state.tokens,
        seconds,
        state.tokens as f64 / seconds.max(1e-9),
        state.best_valid.map_or("–".into(), |v| format!("{v:.4}")),
        state.bad_steps,
        run.display()
    );
    Ok(())
}
