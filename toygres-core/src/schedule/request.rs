//! [`CreateScheduleRequest`] and its validation, which runs before anything is created.

use super::{CronExpr, NewSchedule, ScheduleRetention};
use crate::domain::ImageFormat;
use crate::error::{Error, Result};
use crate::ids::InstanceId;
use crate::request::{digest_of, validate_dns1123_label};
use serde::{Deserialize, Serialize};
use std::time::Duration;

/// Longest schedule name: its images are named `<name>-<yyyymmdd>t<hhmm>`, which must stay a
/// DNS-1123 label (63 characters).
pub const MAX_SCHEDULE_NAME: usize = 63 - "-20261205t0300".len();
/// `keep_last` when a request leaves it out.
pub const DEFAULT_KEEP_LAST: u32 = 7;
/// Largest `keep_last`.
pub const MAX_KEEP_LAST: u32 = 10_000;
/// Longest `keep_younger_than`: 100 years.
pub const MAX_KEEP_YOUNGER_THAN: Duration = Duration::from_secs(100 * 366 * 24 * 3600);

fn default_keep_last() -> u32 {
    DEFAULT_KEEP_LAST
}

/// `POST /api/schedules`: take images of an instance on a cron schedule.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[non_exhaustive]
pub struct CreateScheduleRequest {
    /// Schedule name: a DNS-1123 label of at most [`MAX_SCHEDULE_NAME`] characters.
    pub name: String,
    /// The instance to image (it must exist; it must be running when a slot comes).
    pub instance_id: InstanceId,
    /// When: 5 cron fields in UTC ([`super::cron`]).
    pub cron: String,
    /// The format of its images (default logical).
    #[serde(default)]
    pub format: ImageFormat,
    /// Keep the newest N ready images (1 to [`MAX_KEEP_LAST`], default [`DEFAULT_KEEP_LAST`]).
    #[serde(default = "default_keep_last")]
    pub keep_last: u32,
    /// Also keep images younger than this (at most [`MAX_KEEP_YOUNGER_THAN`]).
    #[serde(default)]
    pub keep_younger_than: Option<Duration>,
}

impl CreateScheduleRequest {
    /// A schedule named `name` imaging `instance` at `cron`, logical, keeping the newest
    /// [`DEFAULT_KEEP_LAST`] images.
    pub fn new(name: impl Into<String>, instance: InstanceId, cron: impl Into<String>) -> Self {
        Self {
            name: name.into(),
            instance_id: instance,
            cron: cron.into(),
            format: ImageFormat::Logical,
            keep_last: DEFAULT_KEEP_LAST,
            keep_younger_than: None,
        }
    }

    /// Its images in `format`.
    pub fn with_format(mut self, format: ImageFormat) -> Self {
        self.format = format;
        self
    }

    /// Keep the newest `n` ready images.
    pub fn with_keep_last(mut self, n: u32) -> Self {
        self.keep_last = n;
        self
    }

    /// Also keep images younger than `age`.
    pub fn with_keep_younger_than(mut self, age: Duration) -> Self {
        self.keep_younger_than = Some(age);
        self
    }

    /// The digest kept with the schedule ([`NewSchedule::request_digest`]).
    pub fn digest(&self) -> String {
        digest_of("schedule", self)
    }

    /// Validates every field; nothing is created when this fails ([`Error::InvalidRequest`]
    /// naming the field).
    pub fn validate(&self) -> Result<()> {
        validate_dns1123_label("name", &self.name)?;
        if self.name.len() > MAX_SCHEDULE_NAME {
            return Err(Error::InvalidRequest {
                field: "name",
                reason: format!(
                    "{:?} is longer than {MAX_SCHEDULE_NAME} characters: its images are named \
                     `<name>-<yyyymmdd>t<hhmm>`, which must stay within 63",
                    self.name
                ),
            });
        }
        CronExpr::parse(&self.cron)?;
        if !(1..=MAX_KEEP_LAST).contains(&self.keep_last) {
            return Err(Error::InvalidRequest {
                field: "keep_last",
                reason: format!("{} is not allowed: keep between 1 and {MAX_KEEP_LAST} images", self.keep_last),
            });
        }
        if self.keep_younger_than.is_some_and(|age| age > MAX_KEEP_YOUNGER_THAN) {
            return Err(Error::InvalidRequest {
                field: "keep_younger_than",
                reason: format!("longer than {} seconds (100 years)", MAX_KEEP_YOUNGER_THAN.as_secs()),
            });
        }
        Ok(())
    }

    /// The validated request as the catalog records it, bound to its digest.
    pub fn to_new(&self) -> Result<NewSchedule> {
        self.validate()?;
        Ok(NewSchedule {
            name: self.name.clone(),
            instance_id: self.instance_id,
            cron: self.cron.trim().to_string(),
            format: self.format,
            retention: ScheduleRetention { keep_last: self.keep_last, keep_younger_than: self.keep_younger_than },
            request_digest: Some(self.digest()),
        })
    }
}
