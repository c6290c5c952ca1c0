//! The instances' TLS and authentication in the rendered manifests: `ssl = on` with the mounted
//! certificate, `hostssl … scram-sha-256` only, the certificate (for the Service's names) in the
//! instance's Secret, or a configured `kubernetes.io/tls` Secret instead, mounted read-only with
//! its two keys only; the backup Job requires TLS of its source.

mod support;

use k8s_openapi::api::core::v1::Volume;
use support::{command_transfer, PASSWORD};
use toygres_core::{BackupJobSpec, ImageLocation, ImageType, InstanceId, InstanceSpec, Password, Transfer};
use toygres_k8s::tls::{CERT_KEY, KEY_KEY, MOUNT_PATH};
use toygres_k8s::transfer::job_transfer;
use toygres_k8s::{K8sConfig, Manifests, ServiceExposure};

fn config() -> K8sConfig {
    K8sConfig {
        exposure: ServiceExposure::LoadBalancer { region: Some("westus2".into()) },
        job_service_account: Some("toygres-jobs".into()),
        ..K8sConfig::default()
    }
}

fn instance() -> InstanceSpec {
    InstanceSpec {
        id: InstanceId::new(),
        name: "orders".into(),
        image_type: ImageType::Stock,
        pg_version: Some("16.4".into()),
        dns_label: Some("orders-db".into()),
    }
}

fn tls_volume(config: &K8sConfig, instance: &InstanceSpec) -> Volume {
    let sts = Manifests::new(config).stateful_set(instance).unwrap();
    let pod = sts.spec.template.spec.unwrap();
    let mount = pod.containers[0].volume_mounts.iter().flatten().find(|m| m.mount_path == MOUNT_PATH).unwrap();
    assert_eq!(mount.read_only, Some(true));
    pod.volumes.unwrap().into_iter().find(|v| v.name == mount.name).unwrap()
}

#[test]
fn the_server_runs_tls_with_scram_only() {
    let config = config();
    let data = Manifests::new(&config).config_map(&instance()).unwrap().data.unwrap();
    let conf = &data["postgresql.conf"];
    for line in [
        "ssl = on",
        "ssl_cert_file = '/etc/toygres-tls/tls.crt'",
        "ssl_key_file = '/etc/toygres-tls/tls.key'",
        "password_encryption = 'scram-sha-256'",
    ] {
        assert!(conf.lines().any(|l| l == line), "{line} missing:\n{conf}");
    }
    let hba = &data["pg_hba.conf"];
    for line in hba.lines().filter(|l| !l.starts_with('#')) {
        let fields: Vec<&str> = line.split_whitespace().collect();
        match fields[0] {
            "local" => assert_eq!(fields[3], "trust", "{line}"),
            "hostssl" => assert_eq!(fields.last(), Some(&"scram-sha-256"), "{line}"),
            _ => panic!("no plaintext or other entry may be in pg_hba.conf: {line}"),
        }
    }
    assert!(!hba.contains("md5"), "{hba}");
    // An empty instance (the image's entrypoint runs initdb) stores its password as SCRAM too.
    let sts = Manifests::new(&config).stateful_set(&instance()).unwrap();
    let env = sts.spec.template.spec.unwrap().containers[0].env.clone().unwrap();
    let value = |name: &str| env.iter().find(|e| e.name == name).and_then(|e| e.value.clone());
    assert_eq!(value("POSTGRES_HOST_AUTH_METHOD").as_deref(), Some("scram-sha-256"));
    assert_eq!(value("POSTGRES_INITDB_ARGS").as_deref(), Some("--auth-host=scram-sha-256"));
}

#[test]
fn each_instance_gets_a_certificate_for_its_names_in_its_secret() {
    let config = config();
    let i = instance();
    let secret = Manifests::new(&config).instance_secret(&i, &Password::new(PASSWORD)).unwrap();
    let data = secret.data.unwrap();
    let cert = String::from_utf8(data[CERT_KEY].0.clone()).unwrap();
    let key = String::from_utf8(data[KEY_KEY].0.clone()).unwrap();
    assert!(cert.starts_with("-----BEGIN CERTIFICATE-----") && key.starts_with("-----BEGIN PRIVATE KEY-----"));
    use rustls::pki_types::pem::PemObject;
    let der = rustls::pki_types::CertificateDer::from_pem_slice(cert.as_bytes()).unwrap();
    let name = i.resource_name();
    for san in [format!("{name}.toygres.svc"), "orders-db.westus2.cloudapp.azure.com".to_string()] {
        assert!(der.windows(san.len()).any(|w| w == san.as_bytes()), "{san} is not in the certificate");
    }
    // Mounted from the instance's own Secret: the certificate and key only, never the password.
    let volume = tls_volume(&config, &i);
    let source = volume.secret.unwrap();
    assert_eq!(source.secret_name, Some(name));
    assert_eq!(source.default_mode, Some(0o640));
    let keys: Vec<String> = source.items.unwrap().into_iter().map(|k| k.key).collect();
    assert_eq!(keys, [CERT_KEY, KEY_KEY]);
    // No rendered template holds the key: only the Secret object does.
    let sts = serde_json::to_string(&Manifests::new(&config).stateful_set(&i).unwrap()).unwrap();
    assert!(!sts.contains("PRIVATE KEY"));
}

#[test]
fn a_configured_tls_secret_replaces_the_generated_certificates() {
    let valid = |tls_secret: &str| {
        // Source ranges: a LoadBalancer without them is refused for its own reason.
        let ranges = vec!["203.0.113.0/24".to_string()];
        let config = K8sConfig { tls_secret: Some(tls_secret.into()), load_balancer_source_ranges: ranges, ..config() };
        config.validate().map_err(|e| e.to_string())
    };
    valid("toygres-tls").unwrap();
    let bad = valid("Not_A_Secret").unwrap_err();
    assert!(bad.contains("tls_secret") && bad.contains("kubernetes.io/tls"), "{bad}");
    let config = K8sConfig { tls_secret: Some("toygres-tls".into()), ..config() };
    let i = instance();
    let secret = Manifests::new(&config).instance_secret(&i, &Password::new(PASSWORD)).unwrap();
    assert_eq!(secret.data.unwrap().keys().collect::<Vec<_>>(), ["password"]);
    let source = tls_volume(&config, &i).secret.unwrap();
    assert_eq!(source.secret_name.as_deref(), Some("toygres-tls"));
}

#[test]
fn the_backup_job_requires_tls_of_its_source() {
    let config = config();
    let backup = BackupJobSpec {
        image_id: toygres_core::ImageId::new(),
        source: instance(),
        source_password: Password::new(PASSWORD),
        location: ImageLocation::for_image(toygres_core::ImageId::new()),
        image_type: ImageType::Stock,
        format: Default::default(),
        data_key: None,
        from_image: None,
    };
    let transfer = job_transfer(Transfer::Command(command_transfer()), "job", "azure").unwrap();
    let job = Manifests::new(&config).backup_job(&backup, &transfer).unwrap();
    let dump = job.spec.unwrap().template.spec.unwrap().containers[0].clone();
    let mode = dump.env.unwrap().into_iter().find(|e| e.name == "PGSSLMODE").and_then(|e| e.value);
    assert_eq!(mode.as_deref(), Some("require"));
}
