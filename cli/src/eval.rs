//! `hnet-gpt eval`: one report per checkpoint — perplexity over real tokens and bits per byte, chunk statistics
//! (with boundary precision/recall against line starts and Python statements), the seed's five-prompt evaluation,
//! the syntax validity of completions of held-out function headers, and optionally HumanEval pass@k.

use std::path::{Path, PathBuf};

use anyhow::{Context, Result};
use burn::tensor::backend::Backend;
use hnet_gpt::humaneval;
use hnet_gpt::sandbox::{self, Limits, Verdict};
use hnet_gpt_model::complete::complete;
use hnet_gpt_model::data::{self, split_of, Record, Split};
use hnet_gpt_model::generate::GenerateParams;
use hnet_gpt_model::inspect::inspect_chunks_blocking;
use hnet_gpt_model::pysyntax::{self, BoundaryMatch};
use hnet_gpt_model::sampling::SamplingParams;
use hnet_gpt_model::score::token_logprobs;
use hnet_gpt_model::tokenizer::{Tokenizer, EOS_ID};
use hnet_gpt_model::{seed_eval, Model};
use serde::Serialize;
use serde_json::{json, Value};

/// Settings of an evaluation.
#[derive(Debug, Clone)]
pub struct EvalSettings {
    /// Data to evaluate on (files or directories); empty = the built-in corpus.
    pub data: Vec<PathBuf>,
    /// Only the validation split (by the same hash the trainer uses), or everything.
    pub valid_only: bool,
    /// Validation fraction of the split.
    pub valid_fraction: f64,
    /// Cap on tokens scored for perplexity.
    pub max_tokens: usize,
    /// Held-out function headers to complete.
    pub headers: usize,
    /// HumanEval problems to run (0 = skip).
    pub humaneval_problems: usize,
    /// Samples per HumanEval problem.
    pub humaneval_samples: usize,
    /// Seed of every sampled generation.
    pub seed: u64,
}

/// Evaluation records: the requested split of the data.
pub fn eval_records(s: &EvalSettings) -> Result<Vec<Record>> {
    let mut records = Vec::new();
    if s.data.is_empty() {
        records = data::builtin_records();
    }
    for path in &s.data {
        anyhow::ensure!(path.exists(), "--data {}: no such file or directory", path.display());
        let loaded = data::load_path(path);
        for skipped in loaded.skipped.iter().take(5) {
            eprintln!("warning: {}: {} (skipped)", skipped.location, skipped.reason);
        }
        records.extend(loaded.records);
    }
    let fraction = if s.data.is_empty() { s.valid_fraction.max(0.15) } else { s.valid_fraction };
    if s.valid_only {
        records.retain(|r| split_of(&r.repo, &r.path, fraction) == Split::Valid);
    }
    anyhow::ensure!(!records.is_empty(), "no evaluation records (the validation split of the data is empty)");
    Ok(records)
}

#[derive(Debug, Serialize)]
struct Perplexity {
    documents: usize,
    tokens: usize,
    bytes: usize,
    nll_per_token: f64,
    perplexity: f64,
    bits_per_byte: f64,
}

/// Perplexity over real tokens only: each document scored on its own after `<|endoftext|>`, no padding anywhere.
fn perplexity<B: Backend>(model: &Model<B>, tok: &Tokenizer, records: &[Record], max_tokens: usize) -> Result<Perplexity> {
    let (mut nll, mut tokens, mut bytes, mut documents) = (0.0f64, 0usize, 0usize, 0usize);
    for r in records {
        if tokens >= max_tokens {
            break;
        }
        let mut ids = vec![EOS_ID];
        ids.extend(tok.encode(&r.code)?);
        if ids.len() < 2 {
            continue;
        }
        let lp = token_logprobs(model, &ids)?;
        nll -= lp.iter().map(|&l| l as f64).sum::<f64>();
        tokens += lp.len();
        bytes += r.code.len();
        documents += 1;
    }
    anyhow::ensure!(tokens > 0, "nothing to score");
    Ok(Perplexity {
        documents,
        tokens,
        bytes,
        nll_per_token: nll / tokens as f64,
        perplexity: (nll / tokens as f64).exp(),
        bits_per_byte: nll / std::f64::consts::LN_2 / bytes as f64,
    })
}

#[derive(Debug, Serialize)]
struct ChunkStats {
    texts: usize,
    mean_chunk_tokens: f64,
    mean_chunk_bytes: f64,
    /// Chunk lengths in tokens (for histograms).
    chunk_lengths: Vec<usize>,
    line_starts: BoundaryMatch,
    statement_starts: BoundaryMatch,
}

/// How the model chunks Python that fits its context and parses.
fn chunk_stats<B: Backend>(model: &Model<B>, tok: &Tokenizer, records: &[Record]) -> Result<Option<ChunkStats>> {
    if model.config.hnet.is_none() {
        return Ok(None);
    }
    let (mut lines, mut stmts, mut lengths) = (Vec::new(), Vec::new(), Vec::new());
    let (mut n_tokens, mut n_bytes, mut n_chunks, mut texts) = (0usize, 0usize, 0usize, 0usize);
    for r in records.iter().filter(|r| r.language == "python").take(200) {
        let n = tok.encode(&r.code)?.len();
        let Some(starts) = pysyntax::statement_starts(&r.code) else { continue };
        if n == 0 || n > model.n_ctx() {
            continue;
        }
        let report = inspect_chunks_blocking(model, tok, &r.code)?;
        let spans: Vec<(usize, usize)> = report.tokens.iter().map(|t| (t.start, t.end)).collect();
        let flags: Vec<bool> = report.tokens.iter().map(|t| t.boundary).collect();
        lines.push(pysyntax::match_boundaries(&spans, &flags, &pysyntax::line_starts(&r.code)));
        stmts.push(pysyntax::match_boundaries(&spans, &flags, &starts));
        lengths.extend(report.chunks.iter().map(|c| c.end_token - c.start_token));
        n_tokens += report.tokens.len();
        n_bytes += r.code.len();
        n_chunks += report.n_chunks;
        texts += 1;
    }
    if texts == 0 {
        return Ok(None);
    }
    Ok(Some(ChunkStats {
        texts,
        mean_chunk_tokens: n_tokens as f64 / n_chunks.max(1) as f64,
        mean_chunk_bytes: n_bytes as f64 / n_chunks.max(1) as f64,
        chunk_lengths: lengths,
        line_starts: BoundaryMatch::pooled(&lines),
        statement_starts: BoundaryMatch::pooled(&stmts),
    }))
}

#[derive(Debug, Serialize)]
struct HeaderSyntax {
    completions: usize,
    valid: usize,
    /// Valid / completions (the spec's metric: truncation is not an error).
    rate: f64,
    /// Completions that added at least one complete non-blank line (the others are trivially valid).
    with_code: usize,
    /// Valid among those.
    rate_with_code: f64,
    examples: Vec<Value>,
}

/// Completes held-out function headers and checks that the (truncation-closed) results parse.
fn header_syntax<B: Backend>(model: &Model<B>, tok: &Tokenizer, records: &[Record], n: usize, seed: u64) -> Result<HeaderSyntax> {
    let headers: Vec<String> = records.iter().filter(|r| r.language == "python").filter_map(|r| pysyntax::function_header(&r.code)).take(n).collect();
    let (mut valid, mut with_code, mut valid_with_code, mut examples) = (0, 0, 0, Vec::new());
    for (i, header) in headers.iter().enumerate() {
        let params = GenerateParams {
            sampling: SamplingParams { temperature: 0.2, top_k: 40, top_p: 0.95, repetition_penalty: 1.0, repetition_window: None },
            max_new_tokens: 64,
            seed: seed.wrapping_add(i as u64),
            ..Default::default()
        };
        let stop: Vec<String> = ["\ndef ", "\nclass ", "\nif __name__"].map(String::from).to_vec();
        let (completion, _) = complete(model, tok, header, params, &stop, |_| {})?;
        let closed = pysyntax::close_truncated(header, &completion);
        let ok = pysyntax::is_valid(&closed);
        valid += ok as usize;
        let added = completion.rfind('\n').is_some_and(|i| !completion[..i].trim().is_empty());
        with_code += added as usize;
        valid_with_code += (added && ok) as usize;
        if examples.len() < 3 {
            examples.push(json!({"header": header, "completion": completion, "valid": ok}));
        }
    }
    Ok(HeaderSyntax {
        completions: headers.len(),
        valid,
        rate: valid as f64 / headers.len().max(1) as f64,
        with_code,
        rate_with_code: valid_with_code as f64 / with_code.max(1) as f64,
        examples,
    })
}

/// HumanEval pass@k on the first `problems` problems with `samples` completions each.
pub fn humaneval_pass<B: Backend>(model: &Model<B>, tok: &Tokenizer, problems: usize, samples: usize, seed: u64) -> Result<Value> {
    let all = humaneval::problems();
    let stop: Vec<String> = humaneval::STOP.map(String::from).to_vec();
    let temperature = if samples == 1 { 0.2 } else { 0.8 };
    let (mut per_problem, mut isolated) = (Vec::new(), true);
    for (i, p) in all.iter().take(problems).enumerate() {
        let mut correct = 0;
        for s in 0..samples {
            let params = GenerateParams {
                sampling: SamplingParams { temperature, top_k: 0, top_p: 0.95, repetition_penalty: 1.0, repetition_window: None },
                max_new_tokens: 128,
                seed: seed.wrapping_add((i * samples + s) as u64),
                ..Default::default()
            };
            let (completion, _) = complete(model, tok, &p.prompt, params, &stop, |_| {})?;
            let outcome = sandbox::run_python(&sandbox::default_python(), &humaneval::program(p, &completion), &Limits::default())?;
            isolated &= outcome.network_isolated;
            correct += (outcome.verdict == Verdict::Passed) as usize;
        }
        per_problem.push((p.task_id.clone(), correct));
    }
    let mean = |k: usize| per_problem.iter().map(|(_, c)| humaneval::pass_at_k(samples, *c, k)).sum::<f64>() / per_problem.len().max(1) as f64;
    let mut out = json!({
        "problems": per_problem.len(), "samples": samples, "temperature": temperature,
        "pass@1": mean(1), "network_isolated": isolated,
        "solved": per_problem.iter().filter(|(_, c)| *c > 0).map(|(t, _)| t.clone()).collect::<Vec<_>>(),
    });
    if samples >= 10 {
        out["pass@10"] = json!(mean(10));
    }
    if !isolated {
        eprintln!("warning: no network namespace could be created: generated code ran WITHOUT network isolation");
    }
    Ok(out)
}

/// Runs every evaluation on a loaded model.
pub fn evaluate<B: Backend>(model: &Model<B>, tok: &Tokenizer, s: &EvalSettings, checkpoint: &Path) -> Result<Value> {
    let records = eval_records(s)?;
    let ppl = perplexity(model, tok, &records, s.max_tokens)?;
    let chunks = chunk_stats(model, tok, &records)?;
    let seed = seed_eval::run(model, tok, s.seed)?;
    let headers = header_syntax(model, tok, &records, s.headers, s.seed)?;
    let humaneval = if s.humaneval_problems > 0 { Some(humaneval_pass(model, tok, s.humaneval_problems, s.humaneval_samples.max(1), s.seed)?) } else { None };
    Ok(json!({
        "checkpoint": checkpoint, "arch": model.config.arch, "parameters": burn::module::Module::num_params(model),
        "records": records.len(), "perplexity": ppl, "chunks": chunks, "seed_five_prompts": seed,
        "header_syntax": headers, "humaneval": humaneval,
    }))
}

/// Prints an evaluation for people.
pub fn print_report(r: &Value) {
    let f = |v: &Value| v.as_f64().map_or("–".into(), |x| format!("{x:.4}"));
    println!("checkpoint        {} ({}, {} parameters)", r["checkpoint"].as_str().unwrap_or(""), r["arch"].as_str().unwrap_or(""), r["parameters"]);
    let p = &r["perplexity"];
    println!("perplexity        {} over {} tokens of {} documents", f(&p["perplexity"]), p["tokens"], p["documents"]);
    println!("bits per byte     {}", f(&p["bits_per_byte"]));
    if !r["chunks"].is_null() {
        let c = &r["chunks"];
        println!("mean chunk        {} tokens, {} bytes ({} texts)", f(&c["mean_chunk_tokens"]), f(&c["mean_chunk_bytes"]), c["texts"]);
        println!("line starts       precision {}  recall {}", f(&c["line_starts"]["precision"]), f(&c["line_starts"]["recall"]));
        println!("statement starts  precision {}  recall {}", f(&c["statement_starts"]["precision"]), f(&c["statement_starts"]["recall"]));
    }
    let s = &r["seed_five_prompts"];
    println!("seed 5 prompts    syntax {}  pattern {}  code-token {}  overall {}", f(&s["syntax"]), f(&s["pattern"]), f(&s["code_token"]), f(&s["overall"]));
    let h = &r["header_syntax"];
    println!("header syntax     {}/{} valid ({}); {} added complete lines, {} of those valid", h["valid"], h["completions"], f(&h["rate"]), h["with_code"], f(&h["rate_with_code"]));
    if !r["humaneval"].is_null() {
        let h = &r["humaneval"];
        println!("HumanEval         pass@1 {} over {} problems × {} samples", f(&h["pass@1"]), h["problems"], h["samples"]);
    }
}

/// `hnet-gpt eval`.
pub fn run<B: Backend>(checkpoint: &Path, device: &B::Device, s: &EvalSettings, json_out: bool) -> Result<()> {
    let model = hnet_gpt_model::checkpoint::load::<B>(checkpoint, device).with_context(|| format!("loading {}", checkpoint.display()))?;
    let report = evaluate(&model, &crate::commands::tokenizer()?, s, checkpoint)?;
    if json_out {
        println!("{report}");
    } else {
        print_report(&report);
    }
    Ok(())
}
