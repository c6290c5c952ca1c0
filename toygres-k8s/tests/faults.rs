//! What a real cluster does that a happy path never shows, against the fake API server: objects
//! being deleted, pods of an older Job of the same name, stuck pods, evictions, Azure DNS labels.

mod support;

use serde_json::json;
use support::*;
use toygres_core::{BackupJobSpec, ClusterExecutor, ImageId, ImageLocation, ImageType, InstanceId, InstanceSpec};
use toygres_core::{Password, RestoreJobSpec};

fn instance() -> InstanceSpec {
    InstanceSpec {
        id: InstanceId::new(),
        name: "restored".into(),
        image_type: ImageType::Stock,
        pg_version: Some("16.4".into()),
        dns_label: Some("restored-db".into()),
    }
}

fn backup_spec() -> BackupJobSpec {
    let image = ImageId::new();
    BackupJobSpec {
        image_id: image,
        source: instance(),
        source_password: Password::new(PASSWORD),
        location: ImageLocation::for_image(image),
        image_type: ImageType::Stock,
    }
}

fn restore_spec(instance: &InstanceSpec) -> RestoreJobSpec {
    let image = ImageId::new();
    RestoreJobSpec {
        image_id: image,
        location: ImageLocation::for_image(image),
        checksum: format!("sha256:{}", "ab".repeat(32)),
        instance: instance.clone(),
    }
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
    let no_account = toygres_k8s::K8sConfig { job_service_account: None, ..toygres_k8s::K8sConfig::default() };
    let err = no_account.validate().unwrap_err();
    assert!(matches!(&err, toygres_core::Error::InvalidRequest { field: "job_service_account", .. }), "{err}");
    let sas_only = toygres_k8s::K8sConfig { workload_identity: false, ..no_account };
    sas_only.validate().unwrap();
}
