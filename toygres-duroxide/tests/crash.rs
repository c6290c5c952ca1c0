//! A control plane that dies: the runtime runs in a child process (this test binary run again as
//! `child_runtime`), is SIGKILLed in the middle of a restore, and separately of a backup; a new
//! child on the same store completes the orchestration. The restored instance equals the source,
//! exactly one instance record and one set of blobs exist, and no server or pg_dump/pg_restore
//! process is left behind.

mod support;

use std::process::{Child, Command};
use std::time::{Duration, Instant};
use support::*;
use toygres_core::{ClusterExecutor, CreateImageRequest, CreateInstanceRequest, ImageState, InstanceState};
use toygres_core::{OperationId, Phase, Subject};
use toygres_duroxide::{DurableClient, OperationState};

const CHILD_ENV: &str = "TOYGRES_DURABLE_CHILD";
/// Rows in the source's bulk table: enough for a load that lasts a moment.
const BULK_ROWS: u64 = 600_000;

/// The child: a runtime on the environment named by `TOYGRES_DURABLE_CHILD`, until killed.
/// Without that variable (a normal test run) it does nothing.
#[test]
fn child_runtime() {
    let Ok(root) = std::env::var(CHILD_ENV) else { return };
    let rt = tokio::runtime::Builder::new_multi_thread().worker_threads(2).enable_all().build().unwrap();
    rt.block_on(async {
        let env = Env::open(root);
        let (t, _, _) = env.toygres();
        let _runtime = env.runtime(t).start().await.unwrap();
        eprintln!("child {} serving {}", std::process::id(), env.store_path().display());
        std::future::pending::<()>().await;
    });
}

fn spawn_child(env: &Env) -> Child {
    Command::new(std::env::current_exe().unwrap())
        .args(["--exact", "child_runtime", "--nocapture", "--test-threads=1"])
        .env(CHILD_ENV, &env.root)
        .env("RUST_LOG", "error")
        .spawn()
        .unwrap()
}

fn sigkill(child: &mut Child) {
    nix::sys::signal::kill(nix::unistd::Pid::from_raw(child.id() as i32), nix::sys::signal::Signal::SIGKILL).unwrap();
    child.wait().unwrap();
}

/// Polls until `check` holds (or panics after two minutes).
async fn until<F: AsyncFnMut() -> bool>(what: &str, mut check: F) {
    let deadline = Instant::now() + Duration::from_secs(120);
    while !check().await {
        assert!(Instant::now() < deadline, "timed out waiting for {what}");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

async fn step_of(client: &DurableClient, subject: Subject) -> Option<Phase> {
    client.status(subject).await.unwrap().step
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sigkill_mid_backup_then_mid_restore_and_a_new_process_completes_each() {
    let env = Env::new();
    let _stop = StopAll(env.base_dir());
    let (t, executor, _) = env.toygres();
    let source = source(&t, &executor, BULK_ROWS).await;
    let source_port = executor.connection_info(&source.record.spec()).await.unwrap().port;
    // This process only starts and watches; the children run the work.
    let client = env.runtime(t.clone()).connect().await.unwrap();

    // --- backup: kill while pg_dump runs.
    let request = CreateImageRequest { name: "crashy".into(), instance_id: source.record.id, description: None };
    let image = client.create_image(OperationId::new(), request).await.unwrap();
    let subject = Subject::Image(image.id);
    let mut first = spawn_child(&env);
    until("pg_dump of the source", async || {
        step_of(&client, subject).await == Some(Phase::BackupJob)
            && !procs::clients_of("pg_dump", source_port).is_empty()
    })
    .await;
    sigkill(&mut first);
    let mut second = spawn_child(&env);
    let done = client.wait(subject, Duration::from_secs(180)).await.unwrap();
    assert_eq!(done.state, OperationState::Completed, "{done:?}");
    assert_eq!(t.catalog.get_image(image.id).await.unwrap().state, ImageState::Ready);
    assert_eq!(blob_files(&env.blobs_dir(), image.id), expected_blob_files(&source.snapshot), "one set of blobs");
    assert!(procs::clients_of("pg_dump", source_port).is_empty(), "no pg_dump left behind");

    // --- restore: kill while pg_restore loads the new volume.
    let instance =
        client.create_instance(OperationId::new(), CreateInstanceRequest::restore("restored", image.id)).await;
    let instance = instance.unwrap();
    let subject = Subject::Instance(instance.id);
    let spec = instance.spec();
    until("pg_restore into the new instance", async || {
        if step_of(&client, subject).await != Some(Phase::WaitRestoreJob) {
            return false;
        }
        let Ok(conn) = executor.connection_info(&spec).await else { return false };
        !procs::clients_of("pg_restore", conn.port).is_empty()
    })
    .await;
    sigkill(&mut second);
    let load_server = executor.cluster(&spec).unwrap().postmaster_pid();
    assert!(load_server.is_some(), "the killed process left its load-only server running");
    let mut third = spawn_child(&env);
    let done = client.wait(subject, Duration::from_secs(180)).await.unwrap();
    assert_eq!(done.state, OperationState::Completed, "{done:?}");
    sigkill(&mut third);

    let record = t.catalog.get_instance(instance.id).await.unwrap();
    assert_eq!(record.state, InstanceState::Running);
    let diff = source.snapshot.diff(&snapshot(&executor, &record, &source.password).await);
    assert!(diff.is_empty(), "{}", diff.join("\n"));
    let restored: Vec<_> =
        t.catalog.list_instances().await.unwrap().into_iter().filter(|r| r.name == "restored").collect();
    assert_eq!(restored.len(), 1, "exactly one instance record");
    assert_eq!(volumes(&env.base_dir()).len(), 2, "the source's and the restored instance's volumes only");
    let cluster = executor.cluster(&spec).unwrap();
    assert_ne!(cluster.postmaster_pid(), load_server, "the interrupted load's server was replaced");
    let conn = record.connection.clone().unwrap();
    assert!(procs::clients_of("pg_restore", conn.port).is_empty(), "no pg_restore left behind");

    // Nothing but the two servers runs; deleting them leaves no process under the base dir.
    t.delete_instance(record.id).await.unwrap();
    t.delete_instance(source.record.id).await.unwrap();
    let leftover = procs::under(&env.base_dir());
    assert!(leftover.is_empty(), "processes left behind: {leftover:?}");
}
