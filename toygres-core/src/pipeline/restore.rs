//! The restore pipeline (`create_instance` from an image): fetch image → source password →
//! verify → record → volume → restore job → wait → deploy → ready → connection strings → test.

use super::step::step;
use super::Toygres;
use crate::blob::ImageLocation;
use crate::error::{Error, Result};
use crate::executor::{InstanceSpec, JobRef, RecoverySpec, RestoreJobSpec};
use crate::ids::{ImageId, InstanceId, OperationId};
use crate::image::ImageRecord;
use crate::instance::{InstanceRecord, InstanceUpdate, NewInstance};
use crate::manifest::{Manifest, MANIFEST_NAME};
use crate::progress::{Phase, Subject};
use crate::request::CreateInstanceRequest;
use crate::secret::Password;
use crate::state::{ImageState, InstanceState};
use crate::verify::verify_image;
use crate::wal::RecoveryPlan;

/// The restore pipeline's steps. Get one with [`Toygres::restore`].
pub struct Restore {
    pub(super) t: Toygres,
}

impl Restore {
    pub(crate) fn new(t: Toygres) -> Self {
        Self { t }
    }

    /// Runs the whole pipeline. Everything that can refuse the request ([`Restore::admit`]:
    /// validation, the image `ready` and verified against its checksum, restorable, the
    /// databases it holds) runs **before** anything is created. The new instance takes the
    /// image's source password and image type, never the request's. On a later failure
    /// everything created is removed, the instance is left `failed` with the reason, and the
    /// error returned.
    /// A request with [`CreateInstanceRequest::point_in_time`] is admitted by
    /// [`Restore::begin_point_in_time`] instead.
    pub async fn run(&self, operation: OperationId, request: CreateInstanceRequest) -> Result<InstanceRecord> {
        let record = match request.point_in_time {
            Some(_) => self.begin_point_in_time(operation, &request).await?,
            None => self.begin(operation, &request).await?,
        };
        self.continue_from(record).await
    }

    /// Continues an instance after a crash, from the catalog's state: a `provisioning` instance
    /// runs its steps again (each is idempotent); `running` or `failed` is returned as it is.
    pub async fn resume(&self, instance: InstanceId) -> Result<InstanceRecord> {
        self.continue_from(self.t.catalog.get_instance(instance).await?).await
    }

    async fn continue_from(&self, record: InstanceRecord) -> Result<InstanceRecord> {
        if record.state != InstanceState::Provisioning {
            return Ok(record);
        }
        let id = record.id;
        let outcome = async {
            self.prepare_volume(id).await?;
            self.restore_job(id).await?;
            self.serve(id).await
        }
        .await;
        match outcome {
            Ok(running) => Ok(running),
            Err(error) => {
                self.fail(&record.spec(), &error).await?;
                Err(error)
            }
        }
    }

    /// The instance's volume, secret and config, its password unsealed from the catalog: steps
    /// of a durable engine take the instance's id only ([`Restore::create_volume`]).
    pub async fn prepare_volume(&self, instance: InstanceId) -> Result<()> {
        let spec = self.t.catalog.get_instance(instance).await?.spec();
        let password = self.t.catalog.instance_password(instance).await?;
        self.create_volume(&spec, &password).await
    }

    /// Starts (or finds) the instance's restore job from the image and databases its record
    /// names, and waits for it ([`Restore::start_restore_job_of`], [`Restore::wait_restore_job`]).
    /// Starting is idempotent: after a control-plane crash the job may be gone with the process
    /// that ran it, and is started again.
    pub async fn restore_job(&self, instance: InstanceId) -> Result<()> {
        let record = self.t.catalog.get_instance(instance).await?;
        let image_id = record
            .source_image_id
            .ok_or_else(|| Error::Corrupt(format!("instance {instance} is provisioning but has no source image")))?;
        let image = self.fetch_image(image_id).await?;
        let recovery = match &record.recovery {
            Some(plan) => Some(self.recovery_spec(plan).await?),
            None => None,
        };
        let job = self.start_job(&record.spec(), &image, record.databases.clone(), recovery).await?;
        self.wait_restore_job(&job).await
    }

    /// Step 1: the image, which must be `ready`.
    pub async fn fetch_image(&self, image: ImageId) -> Result<ImageRecord> {
        step(&*self.t.progress, Subject::Image(image), Phase::FetchImage, async {
            let record = self.t.catalog.get_image(image).await?;
            if record.state != ImageState::Ready {
                return Err(Error::ImageNotReady { id: image, state: record.state.to_string() });
            }
            Ok(record)
        })
        .await
    }

    /// Step 2: the source instance's password recorded with the image.
    pub async fn source_password(&self, image: ImageId) -> Result<Password> {
        let work = self.t.catalog.image_source_password(image);
        step(&*self.t.progress, Subject::Image(image), Phase::SourcePassword, work).await
    }

    /// Before anything is created: the image's data key (unwrapped: [`Error::KeyUnavailable`]
    /// when it cannot be), its bytes against its checksum and, when encrypted, its manifest
    /// authenticated under that key ([`crate::VerifyMode`], resolved against
    /// [`crate::ClusterExecutor::verifies_while_restoring`]: by default every byte, but only the
    /// manifest and the sizes when the restore job hashes every byte as it loads), then whether
    /// the executor can restore it ([`crate::ClusterExecutor::check_restorable`]).
    pub async fn verify_image(&self, image: &ImageRecord) -> Result<()> {
        let checksum = image.checksum.clone().ok_or_else(|| Error::ImageIncomplete {
            image: image.id,
            detail: "the catalog has no checksum for it".into(),
        })?;
        let location = ImageLocation::for_image(image.id);
        step(&*self.t.progress, Subject::Image(image.id), Phase::VerifyImage, async {
            let key = self.t.data_key(image).await?;
            // The one place the mode is resolved: every byte here, unless the restore job
            // checks every byte as it loads it (then the image is read once, by the job).
            let mode = self.t.options.verify.resolve(self.t.executor.verifies_while_restoring());
            let manifest = verify_image(&*self.t.blobs, &location, &checksum, key.as_ref(), mode).await?;
            self.t.executor.check_restorable(&manifest).await
        })
        .await
    }

    /// Before anything is created: every database the request names is in the image (from the
    /// record's metadata, or the verified manifest of an image recorded without it).
    pub async fn check_databases(&self, request: &CreateInstanceRequest, image: &ImageRecord) -> Result<()> {
        if request.databases.is_none() {
            return Ok(());
        }
        if let Some(metadata) = &image.metadata {
            return request.check_databases(image.id, metadata.database_names());
        }
        let checksum = image.checksum.as_deref().unwrap_or_default();
        let bytes = self.t.blobs.read(&ImageLocation::for_image(image.id), MANIFEST_NAME).await?;
        let manifest = Manifest::verified(image.id, &bytes, checksum, self.t.data_key(image).await?.as_ref())?;
        request.check_databases(image.id, manifest.databases.iter().map(|d| d.name.as_str()))
    }

    /// Creates the instance record (`provisioning`) with the image's password and image type.
    /// Idempotent on `operation` for the same request; another request under it is
    /// [`Error::OperationReused`], and after the record's deletion [`Error::OperationSpent`].
    pub async fn create_record(
        &self,
        operation: OperationId,
        request: &CreateInstanceRequest,
        image: &ImageRecord,
        source_password: &Password,
    ) -> Result<InstanceRecord> {
        self.create_record_with(operation, request, image, source_password, None).await
    }

    /// [`Restore::create_record`] of a point-in-time restore, whose record keeps its `recovery`.
    pub(super) async fn create_record_with(
        &self,
        operation: OperationId,
        request: &CreateInstanceRequest,
        image: &ImageRecord,
        source_password: &Password,
        recovery: Option<RecoveryPlan>,
    ) -> Result<InstanceRecord> {
        let mut new = NewInstance::restored(request.name.clone(), image, source_password.clone())
            .with_labels(request.labels.clone());
        new.dns_label = request.dns_label.clone();
        new.databases = request.databases.clone();
        new.request_digest = Some(request.digest());
        new.recovery = recovery;
        let work = async { super::replay::instance(operation, self.t.catalog.create_instance(operation, &new).await?) };
        step(&*self.t.progress, Subject::Image(image.id), Phase::CreateRecord, work).await
    }

    /// Step 3: the volume, secret and config of the new instance.
    pub async fn create_volume(&self, spec: &InstanceSpec, password: &Password) -> Result<()> {
        let work = self.t.executor.create_volume(spec, password);
        step(&*self.t.progress, Subject::Instance(spec.id), Phase::CreateVolume, work).await
    }

    /// Step 4: starts the restore job of every database (download, verify, pg_restore into the
    /// volume). [`Restore::start_restore_job_of`] restores a subset.
    pub async fn start_restore_job(&self, spec: &InstanceSpec, image: &ImageRecord) -> Result<JobRef> {
        self.start_restore_job_of(spec, image, None).await
    }

    /// Step 4 for `databases` of the image only (`None`: all), as the instance record lists them.
    pub async fn start_restore_job_of(
        &self,
        spec: &InstanceSpec,
        image: &ImageRecord,
        databases: Option<Vec<String>>,
    ) -> Result<JobRef> {
        self.start_job(spec, image, databases, None).await
    }

    async fn start_job(
        &self,
        spec: &InstanceSpec,
        image: &ImageRecord,
        databases: Option<Vec<String>>,
        recovery: Option<RecoverySpec>,
    ) -> Result<JobRef> {
        let work = async {
            let job = RestoreJobSpec {
                image_id: image.id,
                location: ImageLocation::for_image(image.id),
                checksum: image.checksum.clone().unwrap_or_default(),
                instance: spec.clone(),
                databases,
                data_key: self.t.data_key(image).await?,
                recovery,
            };
            self.t.executor.start_restore_job(&job).await
        };
        step(&*self.t.progress, Subject::Instance(spec.id), Phase::StartRestoreJob, work).await
    }

    /// Step 5: waits for the restore job, then removes it.
    pub async fn wait_restore_job(&self, job: &JobRef) -> Result<()> {
        step(&*self.t.progress, job.subject, Phase::WaitRestoreJob, async {
            self.t.executor.wait_for_job(job, self.t.options.restore_job_timeout, self.t.progress.clone()).await?;
            if let Err(e) = self.t.executor.delete_job(job).await {
                tracing::warn!(error = %e, job = %job.name, "could not delete the finished restore job");
            }
            Ok(())
        })
        .await
    }

    /// [`Restore::fail`] of the instance `instance`, its spec read from the catalog.
    pub async fn fail_instance(&self, instance: InstanceId, error: &Error) -> Result<InstanceRecord> {
        self.fail(&self.t.catalog.get_instance(instance).await?.spec(), error).await
    }

    /// On failure: deletes the restore job and everything the instance owns, then marks it
    /// `failed` with `error`. Idempotent.
    pub async fn fail(&self, spec: &InstanceSpec, error: &Error) -> Result<InstanceRecord> {
        step(&*self.t.progress, Subject::Instance(spec.id), Phase::Cleanup, async {
            let job = JobRef::restore(spec.id);
            if let Err(e) = self.t.executor.delete_job(&job).await {
                tracing::warn!(error = %e, job = %job.name, "could not delete the failed restore job");
            }
            self.t.executor.delete_instance(spec).await?;
            let update = InstanceUpdate::Failed { reason: error.to_string() };
            match self.t.catalog.update_instance(spec.id, InstanceState::Provisioning, update).await {
                Err(Error::StateConflict { .. }) => self.t.catalog.get_instance(spec.id).await,
                other => other,
            }
        })
        .await
    }
}
