//! Cancelling an image's backup or an instance's restore.
//!
//! Cancel is a state change first: the record moves to `failed` with the reason of
//! [`Error::Cancelled`], so that the pipeline still running it (in this process or another) can no
//! longer mark it `ready`/`running` — it notices at its next step, cleans up and returns
//! `Err(Cancelled)` (or the error its killed job reported). Then cancel stops the job
//! ([`crate::ClusterExecutor::delete_job`] kills a local job's processes) and removes what was
//! created: the image's blobs, or the instance's server and volume. Cancelling again redoes the
//! clean-up and returns the record, so a cancel interrupted by a crash is finished by calling it
//! again. A cancelled image can then be deleted like any failed one.

use super::step::step;
use super::Toygres;
use crate::blob::ImageLocation;
use crate::error::{Error, Result};
use crate::executor::JobRef;
use crate::ids::{ImageId, InstanceId};
use crate::image::{ImageRecord, ImageUpdate};
use crate::instance::{InstanceRecord, InstanceUpdate};
use crate::progress::{Phase, Subject};
use crate::state::{ImageState, InstanceState};

impl Toygres {
    /// Cancels the backup of a `creating` image: marks it `failed` ("… was cancelled"), stops its
    /// job and removes its blobs (staging leftovers included). A `ready` image cannot be cancelled
    /// ([`Error::InvalidTransition`]; delete it instead); a `failed` one only gets its clean-up redone.
    pub async fn cancel_image(&self, id: ImageId) -> Result<ImageRecord> {
        step(&*self.progress, Subject::Image(id), Phase::Cleanup, async {
            let record = self.catalog.get_image(id).await?;
            let record = match record.state {
                ImageState::Creating => {
                    let reason = Error::Cancelled { what: format!("backup of image {id}") }.to_string();
                    match self.catalog.update_image(id, ImageState::Creating, ImageUpdate::Failed { reason }).await {
                        Err(Error::StateConflict { .. }) => return Box::pin(self.cancel_image(id)).await,
                        other => other?,
                    }
                }
                ImageState::Failed => record,
                other => {
                    return Err(Error::InvalidTransition {
                        entity: "image",
                        from: other.to_string(),
                        to: "cancelled".into(),
                    })
                }
            };
            self.executor.delete_job(&JobRef::backup(id)).await?;
            self.executor.delete_image(id).await?;
            let location = ImageLocation::for_image(id);
            self.blobs.delete(&location).await?;
            self.blobs.remove_staging(&location).await?;
            Ok(record)
        })
        .await
    }

    /// Cancels the restore of a `provisioning` instance: marks it `failed` ("… was cancelled"),
    /// stops its restore job and removes its server and volume. A `running` instance cannot be
    /// cancelled ([`Error::InvalidTransition`]; delete it instead); a `failed` one only gets its
    /// clean-up redone.
    pub async fn cancel_instance(&self, id: InstanceId) -> Result<InstanceRecord> {
        step(&*self.progress, Subject::Instance(id), Phase::Cleanup, async {
            let record = self.catalog.get_instance(id).await?;
            let record = match record.state {
                InstanceState::Provisioning => {
                    let reason = Error::Cancelled { what: format!("restore of instance {id}") }.to_string();
                    let update = InstanceUpdate::Failed { reason };
                    match self.catalog.update_instance(id, InstanceState::Provisioning, update).await {
                        Err(Error::StateConflict { .. }) => return Box::pin(self.cancel_instance(id)).await,
                        other => other?,
                    }
                }
                InstanceState::Failed => record,
                other => {
                    return Err(Error::InvalidTransition {
                        entity: "instance",
                        from: other.to_string(),
                        to: "cancelled".into(),
                    })
                }
            };
            self.executor.delete_job(&JobRef::restore(id)).await?;
            self.executor.delete_instance(&record.spec()).await?;
            Ok(record)
        })
        .await
    }
}
