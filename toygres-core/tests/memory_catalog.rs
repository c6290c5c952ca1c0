//! The catalog conformance suite against [`MemoryCatalog`], the reference implementation.

async fn fresh() -> toygres_core::MemoryCatalog {
    toygres_core::MemoryCatalog::new()
}

toygres_core::catalog_conformance_tests!(fresh);

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn run_all_passes_on_the_memory_catalog() {
    toygres_core::testing::catalog_suite::run_all(fresh).await;
}

#[tokio::test]
async fn in_memory_blobs_pass_the_blob_suite() {
    toygres_core::testing::blob_suite::run_all(&toygres_core::ObjectStoreBlobs::in_memory()).await;
}
