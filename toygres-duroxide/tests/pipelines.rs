//! The orchestrations end to end in one process, on the embedded default (SQLite catalog and
//! store, local blobs, local executor): image → restore equal to the source, a fresh empty
//! instance, duplicate starts, a step retried per its policy, a permanent failure cleaned up.

mod support;

use std::time::Duration;
use support::*;
use toygres_core::{CreateImageRequest, CreateInstanceRequest, ImageState, InstanceState, OperationId, Password};
use toygres_core::{Phase, Subject};
use toygres_duroxide::names::activity;
use toygres_duroxide::OperationState;

const WAIT: Duration = Duration::from_secs(120);

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn image_then_restore_equals_the_source_and_duplicates_are_no_ops() {
    let env = Env::new();
    let _stop = StopAll(env.base_dir());
    let (t, executor, _) = env.toygres();
    let source = source(&t, &executor, 0).await;
    let runtime = env.runtime(t.clone()).start().await.unwrap();
    let client = runtime.client();

    let op = OperationId::new();
    let request = CreateImageRequest::new("nightly", source.record.id);
    let image = client.create_image(op, request.clone()).await.unwrap();
    assert_eq!(image.state, ImageState::Creating);
    // A duplicate request (same operation) returns the same record and starts nothing new.
    assert_eq!(client.create_image(op, request).await.unwrap().id, image.id);
    let done = client.wait(Subject::Image(image.id), WAIT).await.unwrap();
    assert_eq!(done.state, OperationState::Completed, "{done:?}");
    assert_eq!(done.step, Some(Phase::MarkReady));
    assert!(done.bytes_done > 0, "byte progress was reported: {done:?}");
    assert_eq!(t.catalog.get_image(image.id).await.unwrap().state, ImageState::Ready);

    let op = OperationId::new();
    let request = CreateInstanceRequest::restore("restored", image.id);
    let instance = client.create_instance(op, request.clone()).await.unwrap();
    assert_eq!(instance.state, InstanceState::Provisioning);
    assert_eq!(client.create_instance(op, request).await.unwrap().id, instance.id);
    let done = client.wait(Subject::Instance(instance.id), WAIT).await.unwrap();
    assert_eq!(done.state, OperationState::Completed, "{done:?}");
    let record = t.catalog.get_instance(instance.id).await.unwrap();
    assert_eq!(record.state, InstanceState::Running);
    let diff = source.snapshot.diff(&snapshot(&executor, &record, &source.password).await);
    assert!(diff.is_empty(), "{}", diff.join("\n"));

    // Each step ran once: the duplicate starts were ignored.
    let history =
        client.duroxide().read_execution_history(&format!("create-instance-{}", instance.id), 1).await.unwrap();
    let scheduled =
        |name: &str| history.iter().filter(|e| format!("{:?}", e.kind).contains(&format!("name: \"{name}\""))).count();
    assert_eq!(scheduled(activity::RESTORE_JOB), 1);
    assert_eq!(scheduled(activity::SERVE), 1);
    assert_eq!(t.catalog.list_instances(&Default::default()).await.unwrap().len(), 2, "source and restored");
    assert_eq!(blob_files(&env.blobs_dir(), image.id), expected_blob_files(&source.snapshot));
    runtime.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_fresh_empty_instance_runs_with_the_requests_password() {
    let env = Env::new();
    let _stop = StopAll(env.base_dir());
    let (t, executor, _) = env.toygres();
    let runtime = env.runtime(t.clone()).start().await.unwrap();
    let client = runtime.client();
    let password = Password::generate();
    let mut request = CreateInstanceRequest::restore("fresh", toygres_core::ImageId::new());
    request.source_image_id = None;
    assert!(matches!(
        client.create_instance(OperationId::new(), request.clone()).await,
        Err(toygres_core::Error::InvalidRequest { field: "password", .. })
    ));
    assert!(
        t.catalog.list_instances(&Default::default()).await.unwrap().is_empty(),
        "nothing created on a bad request"
    );
    request.password = Some(password.clone());
    let record = client.create_instance(OperationId::new(), request).await.unwrap();
    let done = client.wait(Subject::Instance(record.id), WAIT).await.unwrap();
    assert_eq!(done.state, OperationState::Completed, "{done:?}");
    let record = t.catalog.get_instance(record.id).await.unwrap();
    assert_eq!(record.state, InstanceState::Running);
    let conn = record.connection.clone().unwrap();
    executor.cluster(&record.spec()).unwrap();
    use toygres_core::ClusterExecutor;
    executor.test_connection(&record.spec(), &conn, &password).await.unwrap();
    runtime.shutdown().await;
}
