//! A job's log file (secrets redacted before anything is written) and its byte progress.

use std::io::Write;
use std::path::Path;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use tokio::io::{AsyncBufReadExt, AsyncRead, BufReader};
use toygres_core::error::redact;
use toygres_core::{EventKind, Phase, ProgressEvent, ProgressSink, Result, Subject};

/// Appends redacted lines to a job's log file. Cheap to clone.
#[derive(Clone)]
pub(crate) struct JobLog {
    file: Arc<Mutex<std::fs::File>>,
    secrets: Arc<Vec<String>>,
}

impl JobLog {
    /// Creates (truncating) the log at `path`; `secrets` never reach it.
    pub(crate) fn create(path: &Path, secrets: Vec<String>) -> Result<Self> {
        use std::os::unix::fs::OpenOptionsExt;
        // 0600: a job's log names databases, roles and failures of an instance.
        let file = std::fs::OpenOptions::new()
            .write(true)
            .create(true)
            .truncate(true)
            .mode(0o600)
            .open(path)
            .map_err(|e| crate::cluster::io_err(format!("creating job log {}", path.display()), e))?;
        let secrets = secrets.into_iter().filter(|s| !s.is_empty()).collect();
        Ok(Self { file: Arc::new(Mutex::new(file)), secrets: Arc::new(secrets) })
    }

    /// `text` with every secret replaced.
    pub(crate) fn redact(&self, text: &str) -> String {
        self.secrets.iter().fold(text.to_string(), |t, s| redact(&t, s))
    }

    /// Appends one line (redacted), prefixed with the time.
    pub(crate) fn line(&self, text: &str) {
        let line = format!("{} {}\n", chrono::Utc::now().format("%H:%M:%S%.3f"), self.redact(text.trim_end()));
        if let Ok(mut f) = self.file.lock() {
            let _ = f.write_all(line.as_bytes());
        }
    }

    /// Copies a child's output stream into the log, line by line, on a background task. Await the
    /// handle after the child exits so its last words are in the log before anyone reads it.
    pub(crate) fn capture<R: AsyncRead + Unpin + Send + 'static>(&self, stream: R, program: &str) -> Captured {
        self.capture_with(stream, program, |_| true)
    }

    /// [`JobLog::capture`], showing each line to `keep` first: only lines it keeps are logged.
    pub(crate) fn capture_with<R, F>(&self, stream: R, program: &str, mut keep: F) -> Captured
    where
        R: AsyncRead + Unpin + Send + 'static,
        F: FnMut(&str) -> bool + Send + 'static,
    {
        let log = self.clone();
        let program = program.rsplit('/').next().unwrap_or(program).to_string();
        Captured(Some(tokio::spawn(async move {
            let mut lines = BufReader::new(stream).lines();
            while let Ok(Some(line)) = lines.next_line().await {
                if keep(&line) {
                    log.line(&format!("{program}: {line}"));
                }
            }
        })))
    }
}

/// A running copy of a child's output into the log.
#[derive(Default)]
pub(crate) struct Captured(Option<tokio::task::JoinHandle<()>>);

impl Captured {
    /// Waits (briefly) until everything the child wrote is in the log.
    pub(crate) async fn done(self) {
        if let Some(handle) = self.0 {
            let _ = tokio::time::timeout(std::time::Duration::from_secs(5), handle).await;
        }
    }
}

/// Counts a job's bytes and forwards `Bytes` events to whoever waits for the job.
pub(crate) struct Progress {
    subject: Subject,
    phase: Phase,
    sink: Mutex<Option<Arc<dyn ProgressSink>>>,
    done: AtomicU64,
    total: AtomicU64,
    last: AtomicU64,
}

/// Bytes between two progress events.
const STEP: u64 = 16 << 20;

impl Progress {
    pub(crate) fn new(subject: Subject, phase: Phase) -> Self {
        let sink = Mutex::new(None);
        Self { subject, phase, sink, done: AtomicU64::new(0), total: AtomicU64::new(0), last: AtomicU64::new(0) }
    }

    /// Sends later events to `sink`, and the current figures at once when the job has started
    /// counting (a waiter that attaches mid-job would otherwise see nothing until the next step).
    pub(crate) fn attach(&self, sink: Arc<dyn ProgressSink>) {
        *self.sink.lock().expect("progress lock") = Some(sink);
        if self.total.load(Ordering::Relaxed) > 0 || self.done.load(Ordering::Relaxed) > 0 {
            self.flush();
        }
    }

    /// Sets the expected total and reports it when it changed.
    pub(crate) fn set_total(&self, total: u64) {
        if self.total.swap(total, Ordering::Relaxed) != total {
            self.flush();
        }
    }

    /// Counts `n` more bytes; emits an event every [`STEP`] bytes.
    pub(crate) fn add(&self, n: u64) {
        let done = self.done.fetch_add(n, Ordering::Relaxed) + n;
        let last = self.last.load(Ordering::Relaxed);
        if done >= last + STEP && self.last.compare_exchange(last, done, Ordering::Relaxed, Ordering::Relaxed).is_ok() {
            self.emit(done);
        }
    }

    /// Sets the count to `done` (a producer's own report) when that is more than counted so far.
    pub(crate) fn advance_to(&self, done: u64) {
        let before = self.done.fetch_max(done, Ordering::Relaxed);
        if done > before {
            self.add(0);
        }
    }

    /// Makes the count the total (an estimated total becomes exact once the work is done).
    pub(crate) fn complete(&self) {
        self.total.store(self.done.load(Ordering::Relaxed), Ordering::Relaxed);
    }

    /// The bytes counted so far and the expected total (0: not known yet).
    pub(crate) fn figures(&self) -> (u64, u64) {
        (self.done.load(Ordering::Relaxed), self.total.load(Ordering::Relaxed))
    }

    /// Emits the current count.
    pub(crate) fn flush(&self) {
        self.emit(self.done.load(Ordering::Relaxed));
    }

    fn emit(&self, done: u64) {
        let total = Some(self.total.load(Ordering::Relaxed)).filter(|t| *t > 0);
        let sink = self.sink.lock().expect("progress lock").clone();
        if let Some(sink) = sink {
            sink.emit(&ProgressEvent {
                subject: self.subject,
                phase: self.phase,
                kind: EventKind::Bytes { done, total },
            });
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use toygres_core::InstanceId;

    #[derive(Default)]
    struct Seen(Mutex<Vec<(u64, Option<u64>)>>);

    impl ProgressSink for Seen {
        fn emit(&self, event: &ProgressEvent) {
            if let EventKind::Bytes { done, total } = event.kind {
                self.0.lock().unwrap().push((done, total));
            }
        }
    }

    #[test]
    fn a_sink_attached_mid_job_hears_the_current_figures_at_once() {
        let progress = Progress::new(Subject::Instance(InstanceId::new()), Phase::WaitRestoreJob);
        progress.set_total(100);
        progress.add(40);
        let seen = Arc::new(Seen::default());
        progress.attach(seen.clone());
        assert_eq!(*seen.0.lock().unwrap(), vec![(40, Some(100))]);
        // A new total is reported; the same total again is not.
        progress.set_total(120);
        progress.set_total(120);
        assert_eq!(seen.0.lock().unwrap().last(), Some(&(40, Some(120))));
        assert_eq!(seen.0.lock().unwrap().len(), 2);
    }

    #[test]
    fn a_sink_attached_before_anything_was_counted_hears_nothing_yet() {
        let progress = Progress::new(Subject::Instance(InstanceId::new()), Phase::WaitRestoreJob);
        let seen = Arc::new(Seen::default());
        progress.attach(seen.clone());
        assert!(seen.0.lock().unwrap().is_empty());
        progress.set_total(10);
        assert_eq!(*seen.0.lock().unwrap(), vec![(0, Some(10))]);
    }
}
