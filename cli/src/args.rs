//! Command-line flags (clap derive). Each subcommand's flags map onto the library's own types in `commands`.

use std::path::PathBuf;

use clap::{Args, Parser, Subcommand, ValueEnum};

/// HNet-GPT: structure-aware code language models — GPT-2, H-Net and their hybrid on burn.
#[derive(Debug, Parser)]
#[command(name = "hnet-gpt", version, about)]
pub struct Cli {
    #[command(subcommand)]
    pub command: Command,
}

#[derive(Debug, Subcommand)]
pub enum Command {
    /// Print the GPT-2 token ids (and token strings with byte spans) of a text as JSON.
    Tokenize {
        /// Print only the ids.
        #[arg(long)]
        ids: bool,
        /// The text, or `-` to read standard input.
        text: String,
    },
    /// Write a freshly initialised checkpoint.
    Init {
        /// Architecture: gpt2, hnet or hybrid.
        #[arg(long, default_value = "gpt2")]
        arch: String,
        /// Size preset: tiny, small or base (`gpt2` = base).
        #[arg(long, default_value = "tiny")]
        preset: String,
        /// Seed of the initialisation.
        #[arg(long, default_value_t = 0)]
        seed: u64,
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
    /// Generate a continuation of a prompt, streamed to standard output.
    Generate {
        #[command(flatten)]
        model: ModelArgs,
        /// The prompt text (`-` reads standard input).
        #[arg(long)]
        prompt: String,
        #[command(flatten)]
        sampling: SamplingArgs,
    },
}

/// Which compute device runs the model.
#[derive(Debug, Clone, Copy, ValueEnum)]
pub enum DeviceKind {
    /// burn's CPU backend (Flex).
    Cpu,
    /// burn's wgpu backend (Vulkan/Metal/DX12; lavapipe works without a GPU).
    Wgpu,
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
    #[arg(long, default_value_t = 0.8)]
    pub temperature: f32,
    /// Keep the k most likely tokens (0 = all).
    #[arg(long, default_value_t = 40)]
    pub top_k: usize,
    /// Nucleus threshold in (0, 1].
    #[arg(long, default_value_t = 0.95)]
    pub top_p: f32,
    /// Repetition penalty (1 = off).
    #[arg(long, default_value_t = 1.1)]
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
}
