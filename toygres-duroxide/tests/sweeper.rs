//! The sweeper heals instances left `provisioning`: one recorded without its orchestration is
//! resumed to `running`; one whose orchestration was terminated under it is cleaned up (`failed`,
//! its volume removed) with a reason that names the sweeper.

mod support;

use std::time::Duration;
use support::*;
use toygres_core::{CreateImageRequest, CreateInstanceRequest, InstanceState, OperationId, Subject};
use toygres_duroxide::{OperationState, SweepSettings};

const WAIT: Duration = Duration::from_secs(120);

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn stuck_instances_are_resumed_or_cleaned_up() {
    let env = Env::new();
    let _stop = StopAll(env.base_dir());
    let (t, executor, _) = env.toygres();
    let source = source(&t, &executor, 100_000).await;
    let runtime = env.runtime(t.clone()).sweeper(Duration::from_secs(1), SweepSettings::default()).start().await;
    let client = runtime.unwrap().client();
    let image = client.create_image(OperationId::new(), CreateImageRequest::new("base", source.record.id)).await;
    let image = image.unwrap();
    assert_eq!(client.wait(Subject::Image(image.id), WAIT).await.unwrap().state, OperationState::Completed);

    // Recorded, never started (a crash between the two): the sweeper starts it.
    let orphan = t.begin_instance(OperationId::new(), &CreateInstanceRequest::restore("orphan", image.id)).await;
    let orphan = orphan.unwrap();
    // Started, then terminated under its restore (an operator, a poisoned step): cleaned up.
    let ended = client.create_instance(OperationId::new(), CreateInstanceRequest::restore("ended", image.id)).await;
    let ended = ended.unwrap();
    let id = toygres_duroxide::names::instance_orchestration_id(ended.id);
    client.duroxide().cancel_instance(&id, "terminated by the test").await.unwrap();

    let deadline = tokio::time::Instant::now() + WAIT;
    let (orphan, ended) = loop {
        let orphan = t.catalog.get_instance(orphan.id).await.unwrap();
        let ended = t.catalog.get_instance(ended.id).await.unwrap();
        let settled = |s| s != InstanceState::Provisioning;
        if settled(orphan.state) && settled(ended.state) {
            break (orphan, ended);
        }
        assert!(tokio::time::Instant::now() < deadline, "still provisioning: {orphan:?} {ended:?}");
        tokio::time::sleep(Duration::from_millis(200)).await;
    };
    assert_eq!(orphan.state, InstanceState::Running, "{orphan:?}");
    let diff = source.snapshot.diff(&snapshot(&executor, &orphan, &source.password).await);
    assert!(diff.is_empty(), "{}", diff.join("\n"));
    assert_eq!(ended.state, InstanceState::Failed, "{ended:?}");
    assert!(ended.failure_reason.as_deref().unwrap_or_default().contains("sweeper"), "{ended:?}");
    let volumes = volumes(&env.base_dir());
    assert!(!volumes.iter().any(|v| v.contains(&ended.id.to_string())), "the ended one's volume is gone: {volumes:?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn histories_of_ended_operations_are_pruned_and_their_records_stay() {
    let env = Env::new();
    let _stop = StopAll(env.base_dir());
    let (t, executor, _) = env.toygres();
    let source = source(&t, &executor, 0).await;
    let settings = SweepSettings { history_age: Duration::from_secs(2), ..SweepSettings::default() };
    let runtime = env.runtime(t.clone()).sweeper(Duration::from_secs(1), settings).start().await.unwrap();
    let client = runtime.client();
    let image = client.create_image(OperationId::new(), CreateImageRequest::new("pruned", source.record.id)).await;
    let image = image.unwrap();
    assert_eq!(client.wait(Subject::Image(image.id), WAIT).await.unwrap().state, OperationState::Completed);
    let id = toygres_duroxide::names::image_orchestration_id(image.id);
    let deadline = tokio::time::Instant::now() + WAIT;
    while client.duroxide().list_all_instances().await.unwrap().contains(&id) {
        assert!(tokio::time::Instant::now() < deadline, "the history of {id} was never pruned");
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    assert_eq!(t.catalog.get_image(image.id).await.unwrap().state, toygres_core::ImageState::Ready);
    // The sweeper keeps running (its own past executions are pruned, not itself).
    let sweeper = client.duroxide().get_orchestration_status(toygres_duroxide::names::SWEEPER_ID).await.unwrap();
    assert!(matches!(sweeper, duroxide::OrchestrationStatus::Running { .. }), "{sweeper:?}");
    let executions = client.duroxide().list_executions(toygres_duroxide::names::SWEEPER_ID).await.unwrap();
    assert!(executions.len() <= 2, "the sweeper's past executions are pruned: {executions:?}");
}
