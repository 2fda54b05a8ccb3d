//! `data prepare`: source trees to a prepared corpus, in two parallel passes over the files.
//!
//! 1. Discover packages and their licences; leave out packages without a permissive one.
//! 2. Read every file (in parallel): filters, SHA-256, MinHash signature; then, in a fixed order, drop exact and
//!    near duplicates.
//! 3. Split by package (a hash of the package name, so validation is code from packages the model never saw).
//! 4. Read the kept files again (in parallel batches), tokenise, and append them in order to each split's shards.
//!
//! Everything is written into `OUT.partial` and renamed to `OUT` at the end, so an interrupted run leaves no
//! corpus that looks whole.

use std::collections::{BTreeMap, HashSet};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Instant;

use serde_json::json;
use sha2::{Digest, Sha256};

use super::docstrings::Docstrings;
use super::filters::{accept, FileLimits};
use super::licence::{classify, Verdict};
use super::near_dup::{signature, NearDuplicates};
use super::packages::{discover, PathSkips};
use super::shards::{ShardWriter, Width};
use super::*;
use crate::tokenizer::{train_bpe, TokenizerSpec};
use crate::train::data::split::assign_split;
use crate::util::files::ReadError;
use crate::util::hash::fnv1a;

/// The tokenizer a corpus is written with.
#[derive(Debug, Clone, PartialEq)]
pub enum CorpusTokenizer {
    /// An existing one: GPT-2's, or a model's own (`data prepare --checkpoint` or `--tokenizer`).
    Use(TokenizerSpec),
    /// A byte-level BPE of this many entries trained on the training split's files (`--tokenizer-vocab`).
    Train(usize),
}

/// Settings of a preparation.
#[derive(Debug, Clone, PartialEq)]
pub struct PrepareOptions {
    /// Target fraction of packages held out for validation.
    pub valid_fraction: f64,
    /// The validation side holds at least this many bytes of source (packages move to it until it does).
    pub min_valid_bytes: usize,
    /// File filters.
    pub limits: FileLimits,
    /// Estimated Jaccard similarity at which a file is a near-duplicate.
    pub near_threshold: f64,
    /// Most tokens per shard file (16 MB of `u16` by default, within what a GPU machine brings back).
    pub shard_tokens: usize,
    /// Worker threads (reading and tokenising).
    pub threads: usize,
    /// Keep packages whose licence is unknown (the user vouches for the data).
    pub allow_unknown_licence: bool,
    /// Most bytes of source a training package keeps (`None`: all). One large package would otherwise set the
    /// style of what a small model writes; the files kept are a sample spread over the package (by a hash of
    /// their path), not its first directories. Validation packages are left whole.
    pub max_package_bytes: Option<usize>,
    /// What the training side's docstrings become ([`Docstrings`]); validation files are left as written, so that
    /// the held-out measures stay those of real code.
    pub docstrings: Docstrings,
}

impl Default for PrepareOptions {
    fn default() -> Self {
        Self {
            valid_fraction: 0.1,
            min_valid_bytes: 64 * 1024,
            limits: FileLimits::default(),
            near_threshold: 0.85,
            shard_tokens: 8 << 20,
            threads: std::thread::available_parallelism().map_or(1, |n| n.get()),
            allow_unknown_licence: false,
            max_package_bytes: None,
            docstrings: Docstrings::Keep,
        }
    }
}

/// What the progress callback is told.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Phase {
    /// Reading, filtering and hashing files.
    Reading,
    /// Training the corpus's own tokenizer (`done` 0 then 1: the trainer reports no progress of its own).
    TrainingTokenizer,
    /// Tokenising and writing shards.
    Tokenising,
}

/// A file of a package to read.
struct Candidate {
    root: usize,
    package: usize,
    rel: String,
}

/// What the first pass learns of a file.
enum Seen {
    Kept { sha: [u8; 32], sig: Box<super::near_dup::Signature>, bytes: usize },
    Rejected(&'static str),
}

/// A candidate file's bytes: special files (a FIFO named `*.py`) are passed over without being opened for a blocking
/// read, and the size limit is checked from its metadata before reading and held while reading.
fn read_candidate(path: &Path, limits: &FileLimits) -> Result<Vec<u8>, &'static str> {
    match crate::util::files::read_regular(path, limits.max_bytes as u64) {
        Ok(b) => Ok(b),
        Err(ReadError::TooLarge { .. }) => Err(super::filters::Reject::TooLarge.reason()),
        Err(ReadError::NotRegular(_)) => Err("not a regular file (a FIFO, socket or device)"),
        Err(ReadError::Io(_)) => Err("unreadable"),
    }
}

/// Why a file capped away by `max_package_bytes` is skipped.
pub const OVER_PACKAGE_SHARE: &str = "over its package's share (--max-package-bytes)";

/// Keeps at most about `cap` bytes of each capped package among `kept` (candidate index, SHA-256, bytes);
/// `capped(i)` names candidate `i`'s package and path when its package is capped. Files are taken in the order
/// of a hash of their path until the package's total reaches `cap` (the file that reaches it is kept), so the
/// sample is spread over the package and does not depend on the order of discovery. Returns how many were dropped.
fn cap_packages<'a>(kept: &mut Vec<(usize, [u8; 32], usize)>, cap: usize, capped: impl Fn(usize) -> Option<(usize, &'a str)>) -> usize {
    let mut order: Vec<(usize, u64, usize)> =
        kept.iter().enumerate().filter_map(|(k, &(i, _, _))| capped(i).map(|(package, rel)| (package, fnv1a(rel.as_bytes()), k))).collect();
    order.sort_unstable();
    let mut drop = vec![false; kept.len()];
    let mut total: BTreeMap<usize, usize> = BTreeMap::new();
    for (package, _, k) in order {
        let t = total.entry(package).or_default();
        if *t >= cap {
            drop[k] = true;
        } else {
            *t += kept[k].2;
        }
    }
    let before = kept.len();
    let mut dropped = drop.into_iter();
    kept.retain(|_| !dropped.next().expect("a flag per kept file"));
    before - kept.len()
}

/// Maps `f` over `items` on `threads` threads, results in order; `tick` after each item.
fn par_map<T: Sync, R: Send>(items: &[T], threads: usize, f: impl Fn(&T) -> R + Sync, tick: impl Fn() + Sync) -> Vec<R> {
    let next = AtomicUsize::new(0);
    let mut out: Vec<(usize, R)> = std::thread::scope(|s| {
        let workers: Vec<_> = (0..threads.max(1))
            .map(|_| {
                s.spawn(|| {
                    let mut mine = Vec::new();
                    loop {
                        let i = next.fetch_add(1, Ordering::Relaxed);
                        let Some(item) = items.get(i) else { break };
                        mine.push((i, f(item)));
                        tick();
                    }
                    mine
                })
            })
            .collect();
        workers.into_iter().flat_map(|w| w.join().expect("a preparation worker panicked")).collect()
    });
    out.sort_by_key(|(i, _)| *i);
    out.into_iter().map(|(_, r)| r).collect()
}

/// Prepares a corpus from `roots` into `out` (which must not exist), tokenised with `tokenizer` (a tokenizer other
/// than GPT-2's is written beside the shards as `tokenizer.json`, so the corpus names its own);
/// `progress(phase, done, total)` is called from worker threads.
pub fn prepare(
    roots: &[PathBuf],
    out: &Path,
    tokenizer: &CorpusTokenizer,
    opts: &PrepareOptions,
    progress: &(dyn Fn(Phase, usize, usize) + Sync),
) -> Result<Manifest, CorpusError> {
    let started = Instant::now();
    if out.exists() {
        return Err(CorpusError::Exists(out.to_path_buf()));
    }
    // 1. Packages and licences. A package name met again in a later root is the same package: the first one wins.
    let mut skips = PathSkips::new();
    let mut entries: Vec<PackageEntry> = Vec::new();
    let mut candidates: Vec<Candidate> = Vec::new();
    let mut names = HashSet::new();
    for (r, root) in roots.iter().enumerate() {
        let found = discover(root, &mut skips).map_err(|source| CorpusError::Io { path: root.clone(), source })?;
        for p in found {
            if !names.insert(p.name.clone()) {
                *skips.entry("a package already taken from an earlier root").or_default() += p.files.len();
                continue;
            }
            let excluded = match classify(&p.licence) {
                Verdict::Permissive => None,
                Verdict::Unknown if opts.allow_unknown_licence => None,
                Verdict::Unknown => Some("no licence in its metadata (--allow-unknown-licence keeps it)".to_string()),
                Verdict::NotPermissive => Some("not a permissive licence".to_string()),
            };
            let package = entries.len();
            if excluded.is_none() {
                candidates.extend(p.files.iter().map(|rel| Candidate { root: r, package, rel: rel.clone() }));
            }
            entries.push(PackageEntry {
                name: p.name,
                version: p.version,
                licence: p.licence,
                licence_source: p.licence_source,
                split: None,
                files: 0,
                tokens: 0,
                bytes: 0,
                excluded,
            });
        }
    }
    let path_of = |c: &Candidate| roots[c.root].join(&c.rel);

    // 2. Filters, hashes and signatures in parallel; duplicates dropped in order.
    let done = AtomicUsize::new(0);
    let total = candidates.len();
    let seen = par_map(
        &candidates,
        opts.threads,
        |c| match read_candidate(&path_of(c), &opts.limits).and_then(|b| accept(b, &opts.limits).map_err(|r| r.reason())) {
            Ok(text) => Seen::Kept { sha: Sha256::digest(text.as_bytes()).into(), sig: Box::new(signature(&text)), bytes: text.len() },
            Err(why) => Seen::Rejected(why),
        },
        || progress(Phase::Reading, done.fetch_add(1, Ordering::Relaxed) + 1, total),
    );
    let mut skipped: BTreeMap<String, usize> = skips.into_iter().map(|(k, v)| (k.to_string(), v)).collect();
    let mut exact = HashSet::new();
    let mut near = NearDuplicates::default();
    let mut duplicates = Duplicates { near_threshold: opts.near_threshold, ..Duplicates::default() };
    let mut kept: Vec<(usize, [u8; 32], usize)> = Vec::new(); // candidate index, SHA-256, bytes
    for (i, s) in seen.into_iter().enumerate() {
        match s {
            Seen::Rejected(why) => *skipped.entry(why.to_string()).or_default() += 1,
            Seen::Kept { sha, sig, bytes } => {
                if !exact.insert(sha) {
                    duplicates.exact += 1;
                } else if near.offer(*sig, opts.near_threshold).is_some() {
                    duplicates.near += 1;
                } else {
                    kept.push((i, sha, bytes));
                }
            }
        }
    }

    // 3. The split, by package, sized in bytes of kept source (so it does not depend on the tokenizer).
    let mut package_bytes = vec![0usize; entries.len()];
    for &(i, _, bytes) in &kept {
        package_bytes[candidates[i].package] += bytes;
    }
    let order: Vec<usize> = (0..entries.len()).filter(|&p| package_bytes[p] > 0).collect();
    let keys: Vec<(String, usize)> = order.iter().map(|&p| (entries[p].name.clone(), package_bytes[p])).collect();
    let assignment = assign_split(&keys, opts.valid_fraction, opts.min_valid_bytes);
    for (&p, &v) in order.iter().zip(&assignment.valid) {
        entries[p].split = Some(if v { Split::Valid } else { Split::Train });
    }
    for (p, e) in entries.iter_mut().enumerate() {
        if e.excluded.is_none() && package_bytes[p] == 0 {
            e.excluded = Some("every file was skipped by a filter or removed as a duplicate".into());
        }
    }
    let mut valid_packages: Vec<String> =
        order.iter().zip(&assignment.valid).filter(|(_, v)| **v).map(|(&p, _)| entries[p].name.clone()).collect();
    valid_packages.sort();
    let sides: Vec<String> = order.iter().zip(&assignment.valid).map(|(&p, v)| format!("{}\t{}", *v as u8, entries[p].name)).collect();
    if let Some(cap) = opts.max_package_bytes {
        let over = cap_packages(&mut kept, cap, |i| {
            let c = &candidates[i];
            (entries[c.package].split == Some(Split::Train)).then_some((c.package, c.rel.as_str()))
        });
        if over > 0 {
            *skipped.entry(OVER_PACKAGE_SHARE.to_string()).or_default() += over;
        }
    }

    // 4. The tokenizer: given, or trained on the training side's files (never on validation's).
    let training: Vec<bool> = entries.iter().map(|e| e.split == Some(Split::Train)).collect();
    let read_kept = |i: usize, sha: &[u8; 32]| -> Option<String> {
        // Read again: a file changed since the first pass is passed over, not trained on unchecked.
        let text = String::from_utf8(read_candidate(&path_of(&candidates[i]), &opts.limits).ok()?).ok()?;
        if <[u8; 32]>::from(Sha256::digest(text.as_bytes())) != *sha {
            return None;
        }
        Some(if training[candidates[i].package] { opts.docstrings.apply(&text).into_owned() } else { text })
    };
    let spec = match tokenizer {
        CorpusTokenizer::Use(spec) => spec.clone(),
        CorpusTokenizer::Train(vocab_size) => {
            progress(Phase::TrainingTokenizer, 0, 1);
            let train_files = kept.iter().filter(|(i, _, _)| entries[candidates[*i].package].split == Some(Split::Train));
            let json = train_bpe(train_files.filter_map(|(i, sha, _)| read_kept(*i, sha)), *vocab_size)?;
            progress(Phase::TrainingTokenizer, 1, 1);
            TokenizerSpec::Embedded(json.into())
        }
    };
    let tok = &spec.load()?;
    let kind = spec.id();

    // 5. Tokenise and write, split by split, in parallel batches kept in order.
    let partial = PathBuf::from(format!("{}.partial", out.display()));
    let _ = std::fs::remove_dir_all(&partial);
    std::fs::create_dir_all(&partial).map_err(|source| CorpusError::Io { path: partial.clone(), source })?;
    let width = Width::for_vocab(tok.vocab_size());
    let mut files_jsonl = String::new();
    let mut splits = BTreeMap::new();
    let done = AtomicUsize::new(0);
    let total = kept.len();
    for split in [Split::Train, Split::Valid] {
        let mine: Vec<&(usize, [u8; 32], usize)> =
            kept.iter().filter(|(i, _, _)| entries[candidates[*i].package].split == Some(split)).collect();
        let mut writer = ShardWriter::new(&partial, split_name(split), width, opts.shard_tokens);
        let mut stats = SplitStats::default();
        let mut packages = HashSet::new();
        for batch in mine.chunks(256) {
            let encoded = par_map(
                batch,
                opts.threads,
                |&&(i, sha, _)| -> Result<Option<(Vec<u32>, usize)>, ModelError> {
                    let Some(text) = read_kept(i, &sha) else { return Ok(None) };
                    Ok(Some((tok.encode(&text)?, text.len())))
                },
                || progress(Phase::Tokenising, done.fetch_add(1, Ordering::Relaxed) + 1, total),
            );
            for (&&(i, _, _), enc) in batch.iter().zip(encoded) {
                let c = &candidates[i];
                let Some((ids, bytes)) = enc? else {
                    *skipped.entry("changed while preparing".into()).or_default() += 1;
                    continue;
                };
                let (shard, offset) = writer.push(&ids, tok.eos_id())?;
                let e = &mut entries[c.package];
                e.files += 1;
                e.tokens += ids.len() + 1;
                e.bytes += bytes;
                packages.insert(c.package);
                stats.files += 1;
                stats.tokens += ids.len() + 1;
                stats.bytes += bytes;
                let entry = FileEntry { split, package: e.name.clone(), path: c.rel.clone(), shard, offset, tokens: ids.len(), bytes };
                files_jsonl.push_str(&serde_json::to_string(&entry).expect("a file entry serialises"));
                files_jsonl.push('\n');
            }
        }
        stats.shards = writer.finish()?;
        stats.packages = packages.len();
        splits.insert(split_name(split).to_string(), stats);
    }
    if splits["train"].tokens == 0 {
        let _ = std::fs::remove_dir_all(&partial);
        return Err(CorpusError::Empty(format!(
            "{} packages found, {} files kept after licences, filters and deduplication",
            entries.len(),
            kept.len()
        )));
    }
    let tokens: usize = splits.values().map(|s| s.tokens).sum();
    let seconds = started.elapsed().as_secs_f64();
    let manifest = Manifest {
        format: FORMAT.into(),
        roots: roots.iter().map(|r| r.display().to_string()).collect(),
        tokenizer: TokenizerId::of(tok, kind),
        dtype: width,
        boundary: format!("token {} (end of document) after every file; files.jsonl gives each file's shard and offset", tok.eos_id()),
        split: SplitRule {
            rule: "by package: fnv1a(package name) % 10000 < valid_fraction * 10000; when that holds out less than \
                   min_valid_bytes of source, the packages nearest the threshold move to validation"
                .into(),
            valid_fraction: opts.valid_fraction,
            valid_packages,
            hash: format!("{:016x}", fnv1a(sides.join("\n").as_bytes())),
        },
        splits,
        packages: entries,
        skipped_files: skipped,
        duplicates,
        options: json!({
            "max_file_bytes": opts.limits.max_bytes, "max_line_bytes": opts.limits.max_line_bytes,
            "near_threshold": opts.near_threshold, "shard_tokens": opts.shard_tokens, "min_valid_bytes": opts.min_valid_bytes,
            "allow_unknown_licence": opts.allow_unknown_licence, "max_package_bytes": opts.max_package_bytes,
            "docstrings": opts.docstrings,
            "language": "python (.py files)",
        }),
        seconds,
        tokens_per_second: tokens as f64 / seconds.max(1e-9),
        threads: opts.threads,
    };
    let write = |name: &str, text: &str| {
        let path = partial.join(name);
        std::fs::write(&path, text).map_err(|source| CorpusError::Io { path, source })
    };
    write(FILES, &files_jsonl)?;
    if let TokenizerSpec::Embedded(json) = &spec {
        write(TOKENIZER, json)?;
    }
    write(MANIFEST, &serde_json::to_string_pretty(&manifest).expect("the manifest serialises"))?;
    std::fs::rename(&partial, out).map_err(|source| CorpusError::Io { path: out.to_path_buf(), source })?;
    Ok(manifest)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::tokenizer::Tokenizer;

    fn write(path: &Path, text: &str) {
        std::fs::create_dir_all(path.parent().unwrap()).unwrap();
        std::fs::write(path, text).unwrap();
    }

    fn module(name: &str, n: usize) -> String {
        (0..n).map(|i| format!("def {name}_{i}(x, y):\n    \"\"\"Combine {i}.\"\"\"\n    return x * {i} - y // {}\n\n", i + 1)).collect()
    }

    /// A small site-packages: permissive and copyleft packages, an unlicensed one, duplicates, generated and
    /// minified files.
    fn site_packages(dir: &Path) {
        for (pkg, licence) in
            [("alpha", "MIT"), ("beta", "BSD-3-Clause"), ("gamma", "Apache-2.0"), ("delta", "MIT"), ("gpl_pkg", "GPL-3.0")]
        {
            write(
                &dir.join(format!("{pkg}-1.0.dist-info/METADATA")),
                &format!("Name: {pkg}\nVersion: 1.0\nLicense-Expression: {licence}\n"),
            );
            write(&dir.join(format!("{pkg}-1.0.dist-info/top_level.txt")), pkg);
            for f in 0..3 {
                write(&dir.join(format!("{pkg}/m{f}.py")), &module(&format!("{pkg}{f}"), 30));
            }
        }
        write(&dir.join("alpha/copy.py"), &module("alpha0", 30));
        write(&dir.join("beta/near.py"), &(module("alpha1", 30) + "# a trailing comment\n"));
        write(&dir.join("gamma/gen_pb2.py"), "# Generated by the protocol buffer compiler.  DO NOT EDIT!\nx = 1\n");
        write(&dir.join("delta/min.py"), &format!("DATA = [{}]\n", "0, ".repeat(600)));
        write(&dir.join("loose/x.py"), "def loose():\n    return 1\n");
    }

    #[test]
    fn a_site_packages_tree_becomes_split_deduplicated_shards() {
        let dir = std::env::temp_dir().join(format!("hnet-prepare-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        site_packages(&dir.join("site-packages"));
        let tok = Tokenizer::gpt2().unwrap();
        let gpt2 = CorpusTokenizer::Use(TokenizerSpec::Gpt2Bpe);
        let opts = PrepareOptions { valid_fraction: 0.3, min_valid_bytes: 1000, shard_tokens: 1000, threads: 2, ..Default::default() };
        let out = dir.join("corpus");
        let calls = AtomicUsize::new(0);
        let m = prepare(&[dir.join("site-packages")], &out, &gpt2, &opts, &|_, _, _| {
            calls.fetch_add(1, Ordering::Relaxed);
        })
        .unwrap();
        assert!(calls.load(Ordering::Relaxed) > 0);
        assert_eq!((m.duplicates.exact, m.duplicates.near), (1, 1), "{:?}", m.duplicates);
        assert_eq!(m.skipped_files.get("generated (a do-not-edit header)"), Some(&1), "{:?}", m.skipped_files);
        assert_eq!(m.skipped_files.get("minified or data (a line over the length limit)"), Some(&1));
        let by_name = |n: &str| m.packages.iter().find(|p| p.name == n).unwrap();
        assert!(by_name("gpl-pkg").excluded.as_deref().unwrap().contains("permissive"));
        assert!(by_name("loose").excluded.as_deref().unwrap().contains("no licence"));
        // Every kept package on one side; both sides non-empty; the split is by package.
        let kept: Vec<&PackageEntry> = m.packages.iter().filter(|p| p.excluded.is_none()).collect();
        assert_eq!(kept.len(), 4);
        assert!(kept.iter().all(|p| p.split.is_some() && p.files >= 3));
        assert!(!m.split.valid_packages.is_empty() && m.split.valid_packages.len() < 4);
        let (train, valid) = (m.stats(Split::Train), m.stats(Split::Valid));
        assert_eq!(train.files + valid.files, 12);
        assert!(train.shards.len() >= 2, "{:?}", train.shards);
        // Shards decode back to the very files; the tokenizer is checked.
        let corpus = Prepared::open(&out).unwrap();
        // (Timings aside: serde_json's float parsing may differ in the last bit.)
        let c = &corpus.manifest;
        assert_eq!(
            (&c.splits, &c.packages, &c.split, &c.skipped_files, &c.tokenizer),
            (&m.splits, &m.packages, &m.split, &m.skipped_files, &m.tokenizer)
        );
        corpus.check_tokenizer(&tok).unwrap();
        let records = corpus.records(Some(Split::Valid), &tok).unwrap();
        assert_eq!(records.len(), valid.files);
        for r in &records {
            assert!(m.split.valid_packages.contains(&r.repo));
            assert_eq!(r.code, std::fs::read_to_string(dir.join("site-packages").join(&r.path)).unwrap());
        }
        let mapped = corpus.tokens(Split::Train).unwrap();
        assert_eq!(mapped.len(), train.tokens);
        assert_eq!(mapped.range(0, mapped.len()).iter().filter(|&&t| t == tok.eos_id()).count(), train.files);
        // Nothing is overwritten; a wrong format or tokenizer is a clear error.
        assert!(matches!(prepare(&[dir.join("site-packages")], &out, &gpt2, &opts, &|_, _, _| {}), Err(CorpusError::Exists(_))));
        assert_eq!(corpus.tokenizer().unwrap(), None, "GPT-2's tokenizer is named, not written");
        let other =
            Tokenizer::from_json_bytes(include_bytes!("../../../../../cli/tests/fixtures/hub/tiny-codegpt/tokenizer.json")).unwrap();
        assert!(corpus.check_tokenizer(&other).unwrap_err().to_string().contains("another tokenizer"));
        std::fs::write(out.join(MANIFEST), "{\"format\": \"other\"}").unwrap();
        assert!(matches!(Prepared::open(&out), Err(CorpusError::NotACorpus { .. })));
        std::fs::remove_dir_all(&dir).unwrap();
    }

    #[test]
    fn a_package_cap_keeps_a_spread_sample_of_training_packages_and_leaves_validation_whole() {
        let dir = std::env::temp_dir().join(format!("hnet-prepare-cap-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        let site = dir.join("site-packages");
        site_packages(&site);
        for f in 3..12 {
            write(&site.join(format!("alpha/sub{}/m{f}.py", f % 3)), &module(&format!("alphax{f}"), 30));
        }
        let gpt2 = CorpusTokenizer::Use(TokenizerSpec::Gpt2Bpe);
        let base = PrepareOptions { valid_fraction: 0.3, min_valid_bytes: 1000, threads: 2, ..Default::default() };
        let whole = prepare(std::slice::from_ref(&site), &dir.join("whole"), &gpt2, &base, &|_, _, _| {}).unwrap();
        let file_bytes = module("alphax10", 30).len();
        let cap = 3 * file_bytes;
        let opts = PrepareOptions { max_package_bytes: Some(cap), ..base };
        let m = prepare(&[site], &dir.join("capped"), &gpt2, &opts, &|_, _, _| {}).unwrap();
        assert_eq!(m.split, whole.split, "the cap does not move packages between the sides");
        let mut dropped = 0;
        for (p, w) in m.packages.iter().zip(&whole.packages) {
            match p.split {
                Some(Split::Train) => {
                    // The file that reaches the cap is kept: at most one file's worth over it.
                    assert!(p.bytes <= cap + file_bytes && (p.bytes >= cap || p.bytes == w.bytes), "{p:?}");
                    dropped += w.files - p.files;
                }
                _ => assert_eq!((p.files, p.bytes), (w.files, w.bytes), "{} is left whole", p.name),
            }
        }
        assert!(dropped > 0);
        assert_eq!(m.skipped_files.get(OVER_PACKAGE_SHARE), Some(&dropped));
        assert_eq!(m.options["max_package_bytes"], cap);
        // The sample is spread by a hash of the path, not the first directories found (alpha trains: the split
        // hashes package names).
        assert!(!m.split.valid_packages.iter().any(|p| p == "alpha"));
        let corpus = Prepared::open(&dir.join("capped")).unwrap();
        let records = corpus.records(Some(Split::Train), &Tokenizer::gpt2().unwrap()).unwrap();
        let alpha: Vec<&str> = records.iter().filter(|r| r.repo == "alpha").map(|r| r.path.as_str()).collect();
        assert!(alpha.len() < 12 && alpha.iter().any(|p| p.contains("/sub")), "{alpha:?}");
        std::fs::remove_dir_all(&dir).unwrap();
    }

    #[test]
    fn docstrings_are_cut_to_their_summary_on_the_training_side_only() {
        let dir = std::env::temp_dir().join(format!("hnet-prepare-doc-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        let site = dir.join("site-packages");
        site_packages(&site);
        let doc = |p: &str| {
            format!("def {p}_doc(x):\n    \"\"\"\n    Doubles x.\n\n    Parameters\n    ----------\n    x : int\n    \"\"\"\n    return 2 * x\n")
        };
        for p in ["alpha", "beta", "gamma", "delta"] {
            write(&site.join(format!("{p}/doc.py")), &doc(p));
        }
        let opts = PrepareOptions {
            valid_fraction: 0.3,
            min_valid_bytes: 1000,
            threads: 2,
            docstrings: Docstrings::Summary,
            ..Default::default()
        };
        let m =
            prepare(std::slice::from_ref(&site), &dir.join("corpus"), &CorpusTokenizer::Use(TokenizerSpec::Gpt2Bpe), &opts, &|_, _, _| {})
                .unwrap();
        assert_eq!(m.options["docstrings"], "summary");
        let records = Prepared::open(&dir.join("corpus")).unwrap().records(None, &Tokenizer::gpt2().unwrap()).unwrap();
        let docs: Vec<_> = records.iter().filter(|r| r.path.ends_with("/doc.py")).collect();
        assert_eq!(docs.len(), 4);
        for r in docs {
            let on_disk = std::fs::read_to_string(site.join(&r.path)).unwrap();
            if m.split.valid_packages.contains(&r.repo) {
                assert_eq!(r.code, on_disk, "held-out files stay as written");
            } else {
                assert_eq!(r.code, format!("def {}_doc(x):\n    \"\"\"Doubles x.\"\"\"\n    return 2 * x\n", r.repo));
            }
        }
        assert!(!m.split.valid_packages.is_empty() && m.split.valid_packages.len() < 4);
        std::fs::remove_dir_all(&dir).unwrap();
    }

    #[test]
    fn nothing_to_train_on_is_an_error_and_leaves_nothing() {
        let dir = std::env::temp_dir().join(format!("hnet-prepare-empty-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        write(&dir.join("tree/proj/a.py"), "x = 1\n"); // no licence anywhere
        let gpt2 = CorpusTokenizer::Use(TokenizerSpec::Gpt2Bpe);
        let err = prepare(&[dir.join("tree")], &dir.join("out"), &gpt2, &PrepareOptions::default(), &|_, _, _| {}).unwrap_err();
        assert!(matches!(err, CorpusError::Empty(_)), "{err}");
        assert!(!dir.join("out").exists() && !dir.join("out.partial").exists());
        std::fs::remove_dir_all(&dir).unwrap();
    }

    #[test]
    fn a_corpus_can_train_its_own_tokenizer_on_its_training_side() {
        let dir = std::env::temp_dir().join(format!("hnet-prepare-bpe-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        site_packages(&dir.join("site-packages"));
        let opts = PrepareOptions { valid_fraction: 0.3, min_valid_bytes: 1000, threads: 2, ..Default::default() };
        let out = dir.join("corpus");
        let m = prepare(&[dir.join("site-packages")], &out, &CorpusTokenizer::Train(300), &opts, &|_, _, _| {}).unwrap();
        assert_eq!((m.tokenizer.id.as_str(), m.tokenizer.vocab_size), ("embedded", 300));
        let corpus = Prepared::open(&out).unwrap();
        let spec = corpus.tokenizer().unwrap().expect("the corpus names its own tokenizer");
        let tok = spec.load().unwrap();
        corpus.check_tokenizer(&tok).unwrap();
        // Both splits decode back exactly with it.
        for r in corpus.records(None, &tok).unwrap() {
            assert_eq!(r.code, std::fs::read_to_string(dir.join("site-packages").join(&r.path)).unwrap());
        }
        std::fs::remove_dir_all(&dir).unwrap();
    }
}
