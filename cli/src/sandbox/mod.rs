//! Running untrusted Python (model completions) so that it cannot touch anything that matters — or not at all.
//!
//! Generated code is code from a model: hostile until proven otherwise. It runs only inside
//! [bubblewrap](https://github.com/containers/bubblewrap) (`bwrap`, Debian's `bubblewrap`), which gives it
//! - **its own user, PID, network, IPC and UTS namespaces**: no network at all (a loopback of its own, so a
//!   server on the host's 127.0.0.1 is out of reach), and killing the sandbox's first process kills every
//!   descendant, `setsid()` ones included (the kernel tears a PID namespace down with its init);
//! - **a read-only view of `/usr`** (and the interpreter's own prefix when it lives elsewhere) and nothing else
//!   of the host: no `/home`, `/root`, `/etc`, repository or host `/tmp`;
//! - **a private writable `/tmp`**: a size-capped tmpfs that disappears with the sandbox (the cap bounds the
//!   total bytes written; every file with data costs at least a page);
//! - **limits** set inside, before the program starts: CPU seconds, address space, file size, processes
//!   (counted per user namespace, so a fork bomb meets its own limit, not the user's), no core dumps;
//! - **a control group of its own** ([`cgroup`]): memory (with swap) and processes bounded for the whole run, so
//!   memfds, shared memory, tmpfs files and many processes count together; where no group can be made the sandbox
//!   refuses unless the caller accepts per-process limits only ([`MemoryBound::PerProcess`]);
//! - **a seccomp filter** ([`seccomp`]): ptrace, process_vm_*, io_uring, bpf, perf_event_open, keyrings, mounts and
//!   namespaces fail;
//! - **a scrubbed environment** (`PATH`, `HOME=/tmp`, a locale) and no capabilities; when started as root, it
//!   first drops to `nobody` so that no process in it is root on the host (root would ignore the process limit).
//!
//! The isolation is *verified*, not assumed: [`Sandbox::new`] runs a probe inside and refuses (a
//! [`SandboxError`] naming what is missing and how to get it) unless the probe sees a private PID namespace,
//! only a loopback interface, none of the host paths that must stay hidden, nothing writable outside `/tmp`,
//! the limits in force and the seccomp filter refusing. The only way around it is [`Sandbox::unconfined`], which
//! the CLI offers behind the loudly named `--unsafe-no-sandbox`.
//!
//! **What a run reports is not the program's to say.** The program is a trusted *harness* (ours) that gets its
//! input on standard input and file descriptor 3, a pipe to us, as its report channel; the sandbox's launcher writes
//! `started` there before the harness runs, so a program that merely prints `bwrap: …` cannot pass for a sandbox
//! that failed to start. The HumanEval harness ([`crate::humaneval`]) runs untrusted code in a second process that
//! never holds that descriptor.

pub mod cgroup;
pub mod seccomp;

use std::io::{Read, Write};
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd};
use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use serde::Deserialize;

use cgroup::{Cgroups, RunGroup};

/// Resource limits of one run.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Limits {
    /// Wall-clock limit; afterwards everything the program started is killed.
    pub timeout: Duration,
    /// CPU-time limit (RLIMIT_CPU), seconds.
    pub cpu_seconds: u64,
    /// Memory: the whole run's (the control group's `memory.max`, swap included) and each process's address space
    /// (RLIMIT_AS), bytes.
    pub memory_bytes: u64,
    /// Largest file the program may write (RLIMIT_FSIZE), bytes.
    pub file_bytes: u64,
    /// Processes and threads in the sandbox (the control group's `pids.max`, and RLIMIT_NPROC per user namespace).
    pub processes: u64,
    /// Size of the private writable `/tmp` (a tmpfs): every byte the program can write anywhere.
    pub disk_bytes: u64,
}

impl Default for Limits {
    fn default() -> Self {
        Self {
            timeout: Duration::from_secs(10),
            cpu_seconds: 10,
            memory_bytes: 1 << 30,
            file_bytes: 16 << 20,
            processes: 64,
            disk_bytes: 64 << 20,
        }
    }
}

/// How the memory of a run is bounded.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum MemoryBound {
    /// By a control group per run: everything the run holds counts (refused where none can be made).
    Cgroup,
    /// By per-process limits only (RLIMIT_AS, RLIMIT_NPROC): memfds, shared memory and many processes together can
    /// hold more than `memory_bytes`. Only when the user asked for it.
    PerProcess,
}

/// How a run ended.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Verdict {
    /// The program exited with this status (0 is not yet a pass: the caller decides what a pass is).
    Exited(i32),
    /// Killed by a signal (e.g. SIGXCPU at the CPU limit). Inside bubblewrap a signal shows as exit 128 + n.
    Signaled(i32),
    /// The wall-clock limit was reached; everything the program started was killed.
    TimedOut,
    /// The sandbox itself could not start this run (bubblewrap's own error); the program did not run.
    Refused(String),
}

/// The result of one run.
#[derive(Debug, Clone)]
pub struct Outcome {
    /// How it ended.
    pub verdict: Verdict,
    /// The last 64 KiB of standard output.
    pub stdout: String,
    /// The last 64 KiB of standard error (the end holds the traceback).
    pub stderr: String,
    /// What the harness wrote to its report channel (fd 3), after the launcher's `started` line; at most 64 KiB.
    pub report: String,
    /// The run's memory limit killed a process (the control group's OOM count).
    pub memory_limit_hit: bool,
    /// Wall-clock time.
    pub elapsed: Duration,
}

/// Why generated code may not run here.
#[derive(Debug, thiserror::Error)]
pub enum SandboxError {
    #[error(
        "generated code runs only inside a sandbox, and bubblewrap (`bwrap`) is not on PATH.\n  \
         Install it: `sudo apt-get install bubblewrap` (Debian, Ubuntu), `sudo dnf install bubblewrap` (Fedora),\n  \
         `sudo pacman -S bubblewrap` (Arch); `scripts/setup.sh` installs it.\n  \
         Or, if you accept that the code may read and change your files and use your network: --unsafe-no-sandbox"
    )]
    BwrapMissing,
    #[error(
        "bubblewrap at {path} is too old: it lacks `{flag}` (needed to {why}); install bubblewrap 0.7 or newer, \
         or pass --unsafe-no-sandbox to run generated code unconfined"
    )]
    BwrapTooOld { path: String, flag: &'static str, why: &'static str },
    #[error(
        "bubblewrap could not create the sandbox: {stderr}\n  \
         It needs unprivileged user namespaces. Enable them (as root): `sysctl kernel.unprivileged_userns_clone=1` \
         (older Debian), or on Ubuntu 24.04+ `sysctl kernel.apparmor_restrict_unprivileged_userns=0`; inside a \
         container, allow user namespaces (e.g. docker --security-opt seccomp=unconfined).\n  \
         Or pass --unsafe-no-sandbox to run generated code unconfined"
    )]
    Namespaces { stderr: String },
    #[error(
        "the sandbox is not isolated as it must be: {missing}.\n  Refusing to run generated code. \
         (Is `{bwrap}` really bubblewrap?) Pass --unsafe-no-sandbox to run it unconfined anyway"
    )]
    NotIsolated { bwrap: String, missing: String },
    #[error(
        "the sandbox cannot bound a sample's memory as a whole: {why}.\n  Without a control group per run, memfds, \
         shared memory and many processes together can take more than the memory limit. Run as root or in a delegated \
         cgroup, or pass --sandbox-without-cgroup to run with per-process limits only"
    )]
    NoCgroup { why: String },
    #[error("the sandbox's seccomp filter: {0}")]
    Seccomp(#[from] seccomp::FilterError),
    #[error("the Python interpreter {0} does not exist")]
    NoPython(String),
    #[error("starting the sandbox: {0}")]
    Io(#[from] std::io::Error),
}

/// The Python interpreter to use: Debian's `/usr/bin/python3` when present, else the first `python3` on PATH.
pub fn default_python() -> PathBuf {
    let debian = Path::new("/usr/bin/python3");
    if debian.exists() {
        debian.to_path_buf()
    } else {
        find_on_path("python3").unwrap_or_else(|| PathBuf::from("python3"))
    }
}

fn find_on_path(name: &str) -> Option<PathBuf> {
    std::env::var_os("PATH").and_then(|p| std::env::split_paths(&p).map(|d| d.join(name)).find(|f| f.is_file()))
}

/// Where untrusted programs run: inside a verified bubblewrap sandbox, or — only when the user asked for it —
/// unconfined.
#[derive(Debug, Clone)]
pub struct Sandbox {
    python: PathBuf,
    limits: Limits,
    /// The full `bwrap … python` argv prefix; `None` = unconfined.
    bwrap: Option<Vec<String>>,
    /// Where runs get their control group; `None` = per-process limits only.
    cgroups: Option<Cgroups>,
    /// The seccomp filters bubblewrap installs (one per `--add-seccomp-fd`).
    seccomp: Vec<Vec<u8>>,
}

/// File descriptors the sandbox's first process gets: the report channel, and bubblewrap's seccomp filters.
const REPORT_FD: i32 = 3;
const SECCOMP_FDS: [i32; 2] = [10, 11];

/// Sets the limits, says `started` on the report channel, then replaces itself with a fresh isolated interpreter
/// running the harness (its last argument). Runs inside the sandbox, so the process limit counts only the sandbox's
/// processes (a per-user-namespace count); a failed `setrlimit` raises, and the harness never starts.
const LAUNCHER: &str = "import os, sys, resource as r
cpu, mem, fsize, nproc = map(int, sys.argv[1:5])
for k, v in ((r.RLIMIT_CPU, cpu), (r.RLIMIT_AS, mem), (r.RLIMIT_FSIZE, fsize), (r.RLIMIT_NPROC, nproc), (r.RLIMIT_CORE, 0)):
    r.setrlimit(k, (v, v))
os.write(3, b'started\\n')
os.execv(sys.executable, [sys.executable, '-I', '-c', sys.argv[5]])
";

/// What the verification probe reports from inside the sandbox.
#[derive(Debug, Deserialize)]
struct Probe {
    pid: u32,
    interfaces: Vec<String>,
    visible: Vec<String>,
    writable: Vec<String>,
    limits: [u64; 4],
    uid: u32,
    /// errno of ptrace(PTRACE_TRACEME) and io_uring_setup(1, NULL): EPERM under the filter.
    refused: [i32; 2],
}

impl Sandbox {
    /// A verified bubblewrap sandbox for `python`, or an error that says what is missing.
    pub fn new(python: &Path, limits: Limits, memory: MemoryBound) -> Result<Self, SandboxError> {
        let python = resolve_python(python)?;
        let bwrap_path = find_on_path("bwrap").ok_or(SandboxError::BwrapMissing)?;
        let bwrap = bwrap_path.display().to_string();
        let help = Command::new(&bwrap_path).arg("--help").output()?;
        let help = String::from_utf8_lossy(&help.stdout).into_owned() + &String::from_utf8_lossy(&help.stderr);
        for (flag, why) in [("--size", "cap the bytes written"), ("--add-seccomp-fd", "install a seccomp filter")] {
            if !help.contains(flag) {
                return Err(SandboxError::BwrapTooOld { path: bwrap, flag, why });
            }
        }
        let cgroups = match (Cgroups::find(), memory) {
            (Ok(c), _) => Some(c),
            (Err(_), MemoryBound::PerProcess) => None,
            (Err(why), MemoryBound::Cgroup) => return Err(SandboxError::NoCgroup { why }),
        };
        let argv = bwrap_argv(&bwrap, &python, &limits, help.contains("--disable-userns"));
        let sandbox = Self { python, limits, bwrap: Some(argv), cgroups, seccomp: seccomp::filters()? };
        sandbox.verify(&bwrap)?;
        Ok(sandbox)
    }

    /// Runs programs with only rlimits, a timeout and a scrubbed environment: they can read and write the user's
    /// files and use the network. For `--unsafe-no-sandbox` only.
    pub fn unconfined(python: &Path, limits: Limits) -> Result<Self, SandboxError> {
        Ok(Self { python: resolve_python(python)?, limits, bwrap: None, cgroups: None, seccomp: vec![] })
    }

    /// Whether programs run isolated.
    pub fn is_isolated(&self) -> bool {
        self.bwrap.is_some()
    }

    /// Whether each run's memory and processes are bounded as a whole (a control group per run).
    pub fn bounds_memory_as_a_whole(&self) -> bool {
        self.cgroups.is_some()
    }

    /// How a run's memory is bounded, for reports: `cgroup`, `per-process` or (unconfined) `none`.
    pub fn memory_bound(&self) -> &'static str {
        match (self.is_isolated(), self.bounds_memory_as_a_whole()) {
            (false, _) => "none",
            (true, true) => "cgroup",
            (true, false) => "per-process",
        }
    }

    /// The limits of every run.
    pub fn limits(&self) -> &Limits {
        &self.limits
    }

    /// Runs the probe and checks every isolation property it reports.
    fn verify(&self, bwrap: &str) -> Result<(), SandboxError> {
        let home = std::env::var("HOME").unwrap_or_default();
        let cwd = std::env::current_dir().map(|d| d.display().to_string()).unwrap_or_default();
        let must_hide: Vec<String> =
            ["/home", "/root", "/etc", "/var", "/run", "/srv", "/mnt", "/media", "/opt", home.as_str(), cwd.as_str()]
                .iter()
                .filter(|p| !p.is_empty() && *p != &"/" && !Path::new(p).starts_with("/usr"))
                .map(|p| p.to_string())
                .collect();
        let probe = format!(
            "import ctypes, json, os, socket, resource as r\n\
             hidden = {hidden}\n\
             writable = [d for d in ('/', '/usr', '/dev', '/dev/shm') if os.access(d, os.W_OK)]\n\
             libc = ctypes.CDLL(None, use_errno=True)\n\
             def errno_of(*call):\n    ctypes.set_errno(0)\n    return ctypes.get_errno() if libc.syscall(*call) == -1 else 0\n\
             print(json.dumps({{'pid': os.getpid(), 'uid': os.getuid(), \
             'interfaces': [n for _, n in socket.if_nameindex()], \
             'visible': [p for p in hidden if os.path.lexists(p)], 'writable': writable, \
             'limits': [r.getrlimit(k)[0] for k in (r.RLIMIT_CPU, r.RLIMIT_AS, r.RLIMIT_FSIZE, r.RLIMIT_NPROC)], \
             'refused': [errno_of({ptrace}, 0, 0, 0, 0), errno_of({io_uring}, 1, 0)]}}))\n",
            hidden = serde_json::to_string(&must_hide).expect("strings serialise"),
            ptrace = libc::SYS_ptrace,
            io_uring = libc::SYS_io_uring_setup,
        );
        let out = self.run(&probe, b"");
        let report: Probe = match (&out.verdict, serde_json::from_str(out.stdout.trim())) {
            (Verdict::Exited(0), Ok(report)) => report,
            (Verdict::Refused(msg), _) => return Err(SandboxError::Namespaces { stderr: msg.clone() }),
            _ => {
                return Err(SandboxError::NotIsolated {
                    bwrap: bwrap.into(),
                    missing: format!("the probe did not run ({:?}): {}", out.verdict, last_line(out.stderr.trim())),
                });
            }
        };
        let mut missing = Vec::new();
        // In a fresh PID namespace bubblewrap's init is 1 and the program 2; on the host it would be much larger.
        if report.pid > 3 {
            missing.push(format!("no private PID namespace (the probe ran as pid {})", report.pid));
        }
        if report.interfaces != ["lo"] {
            missing.push(format!("network not isolated (interfaces {:?})", report.interfaces));
        }
        if !report.visible.is_empty() {
            missing.push(format!("host paths visible: {}", report.visible.join(", ")));
        }
        if !report.writable.is_empty() {
            missing.push(format!("writable outside the private /tmp: {}", report.writable.join(", ")));
        }
        let l = &self.limits;
        if report.limits != [l.cpu_seconds, l.memory_bytes, l.file_bytes, l.processes] {
            missing.push(format!("limits not in force (saw {:?})", report.limits));
        }
        if report.refused != [libc::EPERM, libc::EPERM] {
            missing.push(format!("the seccomp filter is not in force (ptrace and io_uring_setup gave errno {:?})", report.refused));
        }
        // The uid inside is the (unprivileged) uid outside: never root.
        if report.uid == 0 {
            missing.push("the program runs as root".into());
        }
        if missing.is_empty() {
            Ok(())
        } else {
            Err(SandboxError::NotIsolated { bwrap: bwrap.into(), missing: missing.join("; ") })
        }
    }

    /// Runs `harness` (Python source) with `input` on its standard input and fd 3 as its report channel. Never
    /// fails: a sandbox that cannot start says so in the verdict.
    pub fn run(&self, harness: &str, input: &[u8]) -> Outcome {
        let start = Instant::now();
        match self.spawn_and_wait(harness, input, start) {
            Ok(outcome) => outcome,
            Err(e) => Outcome {
                verdict: Verdict::Refused(format!("could not start: {e}")),
                stdout: String::new(),
                stderr: String::new(),
                report: String::new(),
                memory_limit_hit: false,
                elapsed: start.elapsed(),
            },
        }
    }

    fn spawn_and_wait(&self, harness: &str, input: &[u8], start: Instant) -> std::io::Result<Outcome> {
        let (mut child, group, report_read) = self.spawn(self.command(harness))?;
        let pgid = child.id() as i32;
        let mut stdin = child.stdin.take().expect("piped");
        let source = input.to_vec();
        let writer = std::thread::spawn(move || {
            let _ = stdin.write_all(&source);
        });
        let out = Tail::read(child.stdout.take().expect("piped"));
        let err = Tail::read(child.stderr.take().expect("piped"));
        let report = Tail::read(std::fs::File::from(report_read));
        let status = loop {
            if let Some(status) = child.try_wait()? {
                break Some(status);
            }
            if start.elapsed() >= self.limits.timeout {
                break None;
            }
            std::thread::sleep(Duration::from_millis(5));
        };
        kill_group(pgid, &mut child, status.is_none());
        let _ = writer.join();
        let memory_limit_hit = group.as_ref().is_some_and(RunGroup::hit_memory_limit);
        if let Some(g) = group {
            g.remove();
        }
        // A pipe may still be held open by an escaped process (unconfined only): take what arrived.
        let (stdout, stderr, report) = (out.finish(), err.finish(), report.finish());
        let (started, report) = match report.strip_prefix("started\n") {
            Some(rest) => (true, rest.to_string()),
            None => (false, report),
        };
        let verdict = self.verdict(status, started, &stderr);
        Ok(Outcome { verdict, stdout, stderr, report, memory_limit_hit, elapsed: start.elapsed() })
    }

    /// The launcher's command line: bubblewrap's (when confined) or the interpreter's, with no inherited
    /// environment.
    fn command(&self, harness: &str) -> Command {
        let l = &self.limits;
        let numbers = [l.cpu_seconds, l.memory_bytes, l.file_bytes, l.processes].map(|n| n.to_string());
        let mut cmd = match &self.bwrap {
            Some(argv) => {
                let mut c = Command::new(&argv[0]);
                c.args(&argv[1..]);
                c
            }
            None => Command::new(&self.python),
        };
        cmd.args(["-I", "-S", "-c", LAUNCHER])
            .args(&numbers)
            .arg(harness)
            .env_clear()
            .current_dir("/")
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped());
        if self.bwrap.is_none() {
            cmd.env("PATH", "/usr/bin:/bin").env("HOME", std::env::temp_dir()).env("LANG", "C.UTF-8");
        }
        cmd
    }

    /// Starts `cmd` in its own session and control group, with the report channel and the seccomp filters at
    /// their fixed descriptors, as `nobody` when this process is root. Returns the child, its group and the
    /// report's read end.
    fn spawn(&self, mut cmd: Command) -> std::io::Result<(std::process::Child, Option<RunGroup>, OwnedFd)> {
        let l = &self.limits;
        // The report channel, and the seccomp filters as pipes holding their bytes. Every end the child keeps sits
        // at a high number first, so that moving it to its fixed number never lands on another.
        let (report_read, report_write) = pipe()?;
        let mut child_fds: Vec<(OwnedFd, i32)> = vec![(high(&report_write)?, REPORT_FD)];
        drop(report_write);
        if self.bwrap.is_some() {
            for (filter, fd) in self.seccomp.iter().zip(SECCOMP_FDS) {
                let (r, w) = pipe()?;
                std::fs::File::from(w).write_all(filter)?;
                child_fds.push((high(&r)?, fd));
            }
        }
        let group: Option<RunGroup> = match &self.cgroups {
            Some(c) => Some(c.create(l.memory_bytes, l.processes)?),
            None => None,
        };
        let moves: Vec<(i32, i32)> = child_fds.iter().map(|(fd, to)| (fd.as_raw_fd(), *to)).collect();
        let join: Vec<std::ffi::CString> = group.as_ref().map(|g| g.procs_files().to_vec()).unwrap_or_default();
        // SAFETY: only async-signal-safe libc calls between fork and exec (the group's paths were made before).
        unsafe {
            cmd.pre_exec(move || {
                // Its own process group, so a timeout can kill bubblewrap (and with it the PID namespace).
                if libc::setsid() < 0 {
                    return Err(std::io::Error::last_os_error());
                }
                // Into the run's control group before anything of the sample exists (while still allowed to).
                cgroup::join_self(&join)?;
                for &(from, to) in &moves {
                    if libc::dup2(from, to) < 0 {
                        return Err(std::io::Error::last_os_error());
                    }
                }
                // Root on the host would stay root behind the user namespace's mapping and ignore the process
                // limit: run the sandbox as `nobody`.
                if libc::geteuid() == 0
                    && (libc::setgroups(0, std::ptr::null()) != 0 || libc::setgid(65534) != 0 || libc::setuid(65534) != 0)
                {
                    return Err(std::io::Error::last_os_error());
                }
                Ok(())
            });
        }
        let spawned = cmd.spawn();
        drop(child_fds);
        match spawned {
            Ok(child) => Ok((child, group, report_read)),
            Err(e) => {
                if let Some(g) = group {
                    g.remove();
                }
                Err(e)
            }
        }
    }

    /// How the run ended, from its exit status (`None`: timed out).
    fn verdict(&self, status: Option<std::process::ExitStatus>, started: bool, stderr: &str) -> Verdict {
        use std::os::unix::process::ExitStatusExt;
        match status {
            None => Verdict::TimedOut,
            Some(s) => match (s.code(), s.signal()) {
                // bubblewrap reports its own failures as `bwrap: …` with exit status 1, before the launcher has run;
                // once the launcher has said `started`, nothing the program writes makes a refusal.
                (Some(1), _) if self.bwrap.is_some() && !started && stderr.starts_with("bwrap: ") => {
                    Verdict::Refused(last_line(stderr).to_string())
                }
                (Some(c), _) => Verdict::Exited(c),
                (None, Some(sig)) => Verdict::Signaled(sig),
                (None, None) => Verdict::Exited(-1),
            },
        }
    }
}

/// Kills the run's process group whether it ended or not. Inside bubblewrap this kills its monitor, whose death
/// kills the namespace's init (--die-with-parent) and so every process in it. Unconfined, it is best effort: repeat
/// until the group is gone (a fork bomb keeps adding to it). `reap`: the child was not waited for yet.
fn kill_group(pgid: i32, child: &mut std::process::Child, reap: bool) {
    let deadline = Instant::now() + Duration::from_secs(3);
    // SAFETY: killpg only sends a signal.
    while unsafe { libc::killpg(pgid, libc::SIGKILL) } == 0 && Instant::now() < deadline {
        let _ = child.try_wait();
        std::thread::sleep(Duration::from_millis(10));
    }
    if reap {
        let _ = child.wait();
    }
}

/// A pipe, both ends close-on-exec.
fn pipe() -> std::io::Result<(OwnedFd, OwnedFd)> {
    let mut fds = [0; 2];
    // SAFETY: pipe2 fills the two descriptors it creates, which we then own.
    if unsafe { libc::pipe2(fds.as_mut_ptr(), libc::O_CLOEXEC) } != 0 {
        return Err(std::io::Error::last_os_error());
    }
    Ok(unsafe { (OwnedFd::from_raw_fd(fds[0]), OwnedFd::from_raw_fd(fds[1])) })
}

/// A close-on-exec copy of `fd` numbered 100 or above.
fn high(fd: &OwnedFd) -> std::io::Result<OwnedFd> {
    // SAFETY: F_DUPFD_CLOEXEC returns a new descriptor that we own.
    let n = unsafe { libc::fcntl(fd.as_raw_fd(), libc::F_DUPFD_CLOEXEC, 100) };
    if n < 0 {
        return Err(std::io::Error::last_os_error());
    }
    Ok(unsafe { OwnedFd::from_raw_fd(n) })
}

/// The interpreter's real path (it must exist; the sandbox binds its installation read-only).
fn resolve_python(python: &Path) -> Result<PathBuf, SandboxError> {
    let found = if python.components().count() == 1 { find_on_path(&python.display().to_string()) } else { Some(python.into()) };
    found.filter(|p| p.is_file()).and_then(|p| p.canonicalize().ok()).ok_or_else(|| SandboxError::NoPython(python.display().to_string()))
}

/// The bubblewrap command line up to (and including) the interpreter.
fn bwrap_argv(bwrap: &str, python: &Path, limits: &Limits, disable_userns: bool) -> Vec<String> {
    let mut a: Vec<String> = vec![bwrap.into()];
    let mut push = |items: &[&str]| a.extend(items.iter().map(|s| s.to_string()));
    push(&["--unshare-user", "--unshare-ipc", "--unshare-pid", "--unshare-net", "--unshare-uts", "--unshare-cgroup-try"]);
    if disable_userns {
        // No nested user namespaces: the program cannot make itself "root" anywhere.
        push(&["--disable-userns"]);
    }
    push(&["--die-with-parent", "--new-session", "--cap-drop", "ALL", "--clearenv"]);
    push(&["--setenv", "PATH", "/usr/bin:/bin", "--setenv", "HOME", "/tmp", "--setenv", "LANG", "C.UTF-8"]);
    push(&["--ro-bind", "/usr", "/usr"]);
    // Merged-/usr systems have /bin → usr/bin etc.; others have real directories to bind.
    for dir in ["/bin", "/sbin", "/lib", "/lib32", "/lib64"] {
        match std::fs::read_link(dir) {
            Ok(target) => push(&["--symlink", &target.display().to_string(), dir]),
            Err(_) if Path::new(dir).is_dir() => push(&["--ro-bind", dir, dir]),
            Err(_) => {}
        }
    }
    // An interpreter outside /usr (pyenv, conda) brings its installation prefix, read-only, and nothing else.
    if !python.starts_with("/usr") {
        if let Some(prefix) = python.parent().and_then(Path::parent) {
            let prefix = prefix.display().to_string();
            push(&["--ro-bind", &prefix, &prefix]);
        }
    }
    let disk = limits.disk_bytes.to_string();
    // bubblewrap's own root and /dev are tmpfs mounts without a size cap: make them read-only, so the capped
    // /tmp is the only place anything can be written (device nodes like /dev/null still work).
    push(&["--proc", "/proc", "--dev", "/dev", "--remount-ro", "/dev", "--size", &disk, "--tmpfs", "/tmp"]);
    push(&["--remount-ro", "/", "--chdir", "/tmp"]);
    for fd in SECCOMP_FDS {
        push(&["--add-seccomp-fd", &fd.to_string()]);
    }
    push(&["--hostname", "sandbox", "--", &python.display().to_string()]);
    a
}

fn last_line(s: &str) -> &str {
    s.trim_end().lines().last().unwrap_or("")
}

/// The last 64 KiB of a stream, read on a thread.
struct Tail {
    buf: Arc<Mutex<(Vec<u8>, bool)>>,
}

impl Tail {
    const KEEP: usize = 64 * 1024;

    fn read(mut r: impl Read + Send + 'static) -> Self {
        let buf = Arc::new(Mutex::new((Vec::new(), false)));
        let shared = buf.clone();
        std::thread::spawn(move || {
            let mut chunk = [0u8; 8192];
            loop {
                let n = r.read(&mut chunk).unwrap_or(0);
                let mut b = shared.lock().unwrap_or_else(|e| e.into_inner());
                if n == 0 {
                    b.1 = true;
                    return;
                }
                b.0.extend_from_slice(&chunk[..n]);
                if b.0.len() > 2 * Self::KEEP {
                    let cut = b.0.len() - Self::KEEP;
                    b.0.drain(..cut);
                }
            }
        });
        Self { buf }
    }

    /// Waits (briefly) for the end of the stream and returns the kept tail.
    fn finish(self) -> String {
        let deadline = Instant::now() + Duration::from_millis(500);
        loop {
            let b = self.buf.lock().unwrap_or_else(|e| e.into_inner());
            if b.1 || Instant::now() >= deadline {
                let start = b.0.len().saturating_sub(Self::KEEP);
                return String::from_utf8_lossy(&b.0[start..]).into_owned();
            }
            drop(b);
            std::thread::sleep(Duration::from_millis(5));
        }
    }
}
