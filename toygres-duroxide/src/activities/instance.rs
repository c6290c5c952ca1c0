//! The steps of `create-instance` 1.1.0, each on the instance id: core's
//! [`toygres_core::Restore`] and [`toygres_core::Provision`] read the rest from the catalog and
//! unseal the instance's password where it is used.

use super::{guard, guard_job, reg, Env, FailInput};
use crate::names::activity;
use crate::status::StepError;
use duroxide::runtime::registry::ActivityRegistryBuilder;
use duroxide::ActivityContext;
use toygres_core::{InstanceId, JobRef};

pub(super) fn register(b: ActivityRegistryBuilder, env: &Env) -> ActivityRegistryBuilder {
    let b = reg(b, env, activity::CREATE_VOLUME, |t, ctx: ActivityContext, id: InstanceId| async move {
        guard(&ctx, "creating the volume", t.restore().prepare_volume(id)).await
    });
    let b = reg(b, env, activity::RESTORE_JOB, |t, ctx, id: InstanceId| async move {
        guard_job(&t, &ctx, &JobRef::restore(id), t.restore().restore_job(id)).await
    });
    let b = reg(b, env, activity::INITIALIZE_EMPTY, |t, ctx, id: InstanceId| async move {
        guard(&ctx, "initializing an empty instance", t.provision().initialize(id)).await
    });
    let b = reg(b, env, activity::SERVE, |t, ctx, id: InstanceId| async move {
        guard(&ctx, "deploying and testing the instance", async { t.restore().serve(id).await.map(|_| ()) }).await
    });
    reg(b, env, activity::INSTANCE_FAIL, |t, _ctx, input: FailInput<InstanceId>| async move {
        // Cleanup runs to the end even when the orchestration is cancelled.
        let done = t.restore().fail_instance(input.subject, &input.error()).await;
        done.map(|_| ()).map_err(|e| StepError::from_error(&e).encode())
    })
}
