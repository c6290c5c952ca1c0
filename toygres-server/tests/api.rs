//! The seed's walk and the API's contract against a real `toygres serve` on loopback.

mod support;

use serde_json::json;
use std::time::Duration;
use support::{binaries, params, Api, DataDir, Server, TOKEN};
use toygres_core::Password;
use toygres_local::fidelity::{sample::load_sample_data, InstanceSnapshot};

const LONG: Duration = Duration::from_secs(300);

/// Fresh instance → data → image (through the CLI, `--wait --json`) → restore → equal to the
/// source; the restored instance takes the source password and refuses the request's.
#[tokio::test(flavor = "multi_thread")]
async fn seed_walk_restores_an_equal_instance_with_the_source_password() {
    let data = DataDir::new();
    let server = Server::start(&data);
    let api = server.client();
    let source_password = Password::new("source-Pw-1f3b");
    let source = api.running_instance("walk-source", source_password.expose()).await;
    let source_params = params(&source);
    load_sample_data(&source_params, &source_password).await.unwrap();
    support::load_bulk(&source_params, &source_password, 20_000).await;
    let bin = binaries();
    let before = InstanceSnapshot::take(&bin, &source_params, &source_password).await.unwrap();

    let out = std::process::Command::new(env!("CARGO_BIN_EXE_toygres"))
        .args(["--server", &server.url, "--json", "images", "create", "walk-image", "--wait", "--instance"])
        .arg(source["id"].as_str().unwrap())
        .env("TOYGRES_TOKEN", TOKEN)
        .output()
        .unwrap();
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    let image: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(image["state"], "ready", "{image}");
    assert_eq!(image["format"], "logical");
    assert!(image["checksum"].as_str().unwrap().starts_with("sha256:"));
    assert!(image["size_bytes"].as_u64().unwrap() > 0);
    let dbs: Vec<&str> = image["databases"].as_array().unwrap().iter().map(|d| d.as_str().unwrap()).collect();
    assert!(dbs.contains(&"appdb"), "{dbs:?}");

    let request_password = "request-Pw-9e8d";
    let body = json!({ "name": "walk-copy", "password": request_password, "source_image_id": image["id"],
                       "dns_label": "walk-copy" });
    let id = api.create("/api/instances", body).await;
    let restored = api.settle(&format!("/api/instances/{id}"), "provisioning", LONG).await;
    assert_eq!(restored["state"], "running", "{restored}");
    assert_eq!(restored["source_image_id"], image["id"]);
    assert_eq!(restored["image_type"], "stock");
    let restored_params = params(&restored);
    let after = InstanceSnapshot::take(&bin, &restored_params, &source_password).await.unwrap();
    assert_eq!(before.diff(&after), Vec::<String>::new());
    let refused = restored_params.connect("postgres", &Password::new(request_password)).await;
    assert!(refused.is_err(), "the restored instance accepted the request's password");

    for path in [format!("/api/instances/{id}"), format!("/api/images/{}", image["id"].as_str().unwrap())] {
        assert_eq!(api.delete(&path).await.status, 204, "{path}");
        assert_eq!(api.get(&path).await.status, 404, "{path}");
    }
    assert_eq!(api.delete(&format!("/api/instances/{}", source["id"].as_str().unwrap())).await.status, 204);
    assert_eq!(api.get("/api/instances").await.body, json!({ "items": [] }));
    assert_eq!(api.get("/api/images").await.body, json!({ "items": [] }));
    assert_eq!((data.instance_volumes(), data.image_dirs()), (0, 0), "something was left behind");
    assert!(!server.log_text().contains(TOKEN), "the token reached the log");
    assert!(!server.log_text().contains(source_password.expose()), "a password reached the log");
}

/// `"format": "physical"` through REST: the image says physical while creating and once ready,
/// and restores through `POST /api/instances` to an instance equal to the source. A wrong format
/// is refused naming `format`, with nothing created.
#[tokio::test(flavor = "multi_thread")]
async fn a_physical_image_restores_an_equal_instance_and_a_wrong_format_is_refused() {
    let data = DataDir::new();
    let server = Server::start(&data);
    let api = server.client();
    let password = Password::new("physical-Pw-3a");
    let source = api.running_instance("phys-source", password.expose()).await;
    let source_id = source["id"].as_str().unwrap().to_string();
    let source_params = params(&source);
    load_sample_data(&source_params, &password).await.unwrap();
    support::load_bulk(&source_params, &password, 20_000).await;

    for format in [json!("Physical"), json!("incremental"), json!(""), json!(1), json!(null), json!(["physical"])] {
        let body = json!({ "name": "phys-bad", "instance_id": source_id, "format": format });
        let answer = api.post("/api/images", body).await;
        assert_eq!(answer.status, 400, "format {format}: {answer:?}");
        let error = &answer.body["error"];
        assert_eq!((&error["code"], &error["field"]), (&json!("invalid_body"), &json!("format")), "{answer:?}");
        assert!(error["message"].as_str().unwrap().contains("`format`"), "{answer:?}");
    }
    let unknown =
        api.post("/api/images", json!({ "name": "phys-bad", "instance_id": source_id, "format": "tar" })).await;
    let message = unknown.body["error"]["message"].as_str().unwrap();
    let named = ["`logical`", "`physical`", "`clone`"].iter().all(|f| message.contains(f));
    assert!(named, "the error does not say which formats exist: {message}");
    assert_eq!(api.get("/api/images").await.body, json!({ "items": [] }), "a refused request created an image");
    assert_eq!(data.image_dirs(), 0);

    let bin = binaries();
    let before = InstanceSnapshot::take(&bin, &source_params, &password).await.unwrap();
    let ledger = "SELECT count(*)::text || ':' || md5(string_agg(digest || memo, ',' ORDER BY id)) FROM billing.ledger";
    let source_ledger: String =
        source_params.connect("appdb", &password).await.unwrap().query_one(ledger, &[]).await.unwrap().get(0);
    assert!(source_ledger.starts_with("20000:"), "{source_ledger}");

    let id = api
        .create("/api/images", json!({ "name": "phys-image", "instance_id": source_id, "format": "physical" }))
        .await;
    let first = api.get(&format!("/api/images/{id}")).await.body;
    assert_eq!(first["format"], "physical", "the format is not shown from the start: {first}");
    let image = api.settle(&format!("/api/images/{id}"), "creating", LONG).await;
    assert_eq!(image["state"], "ready", "{image}");
    assert_eq!(image["format"], "physical", "{image}");
    assert!(image["checksum"].as_str().unwrap().starts_with("sha256:"), "{image}");
    let listed = api.get("/api/images").await.body;
    assert_eq!(listed["items"][0]["format"], "physical", "{listed}");
    // Stored sealed (images are encrypted by default), as a physical image: a base backup archive.
    let stored = data.path().join(format!("images/images/{id}"));
    let manifest = std::fs::read(stored.join("manifest.json")).unwrap();
    assert!(manifest.starts_with(toygres_core::envelope::object::MAGIC), "the manifest is not sealed");
    assert!(stored.join(toygres_core::manifest::archive_object_name(0)).exists(), "the stored image is not physical");

    let body = json!({ "name": "phys-copy", "source_image_id": id });
    let copy = api.create("/api/instances", body).await;
    let restored = api.settle(&format!("/api/instances/{copy}"), "provisioning", LONG).await;
    assert_eq!(restored["state"], "running", "{restored}");
    assert_eq!(restored["source_image_id"], json!(id));
    let restored_params = params(&restored);
    let after = InstanceSnapshot::take(&bin, &restored_params, &password).await.unwrap();
    assert_eq!(before.diff(&after), Vec::<String>::new());
    let restored_ledger: String =
        restored_params.connect("appdb", &password).await.unwrap().query_one(ledger, &[]).await.unwrap().get(0);
    assert_eq!(restored_ledger, source_ledger);

    for path in [format!("/api/instances/{copy}"), format!("/api/images/{id}"), format!("/api/instances/{source_id}")] {
        assert_eq!(api.delete(&path).await.status, 204, "{path}");
    }
    assert_eq!((data.instance_volumes(), data.image_dirs()), (0, 0), "something was left behind");
    assert!(!server.log_text().contains(password.expose()), "a password reached the log");
}

/// Every error status of the issue, each with nothing created.
#[tokio::test(flavor = "multi_thread")]
async fn errors_answer_typed_statuses_and_create_nothing() {
    let data = DataDir::new();
    let server = Server::start(&data);
    let api = server.client();
    let password = Password::new("errors-Pw-77");
    let source = api.running_instance("err-source", password.expose()).await;
    let source_id = source["id"].as_str().unwrap().to_string();
    load_sample_data(&params(&source), &password).await.unwrap();
    support::load_bulk(&params(&source), &password, 400_000).await;
    let creating = api.create("/api/images", json!({ "name": "slow", "instance_id": source_id })).await;
    let unknown = uuid::Uuid::new_v4().to_string();

    let cases = [
        ("/api/instances", json!({ "name": "Bad_Name", "password": "x" }), 400, "name"),
        ("/api/instances", json!({ "password": "x" }), 400, "name"),
        ("/api/instances", json!({ "name": "fresh" }), 400, "password"),
        (
            "/api/instances",
            json!({ "name": "r", "source_image_id": creating, "runtime_image_id": "pg16" }),
            400,
            "source_image_id",
        ),
        (
            "/api/instances",
            json!({ "name": "r", "source_image_id": creating, "image_override": "x/pg" }),
            400,
            "source_image_id",
        ),
        ("/api/instances", json!({ "name": "r", "source_image_id": creating, "dns_label": "-x" }), 400, "dns_label"),
        ("/api/instances", json!({ "name": "r", "source_image_id": "not-a-uuid" }), 400, "source_image_id"),
        ("/api/instances", json!({ "name": "r", "source_image_id": unknown }), 404, ""),
        ("/api/instances", json!({ "name": "r", "source_image_id": creating }), 409, "source_image_id"),
        ("/api/instances", json!({ "name": "err-source", "password": "err-Pw-99" }), 409, "name"),
        // The strength rule: too short is schema-invalid (400), too few classes, a common password
        // or a run is semantic (422).
        ("/api/instances", json!({ "name": "weak", "password": "Pw-1" }), 400, "password"),
        ("/api/instances", json!({ "name": "weak", "password": "password1" }), 422, "password"),
        ("/api/instances", json!({ "name": "weak", "password": "Password1!" }), 422, "password"),
        ("/api/instances", json!({ "name": "weak", "password": "abcdefghijklmno1" }), 422, "password"),
        ("/api/images", json!({ "name": "i", "instance_id": unknown }), 404, ""),
        ("/api/images", json!({ "name": "Bad Name", "instance_id": source_id }), 400, "name"),
        ("/api/images", json!({ "name": "i", "instance_id": 42 }), 400, "instance_id"),
        ("/api/images", json!({ "name": "i", "instance_id": source_id, "extra": 1 }), 400, "extra"),
        ("/api/images", json!({ "name": "i", "instance_id": source_id, "format": "incremental" }), 400, "format"),
        ("/api/images", json!({ "name": "i", "instance_id": source_id, "format": 2 }), 400, "format"),
    ];
    for (path, body, status, field) in cases {
        let answer = api.post(path, body.clone()).await;
        assert_eq!(answer.status.as_u16(), status, "{path} {body}: {answer:?}");
        let error = &answer.body["error"];
        assert!(error["code"].is_string() && error["message"].is_string(), "{answer:?}");
        if !field.is_empty() {
            assert_eq!(error["field"], field, "{path} {body}: {answer:?}");
        }
    }
    let raw = reqwest::Client::new()
        .post(format!("{}/api/instances", server.url))
        .bearer_auth(TOKEN)
        .header("content-type", "application/json")
        .body("{not json")
        .send()
        .await
        .unwrap();
    assert_eq!(raw.status(), 400);
    for path in [format!("/api/instances/{unknown}"), format!("/api/images/{unknown}"), "/api/images/zzz".into()] {
        assert_eq!(api.get(&path).await.status, 404, "{path}");
        assert_eq!(api.delete(&path).await.status, 404, "{path}");
    }
    assert_eq!(api.delete(&format!("/api/images/{creating}")).await.status, 409, "deleting an image being created");

    // Nothing was created: one instance, one image (the slow one), one volume.
    let instances = api.get("/api/instances").await.body;
    assert_eq!(instances["items"].as_array().unwrap().len(), 1, "{instances}");
    let image = api.settle(&format!("/api/images/{creating}"), "creating", LONG).await;
    assert_eq!(image["state"], "ready", "{image}");
    assert_eq!(api.get("/api/images").await.body["items"].as_array().unwrap().len(), 1);
    assert_eq!((data.instance_volumes(), data.image_dirs()), (1, 1));
    assert_eq!(api.delete(&format!("/api/instances/{source_id}")).await.status, 204);
    assert_eq!(api.delete(&format!("/api/images/{creating}")).await.status, 204);
}

/// Without the right token every route but /healthz answers 401 and changes nothing; the server
/// refuses to start without a token unless told `--insecure-no-auth`.
#[tokio::test(flavor = "multi_thread")]
async fn every_route_but_healthz_needs_the_token() {
    let data = DataDir::new();
    let server = Server::start(&data);
    let id = uuid::Uuid::new_v4();
    let routes = [
        ("GET", "/".to_string()),
        ("GET", "/app.js".into()),
        ("GET", "/api/openapi.json".into()),
        ("GET", "/api/instances".into()),
        ("POST", "/api/instances".into()),
        ("GET", format!("/api/instances/{id}")),
        ("DELETE", format!("/api/instances/{id}")),
        ("GET", "/api/images".into()),
        ("POST", "/api/images".into()),
        ("GET", format!("/api/images/{id}")),
        ("DELETE", format!("/api/images/{id}")),
        ("GET", "/no/such/route".into()),
    ];
    let body = json!({ "name": "sneaky", "password": "sneaky-Pw-1" });
    for token in [None, Some("wrong-token")] {
        let api = Api::new(&server.url, token);
        for (method, path) in &routes {
            let answer = api.send(method.parse().unwrap(), path, Some(&body)).await;
            assert_eq!(answer.status, 401, "{method} {path} with {token:?}: {answer:?}");
            assert_eq!(answer.body["error"]["code"], "unauthorized", "{method} {path}");
        }
        assert_eq!(api.get("/healthz").await.status, 200);
    }
    let api = server.client();
    assert_eq!(api.get("/api/instances").await.body, json!({ "items": [] }), "a refused request created something");
    assert_eq!(data.instance_volumes(), 0);
    let doc = api.get("/api/openapi.json").await.body;
    assert_eq!(doc["openapi"], "3.1.0");
    assert!(doc["paths"]["/api/instances/{id}"]["get"].is_object(), "{doc}");
    assert!(!server.log_text().contains(TOKEN));
    drop(server);

    let refused = std::process::Command::new(env!("CARGO_BIN_EXE_toygres"))
        .args(["serve", "--listen", "127.0.0.1:0", "--data-dir"])
        .arg(data.path())
        .env_remove("TOYGRES_TOKEN")
        .output()
        .unwrap();
    assert!(!refused.status.success());
    assert!(String::from_utf8_lossy(&refused.stderr).contains("TOYGRES_TOKEN"));
    let open = Server::start_with(&data, &["--insecure-no-auth"], None);
    assert_eq!(Api::new(&open.url, None).get("/api/instances").await.status, 200);
}

/// 20 image requests at once on one instance: all accepted, all ready, distinct, and the catalog
/// agrees with the blob store; a retried request (same Idempotency-Key) returns the same image.
#[tokio::test(flavor = "multi_thread")]
async fn twenty_concurrent_images_complete_with_a_consistent_catalog() {
    let data = DataDir::new();
    let server = Server::start(&data);
    let api = server.client();
    let password = Password::new("concurrent-Pw-5");
    let source = api.running_instance("busy-source", password.expose()).await;
    load_sample_data(&params(&source), &password).await.unwrap();
    let source_id = source["id"].as_str().unwrap().to_string();
    let requests = (0..20).map(|i| {
        let (api, source_id) = (api.clone(), source_id.clone());
        tokio::spawn(async move {
            api.create("/api/images", json!({ "name": format!("img-{i}"), "instance_id": source_id })).await
        })
    });
    let mut ids = Vec::new();
    for request in requests {
        ids.push(request.await.unwrap());
    }
    let key = uuid::Uuid::new_v4().to_string();
    let again = || async {
        let body = json!({ "name": "retried", "instance_id": source_id });
        let request = reqwest::Client::new().post(format!("{}/api/images", server.url)).bearer_auth(TOKEN);
        let answer = request.header("idempotency-key", &key).json(&body).send().await.unwrap();
        assert_eq!(answer.status(), 202);
        answer.json::<serde_json::Value>().await.unwrap()["id"].as_str().unwrap().to_string()
    };
    let (first, second) = (again().await, again().await);
    assert_eq!(first, second, "a retried request created a second image");
    ids.push(first);
    let mut checksums = Vec::new();
    for id in &ids {
        let image = api.settle(&format!("/api/images/{id}"), "creating", LONG).await;
        assert_eq!(image["state"], "ready", "{image}");
        checksums.push(image["checksum"].as_str().unwrap().to_string());
    }
    let listed = api.get("/api/images").await.body;
    let mut listed_ids: Vec<String> =
        listed["items"].as_array().unwrap().iter().map(|i| i["id"].as_str().unwrap().into()).collect();
    listed_ids.sort();
    let mut expected = ids.clone();
    expected.sort();
    assert_eq!(listed_ids, expected);
    assert_eq!(data.image_dirs(), 21, "blob store and catalog disagree");
    for id in &ids {
        assert_eq!(api.delete(&format!("/api/images/{id}")).await.status, 204);
    }
    assert_eq!(data.image_dirs(), 0);
    assert_eq!(api.delete(&format!("/api/instances/{source_id}")).await.status, 204);
}
