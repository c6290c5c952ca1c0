//! Names of the orchestrations and activities, their versions, and the instance ids derived from
//! image and instance ids (so a duplicate start is a no-op).

use toygres_core::{ImageId, InstanceId, Subject};

/// Orchestration `create-image` (backup pipeline).
pub const CREATE_IMAGE: &str = "create-image";
/// Version of `create-image` this build starts: steps take the image id only, and the backup job
/// runs on the [`queue::BACKUPS`] workers.
pub const CREATE_IMAGE_VERSION: &str = "1.2.0";
/// `create-image` with the backup job on the default queue, kept registered for instances
/// earlier builds started.
pub const CREATE_IMAGE_V1_1_0: &str = "1.1.0";
/// The first `create-image`, kept registered for instances earlier builds started.
pub const CREATE_IMAGE_V1_0_0: &str = "1.0.0";
/// Orchestration `create-instance` (restore from an image, or a fresh empty instance).
pub const CREATE_INSTANCE: &str = "create-instance";
/// Version of `create-instance` this build starts: steps take the instance id only, and the
/// deploy-to-running tail is core's [`toygres_core::Restore::serve`]; the restore job runs on the
/// [`queue::RESTORES`] workers.
pub const CREATE_INSTANCE_VERSION: &str = "1.2.0";
/// `create-instance` with the restore job on the default queue, kept registered for instances
/// earlier builds started.
pub const CREATE_INSTANCE_V1_1_0: &str = "1.1.0";
/// The `create-instance` earlier builds started (the restore flow inlined step by step), kept
/// registered so that their instances finish.
pub const CREATE_INSTANCE_V1_0_5: &str = "1.0.5";
/// Orchestration `toygres-sweeper`: heals stuck records, prunes old histories, takes scheduled
/// images. One instance, [`SWEEPER_ID`], whichever process starts it first.
pub const SWEEPER: &str = "toygres-sweeper";
/// Version of the sweeper this build starts.
pub const SWEEPER_VERSION: &str = "1.0.0";
/// The sweeper's fixed instance id: every process starts it, the duplicates are no-ops, so one
/// runs without a leader election.
pub const SWEEPER_ID: &str = "toygres-sweeper";
/// Queue the orchestrations read cancellation requests from.
pub const CANCEL_QUEUE: &str = "toygres.cancel";

/// The orchestration instance id of `subject`: `create-image-<id>` or `create-instance-<id>`.
pub fn orchestration_id(subject: Subject) -> String {
    match subject {
        Subject::Image(id) => image_orchestration_id(id),
        Subject::Instance(id) => instance_orchestration_id(id),
    }
}

/// `create-image-<image-id>`.
pub fn image_orchestration_id(id: ImageId) -> String {
    format!("{CREATE_IMAGE}-{id}")
}

/// `create-instance-<instance-id>`.
pub fn instance_orchestration_id(id: InstanceId) -> String {
    format!("{CREATE_INSTANCE}-{id}")
}

/// Activity names of the current versions: `toygres.<subject>.<step>.v2`. Each takes an id (or a
/// small input of this crate's own) and reads the rest from the catalog, so its recorded input
/// never changes with core's types. A step whose input or meaning changes gets a new name.
pub mod activity {
    #![allow(missing_docs)]
    pub const BACKUP_JOB: &str = "toygres.image.backup_job.v2";
    pub const MARK_READY: &str = "toygres.image.mark_ready.v2";
    pub const IMAGE_FAIL: &str = "toygres.image.fail.v2";
    pub const CREATE_VOLUME: &str = "toygres.instance.create_volume.v2";
    pub const RESTORE_JOB: &str = "toygres.instance.restore_job.v2";
    pub const INITIALIZE_EMPTY: &str = "toygres.instance.initialize_empty.v2";
    pub const SERVE: &str = "toygres.instance.serve.v2";
    pub const INSTANCE_FAIL: &str = "toygres.instance.fail.v2";
    pub const KILL_JOB: &str = "toygres.job.kill.v2";
    pub const SWEEP: &str = "toygres.sweeper.sweep.v1";
}

/// Worker queues (duroxide activity tags) with their own capacity, so that a burst of one kind of
/// job never starves the other: scheduled backups do not hold up a user's restore.
pub mod queue {
    /// Backup jobs of `create-image` 1.2.0.
    pub const BACKUPS: &str = "toygres.backups";
    /// Restore jobs of `create-instance` 1.2.0.
    pub const RESTORES: &str = "toygres.restores";
}

/// Activity names of `create-image` 1.0.0 and `create-instance` 1.0.5 (frozen: their recorded
/// inputs are core records).
pub mod activity_v1 {
    #![allow(missing_docs)]
    pub const LOOKUP_SOURCE: &str = "toygres.backup.lookup_source";
    pub const RUN_BACKUP_JOB: &str = "toygres.backup.run_backup_job";
    pub const MARK_READY: &str = "toygres.backup.mark_ready";
    pub const MARK_FAILED: &str = "toygres.backup.mark_failed";
    pub const FETCH_IMAGE: &str = "toygres.restore.fetch_image";
    pub const SOURCE_PASSWORD: &str = "toygres.restore.source_password";
    pub const VERIFY_IMAGE: &str = "toygres.restore.verify_image";
    pub const CREATE_VOLUME: &str = "toygres.restore.create_volume";
    pub const START_RESTORE_JOB: &str = "toygres.restore.start_restore_job";
    pub const WAIT_RESTORE_JOB: &str = "toygres.restore.wait_restore_job";
    pub const DEPLOY: &str = "toygres.restore.deploy";
    pub const WAIT_READY: &str = "toygres.restore.wait_ready";
    pub const CONNECTION_STRINGS: &str = "toygres.restore.connection_strings";
    pub const TEST_CONNECTION: &str = "toygres.restore.test_connection";
    pub const MARK_RUNNING: &str = "toygres.restore.mark_running";
    pub const FAIL: &str = "toygres.restore.fail";
    pub const INITIALIZE_EMPTY: &str = "toygres.provision.initialize_empty";
    pub const KILL_JOB: &str = "toygres.job.kill";
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ids_derive_from_the_subject() {
        let id = InstanceId::new();
        assert_eq!(orchestration_id(Subject::Instance(id)), format!("create-instance-{id}"));
        assert!(semver::Version::parse(CREATE_INSTANCE_VERSION).is_ok());
    }
}
