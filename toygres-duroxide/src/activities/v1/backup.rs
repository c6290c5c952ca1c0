//! The activities of `create-image` 1.0.0 (frozen: earlier builds recorded their inputs).

use crate::activities::{guard, guard_job, reg, Env, FailInput};
use crate::names::activity_v1 as activity;
use duroxide::runtime::registry::ActivityRegistryBuilder;
use duroxide::ActivityContext;
use serde::{Deserialize, Serialize};
use toygres_core::{BackupResult, Error, ImageId, InstanceSpec, JobRef};

/// Input of `mark_ready`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct MarkReadyInput {
    /// The image.
    pub image: ImageId,
    /// What its backup job stored.
    pub result: BackupResult,
}

/// Input of `mark_failed` (the image's id and the reason).
pub type MarkFailedInput = FailInput<ImageId>;

pub(crate) fn register(b: ActivityRegistryBuilder, t: &Env) -> ActivityRegistryBuilder {
    let b = reg(b, t, activity::LOOKUP_SOURCE, |t, ctx: ActivityContext, image: ImageId| async move {
        guard(&ctx, "looking up the source", async {
            let record = t.catalog.get_image(image).await?;
            Ok::<InstanceSpec, Error>(t.backup().lookup_source(&record).await?.spec)
        })
        .await
    });
    let b = reg(b, t, activity::RUN_BACKUP_JOB, |t, ctx, image: ImageId| async move {
        let job = JobRef::backup(image);
        guard_job(&t, &ctx, &job, async {
            let backup = t.backup();
            let source = backup.lookup_source(&t.catalog.get_image(image).await?).await?;
            backup.run_backup_job(image, &source).await
        })
        .await
    });
    let b = reg(b, t, activity::MARK_READY, |t, ctx, input: MarkReadyInput| async move {
        guard(&ctx, "marking the image ready", async {
            let backup = t.backup();
            let source = backup.lookup_source(&t.catalog.get_image(input.image).await?).await?;
            backup.mark_ready(input.image, &input.result, &source).await
        })
        .await
    });
    reg(b, t, activity::MARK_FAILED, |t, _ctx, input: MarkFailedInput| async move {
        // Cleanup runs to the end even when the orchestration is cancelled.
        let error = input.error();
        t.backup()
            .mark_failed(input.subject, &error)
            .await
            .map_err(|e| crate::status::StepError::from_error(&e).encode())
    })
}
