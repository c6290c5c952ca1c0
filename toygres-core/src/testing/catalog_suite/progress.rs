//! Conformance properties of byte progress: recorded per subject (replaced by the next
//! record), read back, cleared, and removed with its record.

use super::{new_image, new_instance, ok, ready_update};
use crate::catalog::CatalogStore;
use crate::error::Error;
use crate::ids::{ImageId, InstanceId, OperationId};
use crate::image::ImageUpdate;
use crate::instance::InstanceUpdate;
use crate::progress::{Phase, StoredProgress, Subject};
use crate::state::{ImageState, InstanceState};
use chrono::{DateTime, Utc};
use std::sync::Arc;

fn at(text: &str) -> DateTime<Utc> {
    text.parse().unwrap()
}

/// Progress of an image and of an instance round-trips, the next record replaces it, and
/// clearing removes it; an unknown subject reads as none and cannot be recorded
/// ([`Error::ImageNotFound`] / [`Error::InstanceNotFound`]).
pub async fn progress_is_recorded_replaced_and_cleared<C: CatalogStore + ?Sized + 'static>(catalog: Arc<C>) {
    let image = ok(catalog.reserve_image(OperationId::new(), &new_image(InstanceId::new(), "p")).await, "reserve");
    let new = new_instance("p", InstanceState::Provisioning, "pw");
    let instance = ok(catalog.create_instance(OperationId::new(), &new).await, "create");
    let (of_image, of_instance) = (Subject::Image(image.id), Subject::Instance(instance.id));
    assert_eq!(ok(catalog.get_progress(of_image).await, "none yet"), None);

    let first = StoredProgress::new(Phase::BackupJob, 1024, None, at("2026-12-05T03:00:00.123456Z"));
    ok(catalog.record_progress(of_image, &first).await, "record");
    assert_eq!(ok(catalog.get_progress(of_image).await, "read"), Some(first.clone()));
    let big = 9_000_000_000_000u64;
    let second = StoredProgress::new(Phase::MarkReady, big, Some(big + 1), at("2026-12-05T03:00:05Z"));
    ok(catalog.record_progress(of_image, &second).await, "replace");
    assert_eq!(ok(catalog.get_progress(of_image).await, "read"), Some(second.clone()), "replaced");

    let restore = StoredProgress::new(Phase::WaitRestoreJob, 0, Some(10), at("2026-12-05T03:01:00Z"));
    ok(catalog.record_progress(of_instance, &restore).await, "record an instance's");
    assert_eq!(ok(catalog.get_progress(of_instance).await, "read"), Some(restore), "kept apart from the image's");
    assert_eq!(ok(catalog.get_progress(of_image).await, "read"), Some(second));

    ok(catalog.clear_progress(of_image).await, "clear");
    assert_eq!(ok(catalog.get_progress(of_image).await, "cleared"), None);
    ok(catalog.clear_progress(of_image).await, "clear again: nothing to do");
    assert!(ok(catalog.get_progress(of_instance).await, "read").is_some(), "the other subject's stays");

    let unknown = (Subject::Image(ImageId::new()), Subject::Instance(InstanceId::new()));
    assert_eq!(ok(catalog.get_progress(unknown.0).await, "unknown"), None);
    expect_err!(catalog.record_progress(unknown.0, &first).await, Error::ImageNotFound(_), "unknown image");
    expect_err!(catalog.record_progress(unknown.1, &first).await, Error::InstanceNotFound(_), "unknown instance");
    assert_eq!(ok(catalog.get_progress(unknown.1).await, "nothing kept"), None);
}

/// Moving an image or an instance to `deleted` removes its progress, and a deleted record's
/// progress cannot be recorded again.
pub async fn progress_goes_with_its_record<C: CatalogStore + ?Sized + 'static>(catalog: Arc<C>) {
    let image = ok(catalog.reserve_image(OperationId::new(), &new_image(InstanceId::new(), "g")).await, "reserve");
    let new = new_instance("g", InstanceState::Provisioning, "pw");
    let instance = ok(catalog.create_instance(OperationId::new(), &new).await, "create");
    let (of_image, of_instance) = (Subject::Image(image.id), Subject::Instance(instance.id));
    let progress = StoredProgress::new(Phase::BackupJob, 7, Some(8), at("2026-12-05T03:00:00Z"));
    ok(catalog.record_progress(of_image, &progress).await, "record");
    ok(catalog.record_progress(of_instance, &progress).await, "record");

    ok(catalog.update_image(image.id, ImageState::Creating, ready_update("pw")).await, "ready");
    assert!(ok(catalog.get_progress(of_image).await, "read").is_some(), "only deletion removes it");
    ok(catalog.update_image(image.id, ImageState::Ready, ImageUpdate::Deleting).await, "deleting");
    ok(catalog.update_image(image.id, ImageState::Deleting, ImageUpdate::Deleted).await, "deleted");
    assert_eq!(ok(catalog.get_progress(of_image).await, "read"), None, "removed with the image");
    expect_err!(catalog.record_progress(of_image, &progress).await, Error::ImageNotFound(_), "a deleted image");

    let failed = InstanceUpdate::Failed { reason: "x".into() };
    ok(catalog.update_instance(instance.id, InstanceState::Provisioning, failed).await, "failed");
    ok(catalog.update_instance(instance.id, InstanceState::Failed, InstanceUpdate::Deleting).await, "deleting");
    ok(catalog.update_instance(instance.id, InstanceState::Deleting, InstanceUpdate::Deleted).await, "deleted");
    assert_eq!(ok(catalog.get_progress(of_instance).await, "read"), None, "removed with the instance");
    expect_err!(catalog.record_progress(of_instance, &progress).await, Error::InstanceNotFound(_), "deleted");
}
