//! Every template renders and parses into its typed object; the rendered manifests are kept as golden
//! files (`UPDATE_GOLDEN=1 cargo test -p toygres-k8s --test manifests` rewrites them); no manifest but
//! a Secret holds the password or the SAS.

mod support;

use std::collections::BTreeMap;
use support::{command_transfer, PASSWORD, SAS};
use toygres_core::envelope::DataKey;
use toygres_core::{
    BackupJobSpec, ImageFormat, ImageId, ImageLocation, ImageType, InstanceId, InstanceSpec, Password, RestoreJobSpec,
    Transfer,
};
use toygres_k8s::transfer::job_transfer;
use toygres_k8s::{K8sConfig, Manifests, ServiceExposure};

fn config() -> K8sConfig {
    K8sConfig {
        storage_class: Some("managed-csi".into()),
        toolbox_image: "example.azurecr.io/toygres-toolbox:1".into(),
        exposure: ServiceExposure::LoadBalancer { region: Some("westus2".into()) },
        job_service_account: Some("toygres-jobs".into()),
        load_balancer_source_ranges: vec!["203.0.113.0/24".into()],
        ..K8sConfig::default()
    }
}

fn instance() -> InstanceSpec {
    InstanceSpec {
        id: "6f1c2a4e-0d3b-4c55-9a8e-1b2c3d4e5f60".parse::<InstanceId>().unwrap(),
        name: "restored".into(),
        image_type: ImageType::PgDurable,
        pg_version: Some("16.4".into()),
        dns_label: Some("restored-db".into()),
    }
}

fn image() -> ImageId {
    "0a1b2c3d-4e5f-4a6b-8c7d-9e0f1a2b3c4d".parse().unwrap()
}

/// Every rendered manifest, as YAML of its typed object.
fn rendered(config: &K8sConfig) -> Vec<(&'static str, String)> {
    let m = Manifests::new(config);
    let i = instance();
    let transfer = || job_transfer(Transfer::Command(command_transfer()), "job", "azure").unwrap();
    let backup = BackupJobSpec {
        image_id: image(),
        source: InstanceSpec { image_type: ImageType::Stock, ..instance() },
        source_password: Password::new(PASSWORD),
        location: ImageLocation::for_image(image()),
        image_type: ImageType::Stock,
        format: Default::default(),
        data_key: None,
        from_image: None,
    };
    let restore = RestoreJobSpec {
        image_id: image(),
        location: ImageLocation::for_image(image()),
        checksum: format!("sha256:{}", "0f".repeat(32)),
        instance: i.clone(),
        databases: None,
        data_key: None,
        recovery: None,
    };
    use support::golden::yaml as y;
    let envelope =
        m.secret(&i.resource_name(), &toygres_k8s::names::instance_labels(i.id, "postgres"), BTreeMap::new());
    vec![
        ("pvc", y(&m.pvc(&i).unwrap())),
        ("secret", y(&envelope.unwrap())),
        ("configmap", y(&m.config_map(&i).unwrap())),
        ("statefulset", y(&m.stateful_set(&i).unwrap())),
        ("service", y(&m.service(&i).unwrap())),
        ("networkpolicy", y(&m.network_policy(&i).unwrap())),
        ("backup-job", y(&m.backup_job(&backup, &transfer()).unwrap())),
        ("backup-job-physical", y(&m.backup_job(&physical(backup.clone()), &transfer()).unwrap())),
        ("restore-job", y(&m.restore_job(&restore, &transfer()).unwrap())),
        // An encrypted image: the data key mounted from the Secret into `upload` and `fetch` only.
        ("backup-job-encrypted", y(&m.backup_job(&encrypted(backup.clone()), &transfer()).unwrap())),
        (
            "restore-job-encrypted",
            y(&m.restore_job(&RestoreJobSpec { data_key: Some(key()), ..restore }, &transfer()).unwrap()),
        ),
    ]
}

/// The data key of the encrypted manifests: it must appear in no manifest but a Secret.
fn key() -> DataKey {
    DataKey::from_hex(&"5e".repeat(32)).unwrap()
}

fn encrypted(backup: BackupJobSpec) -> BackupJobSpec {
    BackupJobSpec { data_key: Some(key()), ..backup }
}

fn physical(backup: BackupJobSpec) -> BackupJobSpec {
    BackupJobSpec { format: ImageFormat::Physical, ..backup }
}

/// The physical backup Job: `pg_basebackup` in the source's image, over the replication connection
/// the instances' pg_hba.conf allows (as `postgres`, with the password from the Job's Secret); it
/// differs from the logical one in its `dump` script only.
#[test]
fn the_physical_backup_job_uses_a_replication_connection() {
    let config = config();
    let m = Manifests::new(&config);
    let transfer = || job_transfer(Transfer::Command(command_transfer()), "job", "azure").unwrap();
    let logical = BackupJobSpec {
        image_id: image(),
        source: instance(),
        source_password: Password::new(PASSWORD),
        location: ImageLocation::for_image(image()),
        image_type: ImageType::Stock,
        format: ImageFormat::Logical,
        data_key: None,
        from_image: None,
    };
    let job = m.backup_job(&physical(logical.clone()), &transfer()).unwrap();
    let pod = job.spec.clone().unwrap().template.spec.unwrap();
    let dump = &pod.containers[0];
    assert_eq!(dump.image.as_deref(), Some("ghcr.io/toygres/pg-durable:16"), "the source's image and major");
    let script = &dump.command.as_ref().unwrap()[2];
    assert!(script.contains("pg_basebackup -D - -Ft -X fetch -c fast --no-manifest"), "{script}");
    let env = dump.env.clone().unwrap();
    let value = |name: &str| env.iter().find(|e| e.name == name).and_then(|e| e.value.clone());
    assert_eq!(value("PGUSER").as_deref(), Some("postgres"));
    assert_eq!(value("PGHOST"), Some(format!("pg-{}.toygres.svc", instance().id)));
    let password = env.iter().find(|e| e.name == "PGPASSWORD").unwrap();
    let reference = password.value_from.as_ref().unwrap().secret_key_ref.as_ref().unwrap();
    assert_eq!(
        (reference.name.as_str(), reference.key.as_str()),
        (job.metadata.name.as_deref().unwrap(), "PGPASSWORD")
    );
    // The instances' pg_hba.conf lets exactly that role open a replication connection.
    let hba = m.config_map(&instance()).unwrap().data.unwrap()["pg_hba.conf"].clone();
    let replication = "hostssl replication postgres 0.0.0.0/0 scram-sha-256\n\
                       hostssl replication postgres ::/0 scram-sha-256\n";
    assert!(hba.contains(replication), "{hba}");
    assert!(!hba.contains("replication all"), "{hba}");
    // Everything but the dump script is the logical Job's.
    let mut logical_job = m.backup_job(&logical, &transfer()).unwrap();
    let strip = |job: &mut k8s_openapi::api::batch::v1::Job| {
        job.spec.as_mut().unwrap().template.spec.as_mut().unwrap().containers[0].command = None;
    };
    let mut physical_job = job;
    strip(&mut logical_job);
    strip(&mut physical_job);
    assert_eq!(physical_job, logical_job);
}

#[test]
fn rendered_manifests_match_the_golden_files() {
    for (name, yaml) in rendered(&config()) {
        support::golden::check(name, &yaml);
    }
}

#[test]
fn no_manifest_but_a_secret_holds_a_secret() {
    let cluster_ip = K8sConfig { exposure: ServiceExposure::ClusterIp, ..config() };
    let b64 = |s: &str| serde_json::to_string(&k8s_openapi::ByteString(s.as_bytes().to_vec())).unwrap();
    for (name, yaml) in rendered(&config()).into_iter().chain(rendered(&cluster_ip)) {
        let hex = key().expose_hex();
        for secret in [PASSWORD.to_string(), SAS.to_string(), b64(PASSWORD), b64(SAS), hex.clone(), b64(&hex)] {
            assert!(!yaml.contains(secret.trim_matches('"')), "{name} holds a secret:\n{yaml}");
        }
    }
    // The Secrets themselves do carry them, and never show them in Debug.
    let m = Manifests::new(&cluster_ip);
    let secret = m.instance_secret(&instance(), &Password::new(PASSWORD)).unwrap();
    assert_eq!(secret.data.as_ref().unwrap()["password"].0, PASSWORD.as_bytes());
    let transfer = job_transfer(Transfer::Command(command_transfer()), "job", "azure").unwrap();
    assert_eq!(transfer.secret_data[toygres_k8s::transfer::URL_QUERY_KEY].0, SAS.as_bytes());
    assert!(!format!("{cluster_ip:?}").contains(PASSWORD));
}

#[test]
fn exposure_and_image_type_shape_the_manifests() {
    let m_lb = config();
    let m = Manifests::new(&m_lb);
    let mut i = instance();
    let svc = m.service(&i).unwrap();
    assert_eq!(svc.spec.as_ref().unwrap().type_.as_deref(), Some("LoadBalancer"));
    let conf = m.config_map(&i).unwrap().data.unwrap()["postgresql.conf"].clone();
    assert!(conf.contains("shared_preload_libraries = 'pg_durable'"), "{conf}");
    let sts = m.stateful_set(&i).unwrap();
    let image = sts.spec.template.spec.unwrap().containers[0].image.clone();
    assert_eq!(image.as_deref(), Some("ghcr.io/toygres/pg-durable:16"));

    i.image_type = ImageType::Stock;
    i.dns_label = None;
    assert!(!m.config_map(&i).unwrap().data.unwrap()["postgresql.conf"].contains("pg_durable"));
    assert!(m.service(&i).unwrap().metadata.annotations.unwrap_or_default().is_empty());
    let cluster = K8sConfig { exposure: ServiceExposure::ClusterIp, ..config() };
    let svc = Manifests::new(&cluster).service(&i).unwrap();
    assert_eq!(svc.spec.unwrap().type_.as_deref(), Some("ClusterIP"));
}

#[test]
fn bad_configuration_is_refused() {
    for bad in [
        K8sConfig { namespace: "Bad_NS".into(), ..config() },
        K8sConfig { volume_size: "ten gigs".into(), ..config() },
        K8sConfig {
            resources: toygres_k8s::Resources {
                job_toolbox: toygres_k8s::ContainerResources { cpu: "lots".into(), ..Default::default() },
                ..Default::default()
            },
            ..config()
        },
        K8sConfig { toolbox_image: "".into(), ..config() },
        K8sConfig { poll_interval: std::time::Duration::ZERO, ..config() },
        K8sConfig { cluster_domain: Some("corp..internal".into()), ..config() },
        K8sConfig { tls_secret: Some("Not A Secret".into()), ..config() },
    ] {
        assert!(matches!(bad.validate(), Err(toygres_core::Error::InvalidRequest { .. })), "{bad:?}");
    }
    config().validate().unwrap();
    // A configuration written before `resources` is refused, not silently given the defaults.
    let mut old = serde_json::to_value(config()).unwrap();
    old["job_requests"] = serde_json::json!({ "cpu": "2", "memory": "4Gi" });
    let old: K8sConfig = serde_json::from_value(old).unwrap();
    let err = old.validate().unwrap_err();
    assert!(matches!(&err, toygres_core::Error::InvalidRequest { field: "job_requests", .. }), "{err}");
    assert!(err.to_string().contains("resources.job_postgres"), "{err}");
}

#[test]
fn a_restore_with_a_malformed_checksum_is_refused() {
    let config = config();
    let transfer = job_transfer(Transfer::Command(command_transfer()), "job", "azure").unwrap();
    let spec = RestoreJobSpec {
        image_id: image(),
        location: ImageLocation::for_image(image()),
        checksum: "md5:abc".into(),
        instance: instance(),
        databases: None,
        data_key: None,
        recovery: None,
    };
    let err = Manifests::new(&config).restore_job(&spec, &transfer).unwrap_err();
    assert!(matches!(err, toygres_core::Error::ImageIncomplete { .. }), "{err}");
}

/// Defect 12: no hard-coded `cluster.local`; the StatefulSet names no (non-headless) Service.
#[test]
fn in_cluster_names_follow_the_cluster_domain() {
    let host = |config: &K8sConfig| {
        let backup = BackupJobSpec {
            image_id: image(),
            source: instance(),
            source_password: Password::new(PASSWORD),
            location: ImageLocation::for_image(image()),
            image_type: ImageType::Stock,
            format: toygres_core::ImageFormat::Logical,
            data_key: None,
            from_image: None,
        };
        let transfer = job_transfer(Transfer::Command(command_transfer()), "job", "azure").unwrap();
        let job = Manifests::new(config).backup_job(&backup, &transfer).unwrap();
        let env = job.spec.unwrap().template.spec.unwrap().containers[0].env.clone().unwrap();
        env.into_iter().find(|e| e.name == "PGHOST").unwrap().value.unwrap()
    };
    let id = instance().id;
    assert_eq!(host(&config()), format!("pg-{id}.toygres.svc"));
    let custom = K8sConfig { cluster_domain: Some("corp.internal".into()), ..config() };
    custom.validate().unwrap();
    assert_eq!(host(&custom), format!("pg-{id}.toygres.svc.corp.internal"));
    let sts = Manifests::new(&config()).stateful_set(&instance()).unwrap();
    assert_eq!(sts.spec.service_name, None);
}

/// Defect 10: the kubelet changes the volume's ownership only when its root is wrong, not at every
/// start of the server or the restore job.
#[test]
fn volumes_are_not_rechowned_at_every_start() {
    let config = config();
    let m = Manifests::new(&config);
    let sts = m.stateful_set(&instance()).unwrap();
    let policy = |ctx: Option<k8s_openapi::api::core::v1::PodSecurityContext>| ctx.unwrap().fs_group_change_policy;
    assert_eq!(policy(sts.spec.template.spec.unwrap().security_context).as_deref(), Some("OnRootMismatch"));
    let restore = RestoreJobSpec {
        image_id: image(),
        location: ImageLocation::for_image(image()),
        checksum: format!("sha256:{}", "0f".repeat(32)),
        instance: instance(),
        databases: None,
        data_key: None,
        recovery: None,
    };
    let transfer = job_transfer(Transfer::Command(command_transfer()), "job", "azure").unwrap();
    let job = m.restore_job(&restore, &transfer).unwrap();
    let pod = job.spec.unwrap().template.spec.unwrap();
    assert_eq!(policy(pod.security_context).as_deref(), Some("OnRootMismatch"));
}

/// Defect 6 (and the deadline of defect 5): an eviction does not use up the one retry, job pods
/// request resources (not BestEffort) and ask the autoscaler not to evict them.
#[test]
fn job_pods_survive_evictions_and_end_by_a_deadline() {
    let config = config();
    let m = Manifests::new(&config);
    let transfer = || job_transfer(Transfer::Command(command_transfer()), "job", "azure").unwrap();
    let backup = BackupJobSpec {
        image_id: image(),
        source: instance(),
        source_password: Password::new(PASSWORD),
        location: ImageLocation::for_image(image()),
        image_type: ImageType::Stock,
        format: toygres_core::ImageFormat::Logical,
        data_key: None,
        from_image: None,
    };
    let restore = RestoreJobSpec {
        image_id: image(),
        location: ImageLocation::for_image(image()),
        checksum: format!("sha256:{}", "0f".repeat(32)),
        instance: instance(),
        databases: None,
        data_key: None,
        recovery: None,
    };
    // A real failure is retried once, but not a plaintext image's restore: a retry trusts the
    // volume's marker, which SQL of a dump changed between the fetch's two reads could write.
    let retries = |spec: &RestoreJobSpec| m.restore_job(spec, &transfer()).unwrap().spec.unwrap().backoff_limit;
    assert_eq!(retries(&restore), Some(0));
    assert_eq!(retries(&RestoreJobSpec { data_key: Some(key()), ..restore.clone() }), Some(1));
    for job in [m.backup_job(&backup, &transfer()).unwrap(), m.restore_job(&restore, &transfer()).unwrap()] {
        let spec = job.spec.unwrap();
        assert_eq!(spec.active_deadline_seconds, Some(3 * 3600));
        let rules = spec.pod_failure_policy.unwrap().rules;
        let ignores_disruption = rules.iter().any(|r| {
            r.action == "Ignore" && r.on_pod_conditions.iter().flatten().any(|c| c.type_ == "DisruptionTarget")
        });
        assert!(ignores_disruption, "{rules:?}");
        let annotations = spec.template.metadata.unwrap().annotations.unwrap();
        assert_eq!(annotations["cluster-autoscaler.kubernetes.io/safe-to-evict"], "false");
        let pod = spec.template.spec.unwrap();
        for c in pod.containers.iter().chain(pod.init_containers.iter().flatten()) {
            let resources = c.resources.as_ref().unwrap();
            let (requests, limits) = (resources.requests.as_ref().unwrap(), resources.limits.as_ref().unwrap());
            assert_eq!(requests["memory"].0, "1Gi", "{}", c.name);
            assert_eq!(limits["memory"].0, "1Gi", "{}", c.name);
            assert_eq!(requests["cpu"].0, "250m", "{}", c.name);
        }
    }
}
