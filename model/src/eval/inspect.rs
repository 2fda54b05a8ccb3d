//! Chunk inspection: how a model with dynamic chunking cuts a text — per-token boundary probability, boundary
//! mask, chunk spans as byte offsets, and summary statistics. The CLI's `chunks` command and the browser's chunk
//! view both draw from this.
//!
//! **Texts longer than the context** are read in windows of `n_ctx` tokens that overlap by half
//! ([`windows`]): the first window gives its tokens their values; every later window gives values only to its
//! second half, whose tokens therefore see at least `n_ctx / 2` tokens of context, and together those halves tile
//! the text. A window's outputs depend only on its own tokens (the model is causal and positions count from the
//! window's start), so a [`WindowCache`] keyed on the window's token ids lets a re-run after an edit recompute only
//! the windows whose tokens changed.

use std::collections::HashMap;
use std::future::Future;

use burn::tensor::backend::Backend;
use burn::tensor::{Bool, Tensor, TensorData};
use serde::{Deserialize, Serialize};

use crate::arch::model::Model;
use crate::error::ModelError;
use crate::tokenizer::Tokenizer;

/// One token as the router saw it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct InspectedToken {
    /// Token id.
    pub id: u32,
    /// Byte span in the text.
    pub start: usize,
    /// End of the byte span.
    pub end: usize,
    /// Boundary probability `p_t`.
    pub p: f32,
    /// Whether a chunk starts here.
    pub boundary: bool,
    /// Index of the chunk the token belongs to.
    pub chunk: usize,
}

/// One chunk: a run of tokens starting at a boundary.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Chunk {
    /// First token index.
    pub start_token: usize,
    /// One past the last token index.
    pub end_token: usize,
    /// Byte span in the text.
    pub start: usize,
    /// End of the byte span.
    pub end: usize,
}

/// How a text is chunked.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct ChunkReport {
    /// Every token.
    pub tokens: Vec<InspectedToken>,
    /// Every chunk, in order; together they cover the text.
    pub chunks: Vec<Chunk>,
    /// Number of chunks.
    pub n_chunks: usize,
    /// Mean chunk length in tokens.
    pub mean_chunk_tokens: f64,
    /// Mean chunk length in bytes.
    pub mean_chunk_bytes: f64,
}

/// Builds the report from per-token outputs (kept separate so it is testable without a model).
pub fn build_report(text: &str, ids: &[u32], spans: &[(usize, usize)], p: &[f32], boundary: &[bool]) -> ChunkReport {
    let mut tokens = Vec::with_capacity(ids.len());
    let mut chunks: Vec<Chunk> = Vec::new();
    for i in 0..ids.len() {
        if boundary[i] || chunks.is_empty() {
            // Chunks tile the text: each starts where the previous ended.
            let start = chunks.last().map_or(0, |c| c.end);
            chunks.push(Chunk { start_token: i, end_token: i + 1, start, end: spans[i].1.max(start) });
        } else {
            let c = chunks.last_mut().unwrap();
            c.end_token = i + 1;
            c.end = spans[i].1.max(c.end);
        }
        tokens.push(InspectedToken {
            id: ids[i],
            start: spans[i].0,
            end: spans[i].1,
            p: p[i],
            boundary: boundary[i],
            chunk: chunks.len() - 1,
        });
    }
    if let Some(last) = chunks.last_mut() {
        last.end = text.len();
    }
    let n = chunks.len().max(1) as f64;
    ChunkReport { n_chunks: chunks.len(), mean_chunk_tokens: ids.len() as f64 / n, mean_chunk_bytes: text.len() as f64 / n, tokens, chunks }
}

/// Runs the model over `text` (its last `n_ctx` tokens at most) and reports its chunking.
pub async fn inspect_chunks<B: Backend>(model: &Model<B>, tokenizer: &Tokenizer, text: &str) -> Result<ChunkReport, ModelError> {
    if model.config.hnet.is_none() {
        return Err(ModelError::InvalidConfig(format!("a {} model has no chunking to inspect", model.config.arch)));
    }
    let mut tokens = tokenizer.encode_with_offsets(text)?;
    if tokens.is_empty() {
        return Err(ModelError::EmptyPrompt);
    }
    // Keep the text's beginning: chunk views are read from the top.
    tokens.truncate(model.n_ctx());
    let text = &text[..tokens.last().map_or(0, |t| t.span.end)];
    let ids: Vec<u32> = tokens.iter().map(|t| t.id).collect();
    let spans: Vec<(usize, usize)> = tokens.iter().map(|t| (t.span.start, t.span.end)).collect();
    let (p, b) = route_ids(model, &ids).await?;
    Ok(build_report(text, &ids, &spans, &p, &b))
}

/// One window of a long text: the model reads tokens `start..start + len` and its outputs count for tokens
/// `own.start..own.end`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Window {
    /// First token the model reads.
    pub start: usize,
    /// Number of tokens it reads.
    pub len: usize,
    /// The tokens this window gives their values to.
    pub own: std::ops::Range<usize>,
}

/// The windows that cover `n` tokens with a context of `n_ctx` (see the module doc): the owned ranges tile
/// `0..n`, and every owned token after the first window has at least `n_ctx / 2` tokens before it in its window.
pub fn windows(n: usize, n_ctx: usize) -> Vec<Window> {
    let n_ctx = n_ctx.max(2);
    let half = n_ctx / 2;
    let mut out = vec![Window { start: 0, len: n.min(n_ctx), own: 0..n.min(n_ctx) }];
    let mut owned_to = n.min(n_ctx);
    while owned_to < n {
        let start = owned_to - half;
        let len = (n - start).min(n_ctx);
        out.push(Window { start, len, own: owned_to..start + len });
        owned_to = start + len;
    }
    out
}

/// Per-window outputs of the last run, keyed on the window's token ids.
#[derive(Default)]
pub struct WindowCache {
    entries: HashMap<Vec<u32>, (Vec<f32>, Vec<bool>)>,
}

impl WindowCache {
    /// Number of windows held.
    pub fn len(&self) -> usize {
        self.entries.len()
    }

    /// Whether it holds nothing.
    pub fn is_empty(&self) -> bool {
        self.entries.is_empty()
    }
}

/// What a windowed inspection did.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct WindowStats {
    /// Windows the text needed.
    pub windows: usize,
    /// Windows taken from the cache.
    pub cached: usize,
}

/// Runs the model over token ids (at most `n_ctx`); returns each token's `p_t` and boundary flag.
pub async fn route_ids<B: Backend>(model: &Model<B>, ids: &[u32]) -> Result<(Vec<f32>, Vec<bool>), ModelError> {
    let n = ids.len();
    let mask = Tensor::<B, 2, Bool>::from_data(TensorData::new(vec![true; n], [1, n]), &model.device());
    // The router alone decides the boundaries: no main network, decoder or LM head (see `Model::route`).
    let routing =
        model.route(model.tokens_tensor(ids)?, mask).ok_or_else(|| ModelError::InvalidConfig("this model reports no chunking".into()))?;
    let device_err = |e: &dyn std::fmt::Debug| ModelError::Device(format!("{e:?}"));
    let p = routing.boundary_prob.into_data_async().await.map_err(|e| device_err(&e))?;
    let p = p.to_vec::<f32>().map_err(|e| device_err(&e))?;
    // Read as integers: backends store booleans differently (u8, u32), integers read back uniformly.
    let b = routing.boundary_mask.int().into_data_async().await.map_err(|e| device_err(&e))?;
    let b: Vec<bool> = b.convert::<i32>().to_vec::<i32>().map_err(|e| device_err(&e))?.into_iter().map(|x| x != 0).collect();
    Ok((p, b))
}

/// How the model chunks the whole of `text`, however long, in windows (see the module doc). `progress(done,
/// total)` is awaited after each window (the browser yields there); when it returns false the inspection stops
/// and returns `Ok(None)`. `cache` is read and replaced by this run's windows.
pub async fn inspect_chunks_windowed<B, F, Fut>(
    model: &Model<B>,
    tokenizer: &Tokenizer,
    text: &str,
    cache: &mut WindowCache,
    progress: &mut F,
) -> Result<Option<(ChunkReport, WindowStats)>, ModelError>
where
    B: Backend,
    F: FnMut(usize, usize) -> Fut,
    Fut: Future<Output = bool>,
{
    if model.config.hnet.is_none() {
        return Err(ModelError::InvalidConfig(format!("a {} model has no chunking to inspect", model.config.arch)));
    }
    let tokens = tokenizer.encode_with_offsets(text)?;
    if tokens.is_empty() {
        return Err(ModelError::EmptyPrompt);
    }
    let ids: Vec<u32> = tokens.iter().map(|t| t.id).collect();
    let spans: Vec<(usize, usize)> = tokens.iter().map(|t| (t.span.start, t.span.end)).collect();
    let plan = windows(ids.len(), model.n_ctx());
    let (mut p, mut boundary) = (vec![0f32; ids.len()], vec![false; ids.len()]);
    let mut next = WindowCache::default();
    let mut stats = WindowStats { windows: plan.len(), cached: 0 };
    for (done, w) in plan.iter().enumerate() {
        let key = ids[w.start..w.start + w.len].to_vec();
        let (wp, wb) = match cache.entries.remove(&key).or_else(|| next.entries.get(&key).cloned()) {
            Some(hit) => {
                stats.cached += 1;
                hit
            }
            None => route_ids(model, &key).await?,
        };
        for i in w.own.clone() {
            p[i] = wp[i - w.start];
            boundary[i] = wb[i - w.start];
        }
        next.entries.insert(key, (wp, wb));
        if !progress(done + 1, plan.len()).await {
            return Ok(None);
        }
    }
    *cache = next;
    Ok(Some((build_report(text, &ids, &spans, &p, &boundary), stats)))
}

/// [`inspect_chunks`] for native backends.
#[cfg(not(target_arch = "wasm32"))]
pub fn inspect_chunks_blocking<B: Backend>(model: &Model<B>, tokenizer: &Tokenizer, text: &str) -> Result<ChunkReport, ModelError> {
    futures_lite::future::block_on(inspect_chunks(model, tokenizer, text))
}

/// [`inspect_chunks_windowed`] for native backends, without a cache or a way to stop.
#[cfg(not(target_arch = "wasm32"))]
pub fn inspect_chunks_windowed_blocking<B: Backend>(
    model: &Model<B>,
    tokenizer: &Tokenizer,
    text: &str,
) -> Result<ChunkReport, ModelError> {
    let (mut go_on, mut cache) = (|_, _| async { true }, WindowCache::default());
    let run = inspect_chunks_windowed(model, tokenizer, text, &mut cache, &mut go_on);
    // A run whose progress callback always says "go on" never stops early.
    futures_lite::future::block_on(run)?.map(|(report, _)| report).ok_or(ModelError::InvalidConfig("the inspection stopped".into()))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn chunks_tile_the_text_and_statistics_add_up() {
        let text = "def f(x):\n    return x";
        // Tokens: "def" " f" "(" "x" "):" "\n" " " " " " " " return" " x" (spans by hand).
        let spans = [(0, 3), (3, 5), (5, 6), (6, 7), (7, 9), (9, 10), (10, 11), (11, 12), (12, 13), (13, 20), (20, 22)];
        let ids: Vec<u32> = (0..11).collect();
        let boundary = [true, false, true, false, false, true, false, false, false, true, false];
        let report = build_report(text, &ids, &spans, &[0.9; 11], &boundary);
        assert_eq!(report.n_chunks, 4);
        let pieces: Vec<&str> = report.chunks.iter().map(|c| &text[c.start..c.end]).collect();
        assert_eq!(pieces, vec!["def f", "(x):", "\n   ", " return x"]);
        assert_eq!(report.tokens[10].chunk, 3);
        assert!((report.mean_chunk_tokens - 2.75).abs() < 1e-12);
        assert!((report.mean_chunk_bytes - 22.0 / 4.0).abs() < 1e-12);
    }

    #[test]
    fn windows_tile_the_text_with_half_a_context_before_each_owned_token() {
        for n_ctx in [2, 8, 9, 256] {
            for n in [1, 2, n_ctx - 1, n_ctx, n_ctx + 1, 3 * n_ctx + 5, 10 * n_ctx] {
                let plan = windows(n, n_ctx);
                let mut next = 0;
                for (k, w) in plan.iter().enumerate() {
                    assert_eq!(w.own.start, next, "owned ranges tile (n={n}, n_ctx={n_ctx})");
                    assert!(w.len <= n_ctx && w.start + w.len <= n && w.own.end == w.start + w.len);
                    assert!(!w.own.is_empty());
                    if k > 0 {
                        assert!(w.own.start - w.start >= n_ctx / 2, "context before the owned tokens");
                    }
                    next = w.own.end;
                }
                assert_eq!(next, n);
            }
        }
        assert_eq!(windows(10, 4).len(), 4); // [0,4) then owns [4,6), [6,8), [8,10)
    }
}
