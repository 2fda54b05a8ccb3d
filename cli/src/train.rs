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
use hnet_gpt_model::io::{checkpoint, transplant};
use hnet_gpt_model::train::data::{self, next_batch, render, Packed};
use hnet_gpt_model::train::optim::AdamW;
use hnet_gpt_model::train::step::{self, StepOutcome};
use hnet_gpt_model::train::{batch_tensor, loss, Objective, Precision, TrainConfig, Unfreeze};
use hnet_gpt_model::util::files::write_atomic;
use hnet_gpt_model::{Model, ModelConfig};
use serde_json::json;

use crate::args::{DeviceKind, TrainArgs};
use crate::backend::with_backend;
use crate::input::{checkpoint_info, json_file};
use hnet_gpt::cluster::{self, Cluster};

use crate::parallel::{self, Peers};
use crate::run_dir::{
    checkpoints_dir, latest_checkpoint, load_checkpoint, metrics_file, process_cpu_seconds, prune_checkpoints, read_config,
    save_checkpoint, step_name, summary_file, truncate_metrics, write_config, RunConfig, SplitRecord, TrainerState,
};
use hnet_gpt_model::tokenizer::{Tokenizer, TokenizerSpec};
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
    /// Data-parallel replicas on this node.
    pub devices: usize,
    /// This node's place in a run over several nodes (None: one node).
    pub cluster: Option<Cluster>,
    /// No progress bar.
    pub quiet: bool,
}

impl Job {
    /// Whether this process writes the run directory: always on one node, only rank 0 over several.
    pub fn writes(&self) -> bool {
        self.cluster.as_ref().is_none_or(|c| c.rank == 0)
    }
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
    let cluster = Cluster::from_args(&args.cluster)?;
    execute(&Job { run, fresh, stop_at: args.stop_at, device: args.device, devices: args.devices, cluster, quiet: args.quiet })
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
    if let Some(path) = &rc.init_from {
        return Ok(checkpoint_info(path).context("--init-from")?.1.tokenizer);
    }
    data_tokenizer(&rc.data)
}

/// The tokenizer `--data` is read with: a prepared corpus's own when it has one, else GPT-2's.
fn data_tokenizer(data: &[PathBuf]) -> Result<TokenizerSpec> {
    match data {
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
        None => match (&args.init_from, &args.model_config) {
            (Some(path), _) => {
                let (bytes, info) = checkpoint_info(path).context("--init-from")?;
                checkpoint::check_declared_size(&info.config, bytes.len(), &path.display().to_string())?;
                anyhow::ensure!(
                    info.config.arch == args.arch,
                    "--init-from {} is a {} model, not --arch {}",
                    path.display(),
                    info.config.arch,
                    args.arch
                );
                info.config
            }
            (None, Some(path)) => {
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
            (None, None) => ModelConfig::preset(args.arch, &args.preset)?,
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
        init_from: args.init_from.clone(),
        checkpoint_every: args.checkpoint_every.max(1),
        keep_last: args.keep_last.max(1),
        max_bad_steps: args.max_bad_steps.max(1),
        command: std::env::args().collect::<Vec<_>>().join(" "),
        split: None,
    };
    // A fresh model's vocabulary is its tokenizer's (a corpus with its own BPE); a decoder brings both. A model to
    // start from must read the data with its own tokenizer.
    if let Some(path) = &args.init_from {
        let data = data_tokenizer(&args.data)?;
        anyhow::ensure!(
            same_tokenizer(&run_tokenizer(&rc)?, &data),
            "--init-from {}: the model's tokenizer is not the data's ({}); prepare the data with it (data prepare \
             --checkpoint {0})",
            path.display(),
            data
        );
    } else if args.decoder_from.is_none() {
        model.decoder.vocab_size = run_tokenizer(&rc)?.load()?.vocab_size();
        model.validate()?;
    }
    let mut t = TrainConfig::new(model);
    args.settings.apply(&mut t);
    t.grad_accum = args.grad_accum;
    t.ratio_loss_weight = args.ratio_loss_weight;
    let [l0, l1] = args.stage_lr[..] else { bail!("--stage-lr takes two numbers, e.g. 2,1") };
    t.stage_lr = [l0, l1];
    t.seed = args.seed;
    t.unfreeze = match (args.unfreeze_top_half_at, args.unfreeze_all_at) {
        (None, None) if args.decoder_from.is_some() => Some(Unfreeze { top_half_at: t.steps / 4, all_at: t.steps / 2 }),
        (None, None) => None,
        (top, all) => Some(Unfreeze { top_half_at: top.unwrap_or(0), all_at: all.unwrap_or(t.steps) }),
    };
    if t.unfreeze.is_some() && args.decoder_from.is_none() {
        bail!("--unfreeze-* only makes sense with --decoder-from");
    }
    t.validate()?;
    rc.train = t;
    Ok(rc)
}

/// Whether two tokenizers are the same one (GPT-2's, or equal `tokenizer.json` documents however formatted).
fn same_tokenizer(a: &TokenizerSpec, b: &TokenizerSpec) -> bool {
    match (a, b) {
        (TokenizerSpec::Gpt2Bpe, TokenizerSpec::Gpt2Bpe) => true,
        (TokenizerSpec::Embedded(a), TokenizerSpec::Embedded(b)) => {
            a == b
                || serde_json::from_str::<serde_json::Value>(a)
                    .ok()
                    .zip(serde_json::from_str::<serde_json::Value>(b).ok())
                    .is_some_and(|(a, b)| a == b)
        }
        _ => false,
    }
}

/// Loads, deduplicates, splits, renders, tokenises and packs the data. Problems with individual lines or files are
/// warnings. Validation is `None` when the data is too small to hold out a sequence (a warning says so).
fn prepare_data(rc: &RunConfig, quiet: bool) -> Result<(Packed, Option<Packed>, serde_json::Value, SplitRecord)> {
    let tok = run_tokenizer(rc)?.load()?;
    if rc.data.iter().any(|p| data::corpus::is_prepared(p)) {
        anyhow::ensure!(rc.data.len() == 1, "a prepared corpus is its own split: give it as the only --data");
        return prepared_data(rc, &tok, quiet);
    }
    let (mut records, files, skipped) = load_records(rc)?;
    let duplicates = data::dedup(&mut records);
    // The built-in corpus is tiny: hold out more of it so validation has something to measure.
    let fraction = if rc.data.is_empty() { rc.valid_fraction.max(0.15) } else { rc.valid_fraction };
    let seq_len = rc.train.seq_len;
    let (keys, assignment, train_docs, valid_docs) = split_documents(&records, rc, &tok, fraction)?;
    let held: std::collections::HashSet<&str> =
        keys.iter().zip(&assignment.valid).filter(|(_, v)| **v).map(|((k, _), _)| k.as_str()).collect();
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
        hash: format!("{:016x}", hnet_gpt_model::util::hash::fnv1a(sides.join("\n").as_bytes())),
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

/// The records of `--data` (the built-in corpus without it), the number of files read and what was skipped (the
/// first 20 said as warnings).
fn load_records(rc: &RunConfig) -> Result<(Vec<data::Record>, usize, Vec<data::Skipped>)> {
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
    Ok((records, files, skipped))
}

/// Documents (token ids and source bytes) of each side of the split, a file's records kept together: the split keys
/// with their token counts and the assignment of each key.
#[allow(clippy::type_complexity)]
fn split_documents(
    records: &[data::Record],
    rc: &RunConfig,
    tok: &Tokenizer,
    fraction: f64,
) -> Result<(Vec<(String, usize)>, data::Assignment, Vec<(Vec<u32>, usize)>, Vec<(Vec<u32>, usize)>)> {
    let mut docs: Vec<(String, Vec<u32>, usize)> = Vec::with_capacity(records.len());
    let mut keys: Vec<(String, usize)> = Vec::new();
    let mut key_index = HashMap::new();
    for r in records {
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
    let assignment = data::assign_split(&keys, fraction, rc.train.seq_len + 1);
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
    Ok((keys, assignment, train_docs, valid_docs))
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

/// Phase 1 of a step, and the test hooks that corrupt it: only in builds with the `fault-injection` feature
/// (tests/faults.rs), where `HNET_FAULT_NAN_STEPS` / `HNET_FAULT_INF_GRAD_STEPS` (comma-separated 1-based steps)
/// make those steps' loss NaN or their gradient norm infinite.
mod faults {
    use super::*;
    use hnet_gpt_model::train::config::Objective;
    use hnet_gpt_model::train::data::Packed;
    use hnet_gpt_model::train::step::Gradients;

    #[cfg(not(feature = "fault-injection"))]
    pub fn backward_pass<A: AutodiffBackend>(
        _step: usize,
        model: &Model<A>,
        data: &Packed,
        micro: &[Vec<usize>],
        objective: Objective,
    ) -> Result<Gradients, hnet_gpt_model::train::step::ReadError> {
        step::blocking::backward_pass(model, data, micro, objective)
    }

    #[cfg(feature = "fault-injection")]
    pub fn backward_pass<A: AutodiffBackend>(
        step: usize,
        model: &Model<A>,
        data: &Packed,
        micro: &[Vec<usize>],
        objective: Objective,
    ) -> Result<Gradients, hnet_gpt_model::train::step::ReadError> {
        use step::Fault;
        let at = |var: &str| std::env::var(var).is_ok_and(|s| s.split(',').filter_map(|x| x.trim().parse().ok()).any(|s: usize| s == step));
        let fault = if at("HNET_FAULT_NAN_STEPS") {
            Fault::NanLoss
        } else if at("HNET_FAULT_INF_GRAD_STEPS") {
            Fault::InfGrad
        } else {
            Fault::None
        };
        step::blocking::with_fault::backward_pass(model, data, micro, objective, fault)
    }
}

/// Runs a job: a [`Trainer`] opened fresh or resumed, stepped to the job's last step, finished with a summary.
fn train<A: AutodiffBackend>(job: &Job, devices: &[A::Device]) -> Result<()>
where
    Model<A>: Send + 'static,
{
    let (mut trainer, mut model) = Trainer::open(job, devices)?;
    let interrupted = crate::interrupt::flag();
    while trainer.state.step < trainer.stop_at {
        model = trainer.step(model)?;
        let stop = interrupted.load(Ordering::SeqCst);
        trainer.after_step(&model, stop)?;
        if stop {
            trainer.bar.abandon();
            eprintln!(
                "interrupted: checkpoint at step {} in {}; continue with --resume {}",
                trainer.state.step,
                checkpoints_dir(&trainer.run).display(),
                trainer.run.display()
            );
            return Err(crate::interrupt::Interrupted.into());
        }
    }
    trainer.finish(model)
}

/// The training data of a run, loaded once.
struct Data {
    train: Arc<Packed>,
    valid: Option<Packed>,
    /// What was loaded (for the summary).
    summary: serde_json::Value,
    /// Validation tokens per source byte (bits per byte from nats per token).
    tokens_per_byte: f64,
}

/// A run in progress: its settings, optimizer, counters, data and outputs. The model travels beside it (each step
/// consumes the model and returns the next).
struct Trainer<A: AutodiffBackend> {
    run: PathBuf,
    rc: RunConfig,
    c: TrainConfig,
    opt: AdamW<A>,
    state: TrainerState,
    data: Data,
    devices: Vec<A::Device>,
    peers: Option<Peers>,
    /// This node's place in a run over several nodes.
    cluster: Option<Cluster>,
    stop_at: usize,
    /// metrics.jsonl; None on nodes other than rank 0, which write nothing.
    metrics: Option<std::fs::File>,
    bar: indicatif::ProgressBar,
    clock: Clock,
    consecutive_bad: usize,
    last_loss: f64,
}

impl<A: AutodiffBackend> Trainer<A>
where
    Model<A>: Send + 'static,
{
    /// A fresh run (its step-0 checkpoint and config written) or the continuation of `job.run` from its latest
    /// checkpoint, with its data loaded and its data-parallel peers started.
    fn open(job: &Job, devices: &[A::Device]) -> Result<(Self, Model<A>)> {
        let run = job.run.clone();
        let (rc, resume_from) = Self::settings(job)?;
        let c = rc.train.clone();
        c.precision.check::<A>().map_err(anyhow::Error::msg)?;
        let (train, valid, summary, split) = prepare_data(&rc, job.quiet)?;
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
        let (model, state) = match &resume_from {
            Some(dir) => {
                let (model, state) = load_checkpoint::<A>(dir, &mut opt, &devices[0])?;
                eprintln!("resuming {} from step {}", run.display(), state.step);
                if job.writes() {
                    truncate_metrics(&metrics_file(&run), state.step)?;
                }
                (model, state)
            }
            None => Self::start(&run, &rc, &opt, &devices[0], job.writes())?,
        };
        let tokens_per_byte = valid.as_ref().map_or(0.0, |v| v.stream.len() as f64 / v.bytes.max(1) as f64);
        let data = Data { train: Arc::new(train), valid, summary, tokens_per_byte };
        let peers = match (devices.len(), &job.cluster) {
            (1, None) => None,
            (n, cl) => {
                let replicas = n * cl.as_ref().map_or(1, |c| c.nodes);
                match cl {
                    Some(cl) => eprintln!(
                        "data parallel over {} nodes × {n} devices: {} sequences per replica per micro-batch",
                        cl.nodes,
                        c.batch_size / replicas
                    ),
                    None => eprintln!("data parallel over {n} devices: {} sequences per device per micro-batch", c.batch_size / n),
                }
                let fingerprint = parallel::fingerprint(&c, &data.train, state.step, &model)?;
                Some(Peers::start::<A>(devices, &model, &opt, &c, data.train.clone(), job.cluster.as_ref(), &fingerprint)?)
            }
        };
        let stop_at = job.stop_at.unwrap_or(c.steps).min(c.steps);
        let metrics = match job.writes() {
            true => Some(std::fs::OpenOptions::new().create(true).append(true).open(metrics_file(&run))?),
            false => None,
        };
        let bar = progress_bar(job.quiet, stop_at, state.step);
        let clock = Clock::start(&state);
        let trainer = Self {
            run,
            rc,
            c,
            opt,
            state,
            data,
            devices: devices.to_vec(),
            peers,
            cluster: job.cluster.clone(),
            stop_at,
            metrics,
            bar,
            clock,
            consecutive_bad: 0,
            last_loss: f64::NAN,
        };
        Ok((trainer, model))
    }

    /// The run's settings: the job's for a fresh run, the run's own (and its latest checkpoint) when resuming.
    fn settings(job: &Job) -> Result<(RunConfig, Option<PathBuf>)> {
        let run = &job.run;
        match &job.fresh {
            None => {
                if !job.writes() && !run.join("config.json").is_file() {
                    bail!(
                        "{} is not here: a node other than rank 0 resumes from rank 0's run directory — keep runs on \
                         storage the nodes share, or copy rank 0's {0} to this node first",
                        run.display()
                    );
                }
                let rc = read_config(run)?;
                let ckpt =
                    latest_checkpoint(run).with_context(|| format!("no complete checkpoint in {}", checkpoints_dir(run).display()))?;
                Ok((rc, Some(ckpt)))
            }
            Some(rc) => {
                if job.writes() && run.join("config.json").exists() {
                    bail!("{} already holds a run: continue it with --resume {0}, or choose another --out", run.display());
                }
                Ok((rc.clone(), None))
            }
        }
    }

    /// A fresh model (from a decoder checkpoint when the run names one), saved as step 0 before anything else when
    /// this process `writes` the run.
    fn start(run: &std::path::Path, rc: &RunConfig, opt: &AdamW<A>, device: &A::Device, writes: bool) -> Result<(Model<A>, TrainerState)> {
        let c = &rc.train;
        // Weights, gradients and AdamW's two moments in f32: refused here, not by an abort on allocation.
        checkpoint::check_host_memory(c.model.param_count(), 16, "training this model")?;
        A::seed(device, c.seed);
        let mut model = checkpoint::init::<A>(&c.model, device)?;
        model.tokenizer = run_tokenizer(rc)?;
        model.materialize();
        if let Some(path) = &rc.decoder_from {
            model = transplant::load_decoder(model, &checkpoint::map_file(path)?, &path.display().to_string())?;
            eprintln!("hybrid decoder initialised from {}", path.display());
        }
        if let Some(path) = &rc.init_from {
            model = checkpoint::load::<A>(path, device).with_context(|| format!("--init-from {}", path.display()))?;
            anyhow::ensure!(model.config == c.model, "--init-from {}: the checkpoint changed since the run began", path.display());
            eprintln!("weights initialised from {}", path.display());
        }
        let state = TrainerState::default();
        if !writes {
            return Ok((model, state));
        }
        // Step 0 on disk before the first step: a run killed at any moment leaves a loadable checkpoint. The run's
        // config goes last, once data, model and checkpoint exist: a start that fails leaves no run to block --out.
        save_checkpoint(run, &step_name(0), &model, opt, &state)?;
        write_config(run, rc)?;
        Ok((model, state))
    }

    /// One optimizer step (or a skipped one) on the next batch; its metrics line; the run stops after too many
    /// skipped steps in a row.
    fn step(&mut self, model: Model<A>) -> Result<Model<A>> {
        let (c, step) = (&self.c, self.state.step);
        let t0 = Instant::now();
        self.opt.groups = c.groups_at(step);
        let lr = c.lr_at(step);
        let micro: Vec<Vec<usize>> =
            (0..c.grad_accum).map(|_| next_batch(self.data.train.len(), c.seed, &mut self.state.data, c.batch_size)).collect();
        let mut shares = parallel::node_shares(&micro, self.devices.len(), self.cluster.as_ref());
        let mine = shares.remove(0);
        if let Some(peers) = &self.peers {
            peers.step(step, lr, shares)?;
        }
        // The library's step; with several replicas, the gradients are averaged between its two phases.
        let mut local = faults::backward_pass(step + 1, &model, &self.data.train, &mine, c.objective())?;
        let replicas = self.devices.len() * self.cluster.as_ref().map_or(1, |c| c.nodes);
        let reduce = || parallel::reduce::<A>(local, &model, 0, replicas, &self.devices[0]);
        let (reduced, seconds) = match &self.cluster {
            Some(cl) => cluster::with_nodes(&format!("averaging the gradients of step {}", step + 1), cl.timeout, reduce)?,
            None => reduce()?,
        };
        local = reduced;
        // Seconds in the gradients' all-reduce (metrics.jsonl: `allreduce_s`).
        let allreduce_s = (replicas > 1).then_some(seconds);
        let (model, outcome) = step::blocking::optimizer_step(model, &mut self.opt, local, lr)?;
        let tokens_per_step = (c.batch_size * c.seq_len * c.grad_accum) as u64;
        self.state.step += 1;
        self.state.tokens += tokens_per_step;
        match outcome {
            StepOutcome::Applied { loss, ce, grad_norm } => {
                self.consecutive_bad = 0;
                let tps = tokens_per_step as f64 / t0.elapsed().as_secs_f64();
                self.last_loss = loss;
                self.clock.stamp(&mut self.state);
                let s = &self.state;
                let mut line = json!({"kind": "train", "step": s.step, "loss": loss, "ce": ce, "lr": lr, "grad_norm": grad_norm,
                                      "tokens_per_s": tps, "tokens": s.tokens, "cpu_seconds": s.cpu_seconds});
                if let Some(seconds) = allreduce_s {
                    line["allreduce_s"] = json!(seconds);
                }
                self.log(&line)?;
                self.bar.set_message(format!("loss {loss:.3} · {tps:.0} tok/s"));
            }
            // A skipped step (non-finite loss or gradient norm) left weights and moments untouched.
            StepOutcome::Skipped(why) => self.skipped(&model, &why.to_string())?,
        }
        self.bar.set_position(self.state.step as u64);
        Ok(model)
    }

    /// Counts a skipped step; too many in a row end the run with a checkpoint and an error.
    fn skipped(&mut self, model: &Model<A>, why: &str) -> Result<()> {
        self.state.bad_steps += 1;
        self.consecutive_bad += 1;
        let (step, n) = (self.state.step, self.consecutive_bad);
        self.bar.suspend(|| eprintln!("warning: step {step}: {why}, step skipped ({n} in a row)"));
        self.log(&json!({"kind": "train", "step": step, "skipped": true, "reason": why}))?;
        if n >= self.rc.max_bad_steps {
            self.save(model, &step_name(step))?;
            bail!(
                "{n} consecutive steps were skipped (non-finite loss or gradient); stopped at step {step}. The last \
                 checkpoint is in {} — lower --lr or check the data, then --resume",
                checkpoints_dir(&self.run).display()
            );
        }
        Ok(())
    }

    /// Validation and checkpoints, after every step, skipped or not: a run whose last step was skipped still ends
    /// with its final evaluation and checkpoint. `stop`: an interrupt asks for a checkpoint now.
    fn after_step(&mut self, model: &Model<A>, stop: bool) -> Result<()> {
        let step = self.state.step;
        let last = step == self.stop_at;
        if self.data.valid.is_some() && (step.is_multiple_of(self.c.eval_every) || last) {
            self.validate(model)?;
        }
        if step.is_multiple_of(self.rc.checkpoint_every) || last || stop {
            self.save(model, &step_name(step))?;
            if self.writes() {
                prune_checkpoints(&self.run, self.rc.keep_last);
            }
        }
        Ok(())
    }

    /// The validation loss, bits per byte and chunk length; the best checkpoint when it improved.
    fn validate(&mut self, model: &Model<A>) -> Result<()> {
        let Some(valid) = &self.data.valid else { return Ok(()) };
        let (vloss, rate) = evaluate(&model.valid(), valid, &self.c);
        let bpb = vloss * self.data.tokens_per_byte / std::f64::consts::LN_2;
        let chunk_len = rate.filter(|r| *r > 0.0).map(|r| 1.0 / r);
        self.clock.stamp(&mut self.state);
        let s = &self.state;
        let line = json!({"kind": "valid", "step": s.step, "loss": vloss, "ppl": vloss.exp(), "bits_per_byte": bpb,
                          "mean_chunk_tokens": chunk_len, "tokens": s.tokens, "seconds": s.seconds, "cpu_seconds": s.cpu_seconds});
        let (step, last_loss) = (s.step, self.last_loss);
        self.log(&line)?;
        self.bar.suspend(|| {
            eprintln!(
                "step {step:>6}  train {last_loss:.4}  valid {vloss:.4}  ppl {:.2}  bpb {bpb:.3}{}",
                vloss.exp(),
                chunk_len.map(|l| format!("  chunk {l:.2} tok")).unwrap_or_default()
            )
        });
        if self.state.best_valid.is_none_or(|b| vloss < b) {
            self.state.best_valid = Some(vloss);
            self.save(model, "best")?;
        }
        Ok(())
    }

    /// A checkpoint of the model, optimizer and counters (clocks stamped first); only by the process that writes
    /// the run.
    fn save(&mut self, model: &Model<A>, name: &str) -> Result<()> {
        self.clock.stamp(&mut self.state);
        match self.writes() {
            true => save_checkpoint(&self.run, name, model, &self.opt, &self.state),
            false => Ok(()),
        }
    }

    /// Whether this process writes the run directory (see [`Job::writes`]).
    fn writes(&self) -> bool {
        self.metrics.is_some()
    }

    /// A line of metrics.jsonl (nodes other than rank 0 write none).
    fn log(&mut self, line: &serde_json::Value) -> Result<()> {
        if let Some(file) = &mut self.metrics {
            writeln!(file, "{line}")?;
        }
        Ok(())
    }

    /// The peers' last word, then the run's summary.
    fn finish(mut self, model: Model<A>) -> Result<()> {
        self.bar.finish_and_clear();
        if let Some(peers) = self.peers.take() {
            let fingerprint = parallel::fingerprint(&self.c, &self.data.train, self.state.step, &model)?;
            peers.finish(&model, &fingerprint, &self.devices[0])?;
        }
        self.clock.stamp(&mut self.state);
        let (s, c) = (&self.state, &self.c);
        let seconds = s.seconds;
        let summary = json!({
            "run": self.run, "arch": c.model.arch, "steps": s.step, "target_steps": c.steps, "tokens": s.tokens,
            "seconds": seconds, "tokens_per_s": s.tokens as f64 / seconds.max(1e-9), "cpu_seconds": s.cpu_seconds,
            "final_train_loss": self.last_loss, "best_valid_loss": s.best_valid,
            "skipped_steps": s.bad_steps, "data": self.data.summary, "parameters": model.num_params(),
        });
        if self.writes() {
            write_atomic(&summary_file(&self.run), serde_json::to_string_pretty(&summary)?.as_bytes())?;
        }
        eprintln!(
            "done: {} steps · {} tokens · {:.0} s · {:.0} tokens/s · best valid loss {} · {} skipped steps · {}",
            s.step,
            s.tokens,
            seconds,
            s.tokens as f64 / seconds.max(1e-9),
            s.best_valid.map_or("–".into(), |v| format!("{v:.4}")),
            s.bad_steps,
            match self.writes() {
                true => format!("run {}", self.run.display()),
                false => "the run directory is rank 0's".to_string(),
            }
        );
        Ok(())
    }
}

/// The progress bar (hidden with --quiet or when stderr is not a terminal).
fn progress_bar(quiet: bool, stop_at: usize, at: usize) -> indicatif::ProgressBar {
    let bar = if quiet || !std::io::IsTerminal::is_terminal(&std::io::stderr()) {
        indicatif::ProgressBar::hidden()
    } else {
        indicatif::ProgressBar::new(stop_at as u64)
    };
    bar.set_style(
        indicatif::ProgressStyle::with_template("{bar:30.cyan/blue} {pos}/{len} {msg} [{elapsed_precise} < {eta_precise}]")
            .expect("a valid template"),
    );
    bar.set_position(at as u64);
    bar
}
