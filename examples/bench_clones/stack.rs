//! The toygres side of the clone bench: one stack (SQLite catalog, images on local disk, encrypted
//! as by default, a [`LocalExecutor`]) whose base directory is on the reflink filesystem, a
//! pgbench source, images of it, and timed restores to ready instances, each checked and deleted.

use crate::joblog;
use crate::phases::{PhaseLog, StepPhases};
use crate::BoxResult;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::{Duration, Instant};
use toygres_cms_sqlite::SqliteCatalog;
use toygres_core::crypto::CatalogKey;
use toygres_core::{
    CreateImageRequest, CreateInstanceRequest, ImageFormat, ImageId, InstanceId, InstanceRecord, OperationId, Password,
    Toygres,
};
use toygres_local::{LocalBlobStore, LocalCluster, LocalExecutor};

/// The database pgbench fills.
pub const DATABASE: &str = "bench";

/// The toygres stack under test, in one directory.
pub struct Stack {
    pub toygres: Toygres,
    pub executor: LocalExecutor,
    phases: PhaseLog,
    /// The executor's job logs, and where the bench keeps a restore job's log ([`joblog`]).
    jobs: (PathBuf, PathBuf),
}

/// One image taken: its time and id, and its stored bytes (a clone image: its data directory).
pub struct Imaged {
    pub time: Duration,
    pub id: ImageId,
    pub size: u64,
}

impl Stack {
    pub fn new(dir: &Path) -> BoxResult<Self> {
        let blobs = Arc::new(LocalBlobStore::open(dir.join("images"))?);
        let executor = LocalExecutor::builder(dir, blobs.clone()).build()?;
        let catalog = Arc::new(SqliteCatalog::open(dir.join("catalog.db"), CatalogKey::generate())?);
        let keys = Arc::new(toygres_core::envelope::LocalKeys::open_or_create(dir.join("image-keys"))?);
        let phases = PhaseLog::default();
        let toygres = Toygres::new(catalog, blobs, Arc::new(executor.clone()))
            .with_progress(Arc::new(phases.clone()))
            .with_image_keys(keys);
        Ok(Self { toygres, executor, phases, jobs: (dir.join("jobs"), dir.join("kept-job-logs")) })
    }

    /// A running source instance holding a pgbench database of `scale`, and its cluster.
    pub async fn source(&self, scale: u32, password: &Password) -> BoxResult<(InstanceRecord, LocalCluster)> {
        let record = self.executor.provision_source(&self.toygres, &format!("source-{scale}"), password).await?;
        let cluster = self.executor.cluster(&record.spec())?;
        crate::pgbench::load(&cluster, password, DATABASE, scale).await?;
        Ok((record, cluster))
    }

    /// One toygres image of `source` in `format` (clone or physical), timed until it is ready.
    pub async fn image(&self, source: &InstanceRecord, format: ImageFormat) -> BoxResult<Imaged> {
        let mut request = CreateImageRequest::new(format!("{format}-{}", source.name), source.id);
        request.format = format;
        let started = Instant::now();
        let image = self.toygres.create_image(OperationId::new(), request).await?;
        let time = started.elapsed();
        if image.format != format {
            return Err(format!("image {} is {}, not {format}", image.id, image.format).into());
        }
        Ok(Imaged { time, id: image.id, size: image.size_bytes.unwrap_or(0) })
    }

    /// Restores `image` to a ready instance named `name` (`create_instance` returns once it runs
    /// and its connection test passed): that time, its phases and the instance. Then, untimed,
    /// checks that it holds `accounts` pgbench accounts (deleting it when it does not).
    pub async fn restore(
        &self,
        image: ImageId,
        name: String,
        password: &Password,
        accounts: i64,
    ) -> BoxResult<(Duration, StepPhases, InstanceId)> {
        self.phases.clear();
        let tail = joblog::Tail::start(self.jobs.0.clone(), self.jobs.1.clone());
        let started = Instant::now();
        let restored = self.toygres.create_instance(OperationId::new(), CreateInstanceRequest::restore(name, image));
        let restored = restored.await;
        let elapsed = started.elapsed();
        let log = tail.stop().await;
        let restored = restored?;
        let mut phases = self.phases.take();
        phases.extend(joblog::segments(&log));
        let counted = self.accounts(&restored, password).await;
        let wrong = match counted {
            Ok(n) if n == accounts => return Ok((elapsed, phases, restored.id)),
            Ok(n) => format!("instance {} restored from {image} holds {n} accounts, not {accounts}", restored.name),
            Err(e) => format!("counting the accounts of instance {} restored from {image}: {e}", restored.name),
        };
        self.toygres.delete_instance(restored.id).await?;
        Err(wrong.into())
    }

    /// `SELECT count(*) FROM pgbench_accounts` in `instance`.
    async fn accounts(&self, instance: &InstanceRecord, password: &Password) -> BoxResult<i64> {
        let client = self.executor.cluster(&instance.spec())?.connect(DATABASE, password).await?;
        Ok(client.query_one("SELECT count(*) FROM pgbench_accounts", &[]).await?.get(0))
    }
}
