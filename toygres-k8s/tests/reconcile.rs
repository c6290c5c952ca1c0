//! `list_instances` over the fake API server, and `Toygres::reconcile` removing, through it, the
//! objects of instances the catalog has no live record of.

mod support;

use serde_json::json;
use std::sync::Arc;
use support::*;
use toygres_core::{
    CatalogStore, ClusterExecutor, ImageId, ImageLocation, ImageType, InstanceId, InstanceSpec, InstanceState,
    InstanceUpdate, MemoryCatalog, NewInstance, ObjectStoreBlobs, OperationId, Password, Toygres,
};

fn instance(name: &str) -> InstanceSpec {
    InstanceSpec {
        id: InstanceId::new(),
        name: name.into(),
        image_type: ImageType::Stock,
        pg_version: Some("15.18".into()),
        dns_label: None,
    }
}

fn password() -> Password {
    Password::new(PASSWORD)
}

/// Everything the executor creates for an instance: volume, Secret, ConfigMap, restore Job and
/// its Secret, NetworkPolicy, StatefulSet and Service.
async fn everything(executor: &dyn ClusterExecutor, i: &InstanceSpec) {
    executor.create_volume(i, &password()).await.unwrap();
    executor.start_restore_job(&restore_spec(i)).await.unwrap();
    executor.deploy_from_volume(i).await.unwrap();
}

/// The paths of the fake API server's objects that name `id`.
fn paths_of(fake: &FakeApi, id: InstanceId) -> Vec<String> {
    fake.paths().into_iter().filter(|p| p.contains(&id.to_string())).collect()
}

#[tokio::test]
async fn list_instances_lists_every_labelled_instance_once_sorted() {
    let (fake, executor) = FakeApi::executor(blobs());
    assert_eq!(executor.list_instances().await.unwrap(), vec![], "an empty namespace holds no instance");

    let (deployed, volume_only, job_only) = (instance("deployed"), instance("volume"), instance("job"));
    everything(&executor, &deployed).await;
    executor.create_volume(&volume_only, &password()).await.unwrap();
    // A restore Job whose instance's other objects are gone (a crash mid-delete).
    executor.start_restore_job(&restore_spec(&job_only)).await.unwrap();
    fake.remove(&core("secrets", &format!("restore-{}", job_only.id)));
    // Not instances: a backup's Job and Secret, objects whose label is no instance id as the
    // executor writes it, and an instance label on an object toygres does not manage.
    executor
        .start_backup_job(&toygres_core::BackupJobSpec {
            image_id: ImageId::new(),
            source: deployed.clone(),
            source_password: password(),
            location: ImageLocation::for_image(ImageId::new()),
            image_type: ImageType::Stock,
            format: Default::default(),
            data_key: None,
            from_image: None,
        })
        .await
        .unwrap();
    let simple = InstanceId::new().to_string().replace('-', "");
    let stray = [
        ("configmaps", "not-an-id", json!({"app.kubernetes.io/managed-by": "toygres", "toygres.io/instance": "x"})),
        ("secrets", "simple", json!({"app.kubernetes.io/managed-by": "toygres", "toygres.io/instance": simple})),
        ("services", "foreign", json!({"app": "someone-else", "toygres.io/instance": InstanceId::new().to_string()})),
    ];
    for (resource, name, labels) in stray {
        fake.put(&core(resource, name), json!({"apiVersion": "v1", "metadata": {"name": name, "labels": labels}}));
    }
    fake.take_calls();

    let listed = executor.list_instances().await.unwrap();
    let mut expected = vec![deployed.id, volume_only.id, job_only.id];
    expected.sort();
    assert_eq!(listed, expected);

    let selector = "app.kubernetes.io/managed-by=toygres,toygres.io/instance";
    let expected_calls = vec![
        format!("GET /apis/apps/v1/namespaces/{NS}/statefulsets?labelSelector={selector}"),
        format!("GET {}?labelSelector={selector}", core_all("services")),
        format!("GET /apis/batch/v1/namespaces/{NS}/jobs?labelSelector={selector}"),
        format!("GET {}?labelSelector={selector}", core_all("secrets")),
        format!("GET {}?labelSelector={selector}", core_all("configmaps")),
        format!("GET {}?labelSelector={selector}", core_all("persistentvolumeclaims")),
        format!("GET /apis/networking.k8s.io/v1/namespaces/{NS}/networkpolicies?labelSelector={selector}"),
    ];
    assert_eq!(fake.take_calls(), expected_calls, "one list call per kind delete_instance removes, and nothing else");

    executor.delete_instance(&deployed).await.unwrap();
    let mut expected = vec![volume_only.id, job_only.id];
    expected.sort();
    assert_eq!(executor.list_instances().await.unwrap(), expected, "a deleted instance is no longer listed");
}

#[tokio::test]
async fn reconcile_removes_the_objects_of_instances_without_a_live_record_and_keeps_the_recorded() {
    let (fake, executor) = FakeApi::executor(blobs());
    let executor = Arc::new(executor);
    let catalog = Arc::new(MemoryCatalog::new());
    let toygres = Toygres::new(catalog.clone(), Arc::new(ObjectStoreBlobs::in_memory()), executor.clone());

    let kept = catalog.create_instance(OperationId::new(), &NewInstance::existing("kept", password())).await.unwrap();
    let mut provisioning = NewInstance::existing("failed", password());
    provisioning.state = InstanceState::Provisioning;
    let failed = catalog.create_instance(OperationId::new(), &provisioning).await.unwrap();
    let failure = InstanceUpdate::Failed { reason: "the server never became ready".into() };
    catalog.update_instance(failed.id, InstanceState::Provisioning, failure).await.unwrap();
    let orphan = instance("orphan");
    for i in [&kept.spec(), &failed.spec(), &orphan] {
        everything(&*executor, i).await;
    }
    let kept_objects = paths_of(&fake, kept.id);
    assert_eq!(kept_objects.len(), 8, "{kept_objects:#?}");
    assert_eq!(paths_of(&fake, orphan.id).len(), 8);

    let report = toygres.reconcile().await.unwrap();
    let mut removed = vec![orphan.id, failed.id];
    removed.sort();
    assert_eq!(report.orphan_instances, removed, "{report:?}");
    assert!(report.orphan_images.is_empty() && report.staging.is_empty(), "{report:?}");
    assert_eq!(paths_of(&fake, orphan.id), Vec::<String>::new(), "the unrecorded instance's objects are removed");
    assert_eq!(paths_of(&fake, failed.id), Vec::<String>::new(), "the failed instance's objects are removed");
    assert_eq!(paths_of(&fake, kept.id), kept_objects, "the recorded instance keeps every object");
    assert_eq!(toygres.get_instance(kept.id).await.unwrap().state, InstanceState::Running);

    assert_eq!(executor.list_instances().await.unwrap(), vec![kept.id]);
    assert!(toygres.reconcile().await.unwrap().is_empty(), "a second reconcile finds nothing");
}
