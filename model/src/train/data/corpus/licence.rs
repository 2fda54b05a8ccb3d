//! Which licences the corpus takes: permissive ones only (MIT, BSD, Apache, PSF, ISC, …). A package whose metadata
//! names no licence, or a copyleft or proprietary one, is left out and listed in the manifest with its licence.

/// What a licence string allows.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Verdict {
    /// Permissive: the package's code may be trained on and its weights shipped.
    Permissive,
    /// Copyleft, proprietary or unrecognised: left out.
    NotPermissive,
    /// The metadata says nothing: left out unless the user vouches for the data.
    Unknown,
}

/// Words of permissive licences, as SPDX ids, PyPI classifiers and free-text `License:` fields spell them.
const PERMISSIVE: [&str; 16] = [
    "mit",
    "bsd",
    "apache",
    "psf",
    "python software foundation",
    "python-2.0",
    "isc",
    "unlicense",
    "zlib",
    "0bsd",
    "cc0",
    "hpnd",
    "public domain",
    "historical permission",
    "mit-cmu",
    "boost",
];

/// Words that make a licence not permissive, even beside a permissive one in an `AND`.
const NOT_PERMISSIVE: [&str; 10] = ["gpl", "lgpl", "agpl", "mpl", "mozilla", "epl", "eclipse", "proprietary", "commercial", "cc-by-nc"];

/// Classifies a licence: an SPDX expression (`MIT OR Apache-2.0`, `BSD-3-Clause AND GPL-3.0`), a classifier
/// (`License :: OSI Approved :: MIT License`) or a free-text field. `OR` takes the best alternative, `AND` the worst;
/// a long free-text field (a pasted licence) is judged by its first lines.
pub fn classify(licence: &str) -> Verdict {
    let text = licence.trim();
    if text.is_empty() || text.eq_ignore_ascii_case("unknown") || text.eq_ignore_ascii_case("none") {
        return Verdict::Unknown;
    }
    let head: String = text.lines().take(3).collect::<Vec<_>>().join(" ").to_lowercase();
    let alternatives: Vec<&str> = head.split(" or ").collect();
    let best = alternatives.iter().map(|alt| {
        let parts: Vec<&str> = alt.split(" and ").collect();
        parts.iter().map(|p| one(p)).fold(Verdict::Permissive, worst)
    });
    best.fold(Verdict::NotPermissive, |a, b| if a == Verdict::Permissive || b == Verdict::Permissive { Verdict::Permissive } else { a })
}

fn one(part: &str) -> Verdict {
    if NOT_PERMISSIVE.iter().any(|w| part.contains(w)) {
        Verdict::NotPermissive
    } else if PERMISSIVE.iter().any(|w| part.contains(w)) {
        Verdict::Permissive
    } else {
        Verdict::NotPermissive
    }
}

fn worst(a: Verdict, b: Verdict) -> Verdict {
    if a == Verdict::NotPermissive || b == Verdict::NotPermissive {
        Verdict::NotPermissive
    } else {
        Verdict::Permissive
    }
}

/// The licence a LICENSE/COPYING file states, from its first lines (`MIT License`, `Apache License`, `BSD 3-Clause`,
/// …), as a short name; `None` when the text names none this module knows.
pub fn from_licence_file(text: &str) -> Option<String> {
    let head = text.lines().take(12).collect::<Vec<_>>().join(" ").to_lowercase();
    let names = [
        ("gnu affero", "AGPL"),
        ("gnu lesser", "LGPL"),
        ("gnu general public", "GPL"),
        ("mozilla public", "MPL"),
        ("apache license", "Apache-2.0"),
        ("mit license", "MIT"),
        ("permission is hereby granted, free of charge", "MIT"),
        ("redistribution and use in source and binary forms", "BSD"),
        ("python software foundation", "PSF-2.0"),
        ("isc license", "ISC"),
        ("unlicense", "Unlicense"),
    ];
    names.iter().find(|(words, _)| head.contains(words)).map(|(_, name)| name.to_string())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn permissive_copyleft_and_unknown() {
        for l in ["MIT", "BSD-3-Clause", "Apache-2.0", "License :: OSI Approved :: BSD License", "PSF-2.0", "MIT OR GPL-3.0-only", "ISC"] {
            assert_eq!(classify(l), Verdict::Permissive, "{l}");
        }
        for l in ["GPL-3.0", "LGPLv3", "MPL-2.0", "BSD-3-Clause AND GPL-2.0", "Proprietary", "Some Custom Licence"] {
            assert_eq!(classify(l), Verdict::NotPermissive, "{l}");
        }
        for l in ["", "UNKNOWN", "  "] {
            assert_eq!(classify(l), Verdict::Unknown, "{l:?}");
        }
    }

    #[test]
    fn licence_files_are_named_by_their_first_lines() {
        assert_eq!(from_licence_file("MIT License\n\nCopyright (c) 2020 x").as_deref(), Some("MIT"));
        assert_eq!(from_licence_file("                                 Apache License\n Version 2.0").as_deref(), Some("Apache-2.0"));
        assert_eq!(from_licence_file("GNU GENERAL PUBLIC LICENSE\nVersion 3").as_deref(), Some("GPL"));
        assert_eq!(from_licence_file("All rights reserved."), None);
    }
}
