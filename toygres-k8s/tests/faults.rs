//! What a real cluster does that a happy path never shows, against the fake API server: objects
//! being deleted, pods of an older Job of the same name, stuck pods, evictions, Azure DNS labels.

mod support;

use serde_json::json;
use support::*;
use toygres_core::{BackupJobSpec, ClusterExecutor, ImageId, ImageLocation, InstanceSpec};
use toygres_core::{Password, RestoreJobSpec};

fn instance() -> InstanceSpec {
    support::restored(Some("restored-db"))
}

fn backup_spec() -> BackupJobSpec {
    support::backup_spec(instance(), toygres_core::ImageFormat::Logical, None)
}

/// Defect 7: a 409 on an object that is being deleted is not "ours, already there".
#[tokio::test]
async fn an_object_being_deleted_is_not_taken_for_ours() {
    let (fake, executor) = FakeApi::executor(blobs());
    let spec = backup_spec();
    let name = format!("backup-{}", spec.image_id);
    let labels = json!({"app.kubernetes.io/managed-by": "toygres", "toygres.io/image": spec.image_id.to_string()});
    let terminating = json!({"apiVersion": "batch/v1", "kind": "Job", "metadata": {"name": name, "namespace": NS,
        "labels": labels, "deletionTimestamp": "2026-12-01T08:00:00Z"}});
    fake.put(&job(&name), terminating);
    let err = executor.start_backup_job(&spec).await.unwrap_err().to_string();
    assert!(err.contains("is still being deleted; retry"), "{err}");
    // Once it is gone, the same call creates it.
    fake.remove(&job(&name));
    executor.start_backup_job(&spec).await.unwrap();
    assert!(fake.get(&job(&name)).unwrap()["metadata"]["deletionTimestamp"].is_null());
}

/// Defect 11: the logs of a job are its own pods' (by the Job's uid), not those of an older Job
/// of the same name whose pods are still being removed.
#[tokio::test]
async fn logs_come_from_the_pods_of_this_job_only() {
    let (fake, executor) = FakeApi::executor(blobs());
    let spec = backup_spec();
    let job_ref = executor.start_backup_job(&spec).await.unwrap();
    let uid = fake.get(&job(&job_ref.name)).unwrap()["metadata"]["uid"].as_str().unwrap().to_string();
    for (pod, owner, text) in [("old", "uid-of-the-deleted-job", "OLD RUN\n"), ("new", uid.as_str(), "THIS RUN\n")] {
        let name = format!("{}-{pod}", job_ref.name);
        let labels = json!({"job-name": job_ref.name, "batch.kubernetes.io/controller-uid": owner});
        fake.put(
            &core("pods", &name),
            json!({"apiVersion": "v1", "kind": "Pod", "metadata": {"name": name, "namespace": NS, "labels": labels},
                   "spec": {"containers": [{"name": "backup"}]}}),
        );
        fake.set_log(&name, "backup", text);
    }
    let logs = executor.job_logs(&job_ref).await.unwrap();
    assert!(logs.contains("THIS RUN") && !logs.contains("OLD RUN"), "{logs}");
}

/// Defect 3: job pods never carry the control plane's identity variables (the webhook would keep
/// them and the job's own federated identity would be ignored), and workload identity without a
/// job service account is refused.
#[tokio::test]
async fn jobs_get_their_identity_from_their_own_service_account() {
    let mut blobs = toygres_core::testing::MockBlobStore::new();
    blobs.expect_describe().returning(|| "azure".into());
    blobs.expect_transfer().returning(|_| {
        let mut c = command_transfer();
        c.env.push(("AZURE_CLIENT_ID".into(), "control-plane-client".into()));
        c.env.push(("AZURE_TENANT_ID".into(), "control-plane-tenant".into()));
        c.env.push(("AZURE_FEDERATED_TOKEN_FILE".into(), "/var/run/secrets/azure/tokens/x".into()));
        c.env.push(("AZCOPY_AUTO_LOGIN_TYPE".into(), "WORKLOAD".into()));
        toygres_core::Transfer::Command(c)
    });
    blobs.expect_read().returning(|_, _| Err(toygres_core::Error::Corrupt("no image".into())));
    let (fake, executor) = FakeApi::executor(blobs);
    let i = instance();
    let backup = executor.start_backup_job(&backup_spec()).await.unwrap();
    let restore = executor.start_restore_job(&restore_spec(&i)).await.unwrap();
    for name in [backup.name, restore.name] {
        let stored = fake.get(&job(&name)).unwrap().to_string();
        assert!(!stored.contains("AZURE_CLIENT_ID") && !stored.contains("control-plane"), "{stored}");
        assert!(!stored.contains("AZURE_FEDERATED_TOKEN_FILE"), "{stored}");
        assert!(stored.contains("AZCOPY_AUTO_LOGIN_TYPE") && stored.contains(r#""serviceAccountName":"toygres-jobs""#));
    }
    let no_account = toygres_k8s::K8sConfig {
        job_service_account: None,
        load_balancer_source_ranges: vec!["203.0.113.0/24".into()],
        ..toygres_k8s::K8sConfig::default()
    };
    let err = no_account.validate().unwrap_err();
    assert!(matches!(&err, toygres_core::Error::InvalidRequest { field: "job_service_account", .. }), "{err}");
    let sas_only = toygres_k8s::K8sConfig { workload_identity: false, ..no_account };
    sas_only.validate().unwrap();
}

/// A running Job (with a uid) and one of its pods with `status`.
fn running_job_with_pod(fake: &FakeApi, name: &str, pod_status: serde_json::Value) -> String {
    let labels = json!({"app.kubernetes.io/managed-by": "toygres"});
    fake.put(
        &job(name),
        json!({"apiVersion": "batch/v1", "kind": "Job", "metadata": {"name": name, "namespace": NS, "uid": "uid-1",
               "labels": labels}, "status": {"active": 1}}),
    );
    let pod = format!("{name}-abcde");
    if !pod_status.is_null() {
        let pod_labels = json!({"job-name": name, "batch.kubernetes.io/controller-uid": "uid-1"});
        fake.put(
            &core("pods", &pod),
            json!({"apiVersion": "v1", "kind": "Pod", "metadata": {"name": pod, "namespace": NS, "labels": pod_labels},
                   "spec": {"containers": [{"name": "upload"}]}, "status": pod_status}),
        );
    }
    pod
}

fn waiting(reason: &str, message: &str) -> serde_json::Value {
    json!({"phase": "Pending", "containerStatuses": [{"name": "upload", "image": "x", "imageID": "", "ready": false,
           "restartCount": 0, "state": {"waiting": {"reason": reason, "message": message}}}]})
}

/// A stuck-pod case: name, pod status, Warning event (kind, reason), expected text.
type Case = (&'static str, serde_json::Value, Option<(&'static str, &'static str)>, &'static str);

/// Defect 5: stuck pods fail the Job with their reason soon after the grace period (a pod refused
/// at admission at once), not at the end of a two-hour timeout.
#[tokio::test(start_paused = true)]
async fn stuck_job_pods_fail_fast_with_their_reason() {
    let cases: Vec<Case> = vec![
        ("pull", waiting("ImagePullBackOff", "Back-off pulling image \"toolbox:nope\""), None, "ImagePullBackOff"),
        ("secret", waiting("CreateContainerConfigError", "secret \"x\" not found"), None, "secret \"x\" not found"),
        (
            "sched",
            json!({"phase": "Pending", "conditions": [{"type": "PodScheduled", "status": "False",
                   "reason": "Unschedulable", "message": "0/3 nodes are available: 3 Insufficient memory."}]}),
            None,
            "Insufficient memory",
        ),
        ("mount", json!({"phase": "Pending"}), Some(("Pod", "FailedMount")), "MountVolume.SetUp failed"),
        ("admission", serde_json::Value::Null, Some(("Job", "FailedCreate")), "violates PodSecurity"),
    ];
    for (case, status, event, expected) in cases {
        let (fake, executor) = FakeApi::executor(blobs());
        let job_ref = toygres_core::JobRef::backup(ImageId::new());
        let pod = running_job_with_pod(&fake, &job_ref.name, status);
        if let Some((kind, reason)) = event {
            let (object, message) = match kind {
                "Pod" => (pod.clone(), "MountVolume.SetUp failed for volume \"data\": disk not found"),
                _ => (
                    job_ref.name.clone(),
                    "Error creating: pods \"x\" is forbidden: violates PodSecurity \"restricted:latest\"",
                ),
            };
            warn(&fake, kind, &object, reason, message);
        }
        let start = tokio::time::Instant::now();
        let progress = std::sync::Arc::new(toygres_core::NoProgress);
        let err = executor.wait_for_job(&job_ref, std::time::Duration::from_secs(7200), progress).await.unwrap_err();
        let toygres_core::Error::JobFailed { reason, .. } = &err else { panic!("{case}: {err}") };
        assert!(reason.contains(expected), "{case}: {reason}");
        // A refusal at admission fails at once (tests/admission.rs), the others after the grace.
        let (prefix, within) = match case {
            "admission" => ("refused at admission", 5),
            _ => ("stuck for", 200),
        };
        assert!(reason.starts_with(prefix), "{case}: {reason}");
        assert!(start.elapsed() < std::time::Duration::from_secs(within), "{case}: {:?}", start.elapsed());
    }
}

/// Defect 5: a Job that times out says what its pod was doing and what it logged last.
#[tokio::test(start_paused = true)]
async fn a_job_timeout_carries_the_pod_status_and_its_last_log_lines() {
    let (fake, executor) = FakeApi::executor(blobs());
    let job_ref = toygres_core::JobRef::backup(ImageId::new());
    let pod = running_job_with_pod(&fake, &job_ref.name, json!({"phase": "Running"}));
    fake.set_log(&pod, "upload", "backup: dumping database \"big\" into db-0003.dump.zst\n");
    let progress = std::sync::Arc::new(toygres_core::NoProgress);
    let err = executor.wait_for_job(&job_ref, std::time::Duration::from_secs(60), progress).await.unwrap_err();
    assert!(matches!(err, toygres_core::Error::Timeout { .. }), "{err}");
    let text = err.to_string();
    assert!(text.contains("last seen: running") && text.contains("dumping database \"big\""), "{text}");
}

/// Defect 5: a crash-looping server fails `wait_until_ready` with its previous run's log.
#[tokio::test(start_paused = true)]
async fn a_crash_looping_server_fails_readiness_with_its_log() {
    let (fake, executor) = FakeApi::executor(blobs());
    let i = instance();
    let pod = format!("{}-0", i.resource_name());
    let status = json!({"phase": "Running", "containerStatuses": [{"name": "postgres", "image": "x", "imageID": "",
        "ready": false, "restartCount": 5, "state": {"waiting": {"reason": "CrashLoopBackOff",
        "message": "back-off 5m0s restarting failed container"}}}]});
    fake.put(
        &core("pods", &pod),
        json!({"apiVersion": "v1", "kind": "Pod", "metadata": {"name": pod}, "status": status}),
    );
    fake.set_log(
        &pod,
        "postgres",
        "FATAL:  data directory \"/var/lib/postgresql/data/pgdata\" has invalid permissions\n",
    );
    let start = tokio::time::Instant::now();
    let err = executor.wait_until_ready(&i, std::time::Duration::from_secs(1800)).await.unwrap_err().to_string();
    assert!(err.contains("CrashLoopBackOff") && err.contains("has invalid permissions"), "{err}");
    assert!(start.elapsed() < std::time::Duration::from_secs(200));
}

/// Defect 9: Azure's DNS label rules are checked before any call, a taken label fails with the
/// cloud provider's event instead of a timeout, and LoadBalancers can be limited to source ranges.
#[tokio::test(start_paused = true)]
async fn azure_dns_labels_are_checked_and_a_taken_one_is_reported() {
    let (fake, executor) = FakeApi::executor(blobs());
    for bad in ["1restored", "ab", "restored-"] {
        let i = InstanceSpec { dns_label: Some(bad.into()), ..instance() };
        let err = executor.deploy_from_volume(&i).await.unwrap_err();
        assert!(matches!(&err, toygres_core::Error::InvalidRequest { field: "dns_label", .. }), "{bad}: {err}");
    }
    assert!(fake.take_calls().is_empty());

    let i = instance();
    executor.deploy_from_volume(&i).await.unwrap();
    let message = "Error syncing load balancer: ... Code=\"DnsRecordInUse\" Message=\"DNS record \
                   restored-db.westus2.cloudapp.azure.com is already used by another public IP.\"";
    warn(&fake, "Service", &i.resource_name(), "SyncLoadBalancerFailed", message);
    let start = tokio::time::Instant::now();
    let err = executor.connection_info(&i).await.unwrap_err().to_string();
    assert!(err.contains("DnsRecordInUse") && err.contains("choose another dns_label"), "{err}");
    assert!(start.elapsed() < std::time::Duration::from_secs(10));

    let config = toygres_k8s::K8sConfig {
        load_balancer_source_ranges: vec!["203.0.113.0/24".into()],
        job_service_account: Some("jobs".into()),
        ..Default::default()
    };
    let service = toygres_k8s::Manifests::new(&config).service(&i).unwrap();
    assert_eq!(service.spec.unwrap().load_balancer_source_ranges, Some(vec!["203.0.113.0/24".to_string()]));
    let bad = toygres_k8s::K8sConfig { load_balancer_source_ranges: vec!["203.0.113.0".into()], ..config };
    assert!(bad.validate().is_err());
}

/// Byte progress on Kubernetes: `wait_for_job` turns the progress lines of the container that moves
/// bytes into `Bytes` events, each count once.
#[tokio::test(start_paused = true)]
async fn wait_for_job_reports_byte_progress_from_the_job_log() {
    let (fake, executor) = FakeApi::executor(blobs());
    let i = instance();
    let job_ref = toygres_core::JobRef::restore(i.id);
    let labels = json!({"app.kubernetes.io/managed-by": "toygres"});
    fake.put(
        &job(&job_ref.name),
        json!({"apiVersion": "batch/v1", "kind": "Job", "metadata": {"name": job_ref.name, "namespace": NS,
               "uid": "uid-1", "labels": labels}, "status": {"active": 1}}),
    );
    let pod = format!("{}-abcde", job_ref.name);
    let pod_labels = json!({"batch.kubernetes.io/controller-uid": "uid-1"});
    fake.put(
        &core("pods", &pod),
        json!({"apiVersion": "v1", "kind": "Pod", "metadata": {"name": pod, "namespace": NS, "labels": pod_labels},
               "spec": {"containers": [{"name": "fetch"}, {"name": "load"}]}, "status": {"phase": "Running"}}),
    );
    fake.set_log(&pod, "fetch", "09:00:01 restore-fetch: toygres-progress: 100 400\n");
    let later = fake.clone();
    let (job_path, job_name, pod_name) = (job(&job_ref.name), job_ref.name.clone(), pod.clone());
    tokio::spawn(async move {
        tokio::time::sleep(std::time::Duration::from_secs(5)).await;
        later.set_log(&pod_name, "fetch", "x: toygres-progress: 100 400\nx: streaming\nx: toygres-progress: 400 400\n");
        tokio::time::sleep(std::time::Duration::from_secs(5)).await;
        let done = json!({"apiVersion": "batch/v1", "kind": "Job", "metadata": {"name": job_name, "namespace": NS,
               "uid": "uid-1"}, "status": {"succeeded": 1, "conditions": [{"type": "Complete", "status": "True"}]}});
        later.put(&job_path, done);
    });
    let events = std::sync::Arc::new(std::sync::Mutex::new(Vec::new()));
    let seen = events.clone();
    let sink = std::sync::Arc::new(move |e: &toygres_core::ProgressEvent| seen.lock().unwrap().push(e.clone()));
    executor.wait_for_job(&job_ref, std::time::Duration::from_secs(60), sink).await.unwrap();
    let bytes: Vec<(u64, Option<u64>)> = events
        .lock()
        .unwrap()
        .iter()
        .map(|e| match (&e.kind, e.phase, e.subject) {
            (toygres_core::EventKind::Bytes { done, total }, toygres_core::Phase::WaitRestoreJob, s)
                if s == job_ref.subject =>
            {
                (*done, *total)
            }
            other => panic!("{other:?}"),
        })
        .collect();
    assert_eq!(bytes, [(100, Some(400)), (400, Some(400))]);
}

/// Defect 4: the restore's PVC is sized from the image (twice its raw dumps plus 1 GiB) when that is
/// more than `volume_size`: an unbound PVC is replaced, a bound one expanded. The bound one's image
/// is encrypted: its sealed manifest is opened with the spec's data key.
#[tokio::test(start_paused = true)]
async fn the_volume_is_sized_from_the_image() {
    for bound in [false, true] {
        let i = instance();
        let image = ImageId::new();
        let gib = 1u64 << 30;
        let object = |name: &str, raw: u64| json!({"name": name, "size": 100, "sha256": "sha256:00", "raw_size": raw});
        let manifest = json!({"format_version": 2, "image_id": image.to_string(), "pg_version": "16.4",
            "image_type": "stock", "compression": "zstd", "globals": object("globals.sql.zst", 1000),
            "databases": [{"name": "app", "owner": "app", "object": object("db-0000.dump.zst", 15 * gib)}],
            "created_at": "2026-12-01T00:00:00Z"});
        let plain = serde_json::to_vec(&manifest).unwrap();
        let key = bound.then(data_key);
        let bytes = match &key {
            Some(key) => toygres_core::envelope::object::seal_all(key, image, "manifest.json", &plain),
            None => plain,
        };
        let checksum = toygres_core::manifest::sha256_hex(&bytes);
        let mut blobs = toygres_core::testing::MockBlobStore::new();
        blobs.expect_describe().returning(|| "azure".into());
        blobs.expect_transfer().returning(|_| toygres_core::Transfer::Command(command_transfer()));
        blobs.expect_read().returning(move |_, _| Ok(bytes.clone().into()));
        let (fake, executor) = FakeApi::executor(blobs);
        executor.create_volume(&i, &Password::new(PASSWORD)).await.unwrap();
        let path = core("persistentvolumeclaims", &i.resource_name());
        if bound {
            let mut pvc = fake.get(&path).unwrap();
            pvc["status"] = json!({"phase": "Bound"});
            fake.put(&path, pvc);
        }
        fake.take_calls();
        let spec = RestoreJobSpec {
            image_id: image,
            location: ImageLocation::for_image(image),
            checksum,
            instance: i,
            databases: None,
            data_key: key,
            recovery: None,
        };
        executor.start_restore_job(&spec).await.unwrap();
        let calls = fake.take_calls();
        let stored = fake.get(&path).unwrap();
        assert_eq!(stored["spec"]["resources"]["requests"]["storage"], "32Gi", "bound={bound}: {calls:?}");
        let expected = if bound { format!("PATCH {path}") } else { format!("DELETE {path}") };
        assert!(calls.contains(&expected), "bound={bound}: {calls:?}");
    }
}
