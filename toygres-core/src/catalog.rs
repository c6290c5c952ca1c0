//! [`CatalogStore`]: the records of images and instances, with checked state transitions.

use crate::envelope::WrappedKey;
use crate::error::Result;
use crate::filter::InstanceFilter;
use crate::ids::{ImageId, InstanceId, OperationId, ScheduleId};
use crate::image::{ImageFilter, ImageRecord, ImageUpdate, NewImage};
use crate::instance::{InstanceRecord, InstanceUpdate, NewInstance};
use crate::labels::Labels;
use crate::progress::{StoredProgress, Subject};
use crate::schedule::{NewSchedule, Schedule};
use crate::secret::Password;
use crate::state::{ImageState, InstanceState};
use crate::wal::Protection;
use async_trait::async_trait;
use chrono::{DateTime, Utc};

/// The rule every [`CatalogStore`] applies when an operation id comes back: the request digest
/// kept with its record (`kept`) and the new request's (`new`) must be equal when both are known
/// ([`crate::NewImage::request_digest`]); otherwise [`crate::Error::OperationReused`].
pub fn check_request_digest(operation: OperationId, kept: Option<&str>, new: Option<&str>) -> Result<()> {
    match (kept, new) {
        (Some(kept), Some(new)) if kept != new => Err(crate::Error::OperationReused { operation }),
        _ => Ok(()),
    }
}

/// The catalog ("CMS") of images, instances and schedules, and the byte progress of their
/// operations.
///
/// Implementations must be safe to share between tasks and processes: every state change is an
/// atomic compare-and-set on the current state, checked against the lifecycle in [`crate::state`].
/// Passwords are stored sealed (see [`crate::crypto`]), never in plain text.
///
/// Errors: lookups of unknown or deleted records return [`crate::Error::ImageNotFound`] /
/// [`crate::Error::InstanceNotFound`]; a lost compare-and-set returns
/// [`crate::Error::StateConflict`]; a change the lifecycle forbids returns
/// [`crate::Error::InvalidTransition`] without touching the record.
#[cfg_attr(any(test, feature = "testing"), mockall::automock)]
#[async_trait]
pub trait CatalogStore: Send + Sync {
    /// Reserves a new image in state `creating`. Idempotent on `operation`: reserving again with
    /// the same operation id returns the record created the first time, whatever its state now
    /// (deleted included), unless both carry a [`NewImage::request_digest`] and the two differ:
    /// then [`crate::Error::OperationReused`], and nothing changes.
    async fn reserve_image(&self, operation: OperationId, image: &NewImage) -> Result<ImageRecord>;

    /// The image, unless unknown or deleted.
    async fn get_image(&self, id: ImageId) -> Result<ImageRecord>;

    /// Images passing `filter` (never deleted ones), oldest first (by `created_at`, then id),
    /// only those after `filter.page_token`, at most `filter.limit` of them.
    async fn list_images(&self, filter: &ImageFilter) -> Result<Vec<ImageRecord>>;

    /// Replaces the image's labels (validated by the caller). Unknown or deleted: `ImageNotFound`.
    async fn set_image_labels(&self, id: ImageId, labels: &Labels) -> Result<ImageRecord>;

    /// Moves the image from `expected` to `update.target_state()` atomically, applying the
    /// update's fields. Fails with `StateConflict` if the image is not in `expected`.
    async fn update_image(&self, id: ImageId, expected: ImageState, update: ImageUpdate) -> Result<ImageRecord>;

    /// Replaces the image's wrapped data key, if it is still `expected` (a compare-and-set, for
    /// key rotation: the image's bytes stay as they are). Another key now: `StateConflict`;
    /// unknown or deleted: `ImageNotFound`; a plaintext image: `InvalidRequest`.
    async fn rewrap_image_key(&self, id: ImageId, expected: &WrappedKey, new: &WrappedKey) -> Result<ImageRecord>;

    /// The source instance's password recorded with a ready image.
    /// Fails with `ImageNotReady` when the image has none (not ready yet, or deleted).
    async fn image_source_password(&self, id: ImageId) -> Result<Password>;

    /// Creates an instance record. Idempotent on `operation` like [`CatalogStore::reserve_image`]
    /// (the same record whatever its state; [`crate::Error::OperationReused`] when both carry a
    /// [`NewInstance::request_digest`] and the two differ); fails with `NameTaken` if another
    /// operation's instance (not deleted) has the same name.
    async fn create_instance(&self, operation: OperationId, instance: &NewInstance) -> Result<InstanceRecord>;

    /// The instance, unless unknown or deleted.
    async fn get_instance(&self, id: InstanceId) -> Result<InstanceRecord>;

    /// The instance (not deleted) with this name.
    async fn get_instance_by_name(&self, name: &str) -> Result<InstanceRecord>;

    /// Instances passing `filter` (never deleted ones), oldest first (by `created_at`, then id),
    /// only those after `filter.page_token`, at most `filter.limit` of them.
    async fn list_instances(&self, filter: &InstanceFilter) -> Result<Vec<InstanceRecord>>;

    /// Replaces the instance's labels (validated by the caller). Unknown or deleted: `InstanceNotFound`.
    async fn set_instance_labels(&self, id: InstanceId, labels: &Labels) -> Result<InstanceRecord>;

    /// Moves the instance from `expected` to `update.target_state()` atomically.
    async fn update_instance(
        &self,
        id: InstanceId,
        expected: InstanceState,
        update: InstanceUpdate,
    ) -> Result<InstanceRecord>;

    /// The instance's record whatever its state, `deleted` included (a deleted protected
    /// instance's WAL archive stays restorable). Unknown: `InstanceNotFound`.
    async fn get_instance_including_deleted(&self, id: InstanceId) -> Result<InstanceRecord>;

    /// Records (or, with `None`, forgets) the instance's continuous protection, whatever its
    /// state: a deleted instance keeps its archive's record. Unknown: `InstanceNotFound`.
    async fn set_instance_protection(&self, id: InstanceId, protection: Option<Protection>) -> Result<InstanceRecord>;

    /// The instance's superuser password.
    async fn instance_password(&self, id: InstanceId) -> Result<Password>;

    /// Records a schedule (validated by the caller; the catalog does not check that its instance
    /// exists). Idempotent on `operation` like [`CatalogStore::reserve_image`]: the same record
    /// whatever happened to it since (deleted included, with `deleted_at` set), or
    /// [`crate::Error::OperationReused`] when both carry a [`NewSchedule::request_digest`] and
    /// the two differ; [`crate::Error::ScheduleNameTaken`] if another operation's schedule (not
    /// deleted) has the same name.
    async fn create_schedule(&self, operation: OperationId, schedule: &NewSchedule) -> Result<Schedule>;

    /// The schedule, unless unknown or deleted ([`crate::Error::ScheduleNotFound`]).
    async fn get_schedule(&self, id: ScheduleId) -> Result<Schedule>;

    /// Every schedule that is not deleted, oldest first (by `created_at`, then id).
    async fn list_schedules(&self) -> Result<Vec<Schedule>>;

    /// Deletes the schedule (its images are not touched). Unknown or already deleted:
    /// [`crate::Error::ScheduleNotFound`].
    async fn delete_schedule(&self, id: ScheduleId) -> Result<()>;

    /// Sets the schedule's last slot to `new` if it is still `expected` (a compare-and-set:
    /// otherwise [`crate::Error::StateConflict`] with the actual last slot, nothing changed).
    /// Unknown or deleted: [`crate::Error::ScheduleNotFound`].
    async fn advance_schedule(
        &self,
        id: ScheduleId,
        expected: Option<DateTime<Utc>>,
        new: DateTime<Utc>,
    ) -> Result<Schedule>;

    /// Records (replacing what was recorded) the byte progress of the operation on `subject`.
    /// Its record must exist and not be deleted: otherwise [`crate::Error::ImageNotFound`] /
    /// [`crate::Error::InstanceNotFound`] and nothing is kept. Moving the record to `deleted`
    /// ([`CatalogStore::update_image`], [`CatalogStore::update_instance`]) removes it.
    async fn record_progress(&self, subject: Subject, progress: &StoredProgress) -> Result<()>;

    /// The byte progress last recorded for `subject` (`None`: none, or it was cleared).
    async fn get_progress(&self, subject: Subject) -> Result<Option<StoredProgress>>;

    /// Removes the byte progress of `subject` (none recorded: nothing to do).
    async fn clear_progress(&self, subject: Subject) -> Result<()>;
}

/// The [`crate::Error::StateConflict`] of a lost [`CatalogStore::advance_schedule`].
pub fn schedule_conflict(
    id: ScheduleId,
    expected: Option<DateTime<Utc>>,
    actual: Option<DateTime<Utc>>,
) -> crate::Error {
    let slot = |s: Option<DateTime<Utc>>| {
        s.map_or("at no slot yet".to_string(), |s| format!("at slot {}", crate::schedule::slot_text(s)))
    };
    crate::Error::StateConflict {
        entity: "schedule",
        id: id.to_string(),
        expected: slot(expected),
        actual: slot(actual),
    }
}
