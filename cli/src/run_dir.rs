//! The run directory: what `hnet-gpt train` writes and `--resume`, `eval` and `compare` read. Its layout is named
//! here and nowhere else.
//!
//! ```text
//! RUN_DIR/config.json           everything that determines the run: settings, data, the split, the command line
//! RUN_DIR/metrics.jsonl         one JSON object per step ("kind": "train") and per validation ("kind": "valid")
//! RUN_DIR/checkpoints/step-N/   model.safetensors (loads anywhere), optimizer.safetensors, trainer.json
//! RUN_DIR/checkpoints/best/     the checkpoint with the best validation loss
//! RUN_DIR/summary.json          written when the run ends
//! ```
//! A checkpoint is written into a temporary directory and renamed into place, so a crash (even SIGKILL) at any
//! moment leaves the previous checkpoints intact and loadable. `config.json` is written only once the data has been
//! checked, so a start that fails leaves nothing that blocks the same `--out`.

use std::collections::HashMap;
use std::path::{Path, PathBuf};

use anyhow::{Context, Result};
use burn::tensor::backend::AutodiffBackend;
use hnet_gpt_model::io::checkpoint;
use hnet_gpt_model::train::data::DataPosition;
use hnet_gpt_model::train::optim::AdamW;
use hnet_gpt_model::train::TrainConfig;
use hnet_gpt_model::util::files::write_atomic;
use hnet_gpt_model::util::files::{read_regular, MAX_CHECKPOINT_BYTES, MAX_JSON_BYTES};
use hnet_gpt_model::Model;
use serde::{Deserialize, Serialize};

/// What `config.json` holds.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct RunConfig {
    pub train: TrainConfig,
    pub data: Vec<PathBuf>,
    pub template: bool,
    pub valid_fraction: f64,
    pub decoder_from: Option<PathBuf>,
    /// The checkpoint whose weights the run started from (`train --init-from`; absent in older runs).
    #[serde(default)]
    pub init_from: Option<PathBuf>,
    pub checkpoint_every: usize,
    pub keep_last: usize,
    pub max_bad_steps: usize,
    pub command: String,
    /// How the data was split (absent in runs from before it was recorded).
    #[serde(default)]
    pub split: Option<SplitRecord>,
}

impl RunConfig {
    /// Validation fraction of the hash split.
    pub const VALID_FRACTION: f64 = 0.05;
    /// Steps between checkpoints.
    pub const CHECKPOINT_EVERY: usize = 50;
    /// Recent `step-N` checkpoints kept.
    pub const KEEP_LAST: usize = 3;
    /// Consecutive skipped steps before a run aborts.
    pub const MAX_BAD_STEPS: usize = 5;

    /// A run of `train` on `data` with the defaults above.
    pub fn new(train: TrainConfig, data: Vec<PathBuf>, command: String) -> Self {
        Self {
            train,
            data,
            template: false,
            valid_fraction: Self::VALID_FRACTION,
            decoder_from: None,
            init_from: None,
            checkpoint_every: Self::CHECKPOINT_EVERY,
            keep_last: Self::KEEP_LAST,
            max_bad_steps: Self::MAX_BAD_STEPS,
            command,
            split: None,
        }
    }
}

/// What `trainer.json` holds: everything besides weights and moments needed to continue exactly.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
pub struct TrainerState {
    /// Optimizer steps completed.
    pub step: usize,
    /// Where the data sampler is.
    pub data: DataPosition,
    /// Per-parameter AdamW step counts.
    pub optimizer_steps: HashMap<String, u64>,
    /// Best validation loss so far.
    pub best_valid: Option<f64>,
    /// Steps skipped for a non-finite loss.
    pub bad_steps: usize,
    /// Training tokens consumed.
    pub tokens: u64,
    /// Seconds spent training (over all segments of the run).
    pub seconds: f64,
    /// CPU seconds of the training process, user and system, every thread (over all segments). With the wall time it
    /// tells how busy the machine was; budgets in CPU time compare runs fairly on a shared machine.
    #[serde(default)]
    pub cpu_seconds: f64,
}

/// CPU seconds this process has used so far (user + system, all threads).
pub fn process_cpu_seconds() -> f64 {
    // SAFETY: getrusage writes into the struct it is given.
    let mut usage: libc::rusage = unsafe { std::mem::zeroed() };
    if unsafe { libc::getrusage(libc::RUSAGE_SELF, &mut usage) } != 0 {
        return 0.0;
    }
    let secs = |t: libc::timeval| t.tv_sec as f64 + t.tv_usec as f64 * 1e-6;
    secs(usage.ru_utime) + secs(usage.ru_stime)
}

/// How a run's data was split: recorded in `config.json`, so `eval` and `compare` can score exactly the files the
/// run held out, and a resumed run can tell when its data changed.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct SplitRecord {
    /// The rule, in words.
    pub rule: String,
    /// The validation fraction asked for.
    pub valid_fraction: f64,
    /// The data arguments as given (empty: the built-in corpus).
    pub roots: Vec<PathBuf>,
    /// The same, resolved (absolute, links followed): how `eval` recognises the run's data wherever it is run from.
    #[serde(default)]
    pub roots_resolved: Vec<PathBuf>,
    /// Split keys (repository/path relative to the data root, or `text:<hash>`) held out for validation.
    pub valid_keys: Vec<String>,
    /// Split keys trained on.
    pub train_keys: usize,
    /// FNV-1a of every key with its side, sorted: equal hashes mean an identical split.
    pub hash: String,
    /// Exact duplicate documents removed before splitting.
    pub duplicates_removed: usize,
    /// Keys moved to validation because the hash alone left it shorter than one sequence.
    pub moved_to_valid: usize,
}

/// The settings of the run in `run` (its `config.json`).
pub fn read_config(run: &Path) -> Result<RunConfig> {
    let path = run.join("config.json");
    let bytes =
        read_regular(&path, MAX_JSON_BYTES).with_context(|| format!("{} is not a run directory (no config.json)", run.display()))?;
    serde_json::from_slice(&bytes).with_context(|| format!("reading {}", path.display()))
}

/// Writes `config.json`.
pub fn write_config(run: &Path, rc: &RunConfig) -> Result<()> {
    std::fs::create_dir_all(run).with_context(|| format!("creating {}", run.display()))?;
    write_atomic(&run.join("config.json"), serde_json::to_string_pretty(rc)?.as_bytes())?;
    Ok(())
}

/// The run a checkpoint belongs to, when it sits in a run directory (`RUN/checkpoints/NAME/model.safetensors`).
pub fn run_of_checkpoint(checkpoint: &Path) -> Option<PathBuf> {
    let run = checkpoint.parent()?.parent()?.parent()?;
    let named = checkpoint.parent()?.parent()?.file_name()? == "checkpoints";
    (named && run.join("config.json").is_file()).then(|| run.to_path_buf())
}

/// The checkpoint directory of step `step`.
pub fn step_dir(run: &Path, step: usize) -> PathBuf {
    checkpoints_dir(run).join(step_name(step))
}

/// `step-000042`.
pub fn step_name(step: usize) -> String {
    format!("step-{step:06}")
}

/// The model file of a checkpoint directory.
pub fn model_file(checkpoint_dir: &Path) -> PathBuf {
    checkpoint_dir.join("model.safetensors")
}

/// `summary.json`, written when a run ends.
pub fn summary_file(run: &Path) -> PathBuf {
    run.join("summary.json")
}

/// `metrics.jsonl`.
pub fn metrics_file(run: &Path) -> PathBuf {
    run.join("metrics.jsonl")
}

pub fn checkpoints_dir(run: &Path) -> PathBuf {
    run.join("checkpoints")
}

/// The latest complete `step-N` checkpoint.
pub fn latest_checkpoint(run: &Path) -> Option<PathBuf> {
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
pub fn save_checkpoint<A: AutodiffBackend>(run: &Path, name: &str, model: &Model<A>, opt: &AdamW<A>, state: &TrainerState) -> Result<()> {
    let dir = checkpoints_dir(run);
    // A write killed mid-way left its temporary directory: gone before this one starts.
    hnet_gpt_model::util::files::remove_stale_temporaries(&dir);
    let tmp = dir.join(format!(".tmp-{name}-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&tmp);
    std::fs::create_dir_all(&tmp)?;
    let step = state.step.to_string();
    checkpoint::save(model, &tmp.join("model.safetensors"), &[("step", &step)])?;
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

pub fn prune_checkpoints(run: &Path, keep: usize) {
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

pub fn load_checkpoint<A: AutodiffBackend>(dir: &Path, opt: &mut AdamW<A>, device: &A::Device) -> Result<(Model<A>, TrainerState)> {
    let model = checkpoint::load::<A>(&dir.join("model.safetensors"), device).with_context(|| format!("loading {}", dir.display()))?;
    let state: TrainerState = serde_json::from_slice(&read_regular(&dir.join("trainer.json"), MAX_JSON_BYTES)?)?;
    let bytes = read_regular(&dir.join("optimizer.safetensors"), MAX_CHECKPOINT_BYTES)?;
    let st = safetensors::SafeTensors::deserialize(&bytes).with_context(|| format!("reading {}/optimizer.safetensors", dir.display()))?;
    let tensors = st
        .tensors()
        .into_iter()
        .map(|(k, v)| (k, burn::tensor::TensorData::from_bytes_vec(v.data().to_vec(), v.shape().to_vec(), burn::tensor::DType::F32)))
        .collect();
    opt.load_state(tensors, &state.optimizer_steps, device)?;
    Ok((model, state))
}

/// Keeps `metrics.jsonl` lines up to `step` (a resumed run rewrites what came after its checkpoint).
pub fn truncate_metrics(path: &Path, step: usize) -> Result<()> {
    let Ok(text) = std::fs::read_to_string(path) else { return Ok(()) };
    let kept: Vec<&str> = text
        .lines()
        .filter(|l| serde_json::from_str::<serde_json::Value>(l).ok().and_then(|v| v["step"].as_u64()).is_some_and(|s| s as usize <= step))
        .collect();
    write_atomic(path, (kept.join("\n") + if kept.is_empty() { "" } else { "\n" }).as_bytes())?;
    Ok(())
}
