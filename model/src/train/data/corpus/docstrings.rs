//! Docstrings cut to their summary line, for the training side of a corpus (`data prepare --docstrings summary`).
//!
//! Library code documents nearly every function with a docstring of many lines (parameters, returns, examples); a
//! small model trained on it learns that after `def f(x):` comes a long docstring, and spends a completion's
//! tokens writing one. Cutting each multi-line docstring to its first line of text (PEP 257's summary line)
//! keeps the habit of documenting and the words that tie a name to its code, and moves the model's next tokens
//! to the body. The file stays valid Python: only the string's text changes.

use serde::{Deserialize, Serialize};

use crate::util::pylex::long_strings;

/// What preparation does with the training side's docstrings.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Docstrings {
    /// As written.
    #[default]
    Keep,
    /// A multi-line docstring becomes its first line of text, quoted on one line.
    Summary,
}

impl std::str::FromStr for Docstrings {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, String> {
        match s {
            "keep" => Ok(Docstrings::Keep),
            "summary" => Ok(Docstrings::Summary),
            _ => Err(format!("{s:?}: expected keep or summary")),
        }
    }
}

impl Docstrings {
    /// `text` with this rule applied.
    pub fn apply(self, text: &str) -> std::borrow::Cow<'_, str> {
        match self {
            Docstrings::Keep => text.into(),
            Docstrings::Summary => summarise(text),
        }
    }
}

/// `text` with every multi-line docstring cut to its summary line. A docstring is a triple-quoted string that is a
/// statement of its own (only indentation and a string prefix before it on its line, nothing after it) and the
/// first of its body: the line before it (blank lines aside) ends with `:` (`def`, `class`, a wrapped signature's
/// `) -> T:`), or nothing but comments comes before it (the module's). A summary that would end in a quote or a
/// backslash (it would run into the closing quotes) leaves its docstring as written.
pub fn summarise(text: &str) -> std::borrow::Cow<'_, str> {
    let mut out = String::new();
    let mut copied = 0;
    // Where the first line of code begins: a string before it is the module's docstring.
    let mut code = 0;
    for line in text.split_inclusive('\n') {
        if !(line.trim().is_empty() || line.trim_start().starts_with('#')) {
            break;
        }
        code += line.len();
    }
    for span in long_strings(text) {
        let line_start = text[..span.start].rfind('\n').map_or(0, |i| i + 1);
        let lead = &text[line_start..span.start];
        let prefix = lead.trim_start_matches([' ', '\t']);
        let line_end = text[span.end..].find('\n').map_or(text.len(), |i| span.end + i);
        let alone = matches!(prefix, "" | "r" | "R" | "u" | "U") && text[span.end..line_end].trim().is_empty();
        let before = text[..line_start].trim_end();
        let first = before.ends_with(':') || line_start <= code;
        if !alone || !first {
            continue;
        }
        let quotes = &text[span.start..span.start + 3];
        let body = &text[span.start + 3..span.end - 3];
        if !body.contains('\n') {
            continue;
        }
        let Some(summary) = body.lines().map(str::trim).find(|l| !l.is_empty()) else { continue };
        if summary.ends_with(['"', '\'', '\\']) {
            continue;
        }
        out.push_str(&text[copied..span.start]);
        out.push_str(quotes);
        out.push_str(summary);
        out.push_str(quotes);
        copied = span.end;
    }
    if copied == 0 {
        return text.into();
    }
    out.push_str(&text[copied..]);
    out.into()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn multi_line_docstrings_keep_their_summary_line() {
        let text = "\"\"\"The module.\n\nMore.\n\"\"\"\nimport os\n\n\ndef f(x):\n    \"\"\"\n    Returns x.\n\n    Parameters\n    ==========\n    x : int\n    \"\"\"\n    return x\n\n\nclass A(\n    B,\n):\n    r'''Raw \\d.\n    '''\n";
        let want = "\"\"\"The module.\"\"\"\nimport os\n\n\ndef f(x):\n    \"\"\"Returns x.\"\"\"\n    return x\n\n\nclass A(\n    B,\n):\n    r'''Raw \\d.'''\n";
        assert_eq!(summarise(text), want);
        assert_eq!(Docstrings::Keep.apply(text), text);
    }

    #[test]
    fn other_strings_and_one_line_docstrings_are_left_as_written() {
        for text in [
            "def f():\n    \"\"\"One line.\"\"\"\n",
            "x = \"\"\"a\nb\"\"\"\n",
            "def f():\n    return \"\"\"a\nb\"\"\"\n",
            "def f():\n    x = 1\n    \"\"\"a\n    b\"\"\"\n",
            "def f():\n    \"\"\"a\n    b\"\"\".strip()\n",
            "def f():\n    f\"\"\"a\n    b\"\"\"\n",
            "def f():\n    \"\"\"Ends in a \"quote\"\n    b\"\"\"\n",
            "def f():\n    \"\"\"\n\n    \"\"\"\n",
            "# \"\"\"not\n# a string\"\"\"\n",
        ] {
            assert_eq!(summarise(text), text, "{text:?}");
        }
        // What follows a first line of code is not the module's docstring.
        assert_eq!(summarise("import os\n'''a\nb'''\n"), "import os\n'''a\nb'''\n");
        // Comments (a licence header) may come before the module's.
        assert_eq!(summarise("# MIT\n\n'''a\nb'''\n"), "# MIT\n\n'''a'''\n");
    }
}
