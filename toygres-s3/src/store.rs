//! [`S3BlobStore`] and its builder.

use async_trait::async_trait;
use bytes::Bytes;
use object_store::aws::{AmazonS3, AmazonS3Builder};
use std::sync::Arc;
use toygres_core::blob::{ByteStream, StoredObject};
use toygres_core::{
    BlobStore, Error, ErrorClass, ImageId, ImageLocation, ObjectStoreBlobs, Password, Result, Transfer,
};

/// S3 error codes object_store reports as generic errors, with the class they belong to.
const CODES: &[(&str, ErrorClass)] = &[
    ("NoSuchBucket", ErrorClass::NotFound),
    ("AccessDenied", ErrorClass::Unauthorized),
    ("InvalidAccessKeyId", ErrorClass::Unauthorized),
    ("SignatureDoesNotMatch", ErrorClass::Unauthorized),
    ("ExpiredToken", ErrorClass::Unauthorized),
];

/// `e` with the class its S3 error code says (a missing bucket is not worth retrying).
fn classify(e: Error) -> Error {
    let mut text = e.to_string();
    let mut source = std::error::Error::source(&e);
    while let Some(cause) = source {
        text.push_str(&cause.to_string());
        source = cause.source();
    }
    match CODES.iter().find(|(code, _)| text.contains(code)) {
        Some((_, class)) => e.with_class(*class),
        None => e,
    }
}

/// A [`BlobStore`] in one S3 bucket: image `<id>`'s objects are `images/<id>/…`.
#[derive(Debug, Clone)]
pub struct S3BlobStore {
    inner: ObjectStoreBlobs,
    bucket: String,
    endpoint: Option<String>,
}

/// Settings of an [`S3BlobStore`]. Secrets are kept as [`Password`]s: never in `Debug` or errors.
#[derive(Debug, Clone)]
pub struct S3BlobStoreBuilder {
    bucket: String,
    region: String,
    endpoint: Option<String>,
    credentials: Option<(String, Password)>,
    from_env: bool,
}

impl S3BlobStoreBuilder {
    /// The AWS region (default `us-east-1`).
    pub fn region(mut self, region: impl Into<String>) -> Self {
        self.region = region.into();
        self
    }

    /// An S3-compatible server at `url` (`http://127.0.0.1:5000`): path-style requests, and plain
    /// HTTP allowed when the URL says `http://`.
    pub fn endpoint(mut self, url: impl Into<String>) -> Self {
        self.endpoint = Some(url.into());
        self
    }

    /// Static credentials (access key id and secret access key).
    pub fn credentials(mut self, access_key_id: impl Into<String>, secret: impl Into<String>) -> Self {
        self.credentials = Some((access_key_id.into(), Password::new(secret.into())));
        self
    }

    /// Reads the standard `AWS_*` variables (`AWS_ACCESS_KEY_ID`, `AWS_SECRET_ACCESS_KEY`,
    /// `AWS_SESSION_TOKEN`, `AWS_REGION`, `AWS_ENDPOINT`, web identity for EKS…) as object_store
    /// does; settings given on this builder win.
    pub fn with_env(mut self) -> Self {
        self.from_env = true;
        self
    }

    /// The store. Fails with [`Error::InvalidRequest`] on a bad bucket name or endpoint.
    pub fn build(self) -> Result<S3BlobStore> {
        if self.bucket.is_empty() || self.bucket.contains('/') {
            return Err(Error::InvalidRequest {
                field: "bucket",
                reason: format!("{:?} is not a bucket name; give the bare name, e.g. \"images\"", self.bucket),
            });
        }
        let mut b = if self.from_env { AmazonS3Builder::from_env() } else { AmazonS3Builder::new() };
        b = b.with_bucket_name(&self.bucket).with_region(&self.region);
        if let Some(url) = &self.endpoint {
            b = b
                .with_endpoint(url)
                .with_allow_http(url.starts_with("http://"))
                .with_virtual_hosted_style_request(false);
        }
        if let Some((id, secret)) = &self.credentials {
            b = b.with_access_key_id(id).with_secret_access_key(secret.expose());
        }
        let s3: AmazonS3 = b.build().map_err(|e| Error::InvalidRequest {
            field: "s3",
            reason: format!("cannot configure the S3 client: {e}; check the bucket, region and endpoint"),
        })?;
        let place = self.endpoint.clone().unwrap_or_else(|| format!("s3 {}", self.region));
        let inner = ObjectStoreBlobs::new(Arc::new(s3), format!("bucket {} at {place}", self.bucket));
        Ok(S3BlobStore { inner, bucket: self.bucket, endpoint: self.endpoint })
    }
}

impl S3BlobStore {
    /// A builder for the store in `bucket`.
    pub fn builder(bucket: impl Into<String>) -> S3BlobStoreBuilder {
        S3BlobStoreBuilder {
            bucket: bucket.into(),
            region: "us-east-1".into(),
            endpoint: None,
            credentials: None,
            from_env: false,
        }
    }

    /// The bucket.
    pub fn bucket(&self) -> &str {
        &self.bucket
    }

    /// The S3-compatible endpoint, when one was given.
    pub fn endpoint(&self) -> Option<&str> {
        self.endpoint.as_deref()
    }
}

#[async_trait]
impl BlobStore for S3BlobStore {
    fn describe(&self) -> String {
        self.inner.describe()
    }

    async fn stat(&self, location: &ImageLocation) -> Result<Vec<StoredObject>> {
        self.inner.stat(location).await.map_err(classify)
    }

    async fn read(&self, location: &ImageLocation, name: &str) -> Result<Bytes> {
        self.inner.read(location, name).await.map_err(classify)
    }

    async fn read_stream(&self, location: &ImageLocation, name: &str) -> Result<ByteStream> {
        self.inner.read_stream(location, name).await.map_err(classify)
    }

    async fn write(&self, location: &ImageLocation, name: &str, bytes: Bytes) -> Result<()> {
        self.inner.write(location, name, bytes).await.map_err(classify)
    }

    async fn delete(&self, location: &ImageLocation) -> Result<()> {
        self.inner.delete(location).await.map_err(classify)
    }

    async fn delete_objects(&self, location: &ImageLocation, names: &[String]) -> Result<()> {
        self.inner.delete_objects(location, names).await.map_err(classify)
    }

    async fn list_images(&self) -> Result<Vec<ImageId>> {
        self.inner.list_images().await.map_err(classify)
    }

    fn transfer(&self, location: &ImageLocation) -> Transfer {
        self.inner.transfer(location)
    }
}
