//! # toygres-s3
//!
//! [`S3BlobStore`]: toygres images in an Amazon S3 bucket, or any S3-compatible server (MinIO,
//! moto, Ceph RGW), through object_store's AWS backend. The control plane (verification, reads,
//! deletes, reconcile) and the local executor's jobs ([`toygres_core::Transfer::ObjectStore`]:
//! streamed in-process, multipart uploads) use the same handle.
//!
//! ```no_run
//! # fn demo() -> toygres_core::Result<()> {
//! use toygres_s3::S3BlobStore;
//! let store = S3BlobStore::builder("my-images")
//!     .region("eu-west-1")
//!     .credentials("AKIA…", "secret")
//!     .build()?;
//! # Ok(()) }
//! ```
//!
//! An upload cut short (a killed process) leaves an incomplete multipart upload that no listing
//! shows and object_store cannot enumerate: give the bucket an `AbortIncompleteMultipartUpload`
//! lifecycle rule (e.g. after 1 day). The Kubernetes executor's jobs need a command transfer
//! (azcopy's counterpart for S3), which this crate does not provide yet.
//!
//! [`kms::AwsKms`]: a [`toygres_core::envelope::KeyProvider`] that wraps images' data keys under
//! an AWS KMS key (envelope encryption), bound to their image by the KMS encryption context.
#![warn(missing_docs)]

pub mod kms;
mod store;

pub use store::{S3BlobStore, S3BlobStoreBuilder};
