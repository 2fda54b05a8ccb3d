//! What the CLI's integration tests share.

use std::ops::Deref;
use std::path::{Path, PathBuf};

/// A test's scratch directory, `hnet-{suite}-{pid}-{name}` under the system's temporary folder: emptied when made,
/// removed when dropped — also when the test panics. CI machines run the suite again and again on one disk, and the
/// sandbox tests put a copy of the CLI in theirs; leftovers once filled that disk.
pub struct Scratch(PathBuf);

impl Scratch {
    pub fn new(suite: &str, name: &str) -> Scratch {
        let dir = std::env::temp_dir().join(format!("hnet-{suite}-{}-{name}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir).unwrap();
        Scratch(dir)
    }
}

impl Deref for Scratch {
    type Target = Path;
    fn deref(&self) -> &Path {
        &self.0
    }
}

impl AsRef<Path> for Scratch {
    fn as_ref(&self) -> &Path {
        &self.0
    }
}

impl Drop for Scratch {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}
