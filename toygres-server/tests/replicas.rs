//! Three real `toygres serve` processes on loopback share one PostgreSQL (catalog and durable
//! store) and one data directory: the work is split safely, a replica killed (SIGKILL) or paused
//! (SIGSTOP past its lease) in the middle of a backup or a restore leaves it to another without a
//! second job, a restart of the store's PostgreSQL is survived, and stuck records heal.
#![cfg(feature = "postgres")]

mod support;

use nix::sys::signal::Signal;
use serde_json::{json, Value};
use std::collections::{BTreeMap, BTreeSet};
use std::time::{Duration, Instant};
use support::replicas::Replicas;
use support::{binaries, params, procs, Api};
use toygres_core::Password;
use toygres_local::fidelity::{sample::load_sample_data, InstanceSnapshot};

const SETTLE: Duration = Duration::from_secs(300);

/// Waits until `probe` returns something (polling every 20 ms), or panics after `timeout`.
async fn until<T>(what: &str, timeout: Duration, mut probe: impl FnMut() -> Option<T>) -> T {
    let deadline = Instant::now() + timeout;
    loop {
        if let Some(found) = probe() {
            return found;
        }
        assert!(Instant::now() < deadline, "{what}: not within {timeout:?}");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

/// A running source instance with the sample data and `rows` bulk rows, and its snapshot.
async fn source(api: &Api, name: &str, rows: u64) -> (Value, Password, InstanceSnapshot) {
    let password = Password::new("replica-Pw-47");
    let record = api.running_instance(name, password.expose()).await;
    let p = params(&record);
    load_sample_data(&p, &password).await.unwrap();
    if rows > 0 {
        support::load_bulk(&p, &password, rows).await;
    }
    let snapshot = InstanceSnapshot::take(&binaries(), &p, &password).await.unwrap();
    (record, password, snapshot)
}

/// The replica that runs `program` right now (a job's child process), by index.
async fn runner(r: &Replicas, program: &str) -> usize {
    let pid = until(&format!("a replica running {program}"), Duration::from_secs(120), || {
        procs::runner_of(program, &r.pids())
    })
    .await;
    r.index_of(pid)
}

/// A client of a replica other than `not`.
fn other(r: &Replicas, not: usize) -> Api {
    r.api((not + 1) % 3)
}

#[tokio::test(flavor = "multi_thread")]
async fn fifty_creates_over_three_replicas_make_one_record_per_name_and_one_id_per_key() {
    let r = Replicas::start(3).await;
    let apis: Vec<Api> = (0..3).map(|i| r.api(i)).collect();
    // 5 names, 10 requests each: 4 repeat one Idempotency-Key, 6 carry a key of their own.
    let mut tasks = tokio::task::JoinSet::new();
    for n in 0..50usize {
        let (name, round) = (format!("spread-{}", n % 5), n / 5);
        let key = if round < 4 { format!("key-{name}") } else { format!("key-{name}-{round}") };
        let api = apis[n % 3].clone();
        tasks.spawn(async move {
            let body = json!({ "name": name, "password": "spread-Pw-9" });
            let answer = api.post_keyed("/api/instances", &key, &body).await;
            (name, key, answer.status.as_u16(), answer.body)
        });
    }
    let answers = tasks.join_all().await;
    let mut ids: BTreeMap<String, BTreeSet<String>> = BTreeMap::new();
    let mut keys: BTreeMap<String, BTreeSet<String>> = BTreeMap::new();
    for (name, key, status, body) in &answers {
        match status {
            200..=299 => {
                let id = body["id"].as_str().unwrap().to_string();
                ids.entry(name.clone()).or_default().insert(id.clone());
                keys.entry(key.clone()).or_default().insert(id);
            }
            409 => assert_eq!(body["error"]["code"], "name_taken", "{name} {key}: {body}"),
            other => panic!("{name} {key}: {other} {body}"),
        }
    }
    assert_eq!(ids.len(), 5, "every name was created once: {answers:?}");
    for (name, found) in &ids {
        assert_eq!(found.len(), 1, "{name} has one id: {found:?}");
    }
    for (key, found) in &keys {
        assert_eq!(found.len(), 1, "{key} has one id: {found:?}");
    }
    let mut running = BTreeSet::new();
    for id in ids.values().flatten() {
        let record = r.api(0).settle(&format!("/api/instances/{id}"), "provisioning", SETTLE).await;
        assert_eq!(record["state"], "running", "{record}\n{}", r.logs());
        running.insert(id.clone());
    }
    // The catalog, the volumes and the durable store agree: five of each, no more.
    let listed = r.api(2).get("/api/instances").await.body;
    let listed: BTreeSet<String> =
        listed["items"].as_array().unwrap().iter().map(|i| i["id"].as_str().unwrap().to_string()).collect();
    assert_eq!(listed, running);
    assert_eq!(r.data.instance_volumes(), 5);
    let store = r.store.connect().await;
    let rows = store
        .query("SELECT instance_id FROM toygres_durable.instances WHERE instance_id LIKE 'create-instance-%'", &[])
        .await
        .unwrap();
    let durable: BTreeSet<String> =
        rows.iter().map(|row| row.get::<_, String>(0).trim_start_matches("create-instance-").to_string()).collect();
    assert_eq!(durable, running, "one orchestration per record");
    assert_eq!(procs::postmasters_under(&r.data.path()).len(), 5, "one server per instance");
}

#[tokio::test(flavor = "multi_thread")]
async fn a_replica_killed_mid_backup_or_mid_restore_leaves_the_work_to_another() {
    let mut r = Replicas::start(3).await;
    let (source, _, before) = source(&r.api(0), "kill-source", 600_000).await;

    let image_id = r.api(1).create("/api/images", json!({ "name": "kill-image", "instance_id": source["id"] })).await;
    let image_path = format!("/api/images/{image_id}");
    let killed = runner(&r, "pg_dump").await;
    r.kill9(killed);
    let image = other(&r, killed).settle(&image_path, "creating", SETTLE).await;
    assert_eq!(image["state"], "ready", "{image}\n{}", r.logs());
    r.restart(killed);

    let id = r.api(2).create("/api/instances", json!({ "name": "kill-copy", "source_image_id": image_id })).await;
    let path = format!("/api/instances/{id}");
    let killed = runner(&r, "pg_restore").await;
    // Another replica shows the job's step and byte progress (recorded in the catalog by the
    // runner at most 0.5 s late).
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        let progress = other(&r, killed).get(&path).await.body["progress"].clone();
        if progress["bytes_done"].as_u64().unwrap_or(0) > 0 {
            assert_eq!(progress["step"], "WaitRestoreJob", "{progress}");
            assert!(progress["bytes_total"].as_u64().unwrap_or(0) > 0, "{progress}");
            break;
        }
        assert!(Instant::now() < deadline, "no bytes seen from another replica: {progress}");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    r.kill9(killed);
    let record = other(&r, killed).settle(&path, "provisioning", SETTLE).await;
    assert_eq!(record["state"], "running", "{record}\n{}", r.logs());
    let password = Password::new("replica-Pw-47");
    let after = InstanceSnapshot::take(&binaries(), &params(&record), &password).await.unwrap();
    assert_eq!(before.diff(&after), Vec::<String>::new());

    let api = other(&r, killed);
    assert_eq!(api.get("/api/instances").await.body["items"].as_array().unwrap().len(), 2, "one record");
    assert_eq!(r.data.instance_volumes(), 2, "one volume for the copy");
    let servers = until("the killed job's server to be gone", Duration::from_secs(30), || {
        let found = procs::postmasters_under(&r.data.path());
        (found.len() == 2).then_some(found)
    });
    assert_eq!(servers.await.len(), 2, "no orphan server: the source's and the copy's only");
}

#[tokio::test(flavor = "multi_thread")]
async fn a_replica_paused_past_its_lease_and_a_restart_of_the_store_corrupt_nothing() {
    let r = Replicas::start(3).await;
    let (source, password, before) = source(&r.api(0), "pause-source", 600_000).await;
    let image_id = r.api(0).create("/api/images", json!({ "name": "pause-image", "instance_id": source["id"] })).await;
    let image = r.api(0).settle(&format!("/api/images/{image_id}"), "creating", SETTLE).await;
    assert_eq!(image["state"], "ready", "{image}");

    // Paused for three leases: another replica takes the step over and waits for the job the
    // paused one still holds; resumed, the paused one finishes it. One job, one volume.
    let id = r.api(1).create("/api/instances", json!({ "name": "paused-copy", "source_image_id": image_id })).await;
    let paused = runner(&r, "pg_restore").await;
    r.signal(paused, Signal::SIGSTOP);
    tokio::time::sleep(Duration::from_secs(12)).await;
    let waiting = other(&r, paused).get(&format!("/api/instances/{id}")).await.body;
    r.signal(paused, Signal::SIGCONT);
    assert_eq!(waiting["state"], "provisioning", "nothing finished while the job's process was paused: {waiting}");
    let record = other(&r, paused).settle(&format!("/api/instances/{id}"), "provisioning", SETTLE).await;
    assert_eq!(record["state"], "running", "{record}\n{}", r.logs());
    let after = InstanceSnapshot::take(&binaries(), &params(&record), &password).await.unwrap();
    assert_eq!(before.diff(&after), Vec::<String>::new());
    assert!(r.server(paused).log_text().contains("lost the step's lease"), "{}", r.logs());

    // The store's PostgreSQL restarts in the middle of a restore: it completes.
    let id = r.api(2).create("/api/instances", json!({ "name": "store-copy", "source_image_id": image_id })).await;
    runner(&r, "pg_restore").await;
    r.store.restart().await;
    let record = r.api(0).settle(&format!("/api/instances/{id}"), "provisioning", SETTLE).await;
    assert_eq!(record["state"], "running", "{record}\n{}", r.logs());
    let after = InstanceSnapshot::take(&binaries(), &params(&record), &password).await.unwrap();
    assert_eq!(before.diff(&after), Vec::<String>::new());
    assert_eq!(r.data.instance_volumes(), 3, "source and two copies, nothing more");
    assert_eq!(procs::postmasters_under(&r.data.path()).len(), 3);
}

/// The library on the replicas' catalog and data directory, as an embedder next to them would
/// open it, and a durable client of their store.
async fn library(r: &Replicas) -> (toygres_core::Toygres, toygres_duroxide::DurableClient) {
    use std::sync::Arc;
    use toygres_core::crypto::CatalogKey;
    let dir = r.data.path();
    let key = CatalogKey::from_hex(std::fs::read_to_string(dir.join("catalog.key")).unwrap().trim()).unwrap();
    let catalog = toygres_cms_postgres::PostgresCatalog::connect_url(&r.store.url(), key).await.unwrap();
    let blobs = Arc::new(toygres_local::LocalBlobStore::open(dir.join("images")).unwrap());
    let executor = toygres_local::LocalExecutor::builder(dir.join("local"), blobs.clone()).build().unwrap();
    let keys = toygres_core::envelope::LocalKeys::open(dir.join("image-keys")).unwrap();
    let t = toygres_core::Toygres::new(Arc::new(catalog), blobs, Arc::new(executor)).with_image_keys(Arc::new(keys));
    let client = toygres_duroxide::ToygresRuntime::builder(t.clone()).postgres(r.store.url(), "toygres_durable");
    (t, client.connect().await.unwrap())
}

#[tokio::test(flavor = "multi_thread")]
async fn a_rolling_restart_with_five_images_in_flight_and_both_kinds_of_stuck_record_heal() {
    use toygres_core::{CreateImageRequest, ImageId, InstanceId, OperationId};
    let mut r = Replicas::start(3).await;
    let (source, _, _) = source(&r.api(0), "rolling-source", 200_000).await;
    let mut images = Vec::new();
    for n in 0..5 {
        let body = json!({ "name": format!("rolling-{n}"), "instance_id": source["id"] });
        images.push(r.api(n % 3).create("/api/images", body).await);
    }
    // Each replica in turn: SIGTERM, then started again, while the images are in flight.
    for i in 0..3 {
        r.stop(i);
        r.restart(i);
    }
    for id in &images {
        let image = r.api(0).settle(&format!("/api/images/{id}"), "creating", SETTLE).await;
        assert_eq!(image["state"], "ready", "{image}\n{}", r.logs());
    }

    // Stuck 1: a record reserved without its orchestration (a crash between the two): resumed.
    let (t, durable) = library(&r).await;
    let source_id: InstanceId = source["id"].as_str().unwrap().parse().unwrap();
    let orphan = t.backup().begin(OperationId::new(), &CreateImageRequest::new("orphan", source_id)).await.unwrap();
    // Stuck 2: an orchestration ended without its cleanup (here: terminated under it).
    let ended = r.api(1).create("/api/images", json!({ "name": "ended", "instance_id": source["id"] })).await;
    let ended_id: ImageId = ended.parse().unwrap();
    let orchestration = toygres_duroxide::names::image_orchestration_id(ended_id);
    durable.duroxide().cancel_instance(&orchestration, "terminated by the test").await.unwrap();

    let healed = r.api(2).settle(&format!("/api/images/{}", orphan.id), "creating", SETTLE).await;
    assert_eq!(healed["state"], "ready", "the orphan record was resumed: {healed}\n{}", r.logs());
    let failed = r.api(2).settle(&format!("/api/images/{ended}"), "creating", SETTLE).await;
    assert_eq!(failed["state"], "failed", "{failed}\n{}", r.logs());
    assert!(failed["failure_reason"].to_string().contains("sweeper"), "the reason says who cleaned up: {failed}");
    assert_eq!(r.data.image_dirs(), 6, "five images and the orphan; the ended one left nothing behind");
}

#[tokio::test(flavor = "multi_thread")]
async fn a_schedule_every_minute_on_three_replicas_takes_one_image_per_slot_and_keeps_the_last_three() {
    use chrono::{DurationRound, Utc};
    let mut r = Replicas::start(3).await;
    let source = r.api(0).running_instance("sched-source", "sched-Pw-5").await;
    let body = json!({ "name": "minutely", "instance_id": source["id"], "cron": "* * * * *", "keep_last": 3 });
    let answer = r.api(1).post("/api/schedules", body).await;
    assert_eq!(answer.status.as_u16(), 201, "{answer:?}");
    let schedule = answer.body["id"].as_str().unwrap().to_string();
    // Five slots: the next five minute boundaries; the schedule is deleted before the sixth.
    let first = Utc::now().duration_trunc(chrono::TimeDelta::minutes(1)).unwrap() + chrono::TimeDelta::minutes(1);
    let end = first + chrono::TimeDelta::minutes(4) + chrono::TimeDelta::seconds(30);
    let mut seen: BTreeMap<String, String> = BTreeMap::new();
    let mut restarted = false;
    while Utc::now() < end {
        let images = r.api(2).get("/api/images").await.body;
        for image in images["items"].as_array().unwrap() {
            let name = image["name"].as_str().unwrap();
            if let Some(previous) = seen.insert(name.to_string(), image["id"].as_str().unwrap().to_string()) {
                assert_eq!(previous, image["id"].as_str().unwrap(), "one image per slot: {name}");
            }
        }
        // A replica dies between two slots and comes back: the schedule goes on.
        if !restarted && Utc::now() > first + chrono::TimeDelta::seconds(90) {
            r.kill9(0);
            r.restart(0);
            restarted = true;
        }
        tokio::time::sleep(Duration::from_secs(2)).await;
    }
    assert_eq!(r.api(0).delete(&format!("/api/schedules/{schedule}")).await.status.as_u16(), 204);
    let names: Vec<&String> = seen.keys().filter(|n| n.starts_with("minutely-")).collect();
    assert_eq!(names.len(), 5, "one image per slot, five slots: {names:?}\n{}", r.logs());
    // Retention (keep the last three) ran after the fifth became ready: the three latest slots.
    let expected: Vec<String> = names.iter().rev().take(3).rev().map(|n| n.to_string()).collect();
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        let images = r.api(1).get("/api/images").await.body;
        let mut kept: Vec<String> =
            images["items"].as_array().unwrap().iter().map(|i| i["name"].as_str().unwrap().to_string()).collect();
        kept.retain(|n| n.starts_with("minutely-"));
        kept.sort();
        if kept == expected {
            break;
        }
        assert!(Instant::now() < deadline, "kept {kept:?}, expected {expected:?}\n{}", r.logs());
        tokio::time::sleep(Duration::from_secs(1)).await;
    }
    let all = r.api(0).get("/api/images").await.body;
    for image in all["items"].as_array().unwrap() {
        assert_eq!(image["state"], "ready", "{image}");
    }
}
