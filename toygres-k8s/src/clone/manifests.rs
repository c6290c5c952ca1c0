//! The objects of clone images, rendered from the templates like every other manifest.

use super::{snapshot_class, SnapshotSource, CLONE_OF_ANNOTATION};
use crate::manifests::{add_env, check_instance, Manifests};
use crate::names;
use crate::render::{self, render};
use crate::snapshot::{VolumeSnapshot, API_GROUP};
use crate::transfer::JobTransfer;
use k8s_openapi::api::batch::v1::Job;
use k8s_openapi::api::core::v1::{EnvVar, PersistentVolumeClaim};
use serde_json::json;
use std::collections::BTreeMap;
use toygres_core::{BackupJobSpec, ImageId, InstanceSpec, JobRef, RestoreJobSpec, Result};

impl Manifests<'_> {
    /// The `VolumeSnapshot` of clone image `image`: `snap-<image-id>` of the PVC `source_pvc`, in
    /// the configured class ([`snapshot_class`]: [`toygres_core::Error::UnsupportedFormat`]
    /// without one).
    pub fn volume_snapshot(&self, image: ImageId, source_pvc: &str) -> Result<VolumeSnapshot> {
        let class = snapshot_class(self.config())?;
        let mut values = self.meta(&names::snapshot_name(image), &names::clone_labels(image)).to_vec();
        values.push(("snapshot_class", json!(class)));
        values.push(("source_pvc", json!(source_pvc)));
        render(render::VOLUME_SNAPSHOT, &values)
    }

    /// The PVC of `instance` provisioned from the `VolumeSnapshot` `snapshot`, of `size` (at
    /// least the snapshot's `restoreSize`).
    pub fn pvc_from_snapshot(
        &self,
        instance: &InstanceSpec,
        snapshot: &str,
        size: &str,
    ) -> Result<PersistentVolumeClaim> {
        let source = json!({"apiGroup": API_GROUP, "kind": "VolumeSnapshot", "name": snapshot});
        self.pvc_with(instance, size, source)
    }

    /// The backup job of a clone image of `source`: the `dump` container runs
    /// `templates/backup-clone.sh` (roles, then `CHECKPOINT`); the `upload` container writes the
    /// manifest naming the snapshot and the volume's size; the Job's [`CLONE_OF_ANNOTATION`] names
    /// the PVC the executor snapshots once it has completed.
    pub fn clone_backup_job(
        &self,
        spec: &BackupJobSpec,
        transfer: &JobTransfer,
        source: &SnapshotSource,
    ) -> Result<Job> {
        snapshot_class(self.config())?;
        let mut job = self.backup_job_with(spec, transfer, render::backup_clone_script())?;
        let env = [
            ("TOYGRES_CLONE_NAME", names::snapshot_name(spec.image_id)),
            ("TOYGRES_CLONE_SIZE", source.size.to_string()),
        ]
        .map(|(name, value)| EnvVar { name: name.into(), value: Some(value), ..EnvVar::default() });
        add_env(&mut job, "upload", &env)?;
        job.metadata.annotations = Some(BTreeMap::from([(CLONE_OF_ANNOTATION.to_string(), source.pvc.clone())]));
        Ok(job)
    }

    /// The restore job of a clone image into `spec`'s instance, whose PVC was provisioned from the
    /// image's snapshot: one container, `prepare`, in the instance's PostgreSQL image
    /// (`templates/restore-clone.sh`), refusing a server of another major than `image_major`. No
    /// Secret: nothing is downloaded and no password is needed.
    pub fn clone_restore_job(&self, spec: &RestoreJobSpec, image_major: &str) -> Result<Job> {
        let instance = &spec.instance;
        check_instance(instance)?;
        let job = JobRef::restore(instance.id);
        let labels = names::instance_labels(instance.id, "restore");
        let mut values = self.meta(&job.name, &labels).to_vec();
        values.extend([
            ("pod_labels", json!(labels)),
            ("service_account", json!(self.config().job_service_account)),
            ("postgres_uid", json!(self.config().postgres_uid)),
            ("postgres_image", json!(self.postgres_image(instance))),
            ("prepare_script", json!(render::restore_clone_script())),
            ("image_id", json!(spec.image_id.to_string())),
            ("image_major", json!(image_major)),
            ("instance_name", json!(instance.resource_name())),
        ]);
        values.extend(self.job_values(false));
        render(render::RESTORE_CLONE_JOB, &values)
    }
}
