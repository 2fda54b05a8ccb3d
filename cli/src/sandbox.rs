//! Running untrusted Python (model completions) in a sandbox: a separate `python3` process, never in-process, with
//! - a wall-clock timeout, after which the whole process group is killed;
//! - rlimits: CPU seconds, address space, file size, number of processes, no core dumps;
//! - a fresh temporary directory as working directory and `$HOME`, an empty environment, `python3 -I`;
//! - no network: a new network namespace (only loopback, down) where the kernel permits it;
//! - when started as root: the program runs as `nobody` (so the process limit applies: root ignores it).
//!
//! If a network namespace cannot be made (unprivileged user without user namespaces), the run still happens and
//! [`Outcome::network_isolated`] says plainly that it was not isolated.

use std::io::Read;
use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

/// Resource limits of one run.
#[derive(Debug, Clone)]
pub struct Limits {
    /// Wall-clock limit.
    pub timeout: Duration,
    /// CPU-time limit (RLIMIT_CPU), seconds.
    pub cpu_seconds: u64,
    /// Address-space limit (RLIMIT_AS), bytes.
    pub memory_bytes: u64,
    /// Largest file the program may write (RLIMIT_FSIZE), bytes.
    pub file_bytes: u64,
    /// Processes (RLIMIT_NPROC) for the user the program runs as.
    pub processes: u64,
}

impl Default for Limits {
    fn default() -> Self {
        Self { timeout: Duration::from_secs(10), cpu_seconds: 10, memory_bytes: 1 << 30, file_bytes: 16 << 20, processes: 64 }
    }
}

/// How a run ended.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Verdict {
    /// Exit status 0.
    Passed,
    /// Non-zero exit status.
    Failed(i32),
    /// Killed by a signal (e.g. SIGXCPU at the CPU limit, SIGKILL).
    Signaled(i32),
    /// The wall-clock limit was reached; the process group was killed.
    TimedOut,
}

/// The result of a sandboxed run.
#[derive(Debug, Clone)]
pub struct Outcome {
    /// How it ended.
    pub verdict: Verdict,
    /// Standard output (at most 64 KiB kept).
    pub stdout: String,
    /// Standard error (at most 64 KiB kept).
    pub stderr: String,
    /// Whether the program ran in its own network namespace.
    pub network_isolated: bool,
    /// Wall-clock time.
    pub elapsed: Duration,
    /// Process (and process group) id the program ran as.
    pub pid: u32,
}

/// The Python interpreter to use: Debian's `/usr/bin/python3` when present (readable by `nobody`), else `python3`.
pub fn default_python() -> PathBuf {
    let debian = Path::new("/usr/bin/python3");
    if debian.exists() { debian.to_path_buf() } else { PathBuf::from("python3") }
}

fn temp_dir() -> std::io::Result<PathBuf> {
    use std::os::unix::fs::PermissionsExt;
    let nanos = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map_or(0, |d| d.subsec_nanos());
    let dir = std::env::temp_dir().join(format!("hnet-sandbox-{}-{nanos}", std::process::id()));
    std::fs::create_dir(&dir)?;
    // World-writable (sticky) so the program, possibly running as `nobody`, can write there.
    std::fs::set_permissions(&dir, std::fs::Permissions::from_mode(0o1777))?;
    Ok(dir)
}

fn read_capped(mut r: impl Read + Send + 'static) -> std::thread::JoinHandle<String> {
    std::thread::spawn(move || {
        let mut buf = Vec::new();
        let mut chunk = [0u8; 8192];
        while let Ok(n) = r.read(&mut chunk) {
            if n == 0 {
                break;
            }
            if buf.len() < 64 * 1024 {
                buf.extend_from_slice(&chunk[..n]);
            }
        }
        String::from_utf8_lossy(&buf).into_owned()
    })
}

/// Runs `program` (Python source) under `limits`.
pub fn run_python(python: &Path, program: &str, limits: &Limits) -> std::io::Result<Outcome> {
    let dir = temp_dir()?;
    let result = run_in(&dir, python, program, limits, true).or_else(|e| {
        // No network namespace here (e.g. no privileges): run anyway, and say so.
        if e.raw_os_error() == Some(libc::EPERM) || e.raw_os_error() == Some(libc::EINVAL) {
            run_in(&dir, python, program, limits, false)
        } else {
            Err(e)
        }
    });
    let _ = std::fs::remove_dir_all(&dir);
    result
}

fn run_in(dir: &Path, python: &Path, program: &str, limits: &Limits, isolate_network: bool) -> std::io::Result<Outcome> {
    let file = dir.join("program.py");
    std::fs::write(&file, program)?;
    let mut cmd = Command::new(python);
    cmd.arg("-I")
        .arg(&file)
        .current_dir(dir)
        .env_clear()
        .env("PATH", "/usr/bin:/bin")
        .env("HOME", dir)
        .env("PYTHONDONTWRITEBYTECODE", "1")
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped());
    let l = limits.clone();
    // SAFETY: only async-signal-safe libc calls between fork and exec.
    unsafe {
        cmd.pre_exec(move || {
            if libc::setsid() < 0 {
                return Err(std::io::Error::last_os_error());
            }
            let root = libc::geteuid() == 0;
            if isolate_network {
                let flags = if root { libc::CLONE_NEWNET } else { libc::CLONE_NEWUSER | libc::CLONE_NEWNET };
                if libc::unshare(flags) != 0 {
                    return Err(std::io::Error::last_os_error());
                }
            }
            let set = |resource, value: u64| {
                let lim = libc::rlimit { rlim_cur: value as libc::rlim_t, rlim_max: value as libc::rlim_t };
                libc::setrlimit(resource, &lim)
            };
            for (resource, value) in [
                (libc::RLIMIT_CPU, l.cpu_seconds),
                (libc::RLIMIT_AS, l.memory_bytes),
                (libc::RLIMIT_FSIZE, l.file_bytes),
                (libc::RLIMIT_NPROC, l.processes),
                (libc::RLIMIT_CORE, 0),
            ] {
                if set(resource, value) != 0 {
                    return Err(std::io::Error::last_os_error());
                }
            }
            if root {
                // Root ignores RLIMIT_NPROC: drop to `nobody`.
                if libc::setgroups(0, std::ptr::null()) != 0 || libc::setgid(65534) != 0 || libc::setuid(65534) != 0 {
                    return Err(std::io::Error::last_os_error());
                }
            }
            Ok(())
        });
    }
    let start = Instant::now();
    let mut child = cmd.spawn()?;
    let pgid = child.id() as i32;
    let out = read_capped(child.stdout.take().expect("piped"));
    let err = read_capped(child.stderr.take().expect("piped"));
    let status = loop {
        if let Some(status) = child.try_wait()? {
            break Some(status);
        }
        if start.elapsed() >= limits.timeout {
            break None;
        }
        std::thread::sleep(Duration::from_millis(5));
    };
    // Kill the whole group either way: a fork bomb's children outlive their parent, and a child forked while the
    // signal was being delivered can miss it, so repeat until the group is gone (bounded).
    let deadline = Instant::now() + Duration::from_secs(3);
    while unsafe { libc::killpg(pgid, libc::SIGKILL) } == 0 && Instant::now() < deadline {
        let _ = child.try_wait();
        std::thread::sleep(Duration::from_millis(10));
    }
    let verdict = match status {
        None => {
            let _ = child.wait();
            Verdict::TimedOut
        }
        Some(s) => {
            use std::os::unix::process::ExitStatusExt;
            match (s.code(), s.signal()) {
                (Some(0), _) => Verdict::Passed,
                (Some(c), _) => Verdict::Failed(c),
                (None, Some(sig)) => Verdict::Signaled(sig),
                (None, None) => Verdict::Failed(-1),
            }
        }
    };
    Ok(Outcome {
        verdict,
        stdout: out.join().unwrap_or_default(),
        stderr: err.join().unwrap_or_default(),
        network_isolated: isolate_network,
        elapsed: start.elapsed(),
        pid: pgid as u32,
    })
}
