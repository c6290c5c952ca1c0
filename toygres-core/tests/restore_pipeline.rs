//! The restore pipeline against the in-memory catalog and blob store, with a mocked executor.

mod support;

use std::sync::{Arc, Mutex};
use support::*;
use toygres_core::testing::MockClusterExecutor;
use toygres_core::*;

#[tokio::test]
async fn runs_every_step_in_order_with_the_source_password() {
    let fx = fixture(ImageType::Stock).await;
    let image = fx.ready_image(ImageType::Stock).await;
    let t = fx.toygres(restoring_executor(None));
    let record = t.create_instance(OperationId::new(), restore_request(image.id)).await.unwrap();

    assert_eq!(record.state, InstanceState::Running);
    assert_eq!(record.connection, Some(connection()));
    assert_eq!(record.source_image_id, Some(image.id));
    assert_eq!(fx.catalog.instance_password(record.id).await.unwrap().expose(), SOURCE_PW);
    use Phase::*;
    assert_eq!(
        fx.events.started(),
        vec![
            FetchImage,
            SourcePassword,
            VerifyImage,
            CreateRecord,
            CreateVolume,
            FetchImage,
            StartRestoreJob,
            WaitRestoreJob,
            Deploy,
            WaitReady,
            ConnectionStrings,
            TestConnection,
            MarkRunning
        ]
    );
}

#[tokio::test]
async fn image_type_comes_from_the_source_image() {
    for image_type in [ImageType::PgDurable, ImageType::Stock] {
        let fx = fixture(image_type).await;
        let image = fx.ready_image(image_type).await;
        let seen = Arc::new(Mutex::new(Vec::new()));
        let seen2 = seen.clone();
        let ex = restoring_executor_with(None, |ex| {
            ex.expect_create_volume().returning(move |spec, _| {
                seen2.lock().unwrap().push(spec.image_type);
                Ok(())
            });
        });
        // A request cannot name an image type; a runtime override is refused instead (below).
        let record = fx.toygres(ex).create_instance(OperationId::new(), restore_request(image.id)).await.unwrap();
        assert_eq!(record.image_type, image_type);
        assert_eq!(*seen.lock().unwrap(), vec![image_type]);
    }
    assert_eq!(ImageType::from_catalog("pg_durable"), ImageType::PgDurable);
    assert_eq!(ImageType::from_catalog("no-such-type"), ImageType::Stock);
}

#[tokio::test]
async fn the_record_holds_the_version_the_server_runs_not_the_images() {
    let fx = fixture(ImageType::Stock).await;
    let image = fx.ready_image(ImageType::Stock).await;
    assert_eq!(image.pg_version.as_deref(), Some("15.18"));
    let toygres = fx.toygres(restoring_executor(None));
    let record = toygres.create_instance(OperationId::new(), restore_request(image.id)).await.unwrap();
    assert_eq!(record.pg_version.as_deref(), Some(RESTORED_VERSION));
    let stored = fx.catalog.get_instance(record.id).await.unwrap();
    assert_eq!(stored.pg_version.as_deref(), Some(RESTORED_VERSION));
}

/// An executor that panics on any call but the question whether its restore job verifies every
/// byte (`verifies`): proves nothing was created.
fn untouchable_that(verifies: bool) -> MockClusterExecutor {
    let mut ex = MockClusterExecutor::new();
    ex.expect_verifies_while_restoring().return_const(verifies);
    ex
}

/// [`untouchable_that`] of an executor whose restore job does not verify: the control plane
/// hashes every byte.
fn untouchable() -> MockClusterExecutor {
    untouchable_that(false)
}

async fn assert_nothing_created(fx: &Fixture) {
    let instances = fx.catalog.list_instances(&InstanceFilter::new()).await.unwrap();
    assert_eq!(instances.len(), 1, "only the source instance may exist: {instances:?}");
}

#[tokio::test]
async fn an_image_the_executor_cannot_restore_is_refused_before_anything_is_created() {
    let fx = fixture(ImageType::Stock).await;
    let image = fx.ready_image(ImageType::Stock).await;
    let mut ex = untouchable();
    ex.expect_check_restorable().times(1).returning(|m| {
        assert_eq!(m.pg_version, "15.18");
        Err(Error::UnsupportedImage { image: m.image_id, reason: "PostgreSQL 15 is newer than 14 here".into() })
    });
    let err = fx.toygres(ex).create_instance(OperationId::new(), restore_request(image.id)).await.unwrap_err();
    assert!(matches!(err, Error::UnsupportedImage { image: i, .. } if i == image.id), "{err}");
    assert_nothing_created(&fx).await;
}

#[tokio::test]
async fn conflicting_or_invalid_requests_create_nothing() {
    let fx = fixture(ImageType::Stock).await;
    let image = fx.ready_image(ImageType::Stock).await;
    let t = fx.toygres(untouchable());
    let mut runtime = restore_request(image.id);
    runtime.runtime_image_id = Some("pg16".into());
    let mut image_override = restore_request(image.id);
    image_override.image_override = Some("my/pg:1".into());
    let conflicting = [runtime, image_override];
    for request in conflicting {
        let err = t.create_instance(OperationId::new(), request).await.unwrap_err();
        assert!(matches!(err, Error::ConflictingRequest { field: "source_image_id", .. }), "{err}");
    }
    let mut bad_name = restore_request(image.id);
    bad_name.name = "Not_A_Label".into();
    assert!(matches!(
        t.create_instance(OperationId::new(), bad_name).await,
        Err(Error::InvalidRequest { field: "name", .. })
    ));
    assert_nothing_created(&fx).await;
    assert!(fx.events.started().is_empty(), "no step may start: {}", fx.events.dump());
}

#[tokio::test]
async fn unknown_and_not_ready_images_are_refused() {
    let fx = fixture(ImageType::Stock).await;
    let t = fx.toygres(untouchable());
    let unknown = ImageId::new();
    let err = t.create_instance(OperationId::new(), restore_request(unknown)).await.unwrap_err();
    assert!(matches!(err, Error::ImageNotFound(id) if id == unknown), "{err}");

    let new = NewImage::new("pending", fx.source.id);
    let creating = fx.catalog.reserve_image(OperationId::new(), &new).await.unwrap();
    let err = t.create_instance(OperationId::new(), restore_request(creating.id)).await.unwrap_err();
    assert!(matches!(&err, Error::ImageNotReady { state, .. } if state == "creating"), "{err}");

    let failed = fx.catalog.reserve_image(OperationId::new(), &NewImage::new("f", fx.source.id)).await.unwrap();
    let update = ImageUpdate::Failed { reason: "boom".into() };
    fx.catalog.update_image(failed.id, ImageState::Creating, update).await.unwrap();
    let err = t.create_instance(OperationId::new(), restore_request(failed.id)).await.unwrap_err();
    assert!(matches!(err, Error::ImageNotReady { .. }), "{err}");
    assert_nothing_created(&fx).await;
}

#[tokio::test]
async fn a_corrupted_image_is_refused_before_anything_is_created() {
    let fx = fixture(ImageType::Stock).await;
    let image = fx.ready_image(ImageType::Stock).await;
    let loc = ImageLocation::for_image(image.id);
    let name = manifest::database_object_name(0);
    let mut bytes = fx.blobs.read(&loc, &name).await.unwrap().to_vec();
    bytes[3] ^= 0x01;
    fx.blobs.write(&loc, &name, bytes.into()).await.unwrap();

    let err =
        fx.toygres(untouchable()).create_instance(OperationId::new(), restore_request(image.id)).await.unwrap_err();
    assert!(matches!(&err, Error::ChecksumMismatch { object, .. } if *object == name), "{err}");
    assert_nothing_created(&fx).await;

    fx.blobs.delete(&loc).await.unwrap();
    let err =
        fx.toygres(untouchable()).create_instance(OperationId::new(), restore_request(image.id)).await.unwrap_err();
    assert!(matches!(err, Error::ImageIncomplete { .. }), "{err}");
}

#[tokio::test]
async fn each_failing_step_cleans_up_and_leaves_the_instance_failed() {
    for step in RESTORE_STEPS {
        let fx = fixture(ImageType::Stock).await;
        let image = fx.ready_image(ImageType::Stock).await;
        let mut ex = restoring_executor(Some(step));
        ex.expect_delete_instance().times(1).returning(|_| Ok(()));
        let t = fx.toygres(ex).with_options(fast_options());
        let err = t.create_instance(OperationId::new(), restore_request(image.id)).await.unwrap_err();
        assert!(err.to_string().contains(step), "{step}: {err}");

        let record = fx.catalog.get_instance_by_name("restored").await.unwrap();
        assert_eq!(record.state, InstanceState::Failed, "{step}");
        assert!(record.failure_reason.as_deref().unwrap().contains(step), "{step}: {record:?}");
        assert!(fx.events.started().contains(&Phase::Cleanup), "{step}");
        // A failed instance can be deleted; its name becomes free again.
        let mut ex = MockClusterExecutor::new();
        ex.expect_delete_instance().times(1).returning(|_| Ok(()));
        fx.toygres(ex).delete_instance(record.id).await.unwrap();
        assert!(fx.catalog.get_instance_by_name("restored").await.is_err());
    }
}

#[tokio::test]
async fn a_failed_job_puts_its_logs_in_the_failure_reason() {
    let fx = fixture(ImageType::Stock).await;
    let image = fx.ready_image(ImageType::Stock).await;
    let ex = restoring_executor_with(None, |ex| {
        ex.expect_wait_for_job().returning(|job, _, _| {
            let logs = "pg_restore: error: disk full".into();
            Err(Error::JobFailed { job: job.name.clone(), reason: "exit code 1".into(), logs })
        });
        ex.expect_delete_instance().times(1).returning(|_| Ok(()));
    });
    let err = fx.toygres(ex).create_instance(OperationId::new(), restore_request(image.id)).await.unwrap_err();
    assert!(matches!(err, Error::JobFailed { .. }));
    let record = fx.catalog.get_instance_by_name("restored").await.unwrap();
    assert!(record.failure_reason.unwrap().contains("pg_restore: error: disk full"));
}

#[tokio::test]
async fn resume_continues_a_provisioning_instance_and_is_idempotent() {
    let fx = fixture(ImageType::PgDurable).await;
    let image = fx.ready_image(ImageType::PgDurable).await;
    let t = fx.toygres(restoring_executor(None));
    // Crash right after the record was created: only the first steps ran.
    let restore = t.restore();
    let request = restore_request(image.id);
    let password = restore.source_password(image.id).await.unwrap();
    let op = OperationId::new();
    let record = restore.create_record(op, &request, &image, &password).await.unwrap();
    assert_eq!(restore.create_record(op, &request, &image, &password).await.unwrap().id, record.id);

    let resumed = t.resume_instance(record.id).await.unwrap();
    assert_eq!(resumed.state, InstanceState::Running);
    assert_eq!(resumed.image_type, ImageType::PgDurable);
    // Resuming a finished instance changes nothing and calls no executor step.
    let again = fx.toygres(untouchable()).resume_instance(record.id).await.unwrap();
    assert_eq!(again, resumed);
}

/// `VerifyMode::Auto` (the default) hashes every byte before a restore unless the executor's
/// restore job checks every byte as it loads it (`verifies_while_restoring`): then the step reads
/// the manifest and the sizes only, and the image is read once, by the job. The manifest and the
/// sizes are still checked; an explicit mode is kept.
#[tokio::test]
async fn the_verify_step_hashes_every_byte_only_when_the_restore_job_does_not() {
    let fx = fixture(ImageType::Stock).await;
    let image = fx.ready_image(ImageType::Stock).await;
    let loc = ImageLocation::for_image(image.id);
    let name = manifest::database_object_name(0);
    let original = fx.blobs.read(&loc, &name).await.unwrap();
    let mut flipped = original.to_vec();
    flipped[3] ^= 0x01;
    fx.blobs.write(&loc, &name, flipped.into()).await.unwrap();
    let verify = |verifies: bool, mode: VerifyMode| {
        let mut ex = untouchable_that(verifies);
        ex.expect_check_restorable().returning(|_| Ok(()));
        let mut options = fast_options();
        options.verify = mode;
        let (t, image) = (fx.toygres(ex).with_options(options), image.clone());
        async move { t.restore().verify_image(&image).await }
    };
    assert_eq!(Options::default().verify, VerifyMode::Auto);
    // The changed byte passes the lighter check: the job, which hashes it, refuses it.
    verify(true, VerifyMode::Auto).await.unwrap();
    verify(false, VerifyMode::ManifestAndSizes).await.unwrap();
    for (verifies, mode) in [(false, VerifyMode::Auto), (true, VerifyMode::Full), (false, VerifyMode::Full)] {
        let err = verify(verifies, mode).await.unwrap_err();
        assert!(matches!(&err, Error::ChecksumMismatch { object, .. } if *object == name), "{mode:?}: {err}");
    }

    // A truncated object or a changed manifest is refused by the lighter check too.
    fx.blobs.write(&loc, &name, original.slice(..original.len() - 1)).await.unwrap();
    let err = verify(true, VerifyMode::Auto).await.unwrap_err();
    assert!(matches!(err, Error::ImageIncomplete { .. }), "{err}");
    fx.blobs.write(&loc, &name, original).await.unwrap();
    let stored = fx.blobs.read(&loc, manifest::MANIFEST_NAME).await.unwrap();
    let mut changed = stored.to_vec();
    changed[10] ^= 0x01;
    fx.blobs.write(&loc, manifest::MANIFEST_NAME, changed.into()).await.unwrap();
    let err = verify(true, VerifyMode::Auto).await.unwrap_err();
    assert!(matches!(err, Error::ChecksumMismatch { .. }), "{err}");
    fx.blobs.write(&loc, manifest::MANIFEST_NAME, stored).await.unwrap();
    verify(true, VerifyMode::Full).await.unwrap();
}
