//! A server killed with SIGKILL in the middle of a restore, then started again on the same data
//! directory, finishes the restore: the instance ends running and equal to the source.

mod support;

use serde_json::json;
use std::time::{Duration, Instant};
use support::{binaries, params, DataDir, Server};
use toygres_core::Password;
use toygres_local::fidelity::{sample::load_sample_data, InstanceSnapshot};

#[tokio::test(flavor = "multi_thread")]
async fn a_server_killed_mid_restore_finishes_it_after_a_restart() {
    let data = DataDir::new();
    let server = Server::start(&data);
    let api = server.client();
    let password = Password::new("crash-Pw-31");
    let source = api.running_instance("crash-source", password.expose()).await;
    let source_params = params(&source);
    load_sample_data(&source_params, &password).await.unwrap();
    support::load_bulk(&source_params, &password, 600_000).await;
    let before = InstanceSnapshot::take(&binaries(), &source_params, &password).await.unwrap();
    let image_id = api.create("/api/images", json!({ "name": "crash-image", "instance_id": source["id"] })).await;
    let image = api.settle(&format!("/api/images/{image_id}"), "creating", Duration::from_secs(300)).await;
    assert_eq!(image["state"], "ready", "{image}");

    let id = api.create("/api/instances", json!({ "name": "crash-copy", "source_image_id": image_id })).await;
    let path = format!("/api/instances/{id}");
    let deadline = Instant::now() + Duration::from_secs(120);
    let seen = loop {
        let record = api.get(&path).await.body;
        assert_eq!(record["state"], "provisioning", "the restore ended before the server could be killed: {record}");
        let progress = &record["progress"];
        if progress["step"] == "WaitRestoreJob" && progress["bytes_done"].as_u64().unwrap_or(0) > 0 {
            break record;
        }
        assert!(Instant::now() < deadline, "the restore never reached its job: {record}");
        tokio::time::sleep(Duration::from_millis(50)).await;
    };
    // While it provisions, it can neither be imaged nor deleted (409), and nothing is created.
    let image_it = api.post("/api/images", json!({ "name": "too-early", "instance_id": id })).await;
    assert_eq!((image_it.status.as_u16(), &image_it.body["error"]["code"]), (409, &json!("instance_not_running")));
    assert_eq!(api.delete(&path).await.status, 409);
    assert_eq!(api.get("/api/images").await.body["items"].as_array().unwrap().len(), 1);
    server.kill9();

    let server = Server::start(&data);
    let api = server.client();
    let record = api.settle(&path, "provisioning", Duration::from_secs(300)).await;
    assert_eq!(record["state"], "running", "after the restart: {record} (killed at {seen})");
    let after = InstanceSnapshot::take(&binaries(), &params(&record), &password).await.unwrap();
    assert_eq!(before.diff(&after), Vec::<String>::new());
    assert_eq!(
        api.get("/api/instances").await.body["items"].as_array().unwrap().len(),
        2,
        "a duplicate instance appeared"
    );

    for path in [path, format!("/api/instances/{}", source["id"].as_str().unwrap()), format!("/api/images/{image_id}")]
    {
        assert_eq!(api.delete(&path).await.status, 204, "{path}");
    }
    assert_eq!((data.instance_volumes(), data.image_dirs()), (0, 0), "something was left behind");
}
