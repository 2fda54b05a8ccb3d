//! Arrows only downward: each folder (or top-level file) of `model/src` may use only the modules below it in
//! [`LAYERS`], and no two files use each other. Read from the sources, so that a new upward `use crate::…` fails
//! here, not in a reader's head.

use std::path::Path;

/// The model crate's modules, ground floor first.
const LAYERS: [&str; 11] = [
    "error",     // typed errors
    "util",      // hashing, the seeded RNG, bounded and atomic file access: plain Rust, no model
    "tokenizer", // text ↔ ids, FIM and stop tokens
    "host",      // CPU kernels the nn ops dispatch to
    "nn",        // attention, linear, norms, rope, caches, stacks
    "hnet",      // dynamic chunking and the fusion gate
    "arch",      // the architectures, their configs and the Model front
    "io",        // checkpoints, Hugging Face import, parameter paths
    "generate",  // sampling, generation, where completions end
    "eval",      // scoring, causality, inspection, evaluations
    "train",     // data, losses, AdamW, the training step
];

/// Every `crate::<module>` a source file names in code (comments and doc comments aside).
fn crate_uses(source: &str) -> Vec<String> {
    let mut found = Vec::new();
    for line in source.lines() {
        let code = line.split("//").next().unwrap_or("");
        let mut rest = code;
        while let Some(at) = rest.find("crate::") {
            let after = &rest[at + "crate::".len()..];
            let name: String = after.chars().take_while(|c| c.is_ascii_alphanumeric() || *c == '_').collect();
            if !name.is_empty() {
                found.push(name);
            }
            rest = after;
        }
        // `use crate::{a, b::c}` groups.
        if let Some(group) = code.trim_start().strip_prefix("use crate::{") {
            for part in group.split(',') {
                let name: String = part.trim().chars().take_while(|c| c.is_ascii_alphanumeric() || *c == '_').collect();
                if !name.is_empty() {
                    found.push(name);
                }
            }
        }
    }
    found
}

fn rust_files(dir: &Path, out: &mut Vec<std::path::PathBuf>) {
    for entry in std::fs::read_dir(dir).unwrap() {
        let path = entry.unwrap().path();
        if path.is_dir() {
            rust_files(&path, out);
        } else if path.extension().is_some_and(|e| e == "rs") {
            out.push(path);
        }
    }
}

#[test]
fn every_module_uses_only_the_modules_below_it() {
    let src = Path::new(env!("CARGO_MANIFEST_DIR")).join("src");
    let mut files = Vec::new();
    rust_files(&src, &mut files);
    let mut upward = Vec::new();
    for file in &files {
        let relative = file.strip_prefix(&src).unwrap();
        let module = relative.components().next().unwrap().as_os_str().to_string_lossy().trim_end_matches(".rs").to_string();
        if module == "lib" {
            continue;
        }
        let Some(level) = LAYERS.iter().position(|l| *l == module) else {
            upward.push(format!("{}: module `{module}` is not in LAYERS", relative.display()));
            continue;
        };
        for used in crate_uses(&std::fs::read_to_string(file).unwrap()) {
            match LAYERS.iter().position(|l| *l == used) {
                Some(u) if u > level => upward.push(format!("{}: {module} uses crate::{used}", relative.display())),
                // Items re-exported at the crate root (`crate::Model`) are named by their module's layer instead.
                None if used.chars().next().is_some_and(char::is_uppercase) => {}
                None => upward.push(format!("{}: crate::{used} is not in LAYERS", relative.display())),
                _ => {}
            }
        }
    }
    assert!(upward.is_empty(), "upward or unknown imports:\n{}", upward.join("\n"));
}

/// Every `crate::a::b::c` path a source file names in code, as written; its tests (`#[cfg(test)]`, at the end of a
/// file) aside, since a test may check one file against another that builds on it.
fn crate_paths(source: &str) -> Vec<String> {
    let mut found = Vec::new();
    for line in source.split("#[cfg(test)]").next().unwrap_or("").lines() {
        let mut rest = line.split("//").next().unwrap_or("");
        while let Some(at) = rest.find("crate::") {
            let after = &rest[at + "crate::".len()..];
            let path: String = after.chars().take_while(|c| c.is_ascii_alphanumeric() || *c == '_' || *c == ':').collect();
            found.push(path.trim_end_matches(':').to_string());
            rest = after;
        }
    }
    found
}

#[test]
fn no_two_files_use_each_other() {
    let src = Path::new(env!("CARGO_MANIFEST_DIR")).join("src");
    let mut files = Vec::new();
    rust_files(&src, &mut files);
    // Module path (`train::schedule`) → the crate paths its file names.
    let modules: Vec<(String, Vec<String>)> = files
        .iter()
        .map(|f| {
            let rel = f.strip_prefix(&src).unwrap().with_extension("");
            let module = rel.to_string_lossy().replace('/', "::").trim_end_matches("::mod").trim_end_matches("mod").to_string();
            (module, crate_paths(&std::fs::read_to_string(f).unwrap()))
        })
        .collect();
    // The module a path lands in: its longest prefix that is a file's module.
    let target = |path: &str| -> Option<&str> {
        let parts: Vec<&str> = path.split("::").collect();
        (1..=parts.len()).rev().map(|k| parts[..k].join("::")).find_map(|p| modules.iter().find(|(m, _)| *m == p).map(|(m, _)| m.as_str()))
    };
    let uses = |from: &str, to: &str| {
        modules.iter().find(|(m, _)| m == from).is_some_and(|(_, paths)| paths.iter().any(|p| target(p) == Some(to)))
    };
    let mut circles = Vec::new();
    for (a, _) in &modules {
        for (b, _) in &modules {
            if a < b && !a.is_empty() && uses(a, b) && uses(b, a) {
                circles.push(format!("{a} ↔ {b}"));
            }
        }
    }
    assert!(circles.is_empty(), "files that use each other:\n{}", circles.join("\n"));
}

#[test]
fn the_check_sees_imports_and_skips_comments() {
    let uses = crate_uses(
        "use crate::io::hf;\n/// [`crate::train::x`]\nlet a = crate::nn::f(); // crate::eval\nuse crate::{arch::model, hnet};\n",
    );
    assert_eq!(uses, ["io", "nn", "arch", "hnet"]);
    let source = "use crate::train::schedule::{LrCurve, Schedule}; // crate::x\n#[cfg(test)]\nuse crate::train::loss;";
    assert_eq!(crate_paths(source), ["train::schedule"]);
}
