//! A prepared corpus: real Python from source trees (a standard library, a Python environment's `site-packages`,
//! any checkout) turned once into deduplicated, licence-checked, package-split token shards that training
//! memory-maps (`hnet-gpt data prepare`, then `hnet-gpt train --data DIR`).
//!
//! The directory holds `manifest.json` ([`Manifest`]: packages with versions and licences, the split, per-shard
//! sizes and SHA-256, what was skipped and why), `files.jsonl` (one [`FileEntry`] per document: package, path,
//! shard, offset, tokens, bytes) and the shards `train-NNNNN.bin`, `valid-NNNNN.bin` ([`shards`]).

pub mod docstrings;
pub mod filters;
pub mod licence;
pub mod near_dup;
pub mod packages;
pub mod prepare;
pub mod shards;

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

pub use docstrings::Docstrings;
pub use prepare::{prepare, CorpusTokenizer, Phase, PrepareOptions};
pub use shards::{MappedTokens, ShardInfo, Width};

use super::{Record, Split};
use crate::error::ModelError;
use crate::tokenizer::{Tokenizer, TokenizerSpec};

/// The manifest's `format`.
pub const FORMAT: &str = "hnet-gpt-corpus/1";
/// The manifest's file name: its presence makes a directory a prepared corpus.
pub const MANIFEST: &str = "manifest.json";
/// The per-document index's file name.
pub const FILES: &str = "files.jsonl";
/// The corpus's own tokenizer, when it is not GPT-2's.
pub const TOKENIZER: &str = "tokenizer.json";

/// What can go wrong preparing or opening a corpus.
#[derive(Debug, thiserror::Error)]
pub enum CorpusError {
    /// A file could not be read or written.
    #[error("{}: {source}", path.display())]
    Io {
        /// The file.
        path: PathBuf,
        /// Why.
        source: std::io::Error,
    },
    /// The output already exists (nothing is overwritten).
    #[error("{} already exists: remove it or choose another --out", .0.display())]
    Exists(PathBuf),
    /// A directory that is not a prepared corpus, or one of another format.
    #[error("{}: not a prepared corpus ({why})", path.display())]
    NotACorpus {
        /// The directory.
        path: PathBuf,
        /// Why.
        why: String,
    },
    /// A shard or index that does not match its manifest.
    #[error("{}: corrupt ({why}); prepare the corpus again", path.display())]
    Corrupt {
        /// The file.
        path: PathBuf,
        /// What does not match.
        why: String,
    },
    /// Nothing to train on after filtering.
    #[error("no training data: {0}")]
    Empty(String),
    /// The tokenizer failed.
    #[error(transparent)]
    Tokenizer(#[from] ModelError),
}

/// Which tokenizer the shards were written with; training refuses a model whose tokenizer differs.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct TokenizerId {
    /// The tokenizer's kind (`gpt2` or `embedded`).
    pub id: String,
    /// Vocabulary size.
    pub vocab_size: usize,
    /// End-of-document token, written after each document.
    pub eos_id: u32,
    /// A hash of the vocabulary (every id's token string), to tell two tokenizers apart.
    pub fingerprint: String,
}

impl TokenizerId {
    /// The id of `tok` (`kind`: the tokenizer spec's id).
    pub fn of(tok: &Tokenizer, kind: &str) -> Self {
        Self { id: kind.to_string(), vocab_size: tok.vocab_size(), eos_id: tok.eos_id(), fingerprint: tok.fingerprint() }
    }
}

/// One package, as the manifest lists it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct PackageEntry {
    /// Name (see [`packages::Package::name`]).
    pub name: String,
    /// Version, when known.
    pub version: Option<String>,
    /// Licence as stated, and where it was read.
    pub licence: String,
    /// Where the licence was read.
    pub licence_source: String,
    /// `train` or `valid`; `None` for a package left out.
    pub split: Option<Split>,
    /// Files kept (after filters and deduplication).
    pub files: usize,
    /// Tokens (with one end-of-document token per file).
    pub tokens: usize,
    /// UTF-8 bytes of source.
    pub bytes: usize,
    /// Why it was left out, when it was.
    pub excluded: Option<String>,
}

/// Totals of one split.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct SplitStats {
    /// Documents (files).
    pub files: usize,
    /// Tokens.
    pub tokens: usize,
    /// UTF-8 bytes of source.
    pub bytes: usize,
    /// Packages.
    pub packages: usize,
    /// Its shards.
    pub shards: Vec<ShardInfo>,
}

/// How the corpus was split.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct SplitRule {
    /// In words.
    pub rule: String,
    /// Target fraction of packages held out.
    pub valid_fraction: f64,
    /// The held-out packages.
    pub valid_packages: Vec<String>,
    /// A hash of every package's side (two corpora with the same hash split the same).
    pub hash: String,
}

/// Exact and near duplicates removed.
#[derive(Debug, Clone, Copy, Default, PartialEq, Serialize, Deserialize)]
pub struct Duplicates {
    /// Files identical to one kept earlier.
    pub exact: usize,
    /// Files whose estimated Jaccard similarity to one kept earlier reached the threshold.
    pub near: usize,
    /// The threshold.
    pub near_threshold: f64,
}

/// `manifest.json`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Manifest {
    /// [`FORMAT`].
    pub format: String,
    /// The source trees, as given.
    pub roots: Vec<String>,
    /// The tokenizer.
    pub tokenizer: TokenizerId,
    /// Token width.
    pub dtype: Width,
    /// How documents are delimited.
    pub boundary: String,
    /// The split.
    pub split: SplitRule,
    /// `train` and `valid`.
    pub splits: BTreeMap<String, SplitStats>,
    /// Every package, kept or left out.
    pub packages: Vec<PackageEntry>,
    /// Files passed over, by reason.
    pub skipped_files: BTreeMap<String, usize>,
    /// Duplicates removed.
    pub duplicates: Duplicates,
    /// The filters' limits and other settings.
    pub options: serde_json::Value,
    /// Wall time of the preparation.
    pub seconds: f64,
    /// Tokens written per second of wall time (reading, filtering, deduplicating and tokenising included).
    pub tokens_per_second: f64,
    /// Threads used.
    pub threads: usize,
}

impl Manifest {
    /// The stats of a split (empty when it has none).
    pub fn stats(&self, split: Split) -> SplitStats {
        self.splits.get(split_name(split)).cloned().unwrap_or_default()
    }
}

/// One document of `files.jsonl`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct FileEntry {
    /// Its split.
    pub split: Split,
    /// Its package.
    pub package: String,
    /// Path relative to its tree.
    pub path: String,
    /// Shard index within the split.
    pub shard: usize,
    /// Offset of its first token within the shard.
    pub offset: usize,
    /// Tokens, without the end-of-document token.
    pub tokens: usize,
    /// UTF-8 bytes.
    pub bytes: usize,
}

/// `train` or `valid`.
pub fn split_name(split: Split) -> &'static str {
    match split {
        Split::Train => "train",
        Split::Valid => "valid",
    }
}

/// True when `dir` holds a prepared corpus.
pub fn is_prepared(dir: &Path) -> bool {
    dir.join(MANIFEST).is_file()
}

/// An opened corpus.
#[derive(Debug)]
pub struct Prepared {
    /// Its directory.
    pub dir: PathBuf,
    /// Its manifest.
    pub manifest: Manifest,
}

impl Prepared {
    /// Reads the manifest of `dir`.
    pub fn open(dir: &Path) -> Result<Self, CorpusError> {
        let path = dir.join(MANIFEST);
        let text = crate::util::files::read_regular_text(&path, crate::util::files::MAX_JSON_BYTES << 2)
            .map_err(|e| CorpusError::Io { path: path.clone(), source: e.into() })?;
        let value: serde_json::Value =
            serde_json::from_str(&text).map_err(|e| CorpusError::NotACorpus { path: dir.into(), why: format!("{MANIFEST}: {e}") })?;
        let format = value.get("format").and_then(|f| f.as_str()).unwrap_or("");
        if format != FORMAT {
            return Err(CorpusError::NotACorpus { path: dir.into(), why: format!("format {format:?}, this hnet-gpt reads {FORMAT:?}") });
        }
        let manifest = serde_json::from_value(value).map_err(|e| CorpusError::Corrupt { path: path.clone(), why: e.to_string() })?;
        Ok(Self { dir: dir.to_path_buf(), manifest })
    }

    /// Refuses a tokenizer other than the one the shards were written with.
    pub fn check_tokenizer(&self, tok: &Tokenizer) -> Result<(), CorpusError> {
        let t = &self.manifest.tokenizer;
        if t.vocab_size != tok.vocab_size() || t.eos_id != tok.eos_id() || t.fingerprint != tok.fingerprint() {
            return Err(CorpusError::NotACorpus {
                path: self.dir.clone(),
                why: format!(
                    "its shards use another tokenizer ({}, {} tokens) than this model's ({} tokens): prepare it with \
                     `hnet-gpt data prepare --checkpoint` of this model",
                    t.id,
                    t.vocab_size,
                    tok.vocab_size()
                ),
            });
        }
        Ok(())
    }

    /// The tokenizer the shards were written with when it is not GPT-2's (`tokenizer.json` beside them), checked
    /// against the manifest.
    pub fn tokenizer(&self) -> Result<Option<TokenizerSpec>, CorpusError> {
        let path = self.dir.join(TOKENIZER);
        if !path.exists() {
            return Ok(None);
        }
        let json = crate::util::files::read_regular_text(&path, crate::util::files::MAX_JSON_BYTES << 2)
            .map_err(|e| CorpusError::Io { path: path.clone(), source: e.into() })?;
        let spec = TokenizerSpec::Embedded(json.into());
        self.check_tokenizer(&spec.load()?)?;
        Ok(Some(spec))
    }

    /// A split's tokens, memory-mapped.
    pub fn tokens(&self, split: Split) -> Result<MappedTokens, CorpusError> {
        MappedTokens::open(&self.dir, &self.manifest.stats(split).shards, self.manifest.dtype)
    }

    /// The documents of `files.jsonl` (of one split, or all).
    pub fn files(&self, split: Option<Split>) -> Result<Vec<FileEntry>, CorpusError> {
        let path = self.dir.join(FILES);
        let text = crate::util::files::read_regular_text(&path, crate::util::files::MAX_JSON_BYTES << 2)
            .map_err(|e| CorpusError::Io { path: path.clone(), source: e.into() })?;
        let mut out = Vec::new();
        for (n, line) in text.lines().enumerate().filter(|(_, l)| !l.trim().is_empty()) {
            let e: FileEntry =
                serde_json::from_str(line).map_err(|e| CorpusError::Corrupt { path: path.clone(), why: format!("line {}: {e}", n + 1) })?;
            if split.is_none_or(|s| s == e.split) {
                out.push(e);
            }
        }
        Ok(out)
    }

    /// Documents decoded back to their source text (exact for byte-level BPE), as records keyed by package and path.
    pub fn records(&self, split: Option<Split>, tok: &Tokenizer) -> Result<Vec<Record>, CorpusError> {
        let mut out = Vec::new();
        for s in [Split::Train, Split::Valid].into_iter().filter(|s| split.is_none_or(|x| x == *s)) {
            let entries = self.files(Some(s))?;
            if entries.is_empty() {
                continue;
            }
            let tokens = self.tokens(s)?;
            for e in entries {
                let start = tokens.shard_start(e.shard).unwrap_or(usize::MAX).saturating_add(e.offset);
                if start.saturating_add(e.tokens) > tokens.len() {
                    return Err(CorpusError::Corrupt { path: self.dir.join(FILES), why: format!("{} points past its shard", e.path) });
                }
                let code = tok.decode(&tokens.range(start, start + e.tokens))?;
                out.push(Record { code, docstring: None, func_name: None, language: "python".into(), repo: e.package, path: e.path });
            }
        }
        Ok(out)
    }
}
