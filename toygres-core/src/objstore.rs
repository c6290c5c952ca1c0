//! [`ObjectStoreBlobs`]: a [`BlobStore`] over any `object_store` backend (in-memory, local files,
//! Azure, S3). Backend crates wrap it and only decide how jobs move bytes.

use crate::blob::{BlobStore, ByteStream, ImageLocation, StoredObject, Transfer};
use crate::error::{Error, ErrorClass, Result};
use crate::ids::ImageId;
use async_trait::async_trait;
use bytes::Bytes;
use futures::{StreamExt, TryStreamExt};
use object_store::path::Path;
use object_store::{ObjectStore, ObjectStoreExt};
use std::collections::BTreeSet;
use std::sync::Arc;

/// A [`BlobStore`] on an `object_store` handle. Its [`BlobStore::transfer`] streams through the
/// same handle ([`Transfer::ObjectStore`]).
///
/// ```
/// # tokio_test_block_on(async {
/// use std::sync::Arc;
/// use toygres_core::{BlobStore, ImageId, ImageLocation, ObjectStoreBlobs};
/// let blobs = ObjectStoreBlobs::in_memory();
/// let loc = ImageLocation::for_image(ImageId::new());
/// blobs.write(&loc, "manifest.json", "{}".into()).await.unwrap();
/// assert_eq!(blobs.stat(&loc).await.unwrap()[0].size, 2);
/// blobs.delete(&loc).await.unwrap();
/// assert!(blobs.stat(&loc).await.unwrap().is_empty());
/// # });
/// # fn tokio_test_block_on<F: std::future::Future>(f: F) -> F::Output {
/// #     tokio::runtime::Builder::new_current_thread().build().unwrap().block_on(f) }
/// ```
#[derive(Clone)]
pub struct ObjectStoreBlobs {
    store: Arc<dyn ObjectStore>,
    description: String,
}

impl std::fmt::Debug for ObjectStoreBlobs {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ObjectStoreBlobs").field("description", &self.description).finish()
    }
}

impl ObjectStoreBlobs {
    /// Wraps `store`; `description` appears in messages.
    pub fn new(store: Arc<dyn ObjectStore>, description: impl Into<String>) -> Self {
        Self { store, description: description.into() }
    }

    /// An in-memory store (tests, examples).
    pub fn in_memory() -> Self {
        Self::new(Arc::new(object_store::memory::InMemory::new()), "in-memory blobs")
    }

    /// The underlying handle.
    pub fn store(&self) -> &Arc<dyn ObjectStore> {
        &self.store
    }

    fn path(location: &ImageLocation, name: &str) -> Path {
        Path::from(location.object(name))
    }

    fn err(&self, what: String, e: object_store::Error) -> Error {
        let class = ErrorClass::of_object_store(&e);
        Error::backend("blob store", format!("{what} in {}", self.description), e).with_class(class)
    }

    fn missing_or_err(&self, location: &ImageLocation, name: &str, e: object_store::Error) -> Error {
        match e {
            object_store::Error::NotFound { .. } => Error::ImageIncomplete {
                image: location.image_id,
                detail: format!("object {name} is missing from {}", self.description),
            },
            e => self.err(format!("reading {}", location.object(name)), e),
        }
    }
}

#[async_trait]
impl BlobStore for ObjectStoreBlobs {
    fn describe(&self) -> String {
        self.description.clone()
    }

    async fn stat(&self, location: &ImageLocation) -> Result<Vec<StoredObject>> {
        let prefix = Path::from(location.prefix.as_str());
        let metas: Vec<_> = self
            .store
            .list(Some(&prefix))
            .try_collect()
            .await
            .map_err(|e| self.err(format!("listing {}", location.prefix), e))?;
        let mut objects: Vec<StoredObject> = metas
            .into_iter()
            .filter_map(|m| {
                let name: Vec<_> = m.location.prefix_match(&prefix)?.map(|p| p.as_ref().to_string()).collect();
                Some(StoredObject { name: name.join("/"), size: m.size })
            })
            .collect();
        objects.sort_by(|a, b| a.name.cmp(&b.name));
        Ok(objects)
    }

    async fn read(&self, location: &ImageLocation, name: &str) -> Result<Bytes> {
        let got = self.store.get(&Self::path(location, name)).await;
        let got = got.map_err(|e| self.missing_or_err(location, name, e))?;
        got.bytes().await.map_err(|e| self.missing_or_err(location, name, e))
    }

    async fn read_stream(&self, location: &ImageLocation, name: &str) -> Result<ByteStream> {
        let got = self.store.get(&Self::path(location, name)).await;
        let got = got.map_err(|e| self.missing_or_err(location, name, e))?;
        let description = self.description.clone();
        Ok(got
            .into_stream()
            .map_err(move |e| Error::backend("blob store", format!("reading from {description}"), e))
            .boxed())
    }

    async fn write(&self, location: &ImageLocation, name: &str, bytes: Bytes) -> Result<()> {
        self.store
            .put(&Self::path(location, name), bytes.into())
            .await
            .map(|_| ())
            .map_err(|e| self.err(format!("writing {}", location.object(name)), e))
    }

    async fn delete(&self, location: &ImageLocation) -> Result<()> {
        let names: Vec<String> = self.stat(location).await?.into_iter().map(|o| o.name).collect();
        self.delete_objects(location, &names).await
    }

    async fn delete_objects(&self, location: &ImageLocation, names: &[String]) -> Result<()> {
        for name in names {
            match self.store.delete(&Self::path(location, name)).await {
                Ok(()) | Err(object_store::Error::NotFound { .. }) => {}
                Err(e) => return Err(self.err(format!("deleting {}", location.object(name)), e)),
            }
        }
        Ok(())
    }

    async fn list_images(&self) -> Result<Vec<ImageId>> {
        let listed = self
            .store
            .list_with_delimiter(Some(&Path::from("images")))
            .await
            .map_err(|e| self.err("listing images".into(), e))?;
        let ids: BTreeSet<ImageId> = listed.common_prefixes.iter().filter_map(|p| p.filename()?.parse().ok()).collect();
        Ok(ids.into_iter().collect())
    }

    fn transfer(&self, location: &ImageLocation) -> Transfer {
        Transfer::ObjectStore { store: self.store.clone(), prefix: Path::from(location.prefix.as_str()) }
    }
}
