//! In-process jobs: tokio tasks keyed by their deterministic name, with a log file each.

use super::joblog::{JobLog, Progress};
use super::stored::Sealing;
use std::collections::HashMap;
use std::future::Future;
use std::path::PathBuf;
use std::sync::{Arc, Mutex};
use std::time::Duration;
use tokio::sync::watch;
use toygres_core::{Error, JobKind, JobRef, Phase, ProgressSink, Result};

/// What a running job gets.
pub(crate) struct JobCtx {
    pub(crate) log: JobLog,
    pub(crate) progress: Arc<Progress>,
    /// The image's data key when it is encrypted: what the job stores is sealed, what it loads
    /// is opened.
    pub(crate) sealing: Option<Sealing>,
}

#[derive(Debug, Clone, PartialEq)]
enum Status {
    Running,
    Succeeded,
    Failed(String),
}

struct Entry {
    status: watch::Receiver<Status>,
    task: tokio::task::AbortHandle,
    progress: Arc<Progress>,
    log: PathBuf,
}

/// The executor's jobs.
pub(crate) struct Jobs {
    dir: PathBuf,
    map: Mutex<HashMap<String, Entry>>,
}

impl Jobs {
    pub(crate) fn new(dir: PathBuf) -> Self {
        Self { dir, map: Mutex::new(HashMap::new()) }
    }

    fn log_path(&self, job: &JobRef) -> PathBuf {
        self.dir.join(format!("{}.log", job.name))
    }

    /// Starts `work` as `job`, unless it is running or succeeded already (then returns it as is).
    /// A failed job is started again.
    pub(crate) fn start<F, Fut>(
        &self,
        job: &JobRef,
        secrets: Vec<String>,
        sealing: Option<Sealing>,
        work: F,
    ) -> Result<JobRef>
    where
        F: FnOnce(JobCtx) -> Fut,
        Fut: Future<Output = Result<()>> + Send + 'static,
    {
        let mut map = self.map.lock().expect("jobs lock");
        if let Some(entry) = map.get(&job.name) {
            if !matches!(*entry.status.borrow(), Status::Failed(_)) {
                return Ok(job.clone());
            }
        }
        crate::cluster::create_traversable_dir(&self.dir)?;
        let path = self.log_path(job);
        let log = JobLog::create(&path, secrets)?;
        let phase = if job.kind == JobKind::Backup { Phase::BackupJob } else { Phase::WaitRestoreJob };
        let progress = Arc::new(Progress::new(job.subject, phase));
        let (tx, rx) = watch::channel(Status::Running);
        let ctx = JobCtx { log: log.clone(), progress: progress.clone(), sealing };
        let fut = work(ctx);
        let name = job.name.clone();
        let task = tokio::spawn(async move {
            log.line(&format!("job {name} started"));
            let status = match fut.await {
                Ok(()) => {
                    log.line(&format!("job {name} succeeded"));
                    Status::Succeeded
                }
                Err(e) => {
                    let reason = log.redact(&e.to_string());
                    log.line(&format!("job {name} failed: {reason}"));
                    Status::Failed(reason)
                }
            };
            let _ = tx.send(status);
        });
        map.insert(job.name.clone(), Entry { status: rx, task: task.abort_handle(), progress, log: path });
        Ok(job.clone())
    }

    /// Waits for `job` to finish.
    pub(crate) async fn wait(&self, job: &JobRef, timeout: Duration, sink: Arc<dyn ProgressSink>) -> Result<()> {
        let (mut status, progress) = {
            let map = self.map.lock().expect("jobs lock");
            let entry = map.get(&job.name).ok_or_else(|| Error::JobFailed {
                job: job.name.clone(),
                reason: "this executor has no such job (it was deleted, or the process restarted); start it again"
                    .into(),
                logs: String::new(),
            })?;
            (entry.status.clone(), entry.progress.clone())
        };
        progress.attach(sink);
        let finished = tokio::time::timeout(timeout, status.wait_for(|s| *s != Status::Running)).await;
        let outcome = match finished {
            Err(_) => return Err(Error::Timeout { step: format!("job {}", job.name), after: timeout }),
            Ok(Err(_)) => Status::Failed("the job's task ended without reporting (it was aborted)".into()),
            Ok(Ok(s)) => s.clone(),
        };
        progress.flush();
        match outcome {
            Status::Failed(reason) => {
                Err(Error::JobFailed { job: job.name.clone(), reason, logs: self.logs(job).unwrap_or_default() })
            }
            _ => Ok(()),
        }
    }

    /// The tail of the job's log (already redacted when written).
    pub(crate) fn logs(&self, job: &JobRef) -> Result<String> {
        match std::fs::read_to_string(self.log_path(job)) {
            Ok(text) => Ok(crate::cluster::process::tail(&text).to_string()),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(String::new()),
            Err(e) => Err(crate::cluster::io_err(format!("reading the log of {}", job.name), e)),
        }
    }

    /// Aborts the job (its child processes are killed on drop) and removes its log.
    pub(crate) fn delete(&self, job: &JobRef) -> Result<()> {
        let entry = self.map.lock().expect("jobs lock").remove(&job.name);
        let path = entry.map(|e| {
            e.task.abort();
            e.log
        });
        let path = path.unwrap_or_else(|| self.log_path(job));
        match std::fs::remove_file(&path) {
            Err(e) if e.kind() != std::io::ErrorKind::NotFound => {
                Err(crate::cluster::io_err(format!("removing {}", path.display()), e))
            }
            _ => Ok(()),
        }
    }
}
