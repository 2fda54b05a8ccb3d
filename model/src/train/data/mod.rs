//! Training data: CodeSearchNet-style records from JSONL files or source trees, a built-in corpus, a deterministic
//! train/validation split, and packing into fixed-length token sequences.
//!
//! - **Records** mirror CodeSearchNet's fields (`code`, `docstring`, `func_name`, `language`, `repo`, `path`).
//! - **Split** by a hash of the path inside the corpus (see [`split`]): every record of a file lands on one side.
//! - **Text** is the plain code by default, or the seed's prompt template `# Task: {docstring}\n\n# Solution:\n{code}`.
//! - **Packing**: documents are joined with `<|endoftext|>` into one token stream and cut into sequences of
//!   `seq_len + 1` tokens (inputs and shifted targets). Every position is a real token, so padding never enters
//!   the loss; the separator marks document boundaries, as in GPT-2's own training.

#[cfg(not(target_arch = "wasm32"))]
pub mod corpus;
pub mod packing;
pub mod python;
#[cfg(not(target_arch = "wasm32"))]
pub mod sources;
pub mod split;

use serde::{Deserialize, Serialize};

pub use packing::*;
pub use python::python_records;
#[cfg(not(target_arch = "wasm32"))]
pub use sources::*;
pub use split::*;

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

/// The text a record trains on: plain code, or the seed's prompt template when `template` is set and the record has
/// a docstring.
pub fn render(record: &Record, template: bool) -> String {
    match (&record.docstring, template) {
        (Some(doc), true) if !doc.trim().is_empty() => format!("# Task: {}\n\n# Solution:\n{}", doc.trim(), record.code),
        _ => record.code.clone(),
    }
}

/// The built-in corpus (`model/data/builtin_corpus.py`): Python written for this project so `train` runs without
/// data. Its functions are split by name into train and validation like any other file.
pub fn builtin_records() -> Vec<Record> {
    const SOURCE: &str = include_str!("../../../data/builtin_corpus.py");
    python_records(SOURCE, "hnet-gpt-builtin", "builtin_corpus.py")
        .into_iter()
        .map(|mut r| {
            // One "file" per function, so the hash split separates functions rather than putting all in one side.
            r.path = format!("builtin/{}.py", r.func_name.as_deref().unwrap_or("anonymous"));
            r
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_fine_tune_holds_back_the_last_fifth() {
        let docs: Vec<Vec<u32>> = (0..6).map(|i| vec![i; 10]).collect();
        let (train, held) = hold_back_fifth(docs);
        assert_eq!((train.len(), held.len()), (4, 2));
        assert_eq!(held[0][0], 4);
        let (train, held) = hold_back_fifth(vec![(0..50).collect()]);
        assert_eq!((train[0].len(), held[0].len()), (40, 10));
        let (train, held) = hold_back_fifth(vec![]);
        assert!(train[0].is_empty() && held[0].is_empty());
    }
    use crate::tokenizer::EOS_ID;

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
        assert!((129..129 + 20).contains(&held) && a.moved > 0, "{held} {a:?}");
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
        let mut rng = crate::util::rng::Rng::new(5);
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
        let packed = Packed::new(vec![(vec![1, 2, 3], 3), (vec![4, 5], 2)], 3, EOS_ID);
        assert_eq!(packed.stream.to_vec(), vec![1, 2, 3, EOS_ID, 4, 5, EOS_ID]);
        assert_eq!(packed.len(), 2);
        assert_eq!(&*packed.sequence(1), &[EOS_ID, 4, 5, EOS_ID]);
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
