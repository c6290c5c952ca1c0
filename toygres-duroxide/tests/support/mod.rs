//! Shared set-up of the durable tests: an environment directory holding a SQLite catalog, local
//! blobs, a local executor's base directory and the duroxide store, so that a second process
//! (or a second runtime) opens the very same state; a source instance with sample data; and
//! process inspection through /proc.
#![allow(dead_code)]

pub mod flaky;
pub mod procs;

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;
use toygres_cms_sqlite::SqliteCatalog;
use toygres_core::crypto::CatalogKey;
use toygres_core::{ClusterExecutor, InstanceRecord, Options, Password, RetryPolicy, Toygres};
use toygres_duroxide::{RuntimeBuilder, ToygresRuntime};
use toygres_local::fidelity::{sample::load_sample_data, InstanceSnapshot};
use toygres_local::{LocalBlobStore, LocalExecutor, LocalExecutorBuilder};

/// One test's world, all under `root`.
pub struct Env {
    pub root: PathBuf,
    _dir: Option<tempfile::TempDir>,
}

/// Options that keep the tests fast: a short connection-test policy.
pub fn options() -> Options {
    let mut options = Options::default();
    options.connection_test = RetryPolicy::new(5)
        .with_timeout(Duration::from_secs(20))
        .with_backoff(Duration::from_millis(200), Duration::from_secs(1));
    options
}

impl Env {
    /// A fresh environment in a temporary directory (removed on drop).
    pub fn new() -> Self {
        let dir = tempfile::Builder::new().prefix("toygres-durable-").tempdir().unwrap();
        std::fs::write(dir.path().join("catalog.key"), CatalogKey::generate().to_hex()).unwrap();
        Self { root: dir.path().to_path_buf(), _dir: Some(dir) }
    }

    /// The environment at `root`, made by another process.
    pub fn open(root: impl Into<PathBuf>) -> Self {
        Self { root: root.into(), _dir: None }
    }

    pub fn store_path(&self) -> PathBuf {
        self.root.join("durable.db")
    }

    pub fn base_dir(&self) -> PathBuf {
        self.root.join("base")
    }

    pub fn blobs_dir(&self) -> PathBuf {
        self.root.join("blobs")
    }

    /// A toygres over this environment's catalog, blobs and executor, with `executor` wrapping
    /// the local executor when given.
    pub fn toygres_with(
        &self,
        wrap: impl FnOnce(LocalExecutor) -> Arc<dyn ClusterExecutor>,
    ) -> (Toygres, LocalExecutor, Arc<LocalBlobStore>) {
        self.toygres_configured(|b| b, wrap)
    }

    /// [`Env::toygres_with`], the executor's builder adjusted by `configure` first.
    pub fn toygres_configured(
        &self,
        configure: impl FnOnce(LocalExecutorBuilder) -> LocalExecutorBuilder,
        wrap: impl FnOnce(LocalExecutor) -> Arc<dyn ClusterExecutor>,
    ) -> (Toygres, LocalExecutor, Arc<LocalBlobStore>) {
        let key = CatalogKey::from_hex(std::fs::read_to_string(self.root.join("catalog.key")).unwrap().trim()).unwrap();
        let catalog = Arc::new(SqliteCatalog::open(self.root.join("catalog.db"), key).unwrap());
        let blobs = Arc::new(LocalBlobStore::open(self.blobs_dir()).unwrap());
        let executor = configure(LocalExecutor::builder(self.base_dir(), blobs.clone())).build().unwrap();
        let keys = Arc::new(toygres_core::envelope::LocalKeys::open_or_create(self.root.join("image-keys")).unwrap());
        let t =
            Toygres::new(catalog, blobs.clone(), wrap(executor.clone())).with_options(options()).with_image_keys(keys);
        (t, executor, blobs)
    }

    pub fn toygres(&self) -> (Toygres, LocalExecutor, Arc<LocalBlobStore>) {
        self.toygres_with(|e| Arc::new(e))
    }

    /// A runtime builder on this environment's store with short lock timeouts.
    pub fn runtime(&self, t: Toygres) -> RuntimeBuilder {
        ToygresRuntime::builder(t)
            .sqlite(self.store_path())
            .lock_timeouts(Duration::from_secs(2), Duration::from_secs(3))
    }
}

/// Stops every server under a base directory when dropped (also when a test panics).
pub struct StopAll(pub PathBuf);

impl Drop for StopAll {
    fn drop(&mut self) {
        procs::kill_servers_under(&self.0);
        toygres_local::cluster::identity::remove_instance_users_under(&self.0);
    }
}

/// A running source instance with the sample data (and `bulk_rows` more rows in `appdb`).
pub struct Source {
    pub record: InstanceRecord,
    pub password: Password,
    pub snapshot: InstanceSnapshot,
}

pub async fn source(t: &Toygres, executor: &LocalExecutor, bulk_rows: u64) -> Source {
    let password = Password::generate();
    let record = executor.provision_source(t, "source", &password).await.unwrap();
    let cluster = executor.cluster(&record.spec()).unwrap();
    load_sample_data(&cluster.params(), &password).await.unwrap();
    if bulk_rows > 0 {
        let client = cluster.connect("appdb", &password).await.unwrap();
        let sql = format!(
            "CREATE TABLE public.bulk (id int PRIMARY KEY, payload text); \
             INSERT INTO public.bulk SELECT g, md5(g::text) || md5((g * 7)::text) FROM generate_series(1, {bulk_rows}) g;"
        );
        client.batch_execute(&sql).await.unwrap();
    }
    let snapshot = snapshot(executor, &record, &password).await;
    Source { record, password, snapshot }
}

pub async fn snapshot(executor: &LocalExecutor, record: &InstanceRecord, password: &Password) -> InstanceSnapshot {
    let cluster = executor.cluster(&record.spec()).unwrap();
    InstanceSnapshot::take(cluster.binaries(), &cluster.params(), password).await.unwrap()
}

/// Files under the image's blob directory (staging files included).
pub fn blob_files(blobs: &Path, image: toygres_core::ImageId) -> Vec<String> {
    let dir = blobs.join("images").join(image.to_string());
    let mut names: Vec<String> = std::fs::read_dir(dir)
        .map(|d| d.filter_map(|e| e.ok()).map(|e| e.file_name().to_string_lossy().into_owned()).collect())
        .unwrap_or_default();
    names.sort();
    names
}

/// The files a complete image of `snapshot`'s instance has: one per database, globals, manifest.
pub fn expected_blob_files(snapshot: &InstanceSnapshot) -> Vec<String> {
    use toygres_core::manifest::{database_object_name, GLOBALS_NAME, MANIFEST_NAME};
    let mut names: Vec<String> = (0..snapshot.databases.len()).map(database_object_name).collect();
    names.extend([GLOBALS_NAME.to_string(), MANIFEST_NAME.to_string()]);
    names.sort();
    names
}

/// Instance volume directories under the base directory.
pub fn volumes(base: &Path) -> Vec<String> {
    let mut names: Vec<String> = std::fs::read_dir(base.join("instances"))
        .map(|d| d.filter_map(|e| e.ok()).map(|e| e.file_name().to_string_lossy().into_owned()).collect())
        .unwrap_or_default();
    names.sort();
    names
}
