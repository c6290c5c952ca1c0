//! Retries, failures, cancellation and versions, in one process on the embedded default.

mod support;

use std::sync::Arc;
use std::time::{Duration, Instant};
use support::flaky::FlakyDeploy;
use support::*;
use toygres_core::{ClusterExecutor, CreateImageRequest, CreateInstanceRequest, ImageRecord, InstanceState};
use toygres_core::{InstanceRecord, InstanceSpec, OperationId, Phase, Subject, Toygres};
use toygres_duroxide::names::{activity, activity_v1, CREATE_INSTANCE, CREATE_INSTANCE_V1_0_5};
use toygres_duroxide::orchestrations::v1::InstanceInput;
use toygres_duroxide::{DurableClient, OperationState, OperationStatus, ToygresRuntime};
use toygres_local::LocalExecutor;

const WAIT: Duration = Duration::from_secs(120);

async fn image(t: &Toygres, source: &Source) -> ImageRecord {
    let request = CreateImageRequest::new("img", source.record.id);
    t.create_image(OperationId::new(), request).await.unwrap()
}

/// How many times the orchestration of `subject` scheduled activity `name`.
async fn scheduled(client: &DurableClient, subject: Subject, name: &str) -> usize {
    let id = toygres_duroxide::names::orchestration_id(subject);
    let history = client.duroxide().read_execution_history(&id, 1).await.unwrap();
    let needle = format!("ActivityScheduled {{ name: \"{name}\"");
    history.iter().filter(|e| format!("{:?}", e.kind).starts_with(&needle)).count()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_transiently_failing_step_is_retried_per_its_policy() {
    let env = Env::new();
    let _stop = StopAll(env.base_dir());
    let mut flaky = None;
    let (t, executor, _) = env.toygres_with(|e| {
        let f = FlakyDeploy::new(e, 2, true);
        flaky = Some(f.clone());
        f
    });
    let flaky = flaky.unwrap();
    let source = source(&t, &executor, 0).await;
    let image = image(&t, &source).await;
    let runtime = env.runtime(t.clone()).start().await.unwrap();
    let client = runtime.client();
    let record = client.create_instance(OperationId::new(), CreateInstanceRequest::restore("r", image.id)).await;
    let subject = Subject::Instance(record.unwrap().id);
    let done = client.wait(subject, WAIT).await.unwrap();
    assert_eq!(done.state, OperationState::Completed, "{done:?}");
    // Two failures, then success on the third and last attempt of the short-step policy.
    assert_eq!(flaky.calls.load(std::sync::atomic::Ordering::SeqCst), 3);
    assert_eq!(scheduled(&client, subject, activity::SERVE).await, 3);
    let Subject::Instance(id) = subject else { unreachable!() };
    assert_eq!(t.catalog.get_instance(id).await.unwrap().state, InstanceState::Running);
    runtime.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_permanent_failure_leaves_the_instance_failed_with_the_reason_and_nothing_behind() {
    let env = Env::new();
    let _stop = StopAll(env.base_dir());
    let (t, executor, _) = env.toygres_with(|e| FlakyDeploy::new(e, 1, false));
    let source = source(&t, &executor, 0).await;
    let image = image(&t, &source).await;
    let runtime = env.runtime(t.clone()).start().await.unwrap();
    let client = runtime.client();
    let record = client.create_instance(OperationId::new(), CreateInstanceRequest::restore("r", image.id)).await;
    let record = record.unwrap();
    let done = client.wait(Subject::Instance(record.id), WAIT).await.unwrap();
    assert_eq!(done.state, OperationState::Failed, "{done:?}");
    assert_eq!(done.step, Some(Phase::Deploy));
    assert!(done.error.as_deref().unwrap().contains("the volume is unusable"), "{done:?}");
    assert_eq!(scheduled(&client, Subject::Instance(record.id), activity::SERVE).await, 1, "not retried");
    let failed = t.catalog.get_instance(record.id).await.unwrap();
    assert_eq!(failed.state, InstanceState::Failed);
    assert!(failed.failure_reason.as_deref().unwrap().contains("Deploy failed: corrupt"), "{failed:?}");
    assert_eq!(volumes(&env.base_dir()), vec![source.record.spec().resource_name()], "the volume was removed");
    let dir = env.base_dir().join("instances").join(record.spec().resource_name());
    assert!(procs::under(&dir).is_empty(), "no server of the failed instance runs");
    assert!(executor.job_logs(&toygres_core::JobRef::restore(record.id)).await.unwrap().is_empty(), "job removed");
    runtime.shutdown().await;
}

/// A restore of a source with `bulk_rows` extra rows, started through a durable runtime.
struct Restoring {
    runtime: ToygresRuntime,
    source: Source,
    record: InstanceRecord,
}

impl Restoring {
    async fn start(env: &Env, t: &Toygres, executor: &LocalExecutor, bulk_rows: u64) -> Self {
        let source = source(t, executor, bulk_rows).await;
        let image = image(t, &source).await;
        let runtime = env.runtime(t.clone()).start().await.unwrap();
        let request = CreateInstanceRequest::restore("r", image.id);
        let record = runtime.client().create_instance(OperationId::new(), request).await.unwrap();
        Self { runtime, source, record }
    }

    fn subject(&self) -> Subject {
        Subject::Instance(self.record.id)
    }

    /// Cancels the restore and checks that it ends cancelled, the instance failed with the
    /// reason, its volume removed and no process left on it, and that cancelling it again
    /// changes nothing. Returns the final status.
    async fn cancel_and_check(&self, env: &Env, t: &Toygres) -> OperationStatus {
        let (client, subject) = (self.runtime.client(), self.subject());
        let cancelled_at = Instant::now();
        client.cancel(subject).await.unwrap();
        let done = client.wait(subject, WAIT).await.unwrap();
        eprintln!("cancel → cleaned up in {:?}", cancelled_at.elapsed());
        assert_eq!(done.state, OperationState::Cancelled, "{done:?}");
        assert!(done.error.as_deref().unwrap().contains("was cancelled"), "{done:?}");
        let failed = t.catalog.get_instance(self.record.id).await.unwrap();
        assert_eq!(failed.state, InstanceState::Failed);
        assert!(failed.failure_reason.as_deref().unwrap().contains("was cancelled"), "{failed:?}");
        let source_volume = self.source.record.spec().resource_name();
        assert_eq!(volumes(&env.base_dir()), vec![source_volume], "the volume was removed");
        let dir = env.base_dir().join("instances").join(self.record.spec().resource_name());
        assert!(procs::under(&dir).is_empty(), "the load-only server (and with it its backends) was stopped");
        client.cancel(subject).await.unwrap();
        assert_eq!(client.status(subject).await.unwrap().state, OperationState::Cancelled);
        done
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn cancel_mid_restore_kills_pg_restore_and_cleans_up() {
    let env = Env::new();
    let _stop = StopAll(env.base_dir());
    let (t, executor, _) = env.toygres();
    let restoring = Restoring::start(&env, &t, &executor, 600_000).await;
    let (client, subject, spec) = (restoring.runtime.client(), restoring.subject(), restoring.record.spec());
    let deadline = Instant::now() + WAIT;
    let port = loop {
        assert!(Instant::now() < deadline, "pg_restore never started");
        let status = client.status(subject).await.unwrap();
        if let (Some(Phase::WaitRestoreJob), Ok(conn)) = (status.step, executor.connection_info(&spec).await) {
            if !procs::clients_of("pg_restore", conn.port).is_empty() {
                assert!(status.bytes_total.is_some(), "byte progress while restoring: {status:?}");
                break conn.port;
            }
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    };
    restoring.cancel_and_check(&env, &t).await;
    assert!(procs::clients_of("pg_restore", port).is_empty(), "pg_restore was killed");
    restoring.runtime.shutdown().await;
}

/// Loading connections of the restoring server that run a `COPY … FROM stdin` now.
async fn copies_running(executor: &LocalExecutor, spec: &InstanceSpec, source: &Source) -> i64 {
    let Ok(cluster) = executor.cluster(spec) else { return 0 };
    let Ok(client) = cluster.connect("postgres", &source.password).await else { return 0 };
    let sql = "SELECT count(*) FROM pg_stat_activity WHERE state = 'active' AND query LIKE 'COPY % FROM stdin%'";
    client.query_one(sql, &[]).await.map(|row| row.get(0)).unwrap_or(0)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn cancel_mid_sectioned_restore_stops_its_loading_connections_and_cleans_up() {
    let env = Env::new();
    let _stop = StopAll(env.base_dir());
    // Every database loads in sections, its rows over several connections.
    let (t, executor, _) = env.toygres_configured(|b| b.split_load_from(0), |e| Arc::new(e));
    let restoring = Restoring::start(&env, &t, &executor, 1_500_000).await;
    let deadline = Instant::now() + WAIT;
    while copies_running(&executor, &restoring.record.spec(), &restoring.source).await == 0 {
        assert!(Instant::now() < deadline, "no rows were ever loading");
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    let done = restoring.cancel_and_check(&env, &t).await;
    assert_eq!(done.step, Some(Phase::WaitRestoreJob), "{done:?}");
    restoring.runtime.shutdown().await;
}

/// A newer `create-instance` that must never run for instances started on 1.0.5.
async fn create_instance_v2(_ctx: duroxide::OrchestrationContext, _input: InstanceInput) -> Result<String, String> {
    Err("version 2.0.0 ran".into())
}

/// An instance an earlier build started on `create-instance` 1.0.5 (whole core records in its
/// activity inputs), stopped mid-way, finishes on 1.0.5 after the upgrade to this build (which
/// starts 1.1.0) and after an even newer version is registered.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_instance_started_on_1_0_5_finishes_on_1_0_5_after_an_upgrade() {
    let env = Env::new();
    let _stop = StopAll(env.base_dir());
    let (t, executor, _) = env.toygres();
    let source = source(&t, &executor, 0).await;
    let image = image(&t, &source).await;
    let old = env.runtime(t.clone()).start().await.unwrap();
    let client = old.client();
    // What an earlier build's client did: the record, then a 1.0.5 start.
    let record = t.begin_instance(OperationId::new(), &CreateInstanceRequest::restore("r", image.id)).await.unwrap();
    let subject = Subject::Instance(record.id);
    let input = InstanceInput {
        spec: record.spec(),
        image: Some(image.id),
        connection_test: t.options.connection_test.clone(),
    };
    let id = toygres_duroxide::names::orchestration_id(subject);
    let started =
        client.duroxide().start_orchestration_versioned_typed(&id, CREATE_INSTANCE, CREATE_INSTANCE_V1_0_5, input);
    started.await.unwrap();
    let deadline = Instant::now() + WAIT;
    while client.status(subject).await.unwrap().step.is_none_or(|s| s == Phase::FetchImage) {
        assert!(Instant::now() < deadline);
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
    old.shutdown().await;

    let new = env
        .runtime(t.clone())
        .orchestrations(|b| b.register_versioned_typed(CREATE_INSTANCE, "2.0.0", create_instance_v2))
        .start()
        .await
        .unwrap();
    let client = new.client();
    let done = client.wait(subject, WAIT).await.unwrap();
    assert_eq!(done.state, OperationState::Completed, "{done:?}");
    let info = client.duroxide().get_instance_info(&id).await.unwrap();
    assert_eq!(info.orchestration_version, "1.0.5");
    assert_eq!(scheduled(&client, subject, activity_v1::DEPLOY).await, 1, "1.0.5's own steps ran");
    let restored = t.catalog.get_instance(record.id).await.unwrap();
    assert_eq!(restored.state, InstanceState::Running);
    let diff = source.snapshot.diff(&snapshot(&executor, &restored, &source.password).await);
    assert!(diff.is_empty(), "{}", diff.join("\n"));
    new.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn cancel_right_after_the_start_and_mid_backup() {
    let env = Env::new();
    let _stop = StopAll(env.base_dir());
    let (t, executor, _) = env.toygres();
    let source = source(&t, &executor, 600_000).await;
    let source_port = executor.connection_info(&source.record.spec()).await.unwrap().port;
    let runtime = env.runtime(t.clone()).start().await.unwrap();
    let client = runtime.client();

    // Before the runtime picked the orchestration up.
    let request = CreateImageRequest::new("early", source.record.id);
    let early = client.create_image(OperationId::new(), request).await.unwrap();
    client.cancel(Subject::Image(early.id)).await.unwrap();
    let done = client.wait(Subject::Image(early.id), WAIT).await.unwrap();
    assert_eq!(done.state, OperationState::Cancelled, "{done:?}");
    assert_eq!(t.catalog.get_image(early.id).await.unwrap().state, toygres_core::ImageState::Failed);

    // While pg_dump runs.
    let request = CreateImageRequest::new("mid", source.record.id);
    let image = client.create_image(OperationId::new(), request).await.unwrap();
    let subject = Subject::Image(image.id);
    let deadline = Instant::now() + WAIT;
    while procs::clients_of("pg_dump", source_port).is_empty() {
        assert!(Instant::now() < deadline, "pg_dump never started");
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    client.cancel(subject).await.unwrap();
    let done = client.wait(subject, WAIT).await.unwrap();
    assert_eq!(done.state, OperationState::Cancelled, "{done:?}");
    assert_eq!(done.step, Some(Phase::BackupJob));
    assert!(procs::clients_of("pg_dump", source_port).is_empty(), "pg_dump was killed");
    let failed = t.catalog.get_image(image.id).await.unwrap();
    assert!(failed.failure_reason.as_deref().unwrap().contains("was cancelled"), "{failed:?}");
    assert!(blob_files(&env.blobs_dir(), image.id).is_empty(), "partial blobs removed");
    runtime.shutdown().await;
}
