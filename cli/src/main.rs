//! `hnet-gpt`: the native command line — tokenize, create and import checkpoints, score text, generate code.
//!
//! `main → run() -> anyhow::Result`: errors are printed as `Error: …` with their causes and the exit code is 1.

mod args;
mod backend;
mod bench;
mod commands;
mod compare;
mod data;
mod eval;
mod input;
mod interrupt;
mod parallel;
mod plot;
mod run_dir;
mod tee;
mod train;

use clap::Parser;

fn main() {
    keep_large_buffers();
    if let Err(err) = run() {
        if err.downcast_ref::<interrupt::Interrupted>().is_some() {
            std::process::exit(130);
        }
        eprintln!("Error: {err:#}");
        std::process::exit(1);
    }
}

/// The CPU backend allocates and frees tensors of hundreds of MB every step (logits over GPT-2's 50,257 tokens:
/// 1024 × 50,257 × 4 bytes = 206 MB per tensor at batch 8 × 128). glibc serves each from a fresh `mmap` and
/// unmaps it on free, so every step pays page faults and zeroing of all of them again (about a third of a `small`
/// training step, measured with perf). Raising the mmap and trim thresholds keeps freed buffers in the heap for
/// the next step to reuse (measured: 203 → 270 tokens/s, gpt2 `small`, 2 cores). The memory was in use anyway.
fn keep_large_buffers() {
    #[cfg(all(target_os = "linux", target_env = "gnu"))]
    // SAFETY: mallopt only changes allocator parameters; it is called before any thread exists.
    unsafe {
        libc::mallopt(libc::M_MMAP_THRESHOLD, 1 << 30);
        libc::mallopt(libc::M_TRIM_THRESHOLD, i32::MAX);
    }
}

fn run() -> anyhow::Result<()> {
    let cli = args::Cli::parse();
    commands::dispatch(cli)
}
