//! `AzureBlobStore` against the Azure Storage emulator (Azurite), and the rendered azcopy commands run
//! by the real azcopy. Needs `.ci/azure.sh` (see `azure_support.rs`).

#[path = "azure_support.rs"]
mod azure_support;

use azure_support::{emulator_store, tools, unique_container};
use bytes::Bytes;
use std::process::Stdio;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use toygres_azure::{AzureAuth, AzureBlobStore};
use toygres_core::{BlobStore, CommandTransfer, Error, ImageId, ImageLocation, StoredObject, Transfer};

#[tokio::test]
async fn put_stat_list_read_delete() {
    let Some(tools) = tools() else { return };
    let store = emulator_store(&tools, &unique_container("crud"));
    store.ensure_container().await.unwrap();
    let (a, b) = (ImageLocation::for_image(ImageId::new()), ImageLocation::for_image(ImageId::new()));
    store.write(&a, "manifest.json", Bytes::from_static(b"{}")).await.unwrap();
    store.write(&a, "db-0000.dump.zst", Bytes::from(vec![7u8; 3000])).await.unwrap();
    store.write(&b, "manifest.json", Bytes::from_static(b"{\"b\":1}")).await.unwrap();

    let objects = store.stat(&a).await.unwrap();
    assert_eq!(
        objects,
        vec![
            StoredObject { name: "db-0000.dump.zst".into(), size: 3000 },
            StoredObject { name: "manifest.json".into(), size: 2 }
        ]
    );
    assert_eq!(store.read(&b, "manifest.json").await.unwrap(), Bytes::from_static(b"{\"b\":1}"));
    let mut expected = vec![a.image_id, b.image_id];
    expected.sort();
    assert_eq!(store.list_images().await.unwrap(), expected);
    let missing = store.read(&a, "globals.sql.zst").await.unwrap_err();
    assert!(matches!(missing, Error::ImageIncomplete { image, .. } if image == a.image_id), "{missing}");

    store.delete(&a).await.unwrap();
    assert!(store.stat(&a).await.unwrap().is_empty());
    store.delete(&a).await.unwrap(); // idempotent
    assert_eq!(store.list_images().await.unwrap(), vec![b.image_id]);
}

#[tokio::test]
async fn ensure_container_is_idempotent() {
    let Some(tools) = tools() else { return };
    let store = emulator_store(&tools, &unique_container("idem"));
    let location = ImageLocation::for_image(ImageId::new());
    let before = store.stat(&location).await.unwrap_err();
    assert!(matches!(before, Error::Backend { .. }), "listing a missing container must fail: {before}");
    store.ensure_container().await.unwrap();
    store.write(&location, "manifest.json", Bytes::from_static(b"{}")).await.unwrap();
    store.ensure_container().await.unwrap(); // 409: exists, still fine, content kept
    store.ensure_container().await.unwrap();
    assert_eq!(store.stat(&location).await.unwrap().len(), 1);
}

#[tokio::test]
async fn a_wrong_key_is_a_clear_error_without_the_key() {
    let Some(tools) = tools() else { return };
    let key = "d3Jvbmcta2V5LXdyb25nLWtleS13cm9uZy1rZXk=";
    let store = AzureBlobStore::builder()
        .account("devstoreaccount1")
        .endpoint(format!("{}/devstoreaccount1", tools.azurite_url))
        .container(unique_container("key"))
        .auth(AzureAuth::AccessKey(toygres_core::Password::new(key)))
        .retry(toygres_azure::RetryConfig { max_retries: 0, ..Default::default() })
        .build()
        .unwrap();
    let err = store.ensure_container().await.unwrap_err();
    let shown = format!("{err} {err:?}");
    assert!(shown.contains("403") && shown.contains("Storage Blob Data Contributor"), "{shown}");
    assert!(!shown.contains(key), "{shown}");
}

/// The SAS the emulator store derives for azcopy also works as a SAS-mode store's credential.
#[tokio::test]
async fn derived_container_sas_is_accepted() {
    let Some(tools) = tools() else { return };
    let container = unique_container("sas");
    let store = emulator_store(&tools, &container);
    store.ensure_container().await.unwrap();
    let location = ImageLocation::for_image(ImageId::new());
    let Transfer::Command(azcopy) = store.transfer(&location) else { panic!("azcopy expected") };
    let sas = azcopy.url_query.clone().expect("emulator jobs get a SAS");
    let sas_store = AzureBlobStore::builder()
        .account("devstoreaccount1")
        .endpoint(format!("{}/devstoreaccount1", tools.azurite_url))
        .container(&container)
        .auth(AzureAuth::Sas(sas.clone()))
        .build()
        .unwrap();
    sas_store.write(&location, "manifest.json", Bytes::from_static(b"{}")).await.unwrap();
    assert_eq!(store.stat(&location).await.unwrap().len(), 1);
    assert!(!format!("{sas_store:?}").contains(sas.expose()));
}

async fn run(c: &CommandTransfer, args: &[String], name: &str, stdin: Option<&[u8]>) -> Vec<u8> {
    let mut cmd = tokio::process::Command::new(&c.program);
    cmd.args(c.render(args, name)).envs(c.env.iter().cloned()).kill_on_drop(true);
    cmd.stdin(if stdin.is_some() { Stdio::piped() } else { Stdio::null() });
    let mut child = cmd.stdout(Stdio::piped()).stderr(Stdio::piped()).spawn().unwrap();
    if let Some(bytes) = stdin {
        let mut pipe = child.stdin.take().unwrap();
        pipe.write_all(bytes).await.unwrap();
        drop(pipe);
    }
    let mut out = Vec::new();
    child.stdout.take().unwrap().read_to_end(&mut out).await.unwrap();
    let result = child.wait_with_output().await.unwrap();
    let stderr = String::from_utf8_lossy(&result.stderr);
    let sas = c.url_query.as_ref().map(|q| q.expose().to_string()).unwrap_or_default();
    assert!(result.status.success(), "azcopy failed: {}", toygres_core::error::redact(&stderr, &sas));
    out
}

/// The exact upload (`--from-to PipeBlob`, from stdin) and download (`--from-to BlobPipe`, to stdout)
/// command lines the jobs run, run by the real azcopy against Azurite.
#[tokio::test]
async fn azcopy_streams_up_and_down() {
    let Some(tools) = tools() else { return };
    let scratch = tempfile::tempdir().unwrap();
    let settings = toygres_azure::AzcopySettings {
        program: tools.azcopy.clone(),
        block_size_mb: 1,
        work_dir: Some(scratch.path().display().to_string()),
        ..Default::default()
    };
    let store = AzureBlobStore::builder()
        .emulator(&tools.azurite_url)
        .container(unique_container("azcopy"))
        .azcopy(settings)
        .build()
        .unwrap();
    store.ensure_container().await.unwrap();
    let location = ImageLocation::for_image(ImageId::new());
    let Transfer::Command(c) = store.transfer(&location) else { panic!("azcopy expected") };
    assert!(c.login.is_none());
    // 2.5 blocks of not-quite-random bytes.
    let data: Vec<u8> = (0..(5u32 << 19)).map(|i| (i.wrapping_mul(2_654_435_761) >> 13) as u8).collect();
    run(&c, &c.upload_from_stdin, "db-0000.dump.zst", Some(&data)).await;
    let stat = store.stat(&location).await.unwrap();
    assert_eq!(stat, vec![StoredObject { name: "db-0000.dump.zst".into(), size: data.len() as u64 }]);
    let back = run(&c, &c.download_to_stdout, "db-0000.dump.zst", None).await;
    assert_eq!(back.len(), data.len(), "download must write only the blob's bytes to stdout");
    assert!(back == data, "downloaded bytes differ");
}
