//! A Hugging Face Hub client that trusts no server: every name it writes under is its own or checked, every
//! download has timeouts and a size bound, and nothing half-written is ever taken for a file.
//!
//! It speaks the Hub's protocol (`{endpoint}/{repo}/resolve/{revision}/{file}`: a `HEAD` without redirects gives
//! `X-Repo-Commit`, `ETag` or `X-Linked-Etag` and `Content-Length` or `X-Linked-Size`; a `GET` follows redirects to
//! the CDN over http(s) only) and keeps Python's `huggingface_hub` cache layout under `HF_HOME/hub`, so each reads
//! what the other wrote: `models--OWNER--NAME/blobs/{etag}`, `snapshots/{commit}/{file}` (a link to the blob) and
//! `refs/{revision}` (the commit). Hub conventions: `HF_ENDPOINT`, `HF_HOME`, `HF_TOKEN` (or `HF_HOME/token`),
//! `HF_HUB_OFFLINE`, `HF_HUB_ETAG_TIMEOUT` and `HF_HUB_DOWNLOAD_TIMEOUT` (seconds, 10 by default, as in Python).
//!
//! What a hostile server cannot do here:
//! - **write outside the cache**: the commit must be 40 hexadecimal digits, the ETag a plain name (letters, digits,
//!   `-`, `_`, `.` but not first; at most 128), a file name our own or a checked relative path (no `..`, no absolute
//!   paths);
//! - **hang or trickle forever**: connect and read timeouts, and every timeout window must bring at least
//!   [`MIN_BYTES_PER_WINDOW`] bytes (or the rest of the file);
//! - **fill the disk**: the declared size is required and capped ([`Limits`]), and a body that runs past it is
//!   cut off and discarded;
//! - **redirect anywhere but http(s)**, or receive the token on another host (redirects are followed here, not by
//!   the HTTP library, and the token goes with the first request only);
//! - **leave a half-written file that looks whole**: downloads go to `blobs/{etag}.incomplete` and are renamed only
//!   when their size (and, for a SHA-256 ETag, their hash) is right.

use std::io::{Read, Write};
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use anyhow::{anyhow, bail, Context, Result};
use sha2::{Digest, Sha256};

/// Redirects a download may take (the Hub sends large files to its CDN with one).
pub const MAX_REDIRECTS: usize = 5;

/// The least a download must bring in each timeout window (or the rest of the file): below it, it has stalled.
pub const MIN_BYTES_PER_WINDOW: u64 = 64 * 1024;

/// How large a file may be.
#[derive(Debug, Clone, Copy)]
pub struct Limits {
    /// Metadata: configs, tokenizers, indexes.
    pub metadata_bytes: u64,
    /// Weights.
    pub weights_bytes: u64,
}

impl Default for Limits {
    fn default() -> Self {
        Self { metadata_bytes: 64 << 20, weights_bytes: 64 << 30 }
    }
}

/// What a file is, for its size limit.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum FileKind {
    /// A JSON file.
    Metadata,
    /// A safetensors file.
    Weights,
}

/// One repository at one revision.
#[derive(Debug, Clone)]
pub struct RepoRef {
    /// `OWNER/NAME` or `NAME`.
    pub repo: String,
    /// A branch, tag or commit.
    pub revision: String,
}

/// The client.
pub struct Client {
    endpoint: String,
    token: Option<String>,
    cache: PathBuf,
    offline: bool,
    metadata_timeout: Duration,
    download_timeout: Duration,
    limits: Limits,
    progress: bool,
}

/// A file's metadata from a `HEAD`.
#[derive(Debug)]
struct Remote {
    commit: String,
    etag: String,
    size: u64,
}

fn seconds_from_env(name: &str, default: f64) -> Result<Duration> {
    match std::env::var(name) {
        Err(_) => Ok(Duration::from_secs_f64(default)),
        Ok(v) => match v.trim().parse::<f64>() {
            Ok(s) if s.is_finite() && s > 0.0 && s <= 86_400.0 => Ok(Duration::from_secs_f64(s)),
            _ => bail!("{name}={v:?}: expected a number of seconds in (0, 86400]"),
        },
    }
}

/// A repository id as the Hub spells it: `NAME` or `OWNER/NAME`, letters, digits and `-_.`, no `..`.
pub fn check_repo(repo: &str) -> Result<()> {
    let part = |s: &str| !s.is_empty() && !s.starts_with('.') && s.chars().all(|c| c.is_ascii_alphanumeric() || "-_.".contains(c));
    let parts: Vec<&str> = repo.split('/').collect();
    if parts.len() > 2 || !parts.iter().all(|p| part(p)) || repo.contains("..") {
        bail!("`{repo}` is not a Hub model id: expected REPO or OWNER/REPO (letters, digits, `-`, `_`, `.`)");
    }
    Ok(())
}

/// A revision: a branch, tag or commit, possibly with `/` (`refs/pr/1`), never a path out of `refs/`.
pub fn check_revision(revision: &str) -> Result<()> {
    let part = |s: &str| !s.is_empty() && !s.starts_with('.') && s.chars().all(|c| c.is_ascii_alphanumeric() || "-_.".contains(c));
    if revision.len() > 256 || !revision.split('/').all(part) {
        bail!("`{revision}` is not a revision (a branch, tag or commit: letters, digits, `-_./`, no `..`)");
    }
    Ok(())
}

/// A file name inside a repository: relative, `/`-separated parts of letters, digits and `-_.`, no `..`.
pub fn check_file_name(file: &str) -> Result<()> {
    let part = |s: &str| !s.is_empty() && s != "." && s != ".." && s.chars().all(|c| c.is_ascii_alphanumeric() || "-_.".contains(c));
    if file.len() > 256 || !file.split('/').all(part) {
        bail!("`{file}` is not a file name this client accepts from a repository");
    }
    Ok(())
}

fn is_commit(s: &str) -> bool {
    s.len() == 40 && s.bytes().all(|b| b.is_ascii_hexdigit() && !b.is_ascii_uppercase())
}

fn is_sha256(s: &str) -> bool {
    s.len() == 64 && s.bytes().all(|b| b.is_ascii_hexdigit() && !b.is_ascii_uppercase())
}

/// An ETag as a blob's file name: quotes and a weak `W/` prefix dropped, then letters, digits, `-`, `_` and `.`, not
/// starting with `.` (no hidden file, no `..`).
fn blob_name(etag: &str) -> Result<String> {
    let e = etag.trim().trim_start_matches("W/").trim_matches('"');
    if e.is_empty() || e.len() > 128 || e.starts_with('.') || !e.chars().all(|c| c.is_ascii_alphanumeric() || "-_.".contains(c)) {
        bail!("the server sent an ETag that is not a plain name ({etag:?}); refusing to use it as a file name");
    }
    Ok(e.to_string())
}

impl Client {
    /// A client configured from the environment, as Python's `huggingface_hub` is.
    pub fn from_env(progress: bool) -> Result<Self> {
        let home = match std::env::var_os("HF_HOME") {
            Some(h) => PathBuf::from(h),
            None => {
                let base = std::env::var_os("XDG_CACHE_HOME")
                    .map(PathBuf::from)
                    .or_else(|| std::env::var_os("HOME").map(|h| PathBuf::from(h).join(".cache")))
                    .ok_or_else(|| anyhow!("neither HF_HOME nor HOME is set: no place for the Hub cache"))?;
                base.join("huggingface")
            }
        };
        let token = std::env::var("HF_TOKEN")
            .ok()
            .or_else(|| std::fs::read_to_string(home.join("token")).ok())
            .map(|t| t.trim().to_string())
            .filter(|t| !t.is_empty());
        let endpoint = std::env::var("HF_ENDPOINT").unwrap_or_else(|_| "https://huggingface.co".into()).trim_end_matches('/').to_string();
        if !(endpoint.starts_with("https://") || endpoint.starts_with("http://")) {
            bail!("HF_ENDPOINT={endpoint:?}: expected an http:// or https:// address");
        }
        let offline = std::env::var("HF_HUB_OFFLINE").is_ok_and(|v| matches!(v.trim(), "1" | "true" | "TRUE" | "yes" | "YES"));
        Ok(Self {
            endpoint,
            token,
            cache: home.join("hub"),
            offline,
            metadata_timeout: seconds_from_env("HF_HUB_ETAG_TIMEOUT", 10.0)?,
            download_timeout: seconds_from_env("HF_HUB_DOWNLOAD_TIMEOUT", 10.0)?,
            limits: Limits::default(),
            progress,
        })
    }

    /// The server, for messages.
    pub fn endpoint(&self) -> &str {
        &self.endpoint
    }

    /// An HTTP agent that follows no redirects (see [`Client::get_following`]).
    fn agent(&self, read: Duration) -> ureq::Agent {
        ureq::AgentBuilder::new()
            .timeout_connect(self.metadata_timeout)
            .timeout_read(read)
            .timeout_write(read)
            .redirects(0)
            .user_agent(concat!("hnet-gpt/", env!("CARGO_PKG_VERSION")))
            .build()
    }

    fn url(&self, r: &RepoRef, file: &str) -> String {
        format!("{}/{}/resolve/{}/{}", self.endpoint, r.repo, r.revision, file)
    }

    fn repo_dir(&self, r: &RepoRef) -> PathBuf {
        self.cache.join(format!("models--{}", r.repo.replace('/', "--")))
    }

    /// A file of `r`: its path in the cache, downloading it when the cache lacks it; `Ok(None)` when the repository
    /// has no such file (HTTP 404).
    pub fn get(&self, r: &RepoRef, file: &str, kind: FileKind) -> Result<Option<PathBuf>> {
        check_repo(&r.repo)?;
        check_revision(&r.revision)?;
        check_file_name(file)?;
        if self.offline {
            return self.cached(r, file).map(Some).ok_or_else(|| {
                anyhow!(
                    "HF_HUB_OFFLINE is set and `{file}` of `{}` at `{}` is not in the cache {}",
                    r.repo,
                    r.revision,
                    self.cache.display()
                )
            });
        }
        let remote = match self.head(r, file, kind) {
            Ok(Some(remote)) => remote,
            Ok(None) => return Ok(None),
            // The Hub unreachable (not refusing): a complete cached copy will do.
            Err(e) => match self.cached(r, file) {
                Some(path) if e.downcast_ref::<Unreachable>().is_some() => {
                    eprintln!("warning: {e:#}; using the cached {file}");
                    return Ok(Some(path));
                }
                _ => return Err(e),
            },
        };
        let repo_dir = self.repo_dir(r);
        let blob = repo_dir.join("blobs").join(&remote.etag);
        let have = std::fs::symlink_metadata(&blob).is_ok_and(|m| m.is_file() && m.len() == remote.size)
            && (!is_sha256(&remote.etag) || sha256_file(&blob).is_ok_and(|h| h == remote.etag));
        if !have {
            self.download(r, file, &remote, &blob)?;
        }
        let pointer = repo_dir.join("snapshots").join(&remote.commit).join(file);
        link(&blob, &pointer).with_context(|| format!("adding {} to the cache", pointer.display()))?;
        if r.revision != remote.commit {
            let refs = repo_dir.join("refs").join(&r.revision);
            hnet_gpt_model::util::files::write_atomic(&refs, remote.commit.as_bytes())
                .with_context(|| format!("writing {}", refs.display()))?;
        }
        Ok(Some(pointer))
    }

    /// A complete cached copy of `file` at `r`'s revision (offline, or with the Hub unreachable).
    fn cached(&self, r: &RepoRef, file: &str) -> Option<PathBuf> {
        let repo_dir = self.repo_dir(r);
        let commit = if is_commit(&r.revision) {
            r.revision.clone()
        } else {
            std::fs::read_to_string(repo_dir.join("refs").join(&r.revision)).ok()?.trim().to_string()
        };
        if !is_commit(&commit) {
            return None;
        }
        let path = repo_dir.join("snapshots").join(commit).join(file);
        // Only a file inside this cache (a link from a tampered cache could point anywhere).
        let real = path.canonicalize().ok()?;
        (real.starts_with(self.cache.canonicalize().ok()?) && real.is_file()).then_some(path)
    }

    fn request(&self, agent: &ureq::Agent, method: &str, url: &str) -> ureq::Request {
        let req = agent.request(method, url);
        match &self.token {
            Some(t) => req.set("Authorization", &format!("Bearer {t}")),
            None => req,
        }
    }

    fn head(&self, r: &RepoRef, file: &str, kind: FileKind) -> Result<Option<Remote>> {
        let url = self.url(r, file);
        let response = match self.request(&self.agent(self.metadata_timeout), "HEAD", &url).call() {
            Ok(resp) => resp,
            Err(ureq::Error::Status(404, _)) => return Ok(None),
            Err(ureq::Error::Status(code, resp)) if (300..400).contains(&code) => resp,
            Err(ureq::Error::Status(code @ (401 | 403), _)) => bail!(
                "{}: `{}` refused access to `{file}` (HTTP {code}): the repository is gated or private; accept its terms \
                 on the Hub and set HF_TOKEN",
                self.endpoint,
                r.repo
            ),
            Err(ureq::Error::Status(code, _)) => bail!("{}: fetching `{file}` from `{}` failed with HTTP {code}", self.endpoint, r.repo),
            Err(e) => {
                return Err(anyhow::Error::new(Unreachable(format!(
                    "{}: cannot reach the Hub for `{file}` of `{}`: {e}",
                    self.endpoint, r.repo
                ))))
            }
        };
        let header = |names: &[&str]| names.iter().find_map(|n| response.header(n)).map(str::to_string);
        let commit = header(&["X-Repo-Commit"])
            .ok_or_else(|| anyhow!("{}: the answer for `{file}` has no X-Repo-Commit header: not a Hub", self.endpoint))?;
        if !is_commit(&commit) {
            bail!("{}: the server sent a commit that is not 40 hexadecimal digits ({commit:?}); refusing it", self.endpoint);
        }
        let etag = blob_name(
            &header(&["X-Linked-Etag", "ETag"]).ok_or_else(|| anyhow!("{}: the answer for `{file}` has no ETag", self.endpoint))?,
        )?;
        let size: u64 = header(&["X-Linked-Size", "Content-Length"])
            .and_then(|s| s.trim().parse().ok())
            .ok_or_else(|| anyhow!("{}: `{file}` has no declared size; refusing a download without a bound", self.endpoint))?;
        let cap = match kind {
            FileKind::Metadata => self.limits.metadata_bytes,
            FileKind::Weights => self.limits.weights_bytes,
        };
        if size > cap {
            bail!("{}: `{file}` declares {size} bytes, over the limit of {cap} for a file of its kind", self.endpoint);
        }
        Ok(Some(Remote { commit, etag, size }))
    }

    fn download(&self, r: &RepoRef, file: &str, remote: &Remote, blob: &Path) -> Result<()> {
        let dir = blob.parent().expect("blobs/ is a directory");
        std::fs::create_dir_all(dir).with_context(|| format!("creating {}", dir.display()))?;
        let part = dir.join(format!("{}.incomplete", remote.etag));
        let result = self.fetch_into(r, file, remote, &part);
        match result {
            Ok(()) => std::fs::rename(&part, blob).with_context(|| format!("moving the download into {}", blob.display())),
            Err(e) => {
                let _ = std::fs::remove_file(&part);
                Err(e)
            }
        }
    }

    /// A `GET` of `url`, following at most [`MAX_REDIRECTS`] redirects ourselves: each must be to http(s) with a
    /// host (ureq's own following panics on a `file:` location), and the token goes to the first request only.
    fn get_following(&self, url: &str, file: &str) -> Result<ureq::Response> {
        let agent = self.agent(self.download_timeout);
        let mut url = url::Url::parse(url).with_context(|| format!("{url} is not a URL"))?;
        for hop in 0..=MAX_REDIRECTS {
            let req = if hop == 0 { self.request(&agent, "GET", url.as_str()) } else { agent.get(url.as_str()) };
            let response = match req.call() {
                Ok(resp) => resp,
                Err(ureq::Error::Status(code, resp)) if (300..400).contains(&code) => resp,
                Err(ureq::Error::Status(code, _)) => bail!("{}: downloading `{file}` failed with HTTP {code}", self.endpoint),
                Err(e) => bail!("{}: downloading `{file}`: {e}", self.endpoint),
            };
            if !(300..400).contains(&response.status()) {
                return Ok(response);
            }
            let location = response.header("Location").ok_or_else(|| anyhow!("{}: a redirect without a Location", self.endpoint))?;
            url = url.join(location).with_context(|| format!("{}: a redirect to {location:?}", self.endpoint))?;
            if !matches!(url.scheme(), "http" | "https") || url.host_str().is_none_or(str::is_empty) {
                bail!("{}: downloading `{file}` redirects to {url}, which is not an http(s) address; refusing", self.endpoint);
            }
        }
        bail!("{}: downloading `{file}`: more than {MAX_REDIRECTS} redirects", self.endpoint)
    }

    fn fetch_into(&self, r: &RepoRef, file: &str, remote: &Remote, part: &Path) -> Result<()> {
        let response = self.get_following(&self.url(r, file), file)?;
        let mut out = std::fs::File::create(part).with_context(|| format!("creating {}", part.display()))?;
        let bar = if self.progress { indicatif::ProgressBar::new(remote.size) } else { indicatif::ProgressBar::hidden() };
        bar.set_style(
            indicatif::ProgressStyle::with_template("{msg:>24} [{bar:30}] {bytes}/{total_bytes} ({bytes_per_sec}, eta {eta})")
                .expect("a valid template"),
        );
        bar.set_message(file.to_string());
        let mut reader = response.into_reader();
        let mut hasher = Sha256::new();
        let mut buf = vec![0u8; 256 * 1024];
        let (mut got, mut window_start, mut window_bytes) = (0u64, Instant::now(), 0u64);
        loop {
            let n = match reader.read(&mut buf) {
                Ok(n) => n,
                Err(e) if e.kind() == std::io::ErrorKind::Interrupted => continue,
                Err(e) => bail!("{}: downloading `{file}` stopped after {got} of {} bytes: {e}", self.endpoint, remote.size),
            };
            if n == 0 {
                break;
            }
            got += n as u64;
            if got > remote.size {
                bail!("{}: `{file}` ran past its declared size of {} bytes; discarded", self.endpoint, remote.size);
            }
            out.write_all(&buf[..n]).with_context(|| format!("writing {}", part.display()))?;
            hasher.update(&buf[..n]);
            bar.set_position(got);
            window_bytes += n as u64;
            if window_start.elapsed() >= self.download_timeout {
                if window_bytes < MIN_BYTES_PER_WINDOW.min(remote.size - (got - window_bytes)) {
                    bail!(
                        "{}: downloading `{file}` stalled: {window_bytes} bytes in {:.0} s (at least {MIN_BYTES_PER_WINDOW} per \
                         HF_HUB_DOWNLOAD_TIMEOUT window are needed)",
                        self.endpoint,
                        window_start.elapsed().as_secs_f64()
                    );
                }
                (window_start, window_bytes) = (Instant::now(), 0);
            }
        }
        bar.finish_and_clear();
        if got != remote.size {
            bail!("{}: `{file}` arrived truncated: {got} of {} bytes", self.endpoint, remote.size);
        }
        if is_sha256(&remote.etag) && format!("{:x}", hasher.finalize()) != remote.etag {
            bail!("{}: `{file}` does not match its SHA-256 ETag: corrupt download", self.endpoint);
        }
        out.sync_all().with_context(|| format!("writing {}", part.display()))?;
        Ok(())
    }
}

/// The Hub could not be reached at all (as opposed to answering with a refusal).
#[derive(Debug)]
struct Unreachable(String);

impl std::fmt::Display for Unreachable {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.0)
    }
}

impl std::error::Error for Unreachable {}

fn sha256_file(path: &Path) -> std::io::Result<String> {
    let mut f = std::fs::File::open(path)?;
    let mut hasher = Sha256::new();
    std::io::copy(&mut f, &mut hasher)?;
    Ok(format!("{:x}", hasher.finalize()))
}

/// Points `pointer` at `blob` (a relative symbolic link, as Python's client makes; a copy where links fail).
fn link(blob: &Path, pointer: &Path) -> std::io::Result<()> {
    let dir = pointer.parent().expect("a snapshot file has a directory");
    std::fs::create_dir_all(dir)?;
    let _ = std::fs::remove_file(pointer);
    // snapshots/{commit}/{a/b/file} → ../../(../)blobs/{etag}
    let depth =
        pointer.strip_prefix(blob.parent().and_then(Path::parent).expect("blobs/ has a parent")).map_or(2, |p| p.components().count() - 1);
    let target = Path::new(&"../".repeat(depth)).join("blobs").join(blob.file_name().expect("a blob has a name"));
    #[cfg(unix)]
    if std::os::unix::fs::symlink(&target, pointer).is_ok() {
        return Ok(());
    }
    std::fs::copy(blob, pointer).map(|_| ())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_from_servers_and_users_are_checked() {
        for ok in ["gpt2", "Qwen/Qwen2.5-Coder-0.5B", "a_b/c.d"] {
            check_repo(ok).unwrap();
        }
        for bad in ["", "../x", "a/b/c", "/etc", "a/..", "a b", ".hidden/x"] {
            assert!(check_repo(bad).is_err(), "{bad}");
        }
        for ok in ["main", "v1.0", "refs/pr/1", "0123456789abcdef0123456789abcdef01234567"] {
            check_revision(ok).unwrap();
        }
        for bad in ["", "..", "a/../b", "/abs", "a//b", "x y"] {
            assert!(check_revision(bad).is_err(), "{bad}");
        }
        for ok in ["config.json", "model-00001-of-00002.safetensors", "onnx/model.onnx"] {
            check_file_name(ok).unwrap();
        }
        for bad in ["../../.bashrc", "/etc/passwd", "a/../b", "", "a\\b"] {
            assert!(check_file_name(bad).is_err(), "{bad}");
        }
        assert_eq!(blob_name("\"abc123\"").unwrap(), "abc123");
        assert_eq!(blob_name("W/\"abc-1_2\"").unwrap(), "abc-1_2");
        assert_eq!(blob_name("\"repo-config.json-555\"").unwrap(), "repo-config.json-555");
        for bad in ["\"../../.bashrc\"", "\"a/b\"", "\"\"", "\".\"", "\"..\"", "\".hidden\"", &format!("\"{}\"", "a".repeat(200))] {
            assert!(blob_name(bad).is_err(), "{bad}");
        }
        assert!(is_commit("0123456789abcdef0123456789abcdef01234567"));
        assert!(!is_commit("../../../../tmp/x") && !is_commit("0123456789ABCDEF0123456789abcdef01234567"));
    }
}
