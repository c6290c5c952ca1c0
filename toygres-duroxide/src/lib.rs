//! # toygres-duroxide
//!
//! toygres' pipelines as durable [duroxide](https://crates.io/crates/duroxide) orchestrations, so
//! a control plane that dies in the middle of a backup or a restore picks the work up again when
//! it restarts:
//!
//! - `create-image` 1.0.0: look up the source → backup job → mark ready (cleanup on failure).
//! - `create-instance` 1.0.5: the restore flow inlined, step by step (fetch image, source
//!   password, verify, volume, restore job, wait, deploy, ready, connection strings, connection
//!   test 5 × 120 s, running), or a fresh empty instance; cleanup on failure.
//!
//! Every pipeline step is a typed activity ([`activities`]); orchestration ids derive from the
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
//! let request = CreateImageRequest { name: "nightly".into(), instance_id: source, description: None };
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
pub mod status;

pub use client::DurableClient;
pub use runtime::{RuntimeBuilder, ToygresRuntime, DEFAULT_POLL_INTERVAL};
pub use status::{OperationState, OperationStatus};
