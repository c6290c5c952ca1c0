//! Backups and restores have their own worker slots: with one backup slot and one restore slot,
//! three queued backups wait for the backup slot, and a user's restore does not wait for them.

mod support;

use std::time::Duration;
use support::*;
use toygres_core::{CreateImageRequest, CreateInstanceRequest, InstanceState, OperationId, Subject};
use toygres_duroxide::OperationState;

const WAIT: Duration = Duration::from_secs(300);

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn queued_backups_never_hold_up_a_restore() {
    let env = Env::new();
    let _stop = StopAll(env.base_dir());
    let (t, executor, _) = env.toygres();
    let source = source(&t, &executor, 400_000).await;
    let runtime = env.runtime(t.clone()).job_capacity(1, 1).without_sweeper().start().await.unwrap();
    let client = runtime.client();
    let first = client.create_image(OperationId::new(), CreateImageRequest::new("first", source.record.id)).await;
    let first = first.unwrap();
    let done = client.wait(Subject::Image(first.id), WAIT).await.unwrap();
    assert_eq!(done.state, OperationState::Completed, "{done:?}");

    let mut queued = Vec::new();
    for n in 0..3 {
        let request = CreateImageRequest::new(format!("queued-{n}"), source.record.id);
        queued.push(client.create_image(OperationId::new(), request).await.unwrap().id);
    }
    let request = CreateInstanceRequest::restore("restored", first.id);
    let restored = client.create_instance(OperationId::new(), request).await.unwrap();
    let done = client.wait(Subject::Instance(restored.id), WAIT).await.unwrap();
    assert_eq!(done.state, OperationState::Completed, "{done:?}");
    // At that moment one backup at most has run: the others are still waiting for the one
    // backup slot (no byte moved yet), and the restore did not wait for them.
    let mut waiting = 0;
    for id in &queued {
        let status = client.status(Subject::Image(*id)).await.unwrap();
        waiting += usize::from(status.state == OperationState::Running && status.bytes_done == 0);
    }
    assert!(waiting >= 1, "a queued backup had not started when the restore finished");
    let record = t.catalog.get_instance(restored.id).await.unwrap();
    assert_eq!(record.state, InstanceState::Running);
    let diff = source.snapshot.diff(&snapshot(&executor, &record, &source.password).await);
    assert!(diff.is_empty(), "{}", diff.join("\n"));

    for id in &queued {
        let done = client.wait(Subject::Image(*id), WAIT).await.unwrap();
        assert_eq!(done.state, OperationState::Completed, "{done:?}");
    }
    runtime.shutdown().await;
}
