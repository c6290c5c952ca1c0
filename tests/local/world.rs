//! Several local executors sharing one catalog and one blob store, and the second PostgreSQL major.
#![allow(dead_code)]

use crate::support::StopAll;

#[path = "../../toygres-local/tests/support/reflink_dir.rs"]
mod reflink_dir;
use std::path::PathBuf;
use std::sync::Arc;
use toygres_core::envelope::LocalKeys;
use toygres_core::{BlobStore, InstanceRecord, MemoryCatalog, Password, Toygres};
use toygres_local::fidelity::corpus::{exercised, load_corpus, CorpusOptions};
use toygres_local::fidelity::InstanceSnapshot;
use toygres_local::{LocalBlobStore, LocalExecutor, LocalExecutorBuilder, PgBinaries};

/// The PostgreSQL 18 bin directory, or `None` (test skipped) outside CI.
pub fn pg18() -> Option<PathBuf> {
    match std::env::var_os("TOYGRES_PG18_BIN") {
        Some(dir) => Some(PathBuf::from(dir)),
        None if std::env::var("CI").is_ok_and(|v| v == "true") => {
            panic!("CI=true but TOYGRES_PG18_BIN is unset: run `eval \"$(bash .ci/pg18.sh)\"`")
        }
        None => {
            eprintln!("skipped: TOYGRES_PG18_BIN is unset (eval \"$(bash .ci/pg18.sh)\")");
            None
        }
    }
}

/// Executors sharing one catalog and one blob store, each over its own base directory.
pub struct World {
    // Dropped first (fields drop in order): the servers stop and their OS users go while the base
    // directory still tells where they are.
    stops: Vec<StopAll>,
    pub base: tempfile::TempDir,
    pub catalog: Arc<MemoryCatalog>,
    pub blobs: Arc<LocalBlobStore>,
}

impl World {
    pub fn new() -> Self {
        let base = tempfile::Builder::new().prefix("toygres-fidelity-").tempdir().unwrap();
        let blobs = Arc::new(LocalBlobStore::open(base.path().join("blobs")).unwrap());
        Self { stops: Vec::new(), base, catalog: Arc::new(MemoryCatalog::new()), blobs }
    }

    /// A world on the reflink filesystem `TOYGRES_REFLINK_DIR` names (`bash .ci/xfs.sh` mounts
    /// one), or `None` (test skipped) outside CI when it is unset.
    pub fn on_reflink() -> Option<Self> {
        let dir = reflink_dir::reflink_dir()?;
        let base = tempfile::Builder::new().prefix("toygres-clones-").tempdir_in(dir).unwrap();
        let blobs = Arc::new(LocalBlobStore::open(base.path().join("blobs")).unwrap());
        Some(Self { stops: Vec::new(), base, catalog: Arc::new(MemoryCatalog::new()), blobs })
    }

    /// An executor named `name` running the binaries in `bin` (default: discovered).
    pub fn executor(&mut self, name: &str, bin: Option<&PathBuf>) -> (LocalExecutor, Toygres) {
        self.executor_with(name, bin, |b| b)
    }

    /// [`World::executor`], its builder adjusted by `configure` first.
    pub fn executor_with(
        &mut self,
        name: &str,
        bin: Option<&PathBuf>,
        configure: impl FnOnce(LocalExecutorBuilder) -> LocalExecutorBuilder,
    ) -> (LocalExecutor, Toygres) {
        let blobs: Arc<dyn BlobStore> = self.blobs.clone();
        let mut builder = LocalExecutor::builder(self.base.path().join(name), blobs.clone());
        if let Some(bin) = bin {
            builder = builder.bin_dir(bin);
        }
        let executor = configure(builder).build().unwrap();
        self.stops.push(StopAll(executor.clone()));
        let t = Toygres::new(self.catalog.clone(), blobs, Arc::new(executor.clone())).with_image_keys(self.keys());
        (executor, t)
    }

    /// The image keys every executor of the world shares (images move between them).
    pub fn keys(&self) -> Arc<LocalKeys> {
        Arc::new(LocalKeys::open_or_create(self.base.path().join("image-keys")).unwrap())
    }
}

/// A source instance on `executor` loaded with the corpus, and its snapshot taken with `bin`.
pub async fn corpus_source(
    executor: &LocalExecutor,
    t: &Toygres,
    password: &Password,
    options: CorpusOptions,
    bin: &PgBinaries,
) -> (InstanceRecord, InstanceSnapshot) {
    let source = executor.provision_source(t, "corpus-source", password).await.unwrap();
    let params = executor.cluster(&source.spec()).unwrap().params();
    load_corpus(&params, password, options).await.unwrap();
    let snapshot = InstanceSnapshot::take(bin, &params, password).await.unwrap();
    let missing = exercised(&snapshot, options);
    assert!(missing.is_empty(), "the corpus did not set: {missing:#?}");
    (source, snapshot)
}
