//! # toygres-local
//!
//! The embedded default of toygres: everything on one machine with nothing but PostgreSQL installed.
//!
//! - [`cluster`]: a small harness for one local PostgreSQL cluster (discover the binaries, `initdb`
//!   with a password, start/stop as a non-root OS user on a chosen port). The executor uses it, and
//!   other crates' tests use [`cluster::LocalCluster::start_temporary`] to get a throw-away server.
//! - [`LocalBlobStore`]: images as files under a directory.
//! - [`LocalExecutor`]: a `ClusterExecutor` whose instances are local clusters and whose backup and
//!   restore jobs run in-process, streaming `pg_dump` through zstd into the blob store and back.
//! - [`fidelity`]: the fidelity comparator the tests use: a snapshot of everything an instance
//!   holds ([`fidelity::InstanceSnapshot`]), to compare a restored instance with its source, and the
//!   data they image (its sample and corpus). Not `toygres_core::verify`, which checks an image's
//!   checksums.
#![warn(missing_docs)]

mod blobs;
pub mod cluster;
mod executor;
pub mod fidelity;

pub use blobs::LocalBlobStore;
pub use cluster::{ConnParams, LocalCluster, PgBinaries, ServerUser, TempCluster};
pub use executor::{Compression, InstanceConfig, LocalExecutor, LocalExecutorBuilder};
