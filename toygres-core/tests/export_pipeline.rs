//! Exports of clone images ([`CreateImageRequest::export`]) through the backup pipeline, against
//! the in-memory catalog and blob store with a mocked executor: what the job is given (the clone
//! image to read, its checksum and key, the clone image's password and type), that the source
//! instance need not be running, and every admission refusal (the clone image is verified and
//! checked by the executor as for a restore), each recording nothing.

mod support;

use futures::executor::block_on;
use support::*;
use toygres_core::testing::MockClusterExecutor;
use toygres_core::*;

/// The clone image's source password (the instance's may have changed since it was taken).
const CLONE_PW: &str = "clone-pw-Kq27-secret";

/// A ready image of `source` in `format`, with [`CLONE_PW`] and type `pg_durable`, its data key
/// wrapped under the fixture's keys.
async fn ready(fx: &Fixture, source: InstanceId, format: ImageFormat) -> ImageRecord {
    let id = ImageId::new();
    let mut new = NewImage::new("clone", source).with_format(format);
    new.id = Some(id);
    let key = envelope::DataKey::generate();
    new.encryption = Some(envelope::KeyProvider::wrap(&*fx.keys, id, &key).await.unwrap());
    let image = fx.catalog.reserve_image(OperationId::new(), &new).await.unwrap();
    let (checksum, size_bytes) = fx.write_image(id, ImageType::PgDurable).await;
    let update = ImageUpdate::Ready {
        size_bytes,
        checksum,
        pg_version: "15.18".into(),
        image_type: ImageType::PgDurable,
        source_password: Password::new(CLONE_PW),
        metadata: None,
    };
    fx.catalog.update_image(image.id, ImageState::Creating, update).await.unwrap()
}

/// An executor whose backup job checks that it exports `clone` (checksum, key, password, type)
/// and writes a valid image, or fails its wait when `fail`. `check_source` is not expected: an
/// export never asks about the instance.
fn exporting_executor(fx: &Fixture, clone: &ImageRecord, fail: bool) -> MockClusterExecutor {
    let (blobs, keys, clone) = (fx.blobs.clone(), fx.keys.clone(), clone.clone());
    let mut ex = MockClusterExecutor::new();
    let readable = clone.id;
    ex.expect_verifies_while_restoring().return_const(false);
    ex.expect_check_restorable().times(1).returning(move |manifest| {
        assert_eq!(manifest.image_id, readable, "the clone image is checked as a restore checks it");
        Ok(())
    });
    ex.expect_check_export().times(1).returning(move |id| {
        assert_eq!(id, readable, "the executor is asked whether it can export this clone image");
        Ok(())
    });
    ex.expect_start_backup_job().returning(move |spec| {
        let from = spec.from_image.as_ref().expect("an export names the clone image it reads");
        assert_eq!((from.image_id, Some(&from.checksum)), (clone.id, clone.checksum.as_ref()));
        let wrapped = clone.encryption.as_ref().unwrap();
        let key = block_on(envelope::KeyProvider::unwrap(&*keys, clone.id, wrapped)).unwrap();
        assert_eq!(from.data_key.as_ref(), Some(&key), "the clone image's own key opens it");
        assert_ne!(spec.data_key.as_ref(), Some(&key), "the export has a key of its own");
        assert_eq!(spec.source_password.expose(), CLONE_PW, "the clone image's password");
        assert_eq!((spec.format, spec.image_type), (ImageFormat::Physical, ImageType::PgDurable));
        block_on(write_image(&blobs, spec.image_id, spec.image_type, spec.data_key.as_ref()));
        Ok(JobRef::backup(spec.image_id))
    });
    ex.expect_wait_for_job().returning(move |job, _, _| match fail {
        true => Err(Error::JobFailed { job: job.name.clone(), reason: "exit 1".into(), logs: "sha256 differs".into() }),
        false => Ok(()),
    });
    ex.expect_delete_job().returning(|_| Ok(()));
    let kept = clone.id;
    ex.expect_delete_image().returning(move |id| {
        assert_ne!(id, kept, "a failed export never removes the clone image's data");
        Ok(())
    });
    ex
}

/// Moves the fixture's source out of `running`: into `deleting`, or on to `deleted`.
async fn stop_source(fx: &Fixture, gone: bool) {
    let id = fx.source.id;
    fx.catalog.update_instance(id, InstanceState::Running, InstanceUpdate::Deleting).await.unwrap();
    if gone {
        fx.catalog.update_instance(id, InstanceState::Deleting, InstanceUpdate::Deleted).await.unwrap();
    }
}

#[tokio::test]
async fn an_export_reads_the_clone_image_with_its_password_and_type_while_the_source_is_down() {
    for gone in [false, true] {
        let fx = fixture(ImageType::Stock).await;
        let clone = ready(&fx, fx.source.id, ImageFormat::Clone).await;
        stop_source(&fx, gone).await;
        let t = fx.toygres(exporting_executor(&fx, &clone, false));
        let request = CreateImageRequest::export("exported", fx.source.id, clone.id);
        let image = t.create_image(OperationId::new(), request).await.unwrap();

        assert_eq!(
            (image.state, image.format, image.from_image),
            (ImageState::Ready, ImageFormat::Physical, Some(clone.id))
        );
        assert_eq!(image.image_type, ImageType::PgDurable, "the clone image's type, not the instance's");
        assert_eq!(fx.catalog.image_source_password(image.id).await.unwrap().expose(), CLONE_PW);
        assert_eq!(fx.catalog.get_image(clone.id).await.unwrap(), clone, "the clone image is untouched");
    }
}

#[tokio::test]
async fn a_failed_export_is_failed_and_leaves_the_clone_image_as_it_was() {
    let fx = fixture(ImageType::Stock).await;
    let clone = ready(&fx, fx.source.id, ImageFormat::Clone).await;
    let t = fx.toygres(exporting_executor(&fx, &clone, true));
    let request = CreateImageRequest::export("exported", fx.source.id, clone.id);
    let err = t.create_image(OperationId::new(), request).await.unwrap_err();
    assert!(err.to_string().contains("sha256 differs"), "{err}");
    let images = fx.catalog.list_images(&ImageFilter::default()).await.unwrap();
    let failed: Vec<_> = images.iter().filter(|i| i.id != clone.id).collect();
    assert_eq!((failed.len(), failed[0].state, failed[0].from_image), (1, ImageState::Failed, Some(clone.id)));
    assert_eq!(fx.catalog.get_image(clone.id).await.unwrap(), clone);
}

#[tokio::test]
async fn a_clone_image_cannot_be_deleted_while_an_export_of_it_is_created() {
    let fx = fixture(ImageType::Stock).await;
    let clone = ready(&fx, fx.source.id, ImageFormat::Clone).await;
    let export = NewImage::new("exporting", fx.source.id).with_format(ImageFormat::Physical).with_from_image(clone.id);
    let export = fx.catalog.reserve_image(OperationId::new(), &export).await.unwrap();
    let mut ex = MockClusterExecutor::new();
    ex.expect_delete_image().times(1).returning(|_| Ok(()));
    let t = fx.toygres(ex);
    let err = t.delete_image(clone.id).await.unwrap_err();
    assert!(
        matches!(err, Error::InvalidTransition { .. }) && err.to_string().contains(&export.id.to_string()),
        "{err}"
    );
    assert_eq!(fx.catalog.get_image(clone.id).await.unwrap().state, ImageState::Ready, "the clone image is kept");
    let reason = "cancelled".to_string();
    fx.catalog.update_image(export.id, ImageState::Creating, ImageUpdate::Failed { reason }).await.unwrap();
    t.delete_image(clone.id).await.unwrap();
}

#[tokio::test]
async fn every_refused_export_records_nothing() {
    let fx = fixture(ImageType::Stock).await;
    let clone = ready(&fx, fx.source.id, ImageFormat::Clone).await;
    let physical = ready(&fx, fx.source.id, ImageFormat::Physical).await;
    let other = ready(&fx, InstanceId::new(), ImageFormat::Clone).await;
    let creating = fx
        .catalog
        .reserve_image(OperationId::new(), &NewImage::new("busy", fx.source.id).with_format(ImageFormat::Clone))
        .await
        .unwrap();
    // No expectation but the question whether a restore job verifies what it loads (the verify
    // step's mode): these refusals reach no other executor method.
    let mut quiet = MockClusterExecutor::new();
    quiet.expect_verifies_while_restoring().return_const(false);
    let t = fx.toygres(quiet);
    let export = |image: ImageId| CreateImageRequest::export("exported", fx.source.id, image);

    let mut logical = export(clone.id);
    logical.format = ImageFormat::Logical;
    let err = t.create_image(OperationId::new(), logical).await.unwrap_err();
    assert!(matches!(err, Error::ConflictingRequest { field: "from_image", conflicts_with: "format", .. }), "{err}");
    let err = t.create_image(OperationId::new(), export(ImageId::new())).await.unwrap_err();
    assert!(matches!(err, Error::ImageNotFound(_)), "{err}");
    let err = t.create_image(OperationId::new(), export(creating.id)).await.unwrap_err();
    assert!(matches!(err, Error::ImageNotReady { id, .. } if id == creating.id), "{err}");
    let err = t.create_image(OperationId::new(), export(physical.id)).await.unwrap_err();
    assert!(matches!(err, Error::InvalidRequest { field: "from_image", .. }), "{err}");
    assert!(err.to_string().contains("physical image"), "{err}");
    let err = t.create_image(OperationId::new(), export(other.id)).await.unwrap_err();
    assert!(
        matches!(err, Error::ConflictingRequest { field: "from_image", conflicts_with: "instance_id", .. }),
        "{err}"
    );

    let mut unreadable = MockClusterExecutor::new();
    unreadable.expect_verifies_while_restoring().return_const(false);
    unreadable.expect_check_restorable().times(1).returning(|manifest| {
        Err(Error::ImageIncomplete { image: manifest.image_id, detail: "its data lives on another machine".into() })
    });
    let err = fx.toygres(unreadable).create_image(OperationId::new(), export(clone.id)).await.unwrap_err();
    assert!(matches!(err, Error::ImageIncomplete { image, .. } if image == clone.id), "{err}");
    let mut no_exports = MockClusterExecutor::new();
    no_exports.expect_verifies_while_restoring().return_const(false);
    no_exports.expect_check_restorable().returning(|_| Ok(()));
    no_exports.expect_check_export().times(1).returning(|id| {
        Err(Error::UnsupportedFormat { format: ImageFormat::Physical, reason: format!("cannot export {id}") })
    });
    let err = fx.toygres(no_exports).create_image(OperationId::new(), export(clone.id)).await.unwrap_err();
    assert!(matches!(err, Error::UnsupportedFormat { .. }), "an executor that cannot export refuses: {err}");
    let corrupted = ready(&fx, fx.source.id, ImageFormat::Clone).await;
    let manifest = ImageLocation::for_image(corrupted.id);
    fx.blobs.write(&manifest, manifest::MANIFEST_NAME, bytes::Bytes::from_static(b"{}")).await.unwrap();
    let before = fx.catalog.list_images(&ImageFilter::default()).await.unwrap();
    let err = t.create_image(OperationId::new(), export(corrupted.id)).await.unwrap_err();
    assert!(matches!(err, Error::ChecksumMismatch { image, .. } if image == corrupted.id), "{err}");

    assert_eq!(fx.catalog.list_images(&ImageFilter::default()).await.unwrap(), before, "nothing recorded");
    assert!(fx.events.started().iter().all(|p| *p != Phase::ReserveImage), "{}", fx.events.dump());
}

#[tokio::test]
async fn an_image_of_the_instance_is_unchanged_by_exports() {
    let fx = fixture(ImageType::Stock).await;
    let mut ex = MockClusterExecutor::new();
    ex.expect_check_source().times(1).returning(|_, _, _| Ok(()));
    ex.expect_start_backup_job().returning(|spec| {
        assert!(spec.from_image.is_none(), "an image of the instance reads the instance");
        assert_eq!(spec.source_password.expose(), SOURCE_PW);
        Err(Error::backend_msg("mock executor", "stop here"))
    });
    ex.expect_delete_job().returning(|_| Ok(()));
    ex.expect_delete_image().returning(|_| Ok(()));
    let err = fx.toygres(ex).create_image(OperationId::new(), CreateImageRequest::new("n", fx.source.id)).await;
    assert!(err.unwrap_err().to_string().contains("stop here"));
}
