//! `hnet-gpt train`: the native training loop around the library's [`loss`] and [`AdamW`] — data loading with
//! warnings, a recorded split, resumable atomic checkpoints (the layout is [`run_dir`](crate::run_dir)'s),
//! validation, metrics, a progress bar, Ctrl-C and SIGTERM handling.

use std::collections::HashMap;
use std::io::Write;
use std::path::PathBuf;
use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::time::Instant;

use anyhow::{bail, Context, Result};
use burn::module::{AutodiffModule, Module};
use burn::tensor::backend::{AutodiffBackend, Backend};
use burn::tensor::ElementConversion;
use hnet_gpt_model::io::checkpoint;
use hnet_gpt_model::train::data::{self, next_batch, render, Packed};
use hnet_gpt_model::train::optim::{AdamW, AdamWConfig};
use hnet_gpt_model::train::step::{self, Fault, StepOutcome};
use hnet_gpt_model::train::{batch_tensor, loss, lr_at, Objective, Precision, TrainConfig, Unfreeze};
use hnet_gpt_model::{Model, ModelConfig};
use serde_json::json;

use crate::args::{DeviceKind, TrainArgs};
use crate::backend::with_backend;
use crate::input::{checkpoint_info, json_file};
use crate::parallel::{self, Peers};
use crate::run_dir::{
    checkpoints_dir, latest_checkpoint, load_checkpoint, metrics_file, process_cpu_seconds, prune_checkpoints, read_config,
    save_checkpoint, step_name, summary_file, truncate_metrics, write_config, RunConfig, SplitRecord, TrainerState,
};
use hnet_gpt_model::io::tokenizer::{Tokenizer, TokenizerSpec};
use hnet_gpt_model::Arch;

/// One training job: a fresh run with its settings, or the continuation of one.
#[derive(Debug, Clone)]
pub struct Job {
    /// The run directory.
    pub run: PathBuf,
    /// `Some` for a fresh run; `None` continues the run in `run` from its latest checkpoint with its own settings.
    pub fresh: Option<RunConfig>,
    /// Stop after this step, leaving the run resumable (the schedule still targets the configured steps).
    pub stop_at: Option<usize>,
    /// The backend.
    pub device: DeviceKind,
    /// Data-parallel replicas.
    pub devices: usize,
    /// No progress bar.
    pub quiet: bool,
}

/// `hnet-gpt train`: flags to a [`Job`].
pub fn run(args: TrainArgs) -> Result<()> {
    let (run, fresh) = match &args.resume {
        Some(run) => (run.clone(), None),
        None => {
            let run = args.out.clone().unwrap_or_else(|| {
                let t = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map_or(0, |d| d.as_secs());
                PathBuf::from(format!("runs/{}-{}-{t}", args.arch, args.preset))
            });
            (run, Some(run_config(&args)?))
        }
    };
    execute(&Job { run, fresh, stop_at: args.stop_at, device: args.device, devices: args.devices, quiet: args.quiet })
}

/// Runs a training job on its backend.
pub fn execute(job: &Job) -> Result<()> {
    if job.devices == 0 {
        bail!("--devices must be at least 1");
    }
    with_backend!(job.device, |device: B| {
        let devices = crate::backend::devices::<B>(device, job.devices);
        train::<burn::backend::Autodiff<B>>(job, &devices)
    })
}

/// The tokenizer a run reads its data with: the decoder's when it starts from one, a prepared corpus's own when it
/// has one, else GPT-2's.
fn run_tokenizer(rc: &RunConfig) -> Result<TokenizerSpec> {
    if let Some(path) = &rc.decoder_from {
        return Ok(checkpoint_info(path).context("--decoder-from")?.1.tokenizer);
    }
    match rc.data.as_slice() {
        [dir] if data::corpus::is_prepared(dir) => Ok(data::corpus::Prepared::open(dir)?.tokenizer()?.unwrap_or_default()),
        _ => Ok(TokenizerSpec::Gpt2Bpe),
    }
}

fn run_config(args: &TrainArgs) -> Result<RunConfig> {
    let mut model = match &args.decoder_from {
        // A hybrid around the decoder, whatever its size (a model pulled from the Hub): the preset does not apply.
        Some(path) => {
            if args.arch != Arch::Hybrid {
                bail!("--decoder-from starts a hybrid's GPT-2 part: add --arch hybrid");
            }
            let (bytes, info) = checkpoint_info(path).context("--decoder-from")?;
            checkpoint::check_declared_size(&info.config, bytes.len(), &path.display().to_string())?;
            ModelConfig::hybrid_on(&info.config.decoder)?
        }
        None => match &args.model_config {
            Some(path) => {
                let text = json_file(path, "--model-config")?;
                let config: ModelConfig = serde_json::from_str(&text).with_context(|| format!("--model-config {}", path.display()))?;
                anyhow::ensure!(
                    config.arch == args.arch,
                    "--model-config {} is a {} model, not --arch {}",
                    path.display(),
                    config.arch,
                    args.arch
                );
                config
            }
            None => ModelConfig::preset(args.arch, &args.preset)?,
        },
    };
    if let (Some(n), Some(h)) = (args.ratio_target, model.hnet.as_mut()) {
        h.ratio_target = n;
    }
    let mut rc = RunConfig {
        train: TrainConfig::new(model.clone()),
        data: args.data.clone(),
        template: args.template,
        valid_fraction: args.valid_fraction,
        decoder_from: args.decoder_from.clone(),
        checkpoint_every: args.checkpoint_every.max(1),
        keep_last: args.keep_last.max(1),
        max_bad_steps: args.max_bad_steps.max(1),
        command: std::env::args().collect::<Vec<_>>().join(" "),
        split: None,
    };
    // A fresh model's vocabulary is its tokenizer's (a corpus with its own BPE); a decoder brings both.
    if args.decoder_from.is_none() {
        model.decoder.vocab_size = run_tokenizer(&rc)?.load()?.vocab_size();
        model.validate()?;
    }
    let mut t = TrainConfig::new(model);
    t.steps = args.steps;
    t.batch_size = args.batch_size;
    t.seq_len = args.seq_len.unwrap_or(t.seq_len);
    t.grad_accum = args.grad_accum;
    t.lr = args.lr;
    t.min_lr_ratio = args.min_lr_ratio;
    t.warmup_steps = args.warmup;
    t.schedule = args.schedule;
    t.precision = args.precision;
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
    t.validate()?;
    rc.train = t;
    Ok(rc)
}

/// Loads, deduplicates, splits, renders, tokenises and packs the data. Problems with individual lines or files are
/// warnings. Validation is `None` when the data is too small to hold out a sequence (a warning says so).
fn prepare_data(rc: &RunConfig, quiet: bool) -> Result<(Packed, Option<Packed>, serde_json::Value, SplitRecord)> {
    let tok = run_tokenizer(rc)?.load()?;
    if rc.data.iter().any(|p| data::corpus::is_prepared(p)) {
        anyhow::ensure!(rc.data.len() == 1, "a prepared corpus is its own split: give it as the only --data");
        return prepared_data(rc, &tok, quiet);
    }
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
    let duplicates = data::dedup(&mut records);
    // The built-in corpus is tiny: hold out more of it so validation has something to measure.
    let fraction = if rc.data.is_empty() { rc.valid_fraction.max(0.15) } else { rc.valid_fraction };
    let seq_len = rc.train.seq_len;
    // Tokenise every document and total the tokens per split key (a file's records stay together).
    let mut docs: Vec<(String, Vec<u32>, usize)> = Vec::with_capacity(records.len());
    let mut keys: Vec<(String, usize)> = Vec::new();
    let mut key_index = HashMap::new();
    for r in &records {
        let text = render(r, rc.template);
        let ids = tok.encode(&text)?;
        let key = data::split_key(r);
        let i = *key_index.entry(key.clone()).or_insert_with(|| {
            keys.push((key.clone(), 0));
            keys.len() - 1
        });
        keys[i].1 += ids.len() + 1; // + the separator
        docs.push((key, ids, text.len()));
    }
    let assignment = data::assign_split(&keys, fraction, seq_len + 1);
    let held: std::collections::HashSet<&str> =
        keys.iter().zip(&assignment.valid).filter(|(_, v)| **v).map(|((k, _), _)| k.as_str()).collect();
    let (mut train_docs, mut valid_docs) = (Vec::new(), Vec::new());
    for (key, ids, bytes) in docs {
        if held.contains(key.as_str()) {
            valid_docs.push((ids, bytes))
        } else {
            train_docs.push((ids, bytes))
        }
    }
    let (n_train, n_valid) = (train_docs.len(), valid_docs.len());
    let train = Packed::new(train_docs, seq_len, tok.eos_id());
    let valid = Packed::new(valid_docs, seq_len, tok.eos_id());
    if train.is_empty() {
        bail!("the training data is empty: {} records from {files} files give no sequence of {seq_len} tokens", records.len());
    }
    let valid = if valid.is_empty() {
        eprintln!(
            "warning: the data is too small to hold out a validation sequence of {seq_len} tokens ({} records): training \
             WITHOUT validation (no validation loss, no best checkpoint). Add data or lower --seq-len.",
            records.len()
        );
        None
    } else {
        Some(valid)
    };
    let mut sides: Vec<String> = keys.iter().zip(&assignment.valid).map(|((k, _), v)| format!("{}\t{k}", *v as u8)).collect();
    sides.sort();
    let mut valid_keys: Vec<String> = held.iter().map(|k| k.to_string()).collect();
    valid_keys.sort();
    let split = SplitRecord {
        rule: data::SPLIT_RULE.to_string(),
        valid_fraction: fraction,
        roots: rc.data.clone(),
        roots_resolved: rc.data.iter().map(|p| p.canonicalize().unwrap_or_else(|_| p.clone())).collect(),
        train_keys: keys.len() - valid_keys.len(),
        valid_keys,
        hash: format!("{:016x}", data::fnv1a(sides.join("\n").as_bytes())),
        duplicates_removed: duplicates,
        moved_to_valid: assignment.moved,
    };
    let valid_tokens = valid.as_ref().map_or(0, |v| v.stream.len());
    let summary = json!({
        "files": files, "records": records.len(), "skipped": skipped.len(), "duplicates_removed": duplicates,
        "train_records": n_train, "valid_records": n_valid,
        "train_tokens": train.stream.len(), "valid_tokens": valid_tokens,
        "train_sequences": train.len(), "valid_sequences": valid.as_ref().map_or(0, |v| v.len()),
    });
    if !quiet {
        eprintln!(
            "data: {} records from {files} files ({} skipped, {duplicates} duplicates removed) · train {} tokens ({} sequences) · \
             valid {valid_tokens} tokens ({} files held out{})",
            records.len(),
            skipped.len(),
            train.stream.len(),
            train.len(),
            split.valid_keys.len(),
            if split.moved_to_valid > 0 { format!(", {} moved there to fill one sequence", split.moved_to_valid) } else { String::new() }
        );
    }
    Ok((train, valid, summary, split))
}

/// A prepared corpus (`data prepare`): its shards memory-mapped, its package split as recorded in its manifest.
fn prepared_data(rc: &RunConfig, tok: &Tokenizer, quiet: bool) -> Result<(Packed, Option<Packed>, serde_json::Value, SplitRecord)> {
    let dir = &rc.data[0];
    let corpus = data::corpus::Prepared::open(dir)?;
    corpus.check_tokenizer(tok)?;
    let m = &corpus.manifest;
    let seq_len = rc.train.seq_len;
    let (ts, vs) = (m.stats(data::Split::Train), m.stats(data::Split::Valid));
    let train = Packed::mapped(corpus.tokens(data::Split::Train)?, seq_len, ts.bytes);
    let valid = Packed::mapped(corpus.tokens(data::Split::Valid)?, seq_len, vs.bytes);
    if train.is_empty() {
        bail!("{}: the training split has {} tokens, less than one sequence of {seq_len}", dir.display(), ts.tokens);
    }
    let valid = if valid.is_empty() {
        eprintln!("warning: {} holds out no validation sequence of {seq_len} tokens: training WITHOUT validation", dir.display());
        None
    } else {
        Some(valid)
    };
    let split = SplitRecord {
        rule: m.split.rule.clone(),
        valid_fraction: m.split.valid_fraction,
        roots: rc.data.clone(),
        roots_resolved: rc.data.iter().map(|p| p.canonicalize().unwrap_or_else(|_| p.clone())).collect(),
        train_keys: ts.packages,
        valid_keys: m.split.valid_packages.clone(),
        hash: m.split.hash.clone(),
        duplicates_removed: m.duplicates.exact + m.duplicates.near,
        moved_to_valid: 0,
    };
    let summary = json!({
        "prepared": true, "files": ts.files + vs.files, "train_records": ts.files, "valid_records": vs.files,
        "duplicates_removed": split.duplicates_removed, "train_tokens": ts.tokens, "valid_tokens": vs.tokens,
        "train_sequences": train.len(), "valid_sequences": valid.as_ref().map_or(0, |v| v.len()),
        "train_packages": ts.packages, "valid_packages": vs.packages,
    });
    if !quiet {
        eprintln!(
            "data: prepared corpus {} · train {} tokens ({} sequences, {} packages) · valid {} tokens ({} packages held out), memory-mapped",
            dir.display(),
            ts.tokens,
            train.len(),
            ts.packages,
            vs.tokens,
            vs.packages
        );
    }
    Ok((train, valid, summary, split))
}

/// A run's clocks: wall and CPU time of this segment, added to what earlier segments recorded.
struct Clock {
    start: Instant,
    cpu_start: f64,
    seconds_before: f64,
    cpu_before: f64,
}

impl Clock {
    fn start(state: &TrainerState) -> Self {
        Self { start: Instant::now(), cpu_start: process_cpu_seconds(), seconds_before: state.seconds, cpu_before: state.cpu_seconds }
    }

    /// Writes the run's totals so far into `state`.
    fn stamp(&self, state: &mut TrainerState) {
        state.seconds = self.seconds_before + self.start.elapsed().as_secs_f64();
        state.cpu_seconds = self.cpu_before + (process_cpu_seconds() - self.cpu_start);
    }
}

/// Mean validation cross-entropy and boundary rate over the first `eval_batches` batches.
fn evaluate<B: Backend>(model: &Model<B>, valid: &Packed, c: &TrainConfig) -> (f64, Option<f64>) {
    let device = model.device();
    let n = valid.len();
    let batches = c.eval_batches.max(1).min(n.div_ceil(c.batch_size));
    let (mut ce, mut rate, mut count) = (0.0, 0.0, 0);
    for b in 0..batches {
        let idx: Vec<usize> = (b * c.batch_size..((b + 1) * c.batch_size).min(n)).collect();
        // In f32 whatever the run trains in: validation losses compare across runs.
        let parts = loss(model, batch_tensor::<B>(valid, &idx, &device), None, Objective { precision: Precision::F32, ..c.objective() });
        ce += parts.ce.into_scalar().elem::<f64>();
        if let Some(r) = parts.boundary_rate {
            rate += r.into_scalar().elem::<f64>();
        }
        count += 1;
    }
    let has_chunks = c.model.hnet.is_some();
    (ce / count as f64, has_chunks.then(|| rate / count as f64))
}

/// Test hooks: steps (comma-separated, from `HNET_FAULT_NAN_STEPS` or `HNET_FAULT_INF_GRAD_STEPS`) whose loss is
/// treated as NaN, or whose gradient norm is made to overflow.
fn injected_steps(var: &str) -> Vec<usize> {
    std::env::var(var).map(|s| s.split(',').filter_map(|x| x.trim().parse().ok()).collect()).unwrap_or_default()
}

fn train<A: AutodiffBackend>(job: &Job, devices: &[A::Device]) -> Result<()>
where
    Model<A>: Send + 'static,
{
    let device = &devices[0];
    let run = job.run.clone();
    // Configuration: fresh, or the run's own when resuming.
    let (rc, resume_from) = match &job.fresh {
        None => {
            let rc = read_config(&run)?;
            let ckpt = latest_checkpoint(&run).with_context(|| format!("no complete checkpoint in {}", checkpoints_dir(&run).display()))?;
            (rc, Some(ckpt))
        }
        Some(rc) => {
            if run.join("config.json").exists() {
                bail!("{} already holds a run: continue it with --resume {0}, or choose another --out", run.display());
            }
            (rc.clone(), None)
        }
    };
    let c = rc.train.clone();
    c.precision.check::<A>().map_err(anyhow::Error::msg)?;
    let (train_data, valid_data, data_summary, split) = prepare_data(&rc, job.quiet)?;
    let rc = match &resume_from {
        Some(_) => {
            if rc.split.as_ref().is_some_and(|s| s.hash != split.hash) {
                eprintln!(
                    "warning: the data now splits differently from when {} started (split {} then, {} now): files \
                     held out before may now be trained on",
                    run.display(),
                    rc.split.as_ref().map_or("?", |s| s.hash.as_str()),
                    split.hash
                );
            }
            rc
        }
        None => RunConfig { split: Some(split), ..rc },
    };

    let mut opt = AdamW::<A>::new(c.adamw.clone(), c.groups_at(0));
    let (mut model, mut state) = match &resume_from {
        Some(dir) => {
            let (model, state) = load_checkpoint::<A>(dir, &mut opt, device)?;
            eprintln!("resuming {} from step {}", run.display(), state.step);
            truncate_metrics(&metrics_file(&run), state.step)?;
            (model, state)
        }
        None => {
            // Weights, gradients and AdamW's two moments in f32: refused here, not by an abort on allocation.
            checkpoint::check_host_memory(c.model.param_count(), 16, "training this model")?;
            A::seed(device, c.seed);
            let mut model = Model::<A>::init(&c.model, device)?;
            model.tokenizer = run_tokenizer(&rc)?;
            model.materialize();
            if let Some(path) = &rc.decoder_from {
                model = checkpoint::load_decoder(model, &checkpoint::map_file(path)?, &path.display().to_string())?;
                eprintln!("hybrid decoder initialised from {}", path.display());
            }
            let state = TrainerState::default();
            // Step 0 on disk before the first step: a run killed at any moment leaves a loadable checkpoint. The run's
            // config goes last, once data, model and checkpoint exist: a start that fails leaves no run to block --out.
            save_checkpoint(&run, &step_name(0), &model, &opt, &state)?;
            write_config(&run, &rc)?;
            (model, state)
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
    let stop_at = job.stop_at.unwrap_or(c.steps).min(c.steps);
    let interrupted = crate::interrupt::flag();
    let mut metrics = std::fs::OpenOptions::new().create(true).append(true).open(metrics_file(&run))?;
    let bar = if job.quiet || !std::io::IsTerminal::is_terminal(&std::io::stderr()) {
        indicatif::ProgressBar::hidden()
    } else {
        indicatif::ProgressBar::new(stop_at as u64)
    };
    bar.set_style(
        indicatif::ProgressStyle::with_template("{bar:30.cyan/blue} {pos}/{len} {msg} [{elapsed_precise} < {eta_precise}]")
            .expect("a valid template"),
    );
    bar.set_position(state.step as u64);
    let (nan_steps, inf_grad_steps) = (injected_steps("HNET_FAULT_NAN_STEPS"), injected_steps("HNET_FAULT_INF_GRAD_STEPS"));
    let tokens_per_step = (c.batch_size * c.seq_len * c.grad_accum) as u64;
    let tokens_per_byte = valid_data.as_ref().map_or(0.0, |v| v.stream.len() as f64 / v.bytes.max(1) as f64);
    let mut consecutive_bad = 0;
    let mut last_loss = f64::NAN;
    let clock = Clock::start(&state);

    while state.step < stop_at {
        let step = state.step;
        let t0 = Instant::now();
        opt.groups = c.groups_at(step);
        let lr = lr_at(step, &c);
        let micro: Vec<Vec<usize>> =
            (0..c.grad_accum).map(|_| next_batch(train_data.len(), c.seed, &mut state.data, c.batch_size)).collect();
        let mut shares = parallel::shard(&micro, devices.len());
        let mine = shares.remove(0);
        if let Some(peers) = &peers {
            peers.step(step, lr, shares)?;
        }
        let fault = match step + 1 {
            s if nan_steps.contains(&s) => Fault::NanLoss,
            s if inf_grad_steps.contains(&s) => Fault::InfGrad,
            _ => Fault::None,
        };
        // The library's step; with several devices, the gradients are averaged between its two phases.
        let (next, outcome) = if devices.len() == 1 {
            step::blocking::train_step(model, &mut opt, &train_data, &mine, lr, c.objective(), fault)?
        } else {
            let local = step::blocking::backward_pass(&model, &train_data, &mine, c.objective(), fault)?;
            let reduced = parallel::reduce::<A>(local, 0, devices.len(), device)?;
            step::blocking::optimizer_step(model, &mut opt, reduced, lr)?
        };
        model = next;
        state.step += 1;
        state.tokens += tokens_per_step;
        // A skipped step (non-finite loss or gradient norm) left weights and moments untouched.
        let skipped = match outcome {
            StepOutcome::Skipped(why) => Some(why.to_string()),
            StepOutcome::Applied { loss, ce, grad_norm } => {
                consecutive_bad = 0;
                let tps = tokens_per_step as f64 / t0.elapsed().as_secs_f64();
                last_loss = loss;
                clock.stamp(&mut state);
                writeln!(
                    metrics,
                    "{}",
                    json!({"kind": "train", "step": state.step, "loss": loss, "ce": ce, "lr": lr, "grad_norm": grad_norm, "tokens_per_s": tps,
                           "tokens": state.tokens, "cpu_seconds": state.cpu_seconds})
                )?;
                bar.set_message(format!("loss {loss:.3} · {tps:.0} tok/s"));
                None
            }
        };
        bar.set_position(state.step as u64);
        if let Some(why) = skipped {
            state.bad_steps += 1;
            consecutive_bad += 1;
            bar.suspend(|| eprintln!("warning: step {}: {why}, step skipped ({consecutive_bad} in a row)", state.step));
            writeln!(metrics, "{}", json!({"kind": "train", "step": state.step, "skipped": true, "reason": why}))?;
            if consecutive_bad >= rc.max_bad_steps {
                clock.stamp(&mut state);
                save_checkpoint(&run, &step_name(state.step), &model, &opt, &state)?;
                bail!(
                    "{consecutive_bad} consecutive steps were skipped (non-finite loss or gradient); stopped at step {}. \
                     The last checkpoint is in {} — lower --lr or check the data, then --resume",
                    state.step,
                    checkpoints_dir(&run).display()
                );
            }
        }

        // Validation and checkpoints follow every step, skipped or not: a run whose last step was skipped still
        // ends with its final evaluation and checkpoint.
        let last = state.step == stop_at;
        if let Some(valid_data) = valid_data.as_ref().filter(|_| state.step % c.eval_every == 0 || last) {
            let (vloss, rate) = evaluate(&model.valid(), valid_data, &c);
            let bpb = vloss * tokens_per_byte / std::f64::consts::LN_2;
            let chunk_len = rate.filter(|r| *r > 0.0).map(|r| 1.0 / r);
            clock.stamp(&mut state);
            writeln!(
                metrics,
                "{}",
                json!({"kind": "valid", "step": state.step, "loss": vloss, "ppl": vloss.exp(), "bits_per_byte": bpb,
                       "mean_chunk_tokens": chunk_len, "tokens": state.tokens, "seconds": state.seconds, "cpu_seconds": state.cpu_seconds})
            )?;
            bar.suspend(|| {
                eprintln!(
                    "step {:>6}  train {last_loss:.4}  valid {vloss:.4}  ppl {:.2}  bpb {bpb:.3}{}",
                    state.step,
                    vloss.exp(),
                    chunk_len.map(|l| format!("  chunk {l:.2} tok")).unwrap_or_default()
                )
            });
            if state.best_valid.is_none_or(|b| vloss < b) {
                state.best_valid = Some(vloss);
                clock.stamp(&mut state);
                save_checkpoint(&run, "best", &model, &opt, &state)?;
            }
        }
        let stop = interrupted.load(Ordering::SeqCst);
        if state.step % rc.checkpoint_every == 0 || last || stop {
            clock.stamp(&mut state);
            save_checkpoint(&run, &step_name(state.step), &model, &opt, &state)?;
            prune_checkpoints(&run, rc.keep_last);
        }
        if stop {
            bar.abandon();
            eprintln!(
                "interrupted: checkpoint at step {} in {}; continue with --resume {}",
                state.step,
                checkpoints_dir(&run).display(),
                run.display()
            );
            return Err(crate::interrupt::Interrupted.into());
        }
    }
    bar.finish_and_clear();
    if let Some(peers) = peers {
        peers.finish(&model)?;
    }
    clock.stamp(&mut state);
    let seconds = state.seconds;
    let summary = json!({
        "run": run, "arch": c.model.arch, "steps": state.step, "target_steps": c.steps, "tokens": state.tokens,
        "seconds": seconds, "tokens_per_s": state.tokens as f64 / seconds.max(1e-9), "cpu_seconds": state.cpu_seconds,
        "final_train_loss": last_loss, "best_valid_loss": state.best_valid,
        "skipped_steps": state.bad_steps, "data": data_summary, "parameters": model.num_params(),
    });
    checkpoint::write_atomic(&summary_file(&run), serde_json::to_string_pretty(&summary)?.as_bytes())?;
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
