//! Restoring a clone image: the instance's PVC from the image's `VolumeSnapshot`, then the
//! one-container restore Job that prepares the data directory.

use crate::api;
use crate::executor::K8sExecutor;
use crate::names;
use crate::snapshot::{snapshot_state, SnapshotState, VolumeSnapshot};
use crate::volume::quantity_bytes;
use k8s_openapi::api::core::v1::PersistentVolumeClaim;
use toygres_core::manifest::CloneKind;
use toygres_core::{Error, JobRef, Manifest, RestoreJobSpec, Result};

impl K8sExecutor {
    /// Starts the restore of the clone image of the verified `manifest` into `spec`'s instance:
    /// checks its snapshot, provisions the instance's PVC from it, launches the restore Job.
    /// Refuses, before any change, a clone this executor does not keep
    /// ([`Error::UnsupportedImage`]) and a snapshot that is gone, foreign or not ready
    /// ([`Error::ImageIncomplete`]).
    pub(crate) async fn start_clone_restore(&self, spec: &RestoreJobSpec, manifest: &Manifest) -> Result<JobRef> {
        let image = spec.image_id;
        let clone = manifest.clone.as_ref().filter(|c| c.kind == CloneKind::VolumeSnapshot).ok_or_else(|| {
            Error::UnsupportedImage {
                image,
                reason: "it is a clone kept by another executor (not a VolumeSnapshot); restore it where it was \
                         taken, or export it as a physical image"
                    .into(),
            }
        })?;
        let incomplete = |detail: String| Error::ImageIncomplete { image, detail };
        let snapshot = self
            .api::<VolumeSnapshot>()
            .get_opt(&clone.name)
            .await
            .map_err(|e| api::error(&format!("reading VolumeSnapshot {}", clone.name), e))?
            .ok_or_else(|| incomplete(format!("its VolumeSnapshot {} is gone; take the image again", clone.name)))?;
        if !names::owned_by(snapshot.metadata.labels.as_ref(), names::IMAGE_LABEL, &image.to_string()) {
            return Err(incomplete(format!("VolumeSnapshot {} is not toygres's snapshot of this image", clone.name)));
        }
        let restore_size = match snapshot_state(&snapshot) {
            SnapshotState::Ready(size) => size,
            SnapshotState::Pending => {
                return Err(incomplete(format!("its VolumeSnapshot {} is not ready", clone.name)))
            }
            SnapshotState::Failed(m) => {
                return Err(incomplete(format!("its VolumeSnapshot {} failed: {m}", clone.name)))
            }
        };
        // Render everything before the first change.
        let size = self.clone_volume_size(restore_size.as_deref());
        let major = manifest.pg_version.split('.').next().unwrap_or_default();
        let manifests = self.manifests();
        let pvc = manifests.pvc_from_snapshot(&spec.instance, &clone.name, &size)?;
        let job = manifests.clone_restore_job(spec, major)?;
        self.provision_from_snapshot(spec, &clone.name, &pvc).await?;
        self.launch(None, &job, names::INSTANCE_LABEL, &spec.instance.id.to_string()).await?;
        Ok(JobRef::restore(spec.instance.id))
    }

    /// The size of a volume made from a snapshot of `restore_size`: at least
    /// [`crate::K8sConfig::volume_size`] and the snapshot's `restoreSize`.
    fn clone_volume_size(&self, restore_size: Option<&str>) -> String {
        let configured = &self.config.volume_size;
        match restore_size {
            Some(r) if quantity_bytes(r).unwrap_or(0) > quantity_bytes(configured).unwrap_or(0) => r.to_string(),
            _ => configured.clone(),
        }
    }

    /// Makes the instance's PVC the one provisioned from `snapshot` (`pvc`): kept when it already
    /// is (a re-run), else the empty one `create_volume` made is replaced (nothing was written to
    /// it: only a restore Job writes, and this one runs on the new PVC).
    async fn provision_from_snapshot(
        &self,
        spec: &RestoreJobSpec,
        snapshot: &str,
        pvc: &PersistentVolumeClaim,
    ) -> Result<()> {
        let name = spec.instance.resource_name();
        let pvcs = self.api::<PersistentVolumeClaim>();
        let existing = pvcs.get_opt(&name).await.map_err(|e| api::error(&format!("reading PVC {name}"), e))?;
        let from_snapshot = |p: &PersistentVolumeClaim| {
            let source = p.spec.as_ref().and_then(|s| s.data_source.as_ref());
            source.is_some_and(|s| s.kind == "VolumeSnapshot" && s.name == snapshot)
        };
        match existing {
            Some(p) if from_snapshot(&p) => Ok(()),
            Some(_) => self.replace_pvc(&spec.instance, pvc).await,
            None => {
                let id = spec.instance.id.to_string();
                api::create(&pvcs, pvc, |o| names::owned_by(o.metadata.labels.as_ref(), names::INSTANCE_LABEL, &id))
                    .await?;
                Ok(())
            }
        }
    }
}
