//! Jobs: tokio tasks keyed by their deterministic name, shared through files in the jobs
//! directory by every process (replica) and every executor over one base directory.
//!
//! # Files of a job `<name>` (all mode 0600)
//! - `<name>.lock`: held with an exclusive `flock` by the process running the job, for the job's
//!   whole life. The kernel releases it when that process dies, however it dies (SIGKILL too).
//! - `<name>.state`: JSON [`files::State`], written only by the lock's holder, atomically
//!   (temporary file renamed over it): owner pid, `running` / `succeeded` / `failed` (with the
//!   reason, redacted like the log), bytes done and total with their phase, `updated_at`. The
//!   owner rewrites it every [`run::TICK`] while its byte figures change, and last with the
//!   outcome, before releasing the lock.
//! - `<name>.cancel`: written by whoever deletes the job while another process holds its lock.
//!   Owners look for it every [`run::TICK`] and abort the job (its child processes are killed as
//!   its task drops them), which releases the lock.
//! - `<name>.log`: the job's log (secrets redacted), created anew by each run.
//!
//! # Protocol
//! - **start**: a job running in this registry is returned as is. Otherwise the lock is tried
//!   without waiting. Held by someone else: the job runs there (a prober holds it for a moment
//!   only, and a new owner writes `running` right after taking it, so the start waits briefly
//!   for a `running` state) and start returns without running it. Acquired: a `succeeded` state
//!   means nothing to do; a `failed`, missing or `running` state (its owner died: the lock was
//!   free) means the job runs here, holding the lock until it ends.
//! - **wait**: a job running in this registry is awaited directly. Any other is followed through
//!   its state file every [`follow::POLL`], its byte figures forwarded to the sink. A terminal
//!   state read while nobody holds the lock is final. A `running` state while nobody holds the
//!   lock means its owner died: a transient error, so that the caller starts the job again,
//!   which takes it over. A job with neither state nor owner is unknown.
//! - **delete**: aborts the job when it runs in this registry; when another process holds the
//!   lock, writes the cancel marker and waits (up to [`DELETE_PATIENCE`]) for the lock. Holding
//!   it, removes every file of the job, the lock file last.
//!
//! # What a crash leaves
//! An owner that dies leaves its lock file (unlocked), a `running` state and the log: followers
//! report the owner's death, and the next start takes the job over (a new log, the restore
//! starting over into its volume). A deleter that dies leaves files the next delete removes.
//! A lock file removed while someone was about to lock it is detected by that someone
//! ([`crate::cluster::lockfile`]), so two processes never both believe they hold a job.

mod files;
mod follow;
mod run;
#[cfg(test)]
mod tests;

use super::joblog::{JobLog, Progress};
use super::stored::Sealing;
use crate::cluster::lockfile::{FileLock, TryLock};
use files::{JobFiles, State, Status};
use std::collections::HashMap;
use std::future::Future;
use std::path::PathBuf;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};
use tokio::sync::watch;
use toygres_core::{Error, JobKind, JobRef, Phase, ProgressSink, Result};

/// How long a delete waits for another process to abort the job and release its lock.
pub(crate) const DELETE_PATIENCE: Duration = Duration::from_secs(30);

/// How long a start waits for a lock held by someone else to show a `running` state.
const CLAIM_PATIENCE: Duration = Duration::from_secs(2);

/// What a running job gets.
pub(crate) struct JobCtx {
    pub(crate) log: JobLog,
    pub(crate) progress: Arc<Progress>,
    /// The image's data key when it is encrypted: what the job stores is sealed, what it loads
    /// is opened.
    pub(crate) sealing: Option<Sealing>,
}

/// A job this registry started.
struct Entry {
    status: watch::Receiver<Status>,
    task: tokio::task::AbortHandle,
    progress: Arc<Progress>,
}

/// The executor's jobs: the ones it runs, and through the jobs directory everyone else's.
pub(crate) struct Jobs {
    dir: PathBuf,
    map: Mutex<HashMap<String, Entry>>,
}

impl Jobs {
    /// A registry over the jobs directory `dir` (created on the first start).
    pub(crate) fn new(dir: PathBuf) -> Self {
        Self { dir, map: Mutex::new(HashMap::new()) }
    }

    fn files(&self, job: &JobRef) -> JobFiles {
        JobFiles::new(&self.dir, &job.name)
    }

    fn running_here(&self, job: &JobRef) -> Option<(watch::Receiver<Status>, Arc<Progress>)> {
        let map = self.map.lock().expect("jobs lock");
        // A task that ended without reporting (aborted, or panicked) runs nothing either.
        let entry = map.get(&job.name).filter(|e| *e.status.borrow() == Status::Running && !e.task.is_finished())?;
        Some((entry.status.clone(), entry.progress.clone()))
    }

    /// Starts `work` as `job`, unless it runs (here or in another process) or succeeded already:
    /// then returns it as is. A failed job, or one whose owner died, is started again.
    pub(crate) async fn start<F, Fut>(
        &self,
        job: &JobRef,
        secrets: Vec<String>,
        sealing: Option<Sealing>,
        work: F,
    ) -> Result<JobRef>
    where
        F: FnOnce(JobCtx) -> Fut + Send,
        Fut: Future<Output = Result<()>> + Send + 'static,
    {
        if self.running_here(job).is_some() {
            return Ok(job.clone());
        }
        crate::cluster::create_traversable_dir(&self.dir)?;
        let files = self.files(job);
        let Some(lock) = claim(&files).await? else { return Ok(job.clone()) };
        let previous = files.read_state().unwrap_or_else(|e| {
            tracing::warn!(job = %job.name, error = %e, "unreadable job state; running the job again");
            None
        });
        if previous.as_ref().is_some_and(|s| s.status == Status::Succeeded) {
            return Ok(job.clone());
        }
        let log = JobLog::create(&files.log(), secrets)?;
        if let Some(dead) = previous.filter(|s| s.status == Status::Running) {
            log.line(&format!("taking job {} over from process {}, which died running it", job.name, dead.pid));
        }
        let phase = if job.kind == JobKind::Backup { Phase::BackupJob } else { Phase::WaitRestoreJob };
        files.write_state(&State::now(Status::Running, phase, (0, 0)))?;
        let progress = Arc::new(Progress::new(job.subject, phase));
        let (tx, rx) = watch::channel(Status::Running);
        let ctx = JobCtx { log: log.clone(), progress: progress.clone(), sealing };
        let owned = run::Owned { files, lock, log, progress: progress.clone(), phase, status: tx };
        let task = tokio::spawn(run::run(owned, work(ctx)));
        let entry = Entry { status: rx, task: task.abort_handle(), progress };
        self.map.lock().expect("jobs lock").insert(job.name.clone(), entry);
        Ok(job.clone())
    }

    /// Waits for `job` to finish, wherever it runs.
    pub(crate) async fn wait(&self, job: &JobRef, timeout: Duration, sink: Arc<dyn ProgressSink>) -> Result<()> {
        let outcome = match self.running_here(job) {
            Some((status, progress)) => wait_here(job, timeout, status, progress, sink).await?,
            None => follow::follow(&self.files(job), job, timeout, sink, || unknown(job)).await?,
        };
        match outcome {
            Status::Failed(reason) => {
                let logs = self.logs(job).unwrap_or_else(|e| format!("(its log could not be read: {e})"));
                Err(Error::JobFailed { job: job.name.clone(), reason, logs })
            }
            _ => Ok(()),
        }
    }

    /// The tail of the job's log (already redacted when written).
    pub(crate) fn logs(&self, job: &JobRef) -> Result<String> {
        let path = self.files(job).log();
        // Lossy: a program may write bytes that are not UTF-8 (a server message in another
        // encoding); the rest of the log must still be shown.
        match std::fs::read(&path) {
            Ok(bytes) => Ok(crate::cluster::process::tail(&String::from_utf8_lossy(&bytes)).to_string()),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(String::new()),
            Err(e) => Err(crate::cluster::io_err(format!("reading the log of {}", job.name), e)),
        }
    }

    /// Aborts the job wherever it runs (its child processes are killed as its task drops them),
    /// then removes its files. A job another process runs is asked to stop through its cancel
    /// marker; a transient error when that process keeps the job for [`DELETE_PATIENCE`].
    pub(crate) async fn delete(&self, job: &JobRef) -> Result<()> {
        if let Some(entry) = self.map.lock().expect("jobs lock").remove(&job.name) {
            entry.task.abort();
        }
        let files = self.files(job);
        let deadline = Instant::now() + DELETE_PATIENCE;
        let mut asked = false;
        let lock = loop {
            match files.try_lock(false)? {
                TryLock::Acquired(lock) => break Some(lock),
                TryLock::Missing => break None,
                TryLock::Held if Instant::now() >= deadline => {
                    let pid = files.read_state().ok().flatten().map_or("unknown".into(), |s| s.pid.to_string());
                    return Err(Error::backend_msg(
                        "local executor",
                        format!(
                            "job {} is still held by process {pid} {DELETE_PATIENCE:?} after it was asked to \
                             cancel it; delete the job again",
                            job.name
                        ),
                    ));
                }
                TryLock::Held => {
                    if !asked {
                        files.request_cancel()?;
                        asked = true;
                    }
                    tokio::time::sleep(Duration::from_millis(50)).await;
                }
            }
        };
        files.remove_all_but_lock()?;
        lock.map_or(Ok(()), FileLock::remove)
    }
}

/// The job's lock when it is ours now; `None` when someone else runs the job.
async fn claim(files: &JobFiles) -> Result<Option<FileLock>> {
    let deadline = Instant::now() + CLAIM_PATIENCE;
    loop {
        if let TryLock::Acquired(lock) = files.try_lock(true)? {
            return Ok(Some(lock));
        }
        let running = matches!(files.read_state(), Ok(Some(State { status: Status::Running, .. })));
        if running || Instant::now() >= deadline {
            return Ok(None);
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

/// Waits for a job this registry runs.
async fn wait_here(
    job: &JobRef,
    timeout: Duration,
    mut status: watch::Receiver<Status>,
    progress: Arc<Progress>,
    sink: Arc<dyn ProgressSink>,
) -> Result<Status> {
    progress.attach(sink);
    let finished = tokio::time::timeout(timeout, status.wait_for(|s| *s != Status::Running)).await;
    let outcome = match finished {
        Err(_) => return Err(Error::Timeout { step: format!("job {}", job.name), after: timeout }),
        Ok(Err(_)) => Status::Failed("the job's task ended without reporting (it was aborted)".into()),
        Ok(Ok(s)) => s.clone(),
    };
    progress.flush();
    Ok(outcome)
}

/// The error of a job nobody runs and nobody ran (since its last delete).
fn unknown(job: &JobRef) -> Error {
    Error::JobFailed {
        job: job.name.clone(),
        reason: "this executor has no such job (it was deleted, or the process restarted); start it again".into(),
        logs: String::new(),
    }
}
