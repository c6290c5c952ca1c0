//! Shared fixture of the local end-to-end tests: one runtime, one executor over a temporary base
//! directory, one source instance loaded with the sample data. Tests lease it; the last lease to end
//! stops every server and removes the directory (so no postgres process outlives the tests).
#![allow(dead_code)]

use std::sync::{Arc, Mutex, OnceLock};
use toygres_core::{
    BlobStore, ClusterExecutor, ImageId, ImageRecord, InstanceRecord, InstanceSpec, MemoryCatalog, OperationId,
    Password, Toygres,
};
use toygres_local::fidelity::{sample::load_sample_data, InstanceSnapshot};
use toygres_local::{LocalBlobStore, LocalExecutor};

pub fn rt() -> &'static tokio::runtime::Runtime {
    static RT: OnceLock<tokio::runtime::Runtime> = OnceLock::new();
    RT.get_or_init(|| tokio::runtime::Builder::new_multi_thread().worker_threads(2).enable_all().build().unwrap())
}

/// Stops every server of the executor when dropped (also when setup panics).
pub struct StopAll(pub LocalExecutor);

impl Drop for StopAll {
    fn drop(&mut self) {
        self.0.discard_blocking();
    }
}

pub struct Fixture {
    pub stop_all: StopAll,
    pub base: tempfile::TempDir,
    pub blobs: Arc<LocalBlobStore>,
    pub executor: LocalExecutor,
    pub catalog: Arc<MemoryCatalog>,
    pub t: Toygres,
    pub source: InstanceRecord,
    pub password: Password,
    pub snapshot: InstanceSnapshot,
}

static STATE: Mutex<(usize, Option<Arc<Fixture>>)> = Mutex::new((0, None));

/// A lease on the shared fixture.
pub struct Lease(pub Arc<Fixture>);

impl std::ops::Deref for Lease {
    type Target = Fixture;
    fn deref(&self) -> &Fixture {
        &self.0
    }
}

impl Drop for Lease {
    fn drop(&mut self) {
        let mut state = STATE.lock().unwrap_or_else(|p| p.into_inner());
        state.0 -= 1;
        if state.0 == 0 {
            state.1.take();
        }
    }
}

pub fn fixture() -> Lease {
    let mut state = STATE.lock().unwrap_or_else(|p| p.into_inner());
    if state.1.is_none() {
        state.1 = Some(Arc::new(rt().block_on(setup())));
    }
    state.0 += 1;
    Lease(state.1.clone().unwrap())
}

/// A toygres over `blobs` with a fresh executor in `base`.
pub fn toygres(base: &std::path::Path, blobs: Arc<dyn BlobStore>) -> (LocalExecutor, Arc<MemoryCatalog>, Toygres) {
    let executor = LocalExecutor::builder(base, blobs.clone()).build().unwrap();
    let catalog = Arc::new(MemoryCatalog::new());
    let t = Toygres::new(catalog.clone(), blobs, Arc::new(executor.clone())).with_image_keys(image_keys(base));
    (executor, catalog, t)
}

/// The stored manifest of `image`, opened under its data key (plaintext images as they are).
pub async fn manifest_of(t: &Toygres, image: &toygres_core::ImageRecord) -> toygres_core::Manifest {
    let location = toygres_core::ImageLocation::for_image(image.id);
    let stored = t.blobs.read(&location, toygres_core::manifest::MANIFEST_NAME).await.unwrap();
    let key = t.data_key(image).await.unwrap();
    toygres_core::Manifest::from_stored(image.id, &stored, key.as_ref()).unwrap()
}

/// The image keys of a test's base directory (created once, shared by every toygres over it).
pub fn image_keys(base: &std::path::Path) -> Arc<toygres_core::envelope::LocalKeys> {
    Arc::new(toygres_core::envelope::LocalKeys::open_or_create(base.join("image-keys")).unwrap())
}

async fn setup() -> Fixture {
    let base = tempfile::Builder::new().prefix("toygres-local-test-").tempdir().unwrap();
    let blobs = Arc::new(LocalBlobStore::open(base.path().join("blobs")).unwrap());
    let (executor, catalog, t) = toygres(base.path(), blobs.clone());
    let stop_all = StopAll(executor.clone());
    let password = Password::generate();
    let source = source_instance(&executor, &t, "source", &password).await;
    let params = executor.cluster(&spec(&source)).unwrap().params();
    load_sample_data(&params, &password).await.unwrap();
    let snapshot = snapshot(&executor, &source, &password).await;
    Fixture { stop_all, base, blobs, executor, catalog, t, source, password, snapshot }
}

/// Provisions an empty running instance and registers it in `t`'s catalog.
pub async fn source_instance(executor: &LocalExecutor, t: &Toygres, name: &str, password: &Password) -> InstanceRecord {
    executor.provision_source(t, name, password).await.unwrap()
}

pub fn spec(record: &InstanceRecord) -> InstanceSpec {
    record.spec()
}

/// The spec of a new instance named `name` that has no record (a job driven by hand).
pub fn unrecorded_spec(name: &str) -> InstanceSpec {
    InstanceSpec {
        id: toygres_core::InstanceId::new(),
        name: name.into(),
        image_type: Default::default(),
        pg_version: None,
        dns_label: None,
    }
}

pub async fn snapshot(executor: &LocalExecutor, record: &InstanceRecord, password: &Password) -> InstanceSnapshot {
    let cluster = executor.cluster(&spec(record)).unwrap();
    InstanceSnapshot::take(cluster.binaries(), &cluster.params(), password).await.unwrap()
}

pub async fn image_of(t: &Toygres, source: &InstanceRecord, name: &str) -> ImageRecord {
    let request = toygres_core::CreateImageRequest::new(name, source.id);
    t.create_image(OperationId::new(), request).await.unwrap()
}

/// Names of the instances that have a volume under the executor's base directory.
pub fn volumes(executor: &LocalExecutor) -> Vec<std::path::PathBuf> {
    executor.instance_clusters().iter().map(|c| c.dir().to_path_buf()).collect()
}

/// Names recorded in the volumes' config files.
pub fn volume_names(executor: &LocalExecutor) -> Vec<String> {
    let dir = executor.base_dir().join("instances");
    std::fs::read_dir(dir)
        .map(|entries| {
            entries
                .filter_map(|e| std::fs::read(e.ok()?.path().join("config.json")).ok())
                .filter_map(|b| serde_json::from_slice::<toygres_local::InstanceConfig>(&b).ok())
                .map(|c| c.name)
                .collect()
        })
        .unwrap_or_default()
}

pub async fn objects_of(blobs: &LocalBlobStore, image: ImageId) -> Vec<String> {
    let loc = toygres_core::ImageLocation::for_image(image);
    blobs.stat(&loc).await.unwrap().into_iter().map(|o| o.name).collect()
}

/// Deletes an instance through toygres and checks its volume and server are gone.
pub async fn delete_and_check(f: &Fixture, instance: &InstanceRecord) {
    let cluster = f.executor.cluster(&spec(instance)).unwrap();
    let pid = cluster.postmaster_pid();
    f.t.delete_instance(instance.id).await.unwrap();
    assert!(!cluster.dir().exists(), "the instance's files are removed");
    if let Some(pid) = pid {
        assert!(!toygres_local::cluster::process_alive(pid), "its postmaster is gone");
    }
    let _ = f.executor.delete_instance(&spec(instance)).await;
}
