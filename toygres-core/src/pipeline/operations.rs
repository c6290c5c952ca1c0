//! The `Toygres` entry points of both pipelines: create, register, resume and delete images and instances.

use super::step::step;
use super::Toygres;
use crate::blob::ImageLocation;
use crate::error::{Error, Result};
use crate::ids::{ImageId, InstanceId, OperationId};
use crate::image::{ImageFilter, ImageRecord, ImageUpdate};
use crate::instance::{InstanceRecord, InstanceUpdate, NewInstance};
use crate::progress::{Phase, Subject};
use crate::request::{CreateImageRequest, CreateInstanceRequest};
use crate::state::{ImageState, InstanceState};

impl Toygres {
    /// Takes an image of a running instance (the backup pipeline). See [`super::Backup::run`].
    pub async fn create_image(&self, operation: OperationId, request: CreateImageRequest) -> Result<ImageRecord> {
        self.backup().run(operation, request).await
    }

    /// Creates an instance from an image (the restore pipeline). See [`super::Restore::run`].
    pub async fn create_instance(
        &self,
        operation: OperationId,
        request: CreateInstanceRequest,
    ) -> Result<InstanceRecord> {
        self.restore().run(operation, request).await
    }

    /// Records an instance that already runs on the executor (for example one created outside
    /// toygres) so that it can be imaged. `new.state` should be `running`.
    pub async fn register_instance(&self, operation: OperationId, new: NewInstance) -> Result<InstanceRecord> {
        crate::request::validate_dns1123_label("name", &new.name)?;
        self.catalog.create_instance(operation, &new).await
    }

    /// Deletes an image: what the executor keeps of it (a clone image's data), its blobs, then
    /// its record. Refused while the image is `creating`.
    /// Resumes a deletion interrupted by a crash.
    pub async fn delete_image(&self, id: ImageId) -> Result<()> {
        step(&*self.progress, Subject::Image(id), Phase::Delete, async {
            let record = self.catalog.get_image(id).await?;
            if record.state == ImageState::Ready {
                self.refuse_while_exported(id).await?;
            }
            let state = match record.state {
                ImageState::Ready | ImageState::Failed => {
                    self.catalog.update_image(id, record.state, ImageUpdate::Deleting).await?.state
                }
                other => other,
            };
            if state != ImageState::Deleting {
                return Err(Error::InvalidTransition {
                    entity: "image",
                    from: state.to_string(),
                    to: "deleting".into(),
                });
            }
            self.executor.delete_image(id).await?;
            self.blobs.delete(&ImageLocation::for_image(id)).await?;
            self.catalog.update_image(id, ImageState::Deleting, ImageUpdate::Deleted).await?;
            self.prune_after_image(record.source_instance_id).await;
            Ok(())
        })
        .await
    }

    /// After one of its images went: the protected source's WAL that only that image needed.
    /// Best effort (the next deletion or prune catches up); unprotected sources have nothing.
    async fn prune_after_image(&self, source: InstanceId) {
        match self.prune_archive(source).await {
            Ok(_) | Err(Error::NotProtected { .. }) | Err(Error::InstanceNotFound(_)) => {}
            Err(e) => tracing::warn!(instance = %source, error = %e, "could not prune the WAL archive"),
        }
    }

    /// Refuses ([`Error::InvalidTransition`]) to delete the clone image `id` while an export of
    /// it is `creating`: the export reads its data and, when it completes, its source password.
    async fn refuse_while_exported(&self, id: ImageId) -> Result<()> {
        let creating = ImageFilter { state: Some(ImageState::Creating), ..Default::default() };
        let exports = self.catalog.list_images(&creating).await?;
        match exports.iter().find(|i| i.from_image == Some(id)) {
            Some(export) => Err(Error::InvalidTransition {
                entity: "image",
                from: format!("ready (image {} is being exported from it: wait for it or cancel it)", export.id),
                to: "deleting".into(),
            }),
            None => Ok(()),
        }
    }

    /// Deletes an instance: everything the executor created for it, then its record.
    /// Refused while it is `provisioning` (resume or let it fail first).
    pub async fn delete_instance(&self, id: InstanceId) -> Result<()> {
        step(&*self.progress, Subject::Instance(id), Phase::Delete, async {
            let record = self.catalog.get_instance(id).await?;
            let state = match record.state {
                InstanceState::Running | InstanceState::Failed => {
                    self.catalog.update_instance(id, record.state, InstanceUpdate::Deleting).await?.state
                }
                other => other,
            };
            if state != InstanceState::Deleting {
                return Err(Error::InvalidTransition {
                    entity: "instance",
                    from: state.to_string(),
                    to: "deleting".into(),
                });
            }
            // Its archive stays (restorable) until its base images go; its receiver stops first.
            if record.protection.as_ref().is_some_and(|p| p.is_active()) {
                self.unprotect(id).await?;
            }
            self.executor.delete_instance(&record.spec()).await?;
            self.catalog.update_instance(id, InstanceState::Deleting, InstanceUpdate::Deleted).await?;
            self.prune_after_image(id).await;
            Ok(())
        })
        .await
    }

    /// Continues an image after a crash. See [`super::Backup::resume`].
    pub async fn resume_image(&self, id: ImageId) -> Result<ImageRecord> {
        self.backup().resume(id).await
    }

    /// Continues an instance after a crash. See [`super::Restore::resume`].
    pub async fn resume_instance(&self, id: InstanceId) -> Result<InstanceRecord> {
        self.restore().resume(id).await
    }
}
