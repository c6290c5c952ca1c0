//! The executor conformance suite against the local executor: real PostgreSQL servers (a source
//! loaded with the sample data), real backup and restore jobs, a blob store on local files.
//!
//! What is left of an instance: its volume directory, its OS user and every process running as
//! that user, its restore job's files. Of a job: its files (log, lock, state, cancel marker), and
//! the processes it started (children of this test process).

use async_trait::async_trait;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::{Duration, Instant};
use toygres_core::testing::executor_suite::{self, Capabilities, ExecutorHarness};
use toygres_core::{BlobStore, ClusterExecutor, ImageType, InstanceId, InstanceSpec, JobRef, Password};
use toygres_local::cluster::identity::instance_user_name;
use toygres_local::fidelity::sample::load_sample_data;
use toygres_local::{LocalBlobStore, LocalExecutor};

/// How long the processes of a deleted job may take to exit (they are killed as its task drops).
const EXIT_GRACE: Duration = Duration::from_secs(5);

/// Stops every server of the executor and removes its instances' OS users when dropped, also
/// when a check panics.
struct Discard(LocalExecutor);

impl Drop for Discard {
    fn drop(&mut self) {
        self.0.discard_blocking();
    }
}

struct LocalHarness {
    // Dropped first (fields drop in order): the servers stop and the OS users go while the base
    // directory still tells where they are.
    _discard: Discard,
    executor: LocalExecutor,
    blobs: Arc<LocalBlobStore>,
    source: InstanceSpec,
    password: Password,
    _base: tempfile::TempDir,
}

impl LocalHarness {
    /// An executor over a new base directory, and a running source loaded with the sample data.
    async fn new() -> Self {
        let base = tempfile::Builder::new().prefix("toygres-executor-suite-").tempdir().unwrap();
        let blobs = Arc::new(LocalBlobStore::open(base.path().join("blobs")).unwrap());
        let executor = LocalExecutor::builder(base.path(), blobs.clone()).build().unwrap();
        let discard = Discard(executor.clone());
        let password = Password::generate();
        let source = InstanceSpec {
            id: InstanceId::new(),
            name: "suite-source".into(),
            image_type: ImageType::Stock,
            pg_version: None,
            dns_label: None,
        };
        executor.provision_empty(&source, &password).await.unwrap();
        load_sample_data(&executor.cluster(&source).unwrap().params(), &password).await.unwrap();
        Self { _discard: discard, executor, blobs, source, password, _base: base }
    }

    /// The job's files in the jobs directory: `<name>.log`, `.lock`, `.state`, `.cancel`, …
    fn job_files(&self, job: &JobRef) -> Vec<PathBuf> {
        let Ok(entries) = std::fs::read_dir(self.executor.base_dir().join("jobs")) else { return vec![] };
        let prefix = format!("{}.", job.name);
        entries
            .filter_map(|e| e.ok())
            .filter(|e| e.file_name().to_str().is_some_and(|n| n.starts_with(&prefix)))
            .map(|e| e.path())
            .collect()
    }
}

/// `(pid, parent pid, real uid, state, command)` of every process, from `/proc`.
fn processes() -> Vec<(u32, u32, u32, char, String)> {
    let Ok(entries) = std::fs::read_dir("/proc") else { return vec![] };
    let mut found = Vec::new();
    for pid in entries.filter_map(|e| e.ok()?.file_name().to_str()?.parse::<u32>().ok()) {
        let Ok(status) = std::fs::read_to_string(format!("/proc/{pid}/status")) else { continue };
        let field = |name: &str| {
            status
                .lines()
                .find_map(|l| l.strip_prefix(name))
                .map(|v| v.split_whitespace().next().unwrap_or("").to_string())
        };
        let (Some(ppid), Some(uid), Some(state), Some(name)) =
            (field("PPid:"), field("Uid:"), field("State:"), field("Name:"))
        else {
            continue;
        };
        let (Ok(ppid), Ok(uid)) = (ppid.parse(), uid.parse()) else { continue };
        found.push((pid, ppid, uid, state.chars().next().unwrap_or('?'), name));
    }
    found
}

/// The live (not zombie) processes that `keep` selects, as descriptions.
fn live(keep: impl Fn(u32, u32) -> bool) -> Vec<String> {
    processes()
        .into_iter()
        .filter(|(_, ppid, uid, state, _)| *state != 'Z' && keep(*ppid, *uid))
        .map(|(pid, _, uid, _, name)| format!("process {pid} ({name}, uid {uid})"))
        .collect()
}

/// [`live`], after up to [`EXIT_GRACE`] for the selected processes to exit.
async fn live_after_grace(keep: impl Fn(u32, u32) -> bool) -> Vec<String> {
    let deadline = Instant::now() + EXIT_GRACE;
    loop {
        let found = live(&keep);
        if found.is_empty() || Instant::now() >= deadline {
            return found;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

#[async_trait]
impl ExecutorHarness for LocalHarness {
    fn executor(&self) -> Arc<dyn ClusterExecutor> {
        Arc::new(self.executor.clone())
    }

    fn blobs(&self) -> Arc<dyn BlobStore> {
        self.blobs.clone()
    }

    fn source(&self) -> InstanceSpec {
        self.source.clone()
    }

    fn source_password(&self) -> Password {
        self.password.clone()
    }

    /// Real servers, byte counts and a listing of the instance volumes: everything.
    fn capabilities(&self) -> Capabilities {
        Capabilities::full()
    }

    async fn resources_of(&self, instance: &InstanceSpec) -> Vec<String> {
        let mut found = Vec::new();
        let volume = self.executor.base_dir().join("instances").join(instance.resource_name());
        if volume.exists() {
            found.push(format!("volume {}", volume.display()));
        }
        for file in self.job_files(&JobRef::restore(instance.id)) {
            found.push(format!("restore job file {}", file.display()));
        }
        let name = instance_user_name(instance.id);
        if let Some(user) = nix::unistd::User::from_name(&name).ok().flatten() {
            found.push(format!("OS user {name}"));
            let uid = user.uid.as_raw();
            found.extend(live_after_grace(|_, owner| owner == uid).await);
        }
        found.sort();
        found
    }

    async fn resources_of_job(&self, job: &JobRef) -> Vec<String> {
        let mut found = Vec::new();
        for file in self.job_files(job) {
            found.push(format!("job file {}", file.display()));
        }
        // The suite runs one job at a time: any child of this process is the job's.
        let me = std::process::id();
        found.extend(live_after_grace(|parent, _| parent == me).await);
        found.sort();
        found
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_local_executor_conforms() {
    let harness = LocalHarness::new().await;
    executor_suite::run_all(&harness).await;
    let source = harness.executor.cluster(&harness.source).unwrap();
    assert!(source.is_running(), "the suite left the source running");
    // Stopping servers and removing OS users blocks: not on a runtime worker.
    tokio::task::spawn_blocking(move || drop(harness)).await.unwrap();
}
