//! The task running a job in the process that holds the job's lock: it records byte progress in
//! the job's state file, watches the job's cancel marker, and records the outcome last.

use super::files::{JobFiles, State, Status};
use crate::cluster::lockfile::FileLock;
use crate::executor::joblog::{JobLog, Progress};
use std::future::Future;
use std::sync::Arc;
use std::time::Duration;
use tokio::sync::watch;
use toygres_core::{Phase, Result};

/// How often an owner checks its jobs' cancel markers and records their byte progress.
pub(crate) const TICK: Duration = Duration::from_millis(200);

/// The reason a job aborted through its cancel marker fails with.
pub(crate) const CANCELLED: &str = "the job was cancelled: it is being deleted";

/// A job whose lock this process holds, about to run.
pub(super) struct Owned {
    pub(super) files: JobFiles,
    /// Held for the job's whole life; released (dropped) after its outcome is recorded.
    pub(super) lock: FileLock,
    pub(super) log: JobLog,
    pub(super) progress: Arc<Progress>,
    pub(super) phase: Phase,
    /// Where in-process waiters hear the outcome.
    pub(super) status: watch::Sender<Status>,
}

/// Runs `work` as the job `owned`: to its end, or until someone writes its cancel marker (then
/// `work` is dropped, which kills its child processes). Records the outcome in the state file,
/// then releases the lock, then tells in-process waiters.
pub(super) async fn run<Fut: Future<Output = Result<()>>>(owned: Owned, work: Fut) {
    let Owned { files, lock, log, progress, phase, status } = owned;
    let name = files.name().to_string();
    log.line(&format!("job {name} started (pid {})", std::process::id()));
    let outcome = match watched(&files, &progress, phase, work).await {
        Some(Ok(())) => {
            log.line(&format!("job {name} succeeded"));
            Status::Succeeded
        }
        Some(Err(e)) => {
            let reason = log.redact(&e.to_string());
            log.line(&format!("job {name} failed: {reason}"));
            Status::Failed(reason)
        }
        None => {
            log.line(&format!("job {name} cancelled"));
            Status::Failed(CANCELLED.into())
        }
    };
    if let Err(e) = files.write_state(&State::now(outcome.clone(), phase, progress.figures())) {
        log.line(&format!("job {name}: recording its outcome failed: {e}"));
    }
    drop(lock);
    let _ = status.send(outcome);
}

/// `work`'s result, or `None` when its cancel marker appeared first.
async fn watched<Fut: Future<Output = Result<()>>>(
    files: &JobFiles,
    progress: &Progress,
    phase: Phase,
    work: Fut,
) -> Option<Result<()>> {
    tokio::pin!(work);
    let mut tick = tokio::time::interval(TICK);
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Skip);
    let mut recorded = (0, 0);
    loop {
        tokio::select! {
            result = &mut work => return Some(result),
            _ = tick.tick() => {
                if files.cancel_requested() {
                    return None;
                }
                let figures = progress.figures();
                if figures != recorded && files.write_state(&State::now(Status::Running, phase, figures)).is_ok() {
                    recorded = figures;
                }
            }
        }
    }
}
