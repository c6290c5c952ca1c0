//! # toygres-core
//!
//! Snapshot PostgreSQL instances into **images** and provision **new instances** from them.
//!
//! This crate holds the domain types, the three backend traits and the two pipelines:
//!
//! - [`CatalogStore`]: records of images and instances with checked state transitions
//!   (SQLite: `toygres-cms-sqlite`, PostgreSQL: `toygres-cms-postgres`, in memory: [`MemoryCatalog`]).
//! - [`BlobStore`]: where image bytes live (any `object_store` via [`ObjectStoreBlobs`], Azure Blob:
//!   `toygres-azure`).
//! - [`ClusterExecutor`]: where PostgreSQL and the backup/restore jobs run (local processes:
//!   `toygres-local`, Kubernetes: `toygres-k8s`).
//! - [`Backup`] (`create_image`) and [`Restore`] (`create_instance` from an image), run through
//!   [`Toygres`]. Every step is public, idempotent and takes and returns serde values.
//!
//! The non-negotiable rules live here: a restored instance uses the **source image's password**
//! and **image type**; a restore that names `source_image_id` with `runtime_image_id` or
//! `image_override` is refused before anything is created; images are verified against their
//! checksum before a restore; passwords never appear in `Debug`, `Display`, logs or errors.
//!
//! Point-in-time restore ([`wal`]): [`Toygres::protect`] archives an instance's WAL continuously,
//! and a [`CreateInstanceRequest::point_in_time`] restores a new instance to any moment of its
//! [`wal::RecoveryWindow`], refused before anything is created outside it.
//!
//! [`Schedule`]s take images on a cron schedule with retention: a control plane's sweeper calls
//! [`Toygres::due_schedule_images`] and [`Toygres::schedule_fired`] ([`schedule`]).
//!
//! The `testing` feature exports mockall mocks of the traits and the conformance suites.
#![warn(missing_docs)]

pub mod blob;
pub mod catalog;
pub mod crypto;
pub mod domain;
pub mod envelope;
pub mod error;
pub mod executor;
pub mod filter;
pub mod ids;
pub mod image;
pub mod instance;
pub mod labels;
pub mod manifest;
pub mod memory;
pub mod metadata;
pub mod objstore;
pub mod pipeline;
pub mod progress;
pub mod request;
pub mod retry;
pub mod schedule;
pub mod secret;
pub mod state;
#[cfg(feature = "testing")]
pub mod testing;
pub mod verify;
pub mod wal;

pub use blob::{BlobStore, CommandTransfer, ImageLocation, StoredObject, Transfer};
pub use catalog::CatalogStore;
pub use error::{Error, ErrorClass, Result};
pub use executor::{
    BackupJobSpec, CloneSource, ClusterExecutor, InstanceSpec, JobKind, JobRef, RecoverySpec, RestoreJobSpec,
    WalArchiveSpec,
};
pub use filter::{InstanceFilter, Page, PageToken};
pub use ids::{ImageId, InstanceId, OperationId, ScheduleId};
pub use image::{ImageColumns, ImageFilter, ImageFormat, ImageRecord, ImageType, ImageUpdate, NewImage};
pub use instance::{ConnectionInfo, InstanceColumns, InstanceRecord, InstanceUpdate, NewInstance};
pub use labels::Labels;
pub use manifest::Manifest;
pub use memory::MemoryCatalog;
pub use metadata::{ImageDatabase, ImageMetadata};
pub use objstore::ObjectStoreBlobs;
pub use pipeline::{
    Backup, BackupResult, DueImage, ExpireReport, Options, Provision, ReconcileReport, Restore, RestoreAdmission,
    RetentionPolicy, SourceInstance, Toygres,
};
pub use progress::{EventKind, NoProgress, Phase, ProgressEvent, ProgressSink, StoredProgress, Subject};
pub use request::{CreateImageRequest, CreateInstanceRequest};
pub use retry::RetryPolicy;
pub use schedule::{CreateScheduleRequest, NewSchedule, Schedule, ScheduleRetention};
pub use secret::Password;
pub use state::{ImageState, InstanceState};
pub use verify::{verify_image, VerifyMode};
