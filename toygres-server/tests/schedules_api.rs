//! `/api/schedules` against a real `toygres serve`: create (201, Location, next run), list, get,
//! delete (204); a bad cron is 422 `invalid_cron` naming `cron`, an unknown instance 404, a taken name 409; the
//! `Idempotency-Key` answers a retry with the same schedule, refuses another body (422) and is
//! spent once the schedule is deleted (409). And `toygres schedules …` on the command line.

mod support;

use serde_json::{json, Value};
use std::process::Command;
use support::{Api, DataDir, Server, TOKEN};

async fn refused(api: &Api, key: Option<&str>, body: Value, status: u16, code: &str) -> Value {
    let answer = api.send_keyed(reqwest::Method::POST, "/api/schedules", Some(&body), key).await;
    assert_eq!((answer.status.as_u16(), answer.body["error"]["code"].as_str()), (status, Some(code)), "{answer:?}");
    answer.body["error"].clone()
}

fn cli(server: &Server, args: &[&str]) -> (bool, String, String) {
    let out = Command::new(env!("CARGO_BIN_EXE_toygres"))
        .args(args)
        .env("TOYGRES_SERVER", &server.url)
        .env("TOYGRES_TOKEN", TOKEN)
        .env("TOYGRES_LOG", "warn")
        .output()
        .unwrap();
    (
        out.status.success(),
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

#[tokio::test(flavor = "multi_thread")]
async fn schedules_are_created_listed_and_deleted_with_typed_refusals() {
    let data = DataDir::new();
    let server = Server::start(&data);
    let api = server.client();
    let instance = api.running_instance("sched-source", "sched-Pw-1").await;
    let instance_id = instance["id"].as_str().unwrap().to_string();

    let body = json!({ "name": "nightly", "instance_id": instance_id, "cron": "0 3 * * *", "format": "physical" });
    let created = api.post_keyed("/api/schedules", "key-nightly", &body).await;
    assert_eq!(created.status, 201, "{created:?}");
    let schedule = created.body.clone();
    let id = schedule["id"].as_str().unwrap().to_string();
    assert_eq!(created.location.as_deref(), Some(format!("/api/schedules/{id}").as_str()));
    assert_eq!(
        (schedule["keep_last"].as_u64(), schedule["format"].as_str()),
        (Some(7), Some("physical")),
        "{schedule}"
    );
    assert_eq!(schedule["last_slot"], Value::Null);
    let next = schedule["next_run_at"].as_str().expect("the next run is shown");
    assert!(next.ends_with("T03:00:00Z"), "the next 03:00 UTC: {next}");

    // The same key and body: the same schedule; another body under it: 422; nothing new.
    let again = api.post_keyed("/api/schedules", "key-nightly", &body).await;
    assert_eq!((again.status.as_u16(), again.body["id"].as_str()), (201, Some(id.as_str())), "{again:?}");
    let other = json!({ "name": "nightly", "instance_id": instance_id, "cron": "0 4 * * *" });
    refused(&api, Some("key-nightly"), other.clone(), 422, "idempotency_key_reused").await;
    let taken = refused(&api, None, other, 409, "name_taken").await;
    assert_eq!(taken["field"], "name");

    // Typed refusals: a bad cron names the field and says what is wrong; unknown instance: 404.
    let bad_cron = json!({ "name": "bad", "instance_id": instance_id, "cron": "0 3 * *" });
    let error = refused(&api, None, bad_cron, 422, "invalid_cron").await;
    assert_eq!(error["field"], "cron");
    assert!(error["message"].as_str().unwrap().contains("4 fields"), "{error}");
    let never = json!({ "name": "bad", "instance_id": instance_id, "cron": "0 0 30 2 *" });
    assert_eq!(refused(&api, None, never, 422, "invalid_cron").await["field"], "cron");
    let unknown = json!({ "name": "orphan", "instance_id": uuid::Uuid::new_v4(), "cron": "0 3 * * *" });
    refused(&api, None, unknown, 404, "instance_not_found").await;
    let keep_none = json!({ "name": "k", "instance_id": instance_id, "cron": "0 3 * * *", "keep_last": 0 });
    assert_eq!(refused(&api, None, keep_none, 400, "invalid_request").await["field"], "keep_last");
    let extra = json!({ "name": "k", "instance_id": instance_id, "cron": "0 3 * * *", "every": "day" });
    refused(&api, None, extra, 400, "invalid_body").await;
    let long = json!({ "name": "a".repeat(50), "instance_id": instance_id, "cron": "0 3 * * *" });
    assert_eq!(refused(&api, None, long, 400, "invalid_request").await["field"], "name");

    // Reads.
    let listed = api.get("/api/schedules").await;
    assert_eq!(listed.status, 200);
    assert_eq!(listed.body["items"].as_array().unwrap().len(), 1, "refusals record nothing: {}", listed.body);
    assert_eq!(listed.body["items"][0]["id"], schedule["id"]);
    let got = api.get(&format!("/api/schedules/{id}")).await;
    assert_eq!((got.status.as_u16(), &got.body["cron"]), (200, &json!("0 3 * * *")));
    assert_eq!(api.get("/api/schedules/not-a-uuid").await.status, 404);
    let missing = api.get(&format!("/api/schedules/{}", uuid::Uuid::new_v4())).await;
    assert_eq!((missing.status.as_u16(), missing.body["error"]["code"].as_str()), (404, Some("schedule_not_found")));

    // The command line.
    let (ok, out, err) = cli(&server, &["schedules", "list"]);
    assert!(ok && out.contains("nightly") && out.contains("0 3 * * *"), "{out}{err}");
    let args = ["schedules", "create", "hourly", "--instance", &instance_id, "--cron", "0 * * * *", "--keep-last", "2"];
    let (ok, out, err) = cli(&server, &[&["--json"], args.as_slice()].concat());
    assert!(ok, "{out}{err}");
    let hourly: Value = serde_json::from_str(&out).unwrap();
    assert_eq!((hourly["name"].as_str(), hourly["keep_last"].as_u64()), (Some("hourly"), Some(2)), "{hourly}");
    let (ok, out, err) = cli(&server, &["schedules", "create", "x", "--instance", &instance_id, "--cron", "nope"]);
    assert!(!ok && err.contains("cron"), "{out}{err}");
    let hourly_id = hourly["id"].as_str().unwrap();
    let (ok, out, err) = cli(&server, &["schedules", "show", hourly_id]);
    assert!(ok && out.contains("hourly"), "{out}{err}");
    let (ok, out, err) = cli(&server, &["schedules", "delete", hourly_id]);
    assert!(ok && out.contains("deleted schedule"), "{out}{err}");

    // Delete: 204, then 404; the key is spent.
    assert_eq!(api.delete(&format!("/api/schedules/{id}")).await.status, 204);
    assert_eq!(api.delete(&format!("/api/schedules/{id}")).await.status, 404);
    assert_eq!(api.get(&format!("/api/schedules/{id}")).await.status, 404);
    let spent = refused(&api, Some("key-nightly"), body.clone(), 409, "idempotency_key_spent").await;
    assert!(spent["message"].as_str().unwrap().contains(&id), "{spent}");
    assert_eq!(api.get("/api/schedules").await.body["items"], json!([]));
    let fresh = api.post_keyed("/api/schedules", "key-nightly-2", &body).await;
    assert_eq!(fresh.status, 201, "the name is free again under a new key: {fresh:?}");

    assert_eq!(api.delete(&format!("/api/instances/{instance_id}")).await.status, 204);
}
