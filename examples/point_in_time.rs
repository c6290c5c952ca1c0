//! Point-in-time restore on this machine: protects a real PostgreSQL instance (its WAL streams
//! into the blob store), drops a table by mistake, and restores a new instance to the moment
//! just before, with every row committed until then.
//!
//! ```text
//! cargo run --example point_in_time
//! ```
//!
//! Everything lives in a temporary directory and is removed at the end (the catalog in memory,
//! images and the WAL archive as local files, encrypted under a key file of the directory).

use std::sync::Arc;
use std::time::Duration;
use toygres_core::envelope::LocalKeys;
use toygres_core::wal::PointInTime;
use toygres_core::{CreateInstanceRequest, MemoryCatalog, OperationId, Password, Toygres};
use toygres_local::{LocalBlobStore, LocalExecutor};

type BoxResult<T> = Result<T, Box<dyn std::error::Error>>;

/// Stops every server under the executor when dropped, even after an error.
struct StopAll(LocalExecutor);

impl Drop for StopAll {
    fn drop(&mut self) {
        self.0.discard_blocking();
    }
}

#[tokio::main]
async fn main() -> BoxResult<()> {
    let dir = tempfile::tempdir()?;
    let blobs = Arc::new(LocalBlobStore::open(dir.path().join("blobs"))?);
    let executor = LocalExecutor::builder(dir.path().join("local"), blobs.clone()).build()?;
    let _stop = StopAll(executor.clone());
    let keys = Arc::new(LocalKeys::open_or_create(dir.path().join("keys"))?);
    let t = Toygres::new(Arc::new(MemoryCatalog::new()), blobs, Arc::new(executor.clone())).with_image_keys(keys);

    let password = Password::generate();
    let source = executor.provision_source(&t, "orders", &password).await?;
    let db = executor.cluster(&source.spec())?.connect("postgres", &password).await?;
    db.batch_execute("CREATE TABLE orders AS SELECT g AS id FROM generate_series(1, 1000) g").await?;

    // Protect it: WAL archiving starts, and a physical base image is taken once.
    t.protect(source.id).await?;
    if let Some(base) = t.base_image_request(source.id).await? {
        t.create_image(OperationId::new(), base).await?;
    }
    while t.recovery_window(source.id).await?.earliest.is_none() {
        tokio::time::sleep(Duration::from_millis(100)).await;
    }

    db.batch_execute("INSERT INTO orders SELECT g FROM generate_series(1001, 2000) g").await?;
    let before = chrono::Utc::now();
    db.batch_execute("DROP TABLE orders").await?;
    let window = t.recovery_window(source.id).await?;
    println!("recovery window: {} (RPO now {:?} s)", window.describe(), window.rpo_seconds);

    let request = CreateInstanceRequest::at_point_in_time("orders-undo", PointInTime::at(source.id, before));
    let undo = t.create_instance(OperationId::new(), request).await?;
    let restored = executor.cluster(&undo.spec())?.connect("postgres", &password).await?;
    let rows: i64 = restored.query_one("SELECT count(*) FROM orders", &[]).await?.get(0);
    println!("restored {} at {before}: orders has {rows} rows", undo.name);
    assert_eq!(rows, 2000, "every row committed before the drop");
    Ok(())
}
