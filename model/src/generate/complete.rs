//! Text in, text out: a completion of a prompt — left to right, or fill-in-the-middle between a prefix and a suffix
//! for models whose tokenizer has FIM tokens — that ends where its [`StopRules`] say: the glue between the tokenizer
//! and the token-level [`Generator`], shared by the CLI's `generate`, the evaluations and the playground (which
//! drives the same [`Completion`] with [`Completion::step_async`]).

use burn::tensor::backend::Backend;

use crate::arch::model::Model;
use crate::error::ModelError;
use crate::generate::stop::StopRules;
use crate::generate::stream::TextStream;
use crate::generate::{GenerateParams, Generator};
use crate::tokenizer::Tokenizer;

/// What to complete: text after a prompt, or the middle between a prefix and a suffix.
#[derive(Debug, Clone, Copy)]
pub enum Prompt<'a> {
    /// Left to right after this text.
    Text(&'a str),
    /// Fill-in-the-middle ([`Tokenizer::fim_prompt`]): an error for a model without FIM tokens.
    Middle { prefix: &'a str, suffix: &'a str },
}

impl<'a> Prompt<'a> {
    /// The prompt's ids. A fill-in-the-middle prompt is cut to `budget` tokens (its marker tokens must survive);
    /// a text longer than the context keeps its end when generation starts.
    pub fn ids(self, tokenizer: &Tokenizer, budget: usize) -> Result<Vec<u32>, ModelError> {
        match self {
            Prompt::Text(prompt) => tokenizer.encode(prompt),
            Prompt::Middle { prefix, suffix } => tokenizer.fim_prompt_within(prefix, suffix, budget),
        }
    }

    /// The prompt budget of a model: its context less room for `max_new_tokens` (at most half of it).
    pub fn budget<B: Backend>(model: &Model<B>, max_new_tokens: usize) -> usize {
        model.n_ctx() - max_new_tokens.min(model.n_ctx() / 2)
    }

    /// The line the completion continues (the text before the cursor, after its last newline).
    pub fn cursor_line(self) -> &'a str {
        self.before().rsplit('\n').next().unwrap_or_default()
    }

    fn before(self) -> &'a str {
        match self {
            Prompt::Text(prompt) => prompt,
            Prompt::Middle { prefix, .. } => prefix,
        }
    }

    /// Splits off indentation the editor already typed on the cursor's line (the line holds only whitespace):
    /// the model is asked from the start of that line, where its training data puts indentation, and the
    /// completion's own indentation is then merged with the typed one instead of stacking on it.
    pub fn without_typed_indent(self) -> (Self, &'a str) {
        let line = self.cursor_line();
        if line.is_empty() || !line.trim().is_empty() {
            return (self, "");
        }
        let before = self.before();
        let cut = &before[..before.len() - line.len()];
        let prompt = match self {
            Prompt::Text(_) => Prompt::Text(cut),
            Prompt::Middle { suffix, .. } => Prompt::Middle { prefix: cut, suffix },
        };
        (prompt, line)
    }
}

/// Drops from the start of a completion's `piece` what matches the still-unmatched typed indentation `typed`
/// (shortened in place): the text to insert at the cursor, after the indentation already there.
fn merge_typed_indent(typed: &mut String, piece: String) -> String {
    if typed.is_empty() {
        return piece;
    }
    let matched: usize = piece.chars().zip(typed.chars()).take_while(|(a, b)| a == b).map(|(a, _)| a.len_utf8()).sum();
    if matched == piece.len() {
        typed.drain(..matched);
        String::new()
    } else {
        typed.clear();
        piece[matched..].to_string()
    }
}

/// A completion in progress: each step samples one token and returns the text it made certain.
pub struct Completion<'m, 't, B: Backend> {
    generator: Generator<'m, B>,
    stream: TextStream<'t>,
    text: String,
    tokens: usize,
    done: bool,
    /// Typed indentation not yet matched by the completion's own.
    typed_indent: String,
}

impl<'m, 't, B: Backend> Completion<'m, 't, B> {
    /// Starts completing `prompt` (the prompt is fed by the first step).
    pub fn new(
        model: &'m Model<B>,
        tokenizer: &'t Tokenizer,
        prompt: Prompt<'_>,
        params: GenerateParams,
        rules: &StopRules,
    ) -> Result<Self, ModelError> {
        let (prompt, typed) = prompt.without_typed_indent();
        let ids = prompt.ids(tokenizer, Prompt::budget(model, params.max_new_tokens))?;
        let mut completion = Self::from_ids(model, tokenizer, &ids, prompt.before(), params, rules)?;
        completion.typed_indent = typed.to_string();
        Ok(completion)
    }

    /// Starts from prompt ids; `before` is the prompt's text before the cursor (for the scope's rule: at least the
    /// cursor's line).
    pub fn from_ids(
        model: &'m Model<B>,
        tokenizer: &'t Tokenizer,
        ids: &[u32],
        before: &str,
        params: GenerateParams,
        rules: &StopRules,
    ) -> Result<Self, ModelError> {
        let generator = Generator::new(model, ids, params)?;
        let stream = TextStream::new(tokenizer, rules, before);
        Ok(Self { generator, stream, text: String::new(), tokens: 0, done: false, typed_indent: String::new() })
    }

    /// The next piece of text (possibly empty); `None` once the completion has ended.
    #[cfg(not(target_arch = "wasm32"))]
    pub fn step(&mut self) -> Result<Option<String>, ModelError> {
        if self.done {
            return Ok(None);
        }
        let token = self.generator.next_token()?;
        self.accept(token).map(Some)
    }

    /// [`step`](Self::step), awaiting device reads (WebGPU).
    pub async fn step_async(&mut self) -> Result<Option<String>, ModelError> {
        if self.done {
            return Ok(None);
        }
        let token = self.generator.next_token_async().await?;
        self.accept(token).map(Some)
    }

    fn accept(&mut self, token: Option<u32>) -> Result<String, ModelError> {
        let piece = match token {
            Some(token) => {
                self.tokens += 1;
                let piece = self.stream.push(token)?;
                if self.stream.stopped() {
                    self.generator.stop();
                    self.done = true;
                }
                piece
            }
            None => {
                self.done = true;
                self.stream.finish()?
            }
        };
        let piece = merge_typed_indent(&mut self.typed_indent, piece);
        self.text.push_str(&piece);
        Ok(piece)
    }

    /// Ends the completion now (a cancelled request): nothing more is generated.
    pub fn cancel(&mut self) {
        self.generator.stop();
    }

    /// The completion so far.
    pub fn text(&self) -> &str {
        &self.text
    }

    /// Tokens generated so far (including any past the completion's end).
    pub fn tokens(&self) -> usize {
        self.tokens
    }
}

/// Runs a completion to its end, giving each piece of text to `on_text`. Returns the completion and the number of
/// tokens generated.
#[cfg(not(target_arch = "wasm32"))]
pub fn complete<B: Backend>(
    model: &Model<B>,
    tokenizer: &Tokenizer,
    prompt: Prompt<'_>,
    params: GenerateParams,
    rules: &StopRules,
    mut on_text: impl FnMut(&str),
) -> Result<(String, usize), ModelError> {
    let mut completion = Completion::new(model, tokenizer, prompt, params, rules)?;
    while let Some(piece) = completion.step()? {
        on_text(&piece);
    }
    Ok((completion.text, completion.tokens))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn typed_indentation_is_split_off_and_merged_once() {
        let (prompt, typed) = Prompt::Text("def f():\n    ").without_typed_indent();
        assert!(matches!(prompt, Prompt::Text("def f():\n")));
        assert_eq!(typed, "    ");
        let (prompt, typed) = Prompt::Middle { prefix: "if a:\n\t", suffix: "\nb" }.without_typed_indent();
        assert!(matches!(prompt, Prompt::Middle { prefix: "if a:\n", suffix: "\nb" }));
        assert_eq!(typed, "\t");
        // A line with code, or no indentation: nothing to split.
        assert_eq!(Prompt::Text("    x = ").without_typed_indent().1, "");
        assert_eq!(Prompt::Text("x\n").without_typed_indent().1, "");

        // The completion's indentation, streamed in pieces, is dropped where it matches what is typed.
        let mut typed = "    ".to_string();
        let pieces = ["  ", "    return", " 1\n    x"].map(String::from);
        let merged: String = pieces.into_iter().map(|p| merge_typed_indent(&mut typed, p)).collect();
        assert_eq!(merged, "  return 1\n    x");
        // A completion indented less, or starting a new line, keeps all of itself.
        let mut typed = "        ".to_string();
        assert_eq!(merge_typed_indent(&mut typed, "\n    y".into()), "\n    y");
        assert_eq!(merge_typed_indent(&mut typed, "z".into()), "z");
    }
}
