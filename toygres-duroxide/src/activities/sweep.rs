//! The sweeper's one step ([`crate::names::activity::SWEEP`]), run on whichever process fetches
//! it: heal the records whose operation stopped without finishing them, prune the durable history
//! of operations that ended long ago, and take the scheduled images that are due.

use super::{reg, Env};
use crate::client::DurableClient;
use crate::names::{self, activity};
use crate::status::StepError;
use chrono::Utc;
use duroxide::providers::{InstanceFilter, PruneOptions};
use duroxide::runtime::registry::ActivityRegistryBuilder;
use duroxide::{ActivityContext, OrchestrationStatus};
use serde::{Deserialize, Serialize};
use std::time::Duration;
use toygres_core::{Error, ImageFilter, ImageState, InstanceFilter as Instances, InstanceState, Result, Subject};

/// What the sweeper does, per process (whichever process runs a sweep applies its own).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct SweepSettings {
    /// The durable history of an operation that ended more than this long ago is deleted (its
    /// record in the catalog stays).
    pub history_age: Duration,
    /// Most histories deleted per sweep.
    pub prune_batch: u32,
}

impl Default for SweepSettings {
    fn default() -> Self {
        Self { history_age: Duration::from_secs(7 * 24 * 3600), prune_batch: 500 }
    }
}

/// What one sweep did.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct SweepReport {
    /// Records whose orchestration was missing and was started again.
    pub resumed: Vec<String>,
    /// Records whose orchestration had ended without finishing them, now `failed` (cleaned up).
    pub failed: Vec<String>,
    /// Durable histories deleted.
    pub pruned: u32,
    /// Scheduled images started.
    pub scheduled: Vec<String>,
}

pub(super) fn register(b: ActivityRegistryBuilder, env: &Env) -> ActivityRegistryBuilder {
    let settings = env.sweep;
    let board = env.board.clone();
    reg(b, env, activity::SWEEP, move |t, ctx: ActivityContext, _: ()| {
        let client = DurableClient::new(ctx.get_client(), t, board.clone());
        async move { sweep(&client, settings).await.map_err(|e| StepError::from_error(&e).encode()) }
    })
}

/// One sweep. Each part runs even when another failed; the first error is returned after all.
pub async fn sweep(client: &DurableClient, settings: SweepSettings) -> Result<SweepReport> {
    let mut report = SweepReport::default();
    let healed = heal(client, &mut report).await;
    let pruned = prune(client, settings, &mut report).await;
    let scheduled = crate::schedules::take_due(client, &mut report.scheduled).await;
    healed.and(pruned).and(scheduled)?;
    if report != SweepReport::default() {
        tracing::info!(?report, "sweep");
    }
    Ok(report)
}

/// Records still `creating` / `provisioning`: without an orchestration (a crash between recording
/// and starting it) they are resumed; with one that ended (a poisoned step, a cleanup that failed
/// for good) they get the cleanup their orchestration could not run, with the reason.
async fn heal(client: &DurableClient, report: &mut SweepReport) -> Result<()> {
    let t = client.toygres();
    let mut images = ImageFilter::default();
    images.state = Some(ImageState::Creating);
    let mut instances = Instances::default();
    instances.state = Some(InstanceState::Provisioning);
    let images = t.catalog.list_images(&images).await?.into_iter().map(|i| Subject::Image(i.id));
    let instances = t.catalog.list_instances(&instances).await?.into_iter().map(|i| Subject::Instance(i.id));
    for subject in images.chain(instances) {
        match heal_one(client, subject).await? {
            Heal::Running => {}
            Heal::Resumed => report.resumed.push(names::orchestration_id(subject)),
            Heal::Ended(why) => {
                let error = ended(subject, why);
                match subject {
                    Subject::Image(id) => t.backup().mark_failed(id, &error).await.map(|_| ())?,
                    Subject::Instance(id) => t.restore().fail_instance(id, &error).await.map(|_| ())?,
                }
                report.failed.push(names::orchestration_id(subject));
            }
        }
    }
    Ok(())
}

enum Heal {
    Running,
    Resumed,
    Ended(String),
}

async fn heal_one(client: &DurableClient, subject: Subject) -> Result<Heal> {
    let id = names::orchestration_id(subject);
    let status = client.duroxide().get_orchestration_status(&id).await;
    match status.map_err(|e| Error::backend_msg("durable store", format!("reading {id}: {e}")))? {
        OrchestrationStatus::Running { .. } => Ok(Heal::Running),
        // A start is a no-op for an orchestration that exists, so racing the creation is safe.
        OrchestrationStatus::NotFound => client.resume(subject).await.map(|()| Heal::Resumed),
        OrchestrationStatus::Completed { .. } => Ok(Heal::Ended("completed".into())),
        OrchestrationStatus::Failed { details, .. } => Ok(Heal::Ended(details.display_message())),
    }
}

fn ended(subject: Subject, why: String) -> Error {
    let id = names::orchestration_id(subject);
    Error::backend_msg(
        "sweeper",
        format!("its operation {id} ended ({why}) without finishing it; cleaned up by the sweeper"),
    )
}

/// Deletes the histories of operations that ended more than `history_age` ago (at most
/// `prune_batch` per sweep), and the sweeper's own past executions.
async fn prune(client: &DurableClient, settings: SweepSettings, report: &mut SweepReport) -> Result<()> {
    let d = client.duroxide();
    let fail = |what: &str, e: duroxide::ClientError| Error::backend_msg("durable store", format!("{what}: {e}"));
    let before = Utc::now() - settings.history_age;
    let filter = InstanceFilter {
        instance_ids: None,
        completed_before: Some(before.timestamp_millis().max(0) as u64),
        limit: Some(settings.prune_batch),
    };
    let deleted = d.delete_instance_bulk(filter).await.map_err(|e| fail("pruning histories", e))?;
    report.pruned = deleted.instances_deleted as u32;
    let own = PruneOptions { keep_last: Some(1), completed_before: None };
    d.prune_executions(names::SWEEPER_ID, own).await.map_err(|e| fail("pruning the sweeper's executions", e))?;
    Ok(())
}
