//! # toygres-duroxide
//!
//! toygres' pipelines as durable [duroxide](https://crates.io/crates/duroxide) orchestrations, so
//! a control plane that dies in the middle of a backup or a restore picks the work up again when
//! it restarts:
//!
//! - `create-image` 1.2.0: backup job (on the backup workers) → mark ready (cleanup on failure).
//! - `create-instance` 1.2.0: volume → restore job (on the restore workers; or an empty cluster) → core's
//!   deploy-to-running tail ([`toygres_core::Restore::serve`]); cleanup on failure.
//!
//! The client admits every request through core ([`toygres_core::Backup::begin`],
//! [`toygres_core::Toygres::begin_instance`]) before it records anything and starts the
//! orchestration, so the REST path refuses exactly as the library does. Every step is an
//! activity that takes the image or instance id ([`activities`]) and calls core's step by id,
//! which reads the rest from the catalog and unseals secrets where they are used: recorded
//! inputs never embed core's records, so core can evolve without failing in-flight
//! orchestrations on replay. `create-image` 1.0.0 and `create-instance` 1.0.5, which earlier
//! builds started, stay registered with their activities ([`orchestrations::v1`]); recorded
//! histories of every version replay in `tests/golden.rs`. Orchestration ids derive from the
//! image or instance id (`create-image-<id>`, `create-instance-<id>`), so a duplicate start is a
//! no-op. The custom status carries the current step; byte progress comes from the executors'
//! progress events. [`DurableClient::cancel`] kills the running job and runs the cleanup.
//!
//! ```no_run
//! # async fn demo(toygres: toygres_core::Toygres, source: toygres_core::InstanceId) -> toygres_core::Result<()> {
//! use std::time::Duration;
//! use toygres_core::{CreateImageRequest, OperationId, Subject};
//! let runtime = toygres_duroxide::ToygresRuntime::builder(toygres).sqlite("durable.db").start().await?;
//! let client = runtime.client();
//! let request = CreateImageRequest::new("nightly", source);
//! let image = client.create_image(OperationId::new(), request).await?;
//! let done = client.wait(Subject::Image(image.id), Duration::from_secs(3600)).await?;
//! println!("{:?}", done.state);
//! runtime.shutdown().await;
//! # Ok(()) }
//! ```
//!
//! Stores: a SQLite file by default ([`RuntimeBuilder::sqlite`]); duroxide-pg behind the
//! `postgres` feature for several control-plane processes on one database.
#![warn(missing_docs)]

pub mod activities;
mod client;
pub mod names;
pub mod orchestrations;
pub mod progress;
mod runtime;
mod schedules;
pub mod status;

pub use activities::sweep::{SweepReport, SweepSettings};
pub use client::DurableClient;
pub use runtime::{RuntimeBuilder, ToygresRuntime, DEFAULT_POLL_INTERVAL, DEFAULT_SWEEP_INTERVAL, JOB_POLL_INTERVAL};
pub use status::{OperationState, OperationStatus};
