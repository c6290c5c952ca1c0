//! # toygres-local
//!
//! The embedded default of toygres: everything on one machine with nothing but PostgreSQL installed.
//!
//! - [`cluster`]: a small harness for one local PostgreSQL cluster (discover the binaries, `initdb`
//!   with a password, start/stop as a non-root OS user on a chosen port). The executor uses it, and
//!   other crates' tests use [`cluster::LocalCluster::start_temporary`] to get a throw-away server.
#![warn(missing_docs)]

pub mod cluster;

pub use cluster::{ConnParams, LocalCluster, PgBinaries, ServerUser, TempCluster};
