//! The orchestrations, and `Flow`: how they run a step (custom status, retries with durable
//! timers, cancellation). Orchestration code is deterministic: it branches only on its input and
//! on the activities' recorded results, and waits only on durable timers.

mod create_image;
mod create_instance;
mod sweeper;
pub mod v1;

pub use create_image::{create_image, create_image_v1_1_0, ImageInput};
pub use create_instance::{create_instance, create_instance_v1_1_0, InstanceFlow};
pub use sweeper::{sweeper, SweeperInput};

use crate::activities::{FailInput, JobOf};
use crate::names::{activity, activity_v1, CREATE_IMAGE, CREATE_INSTANCE};
use crate::names::{CREATE_IMAGE_V1_0_0, CREATE_IMAGE_V1_1_0, CREATE_IMAGE_VERSION};
use crate::names::{CREATE_INSTANCE_V1_0_5, CREATE_INSTANCE_V1_1_0, CREATE_INSTANCE_VERSION, SWEEPER, SWEEPER_VERSION};
use crate::status::{Failure, StepError, StepStatus};
use duroxide::runtime::registry::OrchestrationRegistryBuilder;
use duroxide::OrchestrationRegistry;
use duroxide::{DurableFuture, Either2, OrchestrationContext};
use serde::de::DeserializeOwned;
use serde::Serialize;
use std::time::Duration;
use toygres_core::{JobRef, Phase, RetryPolicy};

/// Every version of every toygres orchestration, oldest first (an instance keeps the version it
/// started with, so a version is never removed while instances may run on it).
pub fn registry() -> OrchestrationRegistryBuilder {
    OrchestrationRegistry::builder()
        .register_versioned_typed(CREATE_IMAGE, CREATE_IMAGE_V1_0_0, v1::create_image_v1_0_0)
        .register_versioned_typed(CREATE_IMAGE, CREATE_IMAGE_V1_1_0, create_image_v1_1_0)
        .register_versioned_typed(CREATE_IMAGE, CREATE_IMAGE_VERSION, create_image)
        .register_versioned_typed(CREATE_INSTANCE, CREATE_INSTANCE_V1_0_5, v1::create_instance_v1_0_5)
        .register_versioned_typed(CREATE_INSTANCE, CREATE_INSTANCE_V1_1_0, create_instance_v1_1_0)
        .register_versioned_typed(CREATE_INSTANCE, CREATE_INSTANCE_VERSION, create_instance)
        .register_versioned_typed(SWEEPER, SWEEPER_VERSION, sweeper)
}

/// How a step reacts to a cancellation that arrives while it runs.
pub(crate) enum Kind {
    /// A short step: it is let finish (so nothing it creates escapes the cleanup).
    Short,
    /// A step that runs a job: the job is killed, then the step is let finish (it fails fast).
    Job(Kill),
    /// A step that only waits or reads: it is abandoned.
    Poll,
}

/// How a cancelled job step kills its job: the kill activity of the orchestration's version.
pub(crate) enum Kill {
    /// `create-image` 1.0.0 and `create-instance` 1.0.5: the executor's job reference.
    V1(JobRef),
    /// The current versions: the job's subject.
    Of(JobOf),
}

/// Why a flow stopped before its end.
#[derive(Debug)]
pub(crate) struct Stop {
    pub(crate) step: Phase,
    pub(crate) error: StepError,
}

/// Retries of catalog and executor calls that failed transiently (connection resets, timeouts).
pub(crate) fn short_policy() -> RetryPolicy {
    RetryPolicy::new(3).with_backoff(Duration::from_millis(500), Duration::from_secs(5))
}

/// Retries of a job that failed transiently.
pub(crate) fn job_policy() -> RetryPolicy {
    RetryPolicy::new(2).with_backoff(Duration::from_secs(2), Duration::from_secs(2))
}

/// One orchestration's run: its context, its cancellation mailbox, and the worker queue its job
/// steps go to.
pub(crate) struct Flow {
    ctx: OrchestrationContext,
    cancel: DurableFuture<String>,
    cancelled: bool,
    job_queue: Option<&'static str>,
}

impl Flow {
    pub(crate) fn new(ctx: &OrchestrationContext) -> Self {
        let cancel = ctx.dequeue_event(crate::names::CANCEL_QUEUE);
        Self { ctx: ctx.clone(), cancel, cancelled: false, job_queue: None }
    }

    /// Sends the job steps to the workers of `queue` (a duroxide activity tag), which have their
    /// own capacity ([`crate::names::queue`]). Part of an orchestration version's history: a
    /// version that starts tagging is a new version.
    pub(crate) fn jobs_on(mut self, queue: &'static str) -> Self {
        self.job_queue = Some(queue);
        self
    }

    fn cancelled(&mut self, step: Phase, what: &str) -> Stop {
        self.cancelled = true;
        Stop { step, error: StepError::cancelled(what) }
    }

    fn status(&self, step: Phase, attempt: u32) {
        let status = StepStatus { step, attempt };
        self.ctx.set_custom_status(serde_json::to_string(&status).expect("status serializes"));
    }

    /// Runs activity `name` as `step`, retrying transient errors under `policy`, and stops when the
    /// operation is cancelled (as `kind` says).
    pub(crate) async fn step<In, Out>(
        &mut self,
        step: Phase,
        name: &str,
        input: &In,
        kind: Kind,
        policy: &RetryPolicy,
    ) -> Result<Out, Stop>
    where
        In: Serialize,
        Out: DeserializeOwned + Send + 'static,
    {
        let what = format!("step {step}");
        for attempt in 1..=policy.attempts {
            if self.cancelled {
                return Err(self.cancelled(step, &what));
            }
            self.status(step, attempt);
            let mut act: DurableFuture<Result<Out, String>> = self.ctx.schedule_activity_typed(name, input);
            if let (Kind::Job(_), Some(queue)) = (&kind, self.job_queue) {
                act = act.with_tag(queue);
            }
            let error = match self.ctx.select2(&mut act, &mut self.cancel).await {
                Either2::First(Ok(out)) => return Ok(out),
                Either2::First(Err(e)) => StepError::decode(&e),
                Either2::Second(_reason) => {
                    match kind {
                        Kind::Short => drop(act.await),
                        Kind::Job(kill) => {
                            let killed = match kill {
                                Kill::V1(job) => self.ctx.schedule_activity_typed::<_, ()>(activity_v1::KILL_JOB, &job),
                                Kill::Of(job) => self.ctx.schedule_activity_typed::<_, ()>(activity::KILL_JOB, &job),
                            };
                            drop(killed.await);
                            drop(act.await);
                        }
                        Kind::Poll => drop(act),
                    }
                    return Err(self.cancelled(step, &what));
                }
            };
            if !error.transient || attempt == policy.attempts {
                return Err(Stop { step, error });
            }
            self.ctx.trace_warn(format!("{step} attempt {attempt} failed, retrying: {}", error.message));
            let timer = self.ctx.schedule_timer(policy.backoff(attempt));
            if let Either2::Second(_) = self.ctx.select2(timer, &mut self.cancel).await {
                return Err(self.cancelled(step, &what));
            }
        }
        unreachable!("a policy has at least one attempt")
    }

    /// Runs cleanup activity `name` (not cancellable) on `subject`, which `stop` ended (`what`
    /// names the operation for a cancellation's reason), retrying transient errors; then the
    /// orchestration's error for `stop`.
    pub(crate) async fn fail<S: Serialize>(&mut self, name: &str, subject: S, what: String, stop: &Stop) -> String {
        let input = &FailInput {
            subject,
            step: Some(stop.step),
            message: stop.error.message.clone(),
            cancelled: self.cancelled,
            what,
        };
        let policy = short_policy();
        let mut cleanup_error = None;
        for attempt in 1..=policy.attempts {
            self.status(Phase::Cleanup, attempt);
            match self.ctx.schedule_activity_typed::<FailInput<S>, serde_json::Value>(name, input).await {
                Ok(_) => {
                    cleanup_error = None;
                    break;
                }
                Err(e) => {
                    let e = StepError::decode(&e);
                    let retry = e.transient && attempt < policy.attempts;
                    cleanup_error = Some(e.message);
                    if !retry {
                        break;
                    }
                    self.ctx.schedule_timer(policy.backoff(attempt)).await;
                }
            }
        }
        let mut reason = stop.error.message.clone();
        if let Some(e) = cleanup_error {
            reason = format!("{reason}; the cleanup failed too: {e}");
        }
        Failure { step: Some(stop.step), reason, cancelled: self.cancelled }.encode()
    }
}
