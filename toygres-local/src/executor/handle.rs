//! [`LocalExecutor`]'s own methods, beyond [`ClusterExecutor`]: building one, inspecting its
//! instances, and provisioning empty source instances.

use super::layout::InstanceDir;
use super::{archiver, clone, LocalExecutor, LocalExecutorBuilder};
use crate::cluster::{LocalCluster, PgBinaries};
use std::path::{Path, PathBuf};
use std::sync::Arc;
use toygres_core::{
    BlobStore, ClusterExecutor, ConnectionInfo, InstanceId, InstanceRecord, InstanceSpec, NewInstance, OperationId,
    Password, Result, Toygres,
};

impl LocalExecutor {
    /// A builder with base directory `base_dir` and blob store `blobs` (where jobs move images).
    pub fn builder(base_dir: impl Into<PathBuf>, blobs: Arc<dyn BlobStore>) -> LocalExecutorBuilder {
        LocalExecutorBuilder::new(base_dir.into(), blobs)
    }

    /// The base directory.
    pub fn base_dir(&self) -> &Path {
        &self.inner.base_dir
    }

    /// The PostgreSQL binaries every instance and job of this executor runs.
    pub fn binaries(&self) -> &PgBinaries {
        &self.inner.bin
    }

    /// The cluster of an instance whose volume exists (to inspect or connect to it).
    pub fn cluster(&self, instance: &InstanceSpec) -> Result<LocalCluster> {
        self.inner.cluster_of(instance)
    }

    /// For throw-away executors (tests, examples): stops every instance's server and removes its
    /// OS user; the volumes stay for the caller to remove with the base directory. Best effort.
    pub fn discard_blocking(&self) {
        self.inner.archivers.abort_all();
        for cluster in self.instance_clusters() {
            cluster.stop_blocking();
        }
        if self.inner.isolate {
            crate::cluster::identity::remove_instance_users_under(&self.inner.base_dir);
        }
        clone::discard_partials_blocking(&self.inner);
    }

    /// The clusters of every instance volume under the base directory (running or not), e.g. to
    /// stop leftovers.
    pub fn instance_clusters(&self) -> Vec<LocalCluster> {
        let Ok(entries) = std::fs::read_dir(self.inner.base_dir.join("instances")) else { return vec![] };
        entries
            .filter_map(|e| e.ok())
            .filter_map(|e| {
                let dir = InstanceDir { path: e.path() };
                let config = dir.config().ok()??;
                Some(dir.cluster(&self.inner.bin, &self.inner.user, &config))
            })
            .collect()
    }

    /// Creates a new, empty, running instance with superuser password `password`: volume, `initdb`,
    /// start. Use it for source instances, then record them with `Toygres::register_instance`.
    /// Idempotent.
    pub async fn provision_empty(&self, instance: &InstanceSpec, password: &Password) -> Result<ConnectionInfo> {
        self.create_volume(instance, password).await?;
        self.inner.cluster_on_free_port(instance).await?.init(password).await?;
        self.inner.start_on_free_port(instance, &[]).await?;
        self.connection_info(instance).await
    }

    /// The pid of `instance`'s running WAL receiver (`pg_receivewal`), when this base directory
    /// has one ([`ClusterExecutor::start_wal_archiving`]).
    pub fn wal_receiver_pid(&self, instance: InstanceId) -> Option<i32> {
        archiver::receiver_pid(&self.inner.base_dir, instance)
    }

    /// Records a new instance named `name` in `toygres`'s catalog and provisions it empty and
    /// running ([`LocalExecutor::provision_empty`]): a source instance, ready to be loaded and imaged.
    pub async fn provision_source(&self, toygres: &Toygres, name: &str, password: &Password) -> Result<InstanceRecord> {
        let record =
            toygres.register_instance(OperationId::new(), NewInstance::existing(name, password.clone())).await?;
        self.provision_empty(&record.spec(), password).await?;
        Ok(record)
    }
}
