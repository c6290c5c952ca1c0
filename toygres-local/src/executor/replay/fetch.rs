//! Fetching the archive's objects in parallel, each authenticated and decompressed
//! ([`WalArchive::decode`]) off the runtime's threads, then placed atomically.

use super::{Spool, BACKEND};
use futures::{StreamExt, TryStreamExt};
use std::sync::Arc;
use std::time::Instant;
use toygres_core::envelope::DataKey;
use toygres_core::wal::{WalArchive, PARTIAL_SUFFIX};
use toygres_core::{BlobStore, Error, Result};

/// Objects fetched at the same time.
pub(crate) const PARALLEL: usize = 4;

/// What a fetch moved.
#[derive(Debug, Clone, Copy, Default)]
pub(crate) struct Stats {
    /// Raw WAL bytes placed.
    pub(crate) bytes: u64,
    /// Seconds from the first request to the last file placed.
    pub(crate) seconds: f64,
}

#[derive(Clone)]
pub(super) struct Fetcher {
    blobs: Arc<dyn BlobStore>,
    archive: WalArchive,
    key: Option<DataKey>,
    spool: Spool,
}

impl Fetcher {
    pub(super) fn new(blobs: Arc<dyn BlobStore>, archive: WalArchive, key: Option<DataKey>, spool: Spool) -> Self {
        Self { blobs, archive, key, spool }
    }

    /// Fetches and places every object of `names` ([`PARALLEL`] at a time, in order of need).
    /// A segment being written is placed under its segment's name.
    pub(super) async fn all(self, names: Vec<String>) -> Result<Stats> {
        let started = Instant::now();
        let bytes: u64 = futures::stream::iter(names)
            .map(|name| self.one(name))
            .buffer_unordered(PARALLEL)
            .try_fold(0u64, |sum, n| async move { Ok(sum + n) })
            .await?;
        Ok(Stats { bytes, seconds: started.elapsed().as_secs_f64() })
    }

    async fn one(&self, name: String) -> Result<u64> {
        let stored = self.blobs.read(&self.archive.location(), &name).await?;
        let this = self.clone();
        tokio::task::spawn_blocking(move || {
            let raw = this.archive.decode(this.key.as_ref(), &name, &stored)?;
            this.spool.place(name.trim_end_matches(PARTIAL_SUFFIX), &raw, 0o640)?;
            Ok(raw.len() as u64)
        })
        .await
        .map_err(|e| Error::backend(BACKEND, "placing WAL", e))?
    }
}
