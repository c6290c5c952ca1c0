//! A local blob store whose jobs move bytes through a copy program (`Transfer::Command`, the path
//! azcopy takes) instead of object_store; each test says which command.
#![allow(dead_code)]

use async_trait::async_trait;
use bytes::Bytes;
use toygres_core::blob::{ByteStream, StoredObject};
use toygres_core::{BlobStore, ImageId, ImageLocation, Result, Transfer};
use toygres_local::LocalBlobStore;

/// The transfer a job of `location` gets, given the store's directory for it.
pub type MakeTransfer = Box<dyn Fn(String) -> Transfer + Send + Sync>;

/// Control-plane calls go to the local files; jobs run the transfer `make` returns.
pub struct CommandBlobs {
    pub files: LocalBlobStore,
    pub make: MakeTransfer,
}

#[async_trait]
impl BlobStore for CommandBlobs {
    fn describe(&self) -> String {
        format!("copy-program transfers over {}", self.files.describe())
    }
    async fn stat(&self, l: &ImageLocation) -> Result<Vec<StoredObject>> {
        self.files.stat(l).await
    }
    async fn read(&self, l: &ImageLocation, n: &str) -> Result<Bytes> {
        self.files.read(l, n).await
    }
    async fn read_stream(&self, l: &ImageLocation, n: &str) -> Result<ByteStream> {
        self.files.read_stream(l, n).await
    }
    async fn write(&self, l: &ImageLocation, n: &str, b: Bytes) -> Result<()> {
        self.files.write(l, n, b).await
    }
    async fn delete(&self, l: &ImageLocation) -> Result<()> {
        self.files.delete(l).await
    }
    async fn delete_objects(&self, l: &ImageLocation, names: &[String]) -> Result<()> {
        self.files.delete_objects(l, names).await
    }
    async fn list_images(&self) -> Result<Vec<ImageId>> {
        self.files.list_images().await
    }
    fn transfer(&self, location: &ImageLocation) -> Transfer {
        (self.make)(self.files.root().join(&location.prefix).display().to_string())
    }
}
