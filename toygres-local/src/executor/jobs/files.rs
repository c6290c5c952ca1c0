//! A job's files in the jobs directory: `<name>.log`, `<name>.lock`, `<name>.state` and
//! `<name>.cancel` (see the protocol in [`super`]).

use crate::cluster::io_err;
use crate::cluster::lockfile::{self, TryLock};
use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use std::io::Write;
use std::os::unix::fs::OpenOptionsExt;
use std::path::{Path, PathBuf};
use toygres_core::{Error, Phase, Result};

/// How a job stands.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub(crate) enum Status {
    Running,
    Succeeded,
    /// With the reason, redacted.
    Failed(String),
}

/// What `<name>.state` holds: written by the process holding the job's lock only.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub(crate) struct State {
    /// The process that runs (or ran) the job.
    pub(crate) pid: u32,
    pub(crate) status: Status,
    /// Bytes moved so far, and the expected total (0: not known yet).
    pub(crate) done: u64,
    pub(crate) total: u64,
    /// The phase its byte progress is reported under.
    pub(crate) phase: Phase,
    pub(crate) updated_at: DateTime<Utc>,
}

impl State {
    /// This process's state of a job, now.
    pub(crate) fn now(status: Status, phase: Phase, (done, total): (u64, u64)) -> Self {
        Self { pid: std::process::id(), status, done, total, phase, updated_at: Utc::now() }
    }
}

/// The paths of one job's files.
#[derive(Debug, Clone)]
pub(crate) struct JobFiles {
    dir: PathBuf,
    name: String,
}

impl JobFiles {
    pub(crate) fn new(dir: &Path, name: &str) -> Self {
        Self { dir: dir.to_path_buf(), name: name.to_string() }
    }

    pub(crate) fn name(&self) -> &str {
        &self.name
    }

    fn path(&self, suffix: &str) -> PathBuf {
        self.dir.join(format!("{}.{suffix}", self.name))
    }

    pub(crate) fn log(&self) -> PathBuf {
        self.path("log")
    }

    pub(crate) fn lock(&self) -> PathBuf {
        self.path("lock")
    }

    fn state(&self) -> PathBuf {
        self.path("state")
    }

    fn cancel(&self) -> PathBuf {
        self.path("cancel")
    }

    /// Tries the job's lock without waiting; `create` makes the lock file when there is none.
    pub(crate) fn try_lock(&self, create: bool) -> Result<TryLock> {
        lockfile::try_lock(&self.lock(), create)
    }

    /// The job's state, `None` when it has none.
    pub(crate) fn read_state(&self) -> Result<Option<State>> {
        let path = self.state();
        match std::fs::read(&path) {
            Ok(bytes) => serde_json::from_slice(&bytes).map(Some).map_err(|e| {
                Error::backend("local executor", format!("reading job state {}; delete the job", path.display()), e)
            }),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(None),
            Err(e) => Err(io_err(format!("reading {}", path.display()), e)),
        }
    }

    /// Replaces the job's state at once (a temporary file renamed over it): readers see the old
    /// state or the new one, never part of one. Only the holder of the job's lock calls this.
    pub(crate) fn write_state(&self, state: &State) -> Result<()> {
        let path = self.state();
        let temp = self.path(&format!("state.tmp-{}", std::process::id()));
        let bytes = serde_json::to_vec(state).expect("a job state serializes");
        let written = std::fs::OpenOptions::new()
            .write(true)
            .create(true)
            .truncate(true)
            .mode(0o600)
            .open(&temp)
            .and_then(|mut f| f.write_all(&bytes))
            .and_then(|()| std::fs::rename(&temp, &path));
        written.map_err(|e| io_err(format!("writing job state {}", path.display()), e))
    }

    /// Asks the job's owner to abort it.
    pub(crate) fn request_cancel(&self) -> Result<()> {
        let path = self.cancel();
        std::fs::write(&path, b"").map_err(|e| io_err(format!("writing {}", path.display()), e))
    }

    /// Whether someone asked to abort the job.
    pub(crate) fn cancel_requested(&self) -> bool {
        self.cancel().exists()
    }

    /// Removes every file of the job but its lock (the caller holds it, and removes it last).
    pub(crate) fn remove_all_but_lock(&self) -> Result<()> {
        let entries = match std::fs::read_dir(&self.dir) {
            Ok(entries) => entries,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(()),
            Err(e) => return Err(io_err(format!("listing {}", self.dir.display()), e)),
        };
        let prefix = format!("{}.", self.name);
        let lock = self.lock();
        for entry in entries.filter_map(|e| e.ok()) {
            let path = entry.path();
            let ours = entry.file_name().to_str().is_some_and(|n| n.starts_with(&prefix));
            if !ours || path == lock {
                continue;
            }
            match std::fs::remove_file(&path) {
                Err(e) if e.kind() != std::io::ErrorKind::NotFound => {
                    return Err(io_err(format!("removing {}", path.display()), e))
                }
                _ => {}
            }
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn state_round_trips_and_removal_spares_only_the_lock_and_other_jobs() {
        let dir = tempfile::tempdir().unwrap();
        let files = JobFiles::new(dir.path(), "backup-1");
        assert_eq!(files.read_state().unwrap(), None);
        let state = State::now(Status::Failed("no".into()), Phase::BackupJob, (3, 9));
        files.write_state(&state).unwrap();
        assert_eq!(files.read_state().unwrap(), Some(state));
        files.request_cancel().unwrap();
        assert!(files.cancel_requested());
        std::fs::write(files.log(), "x").unwrap();
        std::fs::write(files.lock(), "").unwrap();
        std::fs::write(dir.path().join("backup-10.log"), "other job").unwrap();
        files.remove_all_but_lock().unwrap();
        let mut left: Vec<String> =
            std::fs::read_dir(dir.path()).unwrap().map(|e| e.unwrap().file_name().into_string().unwrap()).collect();
        left.sort();
        assert_eq!(left, ["backup-1.lock", "backup-10.log"]);
    }
}
