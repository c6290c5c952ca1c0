//! Every pod toygres renders meets Pod Security "restricted" and the hardening rules
//! (`support/pod_security.rs`): the golden manifests, the control plane's Deployment of the
//! workspace's `deploy/` folder, and the manifests rendered for the default and for a customised
//! configuration. The checker itself is tested on pods that break each rule.
//! Also: the processes inside the containers are sized from the containers' limits.

#[path = "support/pod_security.rs"]
mod pod_security;
mod support;

use pod_security::{check_manifest, check_pod, pod_templates, Violation};
use serde_json::{json, Value};
use support::{command_transfer, PASSWORD};
use toygres_core::{
    BackupJobSpec, ImageFormat, ImageId, ImageLocation, ImageType, InstanceSpec, Password, RestoreJobSpec, Transfer,
};
use toygres_k8s::clone::SnapshotSource;
use toygres_k8s::transfer::job_transfer;
use toygres_k8s::{ContainerResources, K8sConfig, Manifests, Resources};

fn report(violations: &[Violation]) -> String {
    violations.iter().map(|v| format!("  {v}\n")).collect()
}

fn instance(image_type: ImageType) -> InstanceSpec {
    InstanceSpec {
        id: "6f1c2a4e-0d3b-4c55-9a8e-1b2c3d4e5f60".parse().unwrap(),
        name: "restored".into(),
        image_type,
        pg_version: Some("16.4".into()),
        dns_label: None,
    }
}

/// Every manifest with a pod template `config` renders, as JSON.
fn rendered(config: &K8sConfig) -> Vec<(String, Value)> {
    let m = Manifests::new(config);
    let image: ImageId = "0a1b2c3d-4e5f-4a6b-8c7d-9e0f1a2b3c4d".parse().unwrap();
    let transfer = || job_transfer(Transfer::Command(command_transfer()), "job", "azure").unwrap();
    let backup = |format, data_key| BackupJobSpec {
        image_id: image,
        source: instance(ImageType::Stock),
        source_password: Password::new(PASSWORD),
        location: ImageLocation::for_image(image),
        image_type: ImageType::Stock,
        format,
        data_key,
        from_image: None,
    };
    let key = || Some(toygres_core::envelope::DataKey::from_hex(&"5e".repeat(32)).unwrap());
    let restore = |data_key| RestoreJobSpec {
        image_id: image,
        location: ImageLocation::for_image(image),
        checksum: format!("sha256:{}", "0f".repeat(32)),
        instance: instance(ImageType::PgDurable),
        databases: None,
        data_key,
        recovery: None,
    };
    let source = SnapshotSource { pvc: "pg-source".into(), size: 10 << 30 };
    let v = |value: &dyn erased::Json| value.json();
    vec![
        ("statefulset", v(&m.stateful_set(&instance(ImageType::PgDurable)).unwrap())),
        ("backup-job", v(&m.backup_job(&backup(ImageFormat::Logical, None), &transfer()).unwrap())),
        ("backup-job-physical", v(&m.backup_job(&backup(ImageFormat::Physical, None), &transfer()).unwrap())),
        ("backup-job-encrypted", v(&m.backup_job(&backup(ImageFormat::Logical, key()), &transfer()).unwrap())),
        ("backup-job-clone", v(&m.clone_backup_job(&backup(ImageFormat::Clone, None), &transfer(), &source).unwrap())),
        ("restore-job", v(&m.restore_job(&restore(None), &transfer()).unwrap())),
        ("restore-job-encrypted", v(&m.restore_job(&restore(key()), &transfer()).unwrap())),
        ("restore-job-clone", v(&m.clone_restore_job(&restore(None), "16").unwrap())),
        ("probe-job", v(&m.probe_job(&probe_target()).unwrap())),
    ]
    .into_iter()
    .map(|(name, value)| (name.to_string(), value))
    .collect()
}

/// Where the in-cluster connection test's probe connects.
fn probe_target() -> toygres_core::ConnectionInfo {
    toygres_core::ConnectionInfo {
        host: "pg-6f1c2a4e-0d3b-4c55-9a8e-1b2c3d4e5f60.toygres.svc".into(),
        port: 5432,
        user: "postgres".into(),
        database: "postgres".into(),
        dns_name: None,
        ssl_mode: Some("require".into()),
    }
}

mod erased {
    /// A typed manifest as JSON.
    pub trait Json {
        fn json(&self) -> serde_json::Value;
    }
    impl<T: serde::Serialize> Json for T {
        fn json(&self) -> serde_json::Value {
            serde_json::to_value(self).unwrap()
        }
    }
}

fn default_config() -> K8sConfig {
    K8sConfig {
        job_service_account: Some("toygres-jobs".into()),
        volume_snapshot_class: Some("csi-azuredisk-vsc".into()),
        load_balancer_source_ranges: vec!["203.0.113.0/24".into()],
        ..K8sConfig::default()
    }
}

fn custom_config() -> K8sConfig {
    let sized = |cpu: &str, limit: &str, memory: &str| ContainerResources {
        cpu: cpu.into(),
        cpu_limit: Some(limit.into()),
        memory: memory.into(),
        ephemeral_storage: "1Gi".into(),
        ephemeral_storage_limit: "4Gi".into(),
    };
    K8sConfig {
        workload_identity: false,
        job_service_account: None,
        postgres_uid: 1001,
        resources: Resources {
            server: sized("2", "4", "8Gi"),
            job_postgres: sized("1", "2", "2Gi"),
            job_toolbox: sized("500m", "4", "4Gi"),
        },
        ..default_config()
    }
}

/// Every document of the YAML files of the workspace's `deploy/` folder, placeholders
/// (`${NAME}`) left as they are (they are strings in the YAML).
fn deploy_manifests() -> Vec<(String, Value)> {
    let dir = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../deploy");
    let mut files: Vec<_> = std::fs::read_dir(&dir).unwrap().map(|e| e.unwrap().path()).collect();
    files.sort();
    let mut out = Vec::new();
    for path in files.into_iter().filter(|p| p.extension().is_some_and(|e| e == "yaml")) {
        let text = std::fs::read_to_string(&path).unwrap();
        for (i, doc) in serde_yaml::Deserializer::from_str(&text).enumerate() {
            let doc: Value = serde::Deserialize::deserialize(doc).unwrap();
            let name = path.file_name().unwrap().to_string_lossy().into_owned();
            out.push((format!("deploy/{name}#{i}({})", doc["kind"].as_str().unwrap_or("?")), doc));
        }
    }
    out
}

/// The "Must show" test: the golden files, the `deploy/` folder and both configurations'
/// manifests have no violation.
#[test]
fn every_rendered_pod_is_restricted_and_hardened() {
    let golden = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/golden");
    let mut manifests: Vec<(String, Value)> = std::fs::read_dir(&golden)
        .unwrap()
        .map(|entry| entry.unwrap().path())
        .filter(|path| path.extension().is_some_and(|e| e == "yaml"))
        .map(|path| {
            let doc: Value = serde_yaml::from_str(&std::fs::read_to_string(&path).unwrap()).unwrap();
            (format!("golden/{}", path.file_name().unwrap().to_string_lossy()), doc)
        })
        .collect();
    let golden_pods: usize = manifests.iter().map(|(_, doc)| pod_templates(doc).len()).sum();
    assert_eq!(golden_pods, 8, "the StatefulSet, four backup and three restore Jobs");
    let deploy = deploy_manifests();
    let deploy_pods: usize = deploy.iter().map(|(_, doc)| pod_templates(doc).len()).sum();
    assert_eq!(deploy_pods, 1, "the control plane's Deployment");
    manifests.extend(deploy);
    for (label, config) in [("default", default_config()), ("custom", custom_config())] {
        config.validate().unwrap();
        manifests.extend(rendered(&config).into_iter().map(|(name, doc)| (format!("{label}/{name}"), doc)));
    }
    let violations: Vec<Violation> = manifests.iter().flat_map(|(origin, doc)| check_manifest(origin, doc)).collect();
    assert!(violations.is_empty(), "{} violation(s):\n{}", violations.len(), report(&violations));
}

/// A pod that passes every rule; each case below breaks one.
fn good_pod() -> Value {
    let container = |name: &str| {
        json!({"name": name, "image": "x",
            "securityContext": {"allowPrivilegeEscalation": false, "capabilities": {"drop": ["ALL"]},
                                "readOnlyRootFilesystem": true},
            "resources": {"requests": {"cpu": "250m", "memory": "1Gi", "ephemeral-storage": "256Mi"},
                          "limits": {"memory": "1Gi", "ephemeral-storage": "1Gi"}}})
    };
    json!({"apiVersion": "v1", "kind": "Pod", "metadata": {"name": "p"}, "spec": {
        "automountServiceAccountToken": false,
        "securityContext": {"runAsNonRoot": true, "runAsUser": 999, "seccompProfile": {"type": "RuntimeDefault"}},
        "containers": [container("a")], "initContainers": [container("i")],
        "volumes": [{"name": "v", "emptyDir": {}}, {"name": "pvc", "persistentVolumeClaim": {"claimName": "c"}}]}})
}

/// Sets `pointer` (slash-separated, creating objects on the way) in `doc` to `value`.
fn set(doc: &mut Value, pointer: &str, value: Value) {
    let mut at = doc;
    let keys: Vec<&str> = pointer.trim_start_matches('/').split('/').collect();
    for key in &keys[..keys.len() - 1] {
        at = match key.parse::<usize>() {
            Ok(i) => &mut at[i],
            Err(_) => at.as_object_mut().unwrap().entry(key.replace("~1", "/")).or_insert_with(|| json!({})),
        };
    }
    let last = keys[keys.len() - 1];
    match last.parse::<usize>() {
        Ok(i) => at[i] = value,
        Err(_) => at[last.replace("~1", "/")] = value,
    }
}

fn remove(doc: &mut Value, pointer: &str) {
    let (parent, key) = pointer.rsplit_once('/').unwrap();
    doc.pointer_mut(parent).unwrap().as_object_mut().unwrap().remove(key);
}

#[test]
fn the_checker_passes_a_good_pod_and_finds_its_templates() {
    let pod = good_pod();
    assert_eq!(check_manifest("pod", &pod), vec![]);
    for (kind, wrap, pointer, prefix) in [
        ("Job", json!({"spec": {"template": {"spec": pod["spec"]}}}), "/spec/template/spec", "spec.template.spec"),
        (
            "StatefulSet",
            json!({"spec": {"template": {"spec": pod["spec"]}}}),
            "/spec/template/spec",
            "spec.template.spec",
        ),
        (
            "CronJob",
            json!({"spec": {"jobTemplate": {"spec": {"template": {"spec": pod["spec"]}}}}}),
            "/spec/jobTemplate/spec/template/spec",
            "spec.jobTemplate.spec.template.spec",
        ),
    ] {
        let mut doc = wrap;
        doc["kind"] = json!(kind);
        assert_eq!(pod_templates(&doc).len(), 1, "{kind}");
        assert_eq!(check_manifest(kind, &doc), vec![], "{kind}");
        set(&mut doc, &format!("{pointer}/hostPID"), json!(true));
        let found = check_manifest(kind, &doc);
        assert_eq!(found.len(), 1, "{kind}: {}", report(&found));
        assert_eq!(found[0].path, format!("{kind}: {prefix}.hostPID"));
    }
    assert!(pod_templates(&json!({"kind": "Service", "spec": {}})).is_empty());
}

/// Each documented control, and each hardening rule, reported with its path when broken.
#[test]
fn the_checker_reports_every_rule_it_checks() {
    // "C/…": in the first container.
    let cases: Vec<(&str, Value, &str, &str)> = vec![
        // Baseline.
        ("/spec/hostNetwork", json!(true), "host namespaces", "spec.hostNetwork"),
        ("/spec/hostPID", json!(true), "host namespaces", "spec.hostPID"),
        ("/spec/hostIPC", json!(true), "host namespaces", "spec.hostIPC"),
        ("/spec/securityContext/windowsOptions/hostProcess", json!(true), "hostprocess", "windowsOptions"),
        ("C/securityContext/privileged", json!(true), "privileged containers", "containers[0](a)"),
        ("C/securityContext/capabilities/add", json!(["SYS_ADMIN"]), "capabilities", "add[0]"),
        ("C/securityContext/capabilities/add", json!(["CHOWN"]), "capabilities", "add[0]"),
        ("/spec/volumes/0", json!({"name": "h", "hostPath": {"path": "/"}}), "hostpath volumes", "volumes[0](h)"),
        ("C/ports", json!([{"containerPort": 80, "hostPort": 80}]), "host ports", "hostPort"),
        (
            "C/readinessProbe",
            json!({"httpGet": {"host": "10.0.0.1", "port": 80}}),
            "host probes / lifecycle hooks",
            "readinessProbe.httpGet.host",
        ),
        (
            "C/lifecycle/preStop",
            json!({"tcpSocket": {"host": "x", "port": 1}}),
            "host probes / lifecycle hooks",
            "lifecycle.preStop.tcpSocket.host",
        ),
        ("/spec/securityContext/appArmorProfile/type", json!("Unconfined"), "apparmor", "appArmorProfile"),
        (
            "/metadata/annotations/container.apparmor.security.beta.kubernetes.io~1a",
            json!("unconfined"),
            "apparmor",
            "annotations",
        ),
        ("/spec/securityContext/seLinuxOptions/type", json!("spc_t"), "selinux", "seLinuxOptions.type"),
        ("C/securityContext/seLinuxOptions/user", json!("root"), "selinux", "seLinuxOptions.user"),
        ("C/securityContext/procMount", json!("Unmasked"), "/proc mount type", "procMount"),
        ("/spec/securityContext/sysctls", json!([{"name": "kernel.msgmax", "value": "1"}]), "sysctls", "sysctls[0]"),
        // Restricted.
        ("/spec/volumes/0", json!({"name": "n", "nfs": {"server": "s", "path": "/"}}), "volume types", "volumes[0](n)"),
        ("C/securityContext/allowPrivilegeEscalation", json!(true), "privilege escalation", "allowPrivilegeEscalation"),
        ("C/securityContext/runAsNonRoot", json!(false), "running as non-root", "containers[0](a)"),
        ("/spec/securityContext/runAsNonRoot", json!(false), "running as non-root", "initContainers[0](i)"),
        ("/spec/securityContext/runAsUser", json!(0), "running as non-root user", "securityContext.runAsUser"),
        ("C/securityContext/runAsUser", json!(0), "running as non-root user", "containers[0](a)"),
        ("/spec/securityContext/seccompProfile/type", json!("Unconfined"), "seccomp", "spec.securityContext"),
        ("C/securityContext/seccompProfile/type", json!("Unconfined"), "seccomp", "containers[0](a)"),
        ("C/securityContext/capabilities/drop", json!(["NET_RAW"]), "capabilities", "drop"),
        // Hardening.
        ("/spec/automountServiceAccountToken", json!(true), "service-account token", "automountServiceAccountToken"),
        ("C/securityContext/readOnlyRootFilesystem", json!(false), "read-only root filesystem", "(a)"),
        ("C/resources/limits/memory", json!("2Gi"), "resources", "limits.memory"),
        ("C/resources/requests/cpu", json!(""), "resources", "requests.cpu"),
    ];
    for (pointer, value, rule, path) in cases {
        let pointer = pointer.replace("C/", "/spec/containers/0/");
        let mut pod = good_pod();
        set(&mut pod, &pointer, value.clone());
        let found = check_manifest("pod", &pod);
        assert!(
            found.iter().any(|v| v.rule == rule && v.path.contains(path)),
            "{pointer} = {value}: expected [{rule}] at …{path}…, got:\n{}",
            report(&found)
        );
    }
    // Unset where the profile requires a value.
    for (pointer, rule) in [
        ("/spec/automountServiceAccountToken", "service-account token"),
        ("/spec/securityContext/seccompProfile", "seccomp"),
        ("/spec/securityContext/runAsNonRoot", "running as non-root"),
        ("/spec/containers/0/securityContext/allowPrivilegeEscalation", "privilege escalation"),
        ("/spec/containers/0/securityContext/capabilities", "capabilities"),
        ("/spec/containers/0/resources/limits", "resources"),
        ("/spec/initContainers/0/resources/requests", "resources"),
    ] {
        let mut pod = good_pod();
        remove(&mut pod, pointer);
        let found = check_manifest("pod", &pod);
        assert!(found.iter().any(|v| v.rule == rule), "without {pointer}: expected [{rule}], got:\n{}", report(&found));
    }
    // Container-level settings stand in for pod-level ones, as the documentation allows.
    let mut pod = good_pod();
    remove(&mut pod, "/spec/securityContext/seccompProfile");
    remove(&mut pod, "/spec/securityContext/runAsNonRoot");
    for c in ["/spec/containers/0", "/spec/initContainers/0"] {
        set(&mut pod, &format!("{c}/securityContext/seccompProfile/type"), json!("Localhost"));
        set(&mut pod, &format!("{c}/securityContext/runAsNonRoot"), json!(true));
    }
    assert_eq!(check_pod("p", &pod["metadata"], &pod["spec"]), vec![]);
}

/// azcopy's buffer and connections and the load server's maintenance_work_mem follow the limits;
/// a transfer's own buffer size is replaced, its own concurrency kept; only the toolbox
/// containers get the workload-identity token.
#[test]
fn processes_fit_their_containers_limits() {
    let env_of = |doc: &Value, container: &str, name: &str| -> Option<String> {
        let containers = doc.pointer("/spec/template/spec/containers")?.as_array()?;
        let c = containers.iter().find(|c| c["name"] == container)?;
        let var = c["env"].as_array()?.iter().find(|e| e["name"] == name)?;
        var["value"].as_str().map(String::from)
    };
    let by_name = |config: &K8sConfig, name: &str| rendered(config).into_iter().find(|(n, _)| n == name).unwrap().1;
    let defaults = default_config();
    let restore = by_name(&defaults, "restore-job");
    assert_eq!(env_of(&restore, "fetch", "AZCOPY_BUFFER_GB").as_deref(), Some("0.25"));
    assert_eq!(env_of(&restore, "fetch", "AZCOPY_CONCURRENCY_VALUE").as_deref(), Some("16"));
    assert_eq!(env_of(&restore, "load", "TOYGRES_MAINTENANCE_WORK_MEM").as_deref(), Some("256MB"));
    let skip = "/spec/template/metadata/annotations/azure.workload.identity~1skip-containers";
    assert_eq!(restore.pointer(skip), Some(&json!("load")));
    assert_eq!(by_name(&defaults, "backup-job").pointer(skip), Some(&json!("dump")));

    let custom = custom_config();
    let backup = by_name(&custom, "backup-job");
    assert_eq!(env_of(&backup, "upload", "AZCOPY_BUFFER_GB").as_deref(), Some("1"));
    assert_eq!(env_of(&backup, "upload", "AZCOPY_CONCURRENCY_VALUE").as_deref(), Some("64"));
    assert_eq!(env_of(&backup, "upload", "TOYGRES_THREADS").as_deref(), Some("4"));
    assert_eq!(backup.pointer(skip), None, "no workload identity, no annotation");
    let restore = by_name(&custom, "restore-job");
    assert_eq!(env_of(&restore, "load", "TOYGRES_MAINTENANCE_WORK_MEM").as_deref(), Some("512MB"));

    // A blob store's own settings: its buffer never exceeds the limit's share, its concurrency wins.
    let mut own = command_transfer();
    own.env.push(("AZCOPY_BUFFER_GB".into(), "8".into()));
    own.env.push(("AZCOPY_CONCURRENCY_VALUE".into(), "7".into()));
    let transfer = job_transfer(Transfer::Command(own), "job", "azure").unwrap();
    let spec = RestoreJobSpec {
        image_id: "0a1b2c3d-4e5f-4a6b-8c7d-9e0f1a2b3c4d".parse().unwrap(),
        location: ImageLocation::for_image("0a1b2c3d-4e5f-4a6b-8c7d-9e0f1a2b3c4d".parse().unwrap()),
        checksum: format!("sha256:{}", "0f".repeat(32)),
        instance: instance(ImageType::Stock),
        databases: None,
        data_key: None,
        recovery: None,
    };
    let job = serde_json::to_value(Manifests::new(&defaults).restore_job(&spec, &transfer).unwrap()).unwrap();
    let fetch = &job["spec"]["template"]["spec"]["containers"][0];
    let values = |name: &str| -> Vec<String> {
        let env = fetch["env"].as_array().unwrap().iter().filter(|e| e["name"] == name);
        env.map(|e| e["value"].as_str().unwrap().to_string()).collect()
    };
    assert_eq!(values("AZCOPY_BUFFER_GB"), ["0.25"]);
    assert_eq!(values("AZCOPY_CONCURRENCY_VALUE"), ["7"]);
}
