//! Python syntax without Python: parse checks, statement starts and line starts, from the pure-Rust
//! `rustpython-parser` (it builds for wasm32, so the browser's statement overlay uses the same code).

use rustpython_parser::ast::{self, Ranged};
use rustpython_parser::{parse, Mode};

/// `Ok(())` when `source` is a valid Python module, else the parser's message.
pub fn check(source: &str) -> Result<(), String> {
    parse(source, Mode::Module, "<completion>").map(|_| ()).map_err(|e| e.to_string())
}

/// Whether `source` parses.
pub fn is_valid(source: &str) -> bool {
    check(source).is_ok()
}

/// Byte offsets where statements begin (every statement, nested ones included), sorted and unique.
/// `None` when the source does not parse.
pub fn statement_starts(source: &str) -> Option<Vec<usize>> {
    let ast::Mod::Module(module) = parse(source, Mode::Module, "<source>").ok()? else { return None };
    let mut out = Vec::new();
    collect(&module.body, &mut out);
    out.sort_unstable();
    out.dedup();
    Some(out)
}

fn collect(body: &[ast::Stmt], out: &mut Vec<usize>) {
    for stmt in body {
        out.push(stmt.start().to_usize());
        match stmt {
            ast::Stmt::FunctionDef(s) => collect(&s.body, out),
            ast::Stmt::AsyncFunctionDef(s) => collect(&s.body, out),
            ast::Stmt::ClassDef(s) => collect(&s.body, out),
            ast::Stmt::For(s) => {
                collect(&s.body, out);
                collect(&s.orelse, out);
            }
            ast::Stmt::AsyncFor(s) => {
                collect(&s.body, out);
                collect(&s.orelse, out);
            }
            ast::Stmt::While(s) => {
                collect(&s.body, out);
                collect(&s.orelse, out);
            }
            ast::Stmt::If(s) => {
                collect(&s.body, out);
                collect(&s.orelse, out);
            }
            ast::Stmt::With(s) => collect(&s.body, out),
            ast::Stmt::AsyncWith(s) => collect(&s.body, out),
            ast::Stmt::Match(s) => s.cases.iter().for_each(|c| collect(&c.body, out)),
            ast::Stmt::Try(s) => {
                collect(&s.body, out);
                s.handlers.iter().for_each(|ast::ExceptHandler::ExceptHandler(h)| collect(&h.body, out));
                collect(&s.orelse, out);
                collect(&s.finalbody, out);
            }
            ast::Stmt::TryStar(s) => {
                collect(&s.body, out);
                s.handlers.iter().for_each(|ast::ExceptHandler::ExceptHandler(h)| collect(&h.body, out));
                collect(&s.orelse, out);
                collect(&s.finalbody, out);
            }
            _ => {}
        }
    }
}

/// Byte offsets of the first non-blank character of every non-blank line.
pub fn line_starts(source: &str) -> Vec<usize> {
    let mut out = Vec::new();
    let mut offset = 0;
    for line in source.split_inclusive('\n') {
        if let Some(i) = line.find(|c: char| !c.is_whitespace()) {
            out.push(offset + i);
        }
        offset += line.len();
    }
    out
}

/// Makes a truncated completion of a function body checkable: keeps `prompt + completion` up to its last complete
/// line, and closes a block left without a body with `pass` — so running out of tokens is not a syntax error.
pub fn close_truncated(prompt: &str, completion: &str) -> String {
    let full = format!("{prompt}{completion}");
    let cut = match full.rfind('\n') {
        Some(i) if i >= prompt.len().saturating_sub(1) => &full[..=i],
        _ => prompt,
    };
    let mut code = cut.to_string();
    if !is_valid(&code) {
        // A block opener as the last line (the header itself, or a nested `if …:`) needs a body.
        if let Some(last) = code.lines().rev().find(|l| !l.trim().is_empty()) {
            if last.trim_end().ends_with(':') {
                let indent = last.len() - last.trim_start().len();
                code.push_str(&format!("{}pass\n", " ".repeat(indent + 4)));
            }
        }
    }
    code
}

/// The header of a function record: its `def` line(s) and docstring, i.e. what a user types before the body.
pub fn function_header(code: &str) -> Option<String> {
    let lines: Vec<&str> = code.lines().collect();
    let def = lines.iter().position(|l| l.trim_start().starts_with("def ") || l.trim_start().starts_with("async def "))?;
    let mut end = (def..lines.len()).find(|&i| lines[i].trim_end().ends_with(':'))? + 1;
    // Include a docstring that opens the body.
    if let Some(first) = lines.get(end) {
        let t = first.trim_start();
        for q in ["\"\"\"", "'''"] {
            if t.starts_with(q) {
                let close =
                    if t.len() > 3 && t[3..].contains(q) { Some(end) } else { (end + 1..lines.len()).find(|&i| lines[i].contains(q)) };
                if let Some(c) = close {
                    end = c + 1;
                }
            }
        }
    }
    (end < lines.len()).then(|| lines[..end].join("\n") + "\n")
}

/// How chunk boundaries line up with reference offsets (line or statement starts), with the chance baseline: the
/// same number of boundaries placed uniformly at random among the same tokens. A ratio over zero items is `None`
/// (serialised as `null`), never 0 or 1.
#[derive(Debug, Clone, Default, PartialEq, serde::Serialize)]
pub struct BoundaryMatch {
    /// Boundary tokens that hit a reference offset / boundary tokens.
    pub precision: Option<f64>,
    /// Reference offsets hit by a boundary token / reference offsets.
    pub recall: Option<f64>,
    /// Expected precision of `predicted` boundaries placed at random.
    pub chance_precision: Option<f64>,
    /// Expected recall of `predicted` boundaries placed at random.
    pub chance_recall: Option<f64>,
    /// Boundary tokens counted.
    pub predicted: usize,
    /// Reference offsets counted.
    pub reference: usize,
    /// Boundary tokens that hit a reference offset.
    pub predicted_hits: usize,
    /// Reference offsets that were hit.
    pub reference_hits: usize,
    /// Expected `predicted_hits` at random.
    pub chance_predicted_hits: f64,
    /// Expected `reference_hits` at random.
    pub chance_reference_hits: f64,
}

fn ratio(num: f64, den: usize) -> Option<f64> {
    (den > 0).then(|| num / den as f64)
}

impl BoundaryMatch {
    fn from_counts(predicted: usize, reference: usize, hits: (usize, usize), chance: (f64, f64)) -> Self {
        BoundaryMatch {
            precision: ratio(hits.0 as f64, predicted),
            recall: ratio(hits.1 as f64, reference),
            chance_precision: ratio(chance.0, predicted),
            chance_recall: ratio(chance.1, reference),
            predicted,
            reference,
            predicted_hits: hits.0,
            reference_hits: hits.1,
            chance_predicted_hits: chance.0,
            chance_reference_hits: chance.1,
        }
    }

    /// Pools counts over several texts (micro-average).
    pub fn pooled(parts: &[BoundaryMatch]) -> BoundaryMatch {
        let sum = |f: fn(&BoundaryMatch) -> usize| parts.iter().map(f).sum::<usize>();
        let fsum = |f: fn(&BoundaryMatch) -> f64| parts.iter().map(f).sum::<f64>();
        Self::from_counts(
            sum(|m| m.predicted),
            sum(|m| m.reference),
            (sum(|m| m.predicted_hits), sum(|m| m.reference_hits)),
            (fsum(|m| m.chance_predicted_hits), fsum(|m| m.chance_reference_hits)),
        )
    }
}

/// Scores boundaries (`spans` of tokens, `boundary` flags) against reference offsets. The first token is always a
/// boundary and is left out, as are reference offsets inside it.
pub fn match_boundaries(spans: &[(usize, usize)], boundary: &[bool], reference: &[usize]) -> BoundaryMatch {
    let first_end = spans.first().map_or(0, |s| s.1);
    let reference: Vec<usize> = reference.iter().copied().filter(|&o| o >= first_end).collect();
    let candidates: Vec<(usize, usize)> = spans.iter().skip(1).copied().collect();
    let predicted: Vec<(usize, usize)> = spans.iter().zip(boundary).skip(1).filter(|(_, &b)| b).map(|(s, _)| *s).collect();
    let hits = |span: &(usize, usize)| reference.iter().any(|&o| span.0 <= o && o < span.1);
    let covered = |o: usize, among: &[(usize, usize)]| among.iter().any(|s| s.0 <= o && o < s.1);
    let tp_pred = predicted.iter().filter(|s| hits(s)).count();
    let tp_ref = reference.iter().filter(|&&o| covered(o, &predicted)).count();
    // At random, each candidate token is a boundary with probability predicted / candidates.
    let p = if candidates.is_empty() { 0.0 } else { predicted.len() as f64 / candidates.len() as f64 };
    let hit_tokens = candidates.iter().filter(|s| hits(s)).count() as f64;
    let reachable = reference.iter().filter(|&&o| covered(o, &candidates)).count() as f64;
    BoundaryMatch::from_counts(predicted.len(), reference.len(), (tp_pred, tp_ref), (p * hit_tokens, p * reachable))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn boundary_matches_come_with_a_chance_baseline_and_say_n_a_over_nothing() {
        // Tokens: "ab" "c" "\nd" "e" "\nf"; reference offsets (line starts) at 3 and 6.
        let spans = [(0, 2), (2, 3), (3, 5), (5, 6), (6, 8)];
        let m = match_boundaries(&spans, &[true, false, true, false, true], &[0, 3, 6]);
        assert_eq!((m.precision, m.recall), (Some(1.0), Some(1.0)));
        // Two of the four candidate tokens hit a line start: random boundaries score 0.5 precision, and with two
        // boundaries among four tokens each line start is found half the time.
        assert_eq!((m.chance_precision, m.chance_recall), (Some(0.5), Some(0.5)));
        let none = match_boundaries(&spans, &[true, false, false, false, false], &[0, 3, 6]);
        assert_eq!((none.precision, none.recall, none.chance_precision), (None, Some(0.0), None));
        let pooled = BoundaryMatch::pooled(&[m.clone(), none]);
        assert_eq!((pooled.predicted, pooled.precision, pooled.recall), (2, Some(1.0), Some(0.5)));
        assert_eq!(BoundaryMatch::pooled(&[]).precision, None);
    }

    #[test]
    fn parse_checks() {
        assert!(is_valid("def add(a, b):\n    return a + b\n"));
        assert!(!is_valid("def add(a, b):\n    return a +\n"));
        assert!(is_valid("match x:\n    case 1:\n        pass\n"));
        assert!(check("def f(:\n").unwrap_err().len() > 3);
    }

    #[test]
    fn statement_and_line_starts() {
        let src = "import os\n\ndef f(x):\n    if x:\n        return 1\n    return 2\n";
        let starts = statement_starts(src).unwrap();
        let at: Vec<&str> = starts.iter().map(|&o| &src[o..o + 6]).collect();
        assert_eq!(at, vec!["import", "def f(", "if x:\n", "return", "return"]);
        assert_eq!(line_starts(src), vec![0, 11, 25, 39, 52]);
        assert!(statement_starts("def (").is_none());
    }

    #[test]
    fn truncated_completions_are_closed() {
        let prompt = "def f(x):\n";
        // Cut mid-line: only complete lines are kept.
        assert_eq!(close_truncated(prompt, "    y = x + 1\n    return y *"), "def f(x):\n    y = x + 1\n");
        // Nothing complete: the header gets a `pass` body.
        let closed = close_truncated(prompt, "    retu");
        assert_eq!(closed, "def f(x):\n    pass\n");
        assert!(is_valid(&closed));
        // A nested block left open.
        let closed = close_truncated(prompt, "    if x:\n        ret");
        assert!(is_valid(&closed), "{closed}");
        // Real syntax errors stay errors.
        assert!(!is_valid(&close_truncated(prompt, "    return )(\n")));
    }

    #[test]
    fn headers_include_the_docstring() {
        let code = "def f(x):\n    \"\"\"Double.\n\n    More.\n    \"\"\"\n    return 2 * x\n";
        assert_eq!(function_header(code).unwrap(), "def f(x):\n    \"\"\"Double.\n\n    More.\n    \"\"\"\n");
        assert_eq!(function_header("def g(\n    a,\n):\n    return a\n").unwrap(), "def g(\n    a,\n):\n");
        assert!(function_header("def h(): pass").is_none());
    }

    #[test]
    fn boundary_precision_and_recall() {
        // Tokens: "x" " =" " 1" "\n" "y" " =" " 2"; boundaries at tokens 0, 3, 4.
        let spans = [(0, 1), (1, 3), (3, 5), (5, 6), (6, 7), (7, 9), (9, 11)];
        let boundary = [true, false, false, true, true, false, false];
        let m = match_boundaries(&spans, &boundary, &line_starts("x = 1\ny = 2"));
        // Predicted (excluding the first token): "\n" (misses) and "y" (hits line start 6): precision 1/2;
        // reference (excluding offset 0): {6}: recall 1.
        assert_eq!((m.precision, m.recall, m.predicted, m.reference), (Some(0.5), Some(1.0), 2, 1));
        let pooled = BoundaryMatch::pooled(&[m.clone(), m]);
        assert_eq!((pooled.precision, pooled.recall, pooled.predicted), (Some(0.5), Some(1.0), 4));
    }
}
