//! A real backup process killed with SIGKILL mid-upload, then resumed, cancelled and reconciled:
//! the killed upload leaves object_store's multipart staging files (`<object>#<n>`), and afterwards
//! nothing is left in the blob store but the finished image's own objects.
//!
//! The backup runs in a child process: this test binary again, running only
//! `crash_child_backup` with `TOYGRES_CRASH_CHILD` set, on the same SQLite catalog, blob directory
//! and executor base directory as the parent.

#[path = "local/support.rs"]
mod support;

use nix::sys::signal::{kill, Signal};
use nix::unistd::Pid;
use std::collections::BTreeSet;
use std::path::Path;
use std::sync::Arc;
use std::time::{Duration, Instant};
use support::{rt, StopAll};
use toygres_cms_sqlite::SqliteCatalog;
use toygres_core::crypto::CatalogKey;
use toygres_core::manifest::MANIFEST_NAME;
use toygres_core::{
    BlobStore, ClusterExecutor, CreateImageRequest, ImageFilter, ImageId, ImageLocation, ImageRecord, ImageState,
    InstanceId, InstanceSpec, OperationId, Password, Toygres,
};
use toygres_local::{LocalBlobStore, LocalExecutor};

const CHILD: &str = "TOYGRES_CRASH_CHILD";

/// The toygres of a crash test directory `base`: SQLite catalog, local blobs, local executor.
fn open(base: &Path, key: &CatalogKey) -> (Toygres, Arc<LocalBlobStore>, LocalExecutor) {
    let blobs = Arc::new(LocalBlobStore::open(base.join("blobs")).unwrap());
    let executor = LocalExecutor::builder(base, blobs.clone()).build().unwrap();
    let catalog = Arc::new(SqliteCatalog::open(base.join("catalog.db"), key.clone()).unwrap());
    let keys = Arc::new(toygres_core::envelope::LocalKeys::open_or_create(base.join("image-keys")).unwrap());
    (Toygres::new(catalog, blobs.clone(), Arc::new(executor.clone())).with_image_keys(keys), blobs, executor)
}

/// Not a test of its own: the child process's backup (does nothing unless `TOYGRES_CRASH_CHILD` is set).
#[test]
fn crash_child_backup() {
    let Ok(base) = std::env::var(CHILD) else { return };
    let key = CatalogKey::from_env("TOYGRES_CATALOG_KEY").unwrap();
    let source: InstanceId = std::env::var("TOYGRES_CRASH_SOURCE").unwrap().parse().unwrap();
    let name = std::env::var("TOYGRES_CRASH_NAME").unwrap();
    rt().block_on(async {
        let (t, _, _) = open(Path::new(&base), &key);
        t.create_image(OperationId::new(), CreateImageRequest::new(name, source)).await.unwrap();
    });
}

/// Every file under `root`, relative to it.
fn files(root: &Path) -> BTreeSet<String> {
    let mut out = BTreeSet::new();
    let mut pending = vec![root.to_path_buf()];
    while let Some(dir) = pending.pop() {
        for entry in std::fs::read_dir(&dir).into_iter().flatten().flatten() {
            let path = entry.path();
            if path.is_dir() {
                pending.push(path);
            } else {
                out.insert(path.strip_prefix(root).unwrap().to_string_lossy().into_owned());
            }
        }
    }
    out
}

/// Runs the child backup of `source` as `name` and kills it with SIGKILL as soon as a database
/// dump is being uploaded (its staging file exists). Returns the staging files it left.
fn backup_killed_mid_upload(base: &Path, key: &CatalogKey, source: InstanceId, name: &str) -> Vec<String> {
    let mut child = std::process::Command::new(std::env::current_exe().unwrap())
        .args(["crash_child_backup", "--exact", "--nocapture", "--test-threads=1"])
        .env(CHILD, base)
        .env("TOYGRES_CATALOG_KEY", key.to_hex())
        .env("TOYGRES_CRASH_SOURCE", source.to_string())
        .env("TOYGRES_CRASH_NAME", name)
        .spawn()
        .unwrap();
    let blobs = base.join("blobs");
    let started = Instant::now();
    let staging = loop {
        let staged: Vec<String> = files(&blobs).into_iter().filter(|f| f.contains(".dump.zst#")).collect();
        if !staged.is_empty() {
            break staged;
        }
        assert!(child.try_wait().unwrap().is_none(), "the backup finished before it could be killed");
        assert!(started.elapsed() < Duration::from_secs(120), "no upload started within 120 s");
        std::thread::sleep(Duration::from_millis(10));
    };
    kill(Pid::from_raw(child.id() as i32), Signal::SIGKILL).unwrap();
    let status = child.wait().unwrap();
    assert!(!status.success(), "the child must have died of SIGKILL: {status:?}");
    staging
}

/// Loads ~48 MiB of random bytes (incompressible, so every dump upload takes several parts).
async fn load_random_bytes(executor: &LocalExecutor, spec: &InstanceSpec, password: &Password) {
    let client = executor.cluster(spec).unwrap().params().connect("postgres", password).await.unwrap();
    client
        .batch_execute(
            "CREATE TABLE noise (id int PRIMARY KEY, bytes bytea); \
             INSERT INTO noise SELECT i, decode(string_agg(md5(i::text || '.' || j::text || random()::text), ''), 'hex') \
             FROM generate_series(1, 48 * 1024) i, generate_series(1, 64) j GROUP BY i;",
        )
        .await
        .unwrap();
}

#[test]
fn a_killed_backup_leaves_nothing_after_resume_cancel_and_reconcile() {
    let dir = tempfile::Builder::new().prefix("toygres-crash-").tempdir().unwrap();
    let base = dir.path().to_path_buf();
    let key = CatalogKey::generate();
    let (t, blobs, executor) = open(&base, &key);
    let _stop = StopAll(executor.clone());
    rt().block_on(async {
        let password = Password::generate();
        let source = executor.provision_source(&t, "noisy", &password).await.unwrap();
        load_random_bytes(&executor, &source.spec(), &password).await;

        // 1. Killed mid-upload, then resumed: the image completes and only its objects remain.
        let staging = backup_killed_mid_upload(&base, &key, source.id, "killed-then-resumed");
        let root = blobs.root().to_path_buf();
        assert!(files(&root).iter().any(|f| staging.contains(f)), "SIGKILL leaves staging files: {staging:?}");
        let creating = t.list_images(&ImageFilter::new().state(ImageState::Creating)).await.unwrap().items;
        assert_eq!(creating.len(), 1, "the killed backup's image is still creating");
        let image = t.resume_image(creating[0].id).await.unwrap();
        assert_eq!(image.state, ImageState::Ready);
        assert_eq!(files(&root), image_files(&t, &image).await, "after resume only the image's objects remain");

        // 2. Killed again, then cancelled: the second image is failed and has no bytes left.
        backup_killed_mid_upload(&base, &key, source.id, "killed-then-cancelled");
        let doomed = t.list_images(&ImageFilter::new().name("killed-then-cancelled")).await.unwrap().items;
        let cancelled = t.cancel_image(doomed[0].id).await.unwrap();
        assert_eq!(cancelled.state, ImageState::Failed);
        assert!(cancelled.failure_reason.as_deref().unwrap_or_default().contains("cancelled"), "{cancelled:?}");
        assert_eq!(files(&root), image_files(&t, &image).await, "cancel removes the killed upload's files");
        t.delete_image(cancelled.id).await.unwrap();

        // 3. Killed a third time and its record lost (a catalog restored from an older backup):
        // reconcile removes the blobs nothing owns, and a volume nothing owns.
        backup_killed_mid_upload(&base, &key, source.id, "killed-then-forgotten");
        let forgotten = t.list_images(&ImageFilter::new().name("killed-then-forgotten")).await.unwrap().items[0].id;
        t.cancel_image(forgotten).await.unwrap();
        let stray = InstanceSpec { id: InstanceId::new(), name: "stray".into(), ..source.spec() };
        executor.create_volume(&stray, &password).await.unwrap();
        let orphan = ImageLocation::for_image(ImageId::new());
        blobs.write(&orphan, "db-0000.dump.zst", "left behind".into()).await.unwrap();
        std::fs::write(blobs.object_path(&orphan, "db-0001.dump.zst#1"), b"staged").unwrap();
        let report = t.reconcile().await.unwrap();
        assert!(report.orphan_images.contains(&orphan.image_id), "{report:?}");
        assert_eq!(report.orphan_instances, vec![stray.id], "{report:?}");
        assert!(!executor.base_dir().join("instances").join(stray.resource_name()).exists());
        assert_eq!(files(&root), image_files(&t, &image).await, "reconcile leaves only the ready image");
        assert!(t.reconcile().await.unwrap().is_empty(), "a second reconcile finds nothing");
        assert!(executor.list_instances().await.unwrap().contains(&source.id), "the source is kept");
    });
}

/// The files a ready image consists of: its manifest and every object the manifest lists.
async fn image_files(t: &Toygres, image: &ImageRecord) -> BTreeSet<String> {
    let location = ImageLocation::for_image(image.id);
    let manifest = support::manifest_of(t, image).await;
    let mut out: BTreeSet<String> = manifest.objects().map(|o| location.object(&o.name)).collect();
    out.insert(location.object(MANIFEST_NAME));
    out
}
