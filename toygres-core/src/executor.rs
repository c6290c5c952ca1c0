//! [`ClusterExecutor`]: where PostgreSQL instances and backup/restore jobs run.

use crate::blob::ImageLocation;
use crate::domain::{ConnectionInfo, ImageFormat, ImageType};
use crate::envelope::DataKey;
use crate::error::Result;
use crate::ids::{ImageId, InstanceId};
use crate::manifest::Manifest;
use crate::progress::{ProgressSink, Subject};
use crate::secret::Password;
use crate::wal::{Lsn, RecoveryPlan, WalArchive};
use async_trait::async_trait;
use serde::{Deserialize, Serialize};
use std::sync::Arc;
use std::time::Duration;

pub use crate::domain::InstanceSpec;

/// The backup job's input: dump the whole `source` instance into `location`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct BackupJobSpec {
    /// The image being written.
    pub image_id: ImageId,
    /// The instance to dump.
    pub source: InstanceSpec,
    /// Its superuser password. Executors pass it by file or Secret, never as an argument.
    pub source_password: Password,
    /// Where the image goes.
    pub location: ImageLocation,
    /// Recorded in the manifest.
    pub image_type: ImageType,
    /// Logical (`pg_dump`) or physical (`pg_basebackup`).
    #[serde(default)]
    pub format: ImageFormat,
    /// The image's data key: every object, the manifest included, is sealed under it as it
    /// streams ([`crate::envelope::object`]). `None` only for an image recorded as plaintext.
    /// Executors hand it to jobs in a file or Secret, never in arguments or environments.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub data_key: Option<DataKey>,
    /// An export ([`crate::CreateImageRequest::export`]): the physical image is made of this
    /// clone image's data instead of the running `source` (which is then not contacted).
    /// `None`: an image of the running source.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub from_image: Option<CloneSource>,
}

/// The clone image an export reads ([`BackupJobSpec::from_image`]), and what the job needs to
/// verify it: its manifest's checksum and its data key. The job checks every file's sha256
/// against the clone's manifest as it reads it, and fails with
/// [`crate::Error::ChecksumMismatch`] on the first that differs.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct CloneSource {
    /// The ready clone image.
    pub image_id: ImageId,
    /// `sha256:<hex>` of its manifest, from the catalog.
    pub checksum: String,
    /// Its data key (`None`: a plaintext image), passed like [`BackupJobSpec::data_key`].
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub data_key: Option<DataKey>,
}

/// The restore job's input: load the image at `location` into `instance`'s new volume.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct RestoreJobSpec {
    /// The image.
    pub image_id: ImageId,
    /// Its objects.
    pub location: ImageLocation,
    /// `sha256:<hex>` of its manifest, from the catalog. The job refuses the image if it differs,
    /// and checks every object it loads against the manifest, before loading it or as it loads it
    /// ([`ClusterExecutor::verifies_while_restoring`]), never completing otherwise.
    pub checksum: String,
    /// The new instance (its volume was created by [`ClusterExecutor::create_volume`]).
    pub instance: InstanceSpec,
    /// Only these databases of the image (`None`: every one). The pipeline has checked that the
    /// image holds each of them; the globals (roles) are always restored.
    #[serde(default)]
    pub databases: Option<Vec<String>>,
    /// The image's data key (`None`: a plaintext image). The job authenticates every chunk
    /// before handing it on; it is passed like [`BackupJobSpec::data_key`].
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub data_key: Option<DataKey>,
    /// A point-in-time restore: after unpacking the (physical) image, replay its instance's WAL
    /// archive to the plan's target and promote. `None`: restore the image as it is.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub recovery: Option<RecoverySpec>,
}

/// The WAL replay of a point-in-time restore ([`RestoreJobSpec::recovery`]).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct RecoverySpec {
    /// What to replay, from where, to which target.
    pub plan: RecoveryPlan,
    /// The archive's data key (`None`: an unencrypted archive), passed like
    /// [`BackupJobSpec::data_key`]. Every object is authenticated before the server sees it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub data_key: Option<DataKey>,
}

impl RecoverySpec {
    /// The archive replayed.
    pub fn archive(&self) -> WalArchive {
        WalArchive::of(self.plan.source_instance_id)
    }
}

/// Continuous archiving of an instance's WAL ([`ClusterExecutor::start_wal_archiving`]).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct WalArchiveSpec {
    /// The running instance.
    pub instance: InstanceSpec,
    /// Its superuser password (the receiver connects with it; never in arguments).
    pub password: Password,
    /// The archive's data key (`None`: unencrypted), passed like [`BackupJobSpec::data_key`].
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub data_key: Option<DataKey>,
}

impl WalArchiveSpec {
    /// Where the WAL goes.
    pub fn archive(&self) -> WalArchive {
        WalArchive::of(self.instance.id)
    }
}

impl RestoreJobSpec {
    /// Whether the job loads the database `name`.
    pub fn includes(&self, name: &str) -> bool {
        self.databases.as_ref().is_none_or(|d| d.iter().any(|n| n == name))
    }

    /// Refuses ([`crate::Error::InvalidRequest`] on `databases`) a job naming a database its
    /// image's verified `manifest` lacks: a job must never skip one silently.
    pub fn check_databases(&self, manifest: &Manifest) -> Result<()> {
        let names = manifest.databases.iter().map(|d| d.name.as_str());
        crate::request::check_databases(self.image_id, self.databases.as_deref(), names)
    }
}

/// Which kind of job.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum JobKind {
    /// pg_dump + upload.
    Backup,
    /// download + verify + pg_restore.
    Restore,
}

/// A started job. Its name is deterministic (`backup-<image-id>`, `restore-<instance-id>`).
#[derive(Debug, Clone, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub struct JobRef {
    /// Job name.
    pub name: String,
    /// Kind.
    pub kind: JobKind,
    /// What it works for (progress events carry it).
    pub subject: Subject,
}

impl JobRef {
    /// The backup job of `image`.
    pub fn backup(image: ImageId) -> Self {
        Self { name: format!("backup-{image}"), kind: JobKind::Backup, subject: Subject::Image(image) }
    }

    /// The restore job of `instance`.
    pub fn restore(instance: InstanceId) -> Self {
        Self { name: format!("restore-{instance}"), kind: JobKind::Restore, subject: Subject::Instance(instance) }
    }
}

/// Runs PostgreSQL instances and backup/restore jobs.
///
/// Every method is idempotent: creating what exists (with the same deterministic name) succeeds,
/// starting a job that is already running or finished returns it, deleting what is absent succeeds.
/// Passwords reach processes by file, environment or Secret reference, never as arguments.
#[cfg_attr(any(test, feature = "testing"), mockall::automock)]
#[async_trait]
pub trait ClusterExecutor: Send + Sync {
    /// Starts the backup job of `spec` (pg_dump of every database and the globals, upload,
    /// manifest last).
    async fn start_backup_job(&self, spec: &BackupJobSpec) -> Result<JobRef>;

    /// Starts the restore job of `spec` (download, verify checksums, initialise the volume with the
    /// instance's password, apply globals, pg_restore every database).
    async fn start_restore_job(&self, spec: &RestoreJobSpec) -> Result<JobRef>;

    /// Waits until `job` finishes. `Err(JobFailed)` carries its log tail; `Err(Timeout)` after
    /// `timeout`. Byte progress, when known, goes to `progress`.
    async fn wait_for_job(&self, job: &JobRef, timeout: Duration, progress: Arc<dyn ProgressSink>) -> Result<()>;

    /// The tail of the job's logs (secrets redacted), for diagnostics.
    async fn job_logs(&self, job: &JobRef) -> Result<String>;

    /// Removes the job and its pods/processes. Idempotent.
    async fn delete_job(&self, job: &JobRef) -> Result<()>;

    /// Creates the instance's empty volume, its secret (holding `password`) and its config.
    async fn create_volume(&self, instance: &InstanceSpec, password: &Password) -> Result<()>;

    /// Refuses, with [`crate::Error::InvalidRequest`] on `format`, a source this executor cannot
    /// image in `format` (e.g. physically with `wal_level=minimal`). Called before the image is
    /// reserved; the default accepts every source.
    async fn check_source(&self, source: &InstanceSpec, password: &Password, format: ImageFormat) -> Result<()> {
        let _ = (source, password, format);
        Ok(())
    }

    /// Refuses, with [`crate::Error::UnsupportedImage`], an image this executor cannot restore (e.g.
    /// from a newer PostgreSQL major than it runs). Called with the verified manifest before
    /// anything is created; the default accepts every image.
    async fn check_restorable(&self, manifest: &Manifest) -> Result<()> {
        let _ = manifest;
        Ok(())
    }

    /// Whether this executor's restore job checks every byte it loads against the verified
    /// manifest (size and sha256 of each object, as it streams it into the load) and never marks
    /// the volume restored unless every one matched, so that the control plane need not read
    /// the image beforehand: with [`crate::VerifyMode::Auto`] (the default) the restore's verify
    /// step then checks the manifest and the objects' sizes only
    /// ([`crate::VerifyMode::resolve`]) and a restore reads the image once. The default, `false`,
    /// keeps the control plane's full check.
    fn verifies_while_restoring(&self) -> bool {
        false
    }

    /// Refuses, with [`crate::Error::UnsupportedFormat`], an export of the clone image `clone`
    /// ([`crate::CreateImageRequest::export`]) that this executor cannot make. Called before the
    /// export is recorded. The default refuses every export: an executor that can read its clone
    /// images into the blob store overrides it.
    async fn check_export(&self, clone: ImageId) -> Result<()> {
        Err(crate::Error::UnsupportedFormat {
            format: ImageFormat::Physical,
            reason: format!(
                "this executor cannot export clone image {clone} to the blob store; restore it and take a \
                 physical image of the restored instance instead"
            ),
        })
    }

    /// Initialises the instance's empty volume as a fresh cluster whose superuser has `password`
    /// (for a new instance that is not restored from an image). Idempotent. The default refuses:
    /// an executor that can create empty instances overrides it.
    async fn initialize_empty(&self, instance: &InstanceSpec, password: &Password) -> Result<()> {
        let _ = password;
        Err(crate::Error::backend_msg(
            "executor",
            format!("this executor cannot create empty instances ({}); restore it from an image", instance.name),
        ))
    }

    /// Starts PostgreSQL on the instance's (restored) volume.
    async fn deploy_from_volume(&self, instance: &InstanceSpec) -> Result<()>;

    /// Waits until the instance's server accepts connections, or `Err(Timeout)`.
    async fn wait_until_ready(&self, instance: &InstanceSpec, timeout: Duration) -> Result<()>;

    /// Where clients reach the instance.
    async fn connection_info(&self, instance: &InstanceSpec) -> Result<ConnectionInfo>;

    /// One connection attempt to `instance`, which `connection` (its [`ClusterExecutor::connection_info`])
    /// says how to reach, as the superuser with `password` (`SELECT 1`). The executor may test from
    /// where it can see the instance (the Kubernetes executor's in-cluster modes connect to its
    /// Service inside the cluster). The pipeline retries.
    async fn test_connection(
        &self,
        instance: &InstanceSpec,
        connection: &ConnectionInfo,
        password: &Password,
    ) -> Result<()>;

    /// The PostgreSQL version the deployed instance's server runs, e.g. `"18.6"`, for its record: a
    /// logical restore may run a newer major than the image's. `None` when the executor cannot tell
    /// (the default); the record then keeps the image's version.
    async fn server_version(&self, instance: &InstanceSpec) -> Result<Option<String>> {
        let _ = instance;
        Ok(None)
    }

    /// Stops the instance and removes everything it owns (server, volume, secret, config, jobs).
    /// Idempotent.
    async fn delete_instance(&self, instance: &InstanceSpec) -> Result<()>;

    /// Starts archiving `spec.instance`'s WAL continuously into its [`WalArchive`]: a receiver
    /// over a replication slot that writes each segment compressed, checksummed and sealed
    /// ([`WalArchive::encode`]) and the [`crate::wal::ArchiveHead`] at most about a second behind
    /// the server. Idempotent: an already running receiver (here or in another process sharing
    /// this executor's state) is left as it is; a receiver that stopped is started again and
    /// resumes where the slot is, so nothing is lost. The default refuses: an executor that can
    /// run a receiver overrides it.
    async fn start_wal_archiving(&self, spec: &WalArchiveSpec) -> Result<()> {
        Err(crate::Error::backend_class(
            crate::ErrorClass::Unsupported,
            "executor",
            format!(
                "this executor cannot archive WAL continuously, so instance {} cannot be protected; take scheduled \
                 images instead",
                spec.instance.name
            ),
            None,
        ))
    }

    /// Stops the instance's receiver and drops its replication slot (so the server no longer
    /// keeps WAL for it). The archive stays. Idempotent; the default has nothing to stop.
    async fn stop_wal_archiving(&self, instance: &InstanceSpec) -> Result<()> {
        let _ = instance;
        Ok(())
    }

    /// Creates the restore point `name` on the running instance (`pg_create_restore_point`) and
    /// returns where its WAL record is. The default refuses, like
    /// [`ClusterExecutor::start_wal_archiving`].
    async fn create_restore_point(&self, instance: &InstanceSpec, password: &Password, name: &str) -> Result<Lsn> {
        let _ = (password, name);
        Err(crate::Error::backend_class(
            crate::ErrorClass::Unsupported,
            "executor",
            format!("this executor cannot create restore points on instance {}", instance.name),
            None,
        ))
    }

    /// Removes what the executor keeps of `image` outside the blob store: a clone image's data
    /// ([`ImageFormat::Clone`]). Instances already cloned from it keep working (they share its
    /// blocks copy-on-write, they do not refer to it). Idempotent; the default keeps nothing.
    async fn delete_image(&self, image: ImageId) -> Result<()> {
        let _ = image;
        Ok(())
    }

    /// Ids of every image whose data this executor keeps outside the blob store (clone images),
    /// so that [`crate::Toygres::reconcile`] can remove those without a record. The default
    /// keeps none.
    async fn list_images(&self) -> Result<Vec<ImageId>> {
        Ok(Vec::new())
    }

    /// Ids of every instance this executor holds resources for (servers, volumes), recorded or
    /// not, so that [`crate::Toygres::reconcile`] can remove those without a record. The default
    /// lists none: an executor that cannot enumerate its resources leaves them to its operator.
    async fn list_instances(&self) -> Result<Vec<InstanceId>> {
        Ok(Vec::new())
    }
}
