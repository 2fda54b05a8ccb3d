//! Where a code completion ends, as an editor's ghost text does: at the end of the line (`Line`), or at the end of
//! the block being written (`Block`: a blank line, or a line indented less than the block's first line), or only at
//! the token limit (`Free`). Stop strings and the tokenizer's stop tokens end every scope.
//!
//! The rule reads the completion text together with the prompt's last line (the line the cursor is on), so that a
//! completion that goes on the cursor's line is indented as that line, and one that starts a new line after
//! `def f():` takes the indentation of its first written line as the block's.
//!
//! Lines that begin inside a triple-quoted string (a docstring) are the string's text, not the code's layout: a
//! blank or less indented line there ends nothing, as a person writing the docstring would not stop at its first
//! paragraph. Whether the cursor itself is inside one is read from the whole text before it ([`Cursor::after`]).
//!
//! A completion that has begun to loop (the same piece of text over and over: `_is_is_is…`, one line again and
//! again) ends after the piece's first copy ([`repetition`]), as editors' clients cut their models' loops (Copilot's
//! repetition filter, Tabby's `removeLineEndsWithRepetition`): a person does not write on past that point.

use serde::{Deserialize, Serialize};

use crate::util::pylex::Lex;

/// How much a completion may write.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Scope {
    /// The rest of the line, or the next line when the cursor's line is done (after `def f():`).
    Line,
    /// The block being written: ends before a blank line or a line indented less than its first line.
    #[default]
    Block,
    /// No rule: stop strings, stop tokens and the token limit only.
    Free,
}

impl std::str::FromStr for Scope {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, String> {
        match s {
            "line" => Ok(Scope::Line),
            "block" => Ok(Scope::Block),
            "free" | "none" => Ok(Scope::Free),
            other => Err(format!("unknown scope `{other}` (expected line, block or free)")),
        }
    }
}

/// Everything that ends a completion besides the model's stop tokens.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct StopRules {
    /// How much to write.
    pub scope: Scope,
    /// Strings that end the completion (not emitted); empty ones are ignored.
    pub strings: Vec<String>,
}

impl StopRules {
    /// No rule but `strings`.
    pub fn strings(strings: &[String]) -> Self {
        Self { scope: Scope::Free, strings: strings.to_vec() }
    }

    /// No rule at all: the token limit and the model's stop tokens end it.
    pub fn none() -> Self {
        Self::strings(&[])
    }
}

/// What a completion continues: the cursor's line, and whether the cursor is in a string or comment.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Cursor {
    /// The text before the cursor on its line.
    pub line: String,
    lex: Lex,
}

impl Cursor {
    /// The cursor after `before`, the text before it.
    pub fn after(before: &str) -> Self {
        let line = before.rsplit('\n').next().unwrap_or_default();
        Self { line: line.to_string(), lex: Lex::Code.after(before) }
    }
}

/// What the scope rule says about a completion so far.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Verdict {
    /// The completion ends at this byte offset (what follows is not part of it).
    End(usize),
    /// Not decided; text up to this offset is part of the completion whatever comes next.
    Open(usize),
}

/// The indentation width of `line` (a tab to the next multiple of 8, as Python counts) and whether it has anything
/// but whitespace.
fn indentation(line: &str) -> (usize, bool) {
    let mut width = 0;
    for c in line.chars() {
        match c {
            ' ' => width += 1,
            '\t' => width = (width / 8 + 1) * 8,
            '\r' => {}
            _ => return (width, true),
        }
    }
    (width, false)
}

/// Applies `scope` to `text`, the completion so far, written at `cursor`.
pub fn verdict(scope: Scope, cursor: &Cursor, text: &str) -> Verdict {
    if scope == Scope::Free {
        return Verdict::Open(text.len());
    }
    let (cursor_indent, cursor_has_code) = indentation(&cursor.line);
    let mut block_indent: Option<usize> = None;
    let mut written = false; // some of the completion's own text is not whitespace
    let mut lex = cursor.lex;
    let mut start = 0;
    for (i, line) in text.split('\n').enumerate() {
        let terminated = start + line.len() < text.len();
        let in_string = matches!(lex, Lex::Long(_));
        lex = lex.after(&text[start..(start + line.len() + 1).min(text.len())]);
        if in_string && !(scope == Scope::Line && written && i > 0) {
            // The string's text: its layout is not the code's (the closing quotes' line included).
            written |= !line.trim().is_empty();
            if !terminated {
                return Verdict::Open(text.len());
            }
            start += line.len() + 1;
            continue;
        }
        let (indent, has_code) = if i == 0 {
            // The cursor's line: its indentation is the prompt's, unless the prompt's part is blank.
            let (own, has_code) = indentation(line);
            (if cursor_has_code { cursor_indent } else { cursor_indent + own }, has_code)
        } else {
            indentation(line)
        };
        // A blank line ends a line and a block, also before any code (then there is nothing to show).
        if i > 0 && !has_code && terminated {
            return Verdict::End(start - 1);
        }
        match scope {
            Scope::Line if written && i > 0 => return Verdict::End(start - 1),
            Scope::Block if has_code => match block_indent {
                Some(b) if indent < b => return Verdict::End(start - 1),
                None => block_indent = Some(indent),
                _ => {}
            },
            _ => {}
        }
        written |= has_code;
        if !terminated {
            // The last line: undecided while it holds only whitespace (it may yet turn out blank or dedented), so
            // it and the newline before it are held back.
            let open = if has_code || i == 0 { text.len() } else { start - 1 };
            return Verdict::Open(open);
        }
        start += line.len() + 1;
    }
    Verdict::Open(text.len())
}

/// A unit shorter than this is not a loop: `))`, `==`, indentation and the like repeat in ordinary code.
const MIN_UNIT: usize = 3;
/// A unit this long or longer (a line, say) is a loop from [`LONG_COPIES`] copies; a shorter one from
/// [`SHORT_COPIES`] (a literal such as `[0, 0, 0, 0]` is ordinary code).
const LONG_UNIT: usize = 10;
const SHORT_COPIES: usize = 8;
const LONG_COPIES: usize = 4;
/// Bytes at the end of a completion looked at for a loop (a unit found is shorter).
const LOOP_WINDOW: usize = 1024;

/// A completion's text that ends in copies of one unit.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Repetition {
    /// Enough copies to be a loop: the completion ends at this byte offset, after the first copy.
    Loop(usize),
    /// A repeat begun, not yet a loop: what follows the first copy (this offset) is held back until the text either
    /// goes on to a loop or turns away from it (so that a loop's copies are never shown, not even the start of one).
    Suspect(usize),
}

/// Whether `text`, a completion so far, ends in repeated copies of a unit (at least [`MIN_UNIT`] bytes, not all
/// whitespace, not itself repeating a shorter unit). Only the line and block scopes look for loops.
pub fn repetition(scope: Scope, text: &str) -> Option<Repetition> {
    if scope == Scope::Free {
        return None;
    }
    let t = text.as_bytes();
    let n = t.len();
    let lo = n.saturating_sub(LOOP_WINDOW);
    let (mut looped, mut suspect) = (None::<usize>, None::<usize>);
    for p in MIN_UNIT..n - lo {
        // The bytes at the end that equal the byte one unit before them: all that follows the first copy.
        let repeats = (lo + p..n).rev().take_while(|&i| t[i] == t[i - p]).count();
        if repeats == 0 {
            continue;
        }
        let first_copy_end = n - repeats;
        let unit = &t[first_copy_end - p..first_copy_end];
        let smaller_period = (1..p).any(|q| p % q == 0 && (q..p).all(|i| unit[i] == unit[i - q]));
        if smaller_period || unit.iter().all(u8::is_ascii_whitespace) {
            continue;
        }
        let needed = if p >= LONG_UNIT { LONG_COPIES } else { SHORT_COPIES };
        let slot = if repeats / p + 1 >= needed { &mut looped } else { &mut suspect };
        *slot = Some(slot.map_or(first_copy_end, |e| e.min(first_copy_end)));
    }
    looped.map(Repetition::Loop).or(suspect.map(Repetition::Suspect))
}

/// True when a completion has nothing to show (whitespace only): the caller says "no completion" instead.
pub fn is_blank(text: &str) -> bool {
    text.trim().is_empty()
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The completion a scope keeps of `text` once it is all written.
    fn kept(scope: Scope, before: &str, text: &str) -> String {
        match verdict(scope, &Cursor::after(before), text) {
            Verdict::End(at) => text[..at].to_string(),
            Verdict::Open(_) => text.to_string(),
        }
    }

    #[test]
    fn a_block_ends_before_a_blank_line_or_a_dedent() {
        let body = "\n    return n % 2 == 0\n\ndef odd(n):\n";
        assert_eq!(kept(Scope::Block, "def is_even(n):", body), "\n    return n % 2 == 0");
        let dedent = "\n    if n:\n        return 1\n    return 0\ndef g():";
        assert_eq!(kept(Scope::Block, "def f(n):", dedent), "\n    if n:\n        return 1\n    return 0");
        // Written from inside an indented line: the line's indentation is the block's.
        assert_eq!(kept(Scope::Block, "    x = foo(", "a, b)\n    y = 2\nz = 3"), "a, b)\n    y = 2");
        // A blank line before any code also ends it: nothing to show.
        assert!(is_blank(&kept(Scope::Block, "def f():", "\n\n\n    return 1")));
        // The cursor at the start of an empty line: the first line's own indentation counts.
        assert_eq!(kept(Scope::Block, "", "    y = 2\n    z = 3\nw"), "    y = 2\n    z = 3");
        assert_eq!(kept(Scope::Block, "    ", "y = 2\nz = 3"), "y = 2");
    }

    #[test]
    fn a_line_ends_at_the_first_newline_after_code() {
        assert_eq!(kept(Scope::Line, "x = foo(", "a, b)\ny = 2"), "a, b)");
        // After a finished line, the next one.
        assert_eq!(kept(Scope::Line, "def is_even(n):", "\n    return n % 2 == 0\n    "), "\n    return n % 2 == 0");
        assert_eq!(kept(Scope::Free, "def f():", "\n    a\n\nb"), "\n    a\n\nb");
    }

    #[test]
    fn undecided_whitespace_is_held_back_and_code_is_not() {
        // A trailing newline and indentation may be the start of a dedent: not shown yet.
        assert_eq!(verdict(Scope::Block, &Cursor::after("def f():"), "\n    a = 1\n    "), Verdict::Open("\n    a = 1".len()));
        assert_eq!(verdict(Scope::Block, &Cursor::after("def f():"), "\n    a = 1\n    b"), Verdict::Open("\n    a = 1\n    b".len()));
        assert_eq!(verdict(Scope::Block, &Cursor::after("def f():"), "\n   "), Verdict::Open(0));
        assert_eq!(verdict(Scope::Free, &Cursor::after(""), "\n\n"), Verdict::Open(2));
    }

    #[test]
    fn tabs_count_to_the_next_multiple_of_eight() {
        assert_eq!(indentation("\tx"), (8, true));
        assert_eq!(indentation("  \t x"), (9, true));
        assert_eq!(kept(Scope::Block, "def f():", "\n\tif a:\n\t\tb\n    c"), "\n\tif a:\n\t\tb");
    }

    #[test]
    fn a_docstring_is_text_whose_blank_and_dedented_lines_end_nothing() {
        let doc = "\n    \"\"\"Is n even?\n\nExamples:\n    >>> is_even(2)\n    \"\"\"\n    return n % 2 == 0\n\ndef odd(n):";
        let body = "\n    \"\"\"Is n even?\n\nExamples:\n    >>> is_even(2)\n    \"\"\"\n    return n % 2 == 0";
        assert_eq!(kept(Scope::Block, "def is_even(n):", doc), body);
        // Single quotes, and the cursor already inside the docstring (known from the text before its line).
        let inside = "Is n even?\n\n    '''\n    return n % 2 == 0\n\nx";
        assert_eq!(kept(Scope::Block, "def is_even(n):\n    '''", inside), "Is n even?\n\n    '''\n    return n % 2 == 0");
        assert_eq!(kept(Scope::Block, "def is_even(n):\n    '''\n", "Is n even?\n\n    '''\n\n"), "Is n even?\n\n    '''");
        // Triple quotes in a one-line string, after an escape, or in a comment open nothing.
        for line in ["    s = '\"\"\"'", "    s = \"\\\"\"\"\"", "    # see \"\"\""] {
            let text = format!("\n{line}\n\n    return s");
            assert_eq!(kept(Scope::Block, "def f():", &text), format!("\n{line}"), "{line}");
        }
        assert_eq!(kept(Scope::Block, "def f():  # \"\"\"", "\n    a\n\n    b"), "\n    a", "the cursor's line is a comment");
        // While the docstring is open, its text is shown as written (nothing to hold back for a dedent).
        let open = "\n    \"\"\"A\n\n";
        assert_eq!(verdict(Scope::Block, &Cursor::after("def f():"), open), Verdict::Open(open.len()));
        // A line completion still ends after its first written line.
        assert_eq!(kept(Scope::Line, "def f():", "\n    \"\"\"A\n\n    B\n    \"\"\""), "\n    \"\"\"A");
    }

    #[test]
    fn a_loop_ends_after_its_first_copy() {
        let ended = |text: &str| match repetition(Scope::Block, text) {
            Some(Repetition::Loop(at)) => Some(text[..at].to_string()),
            _ => None,
        };
        // A short unit from eight copies, a line (or several) from four.
        assert_eq!(ended(&format!("\n    return n{}", "_is".repeat(8))).as_deref(), Some("\n    return n_is"));
        assert_eq!(ended(&format!("\n    return n{}", "_is".repeat(7))), None);
        let line = "\n    G = nx.path_graph(G)";
        assert_eq!(ended(&format!("\n    # A graph.{}", line.repeat(4))), Some(format!("\n    # A graph.{line}")));
        let pair = "\n    a = f(a)\n    b = g(b)";
        assert_eq!(ended(&format!("\n    x = 1{}", pair.repeat(4))), Some(format!("\n    x = 1{pair}")));
        assert_eq!(ended(&format!("\n    x = 1{}\n    y", pair.repeat(4))), None, "it turned away from the loop");
        // What repeats in ordinary code is no loop: a run of one character, indentation, a short literal.
        for text in ["\n    # ==================================", "\n                                    x", "[0, 0, 0, 0, 0]"] {
            assert_eq!(repetition(Scope::Block, text).filter(|r| matches!(r, Repetition::Loop(_))), None, "{text}");
        }
        assert_eq!(repetition(Scope::Free, &"_is".repeat(20)), None, "the free scope has no rule");
    }

    #[test]
    fn a_repeat_short_of_a_loop_is_held_back_after_its_first_copy() {
        let text = "\n    x = f(x)\n    x = f(x)";
        assert_eq!(repetition(Scope::Line, text), Some(Repetition::Suspect("\n    x = f(x)".len())));
        assert_eq!(repetition(Scope::Line, "\n    x = f(x)\n    x ="), Some(Repetition::Suspect("\n    x = f(x)".len())), "begun");
        assert_eq!(repetition(Scope::Block, "\n    x = f(x)\n    y = 2"), None);
        // A unit that is itself a repeat of a shorter one is looked at as the shorter one.
        assert_eq!(repetition(Scope::Block, &"ab".repeat(8)), None);
    }
}
