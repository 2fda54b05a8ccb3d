//! Near-duplicate files by MinHash with locality-sensitive hashing (Broder 1997; the scheme of the BigCode and
//! The Stack deduplication): a file's set of 5-word shingles is summarised by `SIGNATURE` minima of seeded hashes,
//! whose agreement estimates the Jaccard similarity of two files; signatures are cut into bands so that only files
//! sharing a whole band are compared. A file whose estimated similarity to a kept file reaches the threshold is a
//! near-duplicate (a vendored copy, a version of the same module, a template instance) and is dropped.

use std::collections::HashMap;

use crate::util::hash::fnv1a;

/// Hashes per signature.
pub const SIGNATURE: usize = 64;
/// Bands of [`ROWS`] hashes: a pair with similarity s shares a band with probability 1 - (1 - s^ROWS)^BANDS
/// (about 0.99 at s = 0.8, 0.05 at s = 0.4).
const BANDS: usize = 16;
const ROWS: usize = SIGNATURE / BANDS;
/// Words per shingle.
const SHINGLE: usize = 5;

/// A file's MinHash signature.
pub type Signature = [u32; SIGNATURE];

/// splitmix64's finaliser: a fast, well-mixed 64-bit hash of a 64-bit value.
fn mix(mut z: u64) -> u64 {
    z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
    z ^ (z >> 31)
}

/// The signature of a text: over its 5-word shingles (whitespace-separated words, so re-indentation does not
/// hide a copy), or over its whole text when it has fewer words.
pub fn signature(text: &str) -> Signature {
    let words: Vec<&str> = text.split_whitespace().collect();
    let mut sig = [u32::MAX; SIGNATURE];
    let mut add = |h: u64| {
        for (i, s) in sig.iter_mut().enumerate() {
            let v = (mix(h ^ (i as u64).wrapping_mul(0x9e37_79b9_7f4a_7c15)) >> 32) as u32;
            *s = (*s).min(v);
        }
    };
    if words.len() < SHINGLE {
        add(fnv1a(words.join(" ").as_bytes()));
    } else {
        for w in words.windows(SHINGLE) {
            add(w.iter().fold(0xcbf2_9ce4_8422_2325u64, |h, word| mix(h ^ fnv1a(word.as_bytes()))));
        }
    }
    sig
}

/// The estimated Jaccard similarity of two signatures: the fraction of hashes on which they agree.
pub fn similarity(a: &Signature, b: &Signature) -> f64 {
    a.iter().zip(b).filter(|(x, y)| x == y).count() as f64 / SIGNATURE as f64
}

/// Keeps files in order, dropping each one that is near a file already kept.
#[derive(Debug, Default)]
pub struct NearDuplicates {
    kept: Vec<Signature>,
    bands: HashMap<(usize, u64), Vec<usize>>,
}

impl NearDuplicates {
    /// Offers a file: `Some(i)` when it is near kept file `i` (estimated similarity ≥ `threshold`), else `None` and
    /// the file is kept.
    pub fn offer(&mut self, sig: Signature, threshold: f64) -> Option<usize> {
        let keys: Vec<(usize, u64)> =
            (0..BANDS).map(|b| (b, sig[b * ROWS..(b + 1) * ROWS].iter().fold(0u64, |h, &v| mix(h ^ v as u64)))).collect();
        for key in &keys {
            if let Some(near) = self.bands.get(key).and_then(|c| c.iter().copied().find(|&i| similarity(&self.kept[i], &sig) >= threshold))
            {
                return Some(near);
            }
        }
        let i = self.kept.len();
        self.kept.push(sig);
        for key in keys {
            self.bands.entry(key).or_default().push(i);
        }
        None
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn module(n: usize, tweak: &str) -> String {
        (0..n).map(|i| format!("def function_{i}(value):\n    return value * {i} + {i}{tweak}\n\n")).collect()
    }

    #[test]
    fn copies_with_small_edits_are_near_and_different_code_is_not() {
        let a = module(40, "");
        let mut edited = a.replace("function_3(", "renamed_3(").replace("    return value * 7", "        return value * 7");
        edited.push_str("# one more comment line\n");
        let b = "import os\n\nclass Loader:\n    def read(self, path):\n        with open(path) as f:\n            return f.read()\n";
        assert!(similarity(&signature(&a), &signature(&edited)) > 0.8, "{}", similarity(&signature(&a), &signature(&edited)));
        assert!(similarity(&signature(&a), &signature(b)) < 0.2);
        let mut d = NearDuplicates::default();
        assert_eq!(d.offer(signature(&a), 0.8), None);
        assert_eq!(d.offer(signature(b), 0.8), None);
        assert_eq!(d.offer(signature(&edited), 0.8), Some(0));
        // Half the file changed: a different file.
        let half = format!("{}{}", &a[..a.len() / 2], module(20, " - 1"));
        assert_eq!(d.offer(signature(&half), 0.8), None);
    }

    #[test]
    fn tiny_files_compare_by_their_words() {
        assert_eq!(signature("x = 1"), signature("x  =\n1"));
        assert_ne!(signature("x = 1"), signature("x = 2"));
    }
}
