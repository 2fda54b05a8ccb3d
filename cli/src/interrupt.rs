//! Ctrl-C and SIGTERM: the first asks the running work to stop at the next safe point (a training loop finishes
//! its step and writes a checkpoint); the second ends the process at once. One handler for the whole process, so
//! every run of a `compare` honours it, not only the first.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, OnceLock};

/// The error a command returns when it stopped because it was asked to; `main` exits with status 130.
#[derive(Debug, thiserror::Error)]
#[error("interrupted")]
pub struct Interrupted;

/// The process-wide stop flag (the handler is installed on first use).
pub fn flag() -> Arc<AtomicBool> {
    static FLAG: OnceLock<Arc<AtomicBool>> = OnceLock::new();
    FLAG.get_or_init(|| {
        let flag = Arc::new(AtomicBool::new(false));
        let handler_flag = flag.clone();
        let installed = ctrlc::set_handler(move || {
            if handler_flag.swap(true, Ordering::SeqCst) {
                // The second signal: the user means it.
                std::process::exit(130);
            }
        });
        if let Err(e) = installed {
            eprintln!("warning: cannot handle Ctrl-C ({e}): an interrupted run keeps only its last checkpoint");
        }
        flag
    })
    .clone()
}
