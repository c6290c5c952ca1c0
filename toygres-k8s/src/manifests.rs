//! [`Manifests`]: every object the executor sends, rendered from the templates and typed.

use crate::config::{K8sConfig, ServiceExposure};
use crate::names::{self, WORKLOAD_IDENTITY_LABEL};
use crate::render::{self, render};
use crate::resources::{self, maintenance_work_mem_mb};
use crate::sealing;
use crate::tls;
use crate::transfer::JobTransfer;
use k8s_openapi::api::apps::v1::StatefulSet;
use k8s_openapi::api::batch::v1::Job;
use k8s_openapi::api::core::v1::{ConfigMap, EnvVar, PersistentVolumeClaim, Secret, Service};
use k8s_openapi::ByteString;
use serde_json::{json, Value};
use std::collections::BTreeMap;
use toygres_core::{BackupJobSpec, Error, ImageFormat, ImageType, InstanceSpec, JobRef, RestoreJobSpec, Result};

/// The Azure annotation that gives a LoadBalancer's public IP a DNS label.
pub const AZURE_DNS_LABEL_ANNOTATION: &str = "service.beta.kubernetes.io/azure-dns-label-name";
/// Secret key of an instance's superuser password.
pub const PASSWORD_KEY: &str = "password";
/// Secret key of the backup job's source password.
pub const BACKUP_PASSWORD_KEY: &str = "PGPASSWORD";

/// The instances' `pg_hba.conf`: over TCP only TLS connections (`hostssl`; a plaintext one finds
/// no entry and is refused) authenticated with `scram-sha-256` (a password stored as an MD5 hash
/// cannot log in). Unix-socket connections (`local`, inside the server's pod only: the image's
/// entrypoint and the readiness probe) are trusted.
///
/// Roles with MD5 hashes: a logical restore re-sets the superuser's password (the image's, which
/// the restore carries) as SCRAM after the source's roles, and logs a warning naming every other
/// role that still has an MD5 hash: each must set its password again (`ALTER ROLE … PASSWORD`,
/// as the superuser) before it can log in. A physical or clone image carries the source's hashes
/// as they are (see `docs/azure-aks-tls.md`).
///
/// The `replication` lines let the backup job of a physical image (`pg_basebackup`) reach the
/// instance over a replication connection as the superuser `postgres`, which has the `REPLICATION`
/// attribute, with its password; no other role may open one (a database entry `all` does not match
/// replication connections). They open nothing the superuser could not already do over the
/// `hostssl all` lines.
pub const PG_HBA_CONF: &str = "# Managed by toygres.\nlocal all all trust\n\
                               hostssl all all 0.0.0.0/0 scram-sha-256\nhostssl all all ::/0 scram-sha-256\n\
                               hostssl replication postgres 0.0.0.0/0 scram-sha-256\n\
                               hostssl replication postgres ::/0 scram-sha-256\n";

/// The cluster autoscaler's pod annotation; `"false"` keeps it from evicting a job pod.
pub const SAFE_TO_EVICT_ANNOTATION: &str = "cluster-autoscaler.kubernetes.io/safe-to-evict";
/// The AKS workload-identity webhook's pod annotation: `;`-separated containers it projects no token
/// into.
pub const SKIP_CONTAINERS_ANNOTATION: &str = "azure.workload.identity/skip-containers";

/// The `securityContext` of every container: Pod Security "restricted" (no privilege escalation,
/// every capability dropped; the pods set non-root and RuntimeDefault seccomp) and a read-only root
/// filesystem (each container writes to its volumes and an emptyDir at `/tmp` only).
pub(crate) fn container_security() -> Value {
    json!({"allowPrivilegeEscalation": false, "capabilities": {"drop": ["ALL"]}, "readOnlyRootFilesystem": true})
}

/// Renders the objects of instances and jobs. Pure: no API calls, so a caller can inspect exactly what
/// the executor would send.
#[derive(Debug, Clone, Copy)]
pub struct Manifests<'a> {
    config: &'a K8sConfig,
}

pub(crate) fn check_instance(instance: &InstanceSpec) -> Result<()> {
    toygres_core::request::validate_dns1123_label("name", &instance.name)?;
    if let Some(label) = &instance.dns_label {
        toygres_core::request::validate_dns1123_label("dns_label", label)?;
        check_azure_dns_label(label)?;
    }
    Ok(())
}

/// Azure's rule for a public IP's DNS label, stricter than DNS-1123: 3 to 63 characters, lowercase
/// letters, digits and hyphens, starting with a letter and ending with a letter or digit. A label
/// that breaks it makes the cloud provider refuse the Service's IP, which shows only as a timeout.
pub fn check_azure_dns_label(label: &str) -> Result<()> {
    let ok = (3..=63).contains(&label.len())
        && label.starts_with(|c: char| c.is_ascii_lowercase())
        && label.ends_with(|c: char| c.is_ascii_lowercase() || c.is_ascii_digit())
        && label.chars().all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '-');
    if ok {
        return Ok(());
    }
    Err(Error::InvalidRequest {
        field: "dns_label",
        reason: format!(
            "{label:?} is not an Azure DNS label: use 3 to 63 lowercase letters, digits and hyphens, starting \
             with a letter and ending with a letter or digit"
        ),
    })
}

/// A Job's container by name.
pub(crate) fn container<'j>(job: &'j mut Job, name: &str) -> Result<&'j mut k8s_openapi::api::core::v1::Container> {
    let pod = job.spec.as_mut().and_then(|s| s.template.spec.as_mut());
    let mut all = pod.into_iter().flat_map(|p| p.containers.iter_mut().chain(p.init_containers.iter_mut().flatten()));
    all.find(|c| c.name == name)
        .ok_or_else(|| Error::backend_msg("kubernetes executor", format!("job template has no container {name}")))
}

pub(crate) fn add_env(job: &mut Job, container_name: &str, env: &[EnvVar]) -> Result<()> {
    container(job, container_name)?.env.get_or_insert_with(Vec::new).extend_from_slice(env);
    Ok(())
}

impl<'a> Manifests<'a> {
    /// Manifests for `config`.
    pub fn new(config: &'a K8sConfig) -> Self {
        Self { config }
    }

    /// The configuration the manifests are rendered for.
    pub fn config(&self) -> &'a K8sConfig {
        self.config
    }

    pub(crate) fn meta(&self, name: &str, labels: &BTreeMap<String, String>) -> [(&'static str, Value); 3] {
        [("name", json!(name)), ("namespace", json!(self.config.namespace)), ("labels", json!(labels))]
    }

    pub(crate) fn postgres_image(&self, instance: &InstanceSpec) -> String {
        self.config.postgres_images.image(instance.image_type, instance.pg_version.as_deref())
    }

    /// The values every job template takes besides its own: its PostgreSQL container's resources
    /// and, with `toolbox`, its toolbox container's.
    pub(crate) fn job_values(&self, toolbox: bool) -> Vec<(&'static str, Value)> {
        let resources = &self.config.resources;
        let mut values = vec![
            ("postgres_resources", resources.job_postgres.requirements()),
            ("postgres_scratch", json!(resources.job_postgres.scratch_size())),
            ("active_deadline_seconds", json!(self.config.job_deadline.as_secs())),
            ("container_security", container_security()),
        ];
        if toolbox {
            values.push(("toolbox_resources", resources.job_toolbox.requirements()));
            values.push(("toolbox_scratch", json!(resources.job_toolbox.scratch_size())));
        }
        values
    }

    /// The annotations of a job pod whose PostgreSQL container is `postgres_container`: the
    /// autoscaler must not evict it, and with workload identity the webhook projects no Azure token
    /// into that container (it runs the source's or the image's SQL and needs none).
    pub(crate) fn job_pod_annotations(&self, postgres_container: &str) -> BTreeMap<String, String> {
        let mut annotations = BTreeMap::from([(SAFE_TO_EVICT_ANNOTATION.to_string(), "false".to_string())]);
        if self.config.workload_identity {
            annotations.insert(SKIP_CONTAINERS_ANNOTATION.into(), postgres_container.into());
        }
        annotations
    }

    pub(crate) fn job_pod_labels(&self, mut labels: BTreeMap<String, String>) -> BTreeMap<String, String> {
        if self.config.workload_identity {
            labels.insert(WORKLOAD_IDENTITY_LABEL.into(), "true".into());
        }
        labels
    }

    /// The instance's empty data volume.
    pub fn pvc(&self, instance: &InstanceSpec) -> Result<PersistentVolumeClaim> {
        self.pvc_with(instance, &self.config.volume_size, Value::Null)
    }

    /// The instance's PVC of `size` whose `dataSource` is `data_source` (`null`: an empty volume).
    pub(crate) fn pvc_with(
        &self,
        instance: &InstanceSpec,
        size: &str,
        data_source: Value,
    ) -> Result<PersistentVolumeClaim> {
        check_instance(instance)?;
        let labels = names::instance_labels(instance.id, "postgres");
        let mut values = self.meta(&instance.resource_name(), &labels).to_vec();
        values.push(("storage_class", json!(self.config.storage_class)));
        values.push(("volume_size", json!(size)));
        values.push(("data_source", data_source));
        render(render::PVC, &values)
    }

    /// A Secret named `name` holding `data`. The template renders only the envelope; the data is
    /// added to the typed object here.
    pub fn secret(
        &self,
        name: &str,
        labels: &BTreeMap<String, String>,
        data: BTreeMap<String, ByteString>,
    ) -> Result<Secret> {
        let mut secret: Secret = render(render::SECRET, &self.meta(name, labels))?;
        secret.data = Some(data);
        Ok(secret)
    }

    /// The instance's Secret, holding its superuser password under [`PASSWORD_KEY`] and, unless
    /// [`K8sConfig::tls_secret`] names the certificate to use, a new self-signed server certificate
    /// for the instance's names ([`tls`]). Each call generates another: the Secret is created once,
    /// and a re-run keeps the one stored.
    pub fn instance_secret(&self, instance: &InstanceSpec, password: &toygres_core::Password) -> Result<Secret> {
        check_instance(instance)?;
        let mut data = BTreeMap::from([(PASSWORD_KEY.to_string(), ByteString(password.expose().as_bytes().to_vec()))]);
        if self.config.tls_secret.is_none() {
            data.extend(tls::ServerCertificate::self_signed(&tls::server_names(self.config, instance))?.secret_data());
        }
        self.secret(&instance.resource_name(), &names::instance_labels(instance.id, "postgres"), data)
    }

    /// The instance's server configuration: `postgresql.conf` (included by the data directory's;
    /// TLS on with the certificate of [`tls::MOUNT_PATH`], passwords stored as SCRAM),
    /// `pg_hba.conf` ([`PG_HBA_CONF`]) and `initdb.sh` ([`render::INITDB_CONFIG_SH`], for an empty
    /// instance).
    pub fn config_map(&self, instance: &InstanceSpec) -> Result<ConfigMap> {
        check_instance(instance)?;
        let mut conf = String::from(
            "# Managed by toygres; included from the data directory's postgresql.conf.\n\
             listen_addresses = '*'\nport = 5432\npassword_encryption = 'scram-sha-256'\n\
             hba_file = '/etc/toygres/pg_hba.conf'\n",
        );
        conf.push_str(&tls::postgresql_conf());
        if instance.image_type == ImageType::PgDurable {
            conf.push_str("shared_preload_libraries = 'pg_durable'\n");
        }
        let hba = PG_HBA_CONF;
        let labels = names::instance_labels(instance.id, "postgres");
        let mut values = self.meta(&instance.resource_name(), &labels).to_vec();
        values.push(("postgresql_conf", json!(conf)));
        values.push(("pg_hba_conf", json!(hba)));
        values.push(("initdb_script", json!(render::INITDB_CONFIG_SH)));
        render(render::CONFIG_MAP, &values)
    }

    /// PostgreSQL on the instance's existing PVC.
    pub fn stateful_set(&self, instance: &InstanceSpec) -> Result<StatefulSet> {
        check_instance(instance)?;
        let labels = names::instance_labels(instance.id, "postgres");
        let mut values = self.meta(&instance.resource_name(), &labels).to_vec();
        values.push(("selector", json!(names::server_selector(instance.id))));
        values.push(("postgres_uid", json!(self.config.postgres_uid)));
        values.push(("postgres_image", json!(self.postgres_image(instance))));
        values.push(("resources", self.config.resources.server.requirements()));
        values.push(("scratch_size", json!(self.config.resources.server.scratch_size())));
        values.push(("container_security", container_security()));
        values.push(("tls_secret", json!(tls::secret_name(self.config, instance))));
        render(render::STATEFUL_SET, &values)
    }

    /// The instance's Service.
    pub fn service(&self, instance: &InstanceSpec) -> Result<Service> {
        check_instance(instance)?;
        let labels = names::instance_labels(instance.id, "postgres");
        let mut annotations = BTreeMap::new();
        let service_type = match (&self.config.exposure, &instance.dns_label) {
            (ServiceExposure::LoadBalancer { .. }, Some(label)) => {
                annotations.insert(AZURE_DNS_LABEL_ANNOTATION.to_string(), label.clone());
                "LoadBalancer"
            }
            (ServiceExposure::LoadBalancer { .. }, None) => "LoadBalancer",
            (ServiceExposure::ClusterIp, _) => "ClusterIP",
        };
        let mut values = self.meta(&instance.resource_name(), &labels).to_vec();
        values.push(("annotations", json!(annotations)));
        values.push(("service_type", json!(service_type)));
        let ranges = &self.config.load_balancer_source_ranges;
        let ranges = (service_type == "LoadBalancer" && !ranges.is_empty()).then_some(ranges);
        values.push(("source_ranges", json!(ranges)));
        // Client addresses preserved for the NetworkPolicy's ipBlocks (see service.yaml).
        values.push(("external_traffic_policy", json!((service_type == "LoadBalancer").then_some("Local"))));
        values.push(("selector", json!(names::server_selector(instance.id))));
        render(render::SERVICE, &values)
    }

    /// The backup job of `spec`; `transfer`'s secrets are in the Secret of the same name. Its `dump`
    /// container runs `pg_dump` for a logical image, `pg_basebackup` over a replication connection
    /// (see [`PG_HBA_CONF`]) for a physical one; a source that cannot be imaged physically
    /// (`wal_level=minimal`, no WAL sender, tablespaces) fails the job with the reason, as only a
    /// connection to it can tell.
    ///
    /// A clone image's job needs its source volume's size: [`Manifests::clone_backup_job`]; here
    /// it is refused ([`Error::UnsupportedFormat`] when no snapshot class is configured).
    pub fn backup_job(&self, spec: &BackupJobSpec, transfer: &JobTransfer) -> Result<Job> {
        let dump_script = match spec.format {
            ImageFormat::Logical => render::backup_dump_script(),
            ImageFormat::Physical => render::backup_basebackup_script(),
            ImageFormat::Clone => {
                crate::clone::snapshot_class(self.config)?;
                return Err(Error::backend_msg(
                    crate::api::BACKEND,
                    "the backup job of a clone image is rendered by Manifests::clone_backup_job, with its source volume",
                ));
            }
        };
        self.backup_job_with(spec, transfer, dump_script)
    }

    /// The backup job of `spec` whose `dump` container runs `dump_script`.
    pub(crate) fn backup_job_with(
        &self,
        spec: &BackupJobSpec,
        transfer: &JobTransfer,
        dump_script: String,
    ) -> Result<Job> {
        check_instance(&spec.source)?;
        let job = JobRef::backup(spec.image_id);
        let labels = names::image_labels(spec.image_id);
        let mut values = self.meta(&job.name, &labels).to_vec();
        values.extend([
            ("pod_labels", json!(self.job_pod_labels(labels.clone()))),
            ("service_account", json!(self.config.job_service_account)),
            ("toolbox_image", json!(self.config.toolbox_image)),
            ("dump_image", json!(self.postgres_image(&spec.source))),
            ("postgres_uid", json!(self.config.postgres_uid)),
            ("dump_script", json!(dump_script)),
            ("upload_script", json!(render::backup_upload_script())),
            ("source_host", json!(self.config.cluster_host(&spec.source))),
            ("image_id", json!(spec.image_id.to_string())),
            ("image_type", json!(spec.image_type.as_str())),
            ("pod_annotations", json!(self.job_pod_annotations("dump"))),
        ]);
        values.extend(self.job_values(true));
        let mut rendered: Job = render(render::BACKUP_JOB, &values)?;
        add_env(&mut rendered, "upload", &transfer.env)?;
        resources::tune_toolbox(&mut rendered, "upload", &self.config.resources.job_toolbox)?;
        if spec.data_key.is_some() {
            sealing::mount_key(&mut rendered, "upload", &job.name, &self.config.seal_program)?;
        }
        Ok(rendered)
    }

    /// The backup job's Secret: the source password, the transfer's secrets and the image's data
    /// key, if it has one ([`sealing`]).
    pub fn backup_secret(&self, spec: &BackupJobSpec, transfer: &JobTransfer) -> Result<Secret> {
        let mut data = transfer.secret_data.clone();
        data.insert(BACKUP_PASSWORD_KEY.into(), ByteString(spec.source_password.expose().as_bytes().to_vec()));
        data.extend(spec.data_key.as_ref().map(sealing::secret_entry));
        self.secret(&JobRef::backup(spec.image_id).name, &names::image_labels(spec.image_id), data)
    }

    /// The restore job of `spec`; `transfer`'s secrets are in the Secret of the same name.
    pub fn restore_job(&self, spec: &RestoreJobSpec, transfer: &JobTransfer) -> Result<Job> {
        let instance = &spec.instance;
        check_instance(instance)?;
        if !spec.checksum.starts_with("sha256:") {
            return Err(Error::ImageIncomplete {
                image: spec.image_id,
                detail: format!("the catalog's checksum {:?} is not sha256:<hex>", spec.checksum),
            });
        }
        let job = JobRef::restore(instance.id);
        let labels = names::instance_labels(instance.id, "restore");
        let load_memory = self.config.resources.job_postgres.memory_bytes();
        let mut values = self.meta(&job.name, &labels).to_vec();
        values.extend([
            ("pod_labels", json!(self.job_pod_labels(labels.clone()))),
            ("service_account", json!(self.config.job_service_account)),
            ("postgres_uid", json!(self.config.postgres_uid)),
            ("toolbox_image", json!(self.config.toolbox_image)),
            ("fetch_script", json!(render::restore_fetch_script())),
            ("image_id", json!(spec.image_id.to_string())),
            ("checksum", json!(spec.checksum)),
            ("databases", json!(spec.databases.as_ref().map(|d| json!(d).to_string()).unwrap_or_default())),
            ("postgres_image", json!(self.postgres_image(instance))),
            ("load_script", json!(render::restore_load_script())),
            ("instance_secret", json!(instance.resource_name())),
            ("instance_name", json!(instance.resource_name())),
            ("pod_annotations", json!(self.job_pod_annotations("load"))),
            ("maintenance_work_mem", json!(format!("{}MB", maintenance_work_mem_mb(load_memory)))),
            // No retry of a plaintext image's failed load: see the template.
            ("backoff_limit", json!(if spec.data_key.is_some() { 1 } else { 0 })),
        ]);
        values.extend(self.job_values(true));
        let mut rendered: Job = render(render::RESTORE_JOB, &values)?;
        add_env(&mut rendered, "fetch", &transfer.env)?;
        resources::tune_toolbox(&mut rendered, "fetch", &self.config.resources.job_toolbox)?;
        if spec.data_key.is_some() {
            sealing::mount_key(&mut rendered, "fetch", &job.name, &self.config.seal_program)?;
        }
        Ok(rendered)
    }

    /// The restore job's Secret: the transfer's secrets and the image's data key, if it has one
    /// ([`sealing`]).
    pub fn restore_secret(&self, spec: &RestoreJobSpec, transfer: &JobTransfer) -> Result<Secret> {
        let labels = names::instance_labels(spec.instance.id, "restore");
        let mut data = transfer.secret_data.clone();
        data.extend(spec.data_key.as_ref().map(sealing::secret_entry));
        self.secret(&JobRef::restore(spec.instance.id).name, &labels, data)
    }
}
