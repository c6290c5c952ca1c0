//! Physical images through the executor's API calls, against the fake API server: the backup Job
//! streams `pg_basebackup` in the source's image, and the restore rules the configuration decides
//! are refused with typed errors before any Secret or Job exists.

mod support;

use support::*;
use toygres_core::manifest::{archive_object_name, sha256_hex, ManifestObject, FORMAT_VERSION, GLOBALS_NAME};
use toygres_core::testing::MockBlobStore;
use toygres_core::{BackupJobSpec, ClusterExecutor, Error, ImageFormat, ImageId, ImageLocation, ImageType};
use toygres_core::{InstanceId, InstanceSpec, Manifest, Password, RestoreJobSpec, Transfer};

fn instance(pg_version: &str) -> InstanceSpec {
    InstanceSpec {
        id: InstanceId::new(),
        name: "restored".into(),
        image_type: ImageType::Stock,
        pg_version: Some(pg_version.into()),
        dns_label: None,
    }
}

fn object(name: &str) -> ManifestObject {
    ManifestObject { name: name.into(), size: 100, sha256: sha256_hex(name.as_bytes()), raw_size: Some(1000) }
}

/// A physical image of PostgreSQL `pg_version`, as the backup job writes it.
fn physical_manifest(image: ImageId, pg_version: &str) -> Manifest {
    Manifest {
        format_version: FORMAT_VERSION,
        image_id: image,
        pg_version: pg_version.into(),
        image_type: ImageType::Stock,
        format: ImageFormat::Physical,
        compression: "zstd".into(),
        globals: object(GLOBALS_NAME),
        databases: vec![],
        archives: vec![object(&archive_object_name(0))],
        created_at: "2026-12-01T00:00:00Z".parse().unwrap(),
        cluster_locale: None,
        dump_version: Some(pg_version.into()),
        clone: None,
        wal: None,
    }
}

/// The fake API and an executor whose blob store holds `manifest`; the restore spec of it into
/// `instance`.
fn restore_of(manifest: &Manifest, instance: InstanceSpec) -> (FakeApi, toygres_k8s::K8sExecutor, RestoreJobSpec) {
    let bytes = manifest.to_bytes();
    let checksum = sha256_hex(&bytes);
    let mut blobs = MockBlobStore::new();
    blobs.expect_describe().returning(|| "azure".into());
    blobs.expect_transfer().returning(|_| Transfer::Command(command_transfer()));
    blobs.expect_read().returning(move |_, _| Ok(bytes.clone().into()));
    let (fake, executor) = FakeApi::executor(blobs);
    let image = manifest.image_id;
    let spec = RestoreJobSpec {
        image_id: image,
        location: ImageLocation::for_image(image),
        checksum,
        instance,
        databases: None,
        data_key: None,
        recovery: None,
    };
    (fake, executor, spec)
}

#[tokio::test]
async fn a_physical_backup_job_streams_pg_basebackup_in_the_sources_image() {
    let (fake, executor) = FakeApi::executor(blobs());
    let image = ImageId::new();
    let spec = BackupJobSpec {
        image_id: image,
        source: instance("16.4"),
        source_password: Password::new(PASSWORD),
        location: ImageLocation::for_image(image),
        image_type: ImageType::Stock,
        format: ImageFormat::Physical,
        data_key: None,
        from_image: None,
    };
    let job = executor.start_backup_job(&spec).await.unwrap();
    let stored = fake.get(&support::job(&job.name)).unwrap();
    let containers = &stored["spec"]["template"]["spec"]["containers"];
    assert_eq!(containers[0]["name"], "dump");
    assert_eq!(containers[0]["image"], "postgres:16", "pg_basebackup of the source's major");
    let script = containers[0]["command"][2].as_str().unwrap();
    assert!(script.contains("pg_basebackup -D - -Ft -X fetch -c fast --no-manifest"), "{script}");
    assert!(!script.contains("pg_dump -Fc"));
    assert_eq!(containers[1]["name"], "upload");
    let env = containers[0]["env"].to_string();
    assert!(env.contains(r#"{"name":"PGUSER","value":"postgres"}"#), "{env}");
    assert!(!stored.to_string().contains(PASSWORD));
}

#[tokio::test]
async fn a_physical_restore_onto_another_major_is_refused_before_any_call() {
    let image = ImageId::new();
    let (fake, executor, spec) = restore_of(&physical_manifest(image, "15.8"), instance("16.4"));
    let err = executor.start_restore_job(&spec).await.unwrap_err();
    assert!(matches!(&err, Error::UnsupportedImage { .. }), "{err}");
    assert!(err.to_string().contains("restore only onto the same major"), "{err}");
    assert!(fake.take_calls().is_empty(), "no Secret, no Job");
}

#[tokio::test]
async fn a_physical_restore_of_some_databases_is_refused_before_any_call() {
    let image = ImageId::new();
    let (fake, executor, mut spec) = restore_of(&physical_manifest(image, "16.4"), instance("16.4"));
    spec.databases = Some(vec!["app".into()]);
    let err = executor.start_restore_job(&spec).await.unwrap_err();
    assert!(matches!(&err, Error::InvalidRequest { field: "databases", .. }), "{err}");
    assert!(fake.take_calls().is_empty());
}

#[tokio::test]
async fn a_physical_restore_onto_the_same_major_starts_its_job() {
    let image = ImageId::new();
    let (fake, executor, spec) = restore_of(&physical_manifest(image, "16.4"), instance("16.2"));
    let job = executor.start_restore_job(&spec).await.unwrap();
    let stored = fake.get(&support::job(&job.name)).unwrap();
    let load = &stored["spec"]["template"]["spec"]["containers"][1];
    assert_eq!(load["image"], "postgres:16");
    assert!(load["command"][2].as_str().unwrap().contains("unpack_physical"));
    // A pinned image (no `{major}`) leaves the check to the job, which sees its server's major.
    let mut config = toygres_k8s::K8sConfig::default();
    config.postgres_images.stock = "registry.example/postgres:custom".into();
    let manifest = physical_manifest(image, "15.8");
    let spec = RestoreJobSpec { checksum: sha256_hex(&manifest.to_bytes()), ..spec };
    toygres_k8s::physical::check_restore(&config, &spec, &manifest).unwrap();
}
