//! Byte progress of the running jobs. The executors report bytes through a [`ProgressSink`];
//! the runtime's sink keeps the latest figures per subject on a [`ProgressBoard`], which the
//! clients of the same runtime read, and records them in the catalog at most every
//! [`STORE_EVERY`] ([`toygres_core::CatalogStore::record_progress`]), where the clients of every
//! other process (replica) read them. Byte counts are not part of the orchestrations' history:
//! they change many times a second and replaying them would be pointless.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;
use toygres_core::{CatalogStore, EventKind, Phase, ProgressEvent, ProgressSink, StoredProgress, Subject};

/// How often the byte figures of one subject are written to the catalog (and when they are
/// complete).
pub const STORE_EVERY: Duration = Duration::from_millis(500);

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
        let mut steps = self.steps.lock().expect("progress lock");
        match event.kind {
            EventKind::Started => {
                steps.insert(event.subject, event.phase);
            }
            // Only a step running in this process is finer than the orchestration's.
            EventKind::Finished { .. } | EventKind::Failed { .. }
                if steps.get(&event.subject) == Some(&event.phase) =>
            {
                steps.remove(&event.subject);
            }
            _ => {}
        }
        drop(steps);
        if let EventKind::Bytes { done, total } = event.kind {
            let bytes = Bytes { phase: Some(event.phase), done, total };
            self.map.lock().expect("progress lock").insert(event.subject, bytes);
        }
    }
}

/// A sink that records bytes on a board and in the catalog, and forwards every event to the
/// embedder's sink.
pub(crate) struct BoardSink {
    pub(crate) board: Arc<ProgressBoard>,
    pub(crate) inner: Arc<dyn ProgressSink>,
    pub(crate) catalog: Option<Arc<dyn CatalogStore>>,
    /// The latest figures not written to the catalog yet, per subject.
    pub(crate) pending: Arc<Mutex<HashMap<Subject, StoredProgress>>>,
    pub(crate) flusher: std::sync::OnceLock<()>,
}

impl BoardSink {
    pub(crate) fn new(board: Arc<ProgressBoard>, inner: Arc<dyn ProgressSink>, catalog: Arc<dyn CatalogStore>) -> Self {
        Self { board, inner, catalog: Some(catalog), pending: Arc::default(), flusher: std::sync::OnceLock::new() }
    }

    /// Keeps the figures for the flusher, which writes the latest of each subject to the catalog
    /// every [`STORE_EVERY`] (started on first use; it stops when the sink is dropped). A failed
    /// write is only logged: the next figures come.
    fn store(&self, event: &ProgressEvent, done: u64, total: Option<u64>) {
        let (Some(catalog), Ok(runtime)) = (&self.catalog, tokio::runtime::Handle::try_current()) else { return };
        let progress = StoredProgress::new(event.phase, done, total, chrono::Utc::now());
        self.pending.lock().expect("progress lock").insert(event.subject, progress);
        self.flusher.get_or_init(|| {
            let (pending, catalog) = (Arc::downgrade(&self.pending), catalog.clone());
            runtime.spawn(flush(pending, catalog));
        });
    }
}

async fn flush(pending: std::sync::Weak<Mutex<HashMap<Subject, StoredProgress>>>, catalog: Arc<dyn CatalogStore>) {
    loop {
        tokio::time::sleep(STORE_EVERY).await;
        let Some(pending) = pending.upgrade() else { return };
        let due: Vec<_> = pending.lock().expect("progress lock").drain().collect();
        drop(pending);
        for (subject, progress) in due {
            if let Err(e) = catalog.record_progress(subject, &progress).await {
                tracing::debug!(error = %e, ?subject, "recording byte progress in the catalog");
            }
        }
    }
}

impl ProgressSink for BoardSink {
    fn emit(&self, event: &ProgressEvent) {
        self.board.record(event);
        if let EventKind::Bytes { done, total } = event.kind {
            self.store(event, done, total);
        }
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
        let sink = BoardSink {
            board: board.clone(),
            inner: Arc::new(NoProgress),
            catalog: None,
            pending: Arc::default(),
            flusher: std::sync::OnceLock::new(),
        };
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

    #[tokio::test]
    async fn writes_the_latest_bytes_to_the_catalog_within_the_interval() {
        use toygres_core::{InstanceId, MemoryCatalog, NewImage, OperationId};
        let catalog = Arc::new(MemoryCatalog::new());
        let image = catalog.reserve_image(OperationId::new(), &NewImage::new("n", InstanceId::new())).await.unwrap();
        let subject = Subject::Image(image.id);
        let sink = BoardSink::new(Arc::new(ProgressBoard::default()), Arc::new(NoProgress), catalog.clone());
        let bytes =
            |done| ProgressEvent { subject, phase: Phase::BackupJob, kind: EventKind::Bytes { done, total: Some(40) } };
        let stored = || async { catalog.get_progress(subject).await.unwrap().map(|p| (p.phase, p.done, p.total)) };
        sink.emit(&bytes(10));
        assert_eq!(stored().await, None, "written by the flusher, not on the job's path");
        tokio::time::sleep(STORE_EVERY + Duration::from_millis(200)).await;
        assert_eq!(stored().await, Some((Phase::BackupJob, 10, Some(40))));
        sink.emit(&bytes(20));
        sink.emit(&bytes(30));
        tokio::time::sleep(STORE_EVERY + Duration::from_millis(200)).await;
        assert_eq!(stored().await.map(|s| s.1), Some(30), "the latest figures, with no trailing gap");
    }

    #[test]
    fn the_step_is_this_processs_only_while_it_runs() {
        let board = Arc::new(ProgressBoard::default());
        let subject = Subject::Image(ImageId::new());
        let event = |kind| ProgressEvent { subject, phase: Phase::MarkReady, kind };
        board.record(&event(EventKind::Started));
        assert_eq!(board.step(subject), Some(Phase::MarkReady));
        board.record(&event(EventKind::Finished { elapsed: Duration::ZERO }));
        assert_eq!(board.step(subject), None);
    }
}
