//! What the commands read: GPT-2's tokenizer (built into the binary, so the CLI works from any directory; a model's
//! own tokenizer comes with its checkpoint) and text arguments (a literal, a file, or standard input for `-`) with
//! errors that say what is wrong.

use std::io::Read;

use std::path::Path;

use anyhow::{Context, Result};
use hnet_gpt_model::io::checkpoint::{self, CheckpointInfo};
use hnet_gpt_model::tokenizer::Tokenizer;
use hnet_gpt_model::util::files::{read_regular, MAX_JSON_BYTES};

/// GPT-2's tokenizer (for commands without a checkpoint).
pub fn tokenizer() -> Result<Tokenizer> {
    Ok(Tokenizer::gpt2()?)
}

/// Reads a UTF-8 text argument: the text itself, or standard input for `-`.
pub fn text_arg(text: &str) -> Result<String> {
    if text != "-" {
        return Ok(text.to_string());
    }
    let mut bytes = Vec::new();
    std::io::stdin().read_to_end(&mut bytes).context("reading standard input")?;
    String::from_utf8(bytes).map_err(|e| anyhow::anyhow!("standard input is not valid UTF-8 (byte {})", e.utf8_error().valid_up_to()))
}

/// Reads a UTF-8 file (or standard input for `-`) with an error that says what is wrong.
pub fn file_arg(path: &str) -> Result<String> {
    if path == "-" {
        return text_arg(path);
    }
    let bytes = read_regular(Path::new(path), 1 << 30).with_context(|| format!("cannot read {path}"))?;
    String::from_utf8(bytes)
        .map_err(|e| anyhow::anyhow!("{path} is not valid UTF-8 text (invalid byte at offset {})", e.utf8_error().valid_up_to()))
}

/// A checkpoint's bytes and what its header says (architecture, config, tokenizer), read once.
pub fn checkpoint_info(path: &Path) -> Result<(memmap2::Mmap, CheckpointInfo)> {
    let bytes = checkpoint::map_file(path)?;
    let info = checkpoint::read_info(&bytes, &path.display().to_string())?;
    Ok((bytes, info))
}

/// A JSON file of ours or the user's (a config, a run's state) as text, with an error naming it.
pub fn json_file(path: &Path, what: &str) -> Result<String> {
    let bytes = read_regular(path, MAX_JSON_BYTES).with_context(|| format!("reading {what} {}", path.display()))?;
    String::from_utf8(bytes).with_context(|| format!("{what} {} is not UTF-8", path.display()))
}
