//! The chunk view's data, in the worker: the whole text chunked in windows of the context (cached per window,
//! so an edit recomputes only the windows it touched; stopped when a newer edit comes), Python statement starts
//! from the parser, and a bounded slice of lines for the page to draw.

use std::cell::Cell;
use std::rc::Rc;

use hnet_gpt_model::eval::inspect::{ChunkReport, WindowCache};
use hnet_gpt_model::eval::pysyntax;

use crate::protocol::{ChunkToken, ChunksView};

/// At most this many tokens are drawn at once (the page's DOM stays small; scrolling moves the slice).
pub const MAX_SHOWN_TOKENS: usize = 1200;

/// A chunked text, kept for re-slicing as the page scrolls.
pub struct Chunked {
    /// The model that chunked it (the worker's count of loaded models): a result is only reused for that model.
    pub model: u64,
    /// The text.
    pub text: String,
    /// How the model chunks all of it.
    pub report: ChunkReport,
    /// Python statement starts (byte offsets), when the text parses.
    pub starts: Option<Vec<usize>>,
    /// Byte offset where each line starts.
    line_starts: Vec<usize>,
}

/// State the worker keeps between chunk requests.
#[derive(Default)]
pub struct ChunkState {
    /// The last chunked text.
    pub last: Option<Rc<Chunked>>,
    /// Per-window model outputs of the last run.
    pub cache: WindowCache,
    /// The running chunk job's stop flag (a newer request stops it).
    pub running: Option<Rc<Cell<bool>>>,
}

impl Chunked {
    /// Wraps a report of `text`, parsing the text for statement starts.
    pub fn new(model: u64, text: String, report: ChunkReport) -> Self {
        let starts = pysyntax::statement_starts(&text);
        let line_starts = std::iter::once(0).chain(text.match_indices('\n').map(|(i, _)| i + 1)).collect();
        Self { model, text, report, starts, line_starts }
    }

    /// The tokens of lines `first_line..`, at most [`MAX_SHOWN_TOKENS`] of them and whole lines where possible;
    /// `surprisal` gives the shown tokens' bits, when computed.
    pub fn view(&self, first_line: usize, surprisal: Option<&[f32]>) -> ChunksView {
        let total_lines = self.line_starts.len();
        let first_line = first_line.min(total_lines.saturating_sub(1));
        let from = self.line_starts[first_line];
        let tokens = &self.report.tokens;
        let first_token = tokens.partition_point(|t| t.end <= from);
        let mut last_token = (first_token + MAX_SHOWN_TOKENS).min(tokens.len());
        if last_token < tokens.len() {
            // End on a line boundary: drop the tokens of the last, partial line (unless that leaves nothing).
            let cut = tokens[last_token].start;
            let line_start = self.line_starts[self.line_starts.partition_point(|&s| s <= cut) - 1];
            let whole = tokens.partition_point(|t| t.start < line_start);
            if whole > first_token {
                last_token = whole;
            }
        }
        let to = if last_token < tokens.len() { tokens[last_token].start } else { self.text.len() };
        let from = from.min(tokens.get(first_token).map_or(from, |t| t.start));
        let shown_lines = self.line_starts.partition_point(|&s| s < to) - first_line;
        let shown = tokens[first_token..last_token]
            .iter()
            .enumerate()
            .map(|(k, t)| ChunkToken {
                token: t.clone(),
                surprisal: surprisal.and_then(|b| b.get(k).copied()),
                statement: self.starts.as_ref().map(|s| s[s.partition_point(|&o| o < t.start)..].first().is_some_and(|&o| o < t.end)),
            })
            .collect::<Vec<_>>();
        let whole = first_token == 0 && last_token == tokens.len();
        let note = (!whole).then(|| {
            format!(
                "Showing lines {}–{} of {} ({} of {} tokens); scroll the editor to move the view.",
                first_line + 1,
                first_line + shown_lines.max(1),
                total_lines,
                shown.len(),
                tokens.len()
            )
        });
        ChunksView {
            text: self.text[from..to].to_string(),
            offset: from,
            first_line,
            shown_lines,
            total_lines,
            first_token,
            total_tokens: tokens.len(),
            tokens: shown,
            n_chunks: self.report.n_chunks,
            mean_chunk_tokens: self.report.mean_chunk_tokens,
            mean_chunk_bytes: self.report.mean_chunk_bytes,
            parses: self.starts.is_some(),
            note,
        }
    }
}
