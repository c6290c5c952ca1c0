//! `Idempotency-Key` against a real `toygres serve`: a key is bound to its body and kept with the
//! record it created. A retry answers the same record as it is now; the key with another body is
//! 422 `idempotency_key_reused`; after the record's deletion it is 409 `idempotency_key_spent`.
//! None of the refusals creates anything.

mod support;

use serde_json::{json, Value};
use std::time::Duration;
use support::{Api, DataDir, Server};

const LONG: Duration = Duration::from_secs(300);

/// Posts `body` under `key` and expects a 202; returns the id.
async fn accepted(api: &Api, path: &str, key: &str, body: &Value) -> String {
    let answer = api.post_keyed(path, key, body).await;
    assert_eq!(answer.status, 202, "{answer:?}");
    answer.body["id"].as_str().unwrap().to_string()
}

/// Posts `body` under `key` and expects the refusal `status` with `code`; returns its message.
async fn refused(api: &Api, path: &str, key: &str, body: &Value, status: u16, code: &str) -> String {
    let answer = api.post_keyed(path, key, body).await;
    assert_eq!((answer.status.as_u16(), answer.body["error"]["code"].as_str()), (status, Some(code)), "{answer:?}");
    answer.body["error"]["message"].as_str().unwrap().to_string()
}

async fn listed(api: &Api, path: &str) -> usize {
    api.get(path).await.body["items"].as_array().unwrap().len()
}

#[tokio::test(flavor = "multi_thread")]
async fn a_key_is_bound_to_its_body_and_spent_once_its_record_is_deleted() {
    let data = DataDir::new();
    let server = Server::start(&data);
    let api = server.client();

    // A fresh instance: the retry answers the same record; another body or password is refused.
    let fresh = json!({ "name": "idem-source", "password": "idem-Pw-1" });
    let instance = accepted(&api, "/api/instances", "key-instance", &fresh).await;
    assert_eq!(accepted(&api, "/api/instances", "key-instance", &fresh).await, instance, "a retried create");
    let other_name = json!({ "name": "idem-other", "password": "idem-Pw-1" });
    let message = refused(&api, "/api/instances", "key-instance", &other_name, 422, "idempotency_key_reused").await;
    assert!(message.contains("Idempotency-Key"), "{message}");
    let other_password = json!({ "name": "idem-source", "password": "another-Pw" });
    refused(&api, "/api/instances", "key-instance", &other_password, 422, "idempotency_key_reused").await;
    assert_eq!(api.get("/api/instances/idem-other").await.status, 404, "a refused body created an instance");
    let running = api.settle(&format!("/api/instances/{instance}"), "provisioning", LONG).await;
    assert_eq!(running["state"], "running", "{running}");
    assert_eq!(accepted(&api, "/api/instances", "key-instance", &fresh).await, instance, "a retry once running");
    assert_eq!(listed(&api, "/api/instances").await, 1);

    // An image: the same rules.
    let image_body = json!({ "name": "idem-image", "instance_id": instance });
    let image = accepted(&api, "/api/images", "key-image", &image_body).await;
    assert_eq!(accepted(&api, "/api/images", "key-image", &image_body).await, image, "a retried create");
    let described = json!({ "name": "idem-image", "instance_id": instance, "description": "changed" });
    refused(&api, "/api/images", "key-image", &described, 422, "idempotency_key_reused").await;
    let ready = api.settle(&format!("/api/images/{image}"), "creating", LONG).await;
    assert_eq!(ready["state"], "ready", "{ready}");
    assert_eq!(listed(&api, "/api/images").await, 1, "a refused body created an image");

    // Deleted: the key is spent; the answer names the deleted record and nothing is created.
    assert_eq!(api.delete(&format!("/api/images/{image}")).await.status, 204);
    let message = refused(&api, "/api/images", "key-image", &image_body, 409, "idempotency_key_spent").await;
    assert!(message.contains(&image), "the answer names the deleted image: {message}");
    assert_eq!((listed(&api, "/api/images").await, data.image_dirs()), (0, 0));
    assert_eq!(accepted(&api, "/api/images", "key-image-2", &image_body).await.len(), image.len(), "a new key");

    let settled = api.get("/api/images").await.body["items"][0]["id"].as_str().unwrap().to_string();
    api.settle(&format!("/api/images/{settled}"), "creating", LONG).await;
    assert_eq!(api.delete(&format!("/api/images/{settled}")).await.status, 204);
    assert_eq!(api.delete(&format!("/api/instances/{instance}")).await.status, 204);
    let message = refused(&api, "/api/instances", "key-instance", &fresh, 409, "idempotency_key_spent").await;
    assert!(message.contains(&instance), "the answer names the deleted instance: {message}");
    assert_eq!(api.get("/api/instances/idem-source").await.status, 404);
    assert_eq!((listed(&api, "/api/instances").await, data.instance_volumes()), (0, 0));
}
