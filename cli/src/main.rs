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
mod hub;
mod input;
mod interrupt;
mod parallel;
mod plot;
mod run_dir;
mod tee;
mod train;

use clap::Parser;

fn main() {
    if let Err(err) = run() {
        if err.downcast_ref::<interrupt::Interrupted>().is_some() {
            std::process::exit(130);
        }
        eprintln!("Error: {err:#}");
        std::process::exit(1);
    }
}

fn run() -> anyhow::Result<()> {
    let cli = args::Cli::parse();
    commands::dispatch(cli)
}
