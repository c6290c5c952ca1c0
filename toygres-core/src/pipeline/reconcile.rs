//! Orphan collection: [`Toygres::reconcile`] compares the catalog with the blob store and the
//! executor and removes what no live record owns.

use super::Toygres;
use crate::blob::ImageLocation;
use crate::error::{Error, Result};
use crate::executor::InstanceSpec;
use crate::ids::{ImageId, InstanceId};
use crate::image::ImageType;
use crate::state::{ImageState, InstanceState};
use serde::{Deserialize, Serialize};

/// What [`Toygres::reconcile`] removed.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[non_exhaustive]
pub struct ReconcileReport {
    /// Images whose blobs (and clone data the executor kept) were deleted: no record, or a
    /// `failed`/`deleted` one.
    pub orphan_images: Vec<ImageId>,
    /// Staging leftovers of interrupted uploads (`images/<id>/<name>`), removed from images whose
    /// backup is not running.
    pub staging: Vec<String>,
    /// Instances whose executor resources (server, volume) were removed: no record, or a
    /// `failed`/`deleted` one.
    pub orphan_instances: Vec<InstanceId>,
}

impl ReconcileReport {
    /// Whether nothing was removed.
    pub fn is_empty(&self) -> bool {
        self.orphan_images.is_empty() && self.staging.is_empty() && self.orphan_instances.is_empty()
    }
}

impl Toygres {
    /// Removes what nothing owns, and reports it:
    /// - blobs of images without a record, or whose record is `failed` or `deleted` (a failed
    ///   backup owns no bytes), and what the executor keeps of them
    ///   ([`crate::ClusterExecutor::list_images`]);
    /// - staging leftovers of interrupted uploads ([`crate::BlobStore::remove_staging`]) in every
    ///   image not `creating`;
    /// - executor resources of instances without a record or with a `failed`/`deleted` one
    ///   ([`crate::ClusterExecutor::list_instances`]).
    ///
    /// Stores and executors are listed **before** the catalog is read, and a record always exists
    /// before its resources, so an image or instance being created now is never taken for an
    /// orphan. Run it when no backup of a `creating` image is being resumed. Idempotent.
    pub async fn reconcile(&self) -> Result<ReconcileReport> {
        let mut report = ReconcileReport::default();
        let mut stored = self.blobs.list_images().await?;
        let kept = self.executor.list_images().await?;
        let held = self.executor.list_instances().await?;
        stored.extend(kept.iter().filter(|id| !stored.contains(id)).copied().collect::<Vec<_>>());
        for id in stored {
            let state = match self.catalog.get_image(id).await {
                Ok(record) => Some(record.state),
                Err(Error::ImageNotFound(_)) => None,
                Err(e) => return Err(e),
            };
            let location = ImageLocation::for_image(id);
            match state {
                Some(ImageState::Creating) => {}
                Some(ImageState::Ready | ImageState::Deleting) => {
                    let removed = self.blobs.remove_staging(&location).await?;
                    report.staging.extend(removed.into_iter().map(|n| location.object(&n)));
                }
                None | Some(ImageState::Failed | ImageState::Deleted) => {
                    self.executor.delete_image(id).await?;
                    self.blobs.delete(&location).await?;
                    self.blobs.remove_staging(&location).await?;
                    report.orphan_images.push(id);
                }
            }
        }
        for id in held {
            let spec = match self.catalog.get_instance(id).await {
                Ok(record) if !matches!(record.state, InstanceState::Failed | InstanceState::Deleted) => continue,
                Ok(record) => record.spec(),
                Err(Error::InstanceNotFound(_)) => orphan_spec(id),
                Err(e) => return Err(e),
            };
            self.executor.delete_instance(&spec).await?;
            report.orphan_instances.push(id);
        }
        tracing::info!(?report, "reconcile finished");
        Ok(report)
    }
}

/// The executor's view of an instance known only by id (resource names derive from it alone).
fn orphan_spec(id: InstanceId) -> InstanceSpec {
    InstanceSpec {
        id,
        name: format!("orphan-{}", id.short()),
        image_type: ImageType::Stock,
        pg_version: None,
        dns_label: None,
    }
}
