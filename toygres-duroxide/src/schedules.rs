//! Scheduled images, taken by the sweeper: each due slot's image is created through the durable
//! client with an operation id derived from the schedule and the slot, so that every process and
//! every retry of the sweep creates the same one image; then the slot is recorded and the
//! schedule's retention applied ([`toygres_core::Toygres::schedule_fired`]). Every sweep also
//! applies each schedule's retention again, so that an image that became ready since counts at
//! once (the image a slot starts is still `creating` when that slot's retention runs, and
//! retention never touches it).

use crate::client::DurableClient;
use chrono::Utc;
use toygres_core::pipeline::retention_of;
use toygres_core::{Error, Result};

/// Takes every due scheduled image; the subjects created go to `started`. A schedule whose image
/// is refused for good (its instance is not running, say) still has its slot recorded, with a
/// warning: the next slot tries again. A transient failure leaves the slot for the next sweep.
pub async fn take_due(client: &DurableClient, started: &mut Vec<String>) -> Result<()> {
    let t = client.toygres();
    let mut first_error = None;
    for due in t.due_schedule_images(Utc::now()).await? {
        let schedule = due.schedule.id;
        match client.create_image(due.operation, due.request.clone()).await {
            Ok(image) => started.push(format!("image {} (schedule {schedule}, slot {})", image.id, due.slot)),
            Err(e) if e.is_transient() => {
                tracing::warn!(error = %e, %schedule, slot = %due.slot, "scheduled image: will try again");
                first_error.get_or_insert(e);
                continue;
            }
            Err(e) => tracing::warn!(error = %e, %schedule, slot = %due.slot, "scheduled image refused; slot skipped"),
        }
        if let Err(e) = t.schedule_fired(&due).await {
            tracing::warn!(error = %e, %schedule, slot = %due.slot, "recording a scheduled slot");
            first_error.get_or_insert(e);
        }
    }
    for schedule in t.list_schedules().await? {
        if let Err(e) = t.expire(&retention_of(&schedule), false).await {
            tracing::warn!(error = %e, schedule = %schedule.id, "applying a schedule's retention");
            first_error.get_or_insert(e);
        }
    }
    first_error.map_or(Ok(()), Err::<(), Error>)
}
