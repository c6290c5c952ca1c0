//! Idempotent steps and deterministic names.

use super::{
    assert_job_gone, assert_nothing_left, backup_spec, finish, image_of_source, ok, present, ExecutorHarness,
    READY_TIMEOUT,
};
use crate::envelope::DataKey;
use crate::{ImageId, InstanceId, JobKind, JobRef, NoProgress, Subject};
use std::sync::Arc;

/// `create_volume` names the instance's resources by its id: afterwards the instance is listed
/// (or the harness finds its resources); a second call succeeds and changes nothing; after
/// `delete_instance` nothing of it is left, and deleting it again succeeds.
pub async fn volumes_are_named_by_instance_id(h: &dyn ExecutorHarness) {
    let executor = h.executor();
    let instance = h.new_instance();
    let password = h.source_password();
    ok(executor.create_volume(&instance, &password).await, "create_volume");
    let created = present(h, &instance).await;
    assert!(!created.is_empty(), "after create_volume nothing of instance {} is listed or found", instance.id);
    ok(executor.create_volume(&instance, &password).await, "create_volume again");
    assert_eq!(present(h, &instance).await, created, "a second create_volume changed what exists");
    ok(executor.delete_instance(&instance).await, "delete_instance");
    assert_nothing_left(h, &instance, "delete_instance").await;
    ok(executor.delete_instance(&instance).await, "delete_instance of a deleted instance");
    assert_nothing_left(h, &instance, "a second delete_instance").await;
}

/// Deleting an instance that never existed succeeds, creates nothing and leaves every other
/// instance as it was.
pub async fn deleting_an_absent_instance_touches_nothing(h: &dyn ExecutorHarness) {
    let executor = h.executor();
    let kept = h.new_instance();
    ok(executor.create_volume(&kept, &h.source_password()).await, "create_volume");
    let before = present(h, &kept).await;
    let never = h.new_instance();
    ok(executor.delete_instance(&never).await, "delete_instance of an instance that never existed");
    assert_nothing_left(h, &never, "delete_instance of an instance that never existed").await;
    assert_eq!(present(h, &kept).await, before, "deleting another instance changed this one");
    let source = h.source();
    assert!(!present(h, &source).await.is_empty(), "deleting another instance removed the source");
    ok(executor.delete_instance(&kept).await, "delete_instance");
    assert_nothing_left(h, &kept, "delete_instance").await;
}

/// A backup job is `backup-<image>`; starting it again while it runs or after it finished returns
/// the same job; deleting it, again, and deleting jobs that never started all succeed and leave
/// nothing.
pub async fn backup_jobs_are_named_by_image_and_start_once(h: &dyn ExecutorHarness) {
    let executor = h.executor();
    let image = ImageId::new();
    let spec = backup_spec(h, image, &DataKey::generate());
    let job = ok(executor.start_backup_job(&spec).await, "start_backup_job");
    assert_eq!(job, JobRef::backup(image), "the backup job's reference");
    assert_eq!(
        (job.name.as_str(), job.kind, job.subject),
        (format!("backup-{image}").as_str(), JobKind::Backup, Subject::Image(image))
    );
    assert_eq!(ok(executor.start_backup_job(&spec).await, "start_backup_job again"), job, "a re-run's job");
    ok(finish(h, &job, Arc::new(NoProgress)).await, "wait_for_job");
    let after = ok(executor.start_backup_job(&spec).await, "start_backup_job of a finished job");
    assert_eq!(after, job, "starting a finished job returns it");
    ok(finish(h, &job, Arc::new(NoProgress)).await, "wait_for_job after starting a finished job again");
    ok(executor.delete_job(&job).await, "delete_job of a finished job");
    assert_job_gone(h, &job, "delete_job").await;
    ok(executor.delete_job(&job).await, "delete_job of a deleted job");
    for never in [JobRef::backup(ImageId::new()), JobRef::restore(InstanceId::new())] {
        ok(executor.delete_job(&never).await, &format!("delete_job of {}, never started", never.name));
        assert_job_gone(h, &never, "delete_job of a job never started").await;
    }
    super::delete_image(h, &spec.location).await;
}

/// Every restore step run again converges: `create_volume` and `start_restore_job` twice (the
/// same `restore-<instance>` job), a finished restore started again, `deploy_from_volume` twice,
/// and a restore job deleted and started again after the deployment (a re-run after a crash)
/// leaves the instance ready.
pub async fn restore_steps_are_idempotent(h: &dyn ExecutorHarness) {
    let executor = h.executor();
    let image = image_of_source(h).await;
    let instance = h.new_instance();
    let password = h.source_password();
    ok(executor.create_volume(&instance, &password).await, "create_volume");
    ok(executor.create_volume(&instance, &password).await, "create_volume again");
    let spec = image.restore_into(&instance);
    let job = ok(executor.start_restore_job(&spec).await, "start_restore_job");
    assert_eq!(job, JobRef::restore(instance.id), "the restore job's reference");
    assert_eq!(job.name, format!("restore-{}", instance.id));
    assert_eq!(ok(executor.start_restore_job(&spec).await, "start_restore_job again"), job, "a re-run's job");
    ok(finish(h, &job, Arc::new(NoProgress)).await, "wait_for_job of the restore");
    let after = ok(executor.start_restore_job(&spec).await, "start_restore_job of a finished job");
    assert_eq!(after, job, "starting a finished job returns it");
    ok(finish(h, &job, Arc::new(NoProgress)).await, "wait_for_job after starting a finished restore again");

    ok(executor.deploy_from_volume(&instance).await, "deploy_from_volume");
    ok(executor.deploy_from_volume(&instance).await, "deploy_from_volume again");
    h.run_server(&instance).await;
    ok(executor.wait_until_ready(&instance, READY_TIMEOUT).await, "wait_until_ready");
    ok(executor.deploy_from_volume(&instance).await, "deploy_from_volume of a running instance");
    ok(executor.wait_until_ready(&instance, READY_TIMEOUT).await, "wait_until_ready after deploying again");

    ok(executor.delete_job(&job).await, "delete_job of the finished restore");
    assert_job_gone(h, &job, "delete_job").await;
    let rerun = ok(executor.start_restore_job(&spec).await, "start_restore_job after its job was deleted");
    assert_eq!(rerun, job);
    ok(finish(h, &rerun, Arc::new(NoProgress)).await, "wait_for_job of the re-run restore");
    ok(executor.deploy_from_volume(&instance).await, "deploy_from_volume after the re-run");
    h.run_server(&instance).await;
    ok(executor.wait_until_ready(&instance, READY_TIMEOUT).await, "wait_until_ready after the re-run");

    ok(executor.delete_instance(&instance).await, "delete_instance");
    assert_nothing_left(h, &instance, "delete_instance").await;
    assert_job_gone(h, &job, "delete_instance").await;
    ok(executor.delete_instance(&instance).await, "delete_instance again");
    ok(executor.delete_job(&job).await, "delete_job of a deleted instance's restore");
    image.delete(h).await;
}
