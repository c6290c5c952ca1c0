//! A local instance imaged into Azure Blob (Azurite) by the real azcopy, restored from it, and compared
//! with the source; images whose blobs were corrupted or deleted in Azurite are refused. The local
//! executor runs the exact azcopy command lines (`--from-to PipeBlob` / `BlobPipe`) that the Kubernetes
//! jobs run. Needs `.ci/azure.sh` (see `azure_support.rs`).

#[path = "azure_support.rs"]
mod azure_support;
#[path = "local/support.rs"]
mod support;

use bytes::Bytes;
use object_store::ObjectStoreExt;
use std::sync::Arc;
use std::time::Duration;
use support::{image_of, rt, snapshot, source_instance, spec, toygres, unrecorded_spec, StopAll};
use toygres_core::manifest::{database_object_name, MANIFEST_NAME};
use toygres_core::{
    BlobStore, ClusterExecutor, CreateInstanceRequest, Error, ImageLocation, ImageState, InstanceState, NoProgress,
    OperationId, Password, RestoreJobSpec,
};
use toygres_local::fidelity::sample::load_sample_data;

#[test]
fn image_in_azurite_via_azcopy_restores_equal_and_damaged_images_are_refused() {
    let Some(tools) = azure_support::tools() else { return };
    rt().block_on(async {
        let base = tempfile::Builder::new().prefix("toygres-azure-test-").tempdir().unwrap();
        let azcopy_dir = base.path().join("azcopy");
        let settings = toygres_azure::AzcopySettings {
            program: tools.azcopy.clone(),
            work_dir: Some(azcopy_dir.display().to_string()),
            ..Default::default()
        };
        let store = toygres_azure::AzureBlobStore::builder()
            .emulator(&tools.azurite_url)
            .container(azure_support::unique_container("e2e"))
            .azcopy(settings)
            .build()
            .unwrap();
        store.ensure_container().await.unwrap();
        let blobs: Arc<dyn BlobStore> = Arc::new(store.clone());
        let (executor, _catalog, t) = toygres(base.path(), blobs);
        let _stop_all = StopAll(executor.clone());

        // Source instance with sample data → image in Azurite through azcopy.
        let password = Password::generate();
        let source = source_instance(&executor, &t, "az-source", &password).await;
        load_sample_data(&executor.cluster(&spec(&source)).unwrap().params(), &password).await.unwrap();
        let source_snapshot = snapshot(&executor, &source, &password).await;
        let image = image_of(&t, &source, "az-image").await;
        assert_eq!(image.state, ImageState::Ready);
        let location = ImageLocation::for_image(image.id);
        let names: Vec<String> = store.stat(&location).await.unwrap().into_iter().map(|o| o.name).collect();
        assert!(names.contains(&MANIFEST_NAME.into()) && names.contains(&database_object_name(0)), "{names:?}");

        // Restore through azcopy → equal to the source, with the source's password.
        let restored =
            t.create_instance(OperationId::new(), CreateInstanceRequest::restore("az-copy", image.id)).await.unwrap();
        assert_eq!(restored.state, InstanceState::Running);
        let copy = snapshot(&executor, &restored, &password).await;
        let diff = source_snapshot.diff(&copy);
        assert!(diff.is_empty(), "restored instance differs from the source:\n{}", diff.join("\n"));
        assert!(copy.counts().2 > 0, "the sample rows were restored");
        t.delete_instance(restored.id).await.unwrap();

        // Corrupt one dump in Azurite (same size): refused by the control plane and by the restore job,
        // which downloads it with azcopy and checks it before loading anything.
        let victim = database_object_name(0);
        let mut bytes = store.read(&location, &victim).await.unwrap().to_vec();
        let middle = bytes.len() / 2;
        bytes[middle] ^= 0x01;
        store.write(&location, &victim, Bytes::from(bytes)).await.unwrap();
        let err = t.create_instance(OperationId::new(), CreateInstanceRequest::restore("az-corrupt", image.id)).await;
        assert!(matches!(err, Err(Error::ChecksumMismatch { ref object, .. }) if *object == victim), "{err:?}");

        let target = unrecorded_spec("az-corrupt-job");
        executor.create_volume(&target, &password).await.unwrap();
        let job = RestoreJobSpec {
            image_id: image.id,
            location: location.clone(),
            checksum: image.checksum.clone().unwrap(),
            instance: target.clone(),
            databases: None,
            data_key: t.data_key(&image).await.unwrap(),
            recovery: None,
        };
        let job = executor.start_restore_job(&job).await.unwrap();
        match executor.wait_for_job(&job, Duration::from_secs(120), Arc::new(NoProgress)).await {
            Err(Error::JobFailed { reason, logs, .. }) => {
                assert!(reason.contains("corrupted"), "{reason}");
                assert!(!logs.contains("sig="), "the job log holds no SAS: {logs}");
            }
            other => panic!("expected the restore job to refuse the corrupted image, got {other:?}"),
        }
        let cluster = executor.cluster(&target).unwrap();
        assert!(!cluster.is_initialized() && !cluster.is_running(), "nothing was loaded");
        executor.delete_instance(&target).await.unwrap();

        // Delete the blob in Azurite: the image is incomplete.
        store.object_store().delete(&object_store::path::Path::from(location.object(&victim))).await.unwrap();
        let err = t.create_instance(OperationId::new(), CreateInstanceRequest::restore("az-missing", image.id)).await;
        assert!(matches!(err, Err(Error::ImageIncomplete { image: id, .. }) if id == image.id), "{err:?}");
        let err = err.unwrap_err().to_string();
        assert!(err.contains(&victim) && err.contains("cannot be restored"), "{err}");

        t.delete_image(image.id).await.unwrap();
        assert!(store.stat(&location).await.unwrap().is_empty(), "deleting the image removes its blobs");
        executor.delete_instance(&spec(&source)).await.unwrap();
    });
}
