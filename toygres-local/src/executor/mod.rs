//! [`LocalExecutor`]: a [`ClusterExecutor`] whose instances are local PostgreSQL clusters and whose
//! jobs are tokio tasks of the process that started them.
//!
//! Layout under the base directory: `instances/pg-<id>/` per instance (see [`InstanceConfig`]),
//! `jobs/<job-name>.{log,lock,state,cancel}` per job (see [`jobs`]), and `ports.lock`.
//!
//! Several processes (replicas) and executors may share one base directory: a job runs in one
//! process at a time and is awaited, cancelled and taken over from any other ([`jobs`]), and
//! instance ports are chosen under an exclusive `flock` on `ports.lock`, among the ports that no
//! instance's `config.json` records ([`Inner::allocating`]).

mod archiver;
mod backup;
mod builder;
mod clone;
mod codec;
mod compat;
mod dump;
mod export;
mod feed;
mod handle;
mod joblog;
mod jobs;
mod layout;
mod physical;
mod replay;
mod restore;
mod sections;
mod source;
mod staging;
mod stored;
mod transfer;
mod untar;

use stored::Sealing;

pub use builder::LocalExecutorBuilder;
pub use codec::Compression;
pub use layout::InstanceConfig;

use crate::cluster::lockfile::{self, FileLock};
use crate::cluster::{ports, LocalCluster, PgBinaries, ServerUser, SUPERUSER};
use async_trait::async_trait;
use jobs::Jobs;
use layout::InstanceDir;
use std::ops::RangeInclusive;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;
use toygres_core::wal::Lsn;
use toygres_core::{
    BackupJobSpec, BlobStore, ClusterExecutor, ConnectionInfo, Error, ImageId, InstanceId, InstanceSpec, JobRef,
};
use toygres_core::{ImageFormat, Manifest, Password, ProgressSink, RestoreJobSpec, Result, WalArchiveSpec};

/// How many ports an instance's server tries when another process takes them as it starts.
const START_TRIES: usize = 3;

/// How long choosing a port waits for another process choosing one (and creating its volume).
const PORTS_PATIENCE: Duration = Duration::from_secs(120);

/// Runs instances as local PostgreSQL clusters and jobs as tokio tasks. Build one with
/// [`LocalExecutor::builder`]. Several executors, in one process or several, may share a base
/// directory: a job runs in one of them and is awaited, cancelled or taken over from any other.
///
/// ```no_run
/// # fn demo(blobs: std::sync::Arc<dyn toygres_core::BlobStore>) -> toygres_core::Result<()> {
/// let executor = toygres_local::LocalExecutor::builder("/var/lib/toygres", blobs).build()?;
/// # Ok(()) }
/// ```
#[derive(Clone)]
pub struct LocalExecutor {
    inner: Arc<Inner>,
}

pub(crate) struct Inner {
    base_dir: PathBuf,
    bin: PgBinaries,
    user: ServerUser,
    ports: RangeInclusive<u16>,
    blobs: Arc<dyn BlobStore>,
    compression: Compression,
    split_load_from: u64,
    /// Whether each instance runs as an OS user of its own ([`crate::cluster::identity`]).
    isolate: bool,
    jobs: Jobs,
    /// WAL receivers running in this process ([`archiver`]).
    archivers: archiver::Archivers,
    /// Held (with `ports.lock`, see [`Inner::allocating`]) while a port is chosen and recorded.
    allocate: tokio::sync::Mutex<()>,
}

impl std::fmt::Debug for LocalExecutor {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("LocalExecutor")
            .field("base_dir", &self.inner.base_dir)
            .field("bin", &self.inner.bin)
            .field("user", &self.inner.user.name)
            .field("ports", &self.inner.ports)
            .finish()
    }
}

impl Inner {
    fn dir(&self, spec: &InstanceSpec) -> InstanceDir {
        InstanceDir::new(&self.base_dir, spec)
    }

    /// The cluster of an instance whose volume exists.
    fn cluster_of(&self, spec: &InstanceSpec) -> Result<LocalCluster> {
        let dir = self.dir(spec);
        let config = dir.require_config()?;
        Ok(dir.cluster(&self.bin, &self.user, &config))
    }

    /// While held, nobody else over this base directory (this or another executor, in this or
    /// another process) chooses a port: hold it from choosing a port until the instance's
    /// `config.json` records it. The `flock` on `ports.lock` dies with the process.
    async fn allocating(&self) -> Result<(tokio::sync::MutexGuard<'_, ()>, FileLock)> {
        let guard = self.allocate.lock().await;
        let path = self.base_dir.join("ports.lock");
        let lock = lockfile::lock(&path, PORTS_PATIENCE, "choosing a port for an instance").await?;
        Ok((guard, lock))
    }

    /// A free port no volume under the base directory records (call it [`Inner::allocating`]).
    /// Probing starts at an offset derived from
    /// the base directory, so executors with different base directories rarely race for a port.
    fn free_port(&self) -> Result<u16> {
        use std::hash::{Hash, Hasher};
        let mut hasher = std::collections::hash_map::DefaultHasher::new();
        self.base_dir.hash(&mut hasher);
        let taken = self.taken_ports();
        ports::first_free_from(self.ports.clone(), hasher.finish() as usize, &taken).ok_or_else(|| {
            Error::backend_msg(
                "local executor",
                format!("no free port left in {:?}; delete instances or widen the port range", self.ports),
            )
        })
    }

    /// The instance's cluster, moved to another free port first if something else took its port
    /// since the volume was created (it is not running, so nobody is connected to it).
    async fn cluster_on_free_port(&self, spec: &InstanceSpec) -> Result<LocalCluster> {
        let _guard = self.allocating().await?;
        let dir = self.dir(spec);
        let mut config = dir.require_config()?;
        let cluster = dir.cluster(&self.bin, &self.user, &config);
        if cluster.is_running() || ports::is_free(config.port) {
            return Ok(cluster);
        }
        let old = config.port;
        config.port = self.free_port()?;
        tracing::info!(instance = %spec.name, old, new = config.port, "port taken by another process; moving");
        dir.write_config(&config)?;
        let cluster = dir.cluster(&self.bin, &self.user, &config);
        if cluster.is_initialized() {
            cluster.write_conf()?;
        }
        Ok(cluster)
    }

    /// Starts the instance's server with `settings` and returns its cluster. Another process may
    /// bind the instance's port between the check and the server's own bind: then the server
    /// starts on another free port (up to [`START_TRIES`] tries).
    async fn start_on_free_port(&self, spec: &InstanceSpec, settings: &[(&str, &str)]) -> Result<LocalCluster> {
        let mut tries = 1;
        loop {
            let cluster = self.cluster_on_free_port(spec).await?;
            match cluster.start(settings).await {
                Err(e) if tries < START_TRIES && !ports::is_free(cluster.port()) => {
                    tracing::info!(instance = %spec.name, port = cluster.port(), error = %e, "port taken at start; moving");
                    tries += 1;
                }
                started => return started.map(|_| cluster),
            }
        }
    }

    /// Ports that every instance volume's `config.json` records (whichever process wrote it).
    fn taken_ports(&self) -> Vec<u16> {
        let Ok(entries) = std::fs::read_dir(self.base_dir.join("instances")) else { return vec![] };
        entries
            .filter_map(|e| e.ok())
            .filter_map(|e| std::fs::read(e.path().join("config.json")).ok())
            .filter_map(|b| serde_json::from_slice::<InstanceConfig>(&b).ok())
            .map(|c| c.port)
            .collect()
    }
}

#[async_trait]
impl ClusterExecutor for LocalExecutor {
    async fn start_backup_job(&self, spec: &BackupJobSpec) -> Result<JobRef> {
        let job = JobRef::backup(spec.image_id);
        let mut secrets = transfer::transfer_secrets(&self.inner.blobs.transfer(&spec.location));
        secrets.push(spec.source_password.expose().to_string());
        let sealing = Sealing::of(spec.data_key.as_ref(), spec.image_id);
        let (inner, spec) = (self.inner.clone(), spec.clone());
        self.inner.jobs.start(&job, secrets, sealing, move |ctx| backup::run(inner, spec, ctx)).await
    }

    async fn start_restore_job(&self, spec: &RestoreJobSpec) -> Result<JobRef> {
        let job = JobRef::restore(spec.instance.id);
        let dir = self.inner.dir(&spec.instance);
        dir.require_config()?;
        let mut secrets = transfer::transfer_secrets(&self.inner.blobs.transfer(&spec.location));
        secrets.push(dir.password()?.expose().to_string());
        let sealing = Sealing::of(spec.data_key.as_ref(), spec.image_id);
        let (inner, spec) = (self.inner.clone(), spec.clone());
        self.inner.jobs.start(&job, secrets, sealing, move |ctx| restore::run(inner, spec, ctx)).await
    }

    async fn wait_for_job(&self, job: &JobRef, timeout: Duration, progress: Arc<dyn ProgressSink>) -> Result<()> {
        self.inner.jobs.wait(job, timeout, progress).await
    }

    async fn job_logs(&self, job: &JobRef) -> Result<String> {
        self.inner.jobs.logs(job)
    }

    async fn delete_job(&self, job: &JobRef) -> Result<()> {
        self.inner.jobs.delete(job).await
    }

    async fn create_volume(&self, instance: &InstanceSpec, password: &Password) -> Result<()> {
        let _guard = self.inner.allocating().await?;
        let dir = self.inner.dir(instance);
        if dir.config()?.is_some() {
            return Ok(());
        }
        let port = self.inner.free_port()?;
        let os_user = match self.inner.isolate {
            true => {
                let id = instance.id;
                let user = tokio::task::spawn_blocking(move || crate::cluster::identity::ensure_instance_user(id));
                Some(
                    user.await
                        .map_err(|e| Error::backend("local executor", "creating the instance's OS user", e))??,
                )
            }
            false => None,
        };
        let config = InstanceConfig { port, image_type: instance.image_type, name: instance.name.clone(), os_user };
        dir.write(&config, password)
    }

    async fn initialize_empty(&self, instance: &InstanceSpec, password: &Password) -> Result<()> {
        self.inner.cluster_on_free_port(instance).await?.init(password).await
    }

    async fn deploy_from_volume(&self, instance: &InstanceSpec) -> Result<()> {
        let cluster = self.inner.cluster_on_free_port(instance).await?;
        if !cluster.is_initialized() {
            return Err(Error::backend_msg(
                "local executor",
                format!(
                    "instance {} has no restored data at {}; run its restore job first",
                    instance.name,
                    cluster.data_dir().display()
                ),
            ));
        }
        self.inner.start_on_free_port(instance, &[]).await.map(|_| ())
    }

    async fn wait_until_ready(&self, instance: &InstanceSpec, timeout: Duration) -> Result<()> {
        self.inner.cluster_of(instance)?.wait_ready(timeout).await
    }

    async fn connection_info(&self, instance: &InstanceSpec) -> Result<ConnectionInfo> {
        let config = self.inner.dir(instance).require_config()?;
        Ok(ConnectionInfo {
            host: "127.0.0.1".into(),
            port: config.port,
            user: SUPERUSER.into(),
            database: "postgres".into(),
            dns_name: None,
            ssl_mode: None,
        })
    }

    /// Connects to `connection` itself: on one machine the address clients use is reachable.
    async fn test_connection(
        &self,
        instance: &InstanceSpec,
        connection: &ConnectionInfo,
        password: &Password,
    ) -> Result<()> {
        let _ = instance;
        let params = crate::cluster::ConnParams {
            host: connection.host.clone(),
            port: connection.port,
            user: connection.user.clone(),
        };
        let client = params.connect(&connection.database, password).await?;
        client.simple_query("SELECT 1").await.map_err(|e| Error::backend("local executor", "SELECT 1", e))?;
        Ok(())
    }

    async fn check_source(&self, source: &InstanceSpec, password: &Password, format: ImageFormat) -> Result<()> {
        match format {
            ImageFormat::Logical => Ok(()),
            ImageFormat::Physical => physical::check_source(&self.inner, source, password).await,
            ImageFormat::Clone => clone::check_source(&self.inner, source, password).await,
        }
    }

    /// Every clone image this executor keeps can be exported ([`Self::check_restorable`] has
    /// checked that it keeps it).
    async fn check_export(&self, _clone: ImageId) -> Result<()> {
        Ok(())
    }

    async fn check_restorable(&self, manifest: &Manifest) -> Result<()> {
        compat::check(&self.inner.bin, manifest).await?;
        if manifest.format == ImageFormat::Clone {
            clone::check_restorable(&self.inner, manifest).await?;
        }
        Ok(())
    }

    async fn server_version(&self, _instance: &InstanceSpec) -> Result<Option<String>> {
        // Every instance of this executor runs its binaries.
        self.inner.bin.version().await.map(Some)
    }

    async fn delete_image(&self, image: ImageId) -> Result<()> {
        clone::delete(&self.inner, image).await
    }

    async fn start_wal_archiving(&self, spec: &WalArchiveSpec) -> Result<()> {
        archiver::start(&self.inner, spec).await
    }

    async fn stop_wal_archiving(&self, instance: &InstanceSpec) -> Result<()> {
        let password = self.inner.dir(instance).password().ok();
        archiver::stop(&self.inner, instance, password.as_ref()).await
    }

    async fn create_restore_point(&self, instance: &InstanceSpec, password: &Password, name: &str) -> Result<Lsn> {
        archiver::restore_point(&self.inner, instance, password, name).await
    }

    /// Every clone image the clone store holds something of (`clones/<id>`, ready or partial).
    async fn list_images(&self) -> Result<Vec<ImageId>> {
        Ok(clone::list(&self.inner))
    }

    /// Every `instances/pg-<id>` directory under the base directory, configured or not.
    async fn list_instances(&self) -> Result<Vec<InstanceId>> {
        let Ok(entries) = std::fs::read_dir(self.inner.base_dir.join("instances")) else { return Ok(vec![]) };
        let mut ids: Vec<InstanceId> = entries
            .filter_map(|e| e.ok())
            .filter_map(|e| e.file_name().to_str()?.strip_prefix("pg-")?.parse().ok())
            .collect();
        ids.sort();
        Ok(ids)
    }

    async fn delete_instance(&self, instance: &InstanceSpec) -> Result<()> {
        self.inner.jobs.delete(&JobRef::restore(instance.id)).await?;
        archiver::stop(&self.inner, instance, None).await?;
        let dir = self.inner.dir(instance);
        if let Some(config) = dir.config()? {
            let cluster = dir.cluster(&self.inner.bin, &self.inner.user, &config);
            // Its data is about to be removed: no shutdown checkpoint needed.
            cluster.stop_immediate().await?;
            cluster.kill_postmaster();
        }
        match std::fs::remove_dir_all(&dir.path) {
            Err(e) if e.kind() != std::io::ErrorKind::NotFound => {
                return Err(crate::cluster::io_err(format!("removing {}", dir.path.display()), e))
            }
            _ => {}
        }
        // Last, by its deterministic name: a re-run after a crash between the two still removes it.
        if self.inner.isolate {
            let id = instance.id;
            tokio::task::spawn_blocking(move || crate::cluster::identity::remove_instance_user(id))
                .await
                .map_err(|e| Error::backend("local executor", "removing the instance's OS user", e))??;
        }
        Ok(())
    }
}
