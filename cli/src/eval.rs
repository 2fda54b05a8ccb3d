//! `hnet-gpt eval`: one report per checkpoint — perplexity over real tokens and bits per byte, chunk statistics
//! (with boundary precision/recall against line starts and Python statements), the seed's five-prompt evaluation,
//! the syntax validity of completions of held-out function headers, and optionally HumanEval pass@k.

use std::path::{Path, PathBuf};

use anyhow::{Context, Result};
use burn::tensor::backend::Backend;
use hnet_gpt::humaneval;
use hnet_gpt::humaneval::Sample;
use hnet_gpt::sandbox::Sandbox;
use hnet_gpt_model::eval::inspect::inspect_chunks_blocking;
use hnet_gpt_model::eval::pysyntax::{self, BoundaryMatch};
use hnet_gpt_model::eval::score::{document_logprobs, NllTotals};
use hnet_gpt_model::eval::seed_eval;
use hnet_gpt_model::generate::complete::{complete, Prompt};
use hnet_gpt_model::generate::sampling::SamplingParams;
use hnet_gpt_model::generate::stop::StopRules;
use hnet_gpt_model::generate::GenerateParams;
use hnet_gpt_model::tokenizer::Tokenizer;
use hnet_gpt_model::train::data::{self, split_of_key, Record, Split};
use hnet_gpt_model::Model;
use serde::Serialize;

use crate::run_dir;
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
    /// Score whole files of a prepared corpus (each one document, in windows past the context), taking files from
    /// every package in turn, with totals per package; otherwise its functions and classes, in order.
    pub whole_files: bool,
    /// Held-out function headers to complete.
    pub headers: usize,
    /// HumanEval problems to run (0 = skip).
    pub humaneval_problems: usize,
    /// Samples per HumanEval problem.
    pub humaneval_samples: usize,
    /// Seed of every sampled generation.
    pub seed: u64,
    /// Where HumanEval's tests run (verified up front; needed when `humaneval_problems > 0`).
    pub sandbox: Option<Sandbox>,
}

/// Which records were scored, and why.
#[derive(Debug, Clone, Serialize)]
pub struct Scored {
    /// Why these records: the run's held-out files, all of data the run never saw, or the hash split.
    pub reason: String,
    /// Split keys (files) scored.
    pub files: Vec<String>,
}

/// Evaluation records. With `valid_only`: when `checkpoint` comes from a run directory that trained on this data,
/// exactly the files that run held out (its recorded split); when the run trained on other data, all of it (none
/// of it was seen); without a run directory, the hash split at `valid_fraction`. Otherwise everything.
pub fn eval_records(s: &EvalSettings, checkpoint: &Path, tok: &Tokenizer) -> Result<(Vec<Record>, Scored)> {
    if s.data.iter().any(|p| data::corpus::is_prepared(p)) {
        return prepared_records(s, tok);
    }
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
    data::dedup(&mut records);
    let run_split = run_dir::run_of_checkpoint(checkpoint).and_then(|run| Some((run.clone(), run_dir::read_config(&run).ok()?.split?)));
    let reason = match (s.valid_only, run_split) {
        (false, _) => "all of the data (--all)".to_string(),
        (true, Some((run, split))) => {
            let resolved: Vec<PathBuf> = s.data.iter().map(|p| p.canonicalize().unwrap_or_else(|_| p.clone())).collect();
            let overlaps = |a: &Path, b: &Path| a.starts_with(b) || b.starts_with(a);
            let same_data = resolved == split.roots_resolved;
            let touches = resolved.iter().any(|a| split.roots_resolved.iter().any(|b| overlaps(a, b)))
                || (s.data.is_empty() && split.roots.is_empty());
            if same_data {
                let held: std::collections::HashSet<&str> = split.valid_keys.iter().map(String::as_str).collect();
                records.retain(|r| held.contains(data::split_key(r).as_str()));
                format!("the files {} held out from training (its recorded split)", run.display())
            } else if touches {
                anyhow::bail!(
                    "the data overlaps what {} trained on ({}) without being the same: pass exactly its --data to score \
                     its held-out files, or --all to score everything",
                    run.display(),
                    split.roots.iter().map(|p| p.display().to_string()).collect::<Vec<_>>().join(", ")
                );
            } else {
                format!("all of it: {} never trained on this data", run.display())
            }
        }
        (true, None) => {
            let fraction = if s.data.is_empty() { s.valid_fraction.max(0.15) } else { s.valid_fraction };
            records.retain(|r| split_of_key(&data::split_key(r), fraction) == Split::Valid);
            format!("the hash split's held-out part (--valid-fraction {fraction}): the checkpoint is not in a run directory, so what it trained on is unknown")
        }
    };
    anyhow::ensure!(!records.is_empty(), "no evaluation records ({reason} is empty)");
    let mut files: Vec<String> = records.iter().map(data::split_key).collect();
    files.dedup();
    Ok((records, Scored { reason, files }))
}

/// A prepared corpus: its held-out packages (its manifest's split, the same for every run trained on it), or all of it
/// with `--all`; files decoded from the shards and cut into functions and classes.
fn prepared_records(s: &EvalSettings, tok: &Tokenizer) -> Result<(Vec<Record>, Scored)> {
    anyhow::ensure!(s.data.len() == 1, "a prepared corpus is its own split: give it as the only --data");
    let corpus = data::corpus::Prepared::open(&s.data[0])?;
    corpus.check_tokenizer(tok)?;
    let files = corpus.records(s.valid_only.then_some(Split::Valid), tok)?;
    let records: Vec<Record> = if s.whole_files {
        round_robin_by_package(files)
    } else {
        // Functions and classes of each file, as a source tree of the same files would give (`load_path`).
        files.into_iter().flat_map(|file| data::python_records(&file.code, &file.repo, &file.path)).collect()
    };
    let reason = if s.valid_only {
        format!("the packages the prepared corpus {} holds out ({})", s.data[0].display(), corpus.manifest.split.valid_packages.join(", "))
    } else {
        format!("all of the prepared corpus {} (--all)", s.data[0].display())
    };
    anyhow::ensure!(!records.is_empty(), "no evaluation records ({reason} is empty)");
    let mut files: Vec<String> = records.iter().map(data::split_key).collect();
    files.dedup();
    Ok((records, Scored { reason, files }))
}

/// Files in turns: the first file of every package, then the second of every package, …, so that a token cap
/// samples every package rather than the first few.
fn round_robin_by_package(files: Vec<Record>) -> Vec<Record> {
    let mut by_package: std::collections::BTreeMap<String, std::collections::VecDeque<Record>> = Default::default();
    for f in files {
        by_package.entry(f.repo.clone()).or_default().push_back(f);
    }
    let mut out = Vec::new();
    while by_package.values().any(|q| !q.is_empty()) {
        out.extend(by_package.values_mut().filter_map(|q| q.pop_front()));
    }
    out
}

#[derive(Debug, Default, Serialize)]
struct Perplexity {
    documents: usize,
    tokens: usize,
    bytes: usize,
    nll_per_token: f64,
    perplexity: f64,
    bits_per_byte: f64,
    /// With `--whole-files`: totals per package (NLL in nats) and the files scored.
    #[serde(skip_serializing_if = "Option::is_none")]
    by_package: Option<std::collections::BTreeMap<String, PackageScore>>,
}

/// One package's share of a whole-file evaluation.
#[derive(Debug, Default, Serialize)]
struct PackageScore {
    files: Vec<String>,
    tokens: usize,
    bytes: usize,
    nll: f64,
}

/// Perplexity over real tokens only: each document scored on its own after `<|endoftext|>`, no padding anywhere.
fn perplexity<B: Backend>(
    model: &Model<B>,
    tok: &Tokenizer,
    records: &[Record],
    max_tokens: usize,
    per_package: bool,
) -> Result<Perplexity> {
    let mut totals = NllTotals::default();
    let mut by_package: std::collections::BTreeMap<String, PackageScore> = Default::default();
    for r in records {
        if totals.tokens >= max_tokens {
            break;
        }
        let ids = tok.encode(&r.code)?;
        if ids.is_empty() {
            continue;
        }
        let lp = document_logprobs(model, &ids, tok.eos_id())?;
        let doc_nll = totals.add(&lp, r.code.len());
        if per_package {
            let p = by_package.entry(r.repo.clone()).or_default();
            p.files.push(r.path.clone());
            (p.tokens, p.bytes, p.nll) = (p.tokens + lp.len(), p.bytes + r.code.len(), p.nll + doc_nll);
        }
    }
    anyhow::ensure!(totals.tokens > 0, "nothing to score");
    Ok(Perplexity {
        documents: totals.documents,
        tokens: totals.tokens,
        bytes: totals.bytes,
        nll_per_token: totals.nll_per_token(),
        perplexity: totals.perplexity(),
        bits_per_byte: totals.bits_per_byte(),
        by_package: per_package.then_some(by_package),
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
    /// Headers completed.
    completions: usize,
    /// Completions that added at least one complete non-blank line. The others, closed with `pass`, parse
    /// trivially and say nothing about the model: they are not counted in `rate`.
    with_code: usize,
    /// Of `with_code`, how many parse.
    valid: usize,
    /// `valid / with_code`; `null` when no completion added a complete line.
    rate: Option<f64>,
    examples: Vec<Value>,
}

/// Completes held-out function headers and checks that the (truncation-closed) results parse.
fn header_syntax<B: Backend>(model: &Model<B>, tok: &Tokenizer, records: &[Record], n: usize, seed: u64) -> Result<HeaderSyntax> {
    let headers: Vec<String> =
        records.iter().filter(|r| r.language == "python").filter_map(|r| pysyntax::function_header(&r.code)).take(n).collect();
    let (mut with_code, mut valid, mut examples) = (0, 0, Vec::new());
    for (i, header) in headers.iter().enumerate() {
        let params = GenerateParams {
            sampling: SamplingParams { temperature: 0.2, top_k: 40, top_p: 0.95, repetition_penalty: 1.0, repetition_window: None },
            max_new_tokens: 64,
            seed: seed.wrapping_add(i as u64),
            stop_tokens: tok.stop_tokens(),
        };
        let stop = StopRules::strings(&["\ndef ", "\nclass ", "\nif __name__"].map(String::from));
        let (completion, _) = complete(model, tok, Prompt::Text(header), params, &stop, |_| {})?;
        let closed = pysyntax::close_truncated(header, &completion);
        let ok = pysyntax::is_valid(&closed);
        let added = completion.rfind('\n').is_some_and(|i| !completion[..i].trim().is_empty());
        with_code += added as usize;
        valid += (added && ok) as usize;
        if examples.len() < 3 {
            examples.push(json!({"header": header, "completion": completion, "valid": ok}));
        }
    }
    Ok(HeaderSyntax {
        completions: headers.len(),
        with_code,
        valid,
        rate: (with_code > 0).then(|| valid as f64 / with_code as f64),
        examples,
    })
}

/// Completions of `problems`' prompts, `samples` each (temperature 0.2 for one sample, 0.8 for pass@k with more,
/// as in the Codex paper), cut at the Codex stop sequences.
pub fn humaneval_completions<B: Backend>(
    model: &Model<B>,
    tok: &Tokenizer,
    problems: &[humaneval::Problem],
    samples: usize,
    seed: u64,
) -> Result<Vec<Sample>> {
    let stop = StopRules::strings(&humaneval::STOP.map(String::from));
    let temperature = humaneval_temperature(samples);
    let mut out = Vec::new();
    for (i, p) in problems.iter().enumerate() {
        for s in 0..samples {
            let params = GenerateParams {
                sampling: SamplingParams {
                    temperature: temperature as f32,
                    top_k: 0,
                    top_p: 0.95,
                    repetition_penalty: 1.0,
                    repetition_window: None,
                },
                max_new_tokens: 128,
                seed: seed.wrapping_add((i * samples + s) as u64),
                stop_tokens: tok.stop_tokens(),
            };
            let (completion, _) = complete(model, tok, Prompt::Text(&p.prompt), params, &stop, |_| {})?;
            out.push(Sample { task_id: p.task_id.clone(), completion });
        }
    }
    Ok(out)
}

/// HumanEval's sampling temperature for `samples` completions per problem, as reported (an f64: an f32's 0.8 reads
/// 0.800000011920929 in JSON).
pub(crate) fn humaneval_temperature(samples: usize) -> f64 {
    if samples == 1 {
        0.2
    } else {
        0.8
    }
}

/// HumanEval pass@k on the first `problems` problems with `samples` completions each, run in `sandbox`.
pub fn humaneval_pass<B: Backend>(
    model: &Model<B>,
    tok: &Tokenizer,
    sandbox: &Sandbox,
    problems: usize,
    samples: usize,
    seed: u64,
) -> Result<Value> {
    let all = humaneval::problems();
    let completions = humaneval_completions(model, tok, &all[..problems.min(all.len())], samples, seed)?;
    let results = humaneval::score(sandbox, &all, &completions, || {});
    let mut out = humaneval::summary(&results);
    out["temperature"] = json!(humaneval_temperature(samples));
    out["sandboxed"] = json!(sandbox.is_isolated());
    out["memory_bound"] = json!(sandbox.memory_bound());
    out["solved"] = json!(results.iter().filter(|r| r.passed).map(|r| r.task_id.clone()).collect::<std::collections::BTreeSet<_>>());
    Ok(out)
}

/// Runs every evaluation on a loaded model.
pub fn evaluate<B: Backend>(model: &Model<B>, tok: &Tokenizer, s: &EvalSettings, checkpoint: &Path) -> Result<Value> {
    let (records, scored) = eval_records(s, checkpoint, tok)?;
    anyhow::ensure!(
        !s.whole_files || (s.data.len() == 1 && data::corpus::is_prepared(&s.data[0])),
        "--whole-files scores the files of a prepared corpus: give one as --data"
    );
    let ppl = perplexity(model, tok, &records, s.max_tokens, s.whole_files)?;
    let chunks = chunk_stats(model, tok, &records)?;
    let seed = seed_eval::run(model, tok, s.seed)?;
    let headers = header_syntax(model, tok, &records, s.headers, s.seed)?;
    let humaneval = match (&s.sandbox, s.humaneval_problems) {
        (Some(sandbox), n) if n > 0 => Some(humaneval_pass(model, tok, sandbox, n, s.humaneval_samples.max(1), s.seed)?),
        _ => None,
    };
    Ok(json!({
        "checkpoint": checkpoint, "arch": model.config.arch, "parameters": burn::module::Module::num_params(model),
        "records": records.len(), "scored": scored, "perplexity": ppl, "chunks": chunks, "seed_five_prompts": seed,
        "header_syntax": headers, "humaneval": humaneval,
    }))
}

/// Prints an evaluation for people.
pub fn print_report(r: &Value) {
    let f = |v: &Value| v.as_f64().map_or("n/a".into(), |x| format!("{x:.4}"));
    println!(
        "checkpoint        {} ({}, {} parameters)",
        r["checkpoint"].as_str().unwrap_or(""),
        r["arch"].as_str().unwrap_or(""),
        r["parameters"]
    );
    let p = &r["perplexity"];
    let files = r["scored"]["files"].as_array().map_or(0, Vec::len);
    println!("scored            {} files: {}", files, r["scored"]["reason"].as_str().unwrap_or(""));
    println!("perplexity        {} over {} tokens of {} documents", f(&p["perplexity"]), p["tokens"], p["documents"]);
    println!("bits per byte     {}", f(&p["bits_per_byte"]));
    if !r["chunks"].is_null() {
        let c = &r["chunks"];
        println!("mean chunk        {} tokens, {} bytes ({} texts)", f(&c["mean_chunk_tokens"]), f(&c["mean_chunk_bytes"]), c["texts"]);
        for (label, key) in [("line starts", "line_starts"), ("statement starts", "statement_starts")] {
            let m = &c[key];
            println!(
                "{label:<17} precision {} (chance {})  recall {} (chance {})  over {} boundaries, {} references",
                f(&m["precision"]),
                f(&m["chance_precision"]),
                f(&m["recall"]),
                f(&m["chance_recall"]),
                m["predicted"],
                m["reference"]
            );
        }
    }
    let s = &r["seed_five_prompts"];
    println!(
        "seed 5 prompts    syntax {}  pattern {}  code-token {}  overall {}",
        f(&s["syntax"]),
        f(&s["pattern"]),
        f(&s["code_token"]),
        f(&s["overall"])
    );
    let h = &r["header_syntax"];
    println!(
        "header syntax     {} of {} completions with ≥ 1 complete line parse ({}); {} of {} added no complete line",
        h["valid"],
        h["with_code"],
        f(&h["rate"]),
        h["completions"].as_u64().unwrap_or(0) - h["with_code"].as_u64().unwrap_or(0),
        h["completions"]
    );
    if !r["humaneval"].is_null() {
        let h = &r["humaneval"];
        println!("HumanEval         pass@1 {} over {} problems × {} samples", f(&h["pass@1"]), h["problems"], h["samples"]);
    }
}

/// `hnet-gpt eval`.
pub fn run<B: Backend>(checkpoint: &Path, device: &B::Device, s: &EvalSettings, json_out: bool) -> Result<()> {
    let model =
        hnet_gpt_model::io::checkpoint::load::<B>(checkpoint, device).with_context(|| format!("loading {}", checkpoint.display()))?;
    let report = evaluate(&model, &model.tokenizer.load()?, s, checkpoint)?;
    if json_out {
        println!("{report}");
    } else {
        print_report(&report);
    }
    Ok(())
}
