//! Starting the kernel's writeback of files early, so that a later sync finds little left to
//! write: the restore loads with `fsync=off` and makes the volume durable once at the end.

use std::fs::File;
use std::os::fd::AsRawFd;
use std::path::Path;
use std::time::Duration;

/// How often [`Writeback::every`] walks the directory.
pub(crate) const PERIOD: Duration = Duration::from_millis(500);

/// Asks the kernel to start writing `len` bytes at `offset` of `file` (0: to its end) to disk now,
/// without waiting (`sync_file_range(SYNC_FILE_RANGE_WRITE)`). Failure only loses the hint.
pub(crate) fn start(file: &File, offset: u64, len: u64) {
    // SAFETY: a plain syscall on an open descriptor, no memory passed.
    unsafe {
        libc::sync_file_range(file.as_raw_fd(), offset as i64, len as i64, libc::SYNC_FILE_RANGE_WRITE);
    }
}

/// [`start`] for every regular file under `dir` (errors ignored: files come and go).
pub(crate) fn start_dir(dir: &Path) {
    let Ok(entries) = std::fs::read_dir(dir) else { return };
    for entry in entries.flatten() {
        match entry.file_type() {
            Ok(t) if t.is_dir() => start_dir(&entry.path()),
            Ok(t) if t.is_file() => {
                if let Ok(file) = File::open(entry.path()) {
                    start(&file, 0, 0);
                }
            }
            _ => {}
        }
    }
}

/// A background task starting the writeback of everything under a directory every [`PERIOD`],
/// until dropped.
pub(crate) struct Writeback(tokio::task::JoinHandle<()>);

impl Writeback {
    /// Starts it for `dir`.
    pub(crate) fn every(dir: std::path::PathBuf) -> Self {
        Self(tokio::spawn(async move {
            loop {
                tokio::time::sleep(PERIOD).await;
                let dir = dir.clone();
                let _ = tokio::task::spawn_blocking(move || start_dir(&dir)).await;
            }
        }))
    }
}

impl Drop for Writeback {
    fn drop(&mut self) {
        self.0.abort();
    }
}
