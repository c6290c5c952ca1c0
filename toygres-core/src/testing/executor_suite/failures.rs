//! Failures: a wrong checksum, cancelled jobs, unknown jobs.

use super::{
    assert_job_gone, assert_nothing_left, backup_spec, delete_image, finish, image_of_source, ok, ExecutorHarness,
    JOB_TIMEOUT, SETTLE, SHORT_WAIT,
};
use crate::envelope::DataKey;
use crate::manifest::sha256_hex;
use crate::{ClusterExecutor, Error, ErrorClass, ImageId, InstanceId, JobRef, NoProgress};
use std::sync::Arc;
use std::time::Duration;

/// A restore job given a checksum that is not its image's manifest's fails, from
/// `start_restore_job` or `wait_for_job`, with [`Error::JobFailed`] naming the job or
/// [`Error::ChecksumMismatch`] naming the image: permanent, saying "checksum", without the
/// instance's password (nor do the job's logs hold it). The image stays; the instance then
/// deletes without a trace.
pub async fn mismatched_checksums_fail_and_leave_nothing(h: &dyn ExecutorHarness) {
    let executor = h.executor();
    let password = h.source_password();
    let image = image_of_source(h).await;
    let instance = h.new_instance();
    ok(executor.create_volume(&instance, &password).await, "create_volume");
    let mut spec = image.restore_into(&instance);
    spec.checksum = sha256_hex(b"not the manifest of this image");
    let job = JobRef::restore(instance.id);
    let outcome = match executor.start_restore_job(&spec).await {
        Ok(started) => {
            assert_eq!(started, job, "the restore job's reference");
            finish(h, &job, Arc::new(NoProgress)).await
        }
        Err(e) => Err(e),
    };
    let error = match outcome {
        Ok(()) => panic!("a restore with checksum {} of image {} succeeded", spec.checksum, image.id()),
        Err(e) => e,
    };
    match &error {
        Error::JobFailed { job: name, .. } => assert_eq!(name, &job.name, "the failed job's name"),
        Error::ChecksumMismatch { image: id, .. } => assert_eq!(*id, image.id(), "the mismatched image"),
        other => panic!("a wrong checksum: expected JobFailed or ChecksumMismatch, got {other:?}"),
    }
    let text = error.to_string();
    assert!(!error.is_transient(), "a wrong checksum is not transient ({}): {text}", error.class());
    assert!(text.contains("checksum"), "the error does not say the checksum is wrong: {text}");
    assert!(!text.contains(password.expose()), "the error holds the instance's password: {text}");
    let logs = ok(executor.job_logs(&job).await, "job_logs of the failed restore");
    assert!(!logs.contains(password.expose()), "the job's logs hold the instance's password: {logs}");
    let stored = ok(h.blobs().stat(&image.location).await, "stat of the image");
    assert!(!stored.is_empty(), "a failed restore removed the image it read");

    ok(executor.delete_job(&job).await, "delete_job of the failed restore");
    assert_job_gone(h, &job, "delete_job of the failed restore").await;
    ok(executor.delete_instance(&instance).await, "delete_instance after the failed restore");
    assert_nothing_left(h, &instance, "delete_instance after the failed restore").await;
    image.delete(h).await;
}

/// A job deleted while it runs (a wait of [`SHORT_WAIT`] on it timed out first) is never
/// reported as succeeded afterwards, and waiting on it fails at once instead of timing out. It
/// stops: [`SETTLE`] later it has left nothing, a cancelled backup has written nothing more to its
/// image's location (emptied as the pipeline does), and a cancelled restore's instance deletes
/// without a trace.
pub async fn cancelled_jobs_never_succeed_and_leave_nothing(h: &dyn ExecutorHarness) {
    let executor = h.executor();
    let image = image_of_source(h).await;
    let instance = h.new_instance();
    ok(executor.create_volume(&instance, &h.source_password()).await, "create_volume");
    let restore = ok(executor.start_restore_job(&image.restore_into(&instance)).await, "start_restore_job");
    cancel(&*executor, &restore).await;
    tokio::time::sleep(SETTLE).await;
    assert_job_gone(h, &restore, "delete_job of a running restore").await;
    ok(executor.delete_instance(&instance).await, "delete_instance after a cancelled restore");
    assert_nothing_left(h, &instance, "delete_instance after a cancelled restore").await;
    image.delete(h).await;

    let spec = backup_spec(h, ImageId::new(), &DataKey::generate());
    let backup = ok(executor.start_backup_job(&spec).await, "start_backup_job");
    cancel(&*executor, &backup).await;
    delete_image(h, &spec.location).await;
    tokio::time::sleep(SETTLE).await;
    assert_job_gone(h, &backup, "delete_job of a running backup").await;
    let written = ok(h.blobs().stat(&spec.location).await, "stat of the cancelled backup's image");
    assert!(written.is_empty(), "the cancelled {} went on writing: {written:?}", backup.name);
    delete_image(h, &spec.location).await;
}

/// Checks that `job` is running, deletes it, and checks that it does not succeed.
async fn cancel(executor: &dyn ClusterExecutor, job: &JobRef) {
    match executor.wait_for_job(job, SHORT_WAIT, Arc::new(NoProgress)).await {
        Err(Error::Timeout { after, .. }) => assert_eq!(after, SHORT_WAIT, "the timeout reported"),
        other => panic!("{} was not let run, yet waiting {SHORT_WAIT:?} on it returned {other:?}", job.name),
    }
    ok(executor.delete_job(job).await, "delete_job of a running job");
    match executor.wait_for_job(job, JOB_TIMEOUT, Arc::new(NoProgress)).await {
        Ok(()) => panic!("{} was deleted while it ran, yet waiting on it succeeded", job.name),
        Err(Error::Timeout { .. }) => panic!("waiting on the deleted {} waited out its timeout", job.name),
        Err(_) => {}
    }
}

/// Waiting on a job this executor never started fails at once (no timeout) with an error naming
/// the job, of class [`ErrorClass::Failed`], [`ErrorClass::NotFound`] or
/// [`ErrorClass::Unavailable`] (it failed, does not exist, or its step must run again); its logs
/// are readable (empty or saying so); deleting it succeeds.
pub async fn unknown_jobs_are_errors(h: &dyn ExecutorHarness) {
    let executor = h.executor();
    for job in [JobRef::backup(ImageId::new()), JobRef::restore(InstanceId::new())] {
        let started = std::time::Instant::now();
        match executor.wait_for_job(&job, JOB_TIMEOUT, Arc::new(NoProgress)).await {
            Ok(()) => panic!("waiting on {}, never started, succeeded", job.name),
            Err(Error::Timeout { .. }) => panic!("waiting on {}, never started, waited out its timeout", job.name),
            Err(e) => {
                assert!(e.to_string().contains(&job.name), "the error does not name {}: {e}", job.name);
                let class = e.class();
                let gone = [ErrorClass::Failed, ErrorClass::NotFound, ErrorClass::Unavailable];
                assert!(gone.contains(&class), "waiting on {}, never started: a {class} error: {e}", job.name);
            }
        }
        let waited = started.elapsed();
        assert!(waited < Duration::from_secs(30), "waiting on {}, never started, took {waited:?}", job.name);
        ok(executor.job_logs(&job).await, &format!("job_logs of {}, never started", job.name));
        ok(executor.delete_job(&job).await, &format!("delete_job of {}, never started", job.name));
        assert_job_gone(h, &job, "delete_job of a job never started").await;
    }
}
