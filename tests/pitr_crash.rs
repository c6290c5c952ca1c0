//! A control plane running a protected instance's WAL receiver is killed with SIGKILL: its
//! `pg_receivewal` dies with it (nothing holds the slot), and another process's
//! `Toygres::resume_protection` takes the archiving over with no gap.
//!
//! The first control plane is this test binary again, running only `crash_child_protect` with
//! `TOYGRES_PITR_CHILD` set, on the same SQLite catalog, blob directory, keys and executor base
//! directory as the parent.

#[path = "local/support.rs"]
mod support;

use nix::sys::signal::{kill, Signal};
use nix::unistd::Pid;
use std::path::Path;
use std::sync::Arc;
use std::time::{Duration, Instant};
use support::{rt, StopAll};
use toygres_cms_sqlite::SqliteCatalog;
use toygres_core::crypto::CatalogKey;
use toygres_core::wal::{PointInTime, WalArchive};
use toygres_core::{CreateInstanceRequest, InstanceId, OperationId, Password, Toygres};
use toygres_local::{LocalBlobStore, LocalExecutor};

const CHILD: &str = "TOYGRES_PITR_CHILD";

fn open(base: &Path, key: &CatalogKey) -> (Toygres, LocalExecutor) {
    let blobs = Arc::new(LocalBlobStore::open(base.join("blobs")).unwrap());
    let executor = LocalExecutor::builder(base, blobs.clone()).build().unwrap();
    let catalog = Arc::new(SqliteCatalog::open(base.join("catalog.db"), key.clone()).unwrap());
    let keys = Arc::new(toygres_core::envelope::LocalKeys::open_or_create(base.join("image-keys")).unwrap());
    (Toygres::new(catalog, blobs, Arc::new(executor.clone())).with_image_keys(keys), executor)
}

/// Not a test of its own: the child control plane protects the instance, then runs until killed.
#[test]
fn crash_child_protect() {
    let Ok(base) = std::env::var(CHILD) else { return };
    let key = CatalogKey::from_env("TOYGRES_CATALOG_KEY").unwrap();
    let source: InstanceId = std::env::var("TOYGRES_PITR_SOURCE").unwrap().parse().unwrap();
    rt().block_on(async {
        let (t, _) = open(Path::new(&base), &key);
        t.protect(source).await.unwrap();
        loop {
            tokio::time::sleep(Duration::from_secs(60)).await;
        }
    });
}

async fn wait_for<T>(what: &str, mut probe: impl FnMut() -> Option<T>) -> T {
    let started = Instant::now();
    loop {
        if let Some(found) = probe() {
            return found;
        }
        assert!(started.elapsed() < Duration::from_secs(30), "{what} within 30 s");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

#[test]
fn a_killed_control_plane_leaves_no_receiver_and_another_takes_over_with_no_gap() {
    let dir = tempfile::Builder::new().prefix("toygres-pitr-crash-").tempdir().unwrap();
    let base = dir.path().to_path_buf();
    let key = CatalogKey::generate();
    let (t, executor) = open(&base, &key);
    let _stop = StopAll(executor.clone());
    rt().block_on(async {
        let password = Password::generate();
        let source = executor.provision_source(&t, "survivor", &password).await.unwrap();
        let db = executor.cluster(&source.spec()).unwrap().connect("postgres", &password).await.unwrap();
        db.batch_execute("CREATE TABLE rows (id int)").await.unwrap();

        let mut child = std::process::Command::new(std::env::current_exe().unwrap())
            .args(["crash_child_protect", "--exact", "--nocapture", "--test-threads=1"])
            .env(CHILD, &base)
            .env("TOYGRES_CATALOG_KEY", key.to_hex())
            .env("TOYGRES_PITR_SOURCE", source.id.to_string())
            .spawn()
            .unwrap();
        let receiver = wait_for("the child's receiver", || executor.wal_receiver_pid(source.id)).await;
        let request = t.base_image_request(source.id).await.unwrap().expect("a base is needed");
        t.create_image(OperationId::new(), request).await.unwrap();
        db.batch_execute("INSERT INTO rows SELECT g FROM generate_series(1, 50000) g; SELECT pg_switch_wal()")
            .await
            .unwrap();

        kill(Pid::from_raw(child.id() as i32), Signal::SIGKILL).unwrap();
        assert!(!child.wait().unwrap().success(), "the child died of SIGKILL");
        wait_for("its receiver to die with it", || (!toygres_local::cluster::process_alive(receiver)).then_some(()))
            .await;

        // Written while no receiver runs: the slot keeps it for the next one.
        db.batch_execute("INSERT INTO rows SELECT g FROM generate_series(50001, 100000) g; SELECT pg_switch_wal()")
            .await
            .unwrap();
        assert_eq!(t.resume_protection().await.unwrap(), 1, "this process takes the archiving over");
        let taken =
            wait_for("a new receiver", || executor.wal_receiver_pid(source.id).filter(|p| *p != receiver)).await;
        assert!(toygres_local::cluster::process_alive(taken));
        db.batch_execute("INSERT INTO rows SELECT g FROM generate_series(100001, 150000) g").await.unwrap();

        let request = CreateInstanceRequest::at_point_in_time("after-crash", PointInTime::latest(source.id));
        let restored = t.create_instance(OperationId::new(), request).await.unwrap();
        let copy = executor.cluster(&restored.spec()).unwrap().connect("postgres", &password).await.unwrap();
        let rows: i64 = copy.query_one("SELECT count(*) FROM rows", &[]).await.unwrap().get(0);
        assert_eq!(rows, 150_000, "every row: before, during and after the crash");
        let archive = WalArchive::of(source.id);
        let protection = t.catalog.get_instance(source.id).await.unwrap().protection.unwrap();
        let key = t.keys.data_key(archive.key_id(), protection.key.as_ref()).await.unwrap();
        let head = archive.head(&*t.blobs, key.as_ref()).await.unwrap().unwrap();
        assert!(head.gaps.is_empty(), "no gap: {head:?}");
        let segments: Vec<u64> = archive.contents(&*t.blobs).await.unwrap().segments.iter().map(|s| s.1).collect();
        assert!(segments.windows(2).all(|w| w[1] == w[0] + 1), "contiguous: {segments:?}");
    });
}
