//! Sizing an instance's PVC from the image it receives: the control plane reads the (small, verified)
//! manifest before the restore job starts and grows the PVC when the image needs more than
//! [`crate::K8sConfig::volume_size`].

use crate::api;
use crate::executor::K8sExecutor;
use k8s_openapi::api::core::v1::PersistentVolumeClaim;
use k8s_openapi::apimachinery::pkg::api::resource::Quantity;
use kube::api::{Patch, PatchParams};
use toygres_core::manifest::MANIFEST_NAME;
use toygres_core::{InstanceSpec, Manifest, RestoreJobSpec, Result};

const GIB: u64 = 1 << 30;

/// Bytes of a Kubernetes quantity such as `10Gi`, `500M` or `1073741824` (`None` if not understood).
pub fn quantity_bytes(q: &str) -> Option<u64> {
    let split = q.find(|c: char| c.is_ascii_alphabetic()).unwrap_or(q.len());
    let (number, unit) = q.split_at(split);
    let factor: u64 = match unit {
        "" => 1,
        "Ki" => 1 << 10,
        "Mi" => 1 << 20,
        "Gi" => 1 << 30,
        "Ti" => 1 << 40,
        "k" => 1_000,
        "M" => 1_000_000,
        "G" => 1_000_000_000,
        "T" => 1_000_000_000_000,
        _ => return None,
    };
    number.parse::<f64>().ok().map(|n| (n * factor as f64) as u64)
}

/// The volume an image needs, in whole GiB: twice its uncompressed dumps (indexes are rebuilt, not
/// dumped; WAL and free space for the load) or its tar archives (the data directory and room to
/// grow) plus 1 GiB. A heuristic lower bound, never a guarantee.
pub fn needed_bytes(manifest: &Manifest) -> u64 {
    let raw: u64 = manifest.objects().map(|o| o.raw_size.unwrap_or(o.size * 4)).sum();
    (2 * raw + GIB).div_ceil(GIB) * GIB
}

impl K8sExecutor {
    /// The image's manifest, verified against the catalog's checksum and, for an encrypted image,
    /// authenticated under its data key; `None` when it cannot be read, does not verify or does not
    /// open (the restore job then reports why).
    pub(crate) async fn verified_manifest(&self, spec: &RestoreJobSpec) -> Option<Manifest> {
        let bytes = self.blobs.read(&spec.location, MANIFEST_NAME).await.ok()?;
        Manifest::verified(spec.image_id, &bytes, &spec.checksum, spec.data_key.as_ref()).ok()
    }

    /// Grows the instance's PVC to what the image of `manifest` needs, when that is more than it
    /// requests: an unbound PVC (nothing on it yet) is replaced, a bound one expanded (its storage
    /// class must allow volume expansion).
    pub(crate) async fn size_volume(&self, spec: &RestoreJobSpec, manifest: &Manifest) -> Result<()> {
        let needed = needed_bytes(manifest);
        let pvcs = self.api::<PersistentVolumeClaim>();
        let name = spec.instance.resource_name();
        let Some(pvc) = pvcs.get_opt(&name).await.map_err(|e| api::error(&format!("reading PVC {name}"), e))? else {
            return Ok(());
        };
        let requested = pvc.spec.as_ref().and_then(|s| s.resources.as_ref()).and_then(|r| r.requests.as_ref());
        let current = requested.and_then(|r| r.get("storage")).and_then(|q| quantity_bytes(&q.0)).unwrap_or(0);
        if current >= needed {
            return Ok(());
        }
        let size = format!("{}Gi", needed / GIB);
        tracing::info!(pvc = %name, size = %size, "the image needs a larger volume");
        if pvc.status.as_ref().and_then(|s| s.phase.as_deref()) == Some("Bound") {
            let patch = serde_json::json!({"spec": {"resources": {"requests": {"storage": size}}}});
            pvcs.patch(&name, &PatchParams::default(), &Patch::Merge(&patch)).await.map_err(|e| {
                api::error(
                    &format!("expanding PVC {name} to {size} (its storage class must allow volume expansion)"),
                    e,
                )
            })?;
            return Ok(());
        }
        // Unbound: nothing was written to it; replace it with one of the right size.
        let mut replacement = self.manifests().pvc(&spec.instance)?;
        if let Some(resources) = replacement.spec.as_mut().and_then(|s| s.resources.as_mut()) {
            resources.requests.get_or_insert_with(Default::default).insert("storage".into(), Quantity(size));
        }
        self.replace_pvc(&spec.instance, &replacement).await
    }

    /// Replaces `instance`'s PVC, on which nothing was written, by `replacement`: deletes it, waits
    /// until it is gone, creates the new one. A PVC toygres did not create for the instance is
    /// refused, not deleted.
    pub(crate) async fn replace_pvc(&self, instance: &InstanceSpec, replacement: &PersistentVolumeClaim) -> Result<()> {
        let pvcs = self.api::<PersistentVolumeClaim>();
        let name = instance.resource_name();
        let id = instance.id.to_string();
        let owned = |o: &PersistentVolumeClaim| {
            crate::names::owned_by(o.metadata.labels.as_ref(), crate::names::INSTANCE_LABEL, &id)
        };
        if let Some(existing) = pvcs.get_opt(&name).await.map_err(|e| api::error(&format!("reading PVC {name}"), e))? {
            if !owned(&existing) {
                return Err(toygres_core::Error::backend_msg(
                    api::BACKEND,
                    format!("PVC {name} was not created by toygres for this instance; delete or rename it, then retry"),
                ));
            }
        }
        api::delete(&pvcs, &name).await?;
        for _ in 0..60 {
            if pvcs.get_opt(&name).await.map_err(|e| api::error(&format!("reading PVC {name}"), e))?.is_none() {
                break;
            }
            tokio::time::sleep(self.config.poll_interval).await;
        }
        api::create(&pvcs, replacement, owned).await?;
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn quantities() {
        assert_eq!(quantity_bytes("10Gi"), Some(10 * GIB));
        assert_eq!(quantity_bytes("1.5Gi"), Some(3 * GIB / 2));
        assert_eq!(quantity_bytes("500M"), Some(500_000_000));
        assert_eq!(quantity_bytes("42"), Some(42));
        assert_eq!(quantity_bytes("10 gigs"), None);
    }
}
