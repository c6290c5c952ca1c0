//! Byte progress of a running job, read from its log: the container that moves bytes (`upload` of a
//! backup, `fetch` of a restore) logs `toygres-progress: <done> <total|->` after each object.

use crate::executor::K8sExecutor;
use k8s_openapi::api::core::v1::Pod;
use kube::api::LogParams;
use kube::ResourceExt;
use std::sync::Arc;
use toygres_core::{EventKind, JobKind, JobRef, Phase, ProgressEvent, ProgressSink};

/// The marker of a progress line.
pub const PROGRESS_MARKER: &str = "toygres-progress: ";
/// Log lines read per poll to find the newest progress line.
const TAIL_LINES: i64 = 10;

/// The newest `(done, total)` in `log`.
pub fn last_progress(log: &str) -> Option<(u64, Option<u64>)> {
    log.lines().rev().find_map(|line| {
        let rest = &line[line.find(PROGRESS_MARKER)? + PROGRESS_MARKER.len()..];
        let mut fields = rest.split_whitespace();
        let done = fields.next()?.parse().ok()?;
        Some((done, fields.next().and_then(|t| t.parse().ok())))
    })
}

/// Forwards a job's progress lines to a sink, each new count once.
pub(crate) struct JobProgress {
    sink: Arc<dyn ProgressSink>,
    last: Option<u64>,
}

impl JobProgress {
    pub(crate) fn new(sink: Arc<dyn ProgressSink>) -> Self {
        Self { sink, last: None }
    }

    /// The container that moves bytes, and the phase its events belong to.
    fn source(job: &JobRef) -> (&'static str, Phase) {
        match job.kind {
            JobKind::Backup => ("upload", Phase::BackupJob),
            JobKind::Restore => ("fetch", Phase::WaitRestoreJob),
        }
    }

    /// Reads the newest progress line of the newest of `pods` and emits it if it is new.
    pub(crate) async fn poll(&mut self, executor: &K8sExecutor, job: &JobRef, pods: &[Pod]) {
        let Some(pod) = pods.iter().max_by_key(|p| p.creation_timestamp().map(|t| t.0)) else { return };
        let (container, phase) = Self::source(job);
        let params =
            LogParams { container: Some(container.into()), tail_lines: Some(TAIL_LINES), ..LogParams::default() };
        let Ok(log) = executor.api::<Pod>().logs(&pod.name_any(), &params).await else { return };
        if let Some((done, total)) = last_progress(&log) {
            if self.last != Some(done) {
                self.last = Some(done);
                let kind = EventKind::Bytes { done, total };
                self.sink.emit(&ProgressEvent { subject: job.subject, phase, kind });
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_the_newest_progress_line() {
        let log = "09:00:01 restore-fetch: toygres-progress: 10 100\n09:00:02 restore-fetch: verifying x\n\
                   09:00:03 restore-fetch: toygres-progress: 60 100\n09:00:04 restore-fetch: streaming\n";
        assert_eq!(last_progress(log), Some((60, Some(100))));
        assert_eq!(last_progress("09:00:01 backup-upload: toygres-progress: 7 -\n"), Some((7, None)));
        assert_eq!(last_progress("nothing yet\n"), None);
    }
}
