//! `toygres-sweeper` 1.0.0: one sweep ([`crate::activities::sweep`]), a durable timer, then
//! continue-as-new (so its history stays a handful of events). One instance with a fixed id
//! ([`crate::names::SWEEPER_ID`]) that every process starts: the duplicates are no-ops and
//! duroxide runs each turn on one process, so no leader election is needed.

use crate::names::activity::SWEEP;
use duroxide::OrchestrationContext;
use serde::{Deserialize, Serialize};
use std::time::Duration;

/// Input of the sweeper: how long it waits between sweeps.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct SweeperInput {
    /// Milliseconds between the end of a sweep and the next.
    pub interval_ms: u64,
}

/// The sweeper orchestration, version 1.0.0. It never completes; a failed sweep is logged and the
/// next one comes after the interval.
pub async fn sweeper(ctx: OrchestrationContext, input: SweeperInput) -> Result<String, String> {
    ctx.set_custom_status("sweeping");
    if let Err(e) = ctx.schedule_activity_typed::<(), serde_json::Value>(SWEEP, &()).await {
        ctx.trace_warn(format!("sweep failed, the next one comes after the interval: {e}"));
    }
    ctx.set_custom_status("waiting");
    ctx.schedule_timer(Duration::from_millis(input.interval_ms.max(1000))).await;
    ctx.continue_as_new_typed(&input).await
}
