//! The sandbox holds. Every attack goes through the user-facing path — `hnet-gpt humaneval --completions
//! samples.jsonl --json` — once as whoever runs the tests (root in CI) and once as an ordinary user (created here
//! when the tests run as root), because that is how people run it. Each attack is written so that its sample
//! would *pass* if the attack worked; on top of that the host is checked for the attack's traces.
//!
//! And it fails closed: without bubblewrap, with a bubblewrap that cannot make namespaces, or with a fake one that
//! runs the program unconfined, the command refuses and nothing runs — unless `--unsafe-no-sandbox` is given.

mod common;
use common::Scratch;

use std::net::TcpListener;
use std::os::unix::fs::PermissionsExt;
use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::{Command, Output};
use std::time::{Duration, Instant};

use hnet_gpt::humaneval;
use serde_json::Value;

/// Seconds each attack may run (the CLI's --timeout).
const TIMEOUT: u64 = 4;

fn tmp(name: &str) -> Scratch {
    let dir = Scratch::new("sbx", name);
    std::fs::set_permissions(&dir, std::fs::Permissions::from_mode(0o755)).unwrap();
    dir
}

/// A HumanEval/0 sample: the reference body, then `attack` at module level. The check runs after it.
fn sample(attack: &str) -> String {
    let p = &humaneval::problems()[0];
    serde_json::json!({ "task_id": p.task_id, "completion": format!("{}\n{attack}\n", p.canonical_solution) }).to_string()
}

/// Who runs the CLI.
#[derive(Clone, Copy)]
struct User {
    uid: u32,
    gid: u32,
}

fn current_user() -> User {
    unsafe { User { uid: libc::geteuid(), gid: libc::getegid() } }
}

/// An ordinary user: the current one when the tests are not root, otherwise `hnet-sandbox-test` (created once).
fn unprivileged_user() -> User {
    let me = current_user();
    if me.uid != 0 {
        return me;
    }
    let name = "hnet-sandbox-test";
    if Command::new("id").arg(name).output().unwrap().status.code() != Some(0) {
        let out = Command::new("useradd")
            .args(["--system", "--no-create-home", "--home-dir", "/nonexistent", "--shell", "/usr/sbin/nologin", name])
            .output()
            .expect("useradd (Debian's passwd package) creates the test user");
        assert!(out.status.success() || String::from_utf8_lossy(&out.stderr).contains("already exists"), "{out:?}");
    }
    let id = |flag: &str| -> u32 {
        let out = Command::new("id").args([flag, name]).output().unwrap();
        String::from_utf8_lossy(&out.stdout).trim().parse().unwrap()
    };
    User { uid: id("-u"), gid: id("-g") }
}

/// Processes owned by `uid` right now.
fn processes_of(uid: u32) -> usize {
    std::fs::read_dir("/proc")
        .unwrap()
        .filter_map(|e| e.ok())
        .filter(|e| e.file_name().to_string_lossy().chars().all(|c| c.is_ascii_digit()))
        .filter(|e| std::fs::metadata(e.path()).map(|m| std::os::unix::fs::MetadataExt::uid(&m) == uid).unwrap_or(false))
        .count()
}

/// The CLI binary where `user` can run it (the build directory may sit in root's private home): a hard link, or a
/// copy when the build directory is on another file system (a debug build is hundreds of MB; each test takes one).
fn cli_for(dir: &Path) -> PathBuf {
    let bin = dir.join("hnet-gpt");
    let built = env!("CARGO_BIN_EXE_hnet-gpt");
    if std::fs::hard_link(built, &bin).is_err() {
        std::fs::copy(built, &bin).unwrap();
    }
    std::fs::set_permissions(&bin, std::fs::Permissions::from_mode(0o755)).unwrap();
    bin
}

fn run_as(user: User, bin: &Path, home: &Path, args: &[&str], path_env: &str) -> (Output, Duration) {
    run_in(user, None, bin, home, args, path_env)
}

/// [`run_as`], the CLI first moved into `cgroup` (a group delegated to `user`).
fn run_in(user: User, cgroup: Option<&Delegated>, bin: &Path, home: &Path, args: &[&str], path_env: &str) -> (Output, Duration) {
    let mut cmd = Command::new(bin);
    cmd.args(args).env_clear().env("PATH", path_env).env("HOME", home).env("HNET_TEST_SECRET", "env-secret-4711").current_dir(home);
    if let Some(group) = cgroup {
        let procs: Vec<std::ffi::CString> = group.procs();
        // SAFETY: open/write/close only, on strings made before the fork.
        unsafe {
            cmd.pre_exec(move || {
                for p in &procs {
                    let fd = libc::open(p.as_ptr(), libc::O_WRONLY);
                    if fd < 0 || libc::write(fd, b"0".as_ptr().cast(), 1) != 1 {
                        return Err(std::io::Error::last_os_error());
                    }
                    libc::close(fd);
                }
                Ok(())
            });
        }
    }
    if user.uid != current_user().uid {
        cmd.uid(user.uid).gid(user.gid);
    }
    let start = Instant::now();
    let out = cmd.output().unwrap();
    (out, start.elapsed())
}

const PATH: &str = "/usr/local/bin:/usr/bin:/bin";

/// A control group handed to an ordinary user, as systemd's `Delegate=yes` does: made by root, owned by the user, so
/// the user's processes in it may make groups of their own below it. Removed on drop (after its children).
struct Delegated {
    dirs: Vec<PathBuf>,
}

impl Delegated {
    /// A group for `user` in the memory and pids hierarchies (v1) or the unified one (v2) of this machine.
    fn new(user: User, name: &str) -> Delegated {
        let own = |controller: &str| -> Option<String> {
            std::fs::read_to_string("/proc/self/cgroup").unwrap().lines().find_map(|l| {
                let mut p = l.splitn(3, ':');
                let (_, c, path) = (p.next()?, p.next()?, p.next()?);
                c.split(',').any(|x| x == controller).then(|| path.trim_start_matches('/').to_string())
            })
        };
        let mount = |fs: &str, controller: &str| -> Option<PathBuf> {
            std::fs::read_to_string("/proc/self/mounts").unwrap().lines().find_map(|l| {
                let f: Vec<&str> = l.split_whitespace().collect();
                (f[2] == fs && (controller.is_empty() || f[3].split(',').any(|o| o == controller))).then(|| PathBuf::from(f[1]))
            })
        };
        let group = format!("hnet-delegated-{}-{name}", std::process::id());
        let dirs: Vec<PathBuf> = match (mount("cgroup", "memory"), mount("cgroup", "pids"), own("memory"), own("pids")) {
            (Some(m), Some(p), Some(mo), Some(po)) => vec![m.join(mo).join(&group), p.join(po).join(&group)],
            _ => vec![mount("cgroup2", "").expect("a cgroup hierarchy").join(&group)],
        };
        for dir in &dirs {
            std::fs::create_dir(dir).unwrap();
            if dirs.len() == 1 {
                std::fs::write(dir.join("cgroup.subtree_control"), "+memory +pids").unwrap();
            }
            for entry in std::fs::read_dir(dir).unwrap().flatten().map(|e| e.path()).chain([dir.clone()]) {
                std::os::unix::fs::chown(&entry, Some(user.uid), Some(user.gid)).unwrap();
            }
        }
        Delegated { dirs }
    }

    fn procs(&self) -> Vec<std::ffi::CString> {
        self.dirs.iter().map(|d| std::ffi::CString::new(d.join("cgroup.procs").to_str().unwrap()).unwrap()).collect()
    }
}

impl Drop for Delegated {
    fn drop(&mut self) {
        for dir in &self.dirs {
            for child in std::fs::read_dir(dir).into_iter().flatten().flatten().filter(|e| e.path().is_dir()) {
                let _ = std::fs::remove_dir(child.path());
            }
            let _ = std::fs::remove_dir(dir);
        }
    }
}

/// Attack suites and memory measurements one at a time: a suite's samples take memory the others would see.
static EXCLUSIVE: std::sync::Mutex<()> = std::sync::Mutex::new(());

fn exclusive() -> std::sync::MutexGuard<'static, ()> {
    EXCLUSIVE.lock().unwrap_or_else(|e| e.into_inner())
}

/// Runs every attack as `user` (inside `cgroup` when given) and checks that each was refused or contained.
fn attacks_are_contained(user: User, name: &str, cgroup: Option<&Delegated>) {
    let _one_at_a_time = exclusive();
    let dir = tmp(name);
    let home = dir.join("home");
    std::fs::create_dir(&home).unwrap();
    let secret = home.join("secret.txt");
    std::fs::write(&secret, "the user's secret").unwrap();
    std::fs::set_permissions(&secret, std::fs::Permissions::from_mode(0o600)).unwrap();
    let bashrc = home.join(".bashrc");
    std::fs::write(&bashrc, "# the user's own\n").unwrap();
    let repo = Path::new(env!("CARGO_MANIFEST_DIR")).parent().unwrap();
    for p in [&home, &secret, &bashrc] {
        std::os::unix::fs::chown(p, Some(user.uid), Some(user.gid)).unwrap();
    }
    let server = TcpListener::bind("127.0.0.1:0").unwrap();
    server.set_nonblocking(true).unwrap();
    let port = server.local_addr().unwrap().port();
    let marker = format!("pwned-{}-{name}", std::process::id());
    let outside = [repo.join(&marker), Path::new("/var/tmp").join(&marker), Path::new("/dev/shm").join(&marker), dir.join(&marker)];
    let disk_limit = hnet_gpt::sandbox::Limits::default().disk_bytes;

    // (name, code at module level, passes if the attack is contained?). Every attack is written so that its
    // sample passes only if the attack worked, except `setsid`, which is legitimate code whose danger is hanging
    // the evaluation: its check runs and passes, and the command must still end on time.
    let attacks: Vec<(&str, String, bool)> = vec![
        ("benign", String::new(), true),
        ("read-home-secret", format!("open({:?}).read()", secret.display().to_string()), false),
        ("read-host-config", "open('/etc/passwd').read()".into(), false),
        ("read-env-secret", "import os\nassert os.environ.get('HNET_TEST_SECRET') == 'env-secret-4711'".into(), false),
        ("write-home", format!("open({:?}, 'a').write('echo pwned\\n')", bashrc.display().to_string()), false),
        (
            "write-outside-tmp",
            format!(
                "wrote = []\nfor p in {:?}:\n    try:\n        open(p, 'w').write('x')\n        wrote.append(p)\n    except OSError:\n        pass\nassert wrote",
                outside
                    .iter()
                    .map(|p| p.display().to_string())
                    .chain(["/pwned", "/dev/shm/pwned", "/usr/pwned", "/dev/pwned"].map(String::from))
                    .collect::<Vec<_>>()
            ),
            false,
        ),
        ("connect-localhost", format!("import socket\nsocket.create_connection(('127.0.0.1', {port}), timeout=2).sendall(b'pwned')"), false),
        ("fork-bomb", "import os\nwhile True:\n    try:\n        os.fork()\n    except OSError:\n        pass".into(), false),
        ("setsid-sleeper", "import os, time\nif os.fork() == 0:\n    os.setsid()\n    time.sleep(1000)".into(), true),
        (
            "fill-disk-small-files",
            format!(
                "n = 0\ntry:\n    while True:\n        with open(f'f{{n}}', 'wb') as f:\n            f.write(b'x' * 4096)\n        n += 1\nexcept OSError:\n    pass\nassert n * 4096 > {disk_limit}"
            ),
            false,
        ),
        ("huge-file", "open('big', 'wb').write(b'x' * (64 << 20))".into(), false),
        ("huge-allocation", "x = bytearray(10 << 30)".into(), false),
        ("exit-0-before-check", "import sys\nsys.exit(0)".into(), false),
        ("os-exit-0-before-check", "import os\nos._exit(0)".into(), false),
        // Forging the pass: saying it on every channel the program can reach, then leaving before the check.
        ("forge-stdout", "print('passed')\nimport os\nos._exit(0)".into(), false),
        (
            "forge-report-fd",
            "import os\nfor fd in range(3, 64):\n    try:\n        os.write(fd, b'passed\\n')\n    except OSError:\n        pass\nos._exit(0)"
                .into(),
            false,
        ),
        (
            "forge-through-proc",
            "import os\nfor pid in [p for p in os.listdir('/proc') if p.isdigit()]:\n    for fd in range(3, 16):\n        try:\n            \
             f = os.open(f'/proc/{pid}/fd/{fd}', os.O_WRONLY)\n            os.write(f, b'passed\\n')\n        except OSError:\n            \
             pass\nos._exit(0)"
                .into(),
            false,
        ),
        (
            "forge-checker-memory",
            "import os\nm = open(f'/proc/{os.getppid()}/mem', 'r+b')".into(),
            false,
        ),
        (
            "forge-frames",
            "import sys, os\nf = sys._getframe()\nwhile f:\n    for c in f.f_code.co_consts:\n        if isinstance(c, str) and len(c) == 32:\n            \
             print(c)\n    f = f.f_back\nos._exit(0)"
                .into(),
            false,
        ),
        ("forge-excepthook", "import sys\nsys.excepthook = lambda *a: print('passed')\nraise SystemExit(0)".into(), false),
        ("label-itself-refused", "import sys, os\nsys.stderr.write('bwrap: refused\\n')\nsys.stderr.flush()\nos._exit(1)".into(), false),
        ("ptrace-checker", "import ctypes, os\nassert ctypes.CDLL(None).ptrace(16, os.getppid(), 0, 0) == 0".into(), false),
        // A right answer that prints without a trailing newline passes: output is not read.
        ("correct-printing-without-newline", "print('no newline', end='')".into(), true),
        ("kill-self", "import os, signal\nos.kill(os.getpid(), signal.SIGKILL)".into(), false),
        ("infinite-loop", "while True:\n    pass".into(), false),
    ];
    let samples: Vec<String> = attacks.iter().map(|(_, code, _)| sample(code)).collect();
    let samples_file = dir.join("samples.jsonl");
    std::fs::write(&samples_file, samples.join("\n") + "\n").unwrap();
    std::fs::set_permissions(&samples_file, std::fs::Permissions::from_mode(0o644)).unwrap();

    let bin = cli_for(&dir);
    // Where the sandbox's processes count: root drops to `nobody` before entering the sandbox.
    let sandbox_uid = if user.uid == 0 { 65534 } else { user.uid };
    let before = processes_of(sandbox_uid);
    let timeout = TIMEOUT.to_string();
    let (out, elapsed) = run_in(
        user,
        cgroup,
        &bin,
        &home,
        &["humaneval", "--completions", samples_file.to_str().unwrap(), "--json", "--timeout", &timeout],
        PATH,
    );
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "humaneval --completions failed: {stderr}");
    let report: Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(report["sandboxed"], true);
    assert_eq!(report["memory_bound"], "cgroup", "each sample's memory is bounded as a whole");
    let results = report["samples"].as_array().unwrap();
    assert_eq!(results.len(), attacks.len());
    for ((name, _, should_pass), r) in attacks.iter().zip(results) {
        assert_eq!(r["passed"], *should_pass, "{name}: {r}");
        // No run outlives its timeout by more than the kill takes.
        let seconds = r["seconds"].as_f64().unwrap();
        assert!(seconds < TIMEOUT as f64 + 3.0, "{name} took {seconds} s: {r}");
        if !should_pass {
            assert!(matches!(r["reason"].as_str(), Some("error" | "timeout")), "{name}: {r}");
        }
    }
    let by_name = |n: &str| &results[attacks.iter().position(|(a, _, _)| *a == n).unwrap()];
    assert!(by_name("exit-0-before-check")["detail"].as_str().unwrap().contains("SystemExit"), "{}", by_name("exit-0-before-check"));
    assert_eq!(by_name("infinite-loop")["reason"], "timeout");
    assert_eq!(by_name("label-itself-refused")["reason"], "error", "a program cannot label itself refused");
    // The samples on at least one worker, the slow ones bounded by the timeout.
    assert!(elapsed < Duration::from_secs(10 * (TIMEOUT + 3)), "the evaluation took {elapsed:?}");

    // Traces on the host.
    assert_eq!(std::fs::read_to_string(&bashrc).unwrap(), "# the user's own\n", "~/.bashrc was changed");
    for p in &outside {
        assert!(!p.exists(), "{} was written", p.display());
    }
    assert!(server.accept().is_err_and(|e| e.kind() == std::io::ErrorKind::WouldBlock), "the sandbox reached a host port");
    // Other tests may be running their own sandboxes as `nobody` right now: wait (bounded) until they are done.
    // What this test leaked would never go away (the setsid sleeper sleeps 1000 s).
    let mut leftover = processes_of(sandbox_uid);
    for _ in 0..300 {
        if leftover <= before {
            break;
        }
        std::thread::sleep(Duration::from_millis(100));
        leftover = processes_of(sandbox_uid);
    }
    assert!(leftover <= before, "processes of uid {sandbox_uid} left behind: {before} before, {leftover} after");
    assert_eq!(report["passed"], 3);
}

#[test]
fn attacks_are_contained_as_the_user_running_the_tests() {
    if current_user().uid != 0 {
        eprintln!("not root: the ordinary-user test (a delegated cgroup) covers this");
        return;
    }
    attacks_are_contained(current_user(), "self", None);
}

#[test]
fn attacks_are_contained_as_an_ordinary_user_in_a_delegated_cgroup() {
    let user = unprivileged_user();
    let delegated = (current_user().uid == 0).then(|| Delegated::new(user, "attacks"));
    attacks_are_contained(user, "user", delegated.as_ref());
}

/// MemAvailable of /proc/meminfo, bytes.
fn available_memory() -> u64 {
    let info = std::fs::read_to_string("/proc/meminfo").unwrap();
    let kb: u64 = info.lines().find_map(|l| l.strip_prefix("MemAvailable:")).unwrap().trim().trim_end_matches("kB").trim().parse().unwrap();
    kb * 1024
}

/// Memory held outside one address space — memfds, SysV shared memory, many processes — is bounded for the whole
/// sample: each attack is killed at the limit, and the host's available memory never drops by much more than it.
#[test]
fn memory_attacks_are_killed_at_the_limit_and_the_host_keeps_its_memory() {
    if current_user().uid != 0 {
        eprintln!("not root: no cgroup to test here without a delegation");
        return;
    }
    let _one_at_a_time = exclusive();
    let limit = hnet_gpt::sandbox::Limits::default().memory_bytes;
    let attacks: [(&str, String); 3] = [
        (
            "memfd",
            // 16 MiB each: the file-size limit applies to a memfd, but not to how many there are.
            "import os\nfds = []\nfor i in range(192):\n    fd = os.memfd_create(f'm{i}')\n    assert os.write(fd, b'x' * (16 << 20)) == 16 << 20\n    \
             fds.append(fd)"
                .to_string(),
        ),
        (
            "sysv-shm",
            // Each segment filled and detached: it stays in memory, out of every address space.
            "import ctypes\nlibc = ctypes.CDLL(None, use_errno=True)\nlibc.shmat.restype = ctypes.c_void_p\nfor i in range(24):\n    \
             sid = libc.shmget(0, 128 << 20, 0o1600)\n    assert sid >= 0, ctypes.get_errno()\n    addr = libc.shmat(sid, None, 0)\n    \
             assert addr not in (None, ctypes.c_void_p(-1).value)\n    ctypes.memset(addr, 1, 128 << 20)\n    libc.shmdt(ctypes.c_void_p(addr))"
                .to_string(),
        ),
        (
            "many-processes",
            "import os, time\nkids = []\nfor i in range(8):\n    pid = os.fork()\n    if pid == 0:\n        b = bytearray(900 << 20)\n        \
             b[::4096] = b'x' * len(b[::4096])\n        time.sleep(30)\n        os._exit(0)\n    kids.append(pid)\ntime.sleep(3)\n\
             assert all(os.waitpid(k, os.WNOHANG) == (0, 0) for k in kids)"
                .to_string(),
        ),
    ];
    let user = unprivileged_user();
    let delegated = Delegated::new(user, "memory");
    for (who, cgroup) in [(current_user(), None), (user, Some(&delegated))] {
        for (name, code) in &attacks {
            let dir = tmp(&format!("mem-{name}-{}", who.uid));
            std::fs::set_permissions(&dir, std::fs::Permissions::from_mode(0o777)).unwrap();
            let file = dir.join("s.jsonl");
            std::fs::write(&file, sample(code) + "\n").unwrap();
            std::fs::set_permissions(&file, std::fs::Permissions::from_mode(0o644)).unwrap();
            let bin = cli_for(&dir);
            let before = available_memory();
            let low = std::sync::Arc::new(std::sync::atomic::AtomicU64::new(before));
            let done = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
            let watcher = {
                let (low, done) = (low.clone(), done.clone());
                std::thread::spawn(move || {
                    while !done.load(std::sync::atomic::Ordering::Relaxed) {
                        low.fetch_min(available_memory(), std::sync::atomic::Ordering::Relaxed);
                        std::thread::sleep(Duration::from_millis(10));
                    }
                })
            };
            let args = ["humaneval", "--completions", file.to_str().unwrap(), "--json", "--timeout", "20"];
            let (out, _) = run_in(who, cgroup, &bin, &dir, &args, PATH);
            done.store(true, std::sync::atomic::Ordering::Relaxed);
            watcher.join().unwrap();
            let what = format!("{name} as uid {}", who.uid);
            assert!(out.status.success(), "{what}: {}", String::from_utf8_lossy(&out.stderr));
            let report: Value = serde_json::from_slice(&out.stdout).unwrap();
            assert_eq!(report["memory_bound"], "cgroup", "{what}");
            let r = &report["samples"][0];
            assert_eq!(r["passed"], false, "{what}: the sample held more than the limit: {r}");
            assert!(r["detail"].as_str().unwrap().contains("memory limit"), "{what}: {r}");
            let drop = before.saturating_sub(low.load(std::sync::atomic::Ordering::Relaxed));
            // The limit, plus the interpreters and the CLI's own memory.
            assert!(drop < limit + (384 << 20), "{what}: the host's available memory dropped by {} MiB", drop >> 20);
        }
    }
}

/// Where no control group can be made, the sandbox refuses unless told to run with per-process limits only, and the
/// report says which bound held.
#[test]
fn without_a_cgroup_it_refuses_unless_told_and_then_says_so() {
    let user = unprivileged_user();
    if user.uid == current_user().uid {
        eprintln!("the tests do not run as root: no second user to try this with");
        return;
    }
    let dir = tmp("no-cgroup");
    std::fs::set_permissions(&dir, std::fs::Permissions::from_mode(0o777)).unwrap();
    let file = dir.join("s.jsonl");
    std::fs::write(&file, sample("") + "\n").unwrap();
    std::fs::set_permissions(&file, std::fs::Permissions::from_mode(0o644)).unwrap();
    let bin = cli_for(&dir);
    let args = ["humaneval", "--completions", file.to_str().unwrap(), "--json"];
    let (out, _) = run_as(user, &bin, &dir, &args, PATH);
    assert_eq!(out.status.code(), Some(1), "{out:?}");
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("cannot bound a sample's memory as a whole") && err.contains("--sandbox-without-cgroup"), "{err}");
    let (out, _) = run_as(user, &bin, &dir, &[&args[..], &["--sandbox-without-cgroup"]].concat(), PATH);
    assert!(out.status.success(), "{out:?}");
    assert!(String::from_utf8_lossy(&out.stderr).contains("not all of a sample's together"));
    let report: Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(
        (report["sandboxed"].clone(), report["memory_bound"].clone(), report["passed"].clone()),
        (true.into(), "per-process".into(), 1.into())
    );
}

/// A sample that leaves a file on the host if it ever runs unconfined.
fn tripwire(dir: &Path) -> (PathBuf, PathBuf) {
    // World-writable, so that even `nobody` (root's unconfined runs) can leave the flag.
    let open = dir.join("open");
    std::fs::create_dir(&open).unwrap();
    std::fs::set_permissions(&open, std::fs::Permissions::from_mode(0o777)).unwrap();
    let flag = open.join("ran-unconfined");
    let samples = dir.join("samples.jsonl");
    std::fs::write(&samples, sample(&format!("open({:?}, 'w').write('x')", flag.display().to_string())) + "\n").unwrap();
    (samples, flag)
}

fn refusal(path_env: &str, dir: &Path) -> String {
    let (samples, flag) = tripwire(dir);
    let bin = cli_for(dir);
    let (out, _) = run_as(current_user(), &bin, dir, &["humaneval", "--completions", samples.to_str().unwrap()], path_env);
    assert_eq!(out.status.code(), Some(1), "expected a refusal: {out:?}");
    assert!(!flag.exists(), "the program ran although the sandbox was refused");
    String::from_utf8_lossy(&out.stderr).into_owned()
}

#[test]
fn without_bubblewrap_it_refuses_and_names_what_to_install() {
    let dir = tmp("no-bwrap");
    let empty = dir.join("empty-bin");
    std::fs::create_dir(&empty).unwrap();
    let err = refusal(empty.to_str().unwrap(), &dir);
    assert!(err.contains("bubblewrap") && err.contains("apt-get install bubblewrap") && err.contains("--unsafe-no-sandbox"), "{err}");
}

fn fake_bwrap(dir: &Path, body: &str) -> String {
    let bin = dir.join("fake-bin");
    std::fs::create_dir(&bin).unwrap();
    let script = bin.join("bwrap");
    std::fs::write(
        &script,
        format!("#!/bin/sh\nif [ \"$1\" = --help ]; then echo '--size --disable-userns --add-seccomp-fd'; exit 0; fi\n{body}\n"),
    )
    .unwrap();
    std::fs::set_permissions(&script, std::fs::Permissions::from_mode(0o755)).unwrap();
    format!("{}:/usr/bin:/bin", bin.display())
}

#[test]
fn when_the_kernel_refuses_namespaces_it_refuses_and_says_how_to_enable_them() {
    let dir = tmp("no-userns");
    let path = fake_bwrap(&dir, "echo 'bwrap: No permissions to creating new namespace, likely because the kernel does not allow non-privileged user namespaces.' >&2\nexit 1");
    let err = refusal(&path, &dir);
    assert!(err.contains("user namespaces") && err.contains("No permissions to creating new namespace"), "{err}");
}

#[test]
fn a_sandbox_that_does_not_isolate_is_detected_and_refused() {
    // A `bwrap` that ignores every option and runs the program as is: the probe sees the host.
    let dir = tmp("fake-bwrap");
    let path = fake_bwrap(&dir, "while [ \"$1\" != -- ]; do shift; done\nshift\nexec \"$@\"");
    let err = refusal(&path, &dir);
    assert!(err.contains("not isolated") && err.contains("PID namespace") && err.contains("network"), "{err}");
}

#[test]
fn the_loud_opt_out_runs_unconfined_and_says_so() {
    let dir = tmp("opt-out");
    let (samples, flag) = tripwire(&dir);
    let empty = dir.join("empty-bin");
    std::fs::create_dir(&empty).unwrap();
    let bin = cli_for(&dir);
    let (out, _) = run_as(
        current_user(),
        &bin,
        &dir,
        &["humaneval", "--completions", samples.to_str().unwrap(), "--json", "--unsafe-no-sandbox"],
        empty.to_str().unwrap(),
    );
    assert!(out.status.success(), "{out:?}");
    assert!(String::from_utf8_lossy(&out.stderr).contains("WITHOUT isolation"));
    let report: Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(report["sandboxed"], false);
    // Unconfined, the program reached the host's file system (that is what the flag is for).
    assert!(flag.exists());
    assert_eq!(report["samples"][0]["passed"], true, "{report}");
}

#[test]
fn bad_sample_files_are_clear_errors() {
    let dir = tmp("bad-samples");
    let file = dir.join("s.jsonl");
    std::fs::write(&file, format!("{}\n{{\"task_id\": \"HumanEval/0\"}}\n", sample(""))).unwrap();
    let out = Command::new(env!("CARGO_BIN_EXE_hnet-gpt")).args(["humaneval", "--completions", file.to_str().unwrap()]).output().unwrap();
    assert_eq!(out.status.code(), Some(1));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("s.jsonl line 2") && err.contains("completion"), "{err}");
}

#[test]
fn canonical_humaneval_solutions_pass_and_broken_ones_fail() {
    let out = Command::new(env!("CARGO_BIN_EXE_hnet-gpt")).args(["humaneval", "--canonical"]).output().unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(out.status.success(), "{stdout}\n{}", String::from_utf8_lossy(&out.stderr));
    assert!(stdout.contains("pass@1 1.0000") && stdout.contains("(164 samples over 164 problems; 164 passed)"), "{stdout}");
    // A wrong solution fails its tests, with the assertion as the reason.
    let dir = tmp("wrong");
    let file = dir.join("s.jsonl");
    std::fs::write(&file, serde_json::json!({"task_id": "HumanEval/0", "completion": "    return not True\n"}).to_string()).unwrap();
    let out = Command::new(env!("CARGO_BIN_EXE_hnet-gpt"))
        .args(["humaneval", "--completions", file.to_str().unwrap(), "--json"])
        .output()
        .unwrap();
    let report: Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(report["pass@1"], 0.0);
    assert_eq!(report["samples"][0]["reason"], "error");
    assert!(report["samples"][0]["detail"].as_str().unwrap().contains("AssertionError"), "{report}");
}

/// The recipe's problem set of bare headers (`def is_even(n):`): its references pass, and the kind of completion
/// the bundled model writes (a docstring and a body that is not the function) fails on an assertion, not on the
/// header's missing body.
#[test]
fn a_problem_file_of_bare_headers_scores_like_humaneval() {
    let headers = concat!(env!("CARGO_MANIFEST_DIR"), "/../scripts/experiments/simple-headers.jsonl");
    let run = |args: &[&str]| {
        Command::new(env!("CARGO_BIN_EXE_hnet-gpt")).args(["humaneval", "--problem-file", headers]).args(args).output().unwrap()
    };
    let out = run(&["--canonical"]);
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success() && stdout.contains("(7 samples over 7 problems; 7 passed)"),
        "{stdout}\n{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let dir = tmp("headers");
    let file = dir.join("s.jsonl");
    let samples = [
        ("simple/is_even", "\n    \"\"\"Returns the number of the number of\"\"\"\n    if n == 1:\n        return n"),
        ("simple/is_even", "\n    return not n % 2"),
        ("simple/fibonacci", "\n    if n < 3:\n        return 1\n    return fibonacci(n - 1) + fibonacci(n - 2)"),
        ("simple/fibonacci", "\n    return n"),
    ];
    let lines: Vec<String> = samples.iter().map(|(t, c)| serde_json::json!({"task_id": t, "completion": c}).to_string()).collect();
    std::fs::write(&file, lines.join("\n")).unwrap();
    let out = run(&["--completions", file.to_str().unwrap(), "--json"]);
    let report: Value = serde_json::from_slice(&out.stdout).unwrap();
    let passed: Vec<bool> = report["samples"].as_array().unwrap().iter().map(|s| s["passed"].as_bool().unwrap()).collect();
    assert_eq!(passed, [false, true, true, false], "{report}");
    assert!(report["samples"][0]["detail"].as_str().unwrap().starts_with("AssertionError"), "{report}");
    // A task of HumanEval's is not one of this set's.
    std::fs::write(&file, sample("")).unwrap();
    let out = run(&["--completions", file.to_str().unwrap()]);
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(!out.status.success() && err.contains("HumanEval/0") && err.contains("simple/is_even"), "{err}");
}

#[test]
fn the_sandbox_api_reports_exit_status_output_report_and_limits() {
    use hnet_gpt::sandbox::{default_python, Limits, MemoryBound, Sandbox, Verdict};
    let bound = if current_user().uid == 0 { MemoryBound::Cgroup } else { MemoryBound::PerProcess };
    let limits = Limits { timeout: Duration::from_secs(3), cpu_seconds: 3, ..Limits::default() };
    let sandbox = Sandbox::new(&default_python(), limits, bound).unwrap();
    let ok = sandbox.run("print(sum(range(10)))", b"");
    assert_eq!((ok.verdict, ok.stdout.trim(), ok.report.as_str()), (Verdict::Exited(0), "45", ""));
    assert_eq!(sandbox.run("assert 1 == 2", b"").verdict, Verdict::Exited(1));
    // The report channel is fd 3, after the launcher's own `started` line; the input arrives on standard input.
    let report = sandbox.run("import os, sys\nos.write(3, sys.stdin.buffer.read().upper())", b"passed\n");
    assert_eq!(report.report, "PASSED\n");
    // The CPU limit stops a busy loop before the wall clock when it is lower.
    let cpu =
        Sandbox::new(&default_python(), Limits { timeout: Duration::from_secs(20), cpu_seconds: 1, ..Limits::default() }, bound).unwrap();
    let out = cpu.run("while True:\n    pass\n", b"");
    assert!(out.elapsed < Duration::from_secs(10) && out.verdict != Verdict::TimedOut, "{:?} after {:?}", out.verdict, out.elapsed);
    // Output beyond 64 KiB keeps its end.
    let long = sandbox.run("for i in range(100000):\n    print(i)\nprint('END')\n", b"");
    assert!(long.stdout.ends_with("END\n") && long.stdout.len() <= 64 * 1024, "{}", long.stdout.len());
    // The seccomp filter: each of these fails with EPERM (clone3 with ENOSYS, so that glibc falls back to clone).
    let calls = [
        ("ptrace", libc::SYS_ptrace),
        ("process_vm_readv", libc::SYS_process_vm_readv),
        ("io_uring_setup", libc::SYS_io_uring_setup),
        ("keyctl", libc::SYS_keyctl),
        ("mount", libc::SYS_mount),
        ("unshare", libc::SYS_unshare),
        ("setns", libc::SYS_setns),
        ("bpf", libc::SYS_bpf),
        ("perf_event_open", libc::SYS_perf_event_open),
        ("userfaultfd", libc::SYS_userfaultfd),
    ];
    let program = format!(
        "import ctypes, json\nlibc = ctypes.CDLL(None, use_errno=True)\nout = {{}}\nfor name, nr in {calls:?}:\n    ctypes.set_errno(0)\n    \
         out[name] = ctypes.get_errno() if libc.syscall(nr, 0, 0, 0, 0, 0) == -1 else 0\nctypes.set_errno(0)\n\
         out['clone3'] = ctypes.get_errno() if libc.syscall({clone3}, 0, 0) == -1 else 0\n\
         out['clone-newuser'] = ctypes.get_errno() if libc.syscall({clone}, {newuser}, 0, 0, 0, 0) == -1 else 0\n\
         print(json.dumps(out))",
        clone3 = libc::SYS_clone3,
        clone = libc::SYS_clone,
        newuser = libc::CLONE_NEWUSER | libc::SIGCHLD,
    );
    let out = sandbox.run(&program, b"");
    let errnos: Value = serde_json::from_str(out.stdout.trim()).unwrap_or_else(|_| panic!("{out:?}"));
    for (name, _) in calls {
        assert_eq!(errnos[name], libc::EPERM, "{name}: {errnos}");
    }
    assert_eq!((errnos["clone3"].clone(), errnos["clone-newuser"].clone()), (libc::ENOSYS.into(), libc::EPERM.into()), "{errnos}");
    // An undumpable process (the HumanEval checker makes itself one) keeps its report channel and memory from the
    // other processes of the sandbox, though they run as the same user.
    let guard = "import ctypes, os\nassert ctypes.CDLL(None).prctl(4, 0, 0, 0, 0) == 0\nif os.fork() == 0:\n    os.closerange(3, 64)\n    \
                 for path in (f'/proc/{os.getppid()}/fd/3', f'/proc/{os.getppid()}/mem'):\n        try:\n            \
                 os.open(path, os.O_WRONLY)\n            print('opened', path, flush=True)\n        except OSError as e:\n            \
                 print('refused', e.errno, flush=True)\n    os._exit(0)\nos.wait()";
    let out = sandbox.run(guard, b"");
    assert_eq!(out.stdout, format!("refused {}\nrefused {}\n", libc::EACCES, libc::EACCES), "{out:?}");
    // Threads and subprocesses still work (clone without namespace flags).
    let ok = sandbox.run("import subprocess, threading\nt = threading.Thread(target=print)\nt.start(); t.join()\nprint(subprocess.run(['/bin/echo', 'ok'], capture_output=True).stdout.decode())", b"");
    assert_eq!((ok.verdict.clone(), ok.stdout.trim()), (Verdict::Exited(0), "ok"), "{ok:?}");
}
