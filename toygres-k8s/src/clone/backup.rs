//! Taking a clone image: its source volume, its backup Job, then its `VolumeSnapshot` once the
//! Job has checkpointed the source.

use super::{SnapshotSource, CLONE_OF_ANNOTATION};
use crate::api;
use crate::diagnose::events::EventWatch;
use crate::executor::K8sExecutor;
use crate::jobs::Stuck;
use crate::names;
use crate::snapshot::{snapshot_state, SnapshotState, VolumeSnapshot};
use crate::volume::quantity_bytes;
use k8s_openapi::api::batch::v1::Job;
use k8s_openapi::api::core::v1::PersistentVolumeClaim;
use toygres_core::{Error, ImageId, InstanceSpec, JobRef, Result, Subject};

impl K8sExecutor {
    /// The PVC of `source` and its size (capacity once bound, else its request). A source without
    /// one is refused ([`Error::InvalidRequest`] on `format`).
    pub(crate) async fn clone_source(&self, source: &InstanceSpec) -> Result<SnapshotSource> {
        let name = source.resource_name();
        let pvc = self
            .api::<PersistentVolumeClaim>()
            .get_opt(&name)
            .await
            .map_err(|e| api::error(&format!("reading PVC {name}"), e))?
            .ok_or_else(|| Error::InvalidRequest {
                field: "format",
                reason: format!(
                    "instance {} has no volume {name} in namespace {} to snapshot; take a logical image",
                    source.name, self.config.namespace
                ),
            })?;
        let capacity = pvc.status.as_ref().and_then(|s| s.capacity.as_ref()).and_then(|c| c.get("storage"));
        let requested = pvc
            .spec
            .as_ref()
            .and_then(|s| s.resources.as_ref())
            .and_then(|r| r.requests.as_ref())
            .and_then(|r| r.get("storage"));
        let size = capacity.or(requested).and_then(|q| quantity_bytes(&q.0)).unwrap_or(0);
        Ok(SnapshotSource { pvc: name, size })
    }

    /// After `job` succeeded: when it is a clone image's backup Job ([`CLONE_OF_ANNOTATION`]),
    /// takes the image's `VolumeSnapshot` of that PVC and waits until it is ready to use.
    pub(crate) async fn complete_clone(&self, job: &JobRef, object: &Job) -> Result<()> {
        let annotations = object.metadata.annotations.as_ref();
        let (Some(pvc), Subject::Image(image)) = (annotations.and_then(|a| a.get(CLONE_OF_ANNOTATION)), job.subject)
        else {
            return Ok(());
        };
        let snapshot = self.manifests().volume_snapshot(image, pvc)?;
        let snapshots = self.api::<VolumeSnapshot>();
        let id = image.to_string();
        api::create(&snapshots, &snapshot, |s| names::owned_by(s.metadata.labels.as_ref(), names::IMAGE_LABEL, &id))
            .await?;
        self.await_snapshot(job, image, pvc).await
    }

    /// Polls the image's `VolumeSnapshot` until `readyToUse`; its `status.error`, its deletion, or
    /// Warning events of this wait lasting the stuck grace fail `job`'s step at once, with the reason.
    async fn await_snapshot(&self, job: &JobRef, image: ImageId, pvc: &str) -> Result<()> {
        let name = names::snapshot_name(image);
        let snapshots = self.api::<VolumeSnapshot>();
        let mut stuck = Stuck::default();
        let mut watch = EventWatch::default();
        loop {
            let current =
                snapshots.get_opt(&name).await.map_err(|e| api::error(&format!("reading VolumeSnapshot {name}"), e))?;
            let Some(current) = current else {
                return Err(Error::backend_msg(
                    api::BACKEND,
                    format!("VolumeSnapshot {name} no longer exists (deleted while waiting); run the step again"),
                ));
            };
            match snapshot_state(&current) {
                SnapshotState::Ready(size) => {
                    tracing::info!(snapshot = %name, restore_size = ?size, "clone image's snapshot is ready");
                    return Ok(());
                }
                SnapshotState::Failed(message) => {
                    return Err(self.snapshot_failed(job, &name, pvc, &message).await);
                }
                SnapshotState::Pending => {
                    let uid = current.metadata.uid.as_deref();
                    let problem = self.warnings(&mut watch, "VolumeSnapshot", &name, uid, false).await.pop();
                    if let Some(problem) = stuck.check(problem, self.config.stuck_grace) {
                        let reason = format!("stuck for {:?}: {problem}", self.config.stuck_grace);
                        return Err(self.snapshot_failed(job, &name, pvc, &reason).await);
                    }
                }
            }
            tokio::time::sleep(self.config.poll_interval).await;
        }
    }

    async fn snapshot_failed(&self, job: &JobRef, name: &str, pvc: &str, message: &str) -> Error {
        let logs = self.logs_of(job).await.unwrap_or_else(|e| format!("(no logs: {e})"));
        Error::JobFailed {
            job: job.name.clone(),
            reason: format!(
                "VolumeSnapshot {name} of PVC {pvc} failed: {message}; check the snapshot class ({}) and its \
                 driver (kubectl describe volumesnapshot -n {} {name})",
                self.config.volume_snapshot_class.as_deref().unwrap_or("none"),
                self.config.namespace
            ),
            logs,
        }
    }
}
