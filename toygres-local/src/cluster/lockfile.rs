//! Exclusive advisory locks on files (`flock`), shared by every process on this machine.
//!
//! A lock belongs to one open file description: two opens of the same file conflict even inside
//! one process, and the kernel releases the lock when the last descriptor closes, which includes
//! the death of the process (SIGKILL too). Files are opened close-on-exec, so child processes
//! never inherit a lock.
//!
//! A lock file may be removed while locked (to leave nothing behind): whoever opened the old file
//! and locks it afterwards notices that the path no longer names what it locked, and tries again
//! on the new file (or reports the lock free when it would not create one).

use super::io_err;
use nix::errno::Errno;
use nix::fcntl::{Flock, FlockArg};
use std::fs::File;
use std::os::unix::fs::{MetadataExt, OpenOptionsExt};
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};
use toygres_core::{Error, Result};

/// An exclusive lock on a file, held until dropped.
#[derive(Debug)]
pub struct FileLock {
    /// Never read: dropping it (closing the file) releases the lock.
    _file: Flock<File>,
    path: PathBuf,
}

/// What [`try_lock`] found.
#[derive(Debug)]
pub enum TryLock {
    /// The lock is ours now.
    Acquired(FileLock),
    /// Another open file (another process, or another opener in this one) holds it.
    Held,
    /// There is no such file (only when not asked to create it): nobody holds the lock.
    Missing,
}

/// Tries to lock `path` exclusively without waiting, creating the file (mode 0600) when `create`.
pub fn try_lock(path: &Path, create: bool) -> Result<TryLock> {
    loop {
        let opened =
            std::fs::OpenOptions::new().read(true).write(true).create(create).truncate(false).mode(0o600).open(path);
        let file = match opened {
            Ok(file) => file,
            Err(e) if !create && e.kind() == std::io::ErrorKind::NotFound => return Ok(TryLock::Missing),
            Err(e) => return Err(io_err(format!("opening lock file {}", path.display()), e)),
        };
        let file = match Flock::lock(file, FlockArg::LockExclusiveNonblock) {
            Ok(file) => file,
            Err((_, Errno::EWOULDBLOCK)) => return Ok(TryLock::Held),
            Err((_, e)) => {
                let e = std::io::Error::from_raw_os_error(e as i32);
                return Err(io_err(format!("locking {}", path.display()), e));
            }
        };
        if names_same_file(&file, path) {
            return Ok(TryLock::Acquired(FileLock { _file: file, path: path.to_path_buf() }));
        }
        // Removed (and perhaps created anew) between our open and our lock.
        if !create {
            return Ok(TryLock::Missing);
        }
    }
}

/// Locks `path` exclusively (creating it), polling every 10 ms for up to `patience`; then a
/// transient error that names `what`.
pub async fn lock(path: &Path, patience: Duration, what: &str) -> Result<FileLock> {
    let deadline = Instant::now() + patience;
    loop {
        if let TryLock::Acquired(lock) = try_lock(path, true)? {
            return Ok(lock);
        }
        if Instant::now() >= deadline {
            return Err(Error::backend_msg(
                "local executor",
                format!("{what}: {} stayed locked by another process for {patience:?}", path.display()),
            ));
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
}

impl FileLock {
    /// Removes the lock file, then releases the lock: whoever waits for it sees it gone.
    pub fn remove(self) -> Result<()> {
        match std::fs::remove_file(&self.path) {
            Err(e) if e.kind() != std::io::ErrorKind::NotFound => {
                Err(io_err(format!("removing {}", self.path.display()), e))
            }
            _ => Ok(()),
        }
    }
}

fn names_same_file(file: &File, path: &Path) -> bool {
    match (file.metadata(), std::fs::metadata(path)) {
        (Ok(held), Ok(named)) => held.dev() == named.dev() && held.ino() == named.ino(),
        _ => false,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn two_opens_conflict_and_dropping_releases() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("x.lock");
        assert!(matches!(try_lock(&path, false).unwrap(), TryLock::Missing));
        let TryLock::Acquired(held) = try_lock(&path, true).unwrap() else { panic!("free lock not acquired") };
        assert!(matches!(try_lock(&path, true).unwrap(), TryLock::Held));
        assert!(matches!(try_lock(&path, false).unwrap(), TryLock::Held));
        drop(held);
        assert!(matches!(try_lock(&path, false).unwrap(), TryLock::Acquired(_)));
    }

    #[test]
    fn a_removed_lock_file_is_not_a_lock() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("x.lock");
        let TryLock::Acquired(held) = try_lock(&path, true).unwrap() else { panic!() };
        // Someone opened the old file before it was removed, and locks it afterwards.
        let stale = std::fs::OpenOptions::new().read(true).open(&path).unwrap();
        held.remove().unwrap();
        let stale = Flock::lock(stale, FlockArg::LockExclusiveNonblock).unwrap();
        assert!(!names_same_file(&stale, &path));
        assert!(matches!(try_lock(&path, false).unwrap(), TryLock::Missing));
        let TryLock::Acquired(fresh) = try_lock(&path, true).unwrap() else { panic!("new file not locked") };
        assert!(path.exists());
        drop((stale, fresh));
    }
}
