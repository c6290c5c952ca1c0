//! The CSI `VolumeSnapshot` (`snapshot.storage.k8s.io/v1`) of a clone image, as a small typed
//! object (k8s-openapi has no type for this CRD), and what its status says.
//!
//! The fields are those of the external-snapshotter's v1 API: `spec.source.persistentVolumeClaimName`
//! and `spec.volumeSnapshotClassName` when it is created, `status.readyToUse`, `status.restoreSize`
//! (the least size of a volume made from it) and `status.error.message` once the snapshot
//! controller has acted on it.

use k8s_openapi::apimachinery::pkg::api::resource::Quantity;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::ObjectMeta;
use k8s_openapi::NamespaceResourceScope;
use serde::{Deserialize, Serialize};

/// `apiVersion` of [`VolumeSnapshot`].
pub const API_VERSION: &str = "snapshot.storage.k8s.io/v1";
/// The API group of [`VolumeSnapshot`], as a PVC's `dataSource.apiGroup` names it.
pub const API_GROUP: &str = "snapshot.storage.k8s.io";

/// A request for a point-in-time snapshot of a PVC.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct VolumeSnapshot {
    /// [`API_VERSION`].
    #[serde(default)]
    pub api_version: String,
    /// `VolumeSnapshot`.
    #[serde(default)]
    pub kind: String,
    /// Name, namespace, labels.
    pub metadata: ObjectMeta,
    /// What to snapshot, in which class.
    pub spec: VolumeSnapshotSpec,
    /// What the snapshot controller reports.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub status: Option<VolumeSnapshotStatus>,
}

/// `spec` of a [`VolumeSnapshot`].
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct VolumeSnapshotSpec {
    /// The PVC it is taken of.
    pub source: VolumeSnapshotSource,
    /// Its `VolumeSnapshotClass` (`None`: the default class of the PVC's driver).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub volume_snapshot_class_name: Option<String>,
}

/// `spec.source` of a [`VolumeSnapshot`].
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct VolumeSnapshotSource {
    /// The PVC of the namespace it is taken of.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub persistent_volume_claim_name: Option<String>,
    /// A pre-provisioned snapshot's content (never set by toygres).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub volume_snapshot_content_name: Option<String>,
}

/// `status` of a [`VolumeSnapshot`].
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct VolumeSnapshotStatus {
    /// Whether a volume can be provisioned from it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub ready_to_use: Option<bool>,
    /// The least size of a volume provisioned from it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub restore_size: Option<Quantity>,
    /// The last error of taking it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub error: Option<VolumeSnapshotError>,
    /// Its `VolumeSnapshotContent`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub bound_volume_snapshot_content_name: Option<String>,
}

/// `status.error` of a [`VolumeSnapshot`].
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct VolumeSnapshotError {
    /// What went wrong, from the snapshot controller or the CSI driver.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub message: Option<String>,
    /// When.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub time: Option<String>,
}

impl k8s_openapi::Resource for VolumeSnapshot {
    const API_VERSION: &'static str = API_VERSION;
    const GROUP: &'static str = API_GROUP;
    const KIND: &'static str = "VolumeSnapshot";
    const VERSION: &'static str = "v1";
    const URL_PATH_SEGMENT: &'static str = "volumesnapshots";
    type Scope = NamespaceResourceScope;
}

impl k8s_openapi::Metadata for VolumeSnapshot {
    type Ty = ObjectMeta;

    fn metadata(&self) -> &ObjectMeta {
        &self.metadata
    }

    fn metadata_mut(&mut self) -> &mut ObjectMeta {
        &mut self.metadata
    }
}

/// Where a [`VolumeSnapshot`] stands.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum SnapshotState {
    /// Not ready yet, no error.
    Pending,
    /// Ready to provision volumes from, with its `restoreSize` when it reports one.
    Ready(Option<String>),
    /// Failed, with the controller's or driver's message.
    Failed(String),
}

/// Reads `snapshot`'s status. An error counts even when the controller may still retry: a
/// snapshot that failed once is not what an image should keep.
pub fn snapshot_state(snapshot: &VolumeSnapshot) -> SnapshotState {
    let Some(status) = snapshot.status.as_ref() else { return SnapshotState::Pending };
    if let Some(error) = &status.error {
        let message = error.message.clone().unwrap_or_else(|| "the snapshot controller reported an error".into());
        return SnapshotState::Failed(message);
    }
    if status.ready_to_use == Some(true) {
        return SnapshotState::Ready(status.restore_size.as_ref().map(|q| q.0.clone()));
    }
    SnapshotState::Pending
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn parsed(status: serde_json::Value) -> VolumeSnapshot {
        serde_json::from_value(json!({"apiVersion": API_VERSION, "kind": "VolumeSnapshot",
            "metadata": {"name": "snap"}, "spec": {"source": {"persistentVolumeClaimName": "pg"}},
            "status": status}))
        .unwrap()
    }

    #[test]
    fn the_status_says_pending_ready_or_failed() {
        assert_eq!(snapshot_state(&parsed(json!({"readyToUse": false}))), SnapshotState::Pending);
        assert_eq!(snapshot_state(&parsed(json!(null))), SnapshotState::Pending);
        let ready = parsed(json!({"readyToUse": true, "restoreSize": "10Gi"}));
        assert_eq!(snapshot_state(&ready), SnapshotState::Ready(Some("10Gi".into())));
        let failed = parsed(json!({"readyToUse": false, "error": {"message": "quota exceeded", "time": "t"}}));
        assert_eq!(snapshot_state(&failed), SnapshotState::Failed("quota exceeded".into()));
    }
}
