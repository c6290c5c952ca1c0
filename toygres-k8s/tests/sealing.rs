//! The Jobs of encrypted images as the executor renders them: the data key travels in the job's
//! Secret only, is mounted as a file into the container that moves the image's bytes (backup
//! `upload`, restore `fetch`) and no other, and the rest of each Job is the plaintext image's.

mod support;

use k8s_openapi::api::batch::v1::Job;
use k8s_openapi::api::core::v1::{Container, PodSpec};
use support::{command_transfer, data_key, DATA_KEY_HEX};
use toygres_core::{BackupJobSpec, ImageFormat, InstanceSpec, JobRef, RestoreJobSpec, Transfer};
use toygres_k8s::sealing::{self, DATA_KEY_SECRET_KEY, KEY_DIR, KEY_FILE, KEY_VOLUME};
use toygres_k8s::transfer::job_transfer;
use toygres_k8s::{K8sConfig, Manifests};

fn config() -> K8sConfig {
    K8sConfig {
        job_service_account: Some("toygres-jobs".into()),
        load_balancer_source_ranges: vec!["203.0.113.0/24".into()],
        ..K8sConfig::default()
    }
}

fn instance() -> InstanceSpec {
    support::restored(None)
}

fn backup(format: ImageFormat) -> BackupJobSpec {
    support::backup_spec(instance(), format, Some(data_key()))
}

fn restore() -> RestoreJobSpec {
    RestoreJobSpec { data_key: Some(data_key()), ..support::restore_spec(&instance()) }
}

fn pod(job: &Job) -> PodSpec {
    job.spec.clone().unwrap().template.spec.unwrap()
}

fn container<'p>(pod: &'p PodSpec, name: &str) -> &'p Container {
    pod.containers.iter().find(|c| c.name == name).unwrap()
}

fn value<'c>(c: &'c Container, name: &str) -> Option<&'c str> {
    c.env.iter().flatten().find(|e| e.name == name).and_then(|e| e.value.as_deref())
}

/// Checks that `job` (named `name`) mounts the key into `mover` only and that the rest of it is
/// `plaintext`, the same job of a plaintext image.
fn check_job(job: &Job, plaintext: &Job, name: &str, mover: &str, other: &str, program: &str) {
    let pod = pod(job);
    let c = container(&pod, mover);
    assert_eq!(value(c, sealing::ENCRYPTED_VAR), Some("1"));
    assert_eq!(value(c, sealing::KEY_FILE_VAR), Some(KEY_FILE));
    assert_eq!(value(c, sealing::SEAL_PROGRAM_VAR), Some(program));
    assert!(KEY_FILE.starts_with(&format!("{KEY_DIR}/")));
    let mount = c.volume_mounts.iter().flatten().find(|m| m.name == KEY_VOLUME).unwrap();
    assert_eq!((mount.mount_path.as_str(), mount.read_only), (KEY_DIR, Some(true)));
    let volume = pod.volumes.iter().flatten().find(|v| v.name == KEY_VOLUME).unwrap();
    let secret = volume.secret.as_ref().unwrap();
    assert_eq!(secret.secret_name.as_deref(), Some(name), "the job's own Secret");
    let items = secret.items.as_ref().unwrap();
    assert_eq!(items.len(), 1, "only the data key, not the passwords");
    assert_eq!((items[0].key.as_str(), items[0].path.as_str()), (DATA_KEY_SECRET_KEY, DATA_KEY_SECRET_KEY));
    assert_eq!((secret.default_mode, secret.optional), (Some(0o440), Some(false)));
    // The other container (a PostgreSQL image) never sees the key nor the variables.
    let o = container(&pod, other);
    assert!(!o.volume_mounts.iter().flatten().any(|m| m.name == KEY_VOLUME), "{other} mounts the key");
    assert!(value(o, sealing::ENCRYPTED_VAR).is_none() && value(o, sealing::KEY_FILE_VAR).is_none());
    // Nothing else differs from the plaintext image's job, and no variable comes from the key.
    assert!(!serde_yaml::to_string(job).unwrap().contains(DATA_KEY_HEX));
    let from_key = pod.containers.iter().flat_map(|c| c.env.iter().flatten()).any(|e| {
        let reference = e.value_from.as_ref().and_then(|f| f.secret_key_ref.as_ref());
        reference.is_some_and(|r| r.key == DATA_KEY_SECRET_KEY)
    });
    assert!(!from_key, "a variable holds the key");
    let mut stripped = job.clone();
    let spec = stripped.spec.as_mut().unwrap().template.spec.as_mut().unwrap();
    spec.volumes.as_mut().unwrap().retain(|v| v.name != KEY_VOLUME);
    let c = spec.containers.iter_mut().find(|c| c.name == mover).unwrap();
    c.volume_mounts.as_mut().unwrap().retain(|m| m.name != KEY_VOLUME);
    c.env.as_mut().unwrap().retain(|e| !sealing::env("", "").iter().any(|s| s.name == e.name));
    let mut plaintext = plaintext.clone();
    plaintext.metadata.name = stripped.metadata.name.clone();
    if mover == "fetch" {
        // The one other difference: a plaintext image's restore gets no retry (restore-job.yaml).
        let retries = |job: &Job| job.spec.as_ref().unwrap().backoff_limit;
        assert_eq!((retries(&stripped), retries(&plaintext)), (Some(1), Some(0)));
        plaintext.spec.as_mut().unwrap().backoff_limit = Some(1);
    }
    assert_eq!(serde_yaml::to_string(&stripped).unwrap(), serde_yaml::to_string(&plaintext).unwrap());
}

#[test]
fn the_key_is_mounted_into_the_byte_movers_only() {
    let config = K8sConfig { seal_program: "/opt/toygres/bin/toygres-seal".into(), ..config() };
    config.validate().unwrap();
    let m = Manifests::new(&config);
    let transfer = || job_transfer(Transfer::Command(command_transfer()), "job", "azure").unwrap();
    for format in [ImageFormat::Logical, ImageFormat::Physical] {
        let spec = backup(format);
        let name = JobRef::backup(spec.image_id).name;
        let job = m.backup_job(&spec, &transfer()).unwrap();
        let plain = BackupJobSpec { data_key: None, ..spec.clone() };
        let plaintext = m.backup_job(&plain, &transfer()).unwrap();
        check_job(&job, &plaintext, &name, "upload", "dump", &config.seal_program);
        let secret = m.backup_secret(&spec, &transfer()).unwrap().data.unwrap();
        assert_eq!(secret[DATA_KEY_SECRET_KEY].0, DATA_KEY_HEX.as_bytes());
        assert!(secret.contains_key("PGPASSWORD"));
        assert!(!m.backup_secret(&plain, &transfer()).unwrap().data.unwrap().contains_key(DATA_KEY_SECRET_KEY));
    }
    let spec = restore();
    let name = JobRef::restore(spec.instance.id).name;
    let job = m.restore_job(&spec, &transfer()).unwrap();
    let plain = RestoreJobSpec { data_key: None, ..spec.clone() };
    check_job(&job, &m.restore_job(&plain, &transfer()).unwrap(), &name, "fetch", "load", &config.seal_program);
    let secret = m.restore_secret(&spec, &transfer()).unwrap().data.unwrap();
    assert_eq!(secret[DATA_KEY_SECRET_KEY].0, DATA_KEY_HEX.as_bytes());
    assert!(!m.restore_secret(&plain, &transfer()).unwrap().data.unwrap().contains_key(DATA_KEY_SECRET_KEY));
}

#[test]
fn the_seal_program_is_a_name_or_an_absolute_path() {
    assert_eq!(K8sConfig::default().seal_program, "toygres-seal");
    for good in ["toygres-seal", "/usr/local/bin/toygres-seal"] {
        K8sConfig { seal_program: good.into(), ..config() }.validate().unwrap();
    }
    for bad in ["", "bin/toygres-seal", "toygres seal", "toygres-seal\n"] {
        let err = K8sConfig { seal_program: bad.into(), ..config() }.validate().unwrap_err();
        assert!(matches!(err, toygres_core::Error::InvalidRequest { field: "seal_program", .. }), "{bad:?}: {err}");
    }
    // A configuration file without the field takes the default.
    let mut json = serde_json::to_value(config()).unwrap();
    json.as_object_mut().unwrap().remove("seal_program");
    assert_eq!(serde_json::from_value::<K8sConfig>(json).unwrap().seal_program, "toygres-seal");
}
