//! The backup pipeline (`create_image`): reserve → look up source → backup job → mark ready.

use super::step::step;
use super::Toygres;
use crate::blob::ImageLocation;
use crate::envelope::DataKey;
use crate::error::{Error, Result};
use crate::executor::{BackupJobSpec, CloneSource, InstanceSpec, JobRef};
use crate::ids::{ImageId, OperationId};
use crate::image::{ImageFormat, ImageRecord, ImageType, ImageUpdate, NewImage};
use crate::manifest::{sha256_hex, Manifest, MANIFEST_NAME};
use crate::metadata::ImageMetadata;
use crate::progress::{Phase, Subject};
use crate::request::CreateImageRequest;
use crate::secret::Password;
use crate::state::ImageState;
use serde::{Deserialize, Serialize};

/// Output of [`Backup::lookup_source`]: the instance to dump and its password.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct SourceInstance {
    /// The instance as the executor knows it.
    pub spec: InstanceSpec,
    /// Its superuser password; becomes the image's source password. For an export, the clone
    /// image's source password.
    pub password: Password,
    /// The format the image is taken in.
    #[serde(default)]
    pub format: ImageFormat,
    /// An export: the clone image it is made of ([`crate::NewImage::from_image`]).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub from_image: Option<ImageId>,
}

/// Output of [`Backup::run_backup_job`]: what the finished job stored.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct BackupResult {
    /// Bytes stored, manifest included.
    pub size_bytes: u64,
    /// `sha256:<hex>` of the manifest.
    pub checksum: String,
    /// Source server version from the manifest.
    pub pg_version: String,
    /// Image type written to the manifest.
    pub image_type: ImageType,
    /// Databases in the image.
    pub databases: Vec<String>,
    /// What the image holds (databases with sizes, format, times), kept on its record.
    #[serde(default)]
    pub metadata: Option<ImageMetadata>,
}

/// The backup pipeline's steps. Get one with [`Toygres::backup`].
pub struct Backup {
    pub(super) t: Toygres,
}

impl Backup {
    pub(crate) fn new(t: Toygres) -> Self {
        Self { t }
    }

    /// Runs the whole pipeline. Everything that can refuse the request ([`Backup::admit`]) runs
    /// before anything is recorded. On a failure after that, the image is left `failed` with
    /// the reason (and the job's logs), its partial blobs are removed, and the error returned.
    pub async fn run(&self, operation: OperationId, request: CreateImageRequest) -> Result<ImageRecord> {
        let record = self.begin(operation, &request).await?;
        self.continue_from(record).await
    }

    /// Continues an image after a crash, from the catalog's state: a `creating` image runs its
    /// remaining steps again (each is idempotent); a `ready` or `failed` one is returned as it is.
    ///
    /// Call it only when the image's backup is not running any more (after a crash): a
    /// `creating` image first loses what the interrupted upload left behind that listings do not
    /// show ([`crate::BlobStore::remove_staging`], e.g. multipart staging files), then its
    /// backup job runs again and overwrites the objects it had written.
    pub async fn resume(&self, image: ImageId) -> Result<ImageRecord> {
        let record = self.t.catalog.get_image(image).await?;
        if record.state == ImageState::Creating {
            let removed = self.t.blobs.remove_staging(&ImageLocation::for_image(image)).await?;
            if !removed.is_empty() {
                tracing::info!(%image, removed = removed.len(), "removed the interrupted upload's staging files");
            }
        }
        self.continue_from(record).await
    }

    async fn continue_from(&self, record: ImageRecord) -> Result<ImageRecord> {
        if record.state != ImageState::Creating {
            return Ok(record);
        }
        let id = record.id;
        let outcome = async {
            self.backup_job(id).await?;
            self.complete(id).await
        }
        .await;
        match outcome {
            Ok(ready) => Ok(ready),
            Err(error) => {
                self.mark_failed(id, &error).await?;
                Err(error)
            }
        }
    }

    /// Step 1: validates the request and reserves the image (`creating`). Idempotent on
    /// `operation` for the same request; another request under it is [`Error::OperationReused`],
    /// and after the image's deletion [`Error::OperationSpent`].
    pub async fn reserve_image(&self, operation: OperationId, request: &CreateImageRequest) -> Result<ImageRecord> {
        request.validate()?;
        let mut new = NewImage::new(request.name.clone(), request.instance_id)
            .with_labels(request.labels.clone())
            .with_format(request.format);
        new.description = request.description.clone();
        new.from_image = request.from_image;
        new.request_digest = Some(request.digest());
        let subject = Subject::Instance(request.instance_id);
        let work = async {
            // Fails closed before anything is recorded: no usable key, no image. A retry under
            // the same operation keeps the key the catalog recorded first.
            let id = ImageId::new();
            new.id = Some(id);
            new.encryption = self.t.keys.new_data_key(id).await?;
            super::replay::image(operation, self.t.catalog.reserve_image(operation, &new).await?)
        };
        step(&*self.t.progress, subject, Phase::ReserveImage, work).await
    }

    /// Step 2: the source instance and its password.
    pub async fn lookup_source(&self, image: &ImageRecord) -> Result<SourceInstance> {
        step(&*self.t.progress, Subject::Image(image.id), Phase::LookupSource, self.source_of(image)).await
    }

    async fn source_of(&self, image: &ImageRecord) -> Result<SourceInstance> {
        if let Some(clone) = image.from_image {
            return self.export_source(image, clone).await;
        }
        let instance = self.t.catalog.get_instance(image.source_instance_id).await?;
        let password = self.t.catalog.instance_password(instance.id).await?;
        Ok(SourceInstance { spec: instance.spec(), password, format: image.format, from_image: None })
    }

    /// An export's source: the clone image's source password, image type and version (the
    /// instance may have changed, stopped or gone since the clone was taken; its name is kept
    /// when it is still recorded, for the job's log).
    async fn export_source(&self, image: &ImageRecord, clone: ImageId) -> Result<SourceInstance> {
        let record = self.t.catalog.get_image(clone).await?;
        let password = self.t.catalog.image_source_password(clone).await?;
        let name = match self.t.catalog.get_instance(record.source_instance_id).await {
            Ok(instance) => instance.name,
            Err(Error::InstanceNotFound(_)) => record.name.clone(),
            Err(e) => return Err(e),
        };
        let spec = InstanceSpec {
            id: record.source_instance_id,
            name,
            image_type: record.image_type,
            pg_version: record.pg_version.clone(),
            dns_label: None,
        };
        Ok(SourceInstance { spec, password, format: image.format, from_image: Some(clone) })
    }

    /// What an export's job reads: the ready clone image, its checksum and data key (unwrapped
    /// here, like the image's own).
    async fn clone_source(&self, clone: ImageId) -> Result<CloneSource> {
        let record = self.t.catalog.get_image(clone).await?;
        let Some(checksum) = record.checksum.clone().filter(|_| record.state == ImageState::Ready) else {
            return Err(Error::ImageNotReady { id: clone, state: record.state.to_string() });
        };
        Ok(CloneSource { image_id: clone, checksum, data_key: self.t.data_key(&record).await? })
    }

    /// Step 3: runs the backup job and waits for it, then reads back what it stored. The data
    /// key is unwrapped here from the image's record (never carried between steps, so it never
    /// enters a durable history); an encrypted image is never written without it.
    pub async fn run_backup_job(&self, image: ImageId, source: &SourceInstance) -> Result<BackupResult> {
        let data_key = self.t.data_key(&self.t.catalog.get_image(image).await?).await?;
        let from_image = match source.from_image {
            Some(clone) => Some(self.clone_source(clone).await?),
            None => None,
        };
        let location = ImageLocation::for_image(image);
        let spec = BackupJobSpec {
            image_id: image,
            source: source.spec.clone(),
            source_password: source.password.clone(),
            location: location.clone(),
            image_type: source.spec.image_type,
            format: source.format,
            data_key,
            from_image,
        };
        let subject = Subject::Image(image);
        step(&*self.t.progress, subject, Phase::BackupJob, async {
            let started_at = chrono::Utc::now();
            let job = self.t.executor.start_backup_job(&spec).await?;
            self.t.executor.wait_for_job(&job, self.t.options.backup_job_timeout, self.t.progress.clone()).await?;
            let result = self.stored_result(image, started_at, spec.data_key.as_ref()).await?;
            let _ = self.t.executor.delete_job(&job).await;
            Ok(result)
        })
        .await
    }

    /// Steps 2 and 3 by id, for a durable engine: looks up the source (its password unsealed
    /// here, where it is used) and runs the backup job.
    pub async fn backup_job(&self, image: ImageId) -> Result<()> {
        let source = self.lookup_source(&self.t.catalog.get_image(image).await?).await?;
        self.run_backup_job(image, &source).await.map(|_| ())
    }

    /// Step 4 by id: reads what the finished backup job stored ([`Backup::stored_result`]) and
    /// marks the image `ready` with the source's password. Idempotent.
    pub async fn complete(&self, image: ImageId) -> Result<ImageRecord> {
        let record = self.t.catalog.get_image(image).await?;
        let source = self.source_of(&record).await?;
        let key = self.t.data_key(&record).await?;
        let result = self.stored_result(image, record.created_at, key.as_ref()).await?;
        self.mark_ready(image, &result, &source).await
    }

    /// What the backup job of `image`, started at `started_at`, stored: read back from its
    /// manifest (size, checksum, version, databases, metadata), authenticated under the image's
    /// data `key` when it is encrypted.
    pub async fn stored_result(
        &self,
        image: ImageId,
        started_at: chrono::DateTime<chrono::Utc>,
        key: Option<&DataKey>,
    ) -> Result<BackupResult> {
        let bytes = self.t.blobs.read(&ImageLocation::for_image(image), MANIFEST_NAME).await?;
        let manifest = Manifest::from_stored(image, &bytes, key)?;
        Ok(BackupResult {
            size_bytes: manifest.total_size(bytes.len() as u64),
            checksum: sha256_hex(&bytes),
            pg_version: manifest.pg_version.clone(),
            image_type: manifest.image_type,
            databases: manifest.databases.iter().map(|d| d.name.clone()).collect(),
            metadata: Some(ImageMetadata::from_manifest(&manifest, bytes.len() as u64, Some(started_at))),
        })
    }

    /// Step 4: marks the image `ready` with its size, checksum and the source's password.
    pub async fn mark_ready(
        &self,
        image: ImageId,
        result: &BackupResult,
        source: &SourceInstance,
    ) -> Result<ImageRecord> {
        let update = ImageUpdate::Ready {
            size_bytes: result.size_bytes,
            checksum: result.checksum.clone(),
            pg_version: result.pg_version.clone(),
            image_type: result.image_type,
            source_password: source.password.clone(),
            metadata: result.metadata.clone(),
        };
        let subject = Subject::Image(image);
        step(&*self.t.progress, subject, Phase::MarkReady, async {
            match self.t.catalog.update_image(image, ImageState::Creating, update).await {
                // A re-run after the update landed but before the caller saw it.
                Err(Error::StateConflict { .. }) => self.t.catalog.get_image(image).await.and_then(|r| {
                    if r.state == ImageState::Ready {
                        Ok(r)
                    } else {
                        Err(Error::ImageNotReady { id: image, state: r.state.to_string() })
                    }
                }),
                other => other,
            }
        })
        .await
    }

    /// On failure: removes the job, what the executor kept of the image and its partial blobs,
    /// then marks the image `failed` with `error` (which carries the job's logs when the job
    /// failed). Idempotent.
    pub async fn mark_failed(&self, image: ImageId, error: &Error) -> Result<ImageRecord> {
        step(&*self.t.progress, Subject::Image(image), Phase::Cleanup, async {
            let job = JobRef::backup(image);
            if let Err(e) = self.t.executor.delete_job(&job).await {
                tracing::warn!(error = %e, job = %job.name, "could not delete the failed backup job");
            }
            if let Err(e) = self.t.executor.delete_image(image).await {
                tracing::warn!(error = %e, "could not delete what the executor kept of the failed image");
            }
            if let Err(e) = self.t.blobs.delete(&ImageLocation::for_image(image)).await {
                tracing::warn!(error = %e, "could not delete the failed image's blobs");
            }
            let reason = error.to_string();
            match self.t.catalog.update_image(image, ImageState::Creating, ImageUpdate::Failed { reason }).await {
                Err(Error::StateConflict { .. }) => self.t.catalog.get_image(image).await,
                other => other,
            }
        })
        .await
    }
}
