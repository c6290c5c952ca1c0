//! The instances' NetworkPolicies (`templates/networkpolicy.yaml`, `docs/azure-aks-network.md`).
//!
//! Tenants are hostile: whoever holds an instance's password is its superuser and runs programs
//! as its server's OS user (`COPY … PROGRAM`). So each instance's server pod gets a NetworkPolicy
//! that allows it **no egress** at all (not other tenants' instances, not the control plane, the
//! Kubernetes API or the cloud metadata endpoint `169.254.169.254`, which hands out the node's
//! identity on AKS) and **ingress on TCP 5432 only**, from:
//!
//! - the client ranges, [`K8sConfig::load_balancer_source_ranges`] (`ipBlock`s; the same list is
//!   the LoadBalancer Service's `loadBalancerSourceRanges`, whose `externalTrafficPolicy: Local`
//!   keeps the clients' addresses visible to the policy),
//! - the pods of the namespaces in [`K8sConfig::client_namespaces`] (in-cluster clients),
//! - toygres's backup Job pods ([`BACKUP_PEER`]: `pg_dump`/`pg_basebackup` of the source),
//! - the in-cluster connection test's probe pods ([`PROBE_PEER`]),
//! - the control plane's pods ([`CONTROL_PLANE_PEER`], as `deploy/20-control-plane.yaml` labels
//!   them, in the instances' namespace): the connection test.
//!
//! The policy is created with the StatefulSet, before it (so the server never runs unprotected),
//! carries the instance's labels (so deleting the instance deletes it, and listing instances
//! finds it), and is named as the instance's other objects. The Jobs' own policies are
//! namespace-wide, in `deploy/30-network-policies.yaml`.

use crate::config::K8sConfig;
use crate::manifests::{check_instance, Manifests};
use crate::names::{self, COMPONENT_LABEL, MANAGED_BY, MANAGED_BY_LABEL};
use crate::render::{self, render};
use k8s_openapi::api::networking::v1::NetworkPolicy;
use serde_json::{json, Value};
use std::collections::BTreeMap;
use toygres_core::{InstanceSpec, Result};

/// The label Kubernetes (1.22 and later) puts on every namespace: its name. The instances'
/// policies select [`K8sConfig::client_namespaces`] by it.
pub const NAMESPACE_NAME_LABEL: &str = "kubernetes.io/metadata.name";

/// `toygres.io/component` of the backup Jobs' pods, which connect to their source instance.
pub const BACKUP_COMPONENT: &str = "backup";

/// The labels of the pods that may reach every instance's port, besides the configured clients:
/// the backup Jobs' pods ([`names::image_labels`] with [`crate::manifests`]'s job pod labels).
pub const BACKUP_PEER: [(&str, &str); 2] = [(MANAGED_BY_LABEL, MANAGED_BY), (COMPONENT_LABEL, BACKUP_COMPONENT)];

/// The labels of the in-cluster connection test's pods (`toygres.io/component: probe`).
pub const PROBE_PEER: [(&str, &str); 2] = [(MANAGED_BY_LABEL, MANAGED_BY), (COMPONENT_LABEL, "probe")];

/// The labels of the control plane's pods, as `deploy/20-control-plane.yaml`'s Deployment sets
/// them (a control plane in another namespace: list that namespace in
/// [`K8sConfig::client_namespaces`]).
pub const CONTROL_PLANE_PEER: [(&str, &str); 2] =
    [("app.kubernetes.io/name", "toygres"), ("app.kubernetes.io/component", "control-plane")];

fn pods(labels: &[(&str, &str)]) -> Value {
    let labels: BTreeMap<&str, &str> = labels.iter().copied().collect();
    json!({"podSelector": {"matchLabels": labels}})
}

/// The peers an instance's server admits on port 5432, in this order: the client ranges
/// (`ipBlock`), the client namespaces (`namespaceSelector`), the backup and probe Jobs' pods and
/// the control plane's pods (`podSelector`, the instances' namespace).
pub fn ingress_peers(config: &K8sConfig) -> Vec<Value> {
    let mut peers: Vec<Value> =
        config.load_balancer_source_ranges.iter().map(|cidr| json!({"ipBlock": {"cidr": cidr}})).collect();
    peers.extend(
        config
            .client_namespaces
            .iter()
            .map(|namespace| json!({"namespaceSelector": {"matchLabels": {NAMESPACE_NAME_LABEL: namespace}}})),
    );
    peers.extend([pods(&BACKUP_PEER), pods(&PROBE_PEER), pods(&CONTROL_PLANE_PEER)]);
    peers
}

impl Manifests<'_> {
    /// The instance's NetworkPolicy (see the module docs): its server pod
    /// ([`names::server_selector`]) accepts TCP 5432 from [`ingress_peers`] only and opens no
    /// connection.
    pub fn network_policy(&self, instance: &InstanceSpec) -> Result<NetworkPolicy> {
        check_instance(instance)?;
        let labels = names::instance_labels(instance.id, "postgres");
        let mut values = self.meta(&instance.resource_name(), &labels).to_vec();
        values.push(("selector", json!(names::server_selector(instance.id))));
        values.push(("peers", json!(ingress_peers(self.config()))));
        render(render::NETWORK_POLICY, &values)
    }
}
