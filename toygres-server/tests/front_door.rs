//! One front door: every refusal of the library is the REST path's too. Each request is sent
//! to the library (a `Toygres` on the server's own data directory) and to a real `toygres serve`;
//! the server's answer must be exactly the library's typed error as the API maps it (status,
//! code, field), and neither path may create anything: no record, no blob, no volume, no
//! orchestration.

mod support;

use serde_json::{json, Value};
use std::time::Duration;
use support::{params, Api, DataDir, Server};
use toygres_core::envelope::object;
use toygres_core::manifest::{database_object_name, sha256_hex, ManifestObject, MANIFEST_NAME};
use toygres_core::wal::PointInTime;
use toygres_core::{CreateImageRequest, CreateInstanceRequest, ImageFormat, ImageId, InstanceId, InstanceState};
use toygres_core::{ImageState, ImageUpdate, Manifest, NewImage, NewInstance, OperationId, Password, Toygres};
use toygres_local::fidelity::sample::load_sample_data;
use toygres_server::api::error::ApiError;

const LONG: Duration = Duration::from_secs(300);

/// What exists: record ids, image directories, instance volumes, orchestrations.
#[derive(Debug, PartialEq)]
struct World {
    images: Vec<String>,
    instances: Vec<String>,
    image_dirs: usize,
    volumes: usize,
    orchestrations: Vec<String>,
}

async fn world(api: &Api, data: &DataDir, t: &Toygres) -> World {
    let ids = |page: Value| -> Vec<String> {
        page["items"].as_array().unwrap().iter().map(|r| r["id"].as_str().unwrap().to_string()).collect()
    };
    let store = data.path().join("durable.sqlite");
    let durable = toygres_duroxide::ToygresRuntime::builder(t.clone()).sqlite(store).connect().await.unwrap();
    let mut orchestrations = durable.duroxide().list_all_instances().await.unwrap();
    orchestrations.sort();
    World {
        images: ids(api.get("/api/images").await.body),
        instances: ids(api.get("/api/instances").await.body),
        image_dirs: data.image_dirs(),
        volumes: data.instance_volumes(),
        orchestrations,
    }
}

/// Sends `body` to `path` and checks the answer is `library`'s error as the API maps it.
async fn same_refusal(api: &Api, path: &str, body: Value, library: toygres_core::Error) {
    let expected = ApiError::from(library);
    let answer = api.post(path, body.clone()).await;
    let error = &answer.body["error"];
    assert_eq!(answer.status, expected.status, "{path} {body}: {answer:?}, the library: {}", expected.detail.message);
    assert_eq!(error["code"], json!(expected.detail.code), "{path} {body}: {answer:?}");
    assert_eq!(error["field"], json!(expected.detail.field), "{path} {body}: {answer:?}");
    assert!(expected.status.is_client_error(), "{path} {body}: a refusal is the caller's to fix: {expected:?}");
}

fn restore(name: &str, image: ImageId) -> CreateInstanceRequest {
    CreateInstanceRequest::restore(name, image)
}

#[tokio::test(flavor = "multi_thread")]
async fn every_refusal_of_the_library_is_the_rest_paths_and_creates_nothing() {
    let data = DataDir::new();
    let server = Server::start(&data);
    let api = server.client();
    let t = toygres_server::backends::open(&data.path(), None).await.unwrap().toygres;
    let password = Password::new("front-Pw-5c");
    let source = api.running_instance("front-source", password.expose()).await;
    let source_id: InstanceId = source["id"].as_str().unwrap().parse().unwrap();
    load_sample_data(&params(&source), &password).await.unwrap();
    let mut ready = Vec::new();
    for name in ["front-image", "front-broken", "front-keyless"] {
        let id = api.create("/api/images", json!({ "name": name, "instance_id": source_id })).await;
        assert_eq!(api.settle(&format!("/api/images/{id}"), "creating", LONG).await["state"], "ready");
        ready.push(id.parse::<ImageId>().unwrap());
    }
    let (image, broken, keyless) = (ready[0], ready[1], ready[2]);
    // One image's data key is recorded as wrapped under a key the server does not hold.
    let held = t.catalog.get_image(keyless).await.unwrap().encryption.expect("encrypted by default");
    let gone = toygres_core::envelope::WrappedKey { key_id: "20250101-000000-abcdef".into(), ..held.clone() };
    t.catalog.rewrap_image_key(keyless, &held, &gone).await.unwrap();
    // One image loses bytes; one is reserved and never taken (`creating`); one instance is not running.
    let object = data.path().join(format!("images/images/{broken}/{}", database_object_name(0)));
    std::fs::write(&object, b"truncated").unwrap();
    let creating = t.backup().reserve_image(OperationId::new(), &CreateImageRequest::new("never", source_id)).await;
    let creating = creating.unwrap().id;
    let newer = newer_major_copy(&t, &data, image, source_id, &password).await;
    let mut stopped = NewInstance::existing("front-stopped", Password::new("stopped-Pw"));
    stopped.state = InstanceState::Failed;
    let stopped = t.register_instance(OperationId::new(), stopped).await.unwrap().id;
    // A source the local executor cannot image physically: a tablespace besides the default.
    let client = params(&source).connect("postgres", &password).await.unwrap();
    client.batch_execute("SET allow_in_place_tablespaces = on").await.unwrap();
    client.batch_execute("CREATE TABLESPACE front_ts LOCATION ''").await.unwrap();
    let before = world(&api, &data, &t).await;

    let mut physical = CreateImageRequest::new("phys", source_id);
    physical.format = ImageFormat::Physical;
    let mut missing_db = restore("front-partial", image);
    missing_db.databases = Some(vec!["appdb".into(), "nosuchdb".into()]);
    let mut conflicting = restore("front-conflict", image);
    conflicting.runtime_image_id = Some("pg16".into());
    let mut fresh = CreateInstanceRequest::restore("front-fresh", image);
    fresh.source_image_id = None;
    fresh.password = Some(Password::new("two\nlines"));
    let mut long = fresh.clone();
    long.password = Some(Password::new("p".repeat(1025)));
    let mut weak = fresh.clone();
    weak.password = Some(Password::new("password1"));
    let mut labelled = CreateImageRequest::new("front-labels", source_id);
    labelled.labels.insert("Bad Key".into(), "x".into());
    let unknown = uuid::Uuid::new_v4();
    let pitr = |name: &str, point: PointInTime| CreateInstanceRequest::at_point_in_time(name, point);
    let (future, lsn) = (chrono::Utc::now() + chrono::Duration::hours(1), "0/3000000".parse().unwrap());
    let two_targets = PointInTime { lsn: Some(lsn), ..PointInTime::at(source_id, future) };

    let images: Vec<(CreateImageRequest, Value)> = vec![
        (CreateImageRequest::new("Bad_Name", source_id), json!({ "name": "Bad_Name", "instance_id": source_id })),
        (CreateImageRequest::new("i", unknown.into()), json!({ "name": "i", "instance_id": unknown })),
        (CreateImageRequest::new("i", stopped), json!({ "name": "i", "instance_id": stopped })),
        (physical, json!({ "name": "phys", "instance_id": source_id, "format": "physical" })),
        (labelled, json!({ "name": "front-labels", "instance_id": source_id, "labels": { "Bad Key": "x" } })),
        (
            CreateImageRequest::new("d", source_id).with_description("x".repeat(1025)),
            json!({ "name": "d", "instance_id": source_id, "description": "x".repeat(1025) }),
        ),
    ];
    for (request, body) in images {
        let library = t.create_image(OperationId::new(), request).await.unwrap_err();
        same_refusal(&api, "/api/images", body, library).await;
    }
    let instances: Vec<(CreateInstanceRequest, Value)> = vec![
        (restore("front-unknown", unknown.into()), json!({ "name": "front-unknown", "source_image_id": unknown })),
        (restore("front-creating", creating), json!({ "name": "front-creating", "source_image_id": creating })),
        (restore("front-broken", broken), json!({ "name": "front-broken", "source_image_id": broken })),
        (restore("front-newer", newer), json!({ "name": "front-newer", "source_image_id": newer })),
        (restore("front-keyless", keyless), json!({ "name": "front-keyless", "source_image_id": keyless })),
        (missing_db, json!({ "name": "front-partial", "source_image_id": image, "databases": ["appdb", "nosuchdb"] })),
        (conflicting, json!({ "name": "front-conflict", "source_image_id": image, "runtime_image_id": "pg16" })),
        (restore("front-source", image), json!({ "name": "front-source", "source_image_id": image })),
        (restore("Bad_Name", image), json!({ "name": "Bad_Name", "source_image_id": image })),
        (fresh, json!({ "name": "front-fresh", "password": "two\nlines" })),
        (long, json!({ "name": "front-fresh", "password": "p".repeat(1025) })),
        (weak, json!({ "name": "front-fresh", "password": "password1" })),
        (
            pitr("front-pitr", PointInTime::latest(source_id)),
            json!({ "name": "front-pitr", "point_in_time": { "instance_id": source_id } }),
        ),
        (
            pitr("front-pitr", PointInTime::latest(unknown.into())),
            json!({ "name": "front-pitr", "point_in_time": { "instance_id": unknown } }),
        ),
        (
            pitr("front-pitr", two_targets),
            json!({ "name": "front-pitr", "point_in_time": { "instance_id": source_id, "time": future, "lsn": "0/3000000" } }),
        ),
        (
            pitr("front-pitr", PointInTime::latest(source_id)).with_databases(["appdb"]),
            json!({ "name": "front-pitr", "point_in_time": { "instance_id": source_id }, "databases": ["appdb"] }),
        ),
    ];
    for (request, body) in instances {
        let library = match (&request.point_in_time, request.source_image_id) {
            (Some(_), _) | (None, Some(_)) => t.create_instance(OperationId::new(), request).await.unwrap_err(),
            (None, None) => t.create_empty_instance(OperationId::new(), request).await.unwrap_err(),
        };
        same_refusal(&api, "/api/instances", body, library).await;
    }
    // The forged, the broken and the keyless images are refused by the rules they were made for.
    let admitted = t.restore().admit(&restore("x", keyless)).await;
    assert!(matches!(admitted, Err(toygres_core::Error::KeyUnavailable { .. })), "{admitted:?}");
    let admitted = t.restore().admit(&restore("x", newer)).await;
    assert!(matches!(admitted, Err(toygres_core::Error::UnsupportedImage { .. })), "{admitted:?}");
    let admitted = t.restore().admit(&restore("x", broken)).await;
    assert!(matches!(admitted, Err(toygres_core::Error::ImageIncomplete { .. })), "{admitted:?}");
    assert_eq!(world(&api, &data, &t).await, before, "a refused request created something");
}

/// A ready copy of `image` whose manifest says it comes from PostgreSQL 99: intact (its
/// checksum verifies), but no executor here can restore it (`check_restorable`). Made by a key
/// holder as a plaintext image (an encrypted one cannot be forged without its key).
async fn newer_major_copy(t: &Toygres, data: &DataDir, image: ImageId, source: InstanceId, pw: &Password) -> ImageId {
    let key = t.data_key(&t.catalog.get_image(image).await.unwrap()).await.unwrap().expect("encrypted");
    let copy = t.catalog.reserve_image(OperationId::new(), &NewImage::new("front-newer", source)).await.unwrap().id;
    let (from, to) =
        (data.path().join(format!("images/images/{image}")), data.path().join(format!("images/images/{copy}")));
    std::fs::create_dir_all(&to).unwrap();
    let stored = std::fs::read(from.join(MANIFEST_NAME)).unwrap();
    let mut manifest = Manifest::from_stored(image, &stored, Some(&key)).unwrap();
    let mut objects: Vec<&mut ManifestObject> = vec![&mut manifest.globals];
    objects.extend(manifest.databases.iter_mut().map(|d| &mut d.object));
    objects.extend(manifest.archives.iter_mut());
    for object in objects {
        let sealed = std::fs::read(from.join(&object.name)).unwrap();
        let plain = object::open_all(&key, image, &object.name, &sealed).unwrap();
        (object.size, object.sha256) = (plain.len() as u64, sha256_hex(&plain));
        std::fs::write(to.join(&object.name), plain).unwrap();
    }
    (manifest.image_id, manifest.pg_version) = (copy, "99.1".into());
    let bytes = manifest.to_bytes();
    std::fs::write(to.join(MANIFEST_NAME), &bytes).unwrap();
    let ready = ImageUpdate::Ready {
        size_bytes: bytes.len() as u64,
        checksum: sha256_hex(&bytes),
        pg_version: "99.1".into(),
        image_type: Default::default(),
        source_password: pw.clone(),
        metadata: None,
    };
    t.catalog.update_image(copy, ImageState::Creating, ready).await.unwrap();
    copy
}

/// The listings page with the library's continuation tokens and filter by labels and state.
#[tokio::test(flavor = "multi_thread")]
async fn listings_page_and_filter_by_labels_and_state() {
    let data = DataDir::new();
    let server = Server::start(&data);
    let api = server.client();
    let t = toygres_server::backends::open(&data.path(), None).await.unwrap().toygres;
    let mut ids = Vec::new();
    for i in 0..5 {
        let mut record = NewInstance::existing(format!("listed-{i}"), Password::new("pw"));
        record.labels.insert("team".into(), if i % 2 == 0 { "even" } else { "odd" }.into());
        ids.push(t.register_instance(OperationId::new(), record).await.unwrap().id.to_string());
    }
    let mut seen = Vec::new();
    let mut path = "/api/instances?limit=2".to_string();
    loop {
        let page = api.get(&path).await.body;
        let items = page["items"].as_array().unwrap();
        assert!(items.len() <= 2, "{page}");
        seen.extend(items.iter().map(|r| r["id"].as_str().unwrap().to_string()));
        match page["next_page_token"].as_str() {
            Some(token) => path = format!("/api/instances?limit=2&page_token={token}"),
            None => break,
        }
    }
    assert_eq!(seen, ids, "every instance once, oldest first");
    let odd = api.get("/api/instances?labels=team=odd&state=running").await.body;
    let names: Vec<&str> = odd["items"].as_array().unwrap().iter().map(|r| r["name"].as_str().unwrap()).collect();
    assert_eq!(names, ["listed-1", "listed-3"], "{odd}");
    assert_eq!(odd["items"][0]["labels"], json!({ "team": "odd" }));
    assert_eq!(api.get("/api/instances?state=failed").await.body["items"], json!([]));
    for bad in ["limit=0", "page_token=zzz", "labels=team", "state=asleep", "colour=blue"] {
        let answer = api.get(&format!("/api/instances?{bad}")).await;
        assert_eq!(answer.status, 400, "{bad}: {answer:?}");
    }
}
