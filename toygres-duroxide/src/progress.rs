//! Byte progress of the running jobs. The executors report bytes through a [`ProgressSink`];
//! the runtime's sink keeps the latest figures per subject on a [`ProgressBoard`], which the
//! clients of the same runtime read. Byte counts are not part of the orchestrations' history:
//! they change many times a second and replaying them would be pointless.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;
use toygres_core::{EventKind, Phase, ProgressEvent, ProgressSink, Subject};

/// Latest byte figures of one subject.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct Bytes {
    /// The phase that reported them.
    pub phase: Option<Phase>,
    /// Bytes done.
    pub done: u64,
    /// Total, when known.
    pub total: Option<u64>,
}

/// Latest byte progress per subject, and the time this process's activities worked for each
/// orchestration, shared by a runtime and its clients.
#[derive(Debug, Default)]
pub struct ProgressBoard {
    map: Mutex<HashMap<Subject, Bytes>>,
    steps: Mutex<HashMap<Subject, Phase>>,
    work: Mutex<HashMap<String, Duration>>,
}

impl ProgressBoard {
    /// Time this process's activities spent working for orchestration `instance` (the rest of
    /// an operation's wall time is the durable layer's: polling, history, turns).
    pub fn work_time(&self, instance: &str) -> Duration {
        self.work.lock().expect("progress lock").get(instance).copied().unwrap_or_default()
    }

    pub(crate) fn add_work(&self, instance: &str, elapsed: Duration) {
        *self.work.lock().expect("progress lock").entry(instance.to_string()).or_default() += elapsed;
    }

    /// The latest figures of `subject` (zero when nothing was reported).
    pub fn get(&self, subject: Subject) -> Bytes {
        self.map.lock().expect("progress lock").get(&subject).copied().unwrap_or_default()
    }

    /// The core step that last started for `subject` in this process: finer than the
    /// orchestration's step when one activity runs several of core's (e.g. the deploy-to-running
    /// tail).
    pub fn step(&self, subject: Subject) -> Option<Phase> {
        self.steps.lock().expect("progress lock").get(&subject).copied()
    }

    fn record(&self, event: &ProgressEvent) {
        if event.kind == EventKind::Started {
            self.steps.lock().expect("progress lock").insert(event.subject, event.phase);
        }
        if let EventKind::Bytes { done, total } = event.kind {
            let bytes = Bytes { phase: Some(event.phase), done, total };
            self.map.lock().expect("progress lock").insert(event.subject, bytes);
        }
    }
}

/// A sink that records bytes on a board and forwards every event to the embedder's sink.
pub(crate) struct BoardSink {
    pub(crate) board: Arc<ProgressBoard>,
    pub(crate) inner: Arc<dyn ProgressSink>,
}

impl ProgressSink for BoardSink {
    fn emit(&self, event: &ProgressEvent) {
        self.board.record(event);
        self.inner.emit(event);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use toygres_core::{ImageId, NoProgress};

    #[test]
    fn keeps_the_latest_bytes_per_subject() {
        let board = Arc::new(ProgressBoard::default());
        let sink = BoardSink { board: board.clone(), inner: Arc::new(NoProgress) };
        let subject = Subject::Image(ImageId::new());
        for done in [10, 20] {
            sink.emit(&ProgressEvent {
                subject,
                phase: Phase::BackupJob,
                kind: EventKind::Bytes { done, total: Some(40) },
            });
        }
        sink.emit(&ProgressEvent { subject, phase: Phase::BackupJob, kind: EventKind::Started });
        assert_eq!(board.get(subject), Bytes { phase: Some(Phase::BackupJob), done: 20, total: Some(40) });
        assert_eq!(board.get(Subject::Image(ImageId::new())).done, 0);
        assert_eq!(board.step(subject), Some(Phase::BackupJob));
        assert_eq!(board.step(Subject::Image(ImageId::new())), None);
    }
}
