//! The control plane's Role in `deploy/control-plane.yaml` grants exactly what the executor calls:
//! the executor is driven through every operation against the fake API server (the executor
//! conformance suite: provision, logical backup and restore, the waits, job logs, failures and
//! deletes; a physical backup and a physical restore; a clone backup, its restore, image deletion and listing;
//! instance listing; a stuck job whose events are read; a restore that expands a bound PVC; a
//! restore resumed across the TLS upgrade), every recorded HTTP call is mapped to
//! its RBAC (apiGroup, resource[/subresource], verb) the way the API server authorizes it, and the
//! set is compared with the Role's rules: nothing missing, nothing extra.

#[path = "support/fake_cluster.rs"]
mod fake_cluster;
#[path = "support/harness.rs"]
mod harness;
mod support;

use fake_cluster::{FakeCluster, PG_VERSION};
use harness::{instance, K8sHarness};
use serde::Deserialize;
use serde_json::{json, Value};
use std::collections::BTreeSet;
use std::sync::Arc;
use std::time::Duration;
use support::{backup_spec, data_key, warn, PASSWORD};
use toygres_core::manifest::{archive_object_name, sha256_hex, ManifestObject};
use toygres_core::manifest::{FORMAT_VERSION, GLOBALS_NAME, MANIFEST_NAME};
use toygres_core::testing::executor_suite;
use toygres_core::testing::MockBlobStore;
use toygres_core::{BlobStore, ClusterExecutor, ImageFormat, ImageType, InstanceSpec, JobRef};
use toygres_core::{ImageId, ImageLocation, Manifest, NoProgress, Password, RestoreJobSpec, Transfer};
use toygres_k8s::{K8sConfig, ServiceExposure};

/// (apiGroup, resource or resource/subresource, verb).
type Permission = (String, String, String);

/// The RBAC permission an HTTP call needs, as the API server's request-info resolver derives it:
/// GET of an object is `get`, of a collection `list` (`watch` with `watch=true`), POST `create`,
/// PUT `update`, PATCH `patch`, DELETE of an object `delete`, of a collection `deletecollection`;
/// a path segment after the name is the subresource (`pods/log`).
fn permission(call: &str) -> Permission {
    let (method, rest) = call.split_once(' ').unwrap();
    let (path, query) = rest.split_once('?').unwrap_or((rest, ""));
    let parts: Vec<&str> = path.trim_start_matches('/').split('/').collect();
    let (group, after) = match parts[0] {
        "api" => (String::new(), &parts[2..]),
        "apis" => (parts[1].to_string(), &parts[3..]),
        _ => panic!("{call}: not a resource path"),
    };
    assert_eq!(after[0], "namespaces", "{call}: every call of the executor is namespaced");
    assert_eq!(after[1], support::NS, "{call}: in the executor's namespace");
    let (resource, name, sub) = (after[2], after.get(3), after.get(4));
    let resource = match sub {
        Some(sub) => format!("{resource}/{sub}"),
        None => resource.to_string(),
    };
    let verb = match (method, name.is_some()) {
        ("GET", true) => "get",
        ("GET", false) if query.contains("watch=true") => "watch",
        ("GET", false) => "list",
        ("POST", _) => "create",
        ("PUT", _) => "update",
        ("PATCH", _) => "patch",
        ("DELETE", true) => "delete",
        ("DELETE", false) => "deletecollection",
        _ => panic!("{call}: unexpected method"),
    };
    (group, resource, verb.to_string())
}

#[test]
fn calls_map_to_verbs_as_kubernetes_authorizes_them() {
    let p = |g: &str, r: &str, v: &str| (g.to_string(), r.to_string(), v.to_string());
    for (call, expected) in [
        ("GET /api/v1/namespaces/toygres/pods/x", p("", "pods", "get")),
        ("GET /api/v1/namespaces/toygres/pods?labelSelector=a=b", p("", "pods", "list")),
        ("GET /api/v1/namespaces/toygres/pods?watch=true", p("", "pods", "watch")),
        ("GET /api/v1/namespaces/toygres/pods/x/log?container=c", p("", "pods/log", "get")),
        ("POST /apis/batch/v1/namespaces/toygres/jobs", p("batch", "jobs", "create")),
        ("PATCH /api/v1/namespaces/toygres/secrets/s", p("", "secrets", "patch")),
        ("PUT /apis/apps/v1/namespaces/toygres/statefulsets/s", p("apps", "statefulsets", "update")),
        ("DELETE /apis/apps/v1/namespaces/toygres/statefulsets/s", p("apps", "statefulsets", "delete")),
        ("DELETE /api/v1/namespaces/toygres/secrets", p("", "secrets", "deletecollection")),
        (
            "GET /apis/snapshot.storage.k8s.io/v1/namespaces/toygres/volumesnapshots?labelSelector=x",
            p("snapshot.storage.k8s.io", "volumesnapshots", "list"),
        ),
    ] {
        assert_eq!(permission(call), expected, "{call}");
    }
}

/// Every (apiGroup, resource, verb) the Role named `name` in the YAML documents of `text` grants.
fn granted(text: &str, name: &str) -> BTreeSet<Permission> {
    let role = serde_yaml::Deserializer::from_str(text)
        .map(|doc| Value::deserialize(doc).unwrap())
        .find(|doc| doc["kind"] == "Role" && doc["metadata"]["name"] == name)
        .unwrap_or_else(|| panic!("no Role {name}"));
    let strings = |v: &Value| -> Vec<String> {
        v.as_array().unwrap().iter().map(|s| s.as_str().unwrap().to_string()).collect::<Vec<_>>()
    };
    let mut out = BTreeSet::new();
    for rule in role["rules"].as_array().unwrap() {
        assert!(rule["resourceNames"].is_null() && rule["nonResourceURLs"].is_null(), "unexpected rule {rule}");
        for group in strings(&rule["apiGroups"]) {
            for resource in strings(&rule["resources"]) {
                for verb in strings(&rule["verbs"]) {
                    assert!(!["*"].contains(&verb.as_str()) && resource != "*", "no wildcards: {rule}");
                    assert!(out.insert((group.clone(), resource.clone(), verb)), "granted twice: {rule}");
                }
            }
        }
    }
    out
}

fn config() -> K8sConfig {
    K8sConfig {
        exposure: ServiceExposure::LoadBalancer { region: Some("westeurope".into()) },
        job_service_account: Some("toygres-jobs".into()),
        volume_snapshot_class: Some("csi-azuredisk-vsc".into()),
        load_balancer_source_ranges: vec!["203.0.113.0/24".into()],
        poll_interval: Duration::from_millis(20),
        load_balancer_timeout: Duration::from_secs(10),
        stuck_grace: Duration::from_millis(200),
        ..K8sConfig::default()
    }
}

/// Runs the executor through every operation; returns every call the fake API server served.
async fn every_call() -> Vec<String> {
    let h = K8sHarness::new(config(), "rbac-source").await;
    let (cluster, executor, source) = (h.cluster.clone(), h.executor.clone(), h.source.clone());
    let wait = |job: JobRef| {
        let executor = executor.clone();
        async move { executor.wait_for_job(&job, Duration::from_secs(60), Arc::new(NoProgress)).await }
    };

    // Provision, logical backup and restore, the waits, logs, failures, deletes.
    executor_suite::run_all(&h).await;

    // A physical backup, and a restore of a physical image (a base backup archive).
    let spec = backup_spec(source.clone(), ImageFormat::Physical, Some(data_key()));
    let job = executor.start_backup_job(&spec).await.unwrap();
    cluster.run_job(&job).await;
    wait(job.clone()).await.unwrap();
    executor.delete_job(&job).await.unwrap();
    executor.delete_image(spec.image_id).await.unwrap();
    let (restore, target) = physical_image(&cluster).await;
    executor.create_volume(&target, &Password::new(PASSWORD)).await.unwrap();
    let job = executor.start_restore_job(&restore).await.unwrap();
    // (The restore Job is the same for both formats: its script unpacks or loads per the manifest;
    // the executor's calls differ only in the physical checks before it, none of them API calls.)
    cluster.run_job(&job).await;
    wait(job.clone()).await.unwrap();
    executor.delete_job(&job).await.unwrap();
    executor.delete_instance(&target).await.unwrap();

    // A clone: its snapshot, a restore from it, the listing and deletion of the snapshots.
    let controller = cluster.snapshot_controller(json!({"readyToUse": true, "restoreSize": "20Gi"}));
    let spec = backup_spec(source.clone(), ImageFormat::Clone, Some(data_key()));
    let job = executor.start_backup_job(&spec).await.unwrap();
    cluster.run_job(&job).await;
    wait(job.clone()).await.unwrap();
    controller.abort();
    executor.delete_job(&job).await.unwrap();
    let checksum = sha256_hex(&cluster.blobs().read(&spec.location, MANIFEST_NAME).await.unwrap());
    executor.check_export(spec.image_id).await.unwrap_err(); // a clone is never exported here
    let target = instance("rbac-clone");
    executor.create_volume(&target, &Password::new(PASSWORD)).await.unwrap();
    let restore = RestoreJobSpec {
        image_id: spec.image_id,
        location: spec.location.clone(),
        checksum,
        instance: target.clone(),
        databases: None,
        data_key: spec.data_key.clone(),
        recovery: None,
    };
    let job = executor.start_restore_job(&restore).await.unwrap();
    cluster.run_job(&job).await;
    wait(job.clone()).await.unwrap();
    executor.delete_job(&job).await.unwrap();
    executor.deploy_from_volume(&target).await.unwrap();
    cluster.run_server(&target).await;
    executor.wait_until_ready(&target, Duration::from_secs(10)).await.unwrap();
    executor.connection_info(&target).await.unwrap();
    executor.server_version(&target).await.unwrap();
    assert!(executor.list_images().await.unwrap().contains(&spec.image_id));
    executor.delete_image(spec.image_id).await.unwrap();
    executor.delete_instance(&target).await.unwrap();

    // Reconcile's listing, and a job stuck on an image pull: its pods' events are read.
    executor.list_instances().await.unwrap();
    let spec = backup_spec(source.clone(), ImageFormat::Logical, Some(data_key()));
    let job = executor.start_backup_job(&spec).await.unwrap();
    let pod = format!("{}-stuck", job.name);
    let uid = cluster.api.get(&support::job(&job.name)).unwrap()["metadata"]["uid"].clone();
    let labels = json!({"job-name": job.name, "batch.kubernetes.io/controller-uid": uid});
    cluster.api.put(
        &support::core("pods", &pod),
        json!({"apiVersion": "v1", "kind": "Pod", "metadata": {"name": pod, "namespace": support::NS, "labels": labels},
               "spec": {"containers": [{"name": "upload"}]},
               "status": {"phase": "Pending", "containerStatuses": [{"name": "upload", "ready": false,
                   "state": {"waiting": {"reason": "ImagePullBackOff", "message": "no such image"}}}]}}),
    );
    warn(&cluster.api, "Pod", &pod, "Failed", "Failed to pull image");
    let started = std::time::Instant::now();
    let err = wait(job.clone()).await.unwrap_err().to_string();
    assert!(err.contains("ImagePullBackOff") && started.elapsed() < Duration::from_secs(20), "{err}");
    executor.job_logs(&job).await.unwrap();
    executor.delete_job(&job).await.unwrap();
    executor.delete_instance(&source).await.unwrap();
    cluster.api.take_calls()
}

/// A physical image of the fake source's major in the fake cluster's blob store (its archive and
/// roles stored, the manifest last), and the spec of its restore into a new instance.
async fn physical_image(cluster: &FakeCluster) -> (RestoreJobSpec, InstanceSpec) {
    let image = ImageId::new();
    let location = ImageLocation::for_image(image);
    let blobs = cluster.blobs();
    let mut stored = Vec::new();
    for (name, bytes) in [(GLOBALS_NAME.to_string(), &b"-- roles"[..]), (archive_object_name(0), &b"a tar"[..])] {
        blobs.write(&location, &name, bytes.to_vec().into()).await.unwrap();
        let (size, sha256) = (bytes.len() as u64, sha256_hex(bytes));
        stored.push(ManifestObject { name, size, sha256, raw_size: Some(size) });
    }
    let archive = stored.pop().unwrap();
    let manifest = Manifest {
        format_version: FORMAT_VERSION,
        image_id: image,
        pg_version: PG_VERSION.into(),
        image_type: ImageType::Stock,
        format: ImageFormat::Physical,
        compression: "zstd".into(),
        globals: stored.pop().unwrap(),
        databases: vec![],
        archives: vec![archive],
        created_at: "2026-12-01T00:00:00Z".parse().unwrap(),
        cluster_locale: None,
        dump_version: Some(PG_VERSION.into()),
        clone: None,
        wal: None,
    };
    let bytes = manifest.to_bytes();
    let checksum = sha256_hex(&bytes);
    blobs.write(&location, MANIFEST_NAME, bytes.into()).await.unwrap();
    let target = instance("rbac-physical");
    let spec = RestoreJobSpec {
        image_id: image,
        location,
        checksum,
        instance: target.clone(),
        databases: None,
        data_key: None,
        recovery: None,
    };
    (spec, target)
}

/// A restore of an image larger than the new instance's bound PVC: the PVC is expanded (a
/// merge patch), as `tests/faults.rs` checks in detail.
async fn volume_growth_calls() -> Vec<String> {
    let image = ImageId::new();
    let object = |name: &str, raw: u64| json!({"name": name, "size": 100, "sha256": "sha256:00", "raw_size": raw});
    let manifest = json!({"format_version": 2, "image_id": image.to_string(), "pg_version": "16.4",
        "image_type": "stock", "compression": "zstd", "globals": object("globals.sql.zst", 1000),
        "databases": [{"name": "app", "owner": "app", "object": object("db-0000.dump.zst", 15 << 30)}],
        "created_at": "2026-12-01T00:00:00Z"});
    let bytes = serde_json::to_vec(&manifest).unwrap();
    let checksum = sha256_hex(&bytes);
    let mut blobs = MockBlobStore::new();
    blobs.expect_describe().returning(|| "azure".into());
    blobs.expect_transfer().returning(|_| Transfer::Command(support::command_transfer()));
    blobs.expect_read().returning(move |_, _| Ok(bytes.clone().into()));
    let (fake, executor) = support::FakeApi::executor_with(blobs, config());
    let target = instance("rbac-grown");
    executor.create_volume(&target, &Password::new(PASSWORD)).await.unwrap();
    let path = support::core("persistentvolumeclaims", &target.resource_name());
    fake.modify(&path, |pvc| pvc["status"] = json!({"phase": "Bound"}));
    let spec = RestoreJobSpec {
        image_id: image,
        location: ImageLocation::for_image(image),
        checksum,
        instance: target.clone(),
        databases: None,
        data_key: None,
        recovery: None,
    };
    executor.start_restore_job(&spec).await.unwrap();
    let calls = fake.take_calls();
    assert!(calls.contains(&format!("PATCH {path}")), "the bound PVC is expanded: {calls:?}");
    executor.delete_instance(&target).await.unwrap();
    [calls, fake.take_calls()].concat()
}

/// A restore resumed across the TLS upgrade: the instance's Secret and ConfigMap made by a version
/// without TLS get a certificate (a Secret patch) and this version's configuration (a ConfigMap
/// patch), as `tests/tls_secret.rs` checks in detail.
async fn pre_tls_calls() -> Vec<String> {
    let (fake, executor) = support::FakeApi::executor_with(support::blobs(), config());
    let target = instance("rbac-pre-tls");
    let labels = toygres_k8s::names::instance_labels(target.id, "postgres");
    let meta = json!({"name": target.resource_name(), "namespace": support::NS, "labels": labels});
    let secret = json!({"apiVersion": "v1", "kind": "Secret", "metadata": meta, "data": {"password": "eA=="}});
    fake.put(&support::core("secrets", &target.resource_name()), secret);
    let old = json!({"apiVersion": "v1", "kind": "ConfigMap", "metadata": meta,
                     "data": {"pg_hba.conf": "host all all 0.0.0.0/0 md5\n"}});
    fake.put(&support::core("configmaps", &target.resource_name()), old);
    executor.create_volume(&target, &Password::new(PASSWORD)).await.unwrap();
    let calls = fake.take_calls();
    assert_eq!(calls.iter().filter(|c| c.starts_with("PATCH")).count(), 2, "{calls:?}");
    executor.delete_instance(&target).await.unwrap();
    [calls, fake.take_calls()].concat()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_role_grants_exactly_what_the_executor_calls() {
    let calls = [every_call().await, volume_growth_calls().await, pre_tls_calls().await].concat();
    let used: BTreeSet<Permission> = calls.iter().map(|c| permission(c)).collect();
    let root = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../deploy/20-control-plane.yaml");
    let role = granted(&std::fs::read_to_string(&root).unwrap(), "toygres-control-plane");
    let show = |set: BTreeSet<&Permission>| -> String {
        set.into_iter().map(|(g, r, v)| format!("  apiGroup {g:?} resource {r} verb {v}\n")).collect()
    };
    let missing: BTreeSet<&Permission> = used.difference(&role).collect();
    let extra: BTreeSet<&Permission> = role.difference(&used).collect();
    assert!(
        missing.is_empty() && extra.is_empty(),
        "the Role of deploy/control-plane.yaml differs from the executor's calls ({} calls).\n\
         Called but not granted:\n{}Granted but never called:\n{}",
        calls.len(),
        show(missing),
        show(extra)
    );
}

/// Every document of `deploy/` with its placeholders filled in, as `docs/azure-aks-install.md`
/// has envsubst fill them.
fn deploy_documents() -> Vec<Value> {
    let dir = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../deploy");
    let mut files: Vec<_> = std::fs::read_dir(&dir).unwrap().map(|e| e.unwrap().path()).collect();
    files.sort();
    let mut docs = Vec::new();
    for path in files.into_iter().filter(|p| p.extension().is_some_and(|e| e == "yaml")) {
        let mut text = std::fs::read_to_string(&path).unwrap();
        for (name, value) in [
            ("CONTROL_PLANE_CLIENT_ID", "00000000-0000-0000-0000-00000000000a"),
            ("JOBS_CLIENT_ID", "00000000-0000-0000-0000-00000000000b"),
            ("SERVER_IMAGE", "example.azurecr.io/toygres:1"),
            ("TOOLBOX_IMAGE", "example.azurecr.io/toygres-toolbox:1"),
            ("STORAGE_ACCOUNT", "toygresimages"),
            ("LOCATION", "westeurope"),
            ("CLIENT_CIDR", "203.0.113.0/24"),
            ("POD_CIDR", "10.244.0.0/16"),
            ("SERVICE_CIDR", "10.0.0.0/16"),
        ] {
            text = text.replace(&format!("${{{name}}}"), value);
        }
        assert!(!text.contains("${"), "{}: a placeholder the guide does not fill", path.display());
        docs.extend(serde_yaml::Deserializer::from_str(&text).map(|d| Value::deserialize(d).unwrap()));
    }
    docs
}

/// The folder is one consistent install: everything in namespace `toygres` (namespace first), the
/// executor's configuration parses and validates and names the jobs' service account, the
/// Deployment runs as the account the Role is bound to, and no Secret value is inline.
#[test]
fn the_deploy_folder_fits_together() {
    let docs = deploy_documents();
    assert_eq!(docs[0]["kind"], "Namespace", "applied in name order, the namespace comes first");
    let ns = docs[0]["metadata"]["name"].as_str().unwrap();
    assert_eq!(ns, "toygres");
    for level in ["enforce", "audit", "warn"] {
        assert_eq!(docs[0]["metadata"]["labels"][format!("pod-security.kubernetes.io/{level}")], "restricted");
    }
    let find = |kind: &str, name: &str| -> &Value {
        docs.iter()
            .find(|d| d["kind"] == kind && d["metadata"]["name"] == name)
            .unwrap_or_else(|| panic!("no {kind} {name} in deploy/"))
    };
    for doc in &docs[1..] {
        assert_eq!(doc["metadata"]["namespace"], ns, "{}", doc["metadata"]);
        assert_ne!(doc["kind"], "Secret", "secrets are created by the guide's kubectl command, never in deploy/");
    }
    let config = find("ConfigMap", "toygres-k8s-config")["data"]["k8s-config.json"].as_str().unwrap();
    let config: K8sConfig = serde_json::from_str(config).unwrap();
    config.validate().unwrap();
    assert_eq!(config.namespace, ns);
    assert!(config.volume_snapshot_class.is_some(), "the Role grants volumesnapshots, which only clones use");
    let jobs = config.job_service_account.as_deref().unwrap();
    assert!(find("ServiceAccount", jobs)["metadata"]["annotations"]["azure.workload.identity/client-id"].is_string());

    let deployment = find("Deployment", "toygres");
    let pod = &deployment["spec"]["template"];
    let account = pod["spec"]["serviceAccountName"].as_str().unwrap();
    assert_ne!(account, jobs, "the control plane and the jobs have their own identities");
    let sa = find("ServiceAccount", account);
    assert!(sa["metadata"]["annotations"]["azure.workload.identity/client-id"].is_string());
    assert_eq!(pod["metadata"]["labels"]["azure.workload.identity/use"], "true");
    let binding = find("RoleBinding", "toygres-control-plane");
    assert_eq!(binding["roleRef"]["name"], "toygres-control-plane");
    assert_eq!(binding["subjects"], json!([{"kind": "ServiceAccount", "name": account, "namespace": ns}]));

    let container = &pod["spec"]["containers"][0];
    assert_eq!(container["command"], json!(["toygres", "serve"]));
    let env = container["env"].as_array().unwrap();
    let var = |name: &str| env.iter().find(|e| e["name"] == name).unwrap_or_else(|| panic!("no {name}"));
    assert_eq!(var("TOYGRES_EXECUTOR")["value"], "kubernetes");
    assert_eq!(var("TOYGRES_BLOBS")["value"], "azure");
    for secret in ["TOYGRES_TOKEN", "TOYGRES_CATALOG_URL", "TOYGRES_CATALOG_KEY", "TOYGRES_IMAGE_KEY"] {
        assert!(var(secret)["value"].is_null(), "{secret} is never inline");
        assert_eq!(var(secret)["valueFrom"]["secretKeyRef"]["name"], "toygres-control-plane");
    }
    // The executor's configuration file is the ConfigMap's, mounted where the variable says.
    let file = var("TOYGRES_K8S_CONFIG")["value"].as_str().unwrap();
    let (dir, item) = file.rsplit_once('/').unwrap();
    let mount = container["volumeMounts"].as_array().unwrap().iter().find(|m| m["mountPath"] == dir).unwrap();
    let volume = pod["spec"]["volumes"].as_array().unwrap().iter().find(|v| v["name"] == mount["name"]).unwrap();
    assert_eq!(volume["configMap"]["name"], "toygres-k8s-config");
    assert_eq!(item, "k8s-config.json");
    // The Kubernetes API token kube's in-cluster configuration reads, projected explicitly.
    let api = "/var/run/secrets/kubernetes.io/serviceaccount";
    let mount = container["volumeMounts"].as_array().unwrap().iter().find(|m| m["mountPath"] == api).unwrap();
    let volume = pod["spec"]["volumes"].as_array().unwrap().iter().find(|v| v["name"] == mount["name"]).unwrap();
    let sources = volume["projected"]["sources"].to_string();
    assert!(sources.contains(r#""path":"token""#) && sources.contains("ca.crt") && sources.contains("namespace"));

    let service = find("Service", "toygres");
    assert_eq!(service["spec"]["type"], "ClusterIP");
    assert_eq!(service["spec"]["selector"], deployment["spec"]["selector"]["matchLabels"]);
}
