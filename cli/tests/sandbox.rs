//! The Python sandbox stops what generated code must not do, and HumanEval's reference solutions pass in it.

use std::time::Duration;

use hnet_gpt::humaneval::{self, pass_at_k};
use hnet_gpt::sandbox::{default_python, run_python, Limits, Verdict};

fn run(program: &str, limits: &Limits) -> hnet_gpt::sandbox::Outcome {
    run_python(&default_python(), program, limits).unwrap()
}

fn quick() -> Limits {
    Limits { timeout: Duration::from_secs(5), cpu_seconds: 5, ..Limits::default() }
}

#[test]
fn a_normal_program_passes_and_a_failing_one_fails() {
    let ok = run("print(sum(range(10)))", &quick());
    assert_eq!(ok.verdict, Verdict::Passed, "{}", ok.stderr);
    assert_eq!(ok.stdout.trim(), "45");
    assert_eq!(run("assert 1 == 2", &quick()).verdict, Verdict::Failed(1));
}

#[test]
fn an_infinite_loop_is_stopped() {
    let out = run("while True:\n    pass\n", &Limits { timeout: Duration::from_secs(2), cpu_seconds: 30, ..Limits::default() });
    assert_eq!(out.verdict, Verdict::TimedOut);
    assert!(out.elapsed < Duration::from_secs(4), "{:?}", out.elapsed);
    // The CPU limit stops it too, when it comes first (SIGXCPU or SIGKILL).
    let out = run("while True:\n    pass\n", &Limits { timeout: Duration::from_secs(20), cpu_seconds: 1, ..Limits::default() });
    assert!(matches!(out.verdict, Verdict::Signaled(_)), "{:?}", out.verdict);
}

#[test]
fn a_fork_bomb_is_contained() {
    let bomb = "import os\nwhile True:\n    try:\n        os.fork()\n    except OSError:\n        pass\n";
    let out = run(bomb, &Limits { timeout: Duration::from_secs(3), processes: 32, ..Limits::default() });
    assert_ne!(out.verdict, Verdict::Passed);
    assert!(out.elapsed < Duration::from_secs(6), "{:?}", out.elapsed);
    // Nothing of it survives: its process group was killed.
    std::thread::sleep(Duration::from_millis(500));
    let left = std::process::Command::new("pgrep").args(["-g", &out.pid.to_string()]).output().unwrap();
    assert!(String::from_utf8_lossy(&left.stdout).trim().is_empty(), "leftover processes: {}", String::from_utf8_lossy(&left.stdout));
}

#[test]
fn a_ten_gigabyte_allocation_fails() {
    let out = run("x = bytearray(10 * 1024 ** 3)\nprint('allocated')", &quick());
    assert_ne!(out.verdict, Verdict::Passed);
    assert!(out.stderr.contains("MemoryError"), "{}", out.stderr);
    assert!(!out.stdout.contains("allocated"));
}

#[test]
fn large_files_are_refused() {
    let out = run("open('big', 'wb').write(b'x' * (64 * 1024 * 1024))", &quick());
    assert_ne!(out.verdict, Verdict::Passed, "{}", out.stderr);
}

#[test]
fn the_network_is_unreachable() {
    let program = "import socket\ns = socket.socket()\ns.settimeout(3)\ns.connect(('1.1.1.1', 80))\nprint('connected')\n";
    let out = run(program, &quick());
    assert_ne!(out.verdict, Verdict::Passed);
    assert!(!out.stdout.contains("connected"));
    // On this machine (root, or unprivileged user namespaces) the program gets its own network namespace.
    assert!(out.network_isolated, "no network namespace: {}", out.stderr);
    assert!(out.stderr.contains("OSError") || out.stderr.contains("unreachable"), "{}", out.stderr);
}

#[test]
fn canonical_humaneval_solutions_pass_and_broken_ones_fail() {
    let problems = humaneval::problems();
    assert_eq!(problems.len(), 164);
    for p in &problems {
        let out = run(&humaneval::program(p, &p.canonical_solution), &Limits::default());
        assert_eq!(out.verdict, Verdict::Passed, "{}: {}", p.task_id, out.stderr);
    }
    let p = &problems[0];
    let out = run(&humaneval::program(p, "    return not True\n"), &Limits::default());
    assert_eq!(out.verdict, Verdict::Failed(1), "a wrong solution must fail its tests");
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
