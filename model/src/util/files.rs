//! Local files that may be anything: every read of data, metadata or a checkpoint goes through here, so a FIFO, a
//! socket or a device named `*.py` (or `METADATA`, or `--data`) is passed over instead of blocking forever, and a
//! size limit is checked from the metadata before reading and enforced while reading (a file that grows, a sparse
//! file, a gzip stream that expands without end). Writes are atomic ([`write_atomic`]).

use std::fs::File;
use std::io::{BufRead, Read};
use std::path::Path;

/// Why a file was not read.
#[derive(Debug, thiserror::Error)]
pub enum ReadError {
    /// A FIFO, socket, device or directory.
    #[error("not a regular file ({0})")]
    NotRegular(&'static str),
    /// Over the limit (declared by its metadata, or found while reading).
    #[error("{size} bytes, over the limit of {limit}")]
    TooLarge {
        /// The size seen (at least).
        size: u64,
        /// The limit.
        limit: u64,
    },
    /// The operating system said no.
    #[error("{0}")]
    Io(#[from] std::io::Error),
}

impl From<ReadError> for std::io::Error {
    fn from(e: ReadError) -> Self {
        match e {
            ReadError::Io(e) => e,
            other => std::io::Error::new(std::io::ErrorKind::InvalidInput, other.to_string()),
        }
    }
}

/// The largest checkpoint or weights file read (a 0.5B model in f32 is 2 GB; 64 GiB leaves room for 10B+).
pub const MAX_CHECKPOINT_BYTES: u64 = 64 << 30;
/// The largest JSON file read (configs, tokenizers, manifests, run state).
pub const MAX_JSON_BYTES: u64 = 256 << 20;

fn kind(t: std::fs::FileType) -> &'static str {
    #[cfg(unix)]
    {
        use std::os::unix::fs::FileTypeExt;
        if t.is_fifo() {
            return "a FIFO";
        }
        if t.is_socket() {
            return "a socket";
        }
        if t.is_block_device() || t.is_char_device() {
            return "a device";
        }
    }
    if t.is_dir() {
        "a directory"
    } else {
        "not a file"
    }
}

/// Opens `path` (symbolic links followed) if it is a regular file, without ever blocking: the open itself is
/// non-blocking (a FIFO without a writer would otherwise wait forever), and the type is checked on what was
/// opened, so a file swapped for a FIFO between a check and the open is caught too. Returns the file and its size.
pub fn open_regular(path: &Path) -> Result<(File, u64), ReadError> {
    let meta = std::fs::metadata(path)?;
    if !meta.is_file() {
        return Err(ReadError::NotRegular(kind(meta.file_type())));
    }
    let mut options = std::fs::OpenOptions::new();
    options.read(true);
    #[cfg(unix)]
    {
        use std::os::unix::fs::OpenOptionsExt;
        options.custom_flags(libc::O_NONBLOCK);
    }
    let file = options.open(path)?;
    let meta = file.metadata()?;
    if !meta.is_file() {
        return Err(ReadError::NotRegular(kind(meta.file_type())));
    }
    Ok((file, meta.len()))
}

/// Reads a regular file of at most `limit` bytes.
pub fn read_regular(path: &Path, limit: u64) -> Result<Vec<u8>, ReadError> {
    let (file, size) = open_regular(path)?;
    if size > limit {
        return Err(ReadError::TooLarge { size, limit });
    }
    read_bounded(file, limit)
}

/// Maps a regular file of at most `limit` bytes into memory (read-only): large weights are read where they lie, as
/// they are used, instead of copied into the heap first. The map is private to this process; a file changed by
/// someone else while mapped is the caller's risk, as with any reader.
pub fn map_regular(path: &Path, limit: u64) -> Result<memmap2::Mmap, ReadError> {
    let (file, size) = open_regular(path)?;
    if size > limit {
        return Err(ReadError::TooLarge { size, limit });
    }
    // SAFETY: a read-only private mapping of a regular file we opened; its bytes are only read.
    Ok(unsafe { memmap2::Mmap::map(&file)? })
}

/// [`read_regular`] as UTF-8 text (invalid sequences are an error).
pub fn read_regular_text(path: &Path, limit: u64) -> Result<String, ReadError> {
    String::from_utf8(read_regular(path, limit)?)
        .map_err(|e| ReadError::Io(std::io::Error::new(std::io::ErrorKind::InvalidData, format!("not UTF-8 ({e})"))))
}

/// All of `r`, refusing more than `limit` bytes (for streams whose size is not known before, such as gzip).
pub fn read_bounded(r: impl Read, limit: u64) -> Result<Vec<u8>, ReadError> {
    let mut out = Vec::new();
    r.take(limit.saturating_add(1)).read_to_end(&mut out)?;
    if out.len() as u64 > limit {
        return Err(ReadError::TooLarge { size: out.len() as u64, limit });
    }
    Ok(out)
}

/// Lines of a stream, each at most `max_line` bytes and all together at most `max_total`: a line over the limit is
/// an error (the rest of the stream is not read), never an allocation of its whole length.
pub struct BoundedLines<R> {
    reader: R,
    max_line: usize,
    left: u64,
    max_total: u64,
}

impl<R: BufRead> BoundedLines<R> {
    /// Lines of `reader` within the limits.
    pub fn new(reader: R, max_line: usize, max_total: u64) -> Self {
        Self { reader, max_line, left: max_total, max_total }
    }
}

impl<R: BufRead> Iterator for BoundedLines<R> {
    type Item = Result<String, ReadError>;

    fn next(&mut self) -> Option<Self::Item> {
        let mut line = Vec::new();
        loop {
            let buf = match self.reader.fill_buf() {
                Ok(b) => b,
                Err(e) if e.kind() == std::io::ErrorKind::Interrupted => continue,
                Err(e) => return Some(Err(e.into())),
            };
            if buf.is_empty() {
                return (!line.is_empty()).then(|| String::from_utf8(line).map_err(|e| invalid(&e)));
            }
            let (take, done) = match buf.iter().position(|&b| b == b'\n') {
                Some(i) => (i + 1, true),
                None => (buf.len(), false),
            };
            if take as u64 > self.left {
                return Some(Err(ReadError::TooLarge { size: self.max_total + 1, limit: self.max_total }));
            }
            if line.len() + take > self.max_line + 1 {
                return Some(Err(ReadError::TooLarge { size: (line.len() + take) as u64, limit: self.max_line as u64 }));
            }
            line.extend_from_slice(&buf[..take]);
            self.reader.consume(take);
            self.left -= take as u64;
            if done {
                while matches!(line.last(), Some(b'\n' | b'\r')) {
                    line.pop();
                }
                return Some(String::from_utf8(line).map_err(|e| invalid(&e)));
            }
        }
    }
}

fn invalid(e: &std::string::FromUtf8Error) -> ReadError {
    ReadError::Io(std::io::Error::new(std::io::ErrorKind::InvalidData, format!("not UTF-8 ({e})")))
}

/// Writes a file atomically: a temporary sibling (`.tmp-NAME-PID`), synced, then renamed over `path`, and the
/// rename itself synced. A crash at any moment leaves the old file or the new one, never a torn one; temporaries that
/// killed writes left in the directory are removed first ([`remove_stale_temporaries`]).
pub fn write_atomic(path: &Path, bytes: &[u8]) -> std::io::Result<()> {
    use std::io::Write;
    write_atomic_with(path, |f| f.write_all(bytes))
}

/// [`write_atomic`] of what `write` writes (streamed through a buffer: a large checkpoint is never held whole).
pub fn write_atomic_with(path: &Path, write: impl FnOnce(&mut std::io::BufWriter<File>) -> std::io::Result<()>) -> std::io::Result<()> {
    use std::io::Write;
    let dir = path.parent().filter(|p| !p.as_os_str().is_empty()).unwrap_or(Path::new("."));
    std::fs::create_dir_all(dir)?;
    let name = path.file_name().map(|n| n.to_string_lossy().into_owned()).unwrap_or_default();
    remove_stale_temporaries(dir);
    let tmp = dir.join(format!(".tmp-{name}-{}", std::process::id()));
    let result = (|| {
        let mut f = std::io::BufWriter::with_capacity(1 << 20, File::create(&tmp)?);
        write(&mut f)?;
        f.flush()?;
        f.get_ref().sync_all()?;
        std::fs::rename(&tmp, path)?;
        if let Ok(d) = File::open(dir) {
            let _ = d.sync_all();
        }
        Ok(())
    })();
    if result.is_err() {
        let _ = std::fs::remove_file(&tmp);
    }
    result
}

/// Removes the temporaries of writes that were killed mid-way from `dir`: entries named `.tmp-…-PID` or
/// `.old-…-PID` (a checkpoint directory being replaced) whose process is gone.
pub fn remove_stale_temporaries(dir: &Path) {
    let Ok(entries) = std::fs::read_dir(dir) else { return };
    for e in entries.flatten() {
        let file_name = e.file_name().to_string_lossy().into_owned();
        if !(file_name.starts_with(".tmp-") || file_name.starts_with(".old-")) {
            continue;
        }
        let Some(pid) = file_name.rsplit('-').next().and_then(|p| p.parse::<u32>().ok()) else { continue };
        if pid == std::process::id() || process_alive(pid) {
            continue;
        }
        let path = e.path();
        let _ = if path.is_dir() && !path.is_symlink() { std::fs::remove_dir_all(&path) } else { std::fs::remove_file(&path) };
    }
}

fn process_alive(pid: u32) -> bool {
    #[cfg(target_os = "linux")]
    {
        Path::new("/proc").join(pid.to_string()).exists()
    }
    #[cfg(not(target_os = "linux"))]
    {
        let _ = pid;
        true
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn dir(name: &str) -> std::path::PathBuf {
        let d = std::env::temp_dir().join(format!("hnet-files-{}-{name}", std::process::id()));
        let _ = std::fs::remove_dir_all(&d);
        std::fs::create_dir_all(&d).unwrap();
        d
    }

    #[test]
    fn special_files_are_refused_without_blocking_and_limits_hold() {
        let d = dir("special");
        let fifo = d.join("trap.py");
        let c = std::ffi::CString::new(fifo.to_str().unwrap()).unwrap();
        assert_eq!(unsafe { libc::mkfifo(c.as_ptr(), 0o644) }, 0);
        assert!(matches!(read_regular(&fifo, 100), Err(ReadError::NotRegular("a FIFO"))));
        assert!(matches!(read_regular(Path::new("/dev/zero"), 100), Err(ReadError::NotRegular("a device"))));
        assert!(matches!(read_regular(&d, 100), Err(ReadError::NotRegular("a directory"))));
        // A sparse file declares its size: refused before a byte is read.
        let sparse = d.join("sparse.py");
        File::create(&sparse).unwrap().set_len(2 << 30).unwrap();
        assert!(matches!(read_regular(&sparse, 1 << 20), Err(ReadError::TooLarge { size, .. }) if size == 2 << 30));
        std::fs::write(d.join("ok.py"), "x = 1\n").unwrap();
        assert_eq!(read_regular(&d.join("ok.py"), 6).unwrap(), b"x = 1\n");
        // A stream is cut at its limit.
        assert!(matches!(read_bounded(std::io::repeat(7).take(1000), 999), Err(ReadError::TooLarge { .. })));
        std::fs::remove_dir_all(&d).unwrap();
    }

    #[test]
    fn lines_are_bounded_each_and_together() {
        let text = "a\nbb\r\nccc";
        let lines: Vec<String> = BoundedLines::new(text.as_bytes(), 3, 100).map(Result::unwrap).collect();
        assert_eq!(lines, ["a", "bb", "ccc"]);
        // One endless line: an error after the limit, not the whole line in memory.
        let mut endless = BoundedLines::new(std::io::BufReader::new(std::io::repeat(b'x')), 1 << 16, u64::MAX);
        assert!(matches!(endless.next(), Some(Err(ReadError::TooLarge { .. }))));
        let mut many = BoundedLines::new(std::io::BufReader::new(std::io::repeat(b'\n')), 10, 1 << 10);
        assert!(many.by_ref().take(2000).any(|l| l.is_err()));
    }

    #[test]
    fn atomic_writes_clear_what_killed_writes_left() {
        let d = dir("atomic");
        let target = d.join("model.safetensors");
        // Writes killed mid-way, by processes that are gone (no process has such a pid).
        std::fs::write(d.join(".tmp-model.safetensors-999999999"), "half").unwrap();
        std::fs::create_dir(d.join(".tmp-step-000100-999999998")).unwrap();
        std::fs::write(d.join(".tmp-step-000100-999999998/model.safetensors"), "half").unwrap();
        // A live process's temporary stays (this test's own pid).
        let mine = d.join(format!(".tmp-other-{}", std::process::id()));
        std::fs::write(&mine, "in progress").unwrap();
        write_atomic(&target, b"whole").unwrap();
        assert_eq!(std::fs::read(&target).unwrap(), b"whole");
        let mut left: Vec<_> = std::fs::read_dir(&d).unwrap().flatten().map(|e| e.file_name()).collect();
        left.sort();
        assert_eq!(left, [mine.file_name().unwrap().to_owned(), std::ffi::OsString::from("model.safetensors")]);
        std::fs::remove_dir_all(&d).unwrap();
    }
}
