//! Clone images ([`toygres_core::ImageFormat::Clone`]) on Kubernetes: CSI `VolumeSnapshot`s of
//! the source instance's PVC, restored as PVCs provisioned from them.
//!
//! Set [`crate::K8sConfig::volume_snapshot_class`] to use them; without it a clone image is
//! refused with [`Error::UnsupportedFormat`] before anything is created ([`snapshot_class`]), and
//! the executor never reads or deletes a `VolumeSnapshot`.
//!
//! **Taking one** (`start_backup_job`, then `wait_for_job`): the backup Job runs
//! `templates/backup-clone.sh` in the source's PostgreSQL image: it records the source (version,
//! locale), uploads the roles (`globals.sql.zst`) and runs `CHECKPOINT`; its `upload` container
//! writes the manifest with `clone: {kind: volume-snapshot, name: snap-<image-id>, size: <the
//! source PVC's capacity>}`, sealed like every manifest. Once the Job has completed, the executor
//! creates the `VolumeSnapshot` `snap-<image-id>` of `pg-<source-id>` in the configured class
//! (`templates/volumesnapshot.yaml`) and waits until its `status.readyToUse`; a `status.error`
//! fails the step at once with its message, Warning events on it that last
//! [`crate::K8sConfig::stuck_grace`] fail it with theirs. The Job carries the source PVC in its
//! [`CLONE_OF_ANNOTATION`], so a re-run after a crash takes the same snapshot (it already exists:
//! success).
//!
//! **Why crash-consistent is enough.** The instance's data directory, `pg_wal` included, is on
//! its one PVC, and a CSI snapshot of a volume is atomic. PostgreSQL's documentation ("File System
//! Level Backup") says of such a "frozen snapshot" of the volume holding the database: started on
//! it, the server sees a crash and replays the WAL, which is what it does after a power loss;
//! the `CHECKPOINT` just before only shortens that replay. `pg_backup_start`/`pg_backup_stop` are
//! needed only when the snapshot is not atomic or spans volumes (tablespaces elsewhere, which the
//! backup Job refuses), so they are not used.
//!
//! **Restoring one** (`start_restore_job`): the verified manifest says the format. The executor
//! checks the snapshot (it exists, is toygres's for this image, is ready), replaces the empty PVC
//! `create_volume` made (nothing was written to it) by one whose `dataSource` is the snapshot, at
//! least its `restoreSize`, and runs the one-container restore Job of
//! `templates/restore-clone-job.yaml`: same major, the instance's configuration applied as for a
//! physical restore, the stale `postmaster.pid` removed, the marker written. Nothing is
//! downloaded; the roles and the password hash are the source's, as the instance's Secret (the
//! image's source password) says.
//!
//! **Independence.** A PVC provisioned from a snapshot is a new volume (on Azure Disk, a new
//! managed disk whose data Azure copies from the snapshot in the background): writes to a clone
//! change neither the snapshot nor the source, and deleting the image deletes only its
//! `VolumeSnapshot` (`delete_image`); clones made from it keep their disks. The external
//! snapshotter keeps a snapshot that a PVC is still being provisioned from until that is done.

mod backup;
mod manifests;
mod restore;

use crate::api;
use crate::config::K8sConfig;
use crate::executor::K8sExecutor;
use crate::names;
use crate::snapshot::VolumeSnapshot;
use kube::api::ListParams;
use kube::ResourceExt;
use std::collections::BTreeSet;
use toygres_core::{Error, ImageFormat, ImageId, InstanceSpec, Result};

/// Annotation of a clone image's backup Job: the PVC whose snapshot completes it.
pub const CLONE_OF_ANNOTATION: &str = "toygres.io/clone-of";

/// The source of a clone image: its instance's PVC and that volume's size in bytes.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SnapshotSource {
    /// The PVC to snapshot (`pg-<instance-id>`).
    pub pvc: String,
    /// Its capacity (or request) in bytes: what the manifest records as the clone's size.
    pub size: u64,
}

/// The configured `VolumeSnapshotClass`, or [`Error::UnsupportedFormat`] saying what to set.
pub fn snapshot_class(config: &K8sConfig) -> Result<&str> {
    config.volume_snapshot_class.as_deref().ok_or_else(|| Error::UnsupportedFormat {
        format: ImageFormat::Clone,
        reason: "the Kubernetes executor keeps clone images as CSI VolumeSnapshots, and no snapshot class is \
                 configured: set K8sConfig::volume_snapshot_class (on AKS: \"csi-azuredisk-vsc\", see \
                 docs/azure-aks.md), or take a physical image"
            .into(),
    })
}

impl K8sExecutor {
    /// `check_source` of a clone image: a snapshot class configured, the cluster serving the
    /// `VolumeSnapshot` API, and the source's PVC there to snapshot.
    pub(crate) async fn check_clone_source(&self, source: &InstanceSpec) -> Result<()> {
        snapshot_class(&self.config)?;
        let snapshots = self.api::<VolumeSnapshot>();
        if let Err(e) = snapshots.list(&ListParams::default().limit(1)).await {
            if api::status_code(&e) == Some(404) {
                return Err(Error::UnsupportedFormat {
                    format: ImageFormat::Clone,
                    reason: "the cluster serves no VolumeSnapshot API (snapshot.storage.k8s.io/v1): install the \
                             snapshot CRDs and controller (AKS has them with the Azure Disk CSI driver)"
                        .into(),
                });
            }
            return Err(api::error("listing VolumeSnapshots", e));
        }
        self.clone_source(source).await.map(|_| ())
    }

    /// `delete_image`: deletes the image's `VolumeSnapshot` (absent is success). Volumes already
    /// provisioned from it do not refer to it. Nothing to do when no snapshot class is configured.
    pub(crate) async fn delete_clone(&self, image: ImageId) -> Result<()> {
        if self.config.volume_snapshot_class.is_none() {
            return Ok(());
        }
        match self.api::<VolumeSnapshot>().get_opt(&names::snapshot_name(image)).await {
            Ok(Some(snapshot))
                if !names::owned_by(snapshot.labels().into(), names::IMAGE_LABEL, &image.to_string()) =>
            {
                tracing::warn!(snapshot = %snapshot.name_any(), "not toygres's VolumeSnapshot for this image: kept");
                Ok(())
            }
            Ok(Some(_)) => api::delete(&self.api::<VolumeSnapshot>(), &names::snapshot_name(image)).await,
            Ok(None) => Ok(()),
            Err(e) if api::status_code(&e) == Some(404) => Ok(()),
            Err(e) => Err(api::error(&format!("reading VolumeSnapshot {}", names::snapshot_name(image)), e)),
        }
    }

    /// `list_images`: the images of the namespace's toygres `VolumeSnapshot`s, sorted, once each.
    /// None when no snapshot class is configured or the cluster serves no `VolumeSnapshot` API.
    pub(crate) async fn kept_clones(&self) -> Result<Vec<ImageId>> {
        if self.config.volume_snapshot_class.is_none() {
            return Ok(Vec::new());
        }
        let snapshots = self.api::<VolumeSnapshot>();
        let listed = match snapshots.list(&ListParams::default().labels(&names::clones_selector())).await {
            Ok(list) => list.items,
            Err(e) if api::status_code(&e) == Some(404) => return Ok(Vec::new()),
            Err(e) => return Err(api::error("listing VolumeSnapshots", e)),
        };
        let ids: BTreeSet<ImageId> =
            listed.iter().filter_map(|s| names::image_of(s.metadata.labels.as_ref())).collect();
        Ok(ids.into_iter().collect())
    }
}
