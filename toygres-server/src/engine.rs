//! Where long work runs: the durable runtime of `toygres-duroxide` on a SQLite store in the data
//! directory, so that a server killed in the middle of an image or a restore finishes it after a
//! restart. Deletions are short and run directly on the library.

use crate::replica::ReplicaArgs;
use std::path::PathBuf;
use std::sync::Arc;
use tokio::sync::Mutex;
use toygres_core::{CreateImageRequest, CreateInstanceRequest, ImageRecord, InstanceRecord, OperationId};
use toygres_core::{Result, Subject, Toygres};
use toygres_duroxide::{DurableClient, ToygresRuntime};

pub use toygres_duroxide::{OperationState, OperationStatus};

/// Where the durable runtime keeps its history.
#[derive(Clone)]
pub enum DurableStore {
    /// A SQLite file (the embedded default: `<data-dir>/durable.sqlite`).
    Sqlite(PathBuf),
    /// The PostgreSQL database of the catalog (schema `toygres_durable`), for several servers.
    #[cfg(feature = "postgres")]
    Postgres(String),
}

impl std::fmt::Debug for DurableStore {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            DurableStore::Sqlite(path) => write!(f, "Sqlite({})", path.display()),
            #[cfg(feature = "postgres")]
            DurableStore::Postgres(_) => f.write_str("Postgres(..)"),
        }
    }
}

/// How often the WAL receivers of protected instances are checked (and started where they do
/// not run: after a restart, or when the process that ran one died).
pub const RESUME_PROTECTION_EVERY: std::time::Duration = std::time::Duration::from_secs(5);

/// The durable runtime and a client of it.
#[derive(Clone)]
pub struct Engine {
    toygres: Toygres,
    client: DurableClient,
    runtime: Arc<Mutex<Option<ToygresRuntime>>>,
    protection: Arc<tokio::task::AbortHandle>,
}

impl Engine {
    /// Starts the durable runtime over `toygres` on `store`, configured by `replica`; operations
    /// a previous process (or another replica) left unfinished resume.
    pub async fn start(toygres: Toygres, store: &DurableStore, replica: &ReplicaArgs) -> Result<Self> {
        let builder = replica.configure(ToygresRuntime::builder(toygres.clone()));
        let builder = match store {
            DurableStore::Sqlite(path) => builder.sqlite(path),
            #[cfg(feature = "postgres")]
            DurableStore::Postgres(url) => builder.postgres(url, "toygres_durable"),
        };
        let runtime = builder.start().await?;
        let client = runtime.client();
        let protection = Arc::new(tokio::spawn(resume_protection(toygres.clone())).abort_handle());
        Ok(Self { toygres, client, runtime: Arc::new(Mutex::new(Some(runtime))), protection })
    }

    /// The library handle (catalog, blobs, executor).
    pub fn toygres(&self) -> &Toygres {
        &self.toygres
    }

    /// Validates, reserves the image record (`creating`) and starts the backup.
    pub async fn create_image(&self, operation: OperationId, request: CreateImageRequest) -> Result<ImageRecord> {
        self.client.create_image(operation, request).await
    }

    /// Validates, creates the instance record (`provisioning`) and starts the restore, or the
    /// provisioning of a fresh instance without `source_image_id`.
    pub async fn create_instance(
        &self,
        operation: OperationId,
        request: CreateInstanceRequest,
    ) -> Result<InstanceRecord> {
        self.client.create_instance(operation, request).await
    }

    /// The operation's state, step and bytes.
    pub async fn status(&self, subject: Subject) -> Result<OperationStatus> {
        self.client.status(subject).await
    }

    /// Stops polling; unfinished work resumes in the next process on the same store.
    pub async fn shutdown(&self) {
        self.protection.abort();
        if let Some(runtime) = self.runtime.lock().await.take() {
            runtime.shutdown().await;
        }
    }
}

/// Makes sure every protected running instance's WAL receiver runs, now and every
/// [`RESUME_PROTECTION_EVERY`] (idempotent; replicas may all do it, executors coordinate).
async fn resume_protection(toygres: Toygres) {
    let mut every = tokio::time::interval(RESUME_PROTECTION_EVERY);
    every.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        every.tick().await;
        match toygres.resume_protection().await {
            Ok(0) => {}
            Ok(running) => tracing::debug!(running, "WAL receivers of protected instances checked"),
            Err(e) => tracing::warn!(error = %e, "cannot resume the protection of instances"),
        }
    }
}
