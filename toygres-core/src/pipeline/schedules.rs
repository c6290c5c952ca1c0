//! Schedules through [`Toygres`]: create, read, list and delete them, and the two calls a
//! control plane's sweeper makes every few seconds, [`Toygres::due_schedule_images`] and
//! [`Toygres::schedule_fired`]. See [`crate::schedule`] for slots and the missed-slot policy.

use super::{RetentionPolicy, Toygres};
use crate::error::{Error, Result};
use crate::ids::{OperationId, ScheduleId};
use crate::request::CreateImageRequest;
use crate::schedule::{CreateScheduleRequest, Schedule, SCHEDULE_LABEL};
use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};

/// How many times [`Toygres::schedule_fired`] re-reads a schedule another replica advanced under it.
const ADVANCE_ATTEMPTS: usize = 5;

/// An image a schedule owes at a slot ([`Toygres::due_schedule_images`]). Take it with the
/// durable client (or [`Toygres::create_image`]) under `operation`, which every replica and
/// every retry compute the same, then call [`Toygres::schedule_fired`] with it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[non_exhaustive]
pub struct DueImage {
    /// The schedule, as read when the slot was found.
    pub schedule: Schedule,
    /// The slot (a UTC minute).
    pub slot: DateTime<Utc>,
    /// The operation id of the slot's image ([`Schedule::slot_operation`]).
    pub operation: OperationId,
    /// The slot's image request ([`Schedule::image_request`]).
    pub request: CreateImageRequest,
}

impl Toygres {
    /// Validates `request` ([`crate::Error::InvalidRequest`] naming the field, e.g. `cron`),
    /// checks that its instance exists ([`crate::Error::InstanceNotFound`]) and records the
    /// schedule. Idempotent on `operation`: a retry returns the same schedule; another request
    /// under it is [`crate::Error::OperationReused`], and after the schedule's deletion
    /// [`crate::Error::OperationSpent`]. A live schedule of the same name is
    /// [`crate::Error::ScheduleNameTaken`].
    pub async fn create_schedule(&self, operation: OperationId, request: CreateScheduleRequest) -> Result<Schedule> {
        let new = request.to_new()?;
        self.catalog.get_instance(request.instance_id).await?;
        let schedule = self.catalog.create_schedule(operation, &new).await?;
        if schedule.deleted_at.is_some() {
            return Err(Error::OperationSpent { operation, entity: "schedule", id: schedule.id.to_string() });
        }
        Ok(schedule)
    }

    /// The schedule, unless unknown or deleted ([`crate::Error::ScheduleNotFound`]).
    pub async fn get_schedule(&self, id: ScheduleId) -> Result<Schedule> {
        self.catalog.get_schedule(id).await
    }

    /// Every schedule that is not deleted, oldest first.
    pub async fn list_schedules(&self) -> Result<Vec<Schedule>> {
        self.catalog.list_schedules().await
    }

    /// Deletes the schedule: no slot of it is taken any more. The images it made are **kept**
    /// (delete them like any image, e.g. by their [`SCHEDULE_LABEL`] label); an image of it
    /// already started finishes. Unknown or deleted: [`crate::Error::ScheduleNotFound`].
    pub async fn delete_schedule(&self, id: ScheduleId) -> Result<()> {
        self.catalog.delete_schedule(id).await
    }

    /// The images schedules owe at `now`: for each schedule, the latest slot at or before `now`
    /// that is after both its last taken slot and its creation. After downtime only the most
    /// recent missed slot is due; the earlier ones are skipped (logged at `info`). Reads only:
    /// call it as often as you like, on any replica.
    pub async fn due_schedule_images(&self, now: DateTime<Utc>) -> Result<Vec<DueImage>> {
        let mut due = Vec::new();
        for schedule in self.catalog.list_schedules().await? {
            let expr = match schedule.cron_expr() {
                Ok(expr) => expr,
                Err(e) => {
                    tracing::warn!(schedule = %schedule.id, error = %e, "schedule with an unreadable cron expression");
                    continue;
                }
            };
            let Some(slot) = expr.latest_at_or_before(now).filter(|slot| *slot > schedule.floor()) else { continue };
            if let Some(first) = expr.first_after(schedule.floor()).filter(|first| *first < slot) {
                tracing::info!(
                    schedule = %schedule.id, name = %schedule.name, first_missed = %first, taken = %slot,
                    "missed slots of a schedule are skipped: only the most recent one is taken"
                );
            }
            due.push(DueImage {
                operation: schedule.slot_operation(slot),
                request: schedule.image_request(slot),
                slot,
                schedule,
            });
        }
        Ok(due)
    }

    /// Records `due.slot` as the schedule's last slot (a compare-and-set; a schedule already at
    /// or past the slot is left as it is, so a retry or another replica's call is `Ok`), then
    /// applies the schedule's retention to its own images ([`SCHEDULE_LABEL`]) through
    /// [`Toygres::expire`]. A schedule deleted meanwhile: `Ok`, nothing done.
    pub async fn schedule_fired(&self, due: &DueImage) -> Result<()> {
        let id = due.schedule.id;
        let mut advanced = false;
        for _ in 0..ADVANCE_ATTEMPTS {
            let current = match self.catalog.get_schedule(id).await {
                Ok(current) => current,
                Err(Error::ScheduleNotFound(_)) => {
                    tracing::debug!(schedule = %id, "schedule deleted before its slot was recorded");
                    return Ok(());
                }
                Err(e) => return Err(e),
            };
            if current.last_slot.is_some_and(|last| last >= due.slot) {
                advanced = true;
                break;
            }
            match self.catalog.advance_schedule(id, current.last_slot, due.slot).await {
                Ok(_) => {
                    advanced = true;
                    break;
                }
                Err(Error::StateConflict { .. }) => continue,
                Err(Error::ScheduleNotFound(_)) => return Ok(()),
                Err(e) => return Err(e),
            }
        }
        if !advanced {
            return Err(crate::catalog::schedule_conflict(id, due.schedule.last_slot, Some(due.slot)));
        }
        self.expire(&retention_of(&due.schedule), false).await.map(|_| ())
    }
}

/// The retention of `schedule` as a [`RetentionPolicy`] over its own images.
pub fn retention_of(schedule: &Schedule) -> RetentionPolicy {
    let mut policy = RetentionPolicy::for_source(schedule.instance_id)
        .keep_last(schedule.retention.keep_last as usize)
        .only_labelled(SCHEDULE_LABEL, schedule.id.to_string());
    if let Some(age) = schedule.retention.keep_younger_than {
        policy = policy.keep_younger_than(age);
    }
    policy
}
