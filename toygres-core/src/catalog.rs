//! [`CatalogStore`]: the records of images and instances, with checked state transitions.

use crate::envelope::WrappedKey;
use crate::error::Result;
use crate::filter::InstanceFilter;
use crate::ids::{ImageId, InstanceId, OperationId};
use crate::image::{ImageFilter, ImageRecord, ImageUpdate, NewImage};
use crate::instance::{InstanceRecord, InstanceUpdate, NewInstance};
use crate::labels::Labels;
use crate::secret::Password;
use crate::state::{ImageState, InstanceState};
use async_trait::async_trait;

/// The rule every [`CatalogStore`] applies when an operation id comes back: the request digest
/// kept with its record (`kept`) and the new request's (`new`) must be equal when both are known
/// ([`crate::NewImage::request_digest`]); otherwise [`crate::Error::OperationReused`].
pub fn check_request_digest(operation: OperationId, kept: Option<&str>, new: Option<&str>) -> Result<()> {
    match (kept, new) {
        (Some(kept), Some(new)) if kept != new => Err(crate::Error::OperationReused { operation }),
        _ => Ok(()),
    }
}

/// The catalog ("CMS") of images and instances.
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

    /// The instance's superuser password.
    async fn instance_password(&self, id: InstanceId) -> Result<Password>;
}
