//! The train/validation split: keyed on where a document sits inside its corpus (never on where the corpus sits on
//! this machine), duplicates removed first, and a held-out side that is never too short to measure.

use serde::{Deserialize, Serialize};

use super::Record;
use crate::util::hash::fnv1a;

/// Which side of the split a record is on.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Split {
    /// Training data.
    Train,
    /// Held-out validation data.
    Valid,
}

/// The split of a file: `valid_fraction` of files (by hash of `repo/path`) are held out.
pub fn split_of(repo: &str, path: &str, valid_fraction: f64) -> Split {
    split_of_key(&format!("{repo}/{path}"), valid_fraction)
}

/// The split of a [`split_key`].
pub fn split_of_key(key: &str, valid_fraction: f64) -> Split {
    if key_position(key) < valid_fraction {
        Split::Valid
    } else {
        Split::Train
    }
}

/// Where a key falls in [0, 1): below the validation fraction it is held out.
fn key_position(key: &str) -> f64 {
    (fnv1a(key.as_bytes()) % 10_000) as f64 / 10_000.0
}

/// How the split is decided, in words (recorded with every run).
pub const SPLIT_RULE: &str = "fnv1a(key) % 10000 < valid_fraction * 10000, key = repository/path relative to the data root \
     (every record of a file on one side), or the record's own text when it has neither; exact duplicate documents \
     removed first; when the held-out side would be shorter than one sequence, the keys nearest the threshold move to it";

/// What a record is split by: its repository (package) and its path relative to the data root, so the same corpus
/// splits the same wherever it lives; a record with neither (a bare JSONL line) is split on its own, by its text.
pub fn split_key(r: &Record) -> String {
    if r.repo.is_empty() && r.path.is_empty() {
        format!("text:{:016x}", fnv1a(r.code.as_bytes()))
    } else {
        format!("{}/{}", r.repo, r.path)
    }
}

/// Removes exact duplicate documents (same code), keeping the first; returns how many were removed. Run before
/// the split, so a copy cannot sit on both sides.
pub fn dedup(records: &mut Vec<Record>) -> usize {
    let before = records.len();
    let mut seen = std::collections::HashSet::new();
    records.retain(|r| seen.insert(r.code.clone()));
    before - records.len()
}

/// The outcome of [`assign_split`].
#[derive(Debug, Clone, PartialEq)]
pub struct Assignment {
    /// Per key (in the order given): held out?
    pub valid: Vec<bool>,
    /// Keys moved to the held-out side because the hash alone left it too short.
    pub moved: usize,
}

/// Splits keys (each with its token count) by hash. If the held-out side gets fewer than `min_tokens` tokens, the
/// training keys nearest the threshold move to it until it has them, as long as training keeps `min_tokens`;
/// if even that cannot fill both sides, nothing is held out (the caller trains without validation and says so).
pub fn assign_split(keys: &[(String, usize)], valid_fraction: f64, min_tokens: usize) -> Assignment {
    let mut valid: Vec<bool> = keys.iter().map(|(k, _)| split_of_key(k, valid_fraction) == Split::Valid).collect();
    let total: usize = keys.iter().map(|(_, n)| n).sum();
    let tokens_of = |valid: &[bool], side: bool| keys.iter().zip(valid).filter(|(_, v)| **v == side).map(|((_, n), _)| n).sum::<usize>();
    let mut moved = 0;
    if tokens_of(&valid, true) < min_tokens {
        let mut candidates: Vec<usize> = (0..keys.len()).filter(|&i| !valid[i]).collect();
        candidates.sort_by(|&a, &b| key_position(&keys[a].0).total_cmp(&key_position(&keys[b].0)).then(keys[a].0.cmp(&keys[b].0)));
        for i in candidates {
            if tokens_of(&valid, true) >= min_tokens {
                break;
            }
            valid[i] = true;
            moved += 1;
        }
    }
    if tokens_of(&valid, true) < min_tokens || total - tokens_of(&valid, true) < min_tokens {
        return Assignment { valid: vec![false; keys.len()], moved: 0 };
    }
    Assignment { valid, moved }
}

/// A fine-tune's held-back part (the playground's): the last fifth of the documents, or, with one document, the
/// last fifth of its tokens. Returns (training documents, held-back documents).
pub fn hold_back_fifth(docs: Vec<Vec<u32>>) -> (Vec<Vec<u32>>, Vec<Vec<u32>>) {
    if docs.len() >= 2 {
        let k = docs.len().div_ceil(5);
        let (train, held) = docs.split_at(docs.len() - k);
        (train.to_vec(), held.to_vec())
    } else {
        let d = docs.into_iter().next().unwrap_or_default();
        let cut = d.len() * 4 / 5;
        (vec![d[..cut].to_vec()], vec![d[cut..].to_vec()])
    }
}
