//! Where long work runs. Interim, in-process stand-in with the contract of `toygres-duroxide`
//! (replaced by the durable runtime as soon as that crate lands).

use serde::{Deserialize, Serialize};
use std::collections::HashMap;
use std::path::Path;
use std::sync::{Arc, Mutex};
use std::time::Duration;
use toygres_core::{
    CreateImageRequest, CreateInstanceRequest, Error, EventKind, ImageRecord, InstanceRecord, InstanceState,
    NewInstance, OperationId, Phase, ProgressEvent, Result, Subject, Toygres,
};
use toygres_local::LocalExecutor;

/// State of a long operation.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum OperationState {
    /// Nothing runs or ran for that subject.
    NotFound,
    /// It runs.
    Running,
    /// It finished.
    Completed,
    /// It failed.
    Failed,
    /// It was cancelled.
    Cancelled,
}

/// The state, step and byte progress of a long operation.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct OperationStatus {
    /// What it works on.
    pub subject: Subject,
    /// Its state.
    pub state: OperationState,
    /// The step running now (or the last one).
    pub step: Option<Phase>,
    /// Bytes moved.
    pub bytes_done: u64,
    /// Bytes to move, when known.
    pub bytes_total: Option<u64>,
    /// Why it failed.
    pub error: Option<String>,
}

type Statuses = Arc<Mutex<HashMap<Subject, OperationStatus>>>;

/// Runs image and instance creation in the background and reports their progress.
#[derive(Clone)]
pub struct Engine {
    toygres: Toygres,
    local: Option<LocalExecutor>,
    statuses: Statuses,
}

impl Engine {
    /// Starts the engine on `toygres`; `local` provisions fresh instances.
    pub async fn start(toygres: Toygres, local: Option<LocalExecutor>, _store: &Path) -> Result<Self> {
        let statuses: Statuses = Arc::default();
        let sink = statuses.clone();
        let progress = move |event: &ProgressEvent| record_event(&sink, event);
        let toygres = toygres.with_progress(Arc::new(progress));
        Ok(Self { toygres, local, statuses })
    }

    /// The library handle (catalog, blobs, executor).
    pub fn toygres(&self) -> &Toygres {
        &self.toygres
    }

    /// Validates, reserves the image record and starts the backup.
    pub async fn create_image(&self, operation: OperationId, request: CreateImageRequest) -> Result<ImageRecord> {
        request.validate()?;
        let source = self.toygres.catalog.get_instance(request.instance_id).await?;
        if source.state != InstanceState::Running {
            return Err(Error::InvalidRequest {
                field: "instance_id",
                reason: format!("instance {} is {}, only running instances can be imaged", source.name, source.state),
            });
        }
        let record = self.toygres.backup().reserve_image(operation, &request).await?;
        self.running(Subject::Image(record.id));
        let (t, statuses, id) = (self.toygres.clone(), self.statuses.clone(), record.id);
        tokio::spawn(async move { finish(&statuses, Subject::Image(id), t.resume_image(id).await.map(|_| ())) });
        Ok(record)
    }

    /// Validates, creates the instance record and starts the restore (or the fresh provisioning).
    pub async fn create_instance(
        &self,
        operation: OperationId,
        request: CreateInstanceRequest,
    ) -> Result<InstanceRecord> {
        if request.source_image_id.is_none() {
            return self.create_fresh(operation, request).await;
        }
        let restore = self.toygres.restore();
        let image_id = request.validate_restore()?;
        let image = restore.fetch_image(image_id).await?;
        let password = restore.source_password(image_id).await?;
        let record = restore.create_record(operation, &request, &image, &password).await?;
        self.running(Subject::Instance(record.id));
        let (t, statuses, id) = (self.toygres.clone(), self.statuses.clone(), record.id);
        tokio::spawn(async move { finish(&statuses, Subject::Instance(id), t.resume_instance(id).await.map(|_| ())) });
        Ok(record)
    }

    async fn create_fresh(&self, operation: OperationId, request: CreateInstanceRequest) -> Result<InstanceRecord> {
        toygres_core::request::validate_dns1123_label("name", &request.name)?;
        let password = request
            .password
            .clone()
            .ok_or_else(|| Error::InvalidRequest { field: "password", reason: "a fresh instance needs one".into() })?;
        let local = self
            .local
            .clone()
            .ok_or_else(|| Error::backend_msg("server", "fresh instances need the local executor in this build"))?;
        let mut new = NewInstance::existing(request.name.clone(), password.clone());
        new.state = InstanceState::Provisioning;
        new.dns_label = request.dns_label.clone();
        let record = self.toygres.catalog.create_instance(operation, &new).await?;
        self.running(Subject::Instance(record.id));
        let (catalog, statuses, spec) = (self.toygres.catalog.clone(), self.statuses.clone(), record.spec());
        tokio::spawn(async move {
            let outcome = async {
                let connection = local.provision_empty(&spec, &password).await?;
                let update = toygres_core::InstanceUpdate::Running { connection };
                catalog.update_instance(spec.id, InstanceState::Provisioning, update).await.map(|_| ())
            }
            .await;
            finish(&statuses, Subject::Instance(spec.id), outcome)
        });
        Ok(record)
    }

    /// The operation's state, step and bytes.
    pub async fn status(&self, subject: Subject) -> Result<OperationStatus> {
        Ok(self.statuses.lock().unwrap().get(&subject).cloned().unwrap_or(OperationStatus {
            subject,
            state: OperationState::NotFound,
            step: None,
            bytes_done: 0,
            bytes_total: None,
            error: None,
        }))
    }

    /// Stops the engine.
    pub async fn shutdown(self) {
        tokio::time::sleep(Duration::from_millis(1)).await;
    }

    fn running(&self, subject: Subject) {
        let status = OperationStatus {
            subject,
            state: OperationState::Running,
            step: None,
            bytes_done: 0,
            bytes_total: None,
            error: None,
        };
        self.statuses.lock().unwrap().insert(subject, status);
    }
}

fn record_event(statuses: &Statuses, event: &ProgressEvent) {
    let mut map = statuses.lock().unwrap();
    if let Some(status) = map.get_mut(&event.subject) {
        status.step = Some(event.phase);
        if let EventKind::Bytes { done, total } = event.kind {
            status.bytes_done = done;
            status.bytes_total = total;
        }
    }
}

fn finish(statuses: &Statuses, subject: Subject, outcome: Result<()>) {
    let mut map = statuses.lock().unwrap();
    if let Some(status) = map.get_mut(&subject) {
        match outcome {
            Ok(()) => status.state = OperationState::Completed,
            Err(e) => {
                tracing::warn!(?subject, error = %e, "operation failed");
                status.state = OperationState::Failed;
                status.error = Some(e.to_string());
            }
        }
    }
}
