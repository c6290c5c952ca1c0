//! The backup pipeline against the in-memory catalog and blob store, with a mocked executor.

mod support;

use futures::executor::block_on;
use std::sync::Arc;
use support::*;
use toygres_core::testing::MockClusterExecutor;
use toygres_core::*;

/// An executor whose backup job writes a valid image (like a real job) unless `fail` names a step.
fn backing_up_executor(blobs: Arc<ObjectStoreBlobs>, fail: Option<&'static str>) -> MockClusterExecutor {
    let mut ex = MockClusterExecutor::new();
    ex.expect_check_source().returning(|_, pw, _| {
        assert_eq!(pw.expose(), SOURCE_PW);
        Ok(())
    });
    ex.expect_start_backup_job().returning(move |spec| {
        assert_eq!(spec.source_password.expose(), SOURCE_PW);
        assert_eq!(spec.location, ImageLocation::for_image(spec.image_id));
        if fail == Some("start") {
            return Err(Error::backend_msg("mock executor", "injected failure in start"));
        }
        if fail != Some("no-manifest") {
            block_on(write_image(&blobs, spec.image_id, spec.image_type, spec.data_key.as_ref()));
        }
        Ok(JobRef::backup(spec.image_id))
    });
    ex.expect_wait_for_job().returning(move |job, _, _| match fail {
        Some("wait") => Err(Error::JobFailed {
            job: job.name.clone(),
            reason: "exit status 1".into(),
            logs: "pg_dump: error: connection refused".into(),
        }),
        _ => Ok(()),
    });
    ex.expect_delete_job().returning(|_| Ok(()));
    ex.expect_delete_image().returning(|_| Ok(()));
    ex
}

fn request(fx: &Fixture) -> CreateImageRequest {
    CreateImageRequest::new("nightly", fx.source.id).with_description("test")
}

#[tokio::test]
async fn runs_every_step_in_order_and_records_size_and_checksum() {
    let fx = fixture(ImageType::PgDurable).await;
    let t = fx.toygres(backing_up_executor(fx.blobs.clone(), None));
    let image = t.create_image(OperationId::new(), request(&fx)).await.unwrap();

    assert_eq!(image.state, ImageState::Ready);
    assert_eq!(image.image_type, ImageType::PgDurable);
    let key = t.data_key(&image).await.unwrap().expect("images are encrypted by default");
    let (checksum, size) =
        write_image(&ObjectStoreBlobs::in_memory(), image.id, ImageType::PgDurable, Some(&key)).await;
    assert_eq!(image.size_bytes, Some(size));
    assert_ne!(image.checksum.as_deref(), Some(""));
    assert_eq!(image.checksum.as_ref().unwrap().len(), checksum.len());
    assert_eq!(fx.catalog.image_source_password(image.id).await.unwrap().expose(), SOURCE_PW);
    use Phase::*;
    assert_eq!(fx.events.started(), vec![ReserveImage, LookupSource, BackupJob, MarkReady]);
    // The recorded checksum verifies the stored image.
    let loc = ImageLocation::for_image(image.id);
    verify_image(&*fx.blobs, &loc, image.checksum.as_ref().unwrap(), Some(&key), VerifyMode::Full).await.unwrap();
}

#[tokio::test]
async fn reserving_is_idempotent_on_the_operation_id() {
    let fx = fixture(ImageType::Stock).await;
    let t = fx.toygres(backing_up_executor(fx.blobs.clone(), None));
    let op = OperationId::new();
    let first = t.create_image(op, request(&fx)).await.unwrap();
    let second = t.create_image(op, request(&fx)).await.unwrap();
    assert_eq!(first.id, second.id);
    assert_eq!(fx.catalog.list_images(&ImageFilter::default()).await.unwrap().len(), 1);
}

#[tokio::test]
async fn a_source_the_executor_cannot_image_in_that_format_records_nothing() {
    let fx = fixture(ImageType::Stock).await;
    let mut ex = MockClusterExecutor::new();
    ex.expect_check_source().times(1).returning(|_, _, format| {
        assert_eq!(format, ImageFormat::Physical);
        Err(Error::InvalidRequest { field: "format", reason: "wal_level=minimal".into() })
    });
    let request = CreateImageRequest::new("physical", fx.source.id).physical();
    let err = fx.toygres(ex).create_image(OperationId::new(), request).await.unwrap_err();
    assert!(matches!(err, Error::InvalidRequest { field: "format", .. }), "{err}");
    assert!(fx.catalog.list_images(&ImageFilter::default()).await.unwrap().is_empty());
}

#[tokio::test]
async fn bad_requests_and_unknown_instances_record_nothing() {
    let fx = fixture(ImageType::Stock).await;
    let t = fx.toygres(MockClusterExecutor::new());
    let bad = CreateImageRequest::new("UPPER", fx.source.id);
    assert!(matches!(t.create_image(OperationId::new(), bad).await, Err(Error::InvalidRequest { field: "name", .. })));
    let unknown = CreateImageRequest::new("nightly", InstanceId::new());
    assert!(matches!(t.create_image(OperationId::new(), unknown).await, Err(Error::InstanceNotFound(_))));
    assert!(fx.catalog.list_images(&ImageFilter::default()).await.unwrap().is_empty());
}

#[tokio::test]
async fn each_failing_step_leaves_the_image_failed_without_blobs() {
    for (fail, expected) in
        [("start", "injected failure in start"), ("wait", "pg_dump: error"), ("no-manifest", "manifest.json")]
    {
        let fx = fixture(ImageType::Stock).await;
        let t = fx.toygres(backing_up_executor(fx.blobs.clone(), Some(fail)));
        let err = t.create_image(OperationId::new(), request(&fx)).await.unwrap_err();
        assert!(err.to_string().contains(expected), "{fail}: {err}");

        let images = fx.catalog.list_images(&ImageFilter::default()).await.unwrap();
        assert_eq!(images.len(), 1);
        assert_eq!(images[0].state, ImageState::Failed, "{fail}");
        assert!(images[0].failure_reason.as_deref().unwrap().contains(expected), "{fail}: {images:?}");
        assert!(fx.blobs.stat(&ImageLocation::for_image(images[0].id)).await.unwrap().is_empty(), "{fail}");
        assert!(matches!(fx.catalog.image_source_password(images[0].id).await, Err(Error::ImageNotReady { .. })));
    }
}

#[tokio::test]
async fn resume_after_a_crash_converges_once() {
    let fx = fixture(ImageType::Stock).await;
    let t = fx.toygres(backing_up_executor(fx.blobs.clone(), None));
    let backup = t.backup();
    // Crash after the backup job ran but before the image was marked ready.
    let reserved = backup.reserve_image(OperationId::new(), &request(&fx)).await.unwrap();
    let source = backup.lookup_source(&reserved).await.unwrap();
    backup.run_backup_job(reserved.id, &source).await.unwrap();
    assert_eq!(fx.catalog.get_image(reserved.id).await.unwrap().state, ImageState::Creating);

    let ready = t.resume_image(reserved.id).await.unwrap();
    assert_eq!(ready.state, ImageState::Ready);
    assert_eq!(fx.blobs.list_images().await.unwrap(), vec![reserved.id]);
    // A second resume, or a replayed mark_ready, changes nothing.
    assert_eq!(fx.toygres(MockClusterExecutor::new()).resume_image(reserved.id).await.unwrap(), ready);
    let result = backup.run_backup_job(reserved.id, &source).await.unwrap();
    assert_eq!(backup.mark_ready(reserved.id, &result, &source).await.unwrap().state, ImageState::Ready);
}

#[tokio::test]
async fn deleting_an_image_removes_its_blobs_and_record() {
    let fx = fixture(ImageType::Stock).await;
    let image = fx.ready_image(ImageType::Stock).await;
    let mut ex = MockClusterExecutor::new();
    ex.expect_delete_image().times(1).returning(move |id| {
        assert_eq!(id, image.id, "what the executor keeps of the image goes with it");
        Ok(())
    });
    let t = fx.toygres(ex);
    t.delete_image(image.id).await.unwrap();
    assert!(matches!(fx.catalog.get_image(image.id).await, Err(Error::ImageNotFound(_))));
    assert!(fx.blobs.list_images().await.unwrap().is_empty());
    assert!(matches!(t.delete_image(image.id).await, Err(Error::ImageNotFound(_))));
}
