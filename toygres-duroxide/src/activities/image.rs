//! The steps of `create-image` 1.1.0, each on the image id: core's [`toygres_core::Backup`]
//! reads the rest from the catalog and unseals the source password where it is used.

use super::{guard, guard_job, reg, Env, FailInput};
use crate::names::activity;
use crate::status::StepError;
use duroxide::runtime::registry::ActivityRegistryBuilder;
use duroxide::ActivityContext;
use toygres_core::{ImageId, JobRef};

pub(super) fn register(b: ActivityRegistryBuilder, env: &Env) -> ActivityRegistryBuilder {
    let b = reg(b, env, activity::BACKUP_JOB, |t, ctx: ActivityContext, image: ImageId| async move {
        guard_job(&t, &ctx, &JobRef::backup(image), t.backup().backup_job(image)).await
    });
    let b = reg(b, env, activity::MARK_READY, |t, ctx, image: ImageId| async move {
        guard(&ctx, "marking the image ready", async { t.backup().complete(image).await.map(|_| ()) }).await
    });
    reg(b, env, activity::IMAGE_FAIL, |t, _ctx, input: FailInput<ImageId>| async move {
        // Cleanup runs to the end even when the orchestration is cancelled.
        let done = t.backup().mark_failed(input.subject, &input.error()).await;
        done.map(|_| ()).map_err(|e| StepError::from_error(&e).encode())
    })
}
