//! PostgreSQL and pool errors as toygres errors that say what to check. Never the password.

use crate::backend::BACKEND;
use crate::config::PostgresCatalogConfig;
use deadpool_postgres::{PoolError, TimeoutType};
use tokio_postgres::error::SqlState;
use toygres_core::{Error, ErrorClass};

/// A failed statement while doing `what`.
pub fn db(config: &PostgresCatalogConfig, what: &str, e: tokio_postgres::Error) -> Error {
    let hint = match e.code() {
        Some(c) if *c == SqlState::UNDEFINED_TABLE || *c == SqlState::INVALID_SCHEMA_NAME => {
            "the catalog's tables are missing (was the schema dropped?); reconnect to re-create them"
        }
        Some(c) if *c == SqlState::INSUFFICIENT_PRIVILEGE => {
            "the catalog user lacks a privilege; grant it CREATE on the database (or create the schema for it) and \
             USAGE/ALL on the schema"
        }
        Some(c) if *c == SqlState::READ_ONLY_SQL_TRANSACTION => {
            "the server is read-only (a standby?); point the catalog at the primary"
        }
        Some(c) if c.code().starts_with("08") || c.code().starts_with("57") => {
            "the server closed the connection or is shutting down; retry when it is back"
        }
        Some(_) => "see the server's log for details",
        None if e.is_closed() => "the connection to the server was lost; check that it is up, then retry",
        None => "check that the server is up and reachable, then retry",
    };
    let message = config.redact(&format!("cannot {what} at {}: {hint}", config.endpoint()));
    Error::backend(BACKEND, message, Redacted(config.redact(&error_chain(&e)))).with_class(class_of(e.code()))
}

/// The [`ErrorClass`] of a failed statement's SQLSTATE: privileges and authentication are
/// `unauthorized`, constraint violations `conflict`, data exceptions `corrupt`, the rest
/// (connection loss, shutdown, serialization failures, missing tables) `unavailable`.
fn class_of(code: Option<&SqlState>) -> ErrorClass {
    match code.map(|c| c.code()) {
        Some(c) if c == "42501" || c.starts_with("28") => ErrorClass::Unauthorized,
        Some(c) if c.starts_with("23") => ErrorClass::Conflict,
        Some(c) if c.starts_with("22") || c.starts_with("XX") => ErrorClass::Corrupt,
        _ => ErrorClass::Unavailable,
    }
}

/// A connection could not be taken from the pool.
pub fn pool(config: &PostgresCatalogConfig, e: PoolError) -> Error {
    let endpoint = config.endpoint();
    let message = match &e {
        PoolError::Timeout(TimeoutType::Wait) => format!(
            "all {} catalog connections to {endpoint} stayed busy for {:?}; raise max_connections or look for \
             stuck queries (pg_stat_activity)",
            config.max_connections, config.wait_timeout
        ),
        PoolError::Backend(source) if source.as_db_error().is_some() => format!(
            "PostgreSQL at {endpoint} refused the catalog's connection ({}); check the user, password and \
             database in the catalog URL, and pg_hba.conf",
            config.redact(&error_chain(source))
        ),
        PoolError::Backend(source) if error_chain(source).contains("TLS") => format!(
            "the TLS handshake with PostgreSQL at {endpoint} failed ({}); with verify-ca/verify-full the \
             server's certificate must chain to a root in sslrootcert (or the system store) and, for \
             verify-full, name the host connected to; require/verify-* need ssl=on on the server",
            config.redact(&error_chain(source))
        ),
        PoolError::Backend(_) | PoolError::Timeout(_) => format!(
            "cannot reach PostgreSQL at {endpoint} ({}); check that the server is running and accepts TCP \
             connections on that host and port (listen_addresses, firewall), and that the catalog URL is right",
            config.redact(&error_chain(&e))
        ),
        other => format!("the connection pool for {endpoint} failed: {}", config.redact(&other.to_string())),
    };
    Error::backend(BACKEND, message, Redacted(config.redact(&error_chain(&e))))
}

/// `error: cause: cause`, so that "connection refused" is not hidden in a source chain.
fn error_chain(e: &dyn std::error::Error) -> String {
    let mut text = e.to_string();
    let mut source = e.source();
    while let Some(cause) = source {
        let next = cause.to_string();
        if !text.contains(&next) {
            text = format!("{text}: {next}");
        }
        source = cause.source();
    }
    text
}

/// The driver's error text with secrets removed, kept as the source of an [`Error::Backend`].
#[derive(Debug)]
struct Redacted(String);

impl std::fmt::Display for Redacted {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.0)
    }
}

impl std::error::Error for Redacted {}
