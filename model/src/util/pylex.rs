//! Where Python's string literals and comments are in a text, by its lexical rules (`#` comments, one-line `'`/`"`
//! strings, triple-quoted strings, a backslash escapes the next character in either) — enough to tell a docstring
//! from code without a parser, which a completion (text cut anywhere) could not feed.

/// Where a string literal stands at some point of the text.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Lex {
    /// In code.
    #[default]
    Code,
    /// In a comment (to the end of its line).
    Comment,
    /// In a one-line string opened by this quote.
    Short(char),
    /// In a triple-quoted string opened by three of this quote.
    Long(char),
}

impl Lex {
    /// Walks `text` from `self`, telling `on(offset, from, to)` at every change of state: `offset` is the byte where
    /// the character that changes it begins (the first of three quotes). Returns the state after `text`.
    pub fn walk(self, text: &str, mut on: impl FnMut(usize, Lex, Lex)) -> Lex {
        let mut state = self;
        let mut chars = text.char_indices();
        // Whether the next two characters are `q` too (then they are consumed).
        let tripled = |chars: &mut std::str::CharIndices, q: char| {
            let mut rest = chars.clone();
            let yes = rest.next().map(|(_, c)| c) == Some(q) && rest.next().map(|(_, c)| c) == Some(q);
            if yes {
                chars.nth(1);
            }
            yes
        };
        while let Some((at, c)) = chars.next() {
            let next = match (state, c) {
                (Lex::Comment, '\n') => Lex::Code,
                (Lex::Code, '#') => Lex::Comment,
                (Lex::Code, '\'' | '"') if tripled(&mut chars, c) => Lex::Long(c),
                (Lex::Code, '\'' | '"') => Lex::Short(c),
                (Lex::Short(_) | Lex::Long(_), '\\') => {
                    // An escaped quote does not close the string; an escaped newline continues a one-line one.
                    chars.next();
                    state
                }
                (Lex::Short(q), c) if c == q || c == '\n' => Lex::Code,
                (Lex::Long(q), c) if c == q && tripled(&mut chars, q) => Lex::Code,
                (state, _) => state,
            };
            if next != state {
                on(at, state, next);
                state = next;
            }
        }
        state
    }

    /// The state after `text`, starting from `self`.
    pub fn after(self, text: &str) -> Lex {
        self.walk(text, |_, _, _| {})
    }
}

/// The byte ranges of `text`'s closed triple-quoted strings, quotes included (a string prefix such as `r` is not).
pub fn long_strings(text: &str) -> Vec<std::ops::Range<usize>> {
    let mut spans = Vec::new();
    let mut open = 0;
    Lex::Code.walk(text, |at, from, to| match (from, to) {
        (_, Lex::Long(_)) => open = at,
        (Lex::Long(_), _) => spans.push(open..at + 3),
        _ => {}
    });
    spans
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn states_follow_python_lexing() {
        assert_eq!(Lex::Code.after("x = 'a"), Lex::Short('\''));
        assert_eq!(Lex::Code.after("x = 'a'\n"), Lex::Code);
        assert_eq!(Lex::Code.after("x = 1  # it's"), Lex::Comment);
        assert_eq!(Lex::Code.after("def f():\n    \"\"\"Doc\n"), Lex::Long('"'));
        assert_eq!(Lex::Code.after("s = '''a\\''' b"), Lex::Long('\''));
        assert_eq!(Lex::Code.after("s = '''a''' "), Lex::Code);
        // A quote inside a comment or another kind of string opens nothing.
        assert_eq!(Lex::Code.after("# \"\"\"\nx = \"'''\"\n"), Lex::Code);
    }

    #[test]
    fn long_strings_are_found_with_their_quotes() {
        let text = "'''a'''\nx = \"b\"  # '''\ns = r\"\"\"c\\\"\"\"\"\"\n\"\"\"é\"\"\"";
        let spans: Vec<&str> = long_strings(text).into_iter().map(|r| &text[r]).collect();
        assert_eq!(spans, ["'''a'''", "\"\"\"c\\\"\"\"\"", "\"\"\"é\"\"\""]);
        assert!(long_strings("'''never closed").is_empty());
    }
}
