//! Training data: CodeSearchNet-style records from JSONL files or source trees, a built-in corpus, a deterministic
//! train/validation split, and packing into fixed-length token sequences.
//!
//! - **Records** mirror CodeSearchNet's fields (`code`, `docstring`, `func_name`, `language`, `repo`, `path`).
//! - **Split** by a hash of `repo/path`: every record of a file lands on the same side, so no file is in both.
//! - **Text** is the plain code by default, or the seed's prompt template `# Task: {docstring}\n\n# Solution:\n{code}`.
//! - **Packing**: documents are joined with `<|endoftext|>` into one token stream and cut into sequences of
//!   `seq_len + 1` tokens (inputs and shifted targets). Every position is a real token, so padding never enters
//!   the loss; the separator marks document boundaries, as in GPT-2's own training.

use serde::{Deserialize, Serialize};

use crate::sampling::Rng;
use crate::tokenizer::EOS_ID;

/// One training document, in CodeSearchNet's shape.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Record {
    /// The source code.
    pub code: String,
    /// The documentation string, if any.
    pub docstring: Option<String>,
    /// Function or class name, if the record is one.
    pub func_name: Option<String>,
    /// `python`, `javascript`, `c`, …
    pub language: String,
    /// Repository (or corpus root) the record comes from.
    pub repo: String,
    /// Path of the file inside the repository.
    pub path: String,
}

/// Which side of the split a record is on.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Split {
    /// Training data.
    Train,
    /// Held-out validation data.
    Valid,
}

/// FNV-1a: a stable hash (the same on every platform and Rust version), unlike `DefaultHasher`.
pub fn fnv1a(bytes: &[u8]) -> u64 {
    bytes.iter().fold(0xcbf2_9ce4_8422_2325u64, |h, &b| (h ^ b as u64).wrapping_mul(0x0000_0100_0000_01b3))
}

/// The split of a file: `valid_fraction` of files (by hash of `repo/path`) are held out.
pub fn split_of(repo: &str, path: &str, valid_fraction: f64) -> Split {
    split_of_key(&format!("{repo}/{path}"), valid_fraction)
}

/// The split of a [`split_key`].
pub fn split_of_key(key: &str, valid_fraction: f64) -> Split {
    if key_position(key) < valid_fraction { Split::Valid } else { Split::Train }
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

/// The text a record trains on: plain code, or the seed's prompt template when `template` is set and the record has
/// a docstring.
pub fn render(record: &Record, template: bool) -> String {
    match (&record.docstring, template) {
        (Some(doc), true) if !doc.trim().is_empty() => format!("# Task: {}\n\n# Solution:\n{}", doc.trim(), record.code),
        _ => record.code.clone(),
    }
}

/// Python functions and classes of a source file as records (top-level `def`/`async def`/`class`, with their
/// decorators; methods stay inside their class). An indentation scanner, not a parser: it tracks brackets in
/// headers and triple-quoted strings in bodies, which is what decides where a block ends.
pub fn python_records(source: &str, repo: &str, path: &str) -> Vec<Record> {
    let lines: Vec<&str> = source.lines().collect();
    let mut out = Vec::new();
    let mut i = 0;
    while i < lines.len() {
        let line = lines[i];
        let starts_def = ["def ", "async def ", "class "].iter().any(|k| line.starts_with(k));
        if !(starts_def || line.starts_with('@')) {
            i += 1;
            continue;
        }
        let first = i;
        // Decorators, then the header (possibly spanning lines while brackets are open).
        while i < lines.len() && lines[i].starts_with('@') {
            i += 1;
        }
        if i >= lines.len() || !["def ", "async def ", "class "].iter().any(|k| lines[i].starts_with(k)) {
            continue;
        }
        let header = lines[i];
        let name = header
            .trim_start_matches("async ")
            .split_whitespace()
            .nth(1)
            .map(|s| s.split(|c: char| !(c.is_alphanumeric() || c == '_')).next().unwrap_or("").to_string());
        let mut depth: i32 = 0;
        loop {
            depth += bracket_delta(lines[i]);
            i += 1;
            if depth <= 0 || i >= lines.len() {
                break;
            }
        }
        // Body: blank lines, indented lines, and anything inside an open triple-quoted string.
        let mut in_string: Option<&str> = None;
        let mut end = i;
        while i < lines.len() {
            let l = lines[i];
            let indented = l.starts_with(' ') || l.starts_with('\t');
            if in_string.is_none() && !indented && !l.trim().is_empty() {
                break;
            }
            in_string = update_triple_quote(l, in_string);
            i += 1;
            if !l.trim().is_empty() {
                end = i;
            }
        }
        let code = lines[first..end].join("\n");
        out.push(Record {
            docstring: docstring_of(&lines[first..end]),
            code,
            func_name: name.filter(|n| !n.is_empty()),
            language: "python".into(),
            repo: repo.into(),
            path: path.into(),
        });
    }
    out
}

/// Net count of opening minus closing brackets outside string literals (approximate, per line).
fn bracket_delta(line: &str) -> i32 {
    let mut depth = 0;
    let mut quote: Option<char> = None;
    let mut chars = line.chars().peekable();
    while let Some(c) = chars.next() {
        match (quote, c) {
            (Some(_), '\\') => {
                chars.next();
            }
            (Some(q), c) if c == q => quote = None,
            (Some(_), _) => {}
            (None, '#') => break,
            (None, '\'' | '"') => quote = Some(c),
            (None, '(' | '[' | '{') => depth += 1,
            (None, ')' | ']' | '}') => depth -= 1,
            _ => {}
        }
    }
    depth
}

/// Tracks whether a line leaves us inside a triple-quoted string.
fn update_triple_quote<'a>(line: &str, mut open: Option<&'a str>) -> Option<&'a str> {
    let mut rest = line;
    loop {
        match open {
            Some(q) => match rest.find(q) {
                Some(at) => {
                    rest = &rest[at + 3..];
                    open = None;
                }
                None => return open,
            },
            None => {
                let next = [("\"\"\"", rest.find("\"\"\"")), ("'''", rest.find("'''"))]
                    .into_iter()
                    .filter_map(|(q, at)| at.map(|a| (a, q)))
                    .min();
                match next {
                    Some((at, q)) => {
                        rest = &rest[at + 3..];
                        open = Some(if q == "\"\"\"" { "\"\"\"" } else { "'''" });
                    }
                    None => return None,
                }
            }
        }
    }
}

/// The docstring of a def/class block: a string literal as the first statement of the body.
fn docstring_of(block: &[&str]) -> Option<String> {
    let body_start = block.iter().position(|l| l.trim_end().ends_with(':') && !l.starts_with('@'))? + 1;
    let first = block.get(body_start..)?.iter().find(|l| !l.trim().is_empty())?.trim_start();
    let first = first.trim_start_matches(['r', 'R', 'u', 'U']);
    for q in ["\"\"\"", "'''", "\"", "'"] {
        if let Some(rest) = first.strip_prefix(q) {
            // Collect until the closing quote, possibly over several lines.
            let mut text = String::new();
            let mut lines = std::iter::once(rest).chain(block[body_start..].iter().skip_while(|l| l.trim().is_empty()).skip(1).copied());
            for l in lines.by_ref() {
                if let Some(at) = l.find(q) {
                    text.push_str(&l[..at]);
                    return Some(clean_docstring(&text));
                }
                text.push_str(l);
                text.push('\n');
            }
            return None;
        }
    }
    None
}

fn clean_docstring(text: &str) -> String {
    text.lines().map(str::trim).collect::<Vec<_>>().join("\n").trim().to_string()
}

/// The built-in corpus (`model/data/builtin_corpus.py`): Python written for this project so `train` runs without
/// data. Its functions are split by name into train and validation like any other file.
pub fn builtin_records() -> Vec<Record> {
    const SOURCE: &str = include_str!("../data/builtin_corpus.py");
    python_records(SOURCE, "hnet-gpt-builtin", "builtin_corpus.py")
        .into_iter()
        .map(|mut r| {
            // One "file" per function, so the hash split separates functions rather than putting all in one side.
            r.path = format!("builtin/{}.py", r.func_name.as_deref().unwrap_or("anonymous"));
            r
        })
        .collect()
}

/// Documents packed into training sequences of `seq_len + 1` tokens.
#[derive(Debug, Clone, PartialEq)]
pub struct Packed {
    /// The token stream: documents separated by `<|endoftext|>`.
    pub stream: Vec<u32>,
    /// Sequence length (inputs; each sequence holds one more token for the targets).
    pub seq_len: usize,
    /// UTF-8 bytes of text the stream encodes (for bits per byte).
    pub bytes: usize,
}

impl Packed {
    /// Joins tokenised documents, each followed by `<|endoftext|>`.
    pub fn new(docs: impl IntoIterator<Item = (Vec<u32>, usize)>, seq_len: usize) -> Self {
        let mut stream = Vec::new();
        let mut bytes = 0;
        for (ids, n_bytes) in docs {
            stream.extend(ids);
            stream.push(EOS_ID);
            bytes += n_bytes;
        }
        Self { stream, seq_len, bytes }
    }

    /// Number of whole sequences.
    pub fn len(&self) -> usize {
        self.stream.len().saturating_sub(1) / self.seq_len
    }

    /// True when not even one sequence fits.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// Sequence `i`: `seq_len + 1` tokens.
    pub fn sequence(&self, i: usize) -> &[u32] {
        &self.stream[i * self.seq_len..i * self.seq_len + self.seq_len + 1]
    }
}

/// Where the sampler is in the data: which epoch, and how far into that epoch's shuffled order.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, Default)]
pub struct DataPosition {
    /// Epoch number.
    pub epoch: u64,
    /// Sequences already drawn in this epoch.
    pub index: usize,
}

/// The shuffled order of epoch `epoch` (Fisher–Yates with a seed derived from `seed` and the epoch).
pub fn epoch_order(n: usize, seed: u64, epoch: u64) -> Vec<usize> {
    let mut order: Vec<usize> = (0..n).collect();
    let mut rng = Rng::new(seed ^ epoch.wrapping_mul(0x9E37_79B9_7F4A_7C15));
    for i in (1..n).rev() {
        order.swap(i, rng.below(i + 1));
    }
    order
}

/// Draws the next `batch` sequence indices and advances the position (crossing into the next epoch as needed).
pub fn next_batch(n: usize, seed: u64, pos: &mut DataPosition, batch: usize) -> Vec<usize> {
    let mut order = epoch_order(n, seed, pos.epoch);
    let mut out = Vec::with_capacity(batch);
    while out.len() < batch {
        if pos.index >= n {
            pos.epoch += 1;
            pos.index = 0;
            order = epoch_order(n, seed, pos.epoch);
        }
        out.push(order[pos.index]);
        pos.index += 1;
    }
    out
}

#[cfg(not(target_arch = "wasm32"))]
pub use native::*;

#[cfg(not(target_arch = "wasm32"))]
mod native {
    use std::io::{BufRead, BufReader, Read};
    use std::path::{Path, PathBuf};

    use super::{python_records, Record};

    /// A problem met while loading data: the record or file was skipped, and the run goes on.
    #[derive(Debug, Clone, PartialEq)]
    pub struct Skipped {
        /// `file:line` or `file`.
        pub location: String,
        /// Why.
        pub reason: String,
    }

    /// What loading found.
    #[derive(Debug, Clone, Default)]
    pub struct Loaded {
        /// The records.
        pub records: Vec<Record>,
        /// Files read.
        pub files: usize,
        /// Skipped lines and files, with reasons.
        pub skipped: Vec<Skipped>,
    }

    /// Source-file extensions the tree walker reads, and their language.
    pub const EXTENSIONS: [(&str, &str); 9] = [
        ("py", "python"), ("js", "javascript"), ("mjs", "javascript"), ("ts", "typescript"),
        ("c", "c"), ("h", "c"), ("cc", "cpp"), ("cpp", "cpp"), ("hpp", "cpp"),
    ];

    /// Loads a `--data` argument: a `.jsonl` / `.jsonl.gz` file, a directory of source code, or one source file.
    pub fn load_path(path: &Path) -> Loaded {
        let mut loaded = Loaded::default();
        let ext = extension(path);
        if path.is_dir() {
            let mut visited = std::collections::HashSet::new();
            walk(path, path, &mut visited, &mut loaded);
        } else if let Some((_, language)) = EXTENSIONS.iter().find(|(e, _)| *e == ext) {
            // One source file: its split key is its file name, as if it were a tree of one file.
            let root = path.parent().unwrap_or(Path::new(""));
            load_source(root, path, language, &mut loaded);
        } else {
            load_jsonl(path, &mut loaded);
        }
        loaded
    }

    fn extension(path: &Path) -> String {
        path.extension().map(|e| e.to_string_lossy().to_lowercase()).unwrap_or_default()
    }

    fn skip(loaded: &mut Loaded, location: String, reason: impl Into<String>) {
        loaded.skipped.push(Skipped { location, reason: reason.into() });
    }

    /// Reads CodeSearchNet JSONL (plain or gzip). A malformed line is skipped with its `file:line`.
    pub fn load_jsonl(path: &Path, loaded: &mut Loaded) {
        let name = path.display().to_string();
        let file = match std::fs::File::open(path) {
            Ok(f) => f,
            Err(e) => return skip(loaded, name, format!("cannot open: {e}")),
        };
        let reader: Box<dyn Read> = if name.ends_with(".gz") { Box::new(flate2::read::MultiGzDecoder::new(file)) } else { Box::new(file) };
        loaded.files += 1;
        for (n, line) in BufReader::new(reader).lines().enumerate() {
            let location = format!("{name}:{}", n + 1);
            let line = match line {
                Ok(l) => l,
                Err(e) => {
                    skip(loaded, location, format!("unreadable ({e}); stopped reading this file"));
                    break;
                }
            };
            if line.trim().is_empty() {
                continue;
            }
            match parse_csn_line(&line) {
                Ok(r) => loaded.records.push(r),
                Err(reason) => skip(loaded, location, reason),
            }
        }
    }

    /// One CodeSearchNet line: `code` or `func_code_string` is required; the rest is optional. Both the original
    /// release's field names (`repo`, `path`, `code`, `docstring`) and the Hugging Face dataset's
    /// (`repository_name`, `func_path_in_repository`, `func_code_string`, `func_documentation_string`) are read.
    pub fn parse_csn_line(line: &str) -> Result<Record, String> {
        let v: serde_json::Value = serde_json::from_str(line).map_err(|e| format!("not valid JSON: {e}"))?;
        let s = |keys: &[&str]| keys.iter().find_map(|k| v.get(*k).and_then(|x| x.as_str()).map(str::to_string));
        let code = s(&["code", "func_code_string", "original_string"]).ok_or("no `code` or `func_code_string` field")?;
        if code.trim().is_empty() {
            return Err("empty `code`".into());
        }
        Ok(Record {
            code,
            docstring: s(&["docstring", "func_documentation_string"]),
            func_name: s(&["func_name"]),
            language: s(&["language"]).unwrap_or_else(|| "unknown".into()),
            // CodeSearchNet's own names, then the Hugging Face dataset's (`code_search_net`).
            repo: s(&["repo", "nwo", "repository_name"]).unwrap_or_default(),
            path: s(&["path", "func_path_in_repository"]).unwrap_or_default(),
        })
    }

    /// Walks a source tree in a deterministic order. Symbolic links are followed, but a directory is entered
    /// once (a link loop is a warning, not a hang); hidden entries and non-regular files (FIFOs, sockets, devices)
    /// are passed over.
    fn walk(root: &Path, dir: &Path, visited: &mut std::collections::HashSet<PathBuf>, loaded: &mut Loaded) {
        match dir.canonicalize() {
            Ok(real) if !visited.insert(real.clone()) => {
                return skip(loaded, dir.display().to_string(), format!("a symbolic link loop (already read as {})", real.display()));
            }
            Ok(_) => {}
            Err(e) => return skip(loaded, dir.display().to_string(), format!("cannot resolve: {e}")),
        }
        let mut entries: Vec<PathBuf> = match std::fs::read_dir(dir) {
            Ok(rd) => rd.filter_map(|e| e.ok().map(|e| e.path())).collect(),
            Err(e) => return skip(loaded, dir.display().to_string(), format!("cannot list: {e}")),
        };
        entries.sort(); // deterministic order
        for path in entries {
            if path.file_name().is_some_and(|n| n.to_string_lossy().starts_with('.')) {
                continue;
            }
            if path.is_dir() {
                walk(root, &path, visited, loaded);
                continue;
            }
            let Some((_, language)) = EXTENSIONS.iter().find(|(e, _)| *e == extension(&path)) else { continue };
            load_source(root, &path, language, loaded);
        }
    }

    /// Reads one source file into records; what cannot be read is a warning naming the file and why.
    fn load_source(root: &Path, path: &Path, language: &str, loaded: &mut Loaded) {
        let name = path.display().to_string();
        match std::fs::metadata(path) {
            Ok(m) if !m.is_file() => return skip(loaded, name, "not a regular file"),
            Ok(_) => {}
            Err(e) => return skip(loaded, name, format!("unreadable: {e}")),
        }
        let bytes = match std::fs::read(path) {
            Ok(b) => b,
            Err(e) => return skip(loaded, name, format!("unreadable: {e}")),
        };
        if let Some(at) = bytes.iter().position(|&b| b == 0) {
            return skip(loaded, name, format!("binary, not source code (a NUL byte at offset {at})"));
        }
        let text = match String::from_utf8(bytes) {
            Ok(t) => t,
            Err(e) => return skip(loaded, name, format!("not UTF-8 (invalid byte at offset {})", e.utf8_error().valid_up_to())),
        };
        loaded.files += 1;
        // The split key is the path inside the tree, not where the tree lives on this machine.
        let repo = String::new();
        let rel = path.strip_prefix(root).unwrap_or(path).display().to_string();
        if language == "python" {
            loaded.records.extend(python_records(&text, &repo, &rel));
        } else if !text.trim().is_empty() {
            loaded.records.push(Record { code: text, docstring: None, func_name: None, language: language.to_string(), repo, path: rel });
        }
    }

    /// The CPython standard library that Debian's `libpython3.11-stdlib` installs, when present.
    pub fn debian_python_stdlib() -> Option<PathBuf> {
        let dir = PathBuf::from("/usr/lib/python3.11");
        dir.join("os.py").is_file().then_some(dir)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const SAMPLE: &str = r#"import os

@decorator
def first(a, b):
    """Add two numbers.

    Returns the sum.
    """
    return a + b

class Thing(Base):
    '''A thing.'''

    def method(self):
        text = """
not code
"""
        return text

def long_header(
    a,
    b,
):
    return a

x = 1
async def fetch(url): return url
"#;

    #[test]
    fn python_functions_and_classes_become_records() {
        let records = python_records(SAMPLE, "repo", "m.py");
        let names: Vec<_> = records.iter().map(|r| r.func_name.clone().unwrap()).collect();
        assert_eq!(names, vec!["first", "Thing", "long_header", "fetch"]);
        assert!(records[0].code.starts_with("@decorator\ndef first"));
        assert!(records[0].code.ends_with("return a + b"));
        assert_eq!(records[0].docstring.as_deref(), Some("Add two numbers.\n\nReturns the sum."));
        assert_eq!(records[1].docstring.as_deref(), Some("A thing."));
        assert!(records[1].code.contains("not code") && records[1].code.ends_with("return text"), "{}", records[1].code);
        assert!(records[2].code.ends_with("):\n    return a"), "{}", records[2].code);
        assert_eq!(records[3].code, "async def fetch(url): return url");
    }

    #[test]
    fn template_and_plain_rendering() {
        let r = &python_records(SAMPLE, "repo", "m.py")[0];
        assert_eq!(render(r, false), r.code);
        assert!(render(r, true).starts_with("# Task: Add two numbers."));
        assert!(render(r, true).contains("\n\n# Solution:\n@decorator"));
    }

    #[test]
    fn split_is_by_file_and_stable() {
        assert_eq!(fnv1a(b"abc"), 0xe71f_a219_0541_574b);
        let valid = (0..1000).filter(|i| split_of("r", &format!("f{i}.py"), 0.1) == Split::Valid).count();
        assert!((60..140).contains(&valid), "{valid}");
        assert_eq!(split_of("r", "a.py", 0.1), split_of("r", "a.py", 0.1));
    }

    #[test]
    fn split_keys_ignore_where_the_data_lives_and_bare_records_split_alone() {
        let r = |repo: &str, path: &str, code: &str| Record {
            code: code.into(),
            docstring: None,
            func_name: None,
            language: "python".into(),
            repo: repo.into(),
            path: path.into(),
        };
        assert_eq!(split_key(&r("", "json/decoder.py", "a")), split_key(&r("", "json/decoder.py", "b")));
        assert_eq!(split_key(&r("org/repo", "x.py", "a")), "org/repo/x.py");
        // Records without repo or path: one key per text, so 31 of them do not all land on one side.
        let keys: std::collections::HashSet<String> = (0..31).map(|i| split_key(&r("", "", &format!("def f{i}(): pass")))).collect();
        assert_eq!(keys.len(), 31);
    }

    #[test]
    fn exact_duplicates_are_removed_before_the_split() {
        let mut records = builtin_records();
        let n = records.len();
        records.extend(builtin_records().into_iter().take(3));
        assert_eq!(dedup(&mut records), 3);
        assert_eq!(records.len(), n);
    }

    #[test]
    fn a_short_validation_side_is_filled_from_the_nearest_keys_or_left_empty() {
        let keys: Vec<(String, usize)> = (0..31).map(|i| (format!("text:{i}"), 20)).collect();
        // 5% of 31 keys × 20 tokens is far below one 129-token sequence: keys move until it holds one.
        let a = assign_split(&keys, 0.05, 129);
        let held: usize = keys.iter().zip(&a.valid).filter(|(_, v)| **v).map(|((_, n), _)| n).sum();
        assert!(held >= 129 && held < 129 + 20 && a.moved > 0, "{held} {a:?}");
        // Deterministic.
        assert_eq!(assign_split(&keys, 0.05, 129), a);
        // Too little data for both sides: nothing held out.
        let few: Vec<(String, usize)> = (0..3).map(|i| (format!("k{i}"), 50)).collect();
        assert!(assign_split(&few, 0.5, 129).valid.iter().all(|v| !v));
        // Plenty of data: the hash alone decides, nothing moves.
        let many: Vec<(String, usize)> = (0..1000).map(|i| (format!("f{i}.py"), 500)).collect();
        assert_eq!(assign_split(&many, 0.05, 129).moved, 0);
    }

    #[test]
    fn builtin_corpus_has_distinct_train_and_valid_functions() {
        let records = builtin_records();
        assert!(records.len() >= 40, "{}", records.len());
        let (valid, train): (Vec<_>, Vec<_>) = records.iter().partition(|r| split_of(&r.repo, &r.path, 0.15) == Split::Valid);
        assert!(!valid.is_empty() && train.len() > valid.len());
        for v in &valid {
            assert!(train.iter().all(|t| t.code != v.code), "a validation text also appears in training");
        }
    }

    #[cfg(unix)]
    #[test]
    fn faulty_trees_load_what_they_can_and_say_what_they_skipped() {
        let dir = std::env::temp_dir().join(format!("hnet-data-faults-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(dir.join("pkg/sub")).unwrap();
        std::fs::write(dir.join("pkg/good.py"), "def good():\n    return 1\n").unwrap();
        std::fs::write(dir.join("pkg/binary.py"), b"def x():\n\x00\x01\x02").unwrap();
        std::fs::write(dir.join("pkg/latin1.py"), b"# caf\xe9\ndef y():\n    pass\n").unwrap();
        std::os::unix::fs::symlink("nowhere.py", dir.join("pkg/dangling.py")).unwrap();
        std::os::unix::fs::symlink("..", dir.join("pkg/sub/loop")).unwrap();
        std::os::unix::fs::symlink("self.py", dir.join("pkg/self.py")).unwrap();
        let fifo = std::process::Command::new("mkfifo").arg(dir.join("pkg/pipe.py")).status();
        let loaded = load_path(&dir.join("pkg"));
        assert_eq!(loaded.records.len(), 1, "{:?}", loaded.records);
        assert_eq!(loaded.records[0].path, "good.py");
        let reasons: Vec<String> = loaded.skipped.iter().map(|s| format!("{}: {}", s.location, s.reason)).collect();
        let has = |file: &str, why: &str| reasons.iter().any(|r| r.contains(file) && r.contains(why));
        assert!(has("binary.py", "binary"), "{reasons:?}");
        assert!(has("latin1.py", "not UTF-8"), "{reasons:?}");
        assert!(has("dangling.py", "unreadable"), "{reasons:?}");
        assert!(has("self.py", "unreadable"), "{reasons:?}");
        assert!(has("loop", "symbolic link loop"), "{reasons:?}");
        if fifo.is_ok_and(|s| s.success()) {
            assert!(has("pipe.py", "not a regular file"), "{reasons:?}");
        }
        // One file given directly is read as source, keyed by its name.
        let one = load_path(&dir.join("pkg/good.py"));
        assert_eq!((one.records.len(), one.records[0].path.as_str(), one.files), (1, "good.py", 1));
        std::fs::remove_dir_all(&dir).unwrap();
    }

    proptest::proptest! {
        /// JSONL lines of random bytes (and random text in the fields) are records or clear reasons, never panics.
        #[test]
        fn random_jsonl_lines_never_panic(bytes in proptest::collection::vec(proptest::prelude::any::<u8>(), 0..256), text in "\\PC{0,64}") {
            let line = String::from_utf8_lossy(&bytes);
            if let Err(reason) = parse_csn_line(&line) {
                proptest::prop_assert!(!reason.is_empty());
            }
            let _ = parse_csn_line(&serde_json::json!({"code": text, "repo": text}).to_string());
        }

        /// Python-looking text of any shape splits into records without panicking, each a piece of the text.
        #[test]
        fn the_python_splitter_takes_any_text(parts in proptest::collection::vec(proptest::sample::select(vec!["def ", "class ", "@", "    ", "\"\"\"", "'''", "(", ")", ":", "\n", "x"]), 0..80)) {
            let text = parts.concat();
            for r in python_records(&text, "", "f.py") {
                proptest::prop_assert!(text.contains(r.code.as_str()));
            }
        }
    }

    #[test]
    fn a_jsonl_file_of_random_bytes_is_skipped_line_by_line() {
        let path = std::env::temp_dir().join(format!("hnet-random-{}.jsonl", std::process::id()));
        let mut rng = crate::sampling::Rng::new(5);
        let bytes: Vec<u8> = (0..20_000).map(|_| rng.below(256) as u8).collect();
        std::fs::write(&path, &bytes).unwrap();
        let loaded = load_path(&path);
        assert!(loaded.records.is_empty());
        assert!(!loaded.skipped.is_empty() && loaded.skipped.iter().all(|s| !s.reason.is_empty()));
        std::fs::remove_file(&path).unwrap();
    }

    #[test]
    fn hugging_face_codesearchnet_field_names_are_read() {
        let line = r#"{"repository_name": "org/proj", "func_path_in_repository": "a/b.py", "func_name": "f", "func_code_string": "def f():\n    pass", "func_documentation_string": "Does f.", "language": "python"}"#;
        let r = parse_csn_line(line).unwrap();
        assert_eq!((r.repo.as_str(), r.path.as_str(), r.docstring.as_deref()), ("org/proj", "a/b.py", Some("Does f.")));
        assert!(r.code.starts_with("def f()"));
    }

    #[test]
    fn packing_and_epochs() {
        let packed = Packed::new(vec![(vec![1, 2, 3], 3), (vec![4, 5], 2)], 3);
        assert_eq!(packed.stream, vec![1, 2, 3, EOS_ID, 4, 5, EOS_ID]);
        assert_eq!(packed.len(), 2);
        assert_eq!(packed.sequence(1), &[EOS_ID, 4, 5, EOS_ID]);
        let order = epoch_order(10, 7, 0);
        let mut sorted = order.clone();
        sorted.sort();
        assert_eq!(sorted, (0..10).collect::<Vec<_>>());
        assert_ne!(order, epoch_order(10, 7, 1));
        // Drawing 4 + 4 + 4 crosses into epoch 1 and is reproducible from the saved position.
        let mut pos = DataPosition::default();
        let a = next_batch(10, 7, &mut pos, 4);
        let mut saved = pos;
        let b = next_batch(10, 7, &mut pos, 8);
        assert_eq!(pos, DataPosition { epoch: 1, index: 2 });
        assert_eq!(next_batch(10, 7, &mut saved, 8), b);
        assert!(a.iter().all(|i| *i < 10));
    }
}
