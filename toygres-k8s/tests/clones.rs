//! Clone images on Kubernetes against the fake API server: a CSI `VolumeSnapshot` of the source's
//! PVC taken after the backup Job checkpointed the source and awaited until ready (a snapshot
//! error fails at once), restores as a PVC provisioned from it, deletion and reconcile of the
//! snapshots, the refusals, and the golden manifests (`UPDATE_GOLDEN=1` rewrites them).

#[path = "support/fake_cluster.rs"]
mod fake_cluster;
mod support;

use fake_cluster::{volume_snapshot, FakeCluster, PG_VERSION};
use serde_json::{json, Value};
use std::sync::Arc;
use std::time::Duration;
use support::*;
use toygres_core::manifest::{sha256_hex, CloneKind, MANIFEST_NAME};
use toygres_core::{
    BackupJobSpec, BlobStore, ClusterExecutor, Error, ImageFormat, ImageId, ImageLocation, ImageType, InstanceId,
    InstanceSpec, Manifest, MemoryCatalog, NoProgress, ObjectStoreBlobs, Password, RestoreJobSpec, Toygres, Transfer,
};
use toygres_k8s::transfer::job_transfer;
use toygres_k8s::{K8sConfig, K8sExecutor, Manifests};

const CLASS: &str = "csi-azuredisk-vsc";

fn config(class: Option<&str>) -> K8sConfig {
    K8sConfig {
        job_service_account: Some("toygres-jobs".into()),
        poll_interval: Duration::from_millis(10),
        volume_snapshot_class: class.map(String::from),
        load_balancer_source_ranges: vec!["203.0.113.0/24".into()],
        ..K8sConfig::default()
    }
}

fn instance(name: &str, image_type: ImageType) -> InstanceSpec {
    InstanceSpec {
        id: InstanceId::new(),
        name: name.into(),
        image_type,
        pg_version: Some(PG_VERSION.into()),
        dns_label: None,
    }
}

/// A fake cluster with a snapshot class, and a source it provisioned (its PVC requests 10Gi).
async fn cluster() -> (FakeCluster, K8sExecutor, InstanceSpec) {
    let (cluster, executor) = FakeCluster::start(config(Some(CLASS)));
    let source = instance("source", ImageType::Stock);
    executor.provision_empty(&source, &Password::new(PASSWORD)).await.unwrap();
    cluster.run_server(&source).await;
    (cluster, executor, source)
}

/// Starts the clone backup of `source`, runs its Job and waits (in a task) for the step, once
/// the VolumeSnapshot exists; returns the spec, the pending wait, and the snapshot as first seen.
async fn snapshot_of(
    cluster: &FakeCluster,
    executor: &K8sExecutor,
    source: &InstanceSpec,
) -> (BackupJobSpec, tokio::task::JoinHandle<toygres_core::Result<()>>, Value) {
    let spec = backup_spec(source.clone(), ImageFormat::Clone, Some(data_key()));
    let job = executor.start_backup_job(&spec).await.unwrap();
    let path = volume_snapshot(&format!("snap-{}", spec.image_id));
    assert!(cluster.api.get(&path).is_none(), "no snapshot before the Job has checkpointed the source");
    cluster.run_job(&job).await;
    let waiting = executor.clone();
    let wait =
        tokio::spawn(async move { waiting.wait_for_job(&job, Duration::from_secs(60), Arc::new(NoProgress)).await });
    let snapshot = loop {
        if let Some(snapshot) = cluster.api.get(&path) {
            break snapshot;
        }
        assert!(!wait.is_finished(), "the wait ended before the snapshot existed: {:?}", wait.await);
        tokio::time::sleep(Duration::from_millis(5)).await;
    };
    (spec, wait, snapshot)
}

/// A ready clone image of `source` (restoreSize 20Gi) and the catalog's checksum of its manifest.
async fn clone_image(cluster: &FakeCluster, executor: &K8sExecutor, source: &InstanceSpec) -> (BackupJobSpec, String) {
    let controller = cluster.snapshot_controller(json!({"readyToUse": true, "restoreSize": "20Gi"}));
    let (spec, wait, _) = snapshot_of(cluster, executor, source).await;
    wait.await.unwrap().unwrap();
    controller.abort();
    let stored = cluster.blobs().read(&spec.location, MANIFEST_NAME).await.unwrap();
    (spec, sha256_hex(&stored))
}

fn restore_of(image: &BackupJobSpec, checksum: &str, into: &InstanceSpec) -> RestoreJobSpec {
    RestoreJobSpec {
        image_id: image.image_id,
        location: image.location.clone(),
        checksum: checksum.into(),
        data_key: image.data_key.clone(),
        ..restore_spec(into)
    }
}

#[tokio::test]
async fn a_clone_image_is_a_snapshot_taken_after_its_job_and_awaited_until_ready() {
    let (cluster, executor, source) = cluster().await;
    let (spec, wait, snapshot) = snapshot_of(&cluster, &executor, &source).await;
    let image = spec.image_id.to_string();
    assert_eq!(
        snapshot["spec"],
        json!({"volumeSnapshotClassName": CLASS,
        "source": {"persistentVolumeClaimName": source.resource_name()}})
    );
    assert_eq!(snapshot["metadata"]["labels"]["toygres.io/image"], image.as_str());
    assert_eq!(snapshot["metadata"]["labels"]["toygres.io/component"], "clone");
    // The Job checkpointed the source and was told the snapshot's name and the volume's size.
    let job = cluster.api.get(&support::job(&format!("backup-{image}"))).unwrap();
    assert_eq!(job["metadata"]["annotations"]["toygres.io/clone-of"], source.resource_name().as_str());
    let containers = &job["spec"]["template"]["spec"]["containers"];
    assert!(containers[0]["command"][2].as_str().unwrap().contains("psql_q -c CHECKPOINT"));
    let upload = containers[1]["env"].to_string();
    assert!(upload.contains(&json!({"name": "TOYGRES_CLONE_NAME", "value": format!("snap-{image}")}).to_string()));
    assert!(upload.contains(&json!({"name": "TOYGRES_CLONE_SIZE", "value": (10u64 << 30).to_string()}).to_string()));

    tokio::time::sleep(Duration::from_millis(200)).await;
    assert!(!wait.is_finished(), "the step waits while the snapshot is not readyToUse");
    let controller = cluster.snapshot_controller(json!({"readyToUse": true, "restoreSize": "20Gi"}));
    tokio::time::timeout(Duration::from_secs(5), wait).await.unwrap().unwrap().unwrap();
    controller.abort();

    let stored = cluster.blobs().read(&spec.location, MANIFEST_NAME).await.unwrap();
    let manifest = Manifest::from_stored(spec.image_id, &stored, Some(&data_key())).unwrap();
    assert_eq!(manifest.format, ImageFormat::Clone);
    let clone = manifest.clone.unwrap();
    assert_eq!(
        (clone.kind, clone.name.as_str(), clone.size),
        (CloneKind::VolumeSnapshot, &*format!("snap-{image}"), 10 << 30)
    );
    assert_eq!(executor.list_images().await.unwrap(), vec![spec.image_id]);
}

#[tokio::test]
async fn a_snapshot_error_fails_the_step_at_once_with_its_message() {
    let (cluster, executor, source) = cluster().await;
    let error = json!({"readyToUse": false, "error": {"message": "disk quota exceeded in westus2", "time": "t"}});
    let controller = cluster.snapshot_controller(error);
    let (spec, wait, _) = snapshot_of(&cluster, &executor, &source).await;
    let err = tokio::time::timeout(Duration::from_secs(5), wait).await.expect("at once, not at the timeout");
    let err = err.unwrap().unwrap_err();
    controller.abort();
    assert!(matches!(&err, Error::JobFailed { .. }), "{err}");
    assert!(err.to_string().contains("disk quota exceeded in westus2"), "{err}");
    assert!(err.to_string().contains(&format!("VolumeSnapshot snap-{}", spec.image_id)), "{err}");
    // What the pipeline's cleanup calls removes the snapshot.
    executor.delete_image(spec.image_id).await.unwrap();
    assert!(cluster.api.get(&volume_snapshot(&format!("snap-{}", spec.image_id))).is_none());
}

/// An hour-old Warning event about the snapshot's name never fails the wait; one of the wait
/// that lasts the stuck grace does.
#[tokio::test(start_paused = true)]
async fn only_current_warning_events_fail_a_snapshot_wait() {
    use support::events::{an_hour_ago, EventSpec};
    let (cluster, executor, source) = cluster().await;
    let grace = executor.config().stuck_grace;
    let wait_for = |spec: &BackupJobSpec, message: &str, old: bool| {
        let event = EventSpec::warning("VolumeSnapshot", &format!("snap-{}", spec.image_id), "SnapshotFailed", message);
        if old { event.at(an_hour_ago()).count(3) } else { event }.put(&cluster.api);
        let (executor, job) = (executor.clone(), toygres_core::JobRef::backup(spec.image_id));
        tokio::spawn(async move { executor.wait_for_job(&job, 4 * grace, Arc::new(NoProgress)).await })
    };
    for old in [true, false] {
        let spec = backup_spec(source.clone(), ImageFormat::Clone, Some(data_key()));
        let job = executor.start_backup_job(&spec).await.unwrap();
        cluster.run_job(&job).await;
        let wait = wait_for(&spec, "failed to take snapshot: context deadline exceeded", old);
        tokio::time::sleep(grace + Duration::from_secs(60)).await;
        if old {
            assert!(!wait.is_finished(), "an old event failed the wait: {:?}", wait.await);
            let controller = cluster.snapshot_controller(json!({"readyToUse": true, "restoreSize": "20Gi"}));
            wait.await.unwrap().unwrap();
            controller.abort();
        } else {
            let err = wait.await.unwrap().unwrap_err().to_string();
            assert!(err.contains("stuck for 180s") && err.contains("context deadline exceeded"), "{err}");
        }
    }
}

#[tokio::test]
async fn a_restore_provisions_the_pvc_from_the_snapshot_with_the_sources_password_and_type() {
    let (cluster, executor, source) = cluster().await;
    let (image, checksum) = clone_image(&cluster, &executor, &source).await;
    let target = instance("clone", ImageType::PgDurable);
    // The pipeline hands create_volume the image's source password, never the request's.
    executor.create_volume(&target, &Password::new(PASSWORD)).await.unwrap();
    let pvc_path = core("persistentvolumeclaims", &target.resource_name());
    assert!(cluster.api.get(&pvc_path).unwrap()["spec"]["dataSource"].is_null(), "create_volume makes it empty");

    let spec = restore_of(&image, &checksum, &target);
    let job = executor.start_restore_job(&spec).await.unwrap();
    let pvc = cluster.api.get(&pvc_path).unwrap();
    let snapshot = format!("snap-{}", image.image_id);
    assert_eq!(
        pvc["spec"]["dataSource"],
        json!({"apiGroup": "snapshot.storage.k8s.io", "kind": "VolumeSnapshot", "name": snapshot})
    );
    assert_eq!(pvc["spec"]["resources"]["requests"]["storage"], "20Gi", "at least the snapshot's restoreSize");
    let secret = cluster.api.get(&core("secrets", &target.resource_name())).unwrap();
    assert_eq!(secret["data"]["password"], json!(k8s_openapi::ByteString(PASSWORD.as_bytes().to_vec())));
    let object = cluster.api.get(&support::job(&job.name)).unwrap();
    let containers = object["spec"]["template"]["spec"]["containers"].as_array().unwrap();
    assert_eq!(containers.len(), 1, "nothing is downloaded: no fetch container");
    assert_eq!(containers[0]["name"], "prepare");
    assert_eq!(containers[0]["image"], "ghcr.io/toygres/pg-durable:15", "the instance's image type and major");
    assert!(cluster.api.get(&core("secrets", &job.name)).is_none(), "the job needs no Secret");
    for text in [object.to_string(), pvc.to_string()] {
        assert!(!text.contains(PASSWORD));
    }
    cluster.run_job(&job).await;
    executor.wait_for_job(&job, Duration::from_secs(10), Arc::new(NoProgress)).await.unwrap();
    // A re-run keeps the PVC provisioned from the snapshot.
    executor.start_restore_job(&spec).await.unwrap();
    assert_eq!(cluster.api.get(&pvc_path).unwrap()["metadata"]["uid"], pvc["metadata"]["uid"]);

    // Deleting the image removes its snapshot only: the clone's volume does not refer to it.
    executor.delete_image(image.image_id).await.unwrap();
    assert!(cluster.api.get(&volume_snapshot(&snapshot)).is_none());
    assert_eq!(cluster.api.get(&pvc_path).unwrap(), pvc, "the live clone's PVC is untouched");
    executor.delete_image(image.image_id).await.unwrap();
    assert_eq!(executor.list_images().await.unwrap(), vec![]);
    // A restore of the deleted image is refused before its PVC changes.
    let other = instance("late", ImageType::Stock);
    executor.create_volume(&other, &Password::new(PASSWORD)).await.unwrap();
    let err = executor.start_restore_job(&restore_of(&image, &checksum, &other)).await.unwrap_err();
    assert!(matches!(&err, Error::ImageIncomplete { .. }) && err.to_string().contains("is gone"), "{err}");
    let untouched = cluster.api.get(&core("persistentvolumeclaims", &other.resource_name())).unwrap();
    assert!(untouched["spec"]["dataSource"].is_null());
}

#[tokio::test]
async fn a_clone_restore_of_some_databases_is_refused_before_any_call() {
    let (cluster, executor, source) = cluster().await;
    let (image, checksum) = clone_image(&cluster, &executor, &source).await;
    let spec = RestoreJobSpec { databases: Some(vec!["app".into()]), ..restore_of(&image, &checksum, &source) };
    cluster.api.take_calls();
    let err = executor.start_restore_job(&spec).await.unwrap_err();
    assert!(matches!(&err, Error::InvalidRequest { field: "databases", .. }), "{err}");
    assert!(cluster.api.take_calls().is_empty());
}

#[tokio::test]
async fn without_a_snapshot_class_clone_images_are_refused_before_anything_is_created() {
    let (fake, executor) = FakeApi::executor_with(blobs(), config(None));
    let source = instance("source", ImageType::Stock);
    let refused = |err: Error| {
        assert!(matches!(&err, Error::UnsupportedFormat { format: ImageFormat::Clone, .. }), "{err}");
        assert!(err.to_string().contains("K8sConfig::volume_snapshot_class"), "{err}");
    };
    refused(executor.check_source(&source, &Password::new(PASSWORD), ImageFormat::Clone).await.unwrap_err());
    refused(executor.start_backup_job(&backup_spec(source.clone(), ImageFormat::Clone, None)).await.unwrap_err());
    // No clones kept, none touched: no call (a Role without volumesnapshots still works).
    executor.delete_image(ImageId::new()).await.unwrap();
    assert_eq!(executor.list_images().await.unwrap(), vec![]);
    assert_eq!(fake.take_calls(), Vec::<String>::new());
    // Other formats still pass.
    executor.check_source(&source, &Password::new(PASSWORD), ImageFormat::Physical).await.unwrap();
}

#[tokio::test]
async fn an_export_of_a_clone_image_is_refused_not_taken_of_the_running_source() {
    let (cluster, executor, source) = cluster().await;
    let spec = BackupJobSpec {
        from_image: Some(toygres_core::executor::CloneSource {
            image_id: ImageId::new(),
            checksum: format!("sha256:{}", "ab".repeat(32)),
            data_key: None,
        }),
        ..backup_spec(source, ImageFormat::Physical, None)
    };
    cluster.api.take_calls();
    let err = executor.start_backup_job(&spec).await.unwrap_err();
    assert!(matches!(&err, Error::UnsupportedFormat { format: ImageFormat::Physical, .. }), "{err}");
    assert!(cluster.api.take_calls().is_empty(), "no Job, no Secret");
}

#[tokio::test]
async fn reconcile_removes_an_orphan_snapshot_and_keeps_foreign_ones() {
    let (fake, executor) = FakeApi::executor_with(blobs(), config(Some(CLASS)));
    let executor = Arc::new(executor);
    let toygres =
        Toygres::new(Arc::new(MemoryCatalog::new()), Arc::new(ObjectStoreBlobs::in_memory()), executor.clone());
    let orphan = ImageId::new();
    let snapshot = executor.manifests().volume_snapshot(orphan, "pg-gone").unwrap();
    fake.put(&volume_snapshot(&format!("snap-{orphan}")), serde_json::to_value(&snapshot).unwrap());
    let foreign = json!({"apiVersion": "snapshot.storage.k8s.io/v1", "kind": "VolumeSnapshot",
        "metadata": {"name": "nightly", "labels": {"toygres.io/image": ImageId::new().to_string()}},
        "spec": {"source": {"persistentVolumeClaimName": "data"}}});
    fake.put(&volume_snapshot("nightly"), foreign);

    let report = toygres.reconcile().await.unwrap();
    assert_eq!(report.orphan_images, vec![orphan], "{report:?}");
    assert!(fake.get(&volume_snapshot(&format!("snap-{orphan}"))).is_none());
    assert!(fake.get(&volume_snapshot("nightly")).is_some(), "a snapshot toygres does not manage is kept");
    assert!(toygres.reconcile().await.unwrap().is_empty(), "a second reconcile finds nothing");
}

#[test]
fn rendered_clone_manifests_match_the_golden_files() {
    let cfg = K8sConfig { storage_class: Some("managed-csi".into()), ..config(Some(CLASS)) };
    let m = Manifests::new(&cfg);
    let image: ImageId = "0a1b2c3d-4e5f-4a6b-8c7d-9e0f1a2b3c4d".parse().unwrap();
    let mut target = instance("restored", ImageType::PgDurable);
    target.id = "6f1c2a4e-0d3b-4c55-9a8e-1b2c3d4e5f60".parse().unwrap();
    let mut source = instance("source", ImageType::Stock);
    source.id = "1e2d3c4b-5a69-4788-97a6-b5c4d3e2f100".parse().unwrap();
    let transfer = job_transfer(Transfer::Command(command_transfer()), "job", "azure").unwrap();
    let backup = BackupJobSpec {
        image_id: image,
        location: ImageLocation::for_image(image),
        ..backup_spec(source.clone(), ImageFormat::Clone, None)
    };
    let restore =
        RestoreJobSpec { image_id: image, location: ImageLocation::for_image(image), ..restore_spec(&target) };
    let pvc = source.resource_name();
    let clone_source = toygres_k8s::clone::SnapshotSource { pvc: pvc.clone(), size: 10 << 30 };
    use support::golden::yaml;
    let rendered = [
        ("volumesnapshot", yaml(&m.volume_snapshot(image, &pvc).unwrap())),
        ("pvc-from-snapshot", yaml(&m.pvc_from_snapshot(&target, &format!("snap-{image}"), "20Gi").unwrap())),
        ("restore-job-clone", yaml(&m.clone_restore_job(&restore, "16").unwrap())),
        ("backup-job-clone", yaml(&m.clone_backup_job(&backup, &transfer, &clone_source).unwrap())),
    ];
    for (name, text) in rendered {
        assert!(!text.contains(PASSWORD) && !text.contains(SAS), "{name} holds a secret");
        support::golden::check(name, &text);
    }
    // Without a class nothing renders.
    let none = config(None);
    let err = Manifests::new(&none).volume_snapshot(image, &pvc).unwrap_err();
    assert!(matches!(err, Error::UnsupportedFormat { .. }), "{err}");
}
