//! Deterministic names and the labels that let `delete` find everything toygres created.

use std::collections::BTreeMap;
use toygres_core::{ImageId, InstanceId, InstanceSpec};

/// `app.kubernetes.io/managed-by`, set to [`MANAGED_BY`] on every object.
pub const MANAGED_BY_LABEL: &str = "app.kubernetes.io/managed-by";
/// Value of [`MANAGED_BY_LABEL`].
pub const MANAGED_BY: &str = "toygres";
/// The instance an object belongs to.
pub const INSTANCE_LABEL: &str = "toygres.io/instance";
/// The image a backup object belongs to.
pub const IMAGE_LABEL: &str = "toygres.io/image";
/// The component: `postgres`, `backup`, `restore` or `clone` (a clone image's `VolumeSnapshot`).
pub const COMPONENT_LABEL: &str = "toygres.io/component";
/// The pod label AKS workload identity looks for.
pub const WORKLOAD_IDENTITY_LABEL: &str = "azure.workload.identity/use";
/// The label Kubernetes puts on a Job's pods.
pub const JOB_NAME_LABEL: &str = "job-name";
/// The label Kubernetes (1.27 and later) puts on a Job's pods: the Job's uid, unique across
/// Jobs of the same name.
pub const CONTROLLER_UID_LABEL: &str = "batch.kubernetes.io/controller-uid";

/// Labels of the objects of one instance (`component`: `postgres` or `restore`).
pub fn instance_labels(id: InstanceId, component: &str) -> BTreeMap<String, String> {
    BTreeMap::from([
        (MANAGED_BY_LABEL.to_string(), MANAGED_BY.to_string()),
        (INSTANCE_LABEL.to_string(), id.to_string()),
        (COMPONENT_LABEL.to_string(), component.to_string()),
    ])
}

/// Labels of the objects of one image's backup.
pub fn image_labels(id: ImageId) -> BTreeMap<String, String> {
    BTreeMap::from([
        (MANAGED_BY_LABEL.to_string(), MANAGED_BY.to_string()),
        (IMAGE_LABEL.to_string(), id.to_string()),
        (COMPONENT_LABEL.to_string(), "backup".to_string()),
    ])
}

/// Labels of a clone image's `VolumeSnapshot` (component `clone`): what `list_images` lists.
pub fn clone_labels(id: ImageId) -> BTreeMap<String, String> {
    let mut labels = image_labels(id);
    labels.insert(COMPONENT_LABEL.to_string(), "clone".to_string());
    labels
}

/// The `VolumeSnapshot` of clone image `id`: `snap-<image-id>`.
pub fn snapshot_name(id: ImageId) -> String {
    format!("snap-{id}")
}

/// The selector of every clone image's `VolumeSnapshot`.
pub fn clones_selector() -> String {
    format!("{MANAGED_BY_LABEL}={MANAGED_BY},{COMPONENT_LABEL}=clone,{IMAGE_LABEL}")
}

/// The image whose object carries `labels`: `None` unless they mark it as toygres's and its
/// [`IMAGE_LABEL`] is an image id as the executor writes it.
pub fn image_of(labels: Option<&BTreeMap<String, String>>) -> Option<ImageId> {
    id_of(labels, IMAGE_LABEL)
}

/// The id under `key` of toygres's `labels`, written as the executor writes it.
fn id_of<T: std::str::FromStr + std::fmt::Display>(labels: Option<&BTreeMap<String, String>>, key: &str) -> Option<T> {
    let labels = labels?;
    if labels.get(MANAGED_BY_LABEL).map(String::as_str) != Some(MANAGED_BY) {
        return None;
    }
    let value = labels.get(key)?;
    let id: T = value.parse().ok()?;
    (id.to_string() == *value).then_some(id)
}

/// The selector of everything an instance owns.
pub fn instance_selector(id: InstanceId) -> String {
    format!("{MANAGED_BY_LABEL}={MANAGED_BY},{INSTANCE_LABEL}={id}")
}

/// The selector of every object of some instance (its restore Job included, backups not): what
/// `list_instances` lists.
pub fn instances_selector() -> String {
    format!("{MANAGED_BY_LABEL}={MANAGED_BY},{INSTANCE_LABEL}")
}

/// The instance whose object carries `labels`: `None` unless they mark it as toygres's and its
/// [`INSTANCE_LABEL`] is an instance id as the executor writes it (the form [`instance_selector`]
/// selects on, so the instance's objects can then be deleted by it).
pub fn instance_of(labels: Option<&BTreeMap<String, String>>) -> Option<InstanceId> {
    id_of(labels, INSTANCE_LABEL)
}

/// The selector of the instance's server pod (used by its StatefulSet and Service).
pub fn server_selector(id: InstanceId) -> BTreeMap<String, String> {
    instance_labels(id, "postgres")
}

/// Name of the instance's server pod: `<resource_name>-0`.
pub fn server_pod_name(instance: &InstanceSpec) -> String {
    format!("{}-0", instance.resource_name())
}

/// The instance's in-cluster DNS name: `<name>.<namespace>.svc`, completed by the pod's DNS search
/// path (`svc.<cluster-domain>`, whatever the cluster's domain is), or the full name
/// `<name>.<namespace>.svc.<cluster_domain>` when the domain is configured.
pub fn cluster_host(instance: &InstanceSpec, namespace: &str, cluster_domain: Option<&str>) -> String {
    match cluster_domain {
        Some(domain) => format!("{}.{namespace}.svc.{domain}", instance.resource_name()),
        None => format!("{}.{namespace}.svc", instance.resource_name()),
    }
}

/// Whether `labels` mark an object as toygres's and, when given, as owned by `owner` under `key`.
pub fn owned_by(labels: Option<&BTreeMap<String, String>>, key: &str, owner: &str) -> bool {
    labels.is_some_and(|l| {
        l.get(MANAGED_BY_LABEL).map(String::as_str) == Some(MANAGED_BY) && l.get(key).map(String::as_str) == Some(owner)
    })
}
