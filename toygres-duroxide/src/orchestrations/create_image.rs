//! `create-image` 1.0.0: the backup flow of the original control plane. The image record is
//! reserved by the client before the start; then look up the source → backup job → mark ready,
//! and on failure or cancellation `mark_failed` (job and partial blobs removed, image `failed`).

use super::{job_policy, short_policy, Flow, Kind};
use crate::activities::{FailInput, MarkReadyInput};
use crate::names::activity::{LOOKUP_SOURCE, MARK_FAILED, MARK_READY, RUN_BACKUP_JOB};
use duroxide::OrchestrationContext;
use serde::{Deserialize, Serialize};
use toygres_core::{BackupResult, ImageId, ImageRecord, InstanceSpec, JobRef, Phase};

/// Input of `create-image`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ImageInput {
    /// The reserved (`creating`) image.
    pub image_id: ImageId,
}

/// The `create-image` orchestration (version 1.0.0).
pub async fn create_image(ctx: OrchestrationContext, input: ImageInput) -> Result<ImageRecord, String> {
    let mut flow = Flow::new(&ctx);
    let id = input.image_id;
    let short = short_policy();
    let outcome = async {
        let _: InstanceSpec = flow.step(Phase::LookupSource, LOOKUP_SOURCE, &id, Kind::Short, &short).await?;
        let job = Kind::Job(JobRef::backup(id));
        let result: BackupResult = flow.step(Phase::BackupJob, RUN_BACKUP_JOB, &id, job, &job_policy()).await?;
        let ready = MarkReadyInput { image: id, result };
        flow.step(Phase::MarkReady, MARK_READY, &ready, Kind::Short, &short).await
    }
    .await;
    match outcome {
        Ok(record) => Ok(record),
        Err(stop) => {
            let input = FailInput {
                subject: id,
                step: Some(stop.step),
                message: stop.error.message.clone(),
                cancelled: flow.was_cancelled(),
                what: format!("backup of image {id}"),
            };
            Err(flow.fail(MARK_FAILED, &input, &stop).await)
        }
    }
}
