//! `create-instance` 1.0.5: the restore flow inlined, step by step as in the original control
//! plane (fetch image, require ready → source password → verify → volume → restore job → wait →
//! deploy → ready → connection strings → connection test → running), or, without a source image,
//! a fresh empty instance (volume → initialise empty → deploy → …). On failure or cancellation:
//! `fail` (job and everything the instance owns removed, instance `failed` with the reason).

use crate::activities::v1::{RestoreJobInput, RunningInput, TestConnectionInput};
use crate::names::activity_v1::*;
use crate::orchestrations::{job_policy, short_policy, Flow, Kill, Kind, Stop};
use duroxide::OrchestrationContext;
use serde::{Deserialize, Serialize};
use toygres_core::{ConnectionInfo, ImageId, ImageRecord, InstanceRecord, InstanceSpec, JobRef, Phase, RetryPolicy};

/// Input of `create-instance`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct InstanceInput {
    /// The new instance (its record is `provisioning`).
    pub spec: InstanceSpec,
    /// The image it is restored from; none for a fresh empty instance.
    pub image: Option<ImageId>,
    /// The connection test's attempts, limit and backoff (default 5 × 120 s).
    pub connection_test: RetryPolicy,
}

/// The `create-instance` orchestration, version 1.0.5.
pub async fn create_instance_v1_0_5(ctx: OrchestrationContext, input: InstanceInput) -> Result<InstanceRecord, String> {
    let mut flow = Flow::new(&ctx);
    let spec = input.spec.clone();
    let outcome = match input.image {
        Some(image) => restore(&mut flow, &input, image).await,
        None => fresh(&mut flow, &input).await,
    };
    match outcome {
        Ok(record) => Ok(record),
        Err(stop) => {
            let what = match input.image {
                Some(image) => format!("restore of instance {} from image {image}", spec.id),
                None => format!("creation of instance {}", spec.id),
            };
            Err(flow.fail(FAIL, spec, what, &stop).await)
        }
    }
}

async fn restore(flow: &mut Flow, input: &InstanceInput, image_id: ImageId) -> Result<InstanceRecord, Stop> {
    let (spec, short) = (&input.spec, short_policy());
    let image: ImageRecord = flow.step(Phase::FetchImage, FETCH_IMAGE, &image_id, Kind::Short, &short).await?;
    let _: () = flow.step(Phase::SourcePassword, SOURCE_PASSWORD, &image_id, Kind::Short, &short).await?;
    let _: () = flow.step(Phase::VerifyImage, VERIFY_IMAGE, &image, Kind::Poll, &short).await?;
    let _: () = flow.step(Phase::CreateVolume, CREATE_VOLUME, spec, Kind::Short, &short).await?;
    let job = RestoreJobInput { spec: spec.clone(), image };
    let kill = || Kind::Job(Kill::V1(JobRef::restore(spec.id)));
    let _: JobRef = flow.step(Phase::StartRestoreJob, START_RESTORE_JOB, &job, kill(), &short).await?;
    let _: () = flow.step(Phase::WaitRestoreJob, WAIT_RESTORE_JOB, &job, kill(), &job_policy()).await?;
    serve(flow, input).await
}

async fn fresh(flow: &mut Flow, input: &InstanceInput) -> Result<InstanceRecord, Stop> {
    let (spec, short) = (&input.spec, short_policy());
    let _: () = flow.step(Phase::CreateVolume, CREATE_VOLUME, spec, Kind::Short, &short).await?;
    let _: () = flow.step(Phase::InitializeEmpty, INITIALIZE_EMPTY, spec, Kind::Short, &short).await?;
    serve(flow, input).await
}

/// Deploy → ready → connection strings → connection test → running.
async fn serve(flow: &mut Flow, input: &InstanceInput) -> Result<InstanceRecord, Stop> {
    let (spec, short) = (&input.spec, short_policy());
    let _: () = flow.step(Phase::Deploy, DEPLOY, spec, Kind::Short, &short).await?;
    let _: () = flow.step(Phase::WaitReady, WAIT_READY, spec, Kind::Poll, &short).await?;
    let connection: ConnectionInfo =
        flow.step(Phase::ConnectionStrings, CONNECTION_STRINGS, spec, Kind::Short, &short).await?;
    let policy = &input.connection_test;
    let test = TestConnectionInput { instance: spec.id, connection: connection.clone(), timeout: policy.timeout };
    let _: () = flow.step(Phase::TestConnection, TEST_CONNECTION, &test, Kind::Poll, policy).await?;
    let running = RunningInput { instance: spec.id, connection };
    flow.step(Phase::MarkRunning, MARK_RUNNING, &running, Kind::Short, &short).await
}
