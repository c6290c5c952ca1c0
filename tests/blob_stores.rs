//! The blob conformance suite (`toygres_core::testing::blob_suite`) on every real store: local
//! files, Azure Blob (Azurite, `.ci/azure.sh`) and S3 (moto, `.ci/moto.sh`). The in-memory store
//! runs it in toygres-core. Under `CI=true` a missing emulator fails the test.

#[path = "azure_support.rs"]
mod azure_support;
#[path = "moto_support.rs"]
mod moto_support;

use toygres_core::testing::blob_suite;
use toygres_core::{BlobStore, ImageId, ImageLocation};
use toygres_local::LocalBlobStore;
use toygres_s3::S3BlobStore;

#[tokio::test]
async fn local_files() {
    let root = tempfile::tempdir().unwrap();
    let store = LocalBlobStore::open(root.path()).unwrap();
    blob_suite::run_all(&store).await;
    let left: Vec<_> = std::fs::read_dir(root.path().join("images")).unwrap().collect();
    assert!(left.is_empty(), "deleted images leave no directories: {left:?}");
}

#[tokio::test]
async fn azure_blob_on_azurite() {
    let Some(tools) = azure_support::tools() else { return };
    let store = azure_support::emulator_store(&tools, &azure_support::unique_container("suite"));
    store.ensure_container().await.unwrap();
    blob_suite::run_all(&store).await;
}

fn s3(url: &str, bucket: &str, secret: &str) -> S3BlobStore {
    S3BlobStore::builder(bucket).endpoint(url).credentials("testing", secret).build().unwrap()
}

#[tokio::test]
async fn s3_on_moto() {
    let Some(url) = moto_support::url() else { return };
    let bucket = format!("toygres-{}", &ImageId::new().to_string()[..8]);
    moto_support::create_bucket(&url, &bucket).await;
    let store = s3(&url, &bucket, "moto-secret-Qz9");
    blob_suite::run_all(&store).await;
    assert!(!format!("{store:?}").contains("moto-secret-Qz9"), "the secret key never appears in Debug");
}

#[tokio::test]
async fn s3_errors_are_typed() {
    let Some(url) = moto_support::url() else { return };
    let missing = s3(&url, &format!("missing-{}", &ImageId::new().to_string()[..8]), "x");
    let err = missing.stat(&ImageLocation::for_image(ImageId::new())).await.unwrap_err();
    assert_eq!(err.class(), toygres_core::ErrorClass::NotFound, "a missing bucket: {err}");
    assert!(S3BlobStore::builder("a/b").build().is_err(), "a bucket name with a slash is refused");
}
