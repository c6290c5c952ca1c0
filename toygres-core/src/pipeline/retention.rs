//! Retention: which images of a source instance to keep, and [`Toygres::expire`], which deletes
//! the rest (records and blobs) — never an image a restore is still reading.

use super::Toygres;
use crate::error::{Error, Result};
use crate::filter::InstanceFilter;
use crate::ids::{ImageId, InstanceId};
use crate::image::{ImageFilter, ImageRecord};
use crate::labels::{has_all, validate_labels, Labels};
use crate::state::{ImageState, InstanceState};
use chrono::Utc;
use serde::{Deserialize, Serialize};
use std::collections::BTreeSet;
use std::time::Duration;

/// Which images of one source instance to keep. An image is kept when **any** rule keeps it;
/// `ready` and `failed` images no rule keeps expire. Images still `creating` or `deleting` are
/// never touched, and neither is an image a `provisioning` instance is being restored from.
/// With [`RetentionPolicy::only_labelled`] the policy covers only the source's images carrying
/// those labels (a schedule's retention covers only its own images); the others are untouched
/// and do not count towards `keep_last`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[non_exhaustive]
pub struct RetentionPolicy {
    /// The source instance whose images the policy covers.
    pub source_instance_id: InstanceId,
    /// Keep the newest N `ready` images.
    #[serde(default)]
    pub keep_last: Option<usize>,
    /// Keep images created less than this long ago.
    #[serde(default)]
    pub keep_younger_than: Option<Duration>,
    /// Keep images carrying every one of these labels (ignored when empty).
    #[serde(default)]
    pub keep_labelled: Labels,
    /// Cover only images carrying every one of these labels (empty: every image of the source).
    #[serde(default)]
    pub only_labelled: Labels,
}

impl RetentionPolicy {
    /// A policy for the images of `source` that keeps nothing yet: add rules with the methods.
    pub fn for_source(source: InstanceId) -> Self {
        Self {
            source_instance_id: source,
            keep_last: None,
            keep_younger_than: None,
            keep_labelled: Labels::new(),
            only_labelled: Labels::new(),
        }
    }

    /// Keep the newest `n` ready images.
    pub fn keep_last(mut self, n: usize) -> Self {
        self.keep_last = Some(n);
        self
    }

    /// Keep images younger than `age`.
    pub fn keep_younger_than(mut self, age: Duration) -> Self {
        self.keep_younger_than = Some(age);
        self
    }

    /// Keep images labelled `key=value` (calls add up: an image needs every label).
    pub fn keep_labelled(mut self, key: impl Into<String>, value: impl Into<String>) -> Self {
        self.keep_labelled.insert(key.into(), value.into());
        self
    }

    /// Cover only the images labelled `key=value` (calls add up: an image needs every label);
    /// the source's other images are neither expired nor counted.
    pub fn only_labelled(mut self, key: impl Into<String>, value: impl Into<String>) -> Self {
        self.only_labelled.insert(key.into(), value.into());
        self
    }

    /// A policy without any rule would expire every image: refused.
    fn validate(&self) -> Result<()> {
        if self.keep_last.is_none() && self.keep_younger_than.is_none() && self.keep_labelled.is_empty() {
            return Err(Error::InvalidRequest {
                field: "policy",
                reason: "it keeps nothing (no keep_last, keep_younger_than or keep_labelled); \
                         delete images one by one to remove them all"
                    .into(),
            });
        }
        validate_labels(&self.keep_labelled)?;
        validate_labels(&self.only_labelled)
    }

    /// The images of `images` (all of the source's, oldest first) the policy covers and does
    /// not keep.
    pub fn expired<'a>(&self, images: &'a [ImageRecord]) -> Vec<&'a ImageRecord> {
        let covered: Vec<&ImageRecord> = images.iter().filter(|i| has_all(&i.labels, &self.only_labelled)).collect();
        let newest_ready: BTreeSet<ImageId> = match self.keep_last {
            Some(n) => covered.iter().rev().filter(|i| i.state == ImageState::Ready).take(n).map(|i| i.id).collect(),
            None => BTreeSet::new(),
        };
        let now = Utc::now();
        covered
            .into_iter()
            .filter(|i| matches!(i.state, ImageState::Ready | ImageState::Failed))
            .filter(|i| !newest_ready.contains(&i.id))
            .filter(|i| {
                self.keep_younger_than
                    .is_none_or(|age| now.signed_duration_since(i.created_at).to_std().unwrap_or_default() >= age)
            })
            .filter(|i| self.keep_labelled.is_empty() || !has_all(&i.labels, &self.keep_labelled))
            .collect()
    }
}

/// What [`Toygres::expire`] deleted (or, in a dry run, would delete).
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[non_exhaustive]
pub struct ExpireReport {
    /// Images deleted (dry run: that would be deleted), oldest first.
    pub deleted: Vec<ImageId>,
    /// Images the policy would expire but a running restore still reads: kept for now.
    pub in_use: Vec<ImageId>,
    /// Whether this was a dry run (nothing was deleted).
    pub dry_run: bool,
}

impl Toygres {
    /// Deletes the images of `policy.source_instance_id` that the policy does not keep (their blobs,
    /// then their records), except images a `provisioning` instance is restored from. With
    /// `dry_run`, deletes nothing and reports what it would delete. Safe to run on several
    /// replicas at once: an image another caller deleted (or is deleting) meanwhile counts as
    /// deleted.
    pub async fn expire(&self, policy: &RetentionPolicy, dry_run: bool) -> Result<ExpireReport> {
        policy.validate()?;
        let images = self.catalog.list_images(&ImageFilter::new().source(policy.source_instance_id)).await?;
        let restoring = self.catalog.list_instances(&InstanceFilter::new().state(InstanceState::Provisioning)).await?;
        let busy: BTreeSet<ImageId> = restoring.iter().filter_map(|i| i.source_image_id).collect();
        let mut report = ExpireReport { dry_run, ..ExpireReport::default() };
        for image in policy.expired(&images) {
            if busy.contains(&image.id) {
                report.in_use.push(image.id);
                continue;
            }
            if !dry_run {
                match self.delete_image(image.id).await {
                    Ok(()) | Err(Error::ImageNotFound(_)) => {}
                    // Another caller moved it to `deleting` first: it finishes the deletion.
                    Err(Error::StateConflict { .. }) => {}
                    Err(e) => return Err(e),
                }
            }
            report.deleted.push(image.id);
        }
        Ok(report)
    }
}
