//! The conformance suite every [`ClusterExecutor`] runs: one definition of "behaves like an executor".
//!
//! The executor's test implements [`ExecutorHarness`] (the executor, its blob store, a running
//! source instance, and hooks for what a fake backend does not do by itself), then calls
//! [`run_all`]. Every check works on new image and instance ids and looks only at those, so the
//! checks are independent and the harness may be shared with other tests.
//!
//! What the suite holds an executor to:
//! - every step is idempotent: `create_volume`, `start_backup_job`, `start_restore_job` and
//!   `deploy_from_volume` called again succeed and change nothing (a job started again is the same
//!   [`JobRef`]); `delete_job` and `delete_instance` of what is gone or never existed succeed;
//! - names are deterministic: jobs are `backup-<image>` / `restore-<instance>`; after
//!   `create_volume` the instance is listed ([`ClusterExecutor::list_instances`]) or its resources
//!   exist ([`ExecutorHarness::resources_of`]), and after `delete_instance` nothing of it is left;
//! - backup → restore → deploy → ready → connection info → connection test round-trips, with the
//!   source's password (and a wrong password is refused);
//! - a restore job given a checksum that is not its image's fails with a typed, permanent error
//!   that says so, and keeps no secret in it; the instance then deletes without a trace;
//! - a job deleted while it runs is never reported as succeeded, and leaves nothing;
//! - waiting on a job that moves bytes emits [`EventKind::Bytes`] for the job's subject (when the
//!   backend reports bytes), and never an event of another subject;
//! - waiting on a job the executor never started is an error naming the job, at once.
//!
//! What a harness says it cannot do ([`Capabilities`]) is skipped with the reason printed, never
//! silently.
//!
//! ```no_run
//! use std::sync::Arc;
//! use toygres_core::testing::executor_suite::{self, Capabilities, ExecutorHarness};
//! use toygres_core::{BlobStore, ClusterExecutor, InstanceSpec, Password};
//!
//! struct Harness {
//!     executor: Arc<dyn ClusterExecutor>,
//!     blobs: Arc<dyn BlobStore>,
//!     source: InstanceSpec,
//!     password: Password,
//! }
//!
//! #[async_trait::async_trait]
//! impl ExecutorHarness for Harness {
//!     fn executor(&self) -> Arc<dyn ClusterExecutor> {
//!         self.executor.clone()
//!     }
//!     fn blobs(&self) -> Arc<dyn BlobStore> {
//!         self.blobs.clone()
//!     }
//!     fn source(&self) -> InstanceSpec {
//!         self.source.clone()
//!     }
//!     fn source_password(&self) -> Password {
//!         self.password.clone()
//!     }
//!     fn capabilities(&self) -> Capabilities {
//!         Capabilities::full()
//!     }
//! }
//!
//! # async fn demo(harness: Harness) {
//! executor_suite::run_all(&harness).await;
//! # }
//! ```

mod failures;
mod harness;
mod round_trip;
mod steps;

pub use failures::{
    cancelled_jobs_never_succeed_and_leave_nothing, mismatched_checksums_fail_and_leave_nothing,
    unknown_jobs_are_errors,
};
pub use harness::{Capabilities, ExecutorHarness, Support};
pub use round_trip::{backup_restore_round_trip, job_waits_report_byte_progress};
pub use steps::{
    backup_jobs_are_named_by_image_and_start_once, deleting_an_absent_instance_touches_nothing,
    restore_steps_are_idempotent, volumes_are_named_by_instance_id,
};

use crate::envelope::{object, DataKey};
use crate::manifest::{sha256_hex, Manifest, MANIFEST_NAME};
use crate::{BackupJobSpec, Error, ImageId, ImageLocation, InstanceSpec};
use crate::{EventKind, JobRef, NoProgress, ProgressEvent, ProgressSink, RestoreJobSpec, Result};
use std::sync::{Arc, Mutex};
use std::time::Duration;

/// How long the suite waits for a job that should finish.
pub const JOB_TIMEOUT: Duration = Duration::from_secs(180);
/// How long the suite waits for a deployed server to accept connections.
pub const READY_TIMEOUT: Duration = Duration::from_secs(120);
/// The wait that must time out on a job the suite has not let finish (far shorter than any real
/// backup or restore, which start processes and connect to servers).
pub const SHORT_WAIT: Duration = Duration::from_millis(10);
/// How long the suite watches a cancelled job for signs that it still runs (files, objects,
/// processes it would leave), longer than the backups and restores of a small source take.
pub const SETTLE: Duration = Duration::from_secs(2);
/// A password no instance of the suite has.
pub const WRONG_PASSWORD: &str = "not-the-suite-password";

/// Runs every check on `harness`; panics with the check's name and what broke.
pub async fn run_all(harness: &dyn ExecutorHarness) {
    macro_rules! run {
        ($($check:ident),+ $(,)?) => {$(
            // Shown by the test harness when a check fails, so the failure names it.
            eprintln!("executor conformance: {}", stringify!($check));
            $check(harness).await;
        )+};
    }
    run!(
        volumes_are_named_by_instance_id,
        deleting_an_absent_instance_touches_nothing,
        backup_jobs_are_named_by_image_and_start_once,
        restore_steps_are_idempotent,
        backup_restore_round_trip,
        job_waits_report_byte_progress,
        mismatched_checksums_fail_and_leave_nothing,
        cancelled_jobs_never_succeed_and_leave_nothing,
        unknown_jobs_are_errors,
    );
}

/// Panics with `what` and the error when `result` failed.
fn ok<T>(result: Result<T>, what: &str) -> T {
    result.unwrap_or_else(|e: Error| panic!("{what}: {e}"))
}

/// The backup job's spec of a new image `image` of the harness's source, encrypted under `key`
/// (every executor must seal what it stores).
fn backup_spec(h: &dyn ExecutorHarness, image: ImageId, key: &DataKey) -> BackupJobSpec {
    let source = h.source();
    BackupJobSpec {
        image_id: image,
        image_type: source.image_type,
        source,
        source_password: h.source_password(),
        location: ImageLocation::for_image(image),
        format: Default::default(),
        data_key: Some(key.clone()),
        from_image: None,
    }
}

/// Lets `job` run ([`ExecutorHarness::run_job`]) and waits for it, events going to `progress`.
async fn finish(h: &dyn ExecutorHarness, job: &JobRef, progress: Arc<dyn ProgressSink>) -> Result<()> {
    h.run_job(job).await;
    h.executor().wait_for_job(job, JOB_TIMEOUT, progress).await
}

/// An image the suite took of the harness's source, as the backup pipeline reads it back.
struct Taken {
    location: ImageLocation,
    /// `sha256:<hex>` of its manifest: what the catalog would record.
    checksum: String,
    manifest: Manifest,
    /// Its data key.
    key: DataKey,
}

impl Taken {
    fn id(&self) -> ImageId {
        self.location.image_id
    }

    /// The restore job's spec of this image into `instance`.
    fn restore_into(&self, instance: &InstanceSpec) -> RestoreJobSpec {
        RestoreJobSpec {
            image_id: self.id(),
            location: self.location.clone(),
            checksum: self.checksum.clone(),
            instance: instance.clone(),
            databases: None,
            data_key: Some(self.key.clone()),
            recovery: None,
        }
    }

    /// Removes the image's objects (and any staging files).
    async fn delete(&self, h: &dyn ExecutorHarness) {
        delete_image(h, &self.location).await;
    }
}

/// Backs up the harness's source into a new image (events to `progress`) and reads its manifest.
async fn take_image(h: &dyn ExecutorHarness, progress: Arc<dyn ProgressSink>) -> (Taken, JobRef) {
    let executor = h.executor();
    let (image, key) = (ImageId::new(), DataKey::generate());
    let job = ok(executor.start_backup_job(&backup_spec(h, image, &key)).await, "start_backup_job");
    ok(finish(h, &job, progress).await, "wait_for_job of a backup");
    let location = ImageLocation::for_image(image);
    for object in ok(h.blobs().stat(&location).await, "listing the backup's objects") {
        let bytes = ok(h.blobs().read(&location, &object.name).await, "reading a stored object");
        assert!(bytes.starts_with(object::MAGIC), "{} is stored unencrypted although a key was given", object.name);
    }
    let bytes = ok(h.blobs().read(&location, MANIFEST_NAME).await, "reading the backup's manifest");
    let manifest = ok(Manifest::from_stored(image, &bytes, Some(&key)), "opening the backup's manifest");
    (Taken { location, checksum: sha256_hex(&bytes), manifest, key }, job)
}

/// [`take_image`] without progress, its job deleted.
async fn image_of_source(h: &dyn ExecutorHarness) -> Taken {
    let (taken, job) = take_image(h, Arc::new(NoProgress)).await;
    ok(h.executor().delete_job(&job).await, "delete_job of a finished backup");
    taken
}

async fn delete_image(h: &dyn ExecutorHarness, location: &ImageLocation) {
    let blobs = h.blobs();
    ok(blobs.remove_staging(location).await.map(|_| ()), "removing the image's staging files");
    ok(blobs.delete(location).await, "deleting the image's objects");
}

/// Everything that still exists of `instance`: whether `list_instances` lists it (when the
/// harness says it can) and what [`ExecutorHarness::resources_of`] reports.
async fn present(h: &dyn ExecutorHarness, instance: &InstanceSpec) -> Vec<String> {
    let mut found = Vec::new();
    if h.capabilities().instance_listing == Support::Yes {
        let listed = ok(h.executor().list_instances().await, "list_instances");
        let times = listed.iter().filter(|id| **id == instance.id).count();
        assert!(times <= 1, "list_instances lists instance {} {times} times: {listed:?}", instance.id);
        if times == 1 {
            found.push(format!("listed by list_instances: {}", instance.id));
        }
    }
    found.extend(h.resources_of(instance).await);
    found
}

/// Panics unless nothing of `instance` is left.
async fn assert_nothing_left(h: &dyn ExecutorHarness, instance: &InstanceSpec, after: &str) {
    let left = present(h, instance).await;
    assert!(left.is_empty(), "after {after}, instance {} left: {left:#?}", instance.id);
}

/// Panics unless nothing of `job` is left.
async fn assert_job_gone(h: &dyn ExecutorHarness, job: &JobRef, after: &str) {
    let left = h.resources_of_job(job).await;
    assert!(left.is_empty(), "after {after}, job {} left: {left:#?}", job.name);
}

/// A sink that keeps every event.
#[derive(Default)]
struct Recorder(Mutex<Vec<ProgressEvent>>);

impl Recorder {
    fn events(&self) -> Vec<ProgressEvent> {
        self.0.lock().expect("recorder lock").clone()
    }

    /// The `(done, total)` of every `Bytes` event.
    fn bytes(&self) -> Vec<(u64, Option<u64>)> {
        let bytes = |e: &ProgressEvent| match e.kind {
            EventKind::Bytes { done, total } => Some((done, total)),
            _ => None,
        };
        self.events().iter().filter_map(bytes).collect()
    }
}

impl ProgressSink for Recorder {
    fn emit(&self, event: &ProgressEvent) {
        self.0.lock().expect("recorder lock").push(event.clone());
    }
}
