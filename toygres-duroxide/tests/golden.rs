//! Golden histories: orchestration histories recorded by earlier builds (in `tests/golden/`) must
//! replay on this build's registry, event for event, to the outcome they recorded. A change that
//! would fail them as nondeterministic after an upgrade (an activity renamed, reordered, or given
//! other input bytes) fails here instead, and ships as a new orchestration version.
//!
//! `record_golden_histories` (ignored) writes the histories of the versions this build starts into
//! `$TOYGRES_RECORD_GOLDEN`; copy them to `tests/golden/` before changing those versions.

mod support;

use duroxide::runtime::replay_engine::{ReplayEngine, TurnResult};
use duroxide::{Event, EventKind};
use std::path::{Path, PathBuf};
use std::time::Duration;
use support::*;
use toygres_core::manifest::database_object_name;
use toygres_core::{CreateImageRequest, CreateInstanceRequest, OperationId, Password, Subject};
use toygres_duroxide::{DurableClient, OperationState};

const WAIT: Duration = Duration::from_secs(120);

/// Saves the history of `subject`'s orchestration as `<name>-<version>-<outcome>.json`.
async fn save(client: &DurableClient, subject: Subject, dir: &Path, outcome: &str) {
    use toygres_duroxide::names::{CREATE_IMAGE, CREATE_IMAGE_VERSION, CREATE_INSTANCE, CREATE_INSTANCE_VERSION};
    let file = match subject {
        Subject::Image(_) => format!("{CREATE_IMAGE}-{CREATE_IMAGE_VERSION}-{outcome}.json"),
        Subject::Instance(_) => format!("{CREATE_INSTANCE}-{CREATE_INSTANCE_VERSION}-{outcome}.json"),
    };
    let id = toygres_duroxide::names::orchestration_id(subject);
    let history: Vec<Event> = client.duroxide().read_execution_history(&id, 1).await.unwrap();
    let json = serde_json::to_string_pretty(&history).unwrap();
    std::fs::write(dir.join(file), json + "\n").unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "records golden histories; run with TOYGRES_RECORD_GOLDEN=<dir>"]
async fn record_golden_histories() {
    let dir = PathBuf::from(std::env::var("TOYGRES_RECORD_GOLDEN").expect("TOYGRES_RECORD_GOLDEN"));
    std::fs::create_dir_all(&dir).unwrap();
    let env = Env::new();
    let _stop = StopAll(env.base_dir());
    let (t, executor, _) = env.toygres();
    let source = source(&t, &executor, 0).await;
    let runtime = env.runtime(t.clone()).start().await.unwrap();
    let client = runtime.client();

    let image = client.create_image(OperationId::new(), CreateImageRequest::new("nightly", source.record.id)).await;
    let image = image.unwrap();
    let done = client.wait(Subject::Image(image.id), WAIT).await.unwrap();
    assert_eq!(done.state, OperationState::Completed, "{done:?}");
    save(&client, Subject::Image(image.id), &dir, "ready").await;

    let restored = client.create_instance(OperationId::new(), CreateInstanceRequest::restore("restored", image.id));
    let restored = restored.await.unwrap();
    let done = client.wait(Subject::Instance(restored.id), WAIT).await.unwrap();
    assert_eq!(done.state, OperationState::Completed, "{done:?}");
    save(&client, Subject::Instance(restored.id), &dir, "restored").await;

    let mut fresh = CreateInstanceRequest::restore("fresh", image.id);
    fresh.source_image_id = None;
    fresh.password = Some(Password::generate());
    let fresh = client.create_instance(OperationId::new(), fresh).await.unwrap();
    let done = client.wait(Subject::Instance(fresh.id), WAIT).await.unwrap();
    assert_eq!(done.state, OperationState::Completed, "{done:?}");
    save(&client, Subject::Instance(fresh.id), &dir, "fresh").await;

    // A restore that fails and is cleaned up: an object of the image is truncated once the
    // restore is admitted (admission verifies the image and would refuse it before).
    let object = env.blobs_dir().join("images").join(image.id.to_string()).join(database_object_name(0));
    let failed = t.begin_instance(OperationId::new(), &CreateInstanceRequest::restore("broken", image.id)).await;
    let failed = failed.unwrap();
    std::fs::write(&object, b"truncated").unwrap();
    runtime.shutdown().await;
    let runtime = env.runtime(t.clone()).start().await.unwrap();
    let client = runtime.client();
    client.resume(Subject::Instance(failed.id)).await.unwrap();
    let done = client.wait(Subject::Instance(failed.id), WAIT).await.unwrap();
    assert_eq!(done.state, OperationState::Failed, "{done:?}");
    save(&client, Subject::Instance(failed.id), &dir, "failed").await;
    runtime.shutdown().await;
}

/// The golden histories recorded by earlier builds.
fn golden_files() -> Vec<PathBuf> {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/golden");
    let mut files: Vec<PathBuf> = std::fs::read_dir(dir).unwrap().map(|e| e.unwrap().path()).collect();
    files.retain(|p| p.extension().is_some_and(|e| e == "json"));
    files.sort();
    files
}

/// Replays `history` on this build's registry in one turn.
fn replay(history: &[Event]) -> (TurnResult, usize) {
    let EventKind::OrchestrationStarted { name, version, input, .. } = &history[0].kind else {
        panic!("a history starts with OrchestrationStarted")
    };
    let registry = toygres_duroxide::orchestrations::registry().build();
    let parsed = semver::Version::parse(version).unwrap();
    let handler =
        registry.resolve_handler_exact(name, &parsed).unwrap_or_else(|| panic!("{name} {version} is registered"));
    let mut engine = ReplayEngine::new(history[0].instance_id.clone(), 1, history.to_vec());
    let out = engine.execute_orchestration(handler, input.clone(), name.clone(), version.clone(), "golden");
    (out, engine.pending_actions().len())
}

#[test]
fn golden_histories_replay_to_their_recorded_outcome() {
    let files = golden_files();
    assert!(files.len() >= 4, "the golden histories are in tests/golden: {files:?}");
    for file in files {
        let history: Vec<Event> = serde_json::from_str(&std::fs::read_to_string(&file).unwrap()).unwrap();
        let (end, body) = history.split_last().unwrap();
        let what = file.display();
        match (&end.kind, replay(body).0) {
            (EventKind::OrchestrationCompleted { output }, TurnResult::Completed(replayed)) => {
                assert_eq!(&replayed, output, "{what}")
            }
            (EventKind::OrchestrationFailed { details }, TurnResult::Failed(replayed)) => {
                assert_eq!(&replayed, details, "{what}")
            }
            (recorded, replayed) => panic!("{what}: recorded {recorded:?}, replayed {}", describe(&replayed)),
        }
        // Every prefix that ends with a scheduled step (a process that stopped there) replays
        // without a nondeterminism failure and waits for that step.
        for (at, event) in body.iter().enumerate() {
            if matches!(event.kind, EventKind::ActivityScheduled { .. }) {
                let (out, pending) = replay(&body[..=at]);
                assert!(matches!(out, TurnResult::Continue), "{what} cut after event {at}: {}", describe(&out));
                assert_eq!(pending, 0, "{what} cut after event {at}: the replay asked for new work");
            }
        }
    }
}

fn describe(out: &TurnResult) -> String {
    match out {
        TurnResult::Continue => "continue".into(),
        TurnResult::Completed(o) => format!("completed {o}"),
        TurnResult::Failed(d) => format!("failed {d:?}"),
        TurnResult::ContinueAsNew { .. } => "continued as new".into(),
        TurnResult::Cancelled(r) => format!("cancelled {r}"),
    }
}
