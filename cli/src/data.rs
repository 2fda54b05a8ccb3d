//! `hnet-gpt data prepare`: source trees to a prepared corpus (the library's [`corpus`]), with progress bars and a
//! summary of what was kept, skipped and split.

use anyhow::Result;
use hnet_gpt_model::tokenizer::TokenizerSpec;
use hnet_gpt_model::train::data::corpus::filters::FileLimits;
use hnet_gpt_model::train::data::corpus::{self, CorpusTokenizer, Phase, PrepareOptions};
use hnet_gpt_model::train::data::Split;
use indicatif::{ProgressBar, ProgressStyle};

use crate::args::PrepareArgs;

/// Runs `data prepare`.
pub fn prepare(args: &PrepareArgs) -> Result<()> {
    for root in &args.data {
        anyhow::ensure!(root.is_dir(), "--data {}: not a directory", root.display());
    }
    let tokenizer = match (&args.checkpoint, &args.tokenizer, args.tokenizer_vocab) {
        (Some(path), _, _) => CorpusTokenizer::Use(crate::input::checkpoint_info(path)?.1.tokenizer),
        (_, Some(path), _) => CorpusTokenizer::Use(TokenizerSpec::for_json(&crate::input::json_file(path, "--tokenizer")?)?),
        (_, _, Some(n)) => CorpusTokenizer::Train(n),
        _ => CorpusTokenizer::Use(TokenizerSpec::Gpt2Bpe),
    };
    let defaults = PrepareOptions::default();
    let opts = PrepareOptions {
        valid_fraction: args.valid_fraction,
        min_valid_bytes: args.min_valid_bytes,
        limits: FileLimits { max_bytes: args.max_file_bytes, max_line_bytes: args.max_line_bytes },
        near_threshold: args.near_dup,
        shard_tokens: args.shard_tokens,
        threads: args.threads.unwrap_or(defaults.threads).max(1),
        allow_unknown_licence: args.allow_unknown_licence,
        max_package_bytes: args.max_package_bytes,
        docstrings: args.docstrings,
    };
    let bar = if args.quiet { ProgressBar::hidden() } else { ProgressBar::new(0) };
    bar.set_style(ProgressStyle::with_template("{msg:>10} [{bar:40}] {pos}/{len} files ({per_sec}, eta {eta})").expect("a valid template"));
    let progress = |phase: Phase, done: usize, total: usize| {
        bar.set_length(total as u64);
        bar.set_position(done as u64);
        bar.set_message(match phase {
            Phase::Reading => "reading",
            Phase::TrainingTokenizer => "BPE",
            Phase::Tokenising => "tokenising",
        });
    };
    let m = corpus::prepare(&args.data, &args.out, &tokenizer, &opts, &progress)?;
    bar.finish_and_clear();
    let (train, valid) = (m.stats(Split::Train), m.stats(Split::Valid));
    let excluded: Vec<String> = m
        .packages
        .iter()
        .filter_map(|p| {
            p.excluded.as_ref().map(|why| format!("{} ({}: {why})", p.name, if p.licence.is_empty() { "no licence" } else { &p.licence }))
        })
        .collect();
    eprintln!(
        "corpus {}: {} tokens from {} files of {} packages · train {} tokens ({} packages, {} shards) · valid {} tokens ({} packages: {})",
        args.out.display(),
        train.tokens + valid.tokens,
        train.files + valid.files,
        train.packages + valid.packages,
        train.tokens,
        train.packages,
        train.shards.len(),
        valid.tokens,
        valid.packages,
        match (m.split.valid_packages.is_empty(), args.valid_fraction == 0.0) {
            (true, true) => "none, as --valid-fraction 0 asks".to_string(),
            (true, false) => "none — the data is too small to hold a package out".to_string(),
            (false, _) => m.split.valid_packages.join(", "),
        }
    );
    eprintln!(
        "duplicates removed: {} exact, {} near (similarity ≥ {}) · files skipped: {} · {:.1} s, {:.0} tokens/s on {} threads",
        m.duplicates.exact,
        m.duplicates.near,
        m.duplicates.near_threshold,
        if m.skipped_files.is_empty() {
            "none".to_string()
        } else {
            m.skipped_files.iter().map(|(why, n)| format!("{n} {why}")).collect::<Vec<_>>().join(", ")
        },
        m.seconds,
        m.tokens_per_second,
        m.threads
    );
    if !excluded.is_empty() {
        let shown: Vec<&str> = excluded.iter().take(10).map(String::as_str).collect();
        eprintln!(
            "packages left out: {}{}",
            shown.join("; "),
            if excluded.len() > 10 { format!("; … and {} more (manifest.json lists all)", excluded.len() - 10) } else { String::new() }
        );
    }
    Ok(())
}
