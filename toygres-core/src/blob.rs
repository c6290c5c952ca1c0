//! [`BlobStore`]: where image bytes live, and how an executor's jobs move them.

use crate::error::Result;
use crate::ids::ImageId;
use crate::secret::Password;
use async_trait::async_trait;
use bytes::Bytes;
use futures::stream::BoxStream;
use object_store::ObjectStore;
use serde::{Deserialize, Serialize};
use std::fmt;
use std::sync::Arc;

/// Where an image's objects live: a prefix in the store, derived from the image id only, so that
/// a re-run writes to the same place.
#[derive(Debug, Clone, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub struct ImageLocation {
    /// The image.
    pub image_id: ImageId,
    /// Object prefix without trailing slash, e.g. `images/<id>`.
    pub prefix: String,
}

impl ImageLocation {
    /// The deterministic location of `image`: `images/<id>`.
    pub fn for_image(image: ImageId) -> Self {
        Self { image_id: image, prefix: format!("images/{image}") }
    }

    /// Full path of object `name` in the image.
    pub fn object(&self, name: &str) -> String {
        format!("{}/{}", self.prefix, name)
    }
}

/// One stored object of an image.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct StoredObject {
    /// Name relative to the image prefix.
    pub name: String,
    /// Size in bytes.
    pub size: u64,
}

/// How a job moves an image's bytes. Produced by [`BlobStore::transfer`].
#[derive(Clone)]
pub enum Transfer {
    /// Stream through an object_store handle in-process (the local executor does this).
    ObjectStore {
        /// The store.
        store: Arc<dyn ObjectStore>,
        /// The image's prefix in it.
        prefix: object_store::path::Path,
    },
    /// Run an external copy program (azcopy) inside the job.
    Command(CommandTransfer),
}

impl fmt::Debug for Transfer {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Transfer::ObjectStore { store, prefix } => {
                f.debug_struct("ObjectStore").field("store", &store.to_string()).field("prefix", prefix).finish()
            }
            Transfer::Command(c) => f.debug_tuple("Command").field(c).finish(),
        }
    }
}

/// A transfer done by an external program, e.g. azcopy. Every argument list may contain the
/// placeholder `{url}`, replaced by [`CommandTransfer::object_url`] of the object moved.
///
/// Secrets are kept out of arguments: they travel in `secret_env` (set in the process
/// environment or, on Kubernetes, from a Secret).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct CommandTransfer {
    /// The program, e.g. `azcopy`.
    pub program: String,
    /// Arguments of a login step run once before transfers (`login --login-type=workload`), if any.
    pub login: Option<Vec<String>>,
    /// Arguments that upload standard input to `{url}`.
    pub upload_from_stdin: Vec<String>,
    /// Arguments that write `{url}` to standard output.
    pub download_to_stdout: Vec<String>,
    /// Container URL plus the image prefix, without any secret.
    pub base_url: String,
    /// Query string appended to every URL (a SAS token for the emulator). Secret.
    pub url_query: Option<Password>,
    /// Plain environment variables the program needs.
    pub env: Vec<(String, String)>,
    /// Secret environment variables the program needs.
    pub secret_env: Vec<(String, Password)>,
}

impl CommandTransfer {
    /// URL of object `name`, without the secret query.
    pub fn object_url(&self, name: &str) -> String {
        format!("{}/{}", self.base_url.trim_end_matches('/'), name)
    }

    /// `args` with `{url}` replaced by the URL of `name` (secret query included when present).
    /// Use only to spawn the process; never log the result.
    pub fn render(&self, args: &[String], name: &str) -> Vec<String> {
        let mut url = self.object_url(name);
        if let Some(q) = &self.url_query {
            url = format!("{url}?{}", q.expose().trim_start_matches('?'));
        }
        args.iter().map(|a| a.replace("{url}", &url)).collect()
    }
}

/// A stream of an object's bytes.
pub type ByteStream = BoxStream<'static, Result<Bytes>>;

/// Blob storage for images.
///
/// Implementations: [`crate::objstore::ObjectStoreBlobs`] over any `object_store` (in-memory,
/// local files), and Azure Blob in `toygres-azure`. All operations are idempotent; deleting
/// what is absent succeeds.
#[cfg_attr(any(test, feature = "testing"), mockall::automock)]
#[async_trait]
pub trait BlobStore: Send + Sync {
    /// A short description for messages, e.g. `"local files at /var/lib/toygres/images"`.
    fn describe(&self) -> String;

    /// The objects stored under `location`, sorted by name. Empty if there are none.
    async fn stat(&self, location: &ImageLocation) -> Result<Vec<StoredObject>>;

    /// The whole content of a small object (the manifest). Missing object: `ImageIncomplete`.
    async fn read(&self, location: &ImageLocation, name: &str) -> Result<Bytes>;

    /// The content of an object as a stream (for verification). Missing object: `ImageIncomplete`.
    async fn read_stream(&self, location: &ImageLocation, name: &str) -> Result<ByteStream>;

    /// Writes a small object (tests and tools; jobs use [`BlobStore::transfer`]).
    async fn write(&self, location: &ImageLocation, name: &str, bytes: Bytes) -> Result<()>;

    /// Deletes every object under `location`. Idempotent.
    async fn delete(&self, location: &ImageLocation) -> Result<()>;

    /// Deletes the objects `names` under `location` (the WAL a retention no longer needs).
    /// Idempotent: absent ones are skipped.
    async fn delete_objects(&self, location: &ImageLocation, names: &[String]) -> Result<()>;

    /// Ids of every image with at least one object (for finding orphans).
    async fn list_images(&self) -> Result<Vec<ImageId>>;

    /// Removes what an interrupted upload left under `location` that [`BlobStore::stat`] does not
    /// show, and returns the names removed: object_store's `LocalFileSystem` stages multipart
    /// uploads as `<object>#<n>` files that stay behind when the uploading process is killed.
    /// Call it only while no upload to `location` runs.
    ///
    /// The default removes nothing: stores whose uncommitted uploads expire on their own (Azure
    /// Blob drops uncommitted blocks after 7 days; on S3 configure an `AbortIncompleteMultipartUpload`
    /// lifecycle rule) need no sweep.
    async fn remove_staging(&self, location: &ImageLocation) -> Result<Vec<String>> {
        let _ = location;
        Ok(Vec::new())
    }

    /// How a job moves bytes to and from `location`.
    fn transfer(&self, location: &ImageLocation) -> Transfer;
}
