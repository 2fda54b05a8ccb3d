//! Chunk inspection: how a model with dynamic chunking cuts a text — per-token boundary probability, boundary
//! mask, chunk spans as byte offsets, and summary statistics. The CLI's `chunks` command and the browser's chunk
//! view both draw from this.

use burn::tensor::backend::Backend;
use burn::tensor::{Bool, Tensor, TensorData};
use serde::Serialize;

use crate::error::ModelError;
use crate::arch::model::Model;
use crate::io::tokenizer::Tokenizer;

/// One token as the router saw it.
#[derive(Debug, Clone, PartialEq, Serialize)]
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
        tokens.push(InspectedToken { id: ids[i], start: spans[i].0, end: spans[i].1, p: p[i], boundary: boundary[i], chunk: chunks.len() - 1 });
    }
    if let Some(last) = chunks.last_mut() {
        last.end = text.len();
    }
    let n = chunks.len().max(1) as f64;
    ChunkReport {
        n_chunks: chunks.len(),
        mean_chunk_tokens: ids.len() as f64 / n,
        mean_chunk_bytes: text.len() as f64 / n,
        tokens,
        chunks,
    }
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
    let n = ids.len();
    let mask = Tensor::<B, 2, Bool>::from_data(TensorData::new(vec![true; n], [1, n]), &model.device());
    let out = model.forward_full(model.tokens_tensor(&ids)?, mask, None);
    let routing = out.aux.expect("models with an hnet section report chunking").routing;
    let device_err = |e: &dyn std::fmt::Debug| ModelError::Device(format!("{e:?}"));
    let p = routing.boundary_prob.into_data_async().await.map_err(|e| device_err(&e))?;
    let p = p.to_vec::<f32>().map_err(|e| device_err(&e))?;
    // Read as integers: backends store booleans differently (u8, u32), integers read back uniformly.
    let b = routing.boundary_mask.int().into_data_async().await.map_err(|e| device_err(&e))?;
    let b: Vec<bool> = b.convert::<i32>().to_vec::<i32>().map_err(|e| device_err(&e))?.into_iter().map(|x| x != 0).collect();
    Ok(build_report(text, &ids, &spans, &p, &b))
}

/// [`inspect_chunks`] for native backends.
#[cfg(not(target_arch = "wasm32"))]
pub fn inspect_chunks_blocking<B: Backend>(model: &Model<B>, tokenizer: &Tokenizer, text: &str) -> Result<ChunkReport, ModelError> {
    futures_lite::future::block_on(inspect_chunks(model, tokenizer, text))
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
}
