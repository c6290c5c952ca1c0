//! This backend's name in errors, on its own below every other module: [`crate::errors`] builds
//! most errors with it, but [`crate::tls`] (which [`crate::config`] imports, and which
//! `crate::errors` imports in turn) needs it too.

/// Name of this backend in [`Error::Backend`](toygres_core::Error::Backend).
pub const BACKEND: &str = "postgres catalog";
