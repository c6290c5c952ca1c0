//! Schedules: images of an instance taken on a cron schedule, with retention (like
//! CloudNativePG's `ScheduledBackup`).
//!
//! A [`Schedule`] names an instance, a [cron expression](cron) in UTC, the image format and how
//! many of its images to keep. Nothing in the library runs on a timer: a control plane calls
//! [`crate::Toygres::due_schedule_images`] every few seconds (on any replica; every step is
//! idempotent), takes each [`crate::pipeline::DueImage`] it returns under its deterministic
//! operation id, then calls [`crate::Toygres::schedule_fired`], which records the slot as taken
//! and applies the schedule's retention to the images it made.
//!
//! **Slots.** A slot is a minute the cron expression names. A schedule is due at `now` when the
//! latest slot at or before `now` is later than both its last taken slot and its creation.
//!
//! **Missed slots.** After downtime (or a sweeper that stopped for a while), only the **most
//! recent** missed slot is taken; the earlier ones are skipped (and logged), so a control plane
//! that was down for a day takes one image, not one per missed hour.

pub mod cron;
mod request;

pub use cron::CronExpr;
pub use request::{CreateScheduleRequest, DEFAULT_KEEP_LAST, MAX_KEEP_LAST, MAX_KEEP_YOUNGER_THAN, MAX_SCHEDULE_NAME};

use crate::domain::{ImageFormat, PageToken};
use crate::error::Result;
use crate::ids::{InstanceId, OperationId, ScheduleId};
use crate::request::CreateImageRequest;
use chrono::{DateTime, SecondsFormat, Utc};
use serde::{Deserialize, Serialize};
use std::time::Duration;

/// The label every scheduled image carries: the id of the schedule that made it. Retention of a
/// schedule covers only the images with its id here.
pub const SCHEDULE_LABEL: &str = "toygres.io/schedule";
/// The label every scheduled image carries: its slot (RFC 3339, UTC, e.g. `2026-12-05T03:00:00Z`).
pub const SLOT_LABEL: &str = "toygres.io/slot";

/// Which of a schedule's images to keep: the newest `keep_last` ready ones, and (if set) every
/// one younger than `keep_younger_than`. Failed images no rule keeps are removed too.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[non_exhaustive]
pub struct ScheduleRetention {
    /// Keep the newest N ready images (at least 1).
    pub keep_last: u32,
    /// Also keep every image younger than this.
    #[serde(default)]
    pub keep_younger_than: Option<Duration>,
}

impl ScheduleRetention {
    /// Keep the newest `keep_last` ready images.
    pub fn keep_last(keep_last: u32) -> Self {
        Self { keep_last, keep_younger_than: None }
    }

    /// Also keep images younger than `age`.
    pub fn with_keep_younger_than(mut self, age: Duration) -> Self {
        self.keep_younger_than = Some(age);
        self
    }
}

/// What a catalog needs to record a schedule ([`crate::CatalogStore::create_schedule`]); built
/// by [`CreateScheduleRequest::to_new`] after validation.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[non_exhaustive]
pub struct NewSchedule {
    /// Validated name (a DNS-1123 label of at most [`MAX_SCHEDULE_NAME`] characters).
    pub name: String,
    /// The instance to image.
    pub instance_id: InstanceId,
    /// Validated cron expression ([`CronExpr`]).
    pub cron: String,
    /// The format of its images.
    pub format: ImageFormat,
    /// Which of its images to keep.
    pub retention: ScheduleRetention,
    /// The digest of the request ([`CreateScheduleRequest::digest`]); another digest under the
    /// same operation is refused ([`crate::Error::OperationReused`]). `None` checks nothing.
    #[serde(default)]
    pub request_digest: Option<String>,
}

impl NewSchedule {
    /// A schedule named `name` imaging `instance` at `cron`, without any check: logical images,
    /// keeping the newest [`DEFAULT_KEEP_LAST`], no digest. Catalogs use it to read rows back;
    /// callers build one with [`CreateScheduleRequest::to_new`], which validates.
    pub fn unchecked(name: impl Into<String>, instance: InstanceId, cron: impl Into<String>) -> Self {
        Self {
            name: name.into(),
            instance_id: instance,
            cron: cron.into(),
            format: ImageFormat::Logical,
            retention: ScheduleRetention::keep_last(DEFAULT_KEEP_LAST),
            request_digest: None,
        }
    }
}

/// A schedule as the catalog records it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[non_exhaustive]
pub struct Schedule {
    /// Its id; its images carry it in the [`SCHEDULE_LABEL`] label.
    pub id: ScheduleId,
    /// The operation that created it.
    pub operation_id: OperationId,
    /// Its name; its images are named `<name>-<yyyymmdd>t<hhmm>` after their slot.
    pub name: String,
    /// The instance it images.
    pub instance_id: InstanceId,
    /// The cron expression (5 fields, UTC; see [`cron`]).
    pub cron: String,
    /// The format of its images.
    pub format: ImageFormat,
    /// Which of its images to keep.
    pub retention: ScheduleRetention,
    /// When it was created; no slot before it is ever taken.
    pub created_at: DateTime<Utc>,
    /// The last slot taken ([`crate::CatalogStore::advance_schedule`]); `None` before the first.
    pub last_slot: Option<DateTime<Utc>>,
    /// When it was deleted (only a catalog's idempotent `create_schedule` returns a deleted one).
    #[serde(default)]
    pub deleted_at: Option<DateTime<Utc>>,
}

impl Schedule {
    /// A just-created schedule, as catalogs build it.
    pub fn created(id: ScheduleId, operation_id: OperationId, new: &NewSchedule, created_at: DateTime<Utc>) -> Self {
        Self {
            id,
            operation_id,
            name: new.name.clone(),
            instance_id: new.instance_id,
            cron: new.cron.clone(),
            format: new.format,
            retention: new.retention,
            created_at,
            last_slot: None,
            deleted_at: None,
        }
    }

    /// Its position in listings (oldest first).
    pub fn page_token(&self) -> PageToken {
        PageToken::after(self.created_at, self.id.0)
    }

    /// Its parsed cron expression.
    pub fn cron_expr(&self) -> Result<CronExpr> {
        CronExpr::parse(&self.cron)
    }

    /// No slot at or before this is due: the last slot taken, or the creation time.
    pub fn floor(&self) -> DateTime<Utc> {
        self.last_slot.map_or(self.created_at, |last| last.max(self.created_at))
    }

    /// The slot due at `now`: the latest slot at or before `now`, if it is after
    /// [`Schedule::floor`]. Earlier slots after the floor (missed while nothing ran) are skipped.
    pub fn due_slot(&self, now: DateTime<Utc>) -> Result<Option<DateTime<Utc>>> {
        let latest = self.cron_expr()?.latest_at_or_before(now);
        Ok(latest.filter(|slot| *slot > self.floor()))
    }

    /// The next slot that will be taken after `now`: the first slot after both `now` and
    /// [`Schedule::floor`] (`None`: none within the search limit, or an unreadable expression).
    pub fn next_run_after(&self, now: DateTime<Utc>) -> Option<DateTime<Utc>> {
        self.cron_expr().ok()?.first_after(now.max(self.floor()))
    }

    /// The operation id of the image of `slot`: a name-based UUID (version 8, from SHA-256 of
    /// the schedule id and the slot), the same on every replica and every retry.
    pub fn slot_operation(&self, slot: DateTime<Utc>) -> OperationId {
        use sha2::{Digest, Sha256};
        let name = format!("toygres-schedule-slot/v1:{}:{}", self.id, slot.timestamp());
        let digest = Sha256::digest(name.as_bytes());
        let mut bytes = [0u8; 16];
        bytes.copy_from_slice(&digest[..16]);
        OperationId(uuid::Builder::from_custom_bytes(bytes).into_uuid())
    }

    /// The image request of `slot`: named `<name>-<yyyymmdd>t<hhmm>` (lower-case `t`: image
    /// names are DNS-1123 labels), labelled [`SCHEDULE_LABEL`] and [`SLOT_LABEL`], in the
    /// schedule's format.
    pub fn image_request(&self, slot: DateTime<Utc>) -> CreateImageRequest {
        let mut request =
            CreateImageRequest::new(format!("{}-{}", self.name, slot.format("%Y%m%dt%H%M")), self.instance_id)
                .with_description(format!(
                    "taken by schedule {} ({}) for the slot {}",
                    self.name,
                    self.cron,
                    slot_text(slot)
                ))
                .with_label(SCHEDULE_LABEL, self.id.to_string())
                .with_label(SLOT_LABEL, slot_text(slot));
        request.format = self.format;
        request
    }
}

/// A slot as its label spells it: RFC 3339, UTC, whole seconds.
pub fn slot_text(slot: DateTime<Utc>) -> String {
    slot.to_rfc3339_opts(SecondsFormat::Secs, true)
}

#[cfg(test)]
mod tests;
