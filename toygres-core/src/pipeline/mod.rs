//! The `Backup` and `Restore` pipelines, and [`Toygres`], the handle that runs them.
//!
//! Every step is a public method whose input and output are serde values, so a durable workflow
//! engine can run each one as an activity. Every step is idempotent, and `resume` continues a
//! pipeline from the catalog's state after a crash.

mod admission;
mod backup;
mod cancel;
mod keys;
mod listing;
mod operations;
mod pitr;
mod protection;
mod provision;
mod reconcile;
mod replay;
mod restore;
mod retention;
mod schedules;
mod step;
mod tail;

pub use admission::RestoreAdmission;
pub use backup::{Backup, BackupResult, SourceInstance};
pub use keys::{RotationReport, RotationStep};
pub use protection::BASE_IMAGE_LABEL;
pub use provision::Provision;
pub use reconcile::ReconcileReport;
pub use restore::Restore;
pub use retention::{ExpireReport, RetentionPolicy};
pub use schedules::{retention_of, DueImage};

use crate::blob::BlobStore;
use crate::catalog::CatalogStore;
use crate::envelope::{DataKey, ImageKeys, KeyProvider};
use crate::error::Result;
use crate::executor::ClusterExecutor;
use crate::image::ImageRecord;
use crate::progress::{NoProgress, ProgressSink};
use crate::retry::RetryPolicy;
use crate::verify::VerifyMode;
use serde::{Deserialize, Serialize};
use std::sync::Arc;
use std::time::Duration;

/// Limits and policies of the pipelines. Start from `Options::default()` and set fields.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[non_exhaustive]
pub struct Options {
    /// Limit of the backup job (default 2 h).
    pub backup_job_timeout: Duration,
    /// Limit of the restore job (default 2 h).
    pub restore_job_timeout: Duration,
    /// Limit of waiting for a deployed instance to accept connections (default 10 min).
    pub ready_timeout: Duration,
    /// The connection test's retries (default 5 × 120 s).
    pub connection_test: RetryPolicy,
    /// How much the control plane verifies before a restore (default [`VerifyMode::Auto`]: every
    /// byte, unless the executor's restore job checks every byte as it loads it).
    pub verify: VerifyMode,
}

impl Default for Options {
    fn default() -> Self {
        Self {
            backup_job_timeout: Duration::from_secs(2 * 3600),
            restore_job_timeout: Duration::from_secs(2 * 3600),
            ready_timeout: Duration::from_secs(600),
            connection_test: RetryPolicy::connection_test(),
            verify: VerifyMode::Auto,
        }
    }
}

/// The three backends plus options: clone it freely (it is a bundle of `Arc`s).
///
/// ```no_run
/// # async fn demo(t: toygres_core::Toygres, source: toygres_core::InstanceId) -> toygres_core::Result<()> {
/// use toygres_core::{CreateImageRequest, CreateInstanceRequest, OperationId};
/// let image = t.create_image(OperationId::new(), CreateImageRequest::new("nightly", source)).await?;
/// let restored = t.create_instance(OperationId::new(),
///     CreateInstanceRequest::restore("restored", image.id)).await?;
/// println!("{}", restored.connection.unwrap().connection_string());
/// # Ok(()) }
/// ```
#[derive(Clone)]
pub struct Toygres {
    /// Records.
    pub catalog: Arc<dyn CatalogStore>,
    /// Image bytes.
    pub blobs: Arc<dyn BlobStore>,
    /// Instances and jobs.
    pub executor: Arc<dyn ClusterExecutor>,
    /// Where progress events go.
    pub progress: Arc<dyn ProgressSink>,
    /// Limits and policies.
    pub options: Options,
    /// Whether new images are encrypted, and under which keys. [`Toygres::new`] leaves it
    /// [`ImageKeys::Unset`], which refuses to create images until the embedder chooses:
    /// [`Toygres::with_image_keys`] (encrypted) or [`Toygres::with_plaintext_images`].
    pub keys: ImageKeys,
}

impl Toygres {
    /// Default options and no progress sink.
    pub fn new(catalog: Arc<dyn CatalogStore>, blobs: Arc<dyn BlobStore>, executor: Arc<dyn ClusterExecutor>) -> Self {
        Self {
            catalog,
            blobs,
            executor,
            progress: Arc::new(NoProgress),
            options: Options::default(),
            keys: ImageKeys::Unset,
        }
    }

    /// Encrypts every new image under a fresh data key wrapped by `provider`, and opens
    /// encrypted images with it ([`crate::envelope`]).
    pub fn with_image_keys(mut self, provider: Arc<dyn KeyProvider>) -> Self {
        self.keys = ImageKeys::Provider(provider);
        self
    }

    /// Stores new images unencrypted, as asked explicitly; their records show `encryption: None`.
    /// Encrypted images still open with the key provider given before, if any.
    pub fn with_plaintext_images(mut self) -> Self {
        self.keys = ImageKeys::Plaintext(self.keys.provider().ok().cloned());
        self
    }

    /// The data key of `image` (`None` for a plaintext image), unwrapped by the configured
    /// provider: [`crate::Error::KeyUnavailable`] when it cannot be.
    pub async fn data_key(&self, image: &ImageRecord) -> Result<Option<DataKey>> {
        self.keys.data_key(image.id, image.encryption.as_ref()).await
    }

    /// Sends progress events to `sink`.
    pub fn with_progress(mut self, sink: Arc<dyn ProgressSink>) -> Self {
        self.progress = sink;
        self
    }

    /// Replaces the options.
    pub fn with_options(mut self, options: Options) -> Self {
        self.options = options;
        self
    }

    /// The backup pipeline's steps.
    pub fn backup(&self) -> Backup {
        Backup::new(self.clone())
    }

    /// The restore pipeline's steps.
    pub fn restore(&self) -> Restore {
        Restore::new(self.clone())
    }

    /// The steps of a fresh, empty instance.
    pub fn provision(&self) -> Provision {
        Provision::new(self.clone())
    }
}
