//! Crash and resume with the local backend: the pipelines are run step by step and abandoned after
//! the backup job, after the restore job, and in the middle of a load; `resume` must converge to
//! ready with no duplicate blobs, volumes or servers left behind.

#[path = "local/support.rs"]
mod support;

use support::*;
use toygres_core::manifest::{database_object_name, GLOBALS_NAME, MANIFEST_NAME};
use toygres_core::{
    ClusterExecutor, CreateImageRequest, CreateInstanceRequest, ImageRecord, ImageState, InstanceRecord, InstanceState,
    OperationId,
};
use toygres_local::cluster::{process_alive, LOAD_ONLY_SETTINGS};

/// Runs the backup pipeline by hand and "crashes" after its job.
async fn image_crashing_after_the_backup_job(f: &Fixture) -> ImageRecord {
    let backup = f.t.backup();
    let request = CreateImageRequest::new("crashy", f.source.id);
    let image = backup.reserve_image(OperationId::new(), &request).await.unwrap();
    let source = backup.lookup_source(&image).await.unwrap();
    backup.run_backup_job(image.id, &source).await.unwrap();
    assert_eq!(f.t.catalog.get_image(image.id).await.unwrap().state, ImageState::Creating);
    image
}

/// Runs the restore pipeline by hand up to the created record and volume.
async fn record_and_volume(f: &Fixture, image: &ImageRecord, name: &str) -> InstanceRecord {
    let restore = f.t.restore();
    let image = restore.fetch_image(image.id).await.unwrap();
    let password = restore.source_password(image.id).await.unwrap();
    restore.verify_image(&image).await.unwrap();
    let request = CreateInstanceRequest::restore(name, image.id);
    let record = restore.create_record(OperationId::new(), &request, &image, &password).await.unwrap();
    restore.create_volume(&spec(&record), &password).await.unwrap();
    record
}

async fn assert_converged(f: &Fixture, record: &InstanceRecord) {
    let running = f.t.resume_instance(record.id).await.unwrap();
    assert_eq!(running.state, InstanceState::Running);
    let named: Vec<_> = volume_names(&f.executor).into_iter().filter(|n| *n == record.name).collect();
    assert_eq!(named.len(), 1, "exactly one volume for {}", record.name);
    let diff = f.snapshot.diff(&snapshot(&f.executor, &running, &f.password).await);
    assert!(diff.is_empty(), "{}", diff.join("\n"));
    // Resuming a running instance is a no-op.
    assert_eq!(f.t.resume_instance(record.id).await.unwrap().state, InstanceState::Running);
    delete_and_check(f, &running).await;
}

#[test]
fn crash_after_each_job_and_mid_load_then_resume_converges() {
    let f = fixture();
    rt().block_on(async {
        let image = image_crashing_after_the_backup_job(&f).await;
        let before = objects_of(&f.blobs, image.id).await;
        let ready = f.t.resume_image(image.id).await.unwrap();
        assert_eq!(ready.state, ImageState::Ready);
        let after = objects_of(&f.blobs, image.id).await;
        assert_eq!(before, after, "the re-run rewrote the same objects");
        let mut expected: Vec<String> = (0..f.snapshot.databases.len()).map(database_object_name).collect();
        expected.extend([GLOBALS_NAME.to_string(), MANIFEST_NAME.to_string()]);
        expected.sort();
        assert_eq!(after, expected, "no duplicate or stale blobs");

        // Crash after the restore job: the volume is restored but never deployed.
        let record = record_and_volume(&f, &ready, "after-restore-job").await;
        let restore = f.t.restore();
        let job = restore.start_restore_job(&spec(&record), &ready).await.unwrap();
        restore.wait_restore_job(&job).await.unwrap();
        let cluster = f.executor.cluster(&spec(&record)).unwrap();
        assert!(cluster.is_initialized() && !cluster.is_running());
        assert_converged(&f, &record).await;

        // Crash in the middle of a load: a half-loaded volume whose load server still runs.
        let record = record_and_volume(&f, &ready, "mid-load").await;
        let cluster = f.executor.cluster(&spec(&record)).unwrap();
        cluster.init(&f.password).await.unwrap();
        cluster.start(LOAD_ONLY_SETTINGS).await.unwrap();
        let half = cluster.connect("postgres", &f.password).await.unwrap();
        half.batch_execute("CREATE DATABASE appdb").await.unwrap();
        half.batch_execute("CREATE TABLE half_loaded (x int)").await.unwrap();
        let stale_pid = cluster.postmaster_pid().unwrap();
        assert_converged(&f, &record).await;
        assert!(!process_alive(stale_pid), "the interrupted load's server was stopped");
        let _ = f.t.delete_image(ready.id).await;
        assert!(f.executor.job_logs(&job).await.unwrap().is_empty(), "finished jobs are removed");
    });
}
