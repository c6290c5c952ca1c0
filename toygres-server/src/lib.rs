//! # toygres-server
//!
//! The reference control plane of toygres, one binary `toygres`:
//!
//! - `toygres serve --data-dir DIR --listen ADDR`: the REST API of the seed (`/api/instances`,
//!   `/api/images`, `/api/openapi.json`), a web page at `/` and `/healthz`, on the embedded default
//!   (SQLite catalog, images as files, local PostgreSQL clusters). Long work runs in the durable
//!   engine, so a restarted server finishes what it had started. Every route but `/healthz` needs
//!   the bearer token of `TOYGRES_TOKEN`.
//! - `toygres instances …`, `toygres images …`: a command line client of that API, with live
//!   progress bars (`--wait`) and `--json` output.
//! - `toygres keys list|rotate|remove`: the operator's image key commands ([`keys`]).
#![warn(missing_docs)]

pub mod api;
pub mod backends;
pub mod cli;
pub mod engine;
pub mod keys;
pub mod replica;
pub mod serve;
pub mod tls;
pub mod web;
