//! The connection test from inside the cluster against the fake API server. `InCluster`: a
//! restricted one-pod Job per address (deterministic name) connecting to the instance's Service,
//! whose Secret, owned by the Job, is the only object holding the password; success and failure
//! come from the Job, the failure with psql's error, the password redacted; the probe is deleted
//! after each test, and an earlier attempt's finished probe is replaced. `ControlPlaneInCluster`:
//! the Service's name, the instance's own certificate.
//! `tests/probe_script.rs` runs its script against a real PostgreSQL.

#[path = "support/pod_security.rs"]
mod pod_security;
mod support;

use serde_json::json;
use std::time::Duration;
use support::*;
use toygres_core::{ClusterExecutor, ConnectionInfo, Password};
use toygres_k8s::probe::probe_name;
use toygres_k8s::{ConnectionTest, K8sConfig, Manifests};

fn config() -> K8sConfig {
    K8sConfig {
        connection_test: ConnectionTest::InCluster,
        job_service_account: Some("toygres-jobs".into()),
        poll_interval: Duration::from_millis(10),
        load_balancer_source_ranges: vec!["203.0.113.0/24".into()],
        ..K8sConfig::default()
    }
}

fn connection(host: &str) -> ConnectionInfo {
    ConnectionInfo {
        host: host.into(),
        port: 5432,
        user: "postgres".into(),
        database: "postgres".into(),
        dns_name: None,
        ssl_mode: Some("require".into()),
    }
}

/// Plays the probe Job `name` once it exists: its pod logs `log` and it ends `status`.
fn play(fake: &FakeApi, name: String, log: &'static str, status: serde_json::Value) {
    let fake = fake.clone();
    tokio::spawn(async move {
        let path = job(&name);
        let created = loop {
            if let Some(created) = fake.get(&path) {
                break created;
            }
            tokio::time::sleep(Duration::from_millis(5)).await;
        };
        let uid = created["metadata"]["uid"].as_str().unwrap().to_string();
        let pod = format!("{name}-x1y2z");
        fake.put(
            &core("pods", &pod),
            json!({"apiVersion": "v1", "kind": "Pod", "metadata": {"name": pod, "namespace": NS,
                   "labels": {"batch.kubernetes.io/controller-uid": uid}},
                   "spec": {"containers": [{"name": "probe"}]}, "status": {"phase": "Running"}}),
        );
        fake.set_log(&pod, "probe", log);
        tokio::time::sleep(Duration::from_millis(50)).await;
        fake.modify(&path, |j| j["status"] = status);
    });
}

#[test]
fn the_probe_is_a_restricted_job_named_for_its_address_without_the_password() {
    let config = config();
    let job = Manifests::new(&config).probe_job(&connection("pg-a.toygres.svc")).unwrap();
    let job = serde_json::to_value(&job).unwrap();
    let violations = pod_security::check_manifest("probe", &job);
    assert!(violations.is_empty(), "{violations:?}");
    let name = probe_name(&connection("pg-a.toygres.svc"));
    assert_eq!(job["metadata"]["name"], name.as_str());
    assert_eq!(name, probe_name(&connection("pg-a.toygres.svc")), "deterministic");
    assert_ne!(name, probe_name(&connection("pg-b.toygres.svc")));
    let pod = &job["spec"]["template"]["spec"];
    let env = pod["containers"][0]["env"].to_string();
    assert!(env.contains(r#"{"name":"PGSSLMODE","value":"require"}"#), "{env}");
    assert!(env.contains(r#"{"name":"PGHOST","value":"pg-a.toygres.svc"}"#), "{env}");
    assert_eq!(pod["volumes"][0]["secret"]["secretName"], name.as_str());
    assert_eq!(job["spec"]["template"]["metadata"]["labels"]["toygres.io/component"], "probe");
    assert!(!job.to_string().contains(PASSWORD));
}

/// The address the probe connects to: the instance's Service inside the cluster, not the load
/// balancer's (whose source ranges filter pods too).
fn service_of(executor: &toygres_k8s::K8sExecutor, i: &toygres_core::InstanceSpec) -> ConnectionInfo {
    let address = executor.service_address(i, &connection("203.0.113.7"));
    assert_eq!(address.host, format!("{}.toygres.svc", i.resource_name()));
    address
}

#[tokio::test]
async fn a_probe_that_connects_passes_and_leaves_nothing() {
    let (fake, executor) = FakeApi::executor_with(blobs(), config());
    let i = restored(None);
    let name = probe_name(&service_of(&executor, &i));
    let done = json!({"succeeded": 1, "conditions": [{"type": "Complete", "status": "True"}]});
    play(&fake, name.clone(), "probe: connected\n", done);
    executor.test_connection(&i, &connection("203.0.113.7"), &Password::new(PASSWORD)).await.unwrap();

    let created = fake.bodies().into_iter().find(|(p, _)| p.ends_with("/jobs")).unwrap().1;
    assert!(created.contains(&format!(r#"{{"name":"PGHOST","value":"{}.toygres.svc"}}"#, i.resource_name())));
    let secret_bodies: Vec<_> =
        fake.bodies().into_iter().filter(|(p, _)| p.contains(&format!("/secrets/{name}"))).collect();
    assert_eq!(secret_bodies.len(), 1, "{secret_bodies:?}");
    let secret: serde_json::Value = serde_json::from_str(&secret_bodies[0].1).unwrap();
    assert_eq!(secret["metadata"]["ownerReferences"][0]["kind"], "Job");
    assert_eq!(secret["metadata"]["ownerReferences"][0]["name"], name.as_str());
    let others = fake.bodies().into_iter().filter(|(p, _)| !p.contains("/secrets/"));
    assert!(others.into_iter().all(|(_, body)| !body.contains(PASSWORD)), "the password only in the Secret");
    assert!(fake.get(&job(&name)).is_none(), "the probe is deleted after the test");
}

#[tokio::test]
async fn a_probe_that_cannot_connect_fails_with_psqls_error_and_no_password() {
    let (fake, executor) = FakeApi::executor_with(blobs(), config());
    let i = restored(None);
    let name = probe_name(&service_of(&executor, &i));
    let log = "psql: error: connection to server at \"10.0.0.9\", port 5432 failed: server does not support SSL, \
               but SSL was required (password Sup3r-S3cret-Pa55word)\n";
    let failed = json!({"failed": 1, "conditions": [{"type": "Failed", "status": "True", "reason": "BackoffLimitExceeded",
                        "message": "Job has reached the specified backoff limit"}]});
    play(&fake, name.clone(), log, failed);
    let err = executor.test_connection(&i, &connection("203.0.113.7"), &Password::new(PASSWORD)).await;
    let err = err.unwrap_err().to_string();
    assert!(err.contains("from inside the cluster") && err.contains("BackoffLimitExceeded"), "{err}");
    assert!(err.contains("SSL was required"), "{err}");
    assert!(!err.contains(PASSWORD), "{err}");
    assert!(fake.get(&job(&name)).is_none());
}

/// A probe Job an earlier attempt left finished (its test cancelled, or a crash) is replaced, not
/// taken for this test's outcome.
#[tokio::test]
async fn an_earlier_attempts_finished_probe_is_replaced() {
    let (fake, executor) = FakeApi::executor_with(blobs(), config());
    let i = restored(None);
    let name = probe_name(&service_of(&executor, &i));
    let stale = Manifests::new(executor.config()).probe_job(&service_of(&executor, &i)).unwrap();
    let mut stale = serde_json::to_value(stale).unwrap();
    stale["metadata"]["uid"] = json!("uid-stale");
    stale["status"] =
        json!({"failed": 1, "conditions": [{"type": "Failed", "status": "True", "reason": "DeadlineExceeded"}]});
    fake.put(&job(&name), stale);
    let (fake2, name2) = (fake.clone(), name.clone());
    tokio::spawn(async move {
        loop {
            if fake2.get(&job(&name2)).is_some_and(|j| j["metadata"]["uid"] != "uid-stale") {
                let done = json!({"succeeded": 1, "conditions": [{"type": "Complete", "status": "True"}]});
                fake2.modify(&job(&name2), |j| j["status"] = done);
                return;
            }
            tokio::time::sleep(Duration::from_millis(5)).await;
        }
    });
    executor.test_connection(&i, &connection("203.0.113.7"), &Password::new(PASSWORD)).await.unwrap();
    assert!(fake.get(&job(&name)).is_none());
}

/// `ControlPlaneInCluster`: the control plane connects to the Service's cluster name and accepts
/// only the certificate in the instance's Secret, which must hold one.
#[tokio::test]
async fn the_control_plane_in_the_cluster_tests_the_service_with_the_instances_certificate() {
    let config = K8sConfig { connection_test: ConnectionTest::ControlPlaneInCluster, ..config() };
    let (_fake, executor) = FakeApi::executor_with(blobs(), config);
    let i = restored(None);
    let public = connection("203.0.113.7");
    let err = executor.test_connection(&i, &public, &Password::new(PASSWORD)).await.unwrap_err().to_string();
    assert!(err.contains(&format!("Secret {} has no tls.crt", i.resource_name())), "{err}");

    executor.create_volume(&i, &Password::new(PASSWORD)).await.unwrap();
    let err = executor.test_connection(&i, &public, &Password::new(PASSWORD)).await.unwrap_err().to_string();
    // Nothing resolves the cluster name here: the error names where it connected.
    assert!(err.contains(&format!("{}.toygres.svc", i.resource_name())), "{err}");
    assert!(!err.contains("203.0.113.7") && !err.contains(PASSWORD), "{err}");
}
