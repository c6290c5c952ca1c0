//! Waiting for a job this registry does not run: following its state file, and its lock to tell
//! a live owner from a dead one.

use super::files::{JobFiles, State, Status};
use crate::cluster::lockfile::TryLock;
use std::sync::Arc;
use std::time::{Duration, Instant};
use toygres_core::{Error, EventKind, JobRef, ProgressEvent, ProgressSink, Result};

/// How often a follower reads the state file.
pub(crate) const POLL: Duration = Duration::from_millis(150);

/// Follows `job` until it finishes ([`Status::Succeeded`] or [`Status::Failed`]), forwarding its
/// byte progress to `sink`. Errors: [`Error::Timeout`] after `timeout`; a transient error when
/// the job's owner died while running it (its `start` takes it over); `unknown` when nobody runs
/// the job and it has no state.
pub(super) async fn follow(
    files: &JobFiles,
    job: &JobRef,
    timeout: Duration,
    sink: Arc<dyn ProgressSink>,
    unknown: impl FnOnce() -> Error,
) -> Result<Status> {
    let deadline = Instant::now() + timeout;
    let mut shown = Shown { job, sink, last: (0, 0) };
    loop {
        let state = files.read_state()?;
        // A succeeded job is never run again (until deleted): no need to ask its lock.
        if let Some(done) = state.as_ref().filter(|s| s.status == Status::Succeeded) {
            shown.finish(done);
            return Ok(Status::Succeeded);
        }
        match files.try_lock(false)? {
            TryLock::Held => {
                // Its owner runs it (a failed state is the previous run's until the owner writes).
                if let Some(running) = state.filter(|s| s.status == Status::Running) {
                    shown.update(&running);
                }
            }
            free => {
                // Nobody runs it: what the state says now is final. Read again under the lock:
                // the owner may have finished between our two looks.
                let state = files.read_state()?;
                drop(free);
                return match state {
                    None => Err(unknown()),
                    Some(state) if state.status == Status::Running => Err(owner_died(job, state.pid)),
                    Some(state) => {
                        shown.finish(&state);
                        Ok(state.status)
                    }
                };
            }
        }
        let now = Instant::now();
        if now >= deadline {
            return Err(Error::Timeout { step: format!("job {}", job.name), after: timeout });
        }
        tokio::time::sleep(POLL.min(deadline - now)).await;
    }
}

/// The transient error of a job whose owner died mid-run.
fn owner_died(job: &JobRef, pid: u32) -> Error {
    Error::backend_msg(
        "local executor",
        format!(
            "the process running job {} (pid {pid}) died before it finished; start the job again \
             (its start takes it over)",
            job.name
        ),
    )
}

/// Byte events forwarded to a follower's sink.
struct Shown<'a> {
    job: &'a JobRef,
    sink: Arc<dyn ProgressSink>,
    /// `(done, total)` last forwarded.
    last: (u64, u64),
}

impl Shown<'_> {
    /// Forwards the state's figures when they changed.
    fn update(&mut self, state: &State) {
        if (state.done, state.total) != self.last {
            self.emit(state);
        }
    }

    /// Forwards the final figures (as a local waiter's last event).
    fn finish(&mut self, state: &State) {
        self.emit(state);
    }

    fn emit(&mut self, state: &State) {
        self.last = (state.done, state.total);
        let total = Some(state.total).filter(|t| *t > 0);
        self.sink.emit(&ProgressEvent {
            subject: self.job.subject,
            phase: state.phase,
            kind: EventKind::Bytes { done: state.done, total },
        });
    }
}
