//! The whole round trip, and the progress events of its jobs.

use super::{
    assert_nothing_left, finish, image_of_source, ok, take_image, ExecutorHarness, Recorder, READY_TIMEOUT,
    WRONG_PASSWORD,
};
use crate::{ImageFormat, JobRef, NoProgress, Password, ProgressEvent, ProgressSink};
use std::sync::Arc;

/// Backup → restore → deploy → ready → connection info → connection test: the image's manifest
/// describes the source; the restored instance answers with the source's password and refuses a
/// wrong one (when the backend has real servers); its connection info is stable; deleting it
/// leaves nothing and its server stops answering.
pub async fn backup_restore_round_trip(h: &dyn ExecutorHarness) {
    let check = "backup_restore_round_trip";
    let executor = h.executor();
    let (source, password) = (h.source(), h.source_password());
    let image = image_of_source(h).await;
    let manifest = &image.manifest;
    assert_eq!(manifest.image_id, image.id(), "the manifest names its image");
    assert_eq!(manifest.image_type, source.image_type, "the manifest records the backup's image type");
    assert_eq!(manifest.format, ImageFormat::Logical, "the suite's backups are logical");
    assert!(!manifest.databases.is_empty(), "a logical image holds the source's databases: {manifest:?}");
    let stored = ok(h.blobs().stat(&image.location).await, "stat of the image");
    for object in manifest.objects() {
        let found = stored.iter().find(|o| o.name == object.name);
        assert_eq!(found.map(|o| o.size), Some(object.size), "{} as the manifest describes it", object.name);
    }

    let instance = h.new_instance();
    ok(executor.create_volume(&instance, &password).await, "create_volume");
    let job = ok(executor.start_restore_job(&image.restore_into(&instance)).await, "start_restore_job");
    ok(finish(h, &job, Arc::new(NoProgress)).await, "wait_for_job of the restore");
    ok(executor.deploy_from_volume(&instance).await, "deploy_from_volume");
    h.run_server(&instance).await;
    ok(executor.wait_until_ready(&instance, READY_TIMEOUT).await, "wait_until_ready");
    let connection = ok(executor.connection_info(&instance).await, "connection_info");
    assert!(
        !connection.host.is_empty() && connection.port != 0 && !connection.user.is_empty(),
        "connection info names a host, a port and a user: {connection:?}"
    );
    assert!(!connection.database.is_empty(), "connection info names a database: {connection:?}");
    let again = ok(executor.connection_info(&instance).await, "connection_info again");
    assert_eq!(again, connection, "connection info of one instance is stable");

    let connects = h.capabilities().connections.check(check, "the connection tests");
    if connects {
        let to_source = ok(executor.connection_info(&source).await, "connection_info of the source");
        assert_ne!(
            (&to_source.host, to_source.port),
            (&connection.host, connection.port),
            "two instances, one address"
        );
        ok(executor.test_connection(&source, &to_source, &password).await, "test_connection to the source");
        ok(
            executor.test_connection(&instance, &connection, &password).await,
            "test_connection with the source's password",
        );
        let wrong = executor.test_connection(&instance, &connection, &Password::new(WRONG_PASSWORD)).await;
        assert!(wrong.is_err(), "test_connection with a wrong password succeeded");
        let text = wrong.unwrap_err().to_string();
        assert!(!text.contains(password.expose()), "the error holds the instance's password: {text}");
    }
    ok(executor.delete_job(&job).await, "delete_job of the restore");
    ok(executor.delete_instance(&instance).await, "delete_instance");
    assert_nothing_left(h, &instance, "delete_instance").await;
    if connects {
        let gone = executor.test_connection(&instance, &connection, &password).await;
        assert!(gone.is_err(), "the deleted instance's server still accepts connections at {connection:?}");
    }
    image.delete(h).await;
}

/// Waiting on a backup job and on a restore job emits `Bytes` events of the job's subject with
/// bytes done (when the backend reports bytes), and never an event of another subject.
pub async fn job_waits_report_byte_progress(h: &dyn ExecutorHarness) {
    let check = "job_waits_report_byte_progress";
    let executor = h.executor();
    let reports = h.capabilities().byte_progress.check(check, "the Bytes assertions");

    let backup = Arc::new(Recorder::default());
    let (image, backup_job) = take_image(h, backup.clone() as Arc<dyn ProgressSink>).await;
    ok(executor.delete_job(&backup_job).await, "delete_job of the backup");
    assert_subject(&backup.events(), &backup_job);
    if reports {
        assert_bytes_done(&backup, &backup_job);
    }

    let instance = h.new_instance();
    ok(executor.create_volume(&instance, &h.source_password()).await, "create_volume");
    let restore = Arc::new(Recorder::default());
    let job = ok(executor.start_restore_job(&image.restore_into(&instance)).await, "start_restore_job");
    ok(finish(h, &job, restore.clone()).await, "wait_for_job of the restore");
    assert_subject(&restore.events(), &job);
    if reports {
        assert_bytes_done(&restore, &job);
    }
    ok(executor.delete_instance(&instance).await, "delete_instance");
    assert_nothing_left(h, &instance, "delete_instance").await;
    image.delete(h).await;
}

fn assert_subject(events: &[ProgressEvent], job: &JobRef) {
    let others: Vec<&ProgressEvent> = events.iter().filter(|e| e.subject != job.subject).collect();
    assert!(others.is_empty(), "waiting on {} emitted events of another subject: {others:?}", job.name);
}

fn assert_bytes_done(recorder: &Recorder, job: &JobRef) {
    let bytes = recorder.bytes();
    assert!(!bytes.is_empty(), "waiting on {} emitted no Bytes event: {:?}", job.name, recorder.events());
    let most = bytes.iter().map(|(done, _)| *done).max().unwrap_or(0);
    assert!(most > 0, "waiting on {} reported no byte done: {bytes:?}", job.name);
}
