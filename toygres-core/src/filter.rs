//! Which records a listing returns ([`ImageFilter`], [`InstanceFilter`]), and pages of them
//! ([`Page`], [`PageToken`]). Listings are ordered oldest first (`created_at`, then id), so that a
//! continuation token is simply the position of the last record returned.

use crate::error::{Error, Result};
use crate::ids::{ImageId, InstanceId};
use crate::image::ImageRecord;
use crate::instance::InstanceRecord;
use crate::labels::{has_all, Labels};
use crate::state::{ImageState, InstanceState};
use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use uuid::Uuid;

/// Most records one page holds, whatever limit is asked for.
pub const MAX_PAGE: usize = 1000;

/// Where a listing continues: after the record created at `created_at` with id `id`.
/// Opaque to callers (its text form is `<microseconds>.<uuid>`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(try_from = "String", into = "String")]
pub struct PageToken {
    /// `created_at` of the last record returned, in microseconds since the epoch.
    pub created_micros: i64,
    /// Its id.
    pub id: Uuid,
}

impl PageToken {
    /// The token that continues after a record created at `created_at` with id `id`.
    pub fn after(created_at: DateTime<Utc>, id: Uuid) -> Self {
        Self { created_micros: created_at.timestamp_micros(), id }
    }

    /// `created_at` of the last record returned.
    pub fn created_at(&self) -> DateTime<Utc> {
        DateTime::from_timestamp_micros(self.created_micros).unwrap_or_default()
    }

    /// Whether a record created at `created_at` with id `id` comes after this token.
    pub fn precedes(&self, created_at: DateTime<Utc>, id: Uuid) -> bool {
        (created_at.timestamp_micros(), id) > (self.created_micros, self.id)
    }
}

impl std::fmt::Display for PageToken {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}.{}", self.created_micros, self.id.simple())
    }
}

impl std::str::FromStr for PageToken {
    type Err = Error;
    fn from_str(s: &str) -> Result<Self> {
        let invalid = || Error::InvalidRequest {
            field: "page_token",
            reason: format!("{s:?} is not a token a listing returned; pass `next` of the previous page unchanged"),
        };
        let (micros, id) = s.split_once('.').ok_or_else(invalid)?;
        Ok(Self { created_micros: micros.parse().map_err(|_| invalid())?, id: id.parse().map_err(|_| invalid())? })
    }
}

impl TryFrom<String> for PageToken {
    type Error = Error;
    fn try_from(s: String) -> Result<Self> {
        s.parse()
    }
}

impl From<PageToken> for String {
    fn from(t: PageToken) -> String {
        t.to_string()
    }
}

/// One page of a listing.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[non_exhaustive]
pub struct Page<T> {
    /// The records, oldest first.
    pub items: Vec<T>,
    /// Pass this as the filter's `page_token` for the next page; `None` on the last page.
    pub next: Option<PageToken>,
}

impl<T> Page<T> {
    /// The page of `items` (fetched with a limit of `limit + 1`): at most `limit` of them, and a
    /// token when there were more. `position` gives a record's (created_at, id).
    pub fn from_overfetch(mut items: Vec<T>, limit: usize, position: impl Fn(&T) -> PageToken) -> Self {
        let next = if items.len() > limit {
            items.truncate(limit);
            items.last().map(position)
        } else {
            None
        };
        Self { items, next }
    }
}

/// The builder methods [`ImageFilter`] and [`InstanceFilter`] share: `new`, `state`, `name`,
/// `label`, `limit`, `after`.
macro_rules! filter_builders {
    ($filter:ident, $state:ty, $what:literal) => {
        impl $filter {
            #[doc = concat!("Every ", $what, " that is not deleted.")]
            pub fn new() -> Self {
                Self::default()
            }

            #[doc = concat!("Only ", $what, "s in `state`.")]
            pub fn state(mut self, state: $state) -> Self {
                self.state = Some(state);
                self
            }

            #[doc = concat!("Only the ", $what, "s named `name`.")]
            pub fn name(mut self, name: impl Into<String>) -> Self {
                self.name = Some(name.into());
                self
            }

            #[doc = concat!("Only ", $what, "s labelled `key=value` (calls add up: every label must match).")]
            pub fn label(mut self, key: impl Into<String>, value: impl Into<String>) -> Self {
                self.labels.insert(key.into(), value.into());
                self
            }

            #[doc = concat!("At most `limit` ", $what, "s.")]
            pub fn limit(mut self, limit: usize) -> Self {
                self.limit = Some(limit);
                self
            }

            /// Continue after `token`.
            pub fn after(mut self, token: Option<PageToken>) -> Self {
                self.page_token = token;
                self
            }
        }
    };
}

filter_builders!(ImageFilter, ImageState, "image");
filter_builders!(InstanceFilter, InstanceState, "instance");

/// Which images a listing returns. Deleted images are never listed. Build one with the methods:
/// `ImageFilter::new().source(id).state(ImageState::Ready).label("team", "a").limit(50)`.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[non_exhaustive]
pub struct ImageFilter {
    /// Only images of this source instance.
    #[serde(default)]
    pub source_instance_id: Option<InstanceId>,
    /// Only images in this state.
    #[serde(default)]
    pub state: Option<ImageState>,
    /// Only images with exactly this name.
    #[serde(default)]
    pub name: Option<String>,
    /// Only images carrying every one of these labels.
    #[serde(default)]
    pub labels: Labels,
    /// Only images after this position (a previous page's `next`).
    #[serde(default)]
    pub page_token: Option<PageToken>,
    /// At most this many images (catalogs: rows; [`crate::Toygres::list_images`]: a page,
    /// default and at most [`MAX_PAGE`]).
    #[serde(default)]
    pub limit: Option<usize>,
}

impl ImageFilter {
    /// Only images of `instance`.
    pub fn source(mut self, instance: InstanceId) -> Self {
        self.source_instance_id = Some(instance);
        self
    }

    /// Whether `record` passes every condition but the limit (in-memory catalogs and tests).
    pub fn matches(&self, record: &ImageRecord) -> bool {
        record.state != ImageState::Deleted
            && self.source_instance_id.is_none_or(|i| i == record.source_instance_id)
            && self.state.is_none_or(|s| s == record.state)
            && self.name.as_ref().is_none_or(|n| *n == record.name)
            && has_all(&record.labels, &self.labels)
            && self.page_token.is_none_or(|t| t.precedes(record.created_at, record.id.0))
    }
}

/// Which instances a listing returns. Deleted instances are never listed. Built like [`ImageFilter`].
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[non_exhaustive]
pub struct InstanceFilter {
    /// Only instances restored from this image.
    #[serde(default)]
    pub source_image_id: Option<ImageId>,
    /// Only instances in this state.
    #[serde(default)]
    pub state: Option<InstanceState>,
    /// Only the instance with this name.
    #[serde(default)]
    pub name: Option<String>,
    /// Only instances carrying every one of these labels.
    #[serde(default)]
    pub labels: Labels,
    /// Only instances after this position (a previous page's `next`).
    #[serde(default)]
    pub page_token: Option<PageToken>,
    /// At most this many instances.
    #[serde(default)]
    pub limit: Option<usize>,
}

impl InstanceFilter {
    /// Only instances restored from `image`.
    pub fn source_image(mut self, image: ImageId) -> Self {
        self.source_image_id = Some(image);
        self
    }

    /// Whether `record` passes every condition but the limit (in-memory catalogs and tests).
    pub fn matches(&self, record: &InstanceRecord) -> bool {
        record.state != InstanceState::Deleted
            && self.source_image_id.is_none_or(|i| Some(i) == record.source_image_id)
            && self.state.is_none_or(|s| s == record.state)
            && self.name.as_ref().is_none_or(|n| *n == record.name)
            && has_all(&record.labels, &self.labels)
            && self.page_token.is_none_or(|t| t.precedes(record.created_at, record.id.0))
    }
}

/// Applies `limit` (if any) after sorting `records` oldest first (in-memory catalogs).
pub fn sort_and_limit<T>(mut records: Vec<T>, limit: Option<usize>, position: impl Fn(&T) -> PageToken) -> Vec<T> {
    records.sort_by_key(|r| position(r));
    if let Some(limit) = limit {
        records.truncate(limit);
    }
    records
}
