//! Every pipeline step as a typed duroxide activity. The current ones ([`image`], [`instance`])
//! take an id (or a small input of this crate's, [`inputs`]) and call core's steps by id, which
//! read the rest from the catalog and unseal secrets where they are used: passwords never pass
//! through the history, and no core record is part of a recorded input. [`v1`] keeps the
//! activities of `create-image` 1.0.0 and `create-instance` 1.0.5 for the instances earlier
//! builds started.
//!
//! Each activity races its work against [`ActivityContext::cancelled`]. duroxide fires that signal
//! both when the orchestration ended (cancelled, failed) and when one renewal of the step's lease
//! failed — a database blip, or a process paused past its lease while another took the step
//! over. Only the first is a cancellation: the job activities then kill their job
//! (`ClusterExecutor::delete_job`). A lost lease leaves the job running for whoever holds the step
//! now, and the activity does not return until the lease has surely expired, so that duroxide's
//! acknowledgement of a cancelled step (which drops the step's result) can never succeed while the
//! orchestration still waits for it; the step is redelivered and converges on the same job.

pub mod image;
pub mod inputs;
pub mod instance;
pub mod sweep;
pub mod v1;

pub use inputs::{FailInput, JobOf};

use crate::progress::ProgressBoard;
use crate::status::StepError;
use duroxide::runtime::registry::{ActivityRegistry, ActivityRegistryBuilder};
use duroxide::ActivityContext;
use serde::de::DeserializeOwned;
use serde::Serialize;
use std::future::Future;
use std::sync::Arc;
use std::time::{Duration, Instant};
use toygres_core::{JobRef, Result, Toygres};

/// What every activity gets: the backends, the board its work time goes to, and the sweeper's
/// settings.
#[derive(Clone)]
pub(crate) struct Env {
    pub(crate) t: Toygres,
    pub(crate) board: Arc<ProgressBoard>,
    pub(crate) sweep: sweep::SweepSettings,
    /// How long a step's lease lasts (the runtime's activity lock timeout).
    pub(crate) lease: Duration,
}

/// Every toygres activity, bound to `env`.
pub(crate) fn registry(env: &Env) -> ActivityRegistry {
    let b = ActivityRegistry::builder();
    let b = image::register(b, env);
    let b = instance::register(b, env);
    let b = v1::backup::register(b, env);
    let b = v1::restore::register(b, env);
    let b = sweep::register(b, env);
    let b = reg(b, env, crate::names::activity::KILL_JOB, |t, ctx, job: JobOf| async move {
        guard(&ctx, "killing a job", t.executor.delete_job(&job.job_ref())).await
    });
    reg(b, env, crate::names::activity_v1::KILL_JOB, |t, ctx, job: JobRef| async move {
        guard(&ctx, "killing a job", t.executor.delete_job(&job)).await
    })
    .build()
}

/// Registers `f` as activity `name` with its own clone of the backends; its run time is
/// recorded on the board.
pub(crate) fn reg<In, Out, F, Fut>(b: ActivityRegistryBuilder, env: &Env, name: &str, f: F) -> ActivityRegistryBuilder
where
    In: DeserializeOwned + Send + 'static,
    Out: Serialize + Send + 'static,
    F: Fn(Toygres, ActivityContext, In) -> Fut + Send + Sync + 'static,
    Fut: Future<Output = std::result::Result<Out, String>> + Send + 'static,
{
    let env = env.clone();
    let f = Arc::new(f);
    b.register_typed(name, move |ctx: ActivityContext, input| {
        let (env, f) = (env.clone(), f.clone());
        async move {
            let started = Instant::now();
            let instance = ctx.instance_id().to_string();
            let lease = env.lease;
            let out = tokio::select! {
                out = f(env.t.clone(), ctx.clone(), input) => out,
                // The step's lease was lost (not a cancellation, which the guards answer): hold
                // the result back past the lease (see the module's documentation).
                _ = lease_lost(&ctx) => {
                    tokio::time::sleep(lease + LEASE_MARGIN).await;
                    Err(StepError::lease_lost().encode())
                }
            };
            env.board.add_work(&instance, started.elapsed());
            out
        }
    })
}

/// How much longer than a lease a step whose lease was lost waits before it gives up.
pub(crate) const LEASE_MARGIN: Duration = Duration::from_secs(3);

/// Why an activity's cancellation signal fired.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Signal {
    /// The orchestration ended: stop, and kill the job.
    Cancelled,
    /// The orchestration still runs: this process lost the step's lease.
    LeaseLost,
}

/// Reads the orchestration's state to tell a cancellation from a lost lease; while the store
/// cannot answer (it is what failed the renewal), retries for a while, and then assumes a lost
/// lease: destroying nothing is the safe side.
async fn why_signalled(ctx: &ActivityContext) -> Signal {
    let client = ctx.get_client();
    for _ in 0..20 {
        match client.get_orchestration_status(ctx.instance_id()).await {
            Ok(duroxide::OrchestrationStatus::Running { .. }) => return Signal::LeaseLost,
            Ok(_) => return Signal::Cancelled,
            Err(e) => {
                tracing::warn!(error = %e, instance = ctx.instance_id(), "reading a cancelled step's orchestration");
                tokio::time::sleep(Duration::from_millis(500)).await;
            }
        }
    }
    Signal::LeaseLost
}

/// Resolves once the signal fired and it is a lost lease (never for a cancellation).
async fn lease_lost(ctx: &ActivityContext) {
    ctx.cancelled().await;
    if why_signalled(ctx).await == Signal::Cancelled {
        std::future::pending::<()>().await;
    }
    tracing::warn!(
        activity = ctx.activity_name(),
        instance = ctx.instance_id(),
        "this process lost the step's lease (store unreachable, or the process was paused): leaving its work \
         to whichever process holds the step now"
    );
}

/// Resolves once the signal fired and it is a cancellation (never for a lost lease).
async fn cancelled(ctx: &ActivityContext) {
    ctx.cancelled().await;
    if why_signalled(ctx).await == Signal::LeaseLost {
        std::future::pending::<()>().await;
    }
}

/// Runs `work` until it ends or the orchestration is cancelled; errors become [`StepError`] JSON.
pub(crate) async fn guard<T>(
    ctx: &ActivityContext,
    what: &str,
    work: impl Future<Output = Result<T>>,
) -> std::result::Result<T, String> {
    tokio::select! {
        out = work => out.map_err(|e| StepError::from_error(&e).encode()),
        _ = cancelled(ctx) => {
            tracing::info!(activity = ctx.activity_name(), instance = ctx.instance_id(), "cancelled: {what}");
            Err(StepError::cancelled(what).encode())
        }
    }
}

/// [`guard`] for a step that runs `job`: when cancelled, the job (and its processes) is killed; a
/// lost lease leaves it running (its new holder waits for it).
pub(crate) async fn guard_job<T>(
    t: &Toygres,
    ctx: &ActivityContext,
    job: &JobRef,
    work: impl Future<Output = Result<T>>,
) -> std::result::Result<T, String> {
    let what = format!("job {}", job.name);
    tokio::select! {
        out = work => out.map_err(|e| StepError::from_error(&e).encode()),
        _ = cancelled(ctx) => {
            tracing::info!(activity = ctx.activity_name(), instance = ctx.instance_id(), "cancelled: {what}");
            if let Err(e) = t.executor.delete_job(job).await {
                tracing::warn!(error = %e, job = %job.name, "could not kill the cancelled job");
            }
            Err(StepError::cancelled(&what).encode())
        }
    }
}
