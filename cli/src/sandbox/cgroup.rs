//! A control group per sandboxed run: the memory and process limits of the whole sample, whatever it does.
//!
//! Per-process rlimits bound one address space; a program that spreads its memory over memfds, SysV shared memory,
//! tmpfs files or many processes goes around them. A cgroup counts all of it (anonymous memory, page cache, shmem,
//! kernel memory of its processes) and its processes; at `memory.max` the kernel's OOM killer stops the sample, and
//! with swap capped the limit cannot be paged around.
//!
//! Both hierarchies are supported: cgroup v2 (unified: `memory.max`, `memory.swap.max`, `pids.max`, one directory)
//! and v1 (the `memory` controller's `memory.limit_in_bytes` and `memory.memsw.limit_in_bytes`, the `pids`
//! controller's `pids.max`, one directory in each). A run's group is made beside this process's own (v1) or in the
//! nearest ancestor of it that delegates both controllers and that we may write (v2; root, or a systemd-delegated
//! user slice), joined by the sandbox's first process before it starts bubblewrap, and removed afterwards.
//! Where none can be made (an ordinary user without delegation), [`Cgroups::create`] says why.

use std::ffi::CString;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicUsize, Ordering};

/// A run's control group(s): one directory (v2) or one per controller (v1).
#[derive(Debug)]
pub struct RunGroup {
    dirs: Vec<PathBuf>,
    /// `cgroup.procs` of each, as C strings: the child writes "0" (itself) into each before it starts bubblewrap.
    procs: Vec<CString>,
    /// Where the kernel counts OOM kills (v2 `memory.events`, v1 `memory.oom_control`).
    events: PathBuf,
}

/// Which hierarchy this machine has, and where this process sits in it.
#[derive(Debug, Clone)]
pub enum Cgroups {
    /// Unified: the directory new groups are made in.
    V2 { parent: PathBuf },
    /// Legacy: the memory and pids controllers' directories of this process.
    V1 { memory: PathBuf, pids: PathBuf },
}

static RUNS: AtomicUsize = AtomicUsize::new(0);

fn read(path: &Path) -> String {
    std::fs::read_to_string(path).unwrap_or_default()
}

/// This process's cgroup path in a hierarchy (`0::/x` for v2, `N:memory:/x` for v1), from /proc/self/cgroup.
fn own_path(controller: Option<&str>) -> Option<String> {
    read(Path::new("/proc/self/cgroup")).lines().find_map(|line| {
        let mut parts = line.splitn(3, ':');
        let (_, controllers, path) = (parts.next()?, parts.next()?, parts.next()?);
        let hit = match controller {
            None => controllers.is_empty(),
            Some(c) => controllers.split(',').any(|x| x == c),
        };
        hit.then(|| path.trim_start_matches('/').to_string())
    })
}

/// Where a v1 controller is mounted.
fn v1_mount(controller: &str) -> Option<PathBuf> {
    read(Path::new("/proc/self/mounts")).lines().find_map(|line| {
        let f: Vec<&str> = line.split_whitespace().collect();
        (f.len() >= 4 && f[2] == "cgroup" && f[3].split(',').any(|o| o == controller)).then(|| PathBuf::from(f[1]))
    })
}

/// Where the v2 hierarchy is mounted (the whole of `/sys/fs/cgroup`, or `unified/` beside v1 controllers).
fn v2_mount() -> Option<PathBuf> {
    read(Path::new("/proc/self/mounts")).lines().find_map(|line| {
        let f: Vec<&str> = line.split_whitespace().collect();
        (f.len() >= 3 && f[2] == "cgroup2").then(|| PathBuf::from(f[1]))
    })
}

fn writable_dir(dir: &Path) -> bool {
    let probe = dir.join(format!("hnet-probe-{}", std::process::id()));
    let ok = std::fs::create_dir(&probe).is_ok();
    let _ = std::fs::remove_dir(&probe);
    ok
}

impl Cgroups {
    /// Finds where this process can make groups with memory and pids limits, or says why it cannot.
    pub fn find() -> Result<Self, String> {
        // v1 memory + pids controllers (what this machine kind has), when both are mounted.
        if let (Some(mm), Some(pm), Some(mp), Some(pp)) =
            (v1_mount("memory"), v1_mount("pids"), own_path(Some("memory")), own_path(Some("pids")))
        {
            let (memory, pids) = (mm.join(mp), pm.join(pp));
            if writable_dir(&memory) && writable_dir(&pids) {
                return Ok(Cgroups::V1 { memory, pids });
            }
            return Err(format!(
                "cgroup v1: cannot create groups in {} and {} (they belong to root; run as root, or give this user a \
                 delegated cgroup)",
                memory.display(),
                pids.display()
            ));
        }
        let (Some(mount), Some(own)) = (v2_mount(), own_path(None)) else {
            return Err("no cgroup hierarchy with memory and pids controllers is mounted".into());
        };
        let mut dir = mount.join(&own);
        loop {
            let delegated = read(&dir.join("cgroup.subtree_control"));
            let has = |c: &str| delegated.split_whitespace().any(|x| x == c);
            if has("memory") && has("pids") && writable_dir(&dir) {
                return Ok(Cgroups::V2 { parent: dir });
            }
            if dir == mount || !dir.pop() {
                break;
            }
        }
        Err(format!(
            "cgroup v2 at {}: no group on the way from {own} to the root delegates the memory and pids controllers to \
             this user (with systemd: `systemd-run --user --scope -p Delegate=yes hnet-gpt …`, or run as root)",
            mount.display()
        ))
    }

    /// Makes a run's group with these limits.
    pub fn create(&self, memory_bytes: u64, processes: u64) -> std::io::Result<RunGroup> {
        let name = format!("hnet-sandbox-{}-{}", std::process::id(), RUNS.fetch_add(1, Ordering::Relaxed));
        let (dirs, events) = match self {
            Cgroups::V2 { parent } => (vec![parent.join(&name)], parent.join(&name).join("memory.events")),
            Cgroups::V1 { memory, pids } => (vec![memory.join(&name), pids.join(&name)], memory.join(&name).join("memory.oom_control")),
        };
        let mut made = Vec::new();
        for dir in &dirs {
            if let Err(e) = std::fs::create_dir(dir) {
                made.into_iter().for_each(|d: &PathBuf| drop(std::fs::remove_dir(d)));
                return Err(e);
            }
            made.push(dir);
        }
        let group = RunGroup::new(dirs.clone(), events);
        let write = |path: PathBuf, value: String| {
            std::fs::write(&path, value).map_err(|e| std::io::Error::new(e.kind(), format!("{}: {e}", path.display())))
        };
        let limits = || -> std::io::Result<()> {
            match self {
                Cgroups::V2 { .. } => {
                    let dir = &dirs[0];
                    write(dir.join("memory.max"), memory_bytes.to_string())?;
                    // No swap: the limit is on memory, not on what fits in swap.
                    if dir.join("memory.swap.max").exists() {
                        write(dir.join("memory.swap.max"), "0".into())?;
                    }
                    write(dir.join("pids.max"), processes.to_string())
                }
                Cgroups::V1 { .. } => {
                    let (m, p) = (&dirs[0], &dirs[1]);
                    write(m.join("memory.limit_in_bytes"), memory_bytes.to_string())?;
                    // Memory + swap at the same bound: no swap (the file is absent where swap accounting is off).
                    if m.join("memory.memsw.limit_in_bytes").exists() {
                        write(m.join("memory.memsw.limit_in_bytes"), memory_bytes.to_string())?;
                    }
                    write(p.join("pids.max"), processes.to_string())
                }
            }
        };
        match limits() {
            Ok(()) => Ok(group),
            Err(e) => {
                group.remove();
                Err(e)
            }
        }
    }
}

impl RunGroup {
    fn new(dirs: Vec<PathBuf>, events: PathBuf) -> Self {
        let procs = dirs
            .iter()
            .map(|d| CString::new(d.join("cgroup.procs").into_os_string().into_encoded_bytes()).expect("no NUL in a cgroup path"))
            .collect();
        RunGroup { dirs, procs, events }
    }

    /// The group's `cgroup.procs` files, for [`join_self`] in a child.
    pub fn procs_files(&self) -> &[CString] {
        &self.procs
    }

    /// True when the memory limit killed something in this run (`oom_kill` of v2's `memory.events`, v1's
    /// `memory.oom_control`).
    pub fn hit_memory_limit(&self) -> bool {
        read(&self.events).lines().any(|l| l.strip_prefix("oom_kill ").is_some_and(|n| n.trim() != "0"))
    }

    /// Kills whatever is still in the group and removes it.
    pub fn remove(self) {
        for _ in 0..200 {
            let mut alive = false;
            for dir in &self.dirs {
                for pid in read(&dir.join("cgroup.procs")).lines().filter_map(|l| l.trim().parse::<i32>().ok()) {
                    alive = true;
                    // SAFETY: a plain kill of a process in this run's group.
                    unsafe { libc::kill(pid, libc::SIGKILL) };
                }
            }
            if !alive && self.dirs.iter().all(|d| std::fs::remove_dir(d).is_ok() || !d.exists()) {
                return;
            }
            std::thread::sleep(std::time::Duration::from_millis(10));
        }
        for dir in &self.dirs {
            let _ = std::fs::remove_dir(dir);
        }
    }
}

/// Moves the calling process into the groups whose `cgroup.procs` files these are. For `pre_exec`: only `open`,
/// `write` and `close` on C strings made before the fork.
pub fn join_self(procs: &[CString]) -> std::io::Result<()> {
    for path in procs {
        // SAFETY: async-signal-safe calls.
        unsafe {
            let fd = libc::open(path.as_ptr(), libc::O_WRONLY | libc::O_CLOEXEC);
            if fd < 0 {
                return Err(std::io::Error::last_os_error());
            }
            let n = libc::write(fd, b"0".as_ptr().cast(), 1);
            libc::close(fd);
            if n != 1 {
                return Err(std::io::Error::last_os_error());
            }
        }
    }
    Ok(())
}
