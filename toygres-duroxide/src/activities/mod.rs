//! Every pipeline step as a typed duroxide activity. The current ones ([`image`], [`instance`])
//! take an id (or a small input of this crate's, [`inputs`]) and call core's steps by id, which
//! read the rest from the catalog and unseal secrets where they are used: passwords never pass
//! through the history, and no core record is part of a recorded input. [`v1`] keeps the
//! activities of `create-image` 1.0.0 and `create-instance` 1.0.5 for the instances earlier
//! builds started.
//!
//! Each activity races its work against [`ActivityContext::cancelled`]: a cancelled orchestration
//! stops it, and the job activities kill their job (`ClusterExecutor::delete_job`) on the way out.

pub mod image;
pub mod inputs;
pub mod instance;
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
use std::time::Instant;
use toygres_core::{JobRef, Result, Toygres};

/// What every activity gets: the backends and the board its work time goes to.
#[derive(Clone)]
pub(crate) struct Env {
    pub(crate) t: Toygres,
    pub(crate) board: Arc<ProgressBoard>,
}

/// Every toygres activity, bound to `env`.
pub(crate) fn registry(env: &Env) -> ActivityRegistry {
    let b = ActivityRegistry::builder();
    let b = image::register(b, env);
    let b = instance::register(b, env);
    let b = v1::backup::register(b, env);
    let b = v1::restore::register(b, env);
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
            let out = f(env.t.clone(), ctx, input).await;
            env.board.add_work(&instance, started.elapsed());
            out
        }
    })
}

/// Runs `work` until it ends or the orchestration is cancelled; errors become [`StepError`] JSON.
pub(crate) async fn guard<T>(
    ctx: &ActivityContext,
    what: &str,
    work: impl Future<Output = Result<T>>,
) -> std::result::Result<T, String> {
    tokio::select! {
        out = work => out.map_err(|e| StepError::from_error(&e).encode()),
        _ = ctx.cancelled() => {
            tracing::info!(activity = ctx.activity_name(), instance = ctx.instance_id(), "cancelled: {what}");
            Err(StepError::cancelled(what).encode())
        }
    }
}

/// [`guard`] for a step that runs `job`: when cancelled, the job (and its processes) is killed.
pub(crate) async fn guard_job<T>(
    t: &Toygres,
    ctx: &ActivityContext,
    job: &JobRef,
    work: impl Future<Output = Result<T>>,
) -> std::result::Result<T, String> {
    let out = guard(ctx, &format!("job {}", job.name), work).await;
    if ctx.is_cancelled() {
        if let Err(e) = t.executor.delete_job(job).await {
            tracing::warn!(error = %e, job = %job.name, "could not kill the cancelled job");
        }
    }
    out
}
