//! Shared fixtures of the pipeline tests: a real in-memory catalog and blob store holding a
//! registered source instance and valid images, plus mock executors that succeed.
#![allow(dead_code)]

use bytes::Bytes;
use std::sync::{Arc, Mutex};
use std::time::Duration;
use toygres_core::manifest::{database_object_name, sha256_hex, ManifestDatabase, ManifestObject, GLOBALS_NAME};
use toygres_core::testing::MockClusterExecutor;
use toygres_core::*;

/// The source instance's password: restored instances must use this one.
pub const SOURCE_PW: &str = "source-pw-Zq81-secret";
/// A password a restore request carries: it must be ignored.
pub const REQUEST_PW: &str = "request-pw-Xy23-secret";
/// The version the mock executor says a restored server runs (the images say 15.18).
pub const RESTORED_VERSION: &str = "18.6";

pub struct Fixture {
    pub catalog: Arc<MemoryCatalog>,
    pub blobs: Arc<ObjectStoreBlobs>,
    pub source: InstanceRecord,
    pub events: Arc<Recorder>,
    /// The image keys every fixture's pipelines encrypt under.
    pub keys: Arc<envelope::LocalKeys>,
}

/// Records progress events.
#[derive(Default)]
pub struct Recorder(pub Mutex<Vec<ProgressEvent>>);

impl ProgressSink for Recorder {
    fn emit(&self, event: &ProgressEvent) {
        self.0.lock().unwrap().push(event.clone());
    }
}

impl Recorder {
    /// Phases that started, in order.
    pub fn started(&self) -> Vec<Phase> {
        let events = self.0.lock().unwrap();
        events.iter().filter(|e| e.kind == EventKind::Started).map(|e| e.phase).collect()
    }

    /// Everything recorded, as text.
    pub fn dump(&self) -> String {
        format!("{:?}", self.0.lock().unwrap())
    }
}

pub async fn fixture(image_type: ImageType) -> Fixture {
    let catalog = Arc::new(MemoryCatalog::new());
    let source = catalog
        .create_instance(OperationId::new(), &{
            let mut new = NewInstance::existing("source", Password::new(SOURCE_PW));
            new.image_type = image_type;
            new.pg_version = Some("15.18".into());
            new
        })
        .await
        .unwrap();
    let keys = Arc::new(envelope::LocalKeys::from_hex(&hex::encode(rand::random::<[u8; 32]>())).unwrap());
    Fixture { catalog, blobs: Arc::new(ObjectStoreBlobs::in_memory()), source, events: Arc::default(), keys }
}

/// Fast limits so failing tests finish quickly (paused time makes the defaults free too).
pub fn fast_options() -> Options {
    let mut options = Options::default();
    options.connection_test =
        RetryPolicy::new(2).with_timeout(Duration::from_secs(1)).with_backoff(Duration::ZERO, Duration::ZERO);
    options
}

impl Fixture {
    pub fn toygres(&self, executor: MockClusterExecutor) -> Toygres {
        Toygres::new(self.catalog.clone(), self.blobs.clone(), Arc::new(executor))
            .with_progress(self.events.clone())
            .with_image_keys(self.keys.clone())
    }

    /// Writes a complete, valid image for `image`, sealed under the data key its record holds,
    /// and returns its manifest checksum and size.
    pub async fn write_image(&self, image: ImageId, image_type: ImageType) -> (String, u64) {
        let record = self.catalog.get_image(image).await.ok();
        let wrapped = record.and_then(|r| r.encryption);
        let key = match &wrapped {
            Some(w) => Some(envelope::KeyProvider::unwrap(&*self.keys, image, w).await.unwrap()),
            None => None,
        };
        write_image(&self.blobs, image, image_type, key.as_ref()).await
    }
}

/// What a backup job writes: a complete, valid image, sealed under `key` when given. Returns its
/// manifest checksum and size.
pub async fn write_image(
    blobs: &ObjectStoreBlobs,
    image: ImageId,
    image_type: ImageType,
    key: Option<&envelope::DataKey>,
) -> (String, u64) {
    let loc = ImageLocation::for_image(image);
    let stored = |name: &str, body: &[u8]| match key {
        Some(key) => envelope::object::seal_all(key, image, name, body),
        None => body.to_vec(),
    };
    let object = |name: String, body: &[u8]| ManifestObject {
        size: body.len() as u64,
        sha256: sha256_hex(body),
        name,
        raw_size: None,
    };
    let globals = stored(GLOBALS_NAME, b"CREATE ROLE app;");
    let db = stored(&database_object_name(0), b"PGDMP-custom-dump-bytes");
    blobs.write(&loc, GLOBALS_NAME, Bytes::from(globals.clone())).await.unwrap();
    blobs.write(&loc, &database_object_name(0), Bytes::from(db.clone())).await.unwrap();
    let manifest = Manifest {
        format_version: manifest::FORMAT_VERSION,
        image_id: image,
        pg_version: "15.18".into(),
        image_type,
        format: Default::default(),
        compression: "zstd".into(),
        globals: object(GLOBALS_NAME.into(), &globals),
        databases: vec![ManifestDatabase {
            name: "app".into(),
            owner: "app".into(),
            object: object(database_object_name(0), &db),
            sql: Default::default(),
            allow_connections: true,
        }],
        archives: vec![],
        created_at: chrono::Utc::now(),
        cluster_locale: None,
        dump_version: Some("15.18".into()),
        clone: None,
        wal: None,
    };
    let bytes = manifest.stored_bytes(key);
    blobs.write(&loc, manifest::MANIFEST_NAME, bytes.clone().into()).await.unwrap();
    (sha256_hex(&bytes), manifest.total_size(bytes.len() as u64))
}

impl Fixture {
    /// A `ready` image of the source with a valid blob set.
    pub async fn ready_image(&self, image_type: ImageType) -> ImageRecord {
        let mut new = NewImage::new("img", self.source.id);
        let id = ImageId::new();
        new.id = Some(id);
        let key = envelope::DataKey::generate();
        new.encryption = Some(envelope::KeyProvider::wrap(&*self.keys, id, &key).await.unwrap());
        let image = self.catalog.reserve_image(OperationId::new(), &new).await.unwrap();
        let (checksum, size_bytes) = self.write_image(image.id, image_type).await;
        let update = ImageUpdate::Ready {
            size_bytes,
            checksum,
            pg_version: "15.18".into(),
            image_type,
            source_password: Password::new(SOURCE_PW),
            metadata: None,
        };
        self.catalog.update_image(image.id, ImageState::Creating, update).await.unwrap()
    }
}

/// A restore request that carries a password (to be ignored).
pub fn restore_request(image: ImageId) -> CreateInstanceRequest {
    let mut request = CreateInstanceRequest::restore("restored", image);
    request.password = Some(Password::new(REQUEST_PW));
    request
}

/// The restore-side executor steps, for failure injection.
pub const RESTORE_STEPS: &[&str] = &[
    "create_volume",
    "start_restore_job",
    "wait_for_job",
    "deploy",
    "wait_until_ready",
    "connection_info",
    "test_connection",
];

fn injected(step: &str, fail: Option<&str>) -> Result<()> {
    if fail == Some(step) {
        Err(Error::backend_msg("mock executor", format!("injected failure in {step}")))
    } else {
        Ok(())
    }
}

/// An executor whose restore-side methods succeed except `fail`, checking that it always gets the
/// source password. `delete_instance` is not expected: tests that expect cleanup add it.
pub fn restoring_executor(fail: Option<&'static str>) -> MockClusterExecutor {
    restoring_executor_with(fail, |_| {})
}

/// Like [`restoring_executor`], with `first` adding expectations that take precedence
/// (mockall uses the first matching expectation).
pub fn restoring_executor_with(
    fail: Option<&'static str>,
    first: impl FnOnce(&mut MockClusterExecutor),
) -> MockClusterExecutor {
    let mut ex = MockClusterExecutor::new();
    first(&mut ex);
    // The control plane hashes every byte before the restore (the job is a mock).
    ex.expect_verifies_while_restoring().return_const(false);
    ex.expect_check_restorable().returning(|_| Ok(()));
    ex.expect_create_volume().returning(move |_, pw| {
        assert_eq!(pw.expose(), SOURCE_PW);
        injected("create_volume", fail)
    });
    ex.expect_start_restore_job()
        .returning(move |spec| injected("start_restore_job", fail).map(|_| JobRef::restore(spec.instance.id)));
    ex.expect_wait_for_job().returning(move |_, _, _| injected("wait_for_job", fail));
    ex.expect_delete_job().returning(|_| Ok(()));
    ex.expect_deploy_from_volume().returning(move |_| injected("deploy", fail));
    ex.expect_wait_until_ready().returning(move |_, _| injected("wait_until_ready", fail));
    ex.expect_connection_info().returning(move |_| injected("connection_info", fail).map(|_| connection()));
    ex.expect_server_version().returning(|_| Ok(Some(RESTORED_VERSION.into())));
    ex.expect_test_connection().returning(move |_, _, pw| {
        assert_eq!(pw.expose(), SOURCE_PW);
        injected("test_connection", fail)
    });
    ex
}

pub fn connection() -> ConnectionInfo {
    ConnectionInfo {
        host: "127.0.0.1".into(),
        port: 5433,
        user: "postgres".into(),
        database: "postgres".into(),
        dns_name: None,
        ssl_mode: None,
    }
}
