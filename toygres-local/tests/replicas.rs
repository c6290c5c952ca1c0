//! Several local executors over one base directory, as replicas of one service share it: in one
//! process (each executor has its own job registry and port mutex, like a process of its own) and
//! in two (this test binary run again as [`ports_child`]).

use std::path::Path;
use std::process::{Command, Stdio};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};
use toygres_core::{
    BackupJobSpec, ClusterExecutor, EventKind, ImageId, ImageLocation, ImageType, InstanceId, InstanceSpec, JobRef,
    Password, ProgressEvent,
};
use toygres_local::{InstanceConfig, LocalBlobStore, LocalExecutor};

/// Tells this test binary, run again, to create volumes in this base directory.
const CHILD_BASE: &str = "TOYGRES_TEST_PORTS_BASE";
/// Volumes each process creates.
const VOLUMES: usize = 20;

fn executor(base: &Path) -> LocalExecutor {
    let blobs = Arc::new(LocalBlobStore::open(base.join("blobs")).unwrap());
    LocalExecutor::builder(base, blobs).isolate_instances(false).build().unwrap()
}

fn spec(name: &str) -> InstanceSpec {
    InstanceSpec {
        id: InstanceId::new(),
        name: name.into(),
        image_type: ImageType::Stock,
        pg_version: None,
        dns_label: None,
    }
}

/// Creates [`VOLUMES`] volumes, once `go` exists.
async fn create_volumes(base: &Path, who: &str) {
    let executor = executor(base);
    let go = base.join("go");
    let deadline = Instant::now() + Duration::from_secs(60);
    while !go.exists() {
        assert!(Instant::now() < deadline, "never told to go");
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
    let password = Password::generate();
    for i in 0..VOLUMES {
        executor.create_volume(&spec(&format!("{who}-{i}")), &password).await.unwrap();
    }
}

/// The ports every volume under `base` records.
fn recorded_ports(base: &Path) -> Vec<u16> {
    std::fs::read_dir(base.join("instances"))
        .unwrap()
        .map(|e| e.unwrap().path().join("config.json"))
        .filter(|p| p.exists())
        .map(|p| serde_json::from_slice::<InstanceConfig>(&std::fs::read(p).unwrap()).unwrap().port)
        .collect()
}

/// The other process of [`two_processes_never_choose_the_same_port`] (when [`CHILD_BASE`] is set;
/// otherwise a test that does nothing).
#[tokio::test]
async fn ports_child() {
    let Ok(base) = std::env::var(CHILD_BASE) else { return };
    create_volumes(Path::new(&base), "child").await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_processes_never_choose_the_same_port() {
    let base = tempfile::Builder::new().prefix("toygres-ports-").tempdir().unwrap();
    let base = base.path().canonicalize().unwrap();
    let mut child = Command::new(std::env::current_exe().unwrap())
        .args(["--exact", "ports_child", "--nocapture", "--test-threads=1"])
        .env(CHILD_BASE, &base)
        .stdout(Stdio::null())
        .spawn()
        .unwrap();
    // Two executors here and the child's: three choosers at once, from the same offset.
    let here = tokio::spawn({
        let base = base.clone();
        async move { tokio::join!(create_volumes(&base, "a"), create_volumes(&base, "b")) }
    });
    tokio::time::sleep(Duration::from_millis(500)).await;
    std::fs::write(base.join("go"), "").unwrap();
    here.await.unwrap();
    let status = tokio::task::spawn_blocking(move || child.wait().unwrap()).await.unwrap();
    assert!(status.success(), "the other process failed: {status}");

    let mut ports = recorded_ports(&base);
    assert_eq!(ports.len(), 3 * VOLUMES);
    ports.sort();
    let before = ports.len();
    ports.dedup();
    assert_eq!(ports.len(), before, "two volumes record the same port");
}

/// Byte events heard, as `(done, total)`.
#[derive(Default)]
struct Heard(Mutex<Vec<(u64, Option<u64>)>>);

impl toygres_core::ProgressSink for Heard {
    fn emit(&self, event: &ProgressEvent) {
        if let EventKind::Bytes { done, total } = event.kind {
            self.0.lock().unwrap().push((done, total));
        }
    }
}

/// Stops the servers when dropped, also when a check panics.
struct Discard(LocalExecutor);

impl Drop for Discard {
    fn drop(&mut self) {
        self.0.discard_blocking();
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_backup_started_by_one_executor_is_awaited_and_deleted_by_another() {
    let base = tempfile::Builder::new().prefix("toygres-replicas-").tempdir().unwrap();
    let (a, b) = (executor(base.path()), executor(base.path()));
    let discard = Discard(a.clone());
    let password = Password::generate();
    let source = spec("replicas-source");
    a.provision_empty(&source, &password).await.unwrap();
    let client = a.cluster(&source).unwrap().connect("postgres", &password).await.unwrap();
    client.batch_execute("CREATE TABLE t AS SELECT g, md5(g::text) FROM generate_series(1, 200000) g").await.unwrap();

    let image = ImageId::new();
    let backup = BackupJobSpec {
        image_id: image,
        source: source.clone(),
        source_password: password.clone(),
        location: ImageLocation::for_image(image),
        image_type: ImageType::Stock,
        format: Default::default(),
        data_key: None,
        from_image: None,
    };
    let job = a.start_backup_job(&backup).await.unwrap();
    assert_eq!(b.start_backup_job(&backup).await.unwrap(), job);
    let heard = Arc::new(Heard::default());
    b.wait_for_job(&job, Duration::from_secs(300), heard.clone()).await.unwrap();
    let last = heard.0.lock().unwrap().last().copied();
    assert!(last.is_some_and(|(done, total)| done > 0 && total == Some(done)), "{last:?}");
    // One run: the second start neither ran the job again nor truncated its log.
    let logs = b.job_logs(&job).await.unwrap();
    assert_eq!(logs.matches(&format!("job {} started", job.name)).count(), 1, "{logs}");
    assert_eq!(logs.matches(&format!("job {} succeeded", job.name)).count(), 1, "{logs}");
    // Started again (the durable layer retrying the step, on either replica): nothing runs.
    a.start_backup_job(&backup).await.unwrap();
    b.start_backup_job(&backup).await.unwrap();
    assert_eq!(b.job_logs(&job).await.unwrap(), logs);

    b.delete_job(&job).await.unwrap();
    let jobs = base.path().join("jobs");
    let left: Vec<_> = std::fs::read_dir(&jobs).unwrap().map(|e| e.unwrap().file_name()).collect();
    assert!(left.is_empty(), "left in {}: {left:?}", jobs.display());
    let gone = a.wait_for_job(&job, Duration::from_secs(5), heard).await.unwrap_err();
    assert!(gone.to_string().contains("no such job"), "{gone}");
    assert!(a.job_logs(&JobRef::backup(image)).await.unwrap().is_empty());
    tokio::task::spawn_blocking(move || drop(discard)).await.unwrap();
}
