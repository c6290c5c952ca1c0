//! Clone images through the REST API on a real reflink filesystem (`TOYGRES_REFLINK_DIR`), with
//! the control plane killed by SIGKILL while it takes one and while it restores from one: a new
//! server on the same data directory converges (the image ready, the instance running and equal
//! to the source), and nothing is left behind (no partial clone, recovering server, socket
//! directory or OS user; after the deletes, no volume, clone or blob).

mod support;

use serde_json::json;
use std::path::Path;
use std::time::{Duration, Instant};
use support::{binaries, params, DataDir, Server};
use toygres_core::{ImageId, Password};
use toygres_local::cluster::identity::image_user_name;
use toygres_local::cluster::ServerUser;
use toygres_local::fidelity::{sample::load_sample_data, InstanceSnapshot};

/// Polls `done` every 10 ms for up to `secs` seconds.
async fn wait_until(secs: u64, what: &str, mut done: impl FnMut() -> bool) {
    let deadline = Instant::now() + Duration::from_secs(secs);
    while !done() {
        assert!(Instant::now() < deadline, "timed out waiting for {what}");
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
}

fn entries(dir: &Path) -> Vec<String> {
    let Ok(read) = std::fs::read_dir(dir) else { return vec![] };
    let mut names: Vec<String> = read.filter_map(|e| e.ok()?.file_name().into_string().ok()).collect();
    names.sort();
    names
}

#[tokio::test(flavor = "multi_thread")]
async fn a_server_killed_mid_clone_and_mid_restore_converges_and_leaves_nothing() {
    let Some(data) = DataDir::on_reflink() else { return };
    let server = Server::start(&data);
    let api = server.client();
    let password = Password::new("clone-Pw-26");
    let source = api.running_instance("clone-source", password.expose()).await;
    let source_params = params(&source);
    load_sample_data(&source_params, &password).await.unwrap();
    support::load_bulk(&source_params, &password, 600_000).await;
    let before = InstanceSnapshot::take(&binaries(), &source_params, &password).await.unwrap();

    // Killed while pg_basebackup writes the clone.
    let body = json!({ "name": "clone-image", "instance_id": source["id"], "format": "clone" });
    let image_id = api.create("/api/images", body).await;
    let clones = data.path().join("local/clones");
    let partial = clones.join(format!("{image_id}.partial/data"));
    wait_until(120, "the clone's pg_basebackup", || partial.join("PG_VERSION").exists()).await;
    let image = api.get(&format!("/api/images/{image_id}")).await.body;
    assert_eq!(image["state"], "creating", "the clone was taken before the server could be killed: {image}");
    server.kill9();

    let server = Server::start(&data);
    let api = server.client();
    let image = api.settle(&format!("/api/images/{image_id}"), "creating", Duration::from_secs(300)).await;
    assert_eq!((image["state"].as_str(), image["format"].as_str()), (Some("ready"), Some("clone")), "{image}");
    assert_eq!(entries(&clones), vec![image_id.clone()], "only the finished clone is kept");
    let id: ImageId = image_id.parse().unwrap();
    if nix::unistd::Uid::effective().is_root() {
        assert!(ServerUser::resolve(&image_user_name(id)).is_err(), "the clone's OS user is removed");
    }
    assert!(!std::env::temp_dir().join(format!("toygres-clone-{image_id}")).exists(), "its socket directory is gone");
    assert!(support::procs::postmasters_under(&clones).is_empty(), "no server recovers it any more");

    // Killed while the restore from it runs.
    let body = json!({ "name": "clone-copy", "source_image_id": image_id, "password": "ignored-Pw-1" });
    let id = api.create("/api/instances", body).await;
    let path = format!("/api/instances/{id}");
    let record = api.get(&path).await.body;
    assert_eq!(record["state"], "provisioning", "the restore ended before the server could be killed: {record}");
    server.kill9();

    let server = Server::start(&data);
    let api = server.client();
    let record = api.settle(&path, "provisioning", Duration::from_secs(300)).await;
    assert_eq!(record["state"], "running", "after the restart: {record}");
    let after = InstanceSnapshot::take(&binaries(), &params(&record), &password).await.unwrap();
    assert_eq!(before.diff(&after), Vec::<String>::new());
    assert_eq!(api.get("/api/instances").await.body["items"].as_array().unwrap().len(), 2, "a duplicate appeared");

    // The image goes first: its clone keeps running on the blocks it shares.
    assert_eq!(api.delete(&format!("/api/images/{image_id}")).await.status, 204);
    assert_eq!(entries(&clones), Vec::<String>::new(), "the clone store is empty");
    let client = params(&record).connect("appdb", &password).await.unwrap();
    let count: i64 = client.query_one("SELECT count(*) FROM billing.ledger", &[]).await.unwrap().get(0);
    assert_eq!(count, 600_000);
    for path in [path, format!("/api/instances/{}", source["id"].as_str().unwrap())] {
        assert_eq!(api.delete(&path).await.status, 204, "{path}");
    }
    assert_eq!((data.instance_volumes(), data.image_dirs()), (0, 0), "something was left behind");
}
