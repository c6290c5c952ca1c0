//! `create-instance` 1.2.0 (and 1.1.0, the same steps with the restore job on the default worker
//! queue). The client has admitted the request and created the record
//! ([`toygres_core::Toygres::begin_instance`]); then the volume → the restore job (or an empty
//! cluster) → core's deploy-to-running tail ([`toygres_core::Restore::serve`]), and on failure or
//! cancellation the cleanup (job and everything the instance owns removed, instance `failed`
//! with the reason). Every step takes the instance id only.

use super::{job_policy, short_policy, Flow, Kill, Kind, Stop};
use crate::activities::JobOf;
use crate::names::activity::{CREATE_VOLUME, INITIALIZE_EMPTY, INSTANCE_FAIL, RESTORE_JOB, SERVE};
use duroxide::OrchestrationContext;
use serde::{Deserialize, Serialize};
use toygres_core::{ImageId, InstanceId, Phase};

/// Input of `create-instance` 1.1.0.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct InstanceFlow {
    /// The new instance (its record is `provisioning`).
    pub instance: InstanceId,
    /// The image it is restored from; none for a fresh empty instance.
    pub image: Option<ImageId>,
}

/// The `create-instance` orchestration, version 1.2.0: the restore job runs on the restore
/// queue's workers ([`crate::names::queue::RESTORES`]). Its output is the instance id.
pub async fn create_instance(ctx: OrchestrationContext, input: InstanceFlow) -> Result<InstanceId, String> {
    run(Flow::new(&ctx).jobs_on(crate::names::queue::RESTORES), input).await
}

/// `create-instance` 1.1.0, which earlier builds started: the restore job on the default queue.
pub async fn create_instance_v1_1_0(ctx: OrchestrationContext, input: InstanceFlow) -> Result<InstanceId, String> {
    run(Flow::new(&ctx), input).await
}

async fn run(mut flow: Flow, input: InstanceFlow) -> Result<InstanceId, String> {
    let id = input.instance;
    match steps(&mut flow, &input).await {
        Ok(()) => Ok(id),
        Err(stop) => {
            let what = match input.image {
                Some(image) => format!("restore of instance {id} from image {image}"),
                None => format!("creation of instance {id}"),
            };
            Err(flow.fail(INSTANCE_FAIL, id, what, &stop).await)
        }
    }
}

async fn steps(flow: &mut Flow, input: &InstanceFlow) -> Result<(), Stop> {
    let (id, short) = (&input.instance, short_policy());
    let _: () = flow.step(Phase::CreateVolume, CREATE_VOLUME, id, Kind::Short, &short).await?;
    match input.image {
        Some(_) => {
            let job = Kind::Job(Kill::Of(JobOf::Restore(*id)));
            let _: () = flow.step(Phase::WaitRestoreJob, RESTORE_JOB, id, job, &job_policy()).await?;
        }
        None => {
            let _: () = flow.step(Phase::InitializeEmpty, INITIALIZE_EMPTY, id, Kind::Short, &short).await?;
        }
    }
    // Deploy → ready → connection strings → connection test → running, in one step that runs
    // core's tail; the connection test retries inside it under the runtime's options.
    flow.step(Phase::Deploy, SERVE, id, Kind::Poll, &short).await
}
