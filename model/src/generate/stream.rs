//! Generated ids to text deltas, as they arrive: partial characters and what may still become a stop are held back,
//! and the stream ends where the [`StopRules`] say the completion ends, or where it begins to loop (what comes after
//! is never emitted).

use crate::error::ModelError;
use crate::generate::stop::{repetition, verdict, Cursor, Repetition, StopRules, Verdict};
use crate::tokenizer::Tokenizer;

/// The text of a completion, token by token.
pub struct TextStream<'t> {
    tokenizer: &'t Tokenizer,
    ids: Vec<u32>,
    rules: StopRules,
    cursor: Cursor,
    emitted: usize,
    stopped: bool,
}

impl<'t> TextStream<'t> {
    /// A stream of the text written after `before` (the text before the cursor: at least its line, and all of it
    /// for the scope's rule to know whether the cursor is inside a docstring), ended by `rules`.
    pub fn new(tokenizer: &'t Tokenizer, rules: &StopRules, before: &str) -> Self {
        let mut rules = rules.clone();
        rules.strings.retain(|s| !s.is_empty());
        Self { tokenizer, ids: Vec::new(), rules, cursor: Cursor::after(before), emitted: 0, stopped: false }
    }

    /// True once the completion has ended (a stop string or the scope's rule).
    pub fn stopped(&self) -> bool {
        self.stopped
    }

    /// Adds a token; returns the text that is now certain to be part of the completion.
    pub fn push(&mut self, id: u32) -> Result<String, ModelError> {
        if self.stopped {
            return Ok(String::new());
        }
        self.ids.push(id);
        let text = self.tokenizer.decode(&self.ids)?;
        let at_string = self.rules.strings.iter().filter_map(|s| text.find(s.as_str())).min();
        let (at_rule, open) = match verdict(self.rules.scope, &self.cursor, &text) {
            Verdict::End(at) => (Some(at), at),
            Verdict::Open(upto) => (None, upto),
        };
        // A loop ends the completion after its first copy; the copies of a possible one wait until it is decided.
        let (at_loop, open) = match repetition(self.rules.scope, &text) {
            Some(Repetition::Loop(at)) => (Some(at), open),
            Some(Repetition::Suspect(from)) => (None, open.min(from)),
            None => (None, open),
        };
        if let Some(at) = at_string.into_iter().chain(at_rule).chain(at_loop).min() {
            self.stopped = true;
            return Ok(self.take(&text, at));
        }
        // Hold back an incomplete character (decoded as U+FFFD) and a suffix that could begin a stop string.
        let base = text.trim_end_matches('\u{FFFD}').len();
        let mut safe = base.min(open);
        for stop in &self.rules.strings {
            let prefix_ends: Vec<usize> = stop.char_indices().skip(1).map(|(i, _)| i).collect();
            if let Some(i) = prefix_ends.into_iter().rev().find(|&i| text[..base].ends_with(&stop[..i])) {
                safe = safe.min(base - i);
            }
        }
        Ok(self.take(&text, safe))
    }

    /// The text held back at the end (call when generation ends without a stop).
    pub fn finish(&mut self) -> Result<String, ModelError> {
        if self.stopped {
            return Ok(String::new());
        }
        self.stopped = true;
        let text = self.tokenizer.decode(&self.ids)?;
        // Whitespace held back as undecided is trailing whitespace now: a completion does not end in it.
        let end = match verdict(self.rules.scope, &self.cursor, &text) {
            Verdict::End(at) | Verdict::Open(at) => at,
        };
        Ok(self.take(&text, end))
    }

    fn take(&mut self, text: &str, upto: usize) -> String {
        let mut upto = upto.max(self.emitted);
        while !text.is_char_boundary(upto) {
            upto -= 1;
        }
        let out = text.get(self.emitted..upto).unwrap_or_default().to_string();
        self.emitted = self.emitted.max(upto);
        out
    }
}
