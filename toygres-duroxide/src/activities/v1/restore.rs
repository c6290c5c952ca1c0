//! The activities of `create-instance` 1.0.5 (frozen: earlier builds recorded their inputs,
//! whole core records among them).

use crate::activities::{guard, guard_job, reg, Env, FailInput};
use crate::names::activity_v1 as activity;
use crate::status::StepError;
use duroxide::runtime::registry::ActivityRegistryBuilder;
use duroxide::ActivityContext;
use serde::{Deserialize, Serialize};
use std::time::Duration;
use toygres_core::RetryPolicy;
use toygres_core::{ConnectionInfo, Error, ImageId, ImageRecord, InstanceId, InstanceSpec, JobRef};

/// Input of the restore job steps.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct RestoreJobInput {
    /// The new instance.
    pub spec: InstanceSpec,
    /// The (ready) image it is restored from.
    pub image: ImageRecord,
}

/// Input of one connection test attempt.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct TestConnectionInput {
    /// The instance.
    pub instance: InstanceId,
    /// Where to connect.
    pub connection: ConnectionInfo,
    /// Limit of the attempt.
    pub timeout: Duration,
}

/// Input of `mark_running`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct RunningInput {
    /// The instance.
    pub instance: InstanceId,
    /// Where clients connect.
    pub connection: ConnectionInfo,
}

fn encode(e: Error) -> String {
    StepError::from_error(&e).encode()
}

pub(crate) fn register(b: ActivityRegistryBuilder, t: &Env) -> ActivityRegistryBuilder {
    let b = reg(b, t, activity::FETCH_IMAGE, |t, ctx: ActivityContext, image: ImageId| async move {
        guard(&ctx, "fetching the image", t.restore().fetch_image(image)).await
    });
    let b = reg(b, t, activity::SOURCE_PASSWORD, |t, ctx, image: ImageId| async move {
        // The password stays in the catalog; the step checks it is there (and readable).
        guard(&ctx, "reading the source password", async { t.restore().source_password(image).await.map(|_| ()) }).await
    });
    let b = reg(b, t, activity::VERIFY_IMAGE, |t, ctx, image: ImageRecord| async move {
        guard(&ctx, "verifying the image", t.restore().verify_image(&image)).await
    });
    let b = reg(b, t, activity::CREATE_VOLUME, |t, ctx, spec: InstanceSpec| async move {
        guard(&ctx, "creating the volume", async {
            let password = t.catalog.instance_password(spec.id).await?;
            t.restore().create_volume(&spec, &password).await
        })
        .await
    });
    let b = reg(b, t, activity::START_RESTORE_JOB, |t, ctx, input: RestoreJobInput| async move {
        let job = JobRef::restore(input.spec.id);
        guard_job(&t, &ctx, &job, t.restore().start_restore_job(&input.spec, &input.image)).await
    });
    let b = reg(b, t, activity::WAIT_RESTORE_JOB, |t, ctx, input: RestoreJobInput| async move {
        let job = JobRef::restore(input.spec.id);
        guard_job(&t, &ctx, &job, async {
            // Starting is idempotent: after a control-plane crash the job may be gone with the
            // process that ran it, and is started again.
            let job = t.restore().start_restore_job(&input.spec, &input.image).await?;
            t.restore().wait_restore_job(&job).await
        })
        .await
    });
    let b = reg(b, t, activity::DEPLOY, |t, ctx, spec: InstanceSpec| async move {
        guard(&ctx, "deploying", t.restore().deploy(&spec)).await
    });
    let b = reg(b, t, activity::WAIT_READY, |t, ctx, spec: InstanceSpec| async move {
        guard(&ctx, "waiting for ready", t.restore().wait_ready(&spec)).await
    });
    let b = reg(b, t, activity::CONNECTION_STRINGS, |t, ctx, spec: InstanceSpec| async move {
        guard(&ctx, "reading the connection strings", t.restore().connection_strings(&spec)).await
    });
    let b = reg(b, t, activity::TEST_CONNECTION, |t, ctx, input: TestConnectionInput| async move {
        // One attempt; the orchestration retries with durable timers.
        let mut options = t.options.clone();
        options.connection_test = RetryPolicy::new(1).with_timeout(input.timeout);
        let t = t.with_options(options);
        guard(&ctx, "testing the connection", async {
            let password = t.catalog.instance_password(input.instance).await?;
            t.restore().test_connection(input.instance, &input.connection, &password).await
        })
        .await
    });
    let b = reg(b, t, activity::MARK_RUNNING, |t, ctx, input: RunningInput| async move {
        guard(&ctx, "marking the instance running", t.restore().mark_running(input.instance, input.connection)).await
    });
    let b = reg(b, t, activity::INITIALIZE_EMPTY, |t, ctx, spec: InstanceSpec| async move {
        guard(&ctx, "initializing an empty instance", async {
            let password = t.catalog.instance_password(spec.id).await?;
            t.provision().initialize_empty(&spec, &password).await
        })
        .await
    });
    reg(b, t, activity::FAIL, |t, _ctx, input: FailInput<InstanceSpec>| async move {
        // Cleanup runs to the end even when the orchestration is cancelled.
        t.restore().fail(&input.subject, &input.error()).await.map_err(encode)
    })
}
