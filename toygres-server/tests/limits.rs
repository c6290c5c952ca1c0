//! `--max-running-operations`: a creation beyond the cap of images and instances in the making
//! is answered 429 with Retry-After and creates nothing; once the work is done, creations pass.

mod support;

use serde_json::json;
use std::time::Duration;
use support::{DataDir, Server, TOKEN};

#[tokio::test(flavor = "multi_thread")]
async fn a_creation_beyond_the_cap_is_429_with_retry_after_and_creates_nothing() {
    let data = DataDir::new();
    let server = Server::start_with(&data, &["--max-running-operations", "1"], Some(TOKEN));
    let api = server.client();
    let first = api.create("/api/instances", json!({ "name": "capped-1", "password": "cap-Pw-1" })).await;

    // The first one provisions (initdb, start) for far longer than one request takes.
    let response = reqwest::Client::new()
        .post(format!("{}/api/instances", server.url))
        .bearer_auth(TOKEN)
        .json(&json!({ "name": "capped-2", "password": "cap-Pw-2" }))
        .send()
        .await
        .unwrap();
    let still_making = api.get(&format!("/api/instances/{first}")).await.body["state"] == "provisioning";
    assert_eq!(response.status(), 429, "the second creation while the first provisions ({still_making})");
    assert_eq!(response.headers().get("retry-after").and_then(|v| v.to_str().ok()), Some("10"));
    let body: serde_json::Value = response.json().await.unwrap();
    assert_eq!(body["error"]["code"], "too_many_operations", "{body}");
    assert_eq!(api.get("/api/instances/capped-2").await.status, 404, "a refused creation created something");

    let done = api.settle(&format!("/api/instances/{first}"), "provisioning", Duration::from_secs(120)).await;
    assert_eq!(done["state"], "running", "{done}");
    api.create("/api/instances", json!({ "name": "capped-2", "password": "cap-Pw-2" })).await;
}
