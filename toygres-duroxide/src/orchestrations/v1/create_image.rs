//! `create-image` 1.0.0: the backup flow of the original control plane. The image record is
//! reserved by the client before the start; then look up the source → backup job → mark ready,
//! and on failure or cancellation `mark_failed` (job and partial blobs removed, image `failed`).

use crate::activities::v1::MarkReadyInput;
use crate::names::activity_v1::{LOOKUP_SOURCE, MARK_FAILED, MARK_READY, RUN_BACKUP_JOB};
use crate::orchestrations::{job_policy, short_policy, Flow, ImageInput, Kill, Kind};
use duroxide::OrchestrationContext;
use toygres_core::{BackupResult, ImageRecord, InstanceSpec, JobRef, Phase};

/// The `create-image` orchestration (version 1.0.0).
pub async fn create_image_v1_0_0(ctx: OrchestrationContext, input: ImageInput) -> Result<ImageRecord, String> {
    let mut flow = Flow::new(&ctx);
    let id = input.image_id;
    let short = short_policy();
    let outcome = async {
        let _: InstanceSpec = flow.step(Phase::LookupSource, LOOKUP_SOURCE, &id, Kind::Short, &short).await?;
        let job = Kind::Job(Kill::V1(JobRef::backup(id)));
        let result: BackupResult = flow.step(Phase::BackupJob, RUN_BACKUP_JOB, &id, job, &job_policy()).await?;
        let ready = MarkReadyInput { image: id, result };
        flow.step(Phase::MarkReady, MARK_READY, &ready, Kind::Short, &short).await
    }
    .await;
    match outcome {
        Ok(record) => Ok(record),
        Err(stop) => Err(flow.fail(MARK_FAILED, id, format!("backup of image {id}"), &stop).await),
    }
}
