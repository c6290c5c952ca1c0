//! `create-image` 1.2.0 (and 1.1.0, the same steps with the backup job on the default worker
//! queue). The client has admitted the request and reserved the image
//! ([`toygres_core::Backup::begin`]); then the backup job → mark ready, and on failure or
//! cancellation the cleanup (job and partial blobs removed, image `failed` with the reason).
//! Every step takes the image id only.

use super::{job_policy, short_policy, Flow, Kill, Kind};
use crate::activities::JobOf;
use crate::names::activity::{BACKUP_JOB, IMAGE_FAIL, MARK_READY};
use duroxide::OrchestrationContext;
use serde::{Deserialize, Serialize};
use toygres_core::{ImageId, Phase};

/// Input of `create-image` (every version).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ImageInput {
    /// The reserved (`creating`) image.
    pub image_id: ImageId,
}

/// The `create-image` orchestration, version 1.2.0: the backup job runs on the backup queue's
/// workers ([`crate::names::queue::BACKUPS`]). Its output is the image id.
pub async fn create_image(ctx: OrchestrationContext, input: ImageInput) -> Result<ImageId, String> {
    run(Flow::new(&ctx).jobs_on(crate::names::queue::BACKUPS), input).await
}

/// `create-image` 1.1.0, which earlier builds started: the backup job on the default queue.
pub async fn create_image_v1_1_0(ctx: OrchestrationContext, input: ImageInput) -> Result<ImageId, String> {
    run(Flow::new(&ctx), input).await
}

async fn run(mut flow: Flow, input: ImageInput) -> Result<ImageId, String> {
    let id = input.image_id;
    let outcome = async {
        let job = Kind::Job(Kill::Of(JobOf::Backup(id)));
        let _: () = flow.step(Phase::BackupJob, BACKUP_JOB, &id, job, &job_policy()).await?;
        let _: () = flow.step(Phase::MarkReady, MARK_READY, &id, Kind::Short, &short_policy()).await?;
        Ok::<_, super::Stop>(id)
    }
    .await;
    match outcome {
        Ok(id) => Ok(id),
        Err(stop) => Err(flow.fail(IMAGE_FAIL, id, format!("backup of image {id}"), &stop).await),
    }
}
