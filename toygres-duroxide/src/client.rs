//! [`DurableClient`]: validates and records synchronously, then starts the orchestration.

use crate::names::{self, CANCEL_QUEUE, CREATE_IMAGE, CREATE_IMAGE_VERSION, CREATE_INSTANCE, CREATE_INSTANCE_VERSION};
use crate::orchestrations::{ImageInput, InstanceFlow};
use crate::progress::{Bytes, ProgressBoard};
use crate::status::{Failure, OperationState, OperationStatus, StepStatus};
use duroxide::{Client, ClientError, ErrorDetails, OrchestrationStatus};
use std::sync::Arc;
use std::time::Duration;
use toygres_core::{CreateImageRequest, CreateInstanceRequest, Error, ImageRecord, ImageState, InstanceRecord};
use toygres_core::{InstanceState, OperationId, Result, Subject, Toygres};

/// How often [`DurableClient::wait`] reads the status.
pub const WAIT_POLL: Duration = Duration::from_millis(5);

/// Starts, watches and cancels toygres' orchestrations. Get one with
/// [`crate::ToygresRuntime::client`]; clone it freely.
#[derive(Clone)]
pub struct DurableClient {
    client: Client,
    toygres: Toygres,
    board: Arc<ProgressBoard>,
}

fn client_error(what: &str) -> impl FnOnce(ClientError) -> Error + '_ {
    move |e| Error::backend_msg("durable store", format!("{what}: {e}"))
}

impl DurableClient {
    pub(crate) fn new(client: Client, toygres: Toygres, board: Arc<ProgressBoard>) -> Self {
        Self { client, toygres, board }
    }

    /// The library handle it admits requests through.
    pub fn toygres(&self) -> &Toygres {
        &self.toygres
    }

    /// The duroxide client underneath (management, history).
    pub fn duroxide(&self) -> &Client {
        &self.client
    }

    /// Synchronously: admits the request and reserves the image ([`toygres_core::Backup::begin`]:
    /// every refusal, with core's typed error, comes before anything is created); then starts
    /// orchestration `create-image` 1.2.0 with instance id `create-image-<image-id>` (a
    /// duplicate start is a no-op). Returns the reserved record at once.
    pub async fn create_image(&self, operation: OperationId, request: CreateImageRequest) -> Result<ImageRecord> {
        let record = self.toygres.backup().begin(operation, &request).await?;
        self.start_image(&record).await?;
        Ok(record)
    }

    /// Synchronously: admits the request and creates the instance record
    /// ([`toygres_core::Toygres::begin_instance`]: a restore takes the image's password and
    /// image type; every refusal, with core's typed error, comes before anything is created);
    /// then starts `create-instance` 1.2.0 with id `create-instance-<instance-id>`. Returns the
    /// record at once. Without `source_image_id`: a fresh empty instance with the request's
    /// password (same orchestration, the fresh path).
    pub async fn create_instance(
        &self,
        operation: OperationId,
        request: CreateInstanceRequest,
    ) -> Result<InstanceRecord> {
        let record = self.toygres.begin_instance(operation, &request).await?;
        self.start_instance(&record).await?;
        Ok(record)
    }

    /// Starts the orchestration of a record that is still `creating` / `provisioning` but has
    /// none (a crash between recording it and starting its orchestration): the same start as
    /// the creation's, so for a record whose orchestration exists it is a no-op. A finished
    /// record is left as it is; an unknown one is `ImageNotFound` / `InstanceNotFound`.
    pub async fn resume(&self, subject: Subject) -> Result<()> {
        match subject {
            Subject::Image(id) => self.start_image(&self.toygres.get_image(id).await?).await,
            Subject::Instance(id) => self.start_instance(&self.toygres.get_instance(id).await?).await,
        }
    }

    async fn start_image(&self, record: &ImageRecord) -> Result<()> {
        if record.state != ImageState::Creating {
            return Ok(());
        }
        let id = names::image_orchestration_id(record.id);
        let input = ImageInput { image_id: record.id };
        let start = self.client.start_orchestration_versioned_typed(id, CREATE_IMAGE, CREATE_IMAGE_VERSION, input);
        start.await.map_err(client_error("starting create-image"))
    }

    async fn start_instance(&self, record: &InstanceRecord) -> Result<()> {
        if record.state != InstanceState::Provisioning {
            return Ok(());
        }
        let id = names::instance_orchestration_id(record.id);
        let input = InstanceFlow { instance: record.id, image: record.source_image_id };
        let start =
            self.client.start_orchestration_versioned_typed(id, CREATE_INSTANCE, CREATE_INSTANCE_VERSION, input);
        start.await.map_err(client_error("starting create-instance"))
    }

    /// Time this process's activities spent working for `subject` so far; an operation's wall
    /// time minus this is the durable layer's overhead (polling, history writes, turns).
    pub fn work_time(&self, subject: Subject) -> Duration {
        self.board.work_time(&names::orchestration_id(subject))
    }

    /// The orchestration's state, current step and byte progress (from its custom status).
    pub async fn status(&self, subject: Subject) -> Result<OperationStatus> {
        let id = names::orchestration_id(subject);
        let status = self.client.get_orchestration_status(&id).await.map_err(client_error("reading a status"))?;
        let mut bytes = self.board.get(subject);
        if bytes == Bytes::default() && matches!(status, OrchestrationStatus::Running { .. }) {
            // Not running in this process: the figures another replica recorded.
            if let Ok(Some(stored)) = self.toygres.catalog.get_progress(subject).await {
                bytes = Bytes { phase: Some(stored.phase), done: stored.done, total: stored.total };
            }
        }
        let mut out = OperationStatus {
            subject,
            state: OperationState::NotFound,
            step: None,
            bytes_done: bytes.done,
            bytes_total: bytes.total,
            error: None,
        };
        // The board (this process's runtime) knows the core step inside a multi-step activity.
        let step = |custom: &Option<String>| {
            self.board.step(subject).or_else(|| StepStatus::parse(custom.as_deref()).map(|s| s.step))
        };
        match status {
            // Started but not picked up yet: the record says whether it exists.
            OrchestrationStatus::NotFound => {
                if self.is_pending(subject).await? {
                    out.state = OperationState::Running;
                }
            }
            OrchestrationStatus::Running { custom_status, .. } => {
                out.state = OperationState::Running;
                out.step = step(&custom_status);
            }
            OrchestrationStatus::Completed { custom_status, .. } => {
                out.state = OperationState::Completed;
                out.step = step(&custom_status);
            }
            OrchestrationStatus::Failed { details, custom_status, .. } => {
                let failure = match &details {
                    ErrorDetails::Application { message, .. } => Failure::decode(message),
                    other => Failure { step: None, reason: other.display_message(), cancelled: false },
                };
                out.state = if failure.cancelled { OperationState::Cancelled } else { OperationState::Failed };
                out.step = failure.step.or_else(|| step(&custom_status));
                out.error = Some(failure.reason);
            }
        }
        Ok(out)
    }

    /// Whether the record of `subject` exists and is still being created.
    async fn is_pending(&self, subject: Subject) -> Result<bool> {
        let found = match subject {
            Subject::Image(id) => self.toygres.catalog.get_image(id).await.map(|r| r.state == ImageState::Creating),
            Subject::Instance(id) => {
                self.toygres.catalog.get_instance(id).await.map(|r| r.state == InstanceState::Provisioning)
            }
        };
        match found {
            Ok(pending) => Ok(pending),
            Err(Error::ImageNotFound(_) | Error::InstanceNotFound(_)) => Ok(false),
            Err(e) => Err(e),
        }
    }

    /// Waits until the orchestration of `subject` completes, fails or is cancelled;
    /// `Err(Timeout)` after `timeout`. Polls the store every `WAIT_POLL` (duroxide's own wait
    /// backs off to 100 ms, which would add up to that much to every operation).
    pub async fn wait(&self, subject: Subject, timeout: Duration) -> Result<OperationStatus> {
        let deadline = tokio::time::Instant::now() + timeout;
        loop {
            let status = self.status(subject).await?;
            if status.state != OperationState::Running {
                return Ok(status);
            }
            if tokio::time::Instant::now() >= deadline {
                let id = names::orchestration_id(subject);
                return Err(Error::Timeout { step: format!("orchestration {id}"), after: timeout });
            }
            tokio::time::sleep(WAIT_POLL).await;
        }
    }

    /// Cancels it: running pg_dump/pg_restore children are killed, what was created is removed,
    /// the record ends `failed` with the reason from [`Error::Cancelled`]. A finished operation
    /// is left as it is; an unknown one is `ImageNotFound` / `InstanceNotFound`.
    pub async fn cancel(&self, subject: Subject) -> Result<()> {
        match self.status(subject).await?.state {
            OperationState::NotFound => Err(match subject {
                Subject::Image(id) => Error::ImageNotFound(id),
                Subject::Instance(id) => Error::instance_not_found(id),
            }),
            OperationState::Running => {
                let id = names::orchestration_id(subject);
                self.client
                    .enqueue_event(id, CANCEL_QUEUE, "cancelled by a caller")
                    .await
                    .map_err(client_error("sending a cancellation"))
            }
            _ => Ok(()),
        }
    }
}
