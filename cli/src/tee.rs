//! Copies everything this process writes to standard error into a file as well, for as long as the guard lives:
//! `compare` keeps the complete log of the invocation that produced its table, training runs included.

use std::fs::File;
use std::io::{Read, Write};
use std::os::fd::{FromRawFd, RawFd};
use std::path::Path;

/// Restores standard error and finishes the copy when dropped.
pub struct StderrTee {
    saved: RawFd,
    thread: Option<std::thread::JoinHandle<()>>,
}

/// Starts copying standard error into `path` (created or truncated).
pub fn stderr_to(path: &Path) -> std::io::Result<StderrTee> {
    let mut log = File::create(path)?;
    let mut fds = [0; 2];
    // SAFETY: plain fd syscalls; each result is checked.
    unsafe {
        if libc::pipe(fds.as_mut_ptr()) != 0 {
            return Err(std::io::Error::last_os_error());
        }
        let saved = libc::dup(2);
        if saved < 0 || libc::dup2(fds[1], 2) < 0 {
            return Err(std::io::Error::last_os_error());
        }
        libc::close(fds[1]);
        let mut reader = File::from_raw_fd(fds[0]);
        let mut terminal = File::from_raw_fd(libc::dup(saved));
        let thread = std::thread::spawn(move || {
            let mut buf = [0u8; 8192];
            while let Ok(n) = reader.read(&mut buf) {
                if n == 0 {
                    break;
                }
                let _ = terminal.write_all(&buf[..n]);
                let _ = log.write_all(&buf[..n]);
            }
            let _ = log.flush();
        });
        Ok(StderrTee { saved, thread: Some(thread) })
    }
}

impl Drop for StderrTee {
    fn drop(&mut self) {
        // Put the original stderr back: the pipe's last writer closes, and the copying thread sees the end.
        unsafe {
            libc::dup2(self.saved, 2);
            libc::close(self.saved);
        }
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}
