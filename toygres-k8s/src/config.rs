//! [`K8sConfig`]: namespace, images, storage, exposure and timing of the Kubernetes executor.

use crate::resources::Resources;
use serde::{Deserialize, Serialize};
use std::time::Duration;
use toygres_core::{Error, ImageType, Result};

/// The PostgreSQL container image of each [`ImageType`]. `{major}` in an image is replaced by the
/// instance's major version (`"15"` for `pg_version = "15.18"`, [`PostgresImages::default_major`] when
/// unknown). The image must run its server as [`K8sConfig::postgres_uid`] and ship bash, coreutils,
/// sed, awk, tar, `postgres`, `initdb`, `pg_ctl`, `psql`, `pg_dump`, `pg_dumpall`, `pg_basebackup`
/// and `pg_restore` on `PATH` (the official `postgres` images do): the backup dumps in the source's
/// image, the restore loads (or unpacks) in the target's.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct PostgresImages {
    /// Stock PostgreSQL, e.g. `postgres:{major}`.
    pub stock: String,
    /// PostgreSQL with the pg_durable extension.
    pub pg_durable: String,
    /// Major version used when an instance does not name one.
    pub default_major: String,
}

impl Default for PostgresImages {
    fn default() -> Self {
        Self {
            stock: "postgres:{major}".into(),
            pg_durable: "ghcr.io/toygres/pg-durable:{major}".into(),
            default_major: "15".into(),
        }
    }
}

impl PostgresImages {
    /// The container image for `image_type` at `pg_version`.
    ///
    /// ```
    /// use toygres_core::ImageType;
    /// use toygres_k8s::PostgresImages;
    /// let images = PostgresImages::default();
    /// assert_eq!(images.image(ImageType::Stock, Some("16.4")), "postgres:16");
    /// assert_eq!(images.image(ImageType::Stock, None), "postgres:15");
    /// ```
    pub fn image(&self, image_type: ImageType, pg_version: Option<&str>) -> String {
        let major = pg_version.and_then(|v| v.split('.').next()).filter(|m| !m.is_empty());
        let template = match image_type {
            ImageType::Stock => &self.stock,
            ImageType::PgDurable => &self.pg_durable,
        };
        template.replace("{major}", major.unwrap_or(&self.default_major))
    }
}

/// How clients reach an instance.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ServiceExposure {
    /// A `LoadBalancer` Service. With an instance `dns_label`, the Service carries the
    /// `service.beta.kubernetes.io/azure-dns-label-name` annotation and the public name is
    /// `<dns_label>.<region>.cloudapp.azure.com`.
    LoadBalancer {
        /// Azure region of the cluster, e.g. `westus2`, for the public DNS name.
        region: Option<String>,
    },
    /// A `ClusterIP` Service, reachable inside the cluster as `<name>.<namespace>.svc` (see
    /// [`K8sConfig::cluster_domain`]).
    ClusterIp,
}

/// Where an instance's connection test (`SELECT 1` over TLS as the superuser) runs from, and to
/// which address. Load-balancer source ranges apply to pods too (kube-proxy and Cilium filter
/// traffic to a LoadBalancer's address whatever its source), so from inside the cluster the test
/// goes to the instance's Service by its cluster name, which the instance's NetworkPolicy admits
/// by pod label.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ConnectionTest {
    /// The control plane's process connects to the address clients use (the public DNS name when
    /// there is one, so the test also proves it resolves; [`crate::connect`]): for a control
    /// plane outside the cluster whose address the client ranges admit.
    #[default]
    ControlPlane,
    /// The control plane's process, running in the cluster (as `deploy/20-control-plane.yaml`
    /// runs it), connects to the Service's cluster name, accepting only the instance's own
    /// certificate (its Secret's `tls.crt`).
    ControlPlaneInCluster,
    /// A one-pod Job of the namespace connects to the Service's cluster name ([`crate::probe`]):
    /// for a control plane outside the cluster that the client ranges do not admit.
    InCluster,
}

/// Settings of a [`crate::K8sExecutor`]. `K8sConfig::default()` suits an AKS cluster with a
/// `toygres` namespace; set at least [`K8sConfig::toolbox_image`].
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct K8sConfig {
    /// Namespace of every object (default `toygres`).
    pub namespace: String,
    /// Storage class of the PVCs (`None`: the cluster's default).
    pub storage_class: Option<String>,
    /// Size of each instance's PVC, e.g. `10Gi`: the restored data (nothing is staged on it; the
    /// restore refuses to start when the volume has less free space than the image's raw dumps).
    pub volume_size: String,
    /// PostgreSQL images per image type.
    pub postgres_images: PostgresImages,
    /// Image of the toolbox containers of the jobs (backup `upload`, restore `fetch`): bash,
    /// coreutils, sed, `jq` ≥ 1.6, `zstd`, the transfer program (`azcopy`) and `toygres-seal`
    /// ([`K8sConfig::seal_program`]), runnable as [`K8sConfig::postgres_uid`]. No PostgreSQL client:
    /// dumps and loads run in [`PostgresImages`].
    pub toolbox_image: String,
    /// The `toygres-seal` program of the toolbox image (this crate's binary), which seals and opens
    /// the objects of encrypted images in the jobs ([`crate::sealing`]): a name on the image's
    /// `PATH` (the default, `toygres-seal`) or an absolute path. Copy the binary into the toolbox
    /// image (`docs/azure-aks.md`); a job of an encrypted image without it fails before it moves a
    /// byte.
    #[serde(default = "default_seal_program")]
    pub seal_program: String,
    /// Service type of the instances.
    pub exposure: ServiceExposure,
    /// Service account of the job pods (one federated with a managed identity for AKS workload identity).
    /// Required with [`K8sConfig::workload_identity`].
    pub job_service_account: Option<String>,
    /// Label the job pods with `azure.workload.identity/use: "true"`, so AKS injects the identity.
    pub workload_identity: bool,
    /// UID (and GID, fsGroup) the PostgreSQL processes run as: 999 in the official images.
    pub postgres_uid: i64,
    /// How often job, pod and Service status is polled.
    pub poll_interval: Duration,
    /// How long `connection_info` waits for a LoadBalancer address.
    pub load_balancer_timeout: Duration,
    /// Connect timeout of one connection test.
    pub connect_timeout: Duration,
    /// Log lines fetched per container of a failed job.
    pub log_tail_lines: i64,
    /// The cluster's DNS domain (`cluster.local` on most clusters). `None` (the default): in-cluster
    /// names end in `.svc` and the pods' DNS search path completes them, so a custom domain needs
    /// no setting; set it when a client outside the pods' resolver configuration needs full names.
    #[serde(default)]
    pub cluster_domain: Option<String>,
    /// Requests and limits of every container, per role (server, the jobs' PostgreSQL and
    /// toolbox containers), with what is derived from them (azcopy's buffer and connections, the
    /// load's `maintenance_work_mem`): see [`crate::resources`].
    #[serde(default)]
    pub resources: Resources,
    /// Replaced by [`K8sConfig::resources`]: a configuration that still sets it is refused by
    /// [`K8sConfig::validate`] (saying where its values go) rather than silently ignored.
    #[serde(default, skip_serializing)]
    pub job_requests: Option<serde_json::Value>,
    /// `activeDeadlineSeconds` of the Jobs: Kubernetes ends a Job (and its pods) that runs longer,
    /// even when no one is waiting for it any more. At least the pipeline's job timeouts.
    #[serde(default = "default_job_deadline")]
    pub job_deadline: Duration,
    /// How long a pod may stay stuck (image pull back-off, missing Secret, unschedulable, volume
    /// not mounting, crash loop; see [`crate::diagnose`]) before its Job or server is declared failed
    /// with that reason. Short problems (a slow disk attach) pass. A pod refused at admission
    /// fails at once; what resolves by itself waits [`K8sConfig::transient_grace`].
    #[serde(default = "default_stuck_grace")]
    pub stuck_grace: Duration,
    /// How long a pod may wait on what resolves by itself: a node the cluster autoscaler is adding
    /// (`FailedScheduling` after its `TriggeredScaleUp` event on the pod) or a disk still attached
    /// to the node of its previous pod (`FailedAttachVolume`: Multi-Attach). Default 15 min: the
    /// autoscaler gives up on a node after its `max-node-provision-time` (AKS default `15m`), and
    /// Kubernetes force-detaches a disk from an unhealthy node after 6 min.
    #[serde(default = "default_transient_grace")]
    pub transient_grace: Duration,
    /// The client CIDRs (IPv4 or IPv6, e.g. `"203.0.113.0/24"`) allowed to connect to the
    /// instances: the LoadBalancer Services' `loadBalancerSourceRanges`, and `ipBlock`s of each
    /// instance's NetworkPolicy ([`crate::network`]; with ClusterIP exposure, in-cluster clients'
    /// pod or node ranges). **No default**: empty with LoadBalancer exposure is refused by
    /// [`K8sConfig::validate`]; list your clients' networks, or write `["0.0.0.0/0", "::/0"]` to
    /// let every address try the password (`docs/azure-aks-network.md`).
    #[serde(default)]
    pub load_balancer_source_ranges: Vec<String>,
    /// Namespaces whose pods may connect to the instances (in-cluster clients, or a control plane
    /// outside the instances' namespace): `namespaceSelector`s of each instance's NetworkPolicy,
    /// by the `kubernetes.io/metadata.name` label. Default: none. With ClusterIP exposure, this or
    /// [`K8sConfig::load_balancer_source_ranges`] must name the clients.
    #[serde(default)]
    pub client_namespaces: Vec<String>,
    /// The `VolumeSnapshotClass` of clone images ([`toygres_core::ImageFormat::Clone`], see
    /// [`crate::clone`]): each is a CSI `VolumeSnapshot` of its source's PVC in this class, and a
    /// restore is a PVC provisioned from it. `None` (the default): the executor keeps no clones, a
    /// clone image is refused with [`Error::UnsupportedFormat`] before anything is created, and no
    /// `VolumeSnapshot` is ever read or deleted (the RBAC rule on them is then not needed). On AKS
    /// the Azure Disk CSI driver installs `csi-azuredisk-vsc` (`docs/azure-aks.md`); the class's
    /// driver must be the one of [`K8sConfig::storage_class`].
    #[serde(default)]
    pub volume_snapshot_class: Option<String>,
    /// An existing `kubernetes.io/tls` Secret (keys `tls.crt`, `tls.key`; e.g. one cert-manager
    /// issues) in [`K8sConfig::namespace`] whose certificate every instance's server presents.
    /// `None` (the default): each instance gets a self-signed certificate for its Service's names,
    /// generated when its volume is created and kept in its own Secret ([`crate::tls`]).
    ///
    /// **Only for installations where all instances belong to one tenant.** Every server pod
    /// mounts this one private key, and any instance's superuser can read it (`pg_read_file`,
    /// `COPY … PROGRAM`) and impersonate every other instance, even to `sslmode=verify-full`
    /// clients when the certificate is a wildcard. Otherwise keep the default per-instance
    /// certificates. [`crate::tls::warn_if_shared_key`] logs a warning saying so when it is set.
    #[serde(default)]
    pub tls_secret: Option<String>,
    /// Where the connection test of a new instance runs from (default: the control plane).
    #[serde(default)]
    pub connection_test: ConnectionTest,
}

fn default_stuck_grace() -> Duration {
    Duration::from_secs(180)
}

fn default_transient_grace() -> Duration {
    Duration::from_secs(15 * 60)
}

fn default_seal_program() -> String {
    "toygres-seal".into()
}

fn default_job_deadline() -> Duration {
    Duration::from_secs(3 * 3600)
}

impl Default for K8sConfig {
    fn default() -> Self {
        Self {
            namespace: "toygres".into(),
            storage_class: None,
            volume_size: "10Gi".into(),
            postgres_images: PostgresImages::default(),
            toolbox_image: "ghcr.io/toygres/toolbox:latest".into(),
            seal_program: default_seal_program(),
            exposure: ServiceExposure::LoadBalancer { region: None },
            job_service_account: None,
            workload_identity: true,
            postgres_uid: 999,
            poll_interval: Duration::from_secs(2),
            load_balancer_timeout: Duration::from_secs(300),
            connect_timeout: Duration::from_secs(30),
            log_tail_lines: 100,
            cluster_domain: None,
            resources: Resources::default(),
            job_requests: None,
            job_deadline: default_job_deadline(),
            stuck_grace: default_stuck_grace(),
            transient_grace: default_transient_grace(),
            load_balancer_source_ranges: Vec::new(),
            client_namespaces: Vec::new(),
            volume_snapshot_class: None,
            tls_secret: None,
            connection_test: ConnectionTest::default(),
        }
    }
}

impl K8sConfig {
    /// The in-cluster DNS name of `instance`'s Service.
    pub fn cluster_host(&self, instance: &toygres_core::InstanceSpec) -> String {
        crate::names::cluster_host(instance, &self.namespace, self.cluster_domain.as_deref())
    }

    /// Who may connect must be decided: a LoadBalancer with no client ranges would admit every
    /// address, and a ClusterIP instance with neither ranges nor namespaces no client at all.
    fn validate_clients(&self) -> Result<()> {
        for namespace in &self.client_namespaces {
            toygres_core::request::validate_dns1123_label("client_namespaces", namespace)?;
        }
        let field = "load_balancer_source_ranges";
        let no_ranges = self.load_balancer_source_ranges.is_empty();
        match self.exposure {
            ServiceExposure::LoadBalancer { .. } if no_ranges => Err(Error::InvalidRequest {
                field,
                reason: "a LoadBalancer exposes the instances on the internet: list the client CIDRs allowed to \
                         connect (e.g. [\"203.0.113.0/24\"]), or [\"0.0.0.0/0\", \"::/0\"] to let every address \
                         try the password (docs/azure-aks-network.md)"
                    .into(),
            }),
            ServiceExposure::ClusterIp if no_ranges && self.client_namespaces.is_empty() => {
                Err(Error::InvalidRequest {
                    field: "client_namespaces",
                    reason: "with ClusterIP exposure only the control plane could reach the instances: list the \
                             namespaces of their clients (client_namespaces) or their CIDRs \
                             (load_balancer_source_ranges)"
                        .into(),
                })
            }
            _ => Ok(()),
        }
    }

    /// Checks the settings; a bad one is an [`Error::InvalidRequest`] naming it.
    pub fn validate(&self) -> Result<()> {
        toygres_core::request::validate_dns1123_label("namespace", &self.namespace)?;
        match &self.job_service_account {
            Some(sa) => toygres_core::request::validate_dns1123_label("job_service_account", sa)?,
            None if self.workload_identity => {
                return Err(Error::InvalidRequest {
                    field: "job_service_account",
                    reason: "workload identity needs the job pods' service account (one annotated with \
                             azure.workload.identity/client-id and federated with a managed identity); without \
                             it the jobs run as `default` and get no identity"
                        .into(),
                })
            }
            None => {}
        }
        let valid_quantity = |q: &str| {
            q.trim_end_matches(|c: char| c.is_ascii_alphabetic()).parse::<f64>().is_ok()
                && q.chars().all(|c| c.is_ascii_alphanumeric() || c == '.')
        };
        for (field, quantity) in [("volume_size", &self.volume_size)] {
            if !valid_quantity(quantity) {
                return Err(Error::InvalidRequest {
                    field,
                    reason: format!("{quantity:?} is not a Kubernetes quantity; use e.g. \"10Gi\" or \"500m\""),
                });
            }
        }
        if self.job_requests.is_some() {
            return Err(Error::InvalidRequest {
                field: "job_requests",
                reason: "replaced by `resources`: move its cpu and memory to resources.job_postgres and \
                         resources.job_toolbox (memory is now a request and a limit, see docs/azure-aks-pods.md)"
                    .into(),
            });
        }
        self.resources.server.validate("resources.server")?;
        self.resources.job_postgres.validate("resources.job_postgres")?;
        self.resources.job_toolbox.validate("resources.job_toolbox")?;
        if self.job_deadline.as_secs() < 60 {
            return Err(Error::InvalidRequest { field: "job_deadline", reason: "must be at least a minute".into() });
        }
        for (field, image) in [
            ("toolbox_image", &self.toolbox_image),
            ("postgres_images.stock", &self.postgres_images.stock),
            ("postgres_images.pg_durable", &self.postgres_images.pg_durable),
        ] {
            if image.is_empty() || image.chars().any(char::is_whitespace) {
                return Err(Error::InvalidRequest { field, reason: format!("{image:?} is not a container image") });
            }
        }
        let program = &self.seal_program;
        if program.is_empty()
            || program.chars().any(|c| c.is_whitespace() || c.is_control())
            || (program.contains('/') && !program.starts_with('/'))
        {
            return Err(Error::InvalidRequest {
                field: "seal_program",
                reason: format!(
                    "{program:?} is not a program of the toolbox image: use a name on its PATH (toygres-seal) or an \
                     absolute path"
                ),
            });
        }
        if let Some(domain) = &self.cluster_domain {
            if domain.is_empty()
                || domain
                    .split('.')
                    .any(|l| toygres_core::request::validate_dns1123_label("cluster_domain", l).is_err())
            {
                return Err(Error::InvalidRequest {
                    field: "cluster_domain",
                    reason: format!("{domain:?} is not a DNS domain; use e.g. \"cluster.local\""),
                });
            }
        }
        self.validate_clients()?;
        for range in &self.load_balancer_source_ranges {
            let valid = range.split_once('/').is_some_and(|(ip, bits)| {
                let max = if ip.contains(':') { 128 } else { 32 };
                ip.parse::<std::net::IpAddr>().is_ok() && bits.parse::<u8>().is_ok_and(|b| b <= max)
            });
            if !valid {
                return Err(Error::InvalidRequest {
                    field: "load_balancer_source_ranges",
                    reason: format!("{range:?} is not a CIDR; use e.g. \"203.0.113.0/24\" or \"2001:db8::/32\""),
                });
            }
        }
        if let Some(class) = &self.volume_snapshot_class {
            let valid = !class.is_empty()
                && class.len() <= 253
                && class
                    .split('.')
                    .all(|l| toygres_core::request::validate_dns1123_label("volume_snapshot_class", l).is_ok());
            if !valid {
                return Err(Error::InvalidRequest {
                    field: "volume_snapshot_class",
                    reason: format!("{class:?} is not a VolumeSnapshotClass name; use e.g. \"csi-azuredisk-vsc\""),
                });
            }
        }
        if let Some(secret) = &self.tls_secret {
            let valid = !secret.is_empty()
                && secret.len() <= 253
                && secret.split('.').all(|l| toygres_core::request::validate_dns1123_label("tls_secret", l).is_ok());
            if !valid {
                return Err(Error::InvalidRequest {
                    field: "tls_secret",
                    reason: format!(
                        "{secret:?} is not a Secret name; name a kubernetes.io/tls Secret, e.g. \"toygres-tls\""
                    ),
                });
            }
        }
        if self.poll_interval.is_zero() {
            return Err(Error::InvalidRequest { field: "poll_interval", reason: "must be greater than zero".into() });
        }
        Ok(())
    }
}
