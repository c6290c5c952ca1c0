//! The executor's API calls, step by step, against a fake API server (kube `Client` over tower-test).

mod support;

use serde_json::json;
use std::sync::Arc;
use std::time::Duration;
use support::*;
use toygres_core::{
    BackupJobSpec, ClusterExecutor, Error, ImageId, ImageType, InstanceId, InstanceSpec, JobRef, NoProgress, Password,
    Transfer,
};

fn instance() -> InstanceSpec {
    InstanceSpec {
        id: InstanceId::new(),
        name: "restored".into(),
        image_type: ImageType::PgDurable,
        pg_version: Some("15.18".into()),
        dns_label: Some("restored-db".into()),
    }
}

fn backup_spec() -> BackupJobSpec {
    support::backup_spec(instance(), Default::default(), Some(data_key()))
}

fn password() -> Password {
    Password::new(PASSWORD)
}

#[tokio::test]
async fn create_volume_creates_pvc_secret_and_config_then_converges_on_rerun() {
    let (fake, executor) = FakeApi::executor(blobs());
    let i = instance();
    let name = i.resource_name();
    executor.create_volume(&i, &password()).await.unwrap();
    let created = vec![
        format!("POST {}", core_all("persistentvolumeclaims")),
        format!("POST {}", core_all("secrets")),
        format!("POST {}", core_all("configmaps")),
    ];
    assert_eq!(fake.take_calls(), created);
    let secret = fake.get(&core("secrets", &name)).unwrap();
    assert_eq!(secret["metadata"]["labels"]["toygres.io/instance"], json!(i.id.to_string()));
    assert!(secret["data"]["password"].is_string());

    // A re-run after a crash: everything exists with our labels, so every 409 is success.
    executor.create_volume(&i, &password()).await.unwrap();
    let rerun = vec![
        format!("POST {}", core_all("persistentvolumeclaims")),
        format!("GET {}", core("persistentvolumeclaims", &name)),
        format!("POST {}", core_all("secrets")),
        format!("GET {}", core("secrets", &name)),
        format!("POST {}", core_all("configmaps")),
        format!("GET {}", core("configmaps", &name)),
    ];
    assert_eq!(fake.take_calls(), rerun);
}

#[tokio::test]
async fn a_foreign_object_with_our_name_is_a_conflict_and_nothing_else_is_created() {
    let (fake, executor) = FakeApi::executor(blobs());
    let i = instance();
    let pvc = json!({"apiVersion": "v1", "kind": "PersistentVolumeClaim",
                     "metadata": {"name": i.resource_name(), "labels": {"app": "someone-else"}}});
    fake.put(&core("persistentvolumeclaims", &i.resource_name()), pvc);
    let err = executor.create_volume(&i, &password()).await.unwrap_err().to_string();
    assert!(err.contains("not created by toygres"), "{err}");
    assert_eq!(fake.take_calls().len(), 2, "stops after the conflicting PVC");
    assert!(fake.get(&core("secrets", &i.resource_name())).is_none());
}

#[tokio::test]
async fn invalid_instance_names_fail_before_any_call() {
    let (fake, executor) = FakeApi::executor(blobs());
    let mut i = instance();
    i.dns_label = Some("Not_A_Label".into());
    assert!(matches!(executor.create_volume(&i, &password()).await, Err(Error::InvalidRequest { .. })));
    assert!(fake.take_calls().is_empty());
}

#[tokio::test]
async fn backup_job_applies_its_secret_then_creates_the_job_and_reruns_return_it() {
    let (fake, executor) = FakeApi::executor(blobs());
    let spec = backup_spec();
    let job = executor.start_backup_job(&spec).await.unwrap();
    assert_eq!(job, JobRef::backup(spec.image_id));
    let expected =
        vec![format!("PATCH {}", core("secrets", &job.name)), format!("POST /apis/batch/v1/namespaces/{NS}/jobs")];
    assert_eq!(fake.take_calls(), expected);
    let stored = fake.get(&support::job(&job.name)).unwrap();
    let pod = &stored["spec"]["template"];
    assert_eq!(pod["metadata"]["labels"]["azure.workload.identity/use"], "true");
    assert_eq!(pod["spec"]["serviceAccountName"], "toygres-jobs");
    // Defect 1: the dump runs in the source's own PostgreSQL image (its major), the upload in the toolbox.
    assert_eq!(pod["spec"]["containers"][0]["name"], "dump");
    assert_eq!(pod["spec"]["containers"][0]["image"], "ghcr.io/toygres/pg-durable:15");
    assert_eq!(pod["spec"]["containers"][1]["name"], "upload");
    assert_eq!(pod["spec"]["containers"][1]["image"], "ghcr.io/toygres/toolbox:latest");
    let env = pod["spec"]["containers"][0]["env"].to_string();
    assert!(env.contains(r#"{"name":"PGPASSWORD","valueFrom":{"secretKeyRef":{"key":"PGPASSWORD","name":"backup-"#));
    assert!(env.contains(&format!(r#""value":"pg-{}.{NS}.svc""#, spec.source.id)), "{env}");

    let again = executor.start_backup_job(&spec).await.unwrap();
    assert_eq!(again, job);
    let rerun = vec![
        format!("PATCH {}", core("secrets", &job.name)),
        format!("POST /apis/batch/v1/namespaces/{NS}/jobs"),
        format!("GET {}", support::job(&job.name)),
    ];
    assert_eq!(fake.take_calls(), rerun);
}

#[tokio::test]
async fn secrets_travel_only_in_secret_requests() {
    let (fake, executor) = FakeApi::executor(blobs());
    let i = instance();
    executor.create_volume(&i, &password()).await.unwrap();
    let restore = toygres_core::RestoreJobSpec { data_key: Some(data_key()), ..restore_spec(&i) };
    executor.start_restore_job(&restore).await.unwrap();
    executor.start_backup_job(&backup_spec()).await.unwrap();
    executor.deploy_from_volume(&i).await.unwrap();
    let bodies = fake.bodies();
    assert!(bodies.len() >= 7);
    let encoded = [PASSWORD, SAS, DATA_KEY_HEX].map(|s| k8s_openapi::ByteString(s.as_bytes().to_vec()));
    let encoded: Vec<String> = encoded.iter().map(|b| serde_json::to_string(b).unwrap()).collect();
    for (path, body) in &bodies {
        if path.contains("/secrets") {
            continue;
        }
        for secret in [PASSWORD, SAS, "SAS-S3CRET", DATA_KEY_HEX, &encoded[0], &encoded[1], &encoded[2]] {
            assert!(!body.contains(secret.trim_matches('"')), "{path} carries a secret: {body}");
        }
    }
    assert!(bodies.iter().any(|(p, b)| p.contains("/secrets") && b.contains(encoded[0].trim_matches('"'))));
    // The data key of both jobs is in their Secrets only.
    let key_b64 = encoded[2].trim_matches('"');
    for job in ["restore-", "backup-"] {
        let mut secrets = bodies.iter().filter(|(p, _)| p.contains(&format!("/secrets/{job}")));
        assert!(secrets.any(|(_, b)| b.contains(key_b64)), "the {job} job's Secret holds the data key");
    }
    assert!(!format!("{executor:?}").contains(PASSWORD));
}

#[tokio::test]
async fn restore_job_runs_fetch_then_load_with_the_password_from_the_instance_secret() {
    let (fake, executor) = FakeApi::executor(blobs());
    let i = instance();
    let spec = restore_spec(&i);
    let job = executor.start_restore_job(&spec).await.unwrap();
    assert_eq!(job, JobRef::restore(i.id));
    let stored = fake.get(&support::job(&job.name)).unwrap();
    let pod = &stored["spec"]["template"]["spec"];
    // Side by side: fetch streams into load through FIFOs in the shared emptyDir.
    assert_eq!(pod["containers"][0]["name"], "fetch");
    assert_eq!(pod["containers"][1]["name"], "load");
    assert_eq!(pod["containers"][1]["image"], "ghcr.io/toygres/pg-durable:15");
    let load_env = pod["containers"][1]["env"].to_string();
    let secret_ref = format!(r#"{{"key":"password","name":"{}"}}"#, i.resource_name());
    assert!(load_env.contains(&secret_ref), "{load_env}");
    let fetch_env = pod["containers"][0]["env"].to_string();
    assert!(fetch_env.contains(&spec.checksum) && fetch_env.contains("TOYGRES_TRANSFER_URL_QUERY"), "{fetch_env}");
    assert_eq!(pod["volumes"][0]["persistentVolumeClaim"]["claimName"], json!(i.resource_name()));
}

#[tokio::test]
async fn an_in_process_transfer_is_refused_before_any_call() {
    let mut blobs = toygres_core::testing::MockBlobStore::new();
    blobs.expect_describe().returning(|| "memory".into());
    blobs.expect_transfer().returning(|_| Transfer::ObjectStore {
        store: Arc::new(object_store::memory::InMemory::new()),
        prefix: "images/x".into(),
    });
    let (fake, executor) = FakeApi::executor(blobs);
    let err = executor.start_backup_job(&backup_spec()).await.unwrap_err();
    assert!(err.to_string().contains("in-process transfers"), "{err}");
    assert!(fake.take_calls().is_empty());
}

fn job_with_status(name: &str, status: serde_json::Value) -> serde_json::Value {
    json!({"apiVersion": "batch/v1", "kind": "Job",
           "metadata": {"name": name, "namespace": NS, "labels": {"app.kubernetes.io/managed-by": "toygres"}},
           "status": status})
}

#[tokio::test(start_paused = true)]
async fn wait_for_job_polls_until_the_job_completes() {
    let (fake, executor) = FakeApi::executor(blobs());
    let job = JobRef::backup(ImageId::new());
    fake.put(&support::job(&job.name), job_with_status(&job.name, json!({"active": 1})));
    let later = fake.clone();
    let path = support::job(&job.name);
    let name = job.name.clone();
    tokio::spawn(async move {
        tokio::time::sleep(Duration::from_secs(5)).await;
        let done = json!({"succeeded": 1, "conditions": [{"type": "Complete", "status": "True"}]});
        later.put(&path, job_with_status(&name, done));
    });
    let start = tokio::time::Instant::now();
    executor.wait_for_job(&job, Duration::from_secs(60), Arc::new(NoProgress)).await.unwrap();
    assert_eq!(start.elapsed(), Duration::from_secs(6), "polls every 2 s");
    let job_reads: Vec<String> = fake.take_calls().into_iter().filter(|c| c.contains("/jobs/")).collect();
    assert_eq!(job_reads, vec![format!("GET {}", support::job(&job.name)); 4]);
}

#[tokio::test(start_paused = true)]
async fn a_job_that_never_finishes_times_out() {
    let (fake, executor) = FakeApi::executor(blobs());
    let job = JobRef::backup(ImageId::new());
    fake.put(&support::job(&job.name), job_with_status(&job.name, json!({"active": 1})));
    let start = tokio::time::Instant::now();
    let err = executor.wait_for_job(&job, Duration::from_secs(30), Arc::new(NoProgress)).await.unwrap_err();
    assert!(matches!(&err, Error::Timeout { after, .. } if *after == Duration::from_secs(30)), "{err}");
    assert_eq!(start.elapsed(), Duration::from_secs(30));
    assert!(err.to_string().contains(&job.name));
}

#[tokio::test(start_paused = true)]
async fn a_failed_job_reports_its_pod_logs_with_secrets_redacted() {
    let (fake, executor) = FakeApi::executor(blobs());
    let i = instance();
    executor.create_volume(&i, &password()).await.unwrap();
    let spec = toygres_core::RestoreJobSpec { data_key: Some(data_key()), ..restore_spec(&i) };
    let job = executor.start_restore_job(&spec).await.unwrap();
    let failed = json!({"failed": 2, "conditions": [{"type": "Failed", "status": "True",
        "reason": "BackoffLimitExceeded", "message": "Job has reached the specified backoff limit"}]});
    let mut failed_job = job_with_status(&job.name, failed);
    failed_job["metadata"]["uid"] = json!("uid-now");
    fake.put(&support::job(&job.name), failed_job);
    let pod_name = format!("{}-x7k2p", job.name);
    let labels = json!({"job-name": job.name, "batch.kubernetes.io/controller-uid": "uid-now"});
    let pod = json!({"apiVersion": "v1", "kind": "Pod",
        "metadata": {"name": pod_name, "namespace": NS, "labels": labels},
        "spec": {"initContainers": [{"name": "fetch"}], "containers": [{"name": "load"}]}});
    fake.put(&core("pods", &pod_name), pod);
    fake.set_log(&pod_name, "fetch", &format!("restore-fetch: ERROR: image corrupted\nurl had {SAS}\n"));
    fake.set_log(&pod_name, "load", &format!("psql: password {PASSWORD} rejected\nkey {DATA_KEY_HEX}\n"));
    fake.take_calls();

    let err = executor.wait_for_job(&job, Duration::from_secs(60), Arc::new(NoProgress)).await.unwrap_err();
    let Error::JobFailed { job: name, reason, logs } = &err else { panic!("{err}") };
    assert_eq!(name, &job.name);
    assert!(reason.starts_with("BackoffLimitExceeded"), "{reason}");
    assert!(logs.contains("restore-fetch: ERROR: image corrupted") && logs.contains("--- pod"), "{logs}");
    let text = err.to_string();
    assert!(!text.contains(PASSWORD) && !text.contains(SAS) && text.contains("password *** rejected"), "{text}");
    assert!(!text.contains(DATA_KEY_HEX) && text.contains("key ***"), "the data key is redacted too: {text}");
    let expected = vec![
        format!("GET {}", support::job(&job.name)),
        format!("GET {}", support::job(&job.name)),
        format!("GET {}?labelSelector=batch.kubernetes.io/controller-uid=uid-now", core_all("pods")),
        format!("GET {}/log?container=fetch", core("pods", &pod_name)),
        format!("GET {}/log?container=load", core("pods", &pod_name)),
        format!("GET {}", core("secrets", &job.name)),
        format!("GET {}", core("secrets", &i.resource_name())),
    ];
    assert_eq!(fake.take_calls(), expected);
}

#[tokio::test]
async fn deploy_then_ready_then_connection_info_from_the_load_balancer() {
    let (fake, executor) = FakeApi::executor(blobs());
    let i = instance();
    executor.deploy_from_volume(&i).await.unwrap();
    let name = i.resource_name();
    assert_eq!(
        fake.take_calls(),
        vec![
            format!("POST /apis/networking.k8s.io/v1/namespaces/{NS}/networkpolicies"),
            format!("POST /apis/apps/v1/namespaces/{NS}/statefulsets"),
            format!("POST {}", core_all("services"))
        ]
    );
    let service = fake.get(&core("services", &name)).unwrap();
    assert_eq!(service["spec"]["type"], "LoadBalancer");
    assert_eq!(service["metadata"]["annotations"]["service.beta.kubernetes.io/azure-dns-label-name"], "restored-db");

    let pod = json!({"apiVersion": "v1", "kind": "Pod", "metadata": {"name": format!("{name}-0")},
                     "status": {"conditions": [{"type": "Ready", "status": "True"}]}});
    fake.put(&core("pods", &format!("{name}-0")), pod);
    executor.wait_until_ready(&i, Duration::from_secs(10)).await.unwrap();
    assert_eq!(fake.take_calls(), vec![format!("GET {}", core("pods", &format!("{name}-0")))]);

    let mut service = service;
    service["status"] = json!({"loadBalancer": {"ingress": [{"ip": "20.1.2.3"}]}});
    fake.put(&core("services", &name), service);
    let info = executor.connection_info(&i).await.unwrap();
    assert_eq!(info.host, "20.1.2.3");
    assert_eq!(info.dns_name.as_deref(), Some("restored-db.westus2.cloudapp.azure.com"));
    assert_eq!(
        info.external_connection_string().unwrap(),
        "postgresql://postgres@restored-db.westus2.cloudapp.azure.com:5432/postgres?sslmode=require"
    );
}

#[tokio::test(start_paused = true)]
async fn readiness_and_load_balancer_waits_time_out() {
    let (fake, executor) = FakeApi::executor(blobs());
    let i = instance();
    let err = executor.wait_until_ready(&i, Duration::from_secs(20)).await.unwrap_err();
    assert!(matches!(err, Error::Timeout { .. }), "{err}");
    executor.deploy_from_volume(&i).await.unwrap();
    let err = executor.connection_info(&i).await.unwrap_err();
    assert!(err.to_string().contains("LoadBalancer address"), "{err}");
    assert!(fake.take_calls().len() > 3);
}

#[tokio::test]
async fn cluster_ip_connection_info_needs_no_call() {
    let config = toygres_k8s::K8sConfig {
        exposure: toygres_k8s::ServiceExposure::ClusterIp,
        job_service_account: Some("toygres-jobs".into()),
        client_namespaces: vec!["apps".into()],
        ..Default::default()
    };
    let (fake, executor) = FakeApi::executor_with(blobs(), config);
    let i = instance();
    let info = executor.connection_info(&i).await.unwrap();
    assert_eq!(info.host, format!("pg-{}.toygres.svc", i.id));
    assert_eq!(info.dns_name, None);
    assert_eq!(
        info.connection_string(),
        format!("postgresql://postgres@pg-{}.toygres.svc:5432/postgres?sslmode=require", i.id)
    );
    assert!(fake.take_calls().is_empty());
}

#[tokio::test]
async fn delete_instance_removes_everything_it_owns_and_nothing_else() {
    let (fake, executor) = FakeApi::executor(blobs());
    let (a, b) = (instance(), instance());
    for i in [&a, &b] {
        executor.create_volume(i, &password()).await.unwrap();
        executor.start_restore_job(&restore_spec(i)).await.unwrap();
        executor.deploy_from_volume(i).await.unwrap();
    }
    let backup = backup_spec();
    executor.start_backup_job(&backup).await.unwrap();
    fake.take_calls();

    executor.delete_instance(&a).await.unwrap();
    let left = fake.paths();
    assert!(left.iter().all(|p| !p.contains(&a.id.to_string())), "{left:?}");
    assert_eq!(left.iter().filter(|p| p.contains(&b.id.to_string())).count(), 8, "{left:?}");
    assert_eq!(left.iter().filter(|p| p.contains(&backup.image_id.to_string())).count(), 2, "{left:?}");
    let selector = format!("app.kubernetes.io/managed-by=toygres,toygres.io/instance={}", a.id);
    let (pg, restore) = (a.resource_name(), format!("restore-{}", a.id));
    let sts = format!("/apis/apps/v1/namespaces/{NS}/statefulsets");
    let jobs = format!("/apis/batch/v1/namespaces/{NS}/jobs");
    let policies = format!("/apis/networking.k8s.io/v1/namespaces/{NS}/networkpolicies");
    let expected = vec![
        format!("GET {sts}?labelSelector={selector}"),
        format!("DELETE {sts}/{pg}"),
        format!("GET {}?labelSelector={selector}", core_all("services")),
        format!("DELETE {}", core("services", &pg)),
        format!("GET {jobs}?labelSelector={selector}"),
        format!("DELETE {jobs}/{restore}"),
        format!("GET {}?labelSelector={selector}", core_all("secrets")),
        format!("DELETE {}", core("secrets", &pg)),
        format!("DELETE {}", core("secrets", &restore)),
        format!("GET {}?labelSelector={selector}", core_all("configmaps")),
        format!("DELETE {}", core("configmaps", &pg)),
        format!("GET {}?labelSelector={selector}", core_all("persistentvolumeclaims")),
        format!("DELETE {}", core("persistentvolumeclaims", &pg)),
        // The policy goes once no server pod is left.
        format!(
            "GET {}?labelSelector=app.kubernetes.io/managed-by=toygres,toygres.io/component=postgres,toygres.io/instance={}",
            core_all("pods"),
            a.id
        ),
        format!("GET {policies}?labelSelector={selector}"),
        format!("DELETE {policies}/{pg}"),
    ];
    assert_eq!(fake.take_calls(), expected);

    // Deleting again finds nothing and succeeds (seven lists, and the server pods').
    executor.delete_instance(&a).await.unwrap();
    assert_eq!(fake.take_calls().len(), 8);
}

#[tokio::test]
async fn delete_job_removes_the_job_and_its_secret_and_absent_is_success() {
    let (fake, executor) = FakeApi::executor(blobs());
    let spec = backup_spec();
    let job = executor.start_backup_job(&spec).await.unwrap();
    fake.take_calls();
    executor.delete_job(&job).await.unwrap();
    executor.delete_job(&job).await.unwrap();
    let expected =
        vec![format!("DELETE {}", support::job(&job.name)), format!("DELETE {}", core("secrets", &job.name))];
    assert_eq!(fake.take_calls(), [expected.clone(), expected].concat());
    assert!(fake.paths().is_empty());
}
