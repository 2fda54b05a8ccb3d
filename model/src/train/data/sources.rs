//! Reading training data from disk (native only): CodeSearchNet JSONL (plain or gzip, both field-name styles),
//! source trees (walked in a fixed order, link loops and non-regular files passed over) and single source files.
//! Everything that cannot be read becomes a [`Skipped`] with its location and reason; nothing here stops a run.

use std::io::{BufReader, Read};
use std::path::{Path, PathBuf};

use crate::util::files::{open_regular, read_regular, BoundedLines, ReadError};

use super::python::python_records;
use super::Record;

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
    ("py", "python"),
    ("js", "javascript"),
    ("mjs", "javascript"),
    ("ts", "typescript"),
    ("c", "c"),
    ("h", "c"),
    ("cc", "cpp"),
    ("cpp", "cpp"),
    ("hpp", "cpp"),
];

/// The largest source file read from a tree (larger ones are skipped with a warning).
pub const MAX_SOURCE_BYTES: u64 = 8 << 20;
/// The longest JSONL line read (a CodeSearchNet record is a few KB).
pub const MAX_JSONL_LINE_BYTES: usize = 16 << 20;
/// The most a JSONL file may hold, decompressed: a gzip stream that expands past it is cut off with a warning.
pub const MAX_JSONL_BYTES: u64 = 16 << 30;

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

/// Reads CodeSearchNet JSONL (plain or gzip). A malformed line is skipped with its `file:line`; a line over
/// [`MAX_JSONL_LINE_BYTES`] or a file (decompressed) over [`MAX_JSONL_BYTES`] stops reading the file with a warning.
pub fn load_jsonl(path: &Path, loaded: &mut Loaded) {
    let name = path.display().to_string();
    let file = match open_regular(path) {
        Ok((f, _)) => f,
        Err(e) => return skip(loaded, name, format!("cannot open: {e}")),
    };
    let reader: Box<dyn Read> = if name.ends_with(".gz") { Box::new(flate2::read::MultiGzDecoder::new(file)) } else { Box::new(file) };
    loaded.files += 1;
    for (n, line) in BoundedLines::new(BufReader::new(reader), MAX_JSONL_LINE_BYTES, MAX_JSONL_BYTES).enumerate() {
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
    let bytes = match read_regular(path, MAX_SOURCE_BYTES) {
        Ok(b) => b,
        Err(e @ ReadError::Io(_)) => return skip(loaded, name, format!("unreadable: {e}")),
        Err(e) => return skip(loaded, name, e.to_string()),
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
