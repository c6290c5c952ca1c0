//! [`LocalExecutorBuilder`].

use super::{Compression, Inner, Jobs, LocalExecutor};
use crate::cluster::{create_traversable_dir, PgBinaries, ServerUser};
use std::ops::RangeInclusive;
use std::path::PathBuf;
use std::sync::Arc;
use toygres_core::{BlobStore, Result};

/// Default of [`LocalExecutorBuilder::split_load_from`].
pub const DEFAULT_SPLIT_LOAD_FROM: u64 = 64 << 20;

/// Configures a [`LocalExecutor`].
pub struct LocalExecutorBuilder {
    base_dir: PathBuf,
    blobs: Arc<dyn BlobStore>,
    bin_dir: Option<PathBuf>,
    os_user: String,
    isolate: bool,
    ports: RangeInclusive<u16>,
    compression: Compression,
    split_load_from: u64,
}

impl LocalExecutorBuilder {
    pub(crate) fn new(base_dir: PathBuf, blobs: Arc<dyn BlobStore>) -> Self {
        Self {
            base_dir,
            blobs,
            bin_dir: None,
            os_user: "postgres".into(),
            isolate: true,
            ports: 15432..=16431,
            compression: Compression::default(),
            split_load_from: DEFAULT_SPLIT_LOAD_FROM,
        }
    }

    /// PostgreSQL's server bin directory (default: discovered, see [`PgBinaries::discover`]).
    pub fn bin_dir(mut self, dir: impl Into<PathBuf>) -> Self {
        self.bin_dir = Some(dir.into());
        self
    }

    /// OS user running the servers when this process is root (default `postgres`).
    pub fn os_user(mut self, name: impl Into<String>) -> Self {
        self.os_user = name.into();
        self
    }

    /// Whether each instance's server runs as an OS user of its own, created with its volume and
    /// removed with it (default `true`; only when this process is root, otherwise every server
    /// runs as this process's user). See [`crate::cluster::identity`] for why: whoever holds an
    /// instance's password runs programs as its server's OS user.
    pub fn isolate_instances(mut self, isolate: bool) -> Self {
        self.isolate = isolate;
        self
    }

    /// Ports instances may listen on, on 127.0.0.1 (default 15432..=16431).
    pub fn port_range(mut self, ports: RangeInclusive<u16>) -> Self {
        self.ports = ports;
        self
    }

    /// zstd settings of the images written.
    pub fn compression(mut self, compression: Compression) -> Self {
        self.compression = compression;
        self
    }

    /// A logical restore loads a database whose dump holds at least `bytes` (uncompressed) in
    /// sections, its rows over several connections (default 64 MiB; `u64::MAX` loads every
    /// database through one `pg_restore`, `0` splits them all). Smaller databases are faster
    /// through one `pg_restore` in one transaction.
    pub fn split_load_from(mut self, bytes: u64) -> Self {
        self.split_load_from = bytes;
        self
    }

    /// Checks the binaries and the OS user, creates the base directory, and builds the executor.
    pub fn build(self) -> Result<LocalExecutor> {
        let bin = PgBinaries::discover(self.bin_dir.as_deref())?;
        let user = ServerUser::resolve(&self.os_user)?;
        let isolate = self.isolate && user.switches();
        create_traversable_dir(&self.base_dir.join("instances"))?;
        let base_dir = self
            .base_dir
            .canonicalize()
            .map_err(|e| crate::cluster::io_err(format!("{}", self.base_dir.display()), e))?;
        let jobs = Jobs::new(base_dir.join("jobs"));
        let inner = Inner {
            base_dir,
            bin,
            user,
            ports: self.ports,
            blobs: self.blobs,
            compression: self.compression,
            split_load_from: self.split_load_from,
            isolate,
            jobs,
            archivers: Default::default(),
            allocate: tokio::sync::Mutex::new(()),
        };
        Ok(LocalExecutor { inner: Arc::new(inner) })
    }
}
