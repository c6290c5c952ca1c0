//! [`K8sExecutor`]: the `ClusterExecutor` on Kubernetes.

use crate::api::{self, Kind};
use crate::config::K8sConfig;
use crate::manifests::Manifests;
use async_trait::async_trait;
use kube::api::Api;
use kube::Client;
use std::fmt;
use std::sync::Arc;
use std::time::Duration;
use toygres_core::{
    BackupJobSpec, BlobStore, ClusterExecutor, ConnectionInfo, ImageFormat, ImageId, InstanceId, InstanceSpec, JobRef,
    Password, ProgressSink, RestoreJobSpec, Result,
};

/// Runs instances as StatefulSets on PVCs and images as Jobs, in one namespace.
///
/// Every step is idempotent (deterministic names, "already exists with our labels" is success,
/// "not found" on delete is success). Passwords reach pods only through Secrets.
#[derive(Clone)]
pub struct K8sExecutor {
    pub(crate) client: Client,
    pub(crate) config: Arc<K8sConfig>,
    pub(crate) blobs: Arc<dyn BlobStore>,
}

impl fmt::Debug for K8sExecutor {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("K8sExecutor")
            .field("namespace", &self.config.namespace)
            .field("blobs", &self.blobs.describe())
            .finish_non_exhaustive()
    }
}

impl K8sExecutor {
    /// An executor using `client`, after checking `config`. `blobs` is where images live; its
    /// [`BlobStore::transfer`] must be a command transfer (azcopy) that a job can run.
    pub fn new(client: Client, config: K8sConfig, blobs: Arc<dyn BlobStore>) -> Result<Self> {
        config.validate()?;
        crate::tls::warn_if_shared_key(&config);
        Ok(Self { client, config: Arc::new(config), blobs })
    }

    /// An executor on the cluster of the environment: `KUBECONFIG`/`~/.kube/config`, or the pod's
    /// service account when running in a cluster.
    pub async fn from_env(config: K8sConfig, blobs: Arc<dyn BlobStore>) -> Result<Self> {
        let client = Client::try_default().await.map_err(|e| api::error("connecting to Kubernetes", e))?;
        Self::new(client, config, blobs)
    }

    /// The configuration.
    pub fn config(&self) -> &K8sConfig {
        &self.config
    }

    /// The manifests this executor sends.
    pub fn manifests(&self) -> Manifests<'_> {
        Manifests::new(&self.config)
    }

    pub(crate) fn api<K: Kind>(&self) -> Api<K> {
        Api::namespaced(self.client.clone(), &self.config.namespace)
    }
}

#[async_trait]
impl ClusterExecutor for K8sExecutor {
    async fn start_backup_job(&self, spec: &BackupJobSpec) -> Result<JobRef> {
        self.start_backup(spec).await
    }

    /// A point-in-time replay ([`RestoreJobSpec::recovery`]) is refused: this executor runs no
    /// WAL receiver, so none of its instances has an archive to replay.
    async fn start_restore_job(&self, spec: &RestoreJobSpec) -> Result<JobRef> {
        if spec.recovery.is_some() {
            return Err(toygres_core::Error::UnsupportedImage {
                image: spec.image_id,
                reason: "the Kubernetes executor does not replay WAL archives (point-in-time restore); restore \
                         the image as it is"
                    .into(),
            });
        }
        self.start_restore(spec).await
    }

    async fn wait_for_job(&self, job: &JobRef, timeout: Duration, progress: Arc<dyn ProgressSink>) -> Result<()> {
        self.wait_job(job, timeout, progress).await
    }

    async fn job_logs(&self, job: &JobRef) -> Result<String> {
        self.logs_of(job).await
    }

    async fn delete_job(&self, job: &JobRef) -> Result<()> {
        self.remove_job(job).await
    }

    async fn create_volume(&self, instance: &InstanceSpec, password: &Password) -> Result<()> {
        self.create_instance_volume(instance, password).await
    }

    async fn initialize_empty(&self, instance: &InstanceSpec, password: &Password) -> Result<()> {
        self.provision_empty(instance, password).await
    }

    async fn deploy_from_volume(&self, instance: &InstanceSpec) -> Result<()> {
        self.deploy(instance).await
    }

    async fn wait_until_ready(&self, instance: &InstanceSpec, timeout: Duration) -> Result<()> {
        self.wait_ready(instance, timeout).await
    }

    async fn connection_info(&self, instance: &InstanceSpec) -> Result<ConnectionInfo> {
        self.connection(instance).await
    }

    /// From where [`K8sConfig::connection_test`] says: the control plane to the address clients
    /// use, or (in the cluster) the control plane or a probe pod to the instance's Service.
    async fn test_connection(
        &self,
        instance: &InstanceSpec,
        connection: &ConnectionInfo,
        password: &Password,
    ) -> Result<()> {
        self.test_connection_of(instance, connection, password).await
    }

    async fn delete_instance(&self, instance: &InstanceSpec) -> Result<()> {
        self.remove_instance(instance).await
    }

    /// The restore Job's `fetch` container hashes every object it streams into the `load`
    /// container and the load never marks the volume restored unless each one matched the
    /// verified manifest (`templates/restore-fetch.sh`); a clone image's restore loads nothing
    /// from the blob store. So the control plane checks the manifest and sizes only
    /// ([`toygres_core::VerifyMode::Auto`]) and a restore reads the image once.
    fn verifies_while_restoring(&self) -> bool {
        true
    }

    /// Clone images ([`crate::clone`]) need a snapshot class ([`toygres_core::Error::UnsupportedFormat`]
    /// without one), the `VolumeSnapshot` API, and the source's PVC. Other formats pass: only
    /// their job can tell.
    async fn check_source(&self, source: &InstanceSpec, password: &Password, format: ImageFormat) -> Result<()> {
        let _ = password;
        match format {
            ImageFormat::Clone => self.check_clone_source(source).await,
            ImageFormat::Logical | ImageFormat::Physical => Ok(()),
        }
    }

    /// Deletes a clone image's `VolumeSnapshot` `snap-<image-id>` (absent is success; nothing
    /// without a snapshot class). Instances cloned from it keep their volumes.
    async fn delete_image(&self, image: ImageId) -> Result<()> {
        self.delete_clone(image).await
    }

    /// The images of the namespace's toygres `VolumeSnapshot`s (none without a snapshot class).
    async fn list_images(&self) -> Result<Vec<ImageId>> {
        self.kept_clones().await
    }

    /// Every instance of the namespace some StatefulSet, Service, restore Job, Secret, ConfigMap or
    /// PVC is labelled for (`app.kubernetes.io/managed-by: toygres` and `toygres.io/instance: <id>`,
    /// what `delete_instance` selects on), deployed or only a volume, sorted and once each. Objects
    /// whose `toygres.io/instance` is not an instance id are ignored. One list call per kind.
    async fn list_instances(&self) -> Result<Vec<InstanceId>> {
        self.held_instances().await
    }
}
