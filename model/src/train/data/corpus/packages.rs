//! Packages in a source tree: the unit the corpus splits by (validation is code from packages the model never saw)
//! and the unit a licence belongs to. Three kinds of tree are recognised:
//!
//! - a Python environment's `site-packages`: each installed distribution (`*.dist-info`) is a package, with its
//!   name, version and licence from `METADATA`, owning the top-level modules its `top_level.txt` or `RECORD` names;
//! - a CPython standard library (a directory with `os.py`): each top-level module is a package, under the PSF licence;
//! - any other tree: each top-level directory is a package (loose files at the top form one named after the tree),
//!   its licence read from a LICENSE or COPYING file when there is one.

use std::collections::{BTreeMap, HashSet};
use std::path::{Path, PathBuf};

/// One package of the corpus.
#[derive(Debug, Clone, PartialEq)]
pub struct Package {
    /// Its name: the distribution's (normalised as pip does), `python-stdlib/MODULE`, or the directory's.
    pub name: String,
    /// Its version, when the metadata says.
    pub version: Option<String>,
    /// The licence as the metadata or a licence file states it (empty when nothing does).
    pub licence: String,
    /// Where the licence came from (`License-Expression`, `Classifier`, `License`, `LICENSE file`, …).
    pub licence_source: String,
    /// Its Python files, relative to the tree's root, in a fixed order.
    pub files: Vec<String>,
}

/// Directories that hold code copied from elsewhere (vendored: it would be trained on twice, under another
/// package's name and licence) or bytecode.
const VENDORED: [&str; 6] = ["_vendor", "vendor", "vendored", "_vendored", "third_party", "node_modules"];
/// Directory names that hold test fixtures rather than code (`lib2to3/tests/data`, `testdata`, …).
const TEST_DATA: [&str; 4] = ["testdata", "test_data", "fixtures", "data"];

/// What a tree walk passed over on purpose, by reason.
pub type PathSkips = BTreeMap<&'static str, usize>;

/// A metadata or licence file's text: a regular file of at most 16 MiB (a FIFO named `METADATA` is not waited on).
fn read_text(path: &Path) -> Result<String, crate::util::files::ReadError> {
    crate::util::files::read_regular_text(path, 16 << 20)
}

/// Finds the packages of a tree (see the module's documentation for the three kinds).
pub fn discover(root: &Path, skips: &mut PathSkips) -> std::io::Result<Vec<Package>> {
    let mut entries: Vec<PathBuf> = std::fs::read_dir(root)?.filter_map(|e| e.ok().map(|e| e.path())).collect();
    entries.sort();
    let name_of = |p: &Path| p.file_name().map(|n| n.to_string_lossy().to_string()).unwrap_or_default();
    let dists: Vec<&PathBuf> = entries.iter().filter(|p| p.is_dir() && name_of(p).ends_with(".dist-info")).collect();
    let stdlib = root.join("os.py").is_file() && dists.is_empty();
    let mut packages: BTreeMap<String, Package> = BTreeMap::new();
    let mut owner: BTreeMap<String, String> = BTreeMap::new(); // top-level module -> package name
    for d in &dists {
        let meta = read_text(&d.join("METADATA")).unwrap_or_default();
        let m = Metadata::parse(&meta);
        let Some(name) = m.name.as_deref().map(normalise) else { continue };
        let (licence, source) = m.licence();
        for top in top_levels(d) {
            owner.entry(top).or_insert_with(|| name.clone());
        }
        packages.entry(name.clone()).or_insert(Package {
            name,
            version: m.version.clone(),
            licence,
            licence_source: source,
            files: vec![],
        });
    }
    let tree_licence = licence_file(root);
    let tree_name = name_of(root);
    for entry in &entries {
        let name = name_of(entry);
        if name.starts_with('.') || name == "__pycache__" || name.ends_with(".dist-info") || name.ends_with(".egg-info") {
            continue;
        }
        let is_py = entry.is_file() && name.ends_with(".py");
        if !(entry.is_dir() || is_py) {
            continue;
        }
        if stdlib && matches!(name.as_str(), "site-packages" | "dist-packages") {
            continue;
        }
        if VENDORED.contains(&name.as_str()) {
            *skips.entry("vendored code (a copy of another package)").or_default() += 1;
            continue;
        }
        let top = name.trim_end_matches(".py").to_string();
        let package = if stdlib {
            let version = tree_name.strip_prefix("python").map(str::to_string);
            let key = format!("python-stdlib/{top}");
            packages.entry(key.clone()).or_insert_with(|| Package {
                name: key.clone(),
                version,
                licence: "PSF-2.0".into(),
                licence_source: "the CPython standard library".into(),
                files: vec![],
            });
            key
        } else if let Some(owner) = owner.get(&top) {
            owner.clone()
        } else {
            // Not installed metadata: a top-level directory of a plain tree, or loose files named after the tree.
            let key = if entry.is_dir() { normalise(&top) } else { normalise(&tree_name) };
            let (licence, source) = match (entry.is_dir().then(|| licence_file(entry)).flatten(), &tree_licence) {
                (Some(l), _) => (l, "LICENSE file".to_string()),
                (None, Some(l)) => (l.clone(), "the tree's LICENSE file".to_string()),
                (None, None) => (String::new(), "none found".to_string()),
            };
            packages.entry(key.clone()).or_insert(Package {
                name: key.clone(),
                version: None,
                licence,
                licence_source: source,
                files: vec![],
            });
            key
        };
        let files = &mut packages.get_mut(&package).expect("inserted above").files;
        if is_py {
            files.push(name);
        } else {
            walk(root, entry, &mut HashSet::new(), files, skips);
        }
    }
    Ok(packages.into_values().filter(|p| !p.files.is_empty()).collect())
}

/// The Python files under `dir`, relative to `root`, sorted; link loops, vendored copies and test data passed over.
fn walk(root: &Path, dir: &Path, seen: &mut HashSet<PathBuf>, out: &mut Vec<String>, skips: &mut PathSkips) {
    let Ok(real) = dir.canonicalize() else { return };
    if !seen.insert(real) {
        *skips.entry("a symbolic link loop").or_default() += 1;
        return;
    }
    let Ok(rd) = std::fs::read_dir(dir) else { return };
    let mut entries: Vec<PathBuf> = rd.filter_map(|e| e.ok().map(|e| e.path())).collect();
    entries.sort();
    // Relative to the tree, so a corpus kept under some `tests/` directory of its own is not all test data.
    let inside = dir.strip_prefix(root).unwrap_or(dir);
    let in_tests = inside.components().any(|c| matches!(c.as_os_str().to_str(), Some("test" | "tests")));
    for path in entries {
        let name = path.file_name().map(|n| n.to_string_lossy().to_string()).unwrap_or_default();
        if name.starts_with('.') || name == "__pycache__" {
            continue;
        }
        if path.is_dir() {
            if VENDORED.contains(&name.as_str()) {
                *skips.entry("vendored code (a copy of another package)").or_default() += 1;
            } else if (in_tests && TEST_DATA.contains(&name.as_str())) || name == "testdata" || name == "test_data" {
                *skips.entry("test data directory").or_default() += 1;
            } else {
                walk(root, &path, seen, out, skips);
            }
        } else if name.ends_with(".py") {
            out.push(path.strip_prefix(root).unwrap_or(&path).to_string_lossy().to_string());
        }
    }
}

/// A distribution name as pip compares them: lowercase, runs of `-`, `_` and `.` as one `-`.
pub fn normalise(name: &str) -> String {
    let mut out = String::new();
    for c in name.chars() {
        if matches!(c, '-' | '_' | '.') {
            if !out.ends_with('-') {
                out.push('-');
            }
        } else {
            out.extend(c.to_lowercase());
        }
    }
    out
}

/// The top-level modules a distribution installs: `top_level.txt`, else the first path component of each `RECORD` row.
fn top_levels(dist_info: &Path) -> Vec<String> {
    if let Ok(text) = read_text(&dist_info.join("top_level.txt")) {
        let tops: Vec<String> = text.lines().map(str::trim).filter(|l| !l.is_empty()).map(str::to_string).collect();
        if !tops.is_empty() {
            return tops;
        }
    }
    let record = read_text(&dist_info.join("RECORD")).unwrap_or_default();
    let mut tops: Vec<String> = record
        .lines()
        .filter_map(|l| l.split(',').next())
        .filter_map(|p| p.split('/').next())
        .filter(|t| !t.is_empty() && !t.ends_with(".dist-info") && !t.starts_with("..") && *t != "__pycache__")
        .map(|t| t.trim_end_matches(".py").to_string())
        .collect();
    tops.sort();
    tops.dedup();
    tops
}

/// The licence a LICENSE/COPYING file at the top of `dir` states.
fn licence_file(dir: &Path) -> Option<String> {
    let mut names: Vec<PathBuf> = std::fs::read_dir(dir).ok()?.filter_map(|e| e.ok().map(|e| e.path())).collect();
    names.sort();
    names.iter().filter(|p| p.is_file()).find_map(|p| {
        let n = p.file_name()?.to_string_lossy().to_uppercase();
        if n.starts_with("LICENSE") || n.starts_with("LICENCE") || n.starts_with("COPYING") {
            super::licence::from_licence_file(&read_text(p).ok()?)
        } else {
            None
        }
    })
}

/// The fields of a distribution's `METADATA` this module reads.
#[derive(Debug, Default)]
struct Metadata {
    name: Option<String>,
    version: Option<String>,
    expression: Option<String>,
    licence: Option<String>,
    classifiers: Vec<String>,
}

impl Metadata {
    /// The header block of a core-metadata file (RFC 822 style, up to the first blank line).
    fn parse(text: &str) -> Self {
        let mut m = Metadata::default();
        for line in text.lines().take_while(|l| !l.trim().is_empty()) {
            let Some((key, value)) = line.split_once(':') else { continue };
            let value = value.trim().to_string();
            match key {
                "Name" => m.name = Some(value),
                "Version" => m.version = Some(value),
                "License-Expression" => m.expression = Some(value),
                "License" => m.licence = Some(value),
                "Classifier" if value.starts_with("License ::") => m.classifiers.push(value),
                _ => {}
            }
        }
        m
    }

    /// The licence, best source first: an SPDX expression, the licence classifiers (several mean a choice), the free
    /// `License:` field.
    fn licence(&self) -> (String, String) {
        if let Some(e) = self.expression.as_ref().filter(|e| !e.is_empty()) {
            return (e.clone(), "License-Expression".into());
        }
        let classifiers: Vec<&str> = self
            .classifiers
            .iter()
            .map(String::as_str)
            .filter(|c| *c != "License :: OSI Approved" && !c.ends_with(":: Other/Proprietary License"))
            .collect();
        if !classifiers.is_empty() {
            return (classifiers.join(" OR "), "Classifier".into());
        }
        if self.classifiers.iter().any(|c| c.ends_with(":: Other/Proprietary License")) {
            return ("Other/Proprietary License".into(), "Classifier".into());
        }
        match self.licence.as_ref().filter(|l| !l.is_empty()) {
            Some(l) => (l.clone(), "License".into()),
            None => (String::new(), "none in METADATA".into()),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn write(path: &Path, text: &str) {
        std::fs::create_dir_all(path.parent().unwrap()).unwrap();
        std::fs::write(path, text).unwrap();
    }

    #[test]
    fn site_packages_distributions_own_their_modules() {
        let dir = std::env::temp_dir().join(format!("hnet-sitepkgs-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        write(
            &dir.join("foo_pkg-1.2.dist-info/METADATA"),
            "Metadata-Version: 2.1\nName: Foo_Pkg\nVersion: 1.2\nLicense-Expression: MIT\n\nbody: x\n",
        );
        write(&dir.join("foo_pkg-1.2.dist-info/top_level.txt"), "foo\nfoo_extra\n");
        write(&dir.join("foo/__init__.py"), "x = 1\n");
        write(&dir.join("foo/_vendor/six.py"), "y = 2\n");
        write(&dir.join("foo/tests/data/case.py"), "z = 3\n");
        write(&dir.join("foo/tests/test_a.py"), "def test(): pass\n");
        write(&dir.join("foo_extra.py"), "w = 4\n");
        write(
            &dir.join("bar-0.1.dist-info/METADATA"),
            "Name: bar\nVersion: 0.1\nClassifier: License :: OSI Approved :: GNU General Public License v3 (GPLv3)\n",
        );
        write(&dir.join("bar-0.1.dist-info/RECORD"), "bar/__init__.py,sha256=x,1\nbar-0.1.dist-info/METADATA,,\n");
        write(&dir.join("bar/__init__.py"), "b = 1\n");
        write(&dir.join("orphan/mod.py"), "o = 1\n");
        let mut skips = PathSkips::new();
        let pkgs = discover(&dir, &mut skips).unwrap();
        let names: Vec<&str> = pkgs.iter().map(|p| p.name.as_str()).collect();
        assert_eq!(names, ["bar", "foo-pkg", "orphan"]);
        let foo = &pkgs[1];
        assert_eq!((foo.version.as_deref(), foo.licence.as_str()), (Some("1.2"), "MIT"));
        assert_eq!(foo.files, ["foo/__init__.py", "foo/tests/test_a.py", "foo_extra.py"]);
        assert!(pkgs[0].licence.contains("GPL") && pkgs[0].licence_source == "Classifier");
        assert_eq!((pkgs[2].licence.as_str(), pkgs[2].licence_source.as_str()), ("", "none found"));
        assert_eq!(skips.values().sum::<usize>(), 2, "{skips:?}");
        std::fs::remove_dir_all(&dir).unwrap();
    }

    #[test]
    fn a_standard_library_splits_by_module_and_a_plain_tree_by_directory() {
        let dir = std::env::temp_dir().join(format!("hnet-stdlib-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        write(&dir.join("python3.11/os.py"), "import sys\n");
        write(&dir.join("python3.11/email/utils.py"), "def f(): pass\n");
        write(&dir.join("python3.11/site-packages/x/y.py"), "q = 1\n");
        let pkgs = discover(&dir.join("python3.11"), &mut PathSkips::new()).unwrap();
        let names: Vec<&str> = pkgs.iter().map(|p| p.name.as_str()).collect();
        assert_eq!(names, ["python-stdlib/email", "python-stdlib/os"]);
        assert_eq!((pkgs[0].version.as_deref(), pkgs[0].licence.as_str()), (Some("3.11"), "PSF-2.0"));
        write(&dir.join("tree/LICENSE"), "MIT License\n");
        write(&dir.join("tree/proj/a.py"), "a = 1\n");
        write(&dir.join("tree/loose.py"), "l = 1\n");
        let pkgs = discover(&dir.join("tree"), &mut PathSkips::new()).unwrap();
        let got: Vec<(&str, &str)> = pkgs.iter().map(|p| (p.name.as_str(), p.licence.as_str())).collect();
        assert_eq!(got, [("proj", "MIT"), ("tree", "MIT")]);
        std::fs::remove_dir_all(&dir).unwrap();
    }

    #[test]
    fn names_normalise_as_pip_does() {
        assert_eq!(normalise("Foo_Bar.baz--Qux"), "foo-bar-baz-qux");
    }
}
