//! Python source files as records: top-level functions and classes with their docstrings. An indentation scanner,
//! not a parser — what it must get right is where a block ends.

use super::Record;

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
                let next =
                    [("\"\"\"", rest.find("\"\"\"")), ("'''", rest.find("'''"))].into_iter().filter_map(|(q, at)| at.map(|a| (a, q))).min();
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
