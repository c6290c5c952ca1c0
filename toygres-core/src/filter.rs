//! Which records a listing returns ([`ImageFilter`], [`InstanceFilter`]), and pages of them
//! ([`Page`], [`PageToken`]). Listings are ordered oldest first (`created_at`, then id), so that a
//! continuation token is simply the position of the last record returned.

use crate::ids::{ImageId, InstanceId};
use crate::labels::Labels;
use crate::state::{ImageState, InstanceState};
use serde::{Deserialize, Serialize};

pub use crate::domain::PageToken;

/// Most records one page holds, whatever limit is asked for.
pub const MAX_PAGE: usize = 1000;

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
}

/// Applies `limit` (if any) after sorting `records` oldest first (in-memory catalogs).
pub fn sort_and_limit<T>(mut records: Vec<T>, limit: Option<usize>, position: impl Fn(&T) -> PageToken) -> Vec<T> {
    records.sort_by_key(|r| position(r));
    if let Some(limit) = limit {
        records.truncate(limit);
    }
    records
}
