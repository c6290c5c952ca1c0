//! [`PostgresCatalogConfig`]: where the catalog lives and how many connections it may use.

use crate::tls::{split_tls_options, RootCerts, SslMode};
use std::fmt;
use std::str::FromStr;
use std::time::Duration;
use toygres_core::{Error, Result};

/// The schema the catalog uses unless told otherwise.
pub const DEFAULT_SCHEMA: &str = "toygres_cms";

/// How to reach the catalog database. `Debug` never shows the password.
#[derive(Clone)]
pub struct PostgresCatalogConfig {
    pub(crate) pg: tokio_postgres::Config,
    pub(crate) schema: String,
    pub(crate) max_connections: usize,
    pub(crate) wait_timeout: Duration,
    pub(crate) ssl_mode: SslMode,
    pub(crate) root_certs: RootCerts,
}

impl PostgresCatalogConfig {
    /// From a connection URL (`postgresql://user:password@host:port/db`) or a key/value string
    /// (`host=... user=...`). The error never repeats the URL, which may hold a password.
    ///
    /// `sslmode` (`disable`, `prefer` (default), `require`, `verify-ca`, `verify-full`) and
    /// `sslrootcert` (a PEM file; default: the system's store) are read as libpq reads them.
    pub fn from_url(url: &str) -> Result<Self> {
        let (url, mode, root) = split_tls_options(url);
        let pg = tokio_postgres::Config::from_str(&url).map_err(|e| Error::InvalidRequest {
            field: "catalog database URL",
            reason: format!(
                "cannot parse it ({e}); expected postgresql://user:password@host:port/database or host=... user=..."
            ),
        })?;
        let mut config = Self::from_pg_config(pg);
        if let Some(mode) = mode {
            config.ssl_mode = mode.parse()?;
        }
        if let Some(root) = root {
            config.root_certs = RootCerts::File(root.into());
        }
        Ok(config)
    }

    /// From a ready `tokio_postgres` configuration. Without a connect timeout, 10 s is used.
    pub fn from_pg_config(mut pg: tokio_postgres::Config) -> Self {
        if pg.get_connect_timeout().is_none() {
            pg.connect_timeout(Duration::from_secs(10));
        }
        let ssl_mode = match pg.get_ssl_mode() {
            tokio_postgres::config::SslMode::Disable => SslMode::Disable,
            tokio_postgres::config::SslMode::Require => SslMode::Require,
            _ => SslMode::Prefer,
        };
        Self {
            pg,
            schema: DEFAULT_SCHEMA.to_string(),
            max_connections: 8,
            wait_timeout: Duration::from_secs(30),
            ssl_mode,
            root_certs: RootCerts::System,
        }
    }

    /// How the connections use TLS (default [`SslMode::Prefer`], as libpq).
    pub fn ssl_mode(mut self, mode: SslMode) -> Self {
        self.ssl_mode = mode;
        self
    }

    /// The trusted roots of [`SslMode::VerifyCa`] and [`SslMode::VerifyFull`] (default: the system's).
    pub fn root_certs(mut self, roots: RootCerts) -> Self {
        self.root_certs = roots;
        self
    }

    /// The schema holding the catalog's tables (default `toygres_cms`): a lower-case SQL
    /// identifier (`[a-z_][a-z0-9_]*`, at most 63 bytes). Checked by `connect`.
    pub fn schema(mut self, schema: impl Into<String>) -> Self {
        self.schema = schema.into();
        self
    }

    /// Connections in the pool (default 8).
    pub fn max_connections(mut self, max: usize) -> Self {
        self.max_connections = max.max(1);
        self
    }

    /// How long a call waits for a free pooled connection before failing (default 30 s).
    pub fn wait_timeout(mut self, timeout: Duration) -> Self {
        self.wait_timeout = timeout;
        self
    }

    /// The schema name.
    pub fn schema_name(&self) -> &str {
        &self.schema
    }

    /// `host:port, database D, user U`, for error messages. Never the password.
    pub(crate) fn endpoint(&self) -> String {
        use tokio_postgres::config::Host;
        let hosts: Vec<String> = self
            .pg
            .get_hosts()
            .iter()
            .enumerate()
            .map(|(i, host)| {
                let port = self.pg.get_ports().get(i).or(self.pg.get_ports().first()).copied().unwrap_or(5432);
                match host {
                    Host::Tcp(name) => format!("{name}:{port}"),
                    #[cfg(unix)]
                    Host::Unix(path) => format!("{}/.s.PGSQL.{port}", path.display()),
                }
            })
            .collect();
        let hosts = if hosts.is_empty() { "localhost:5432 (default)".to_string() } else { hosts.join(", ") };
        format!(
            "{hosts}, database {}, user {}, sslmode {}",
            self.pg.get_dbname().or(self.pg.get_user()).unwrap_or("(default)"),
            self.pg.get_user().unwrap_or("(default)"),
            self.ssl_mode
        )
    }

    /// Removes the password from `text`, in case a server or driver message repeats it.
    pub(crate) fn redact(&self, text: &str) -> String {
        match self.pg.get_password().map(String::from_utf8_lossy) {
            Some(pw) => toygres_core::error::redact(text, &pw),
            None => text.to_string(),
        }
    }
}

impl fmt::Debug for PostgresCatalogConfig {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("PostgresCatalogConfig")
            .field("endpoint", &self.endpoint())
            .field("schema", &self.schema)
            .field("max_connections", &self.max_connections)
            .finish_non_exhaustive()
    }
}

/// Checks that `schema` is a plain lower-case identifier, and returns it double-quoted.
pub(crate) fn quoted_schema(schema: &str) -> Result<String> {
    let mut chars = schema.chars();
    let first_ok = chars.next().is_some_and(|c| c.is_ascii_lowercase() || c == '_');
    let rest_ok = chars.all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '_');
    if !first_ok || !rest_ok || schema.len() > 63 || schema.starts_with("pg_") {
        return Err(Error::InvalidRequest {
            field: "catalog schema",
            reason: format!(
                "{schema:?} is not a plain identifier; use lower-case letters, digits and `_`, starting with a \
                 letter or `_`, at most 63 bytes, not starting with `pg_` (default: {DEFAULT_SCHEMA})"
            ),
        });
    }
    Ok(format!("\"{schema}\""))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn schema_names_are_plain_identifiers() {
        assert_eq!(quoted_schema("toygres_cms").unwrap(), "\"toygres_cms\"");
        assert_eq!(quoted_schema("_cms2").unwrap(), "\"_cms2\"");
        for bad in ["", "Toygres", "1cms", "cms; DROP TABLE x", "a\"b", "pg_catalog", &"x".repeat(64)] {
            let e = quoted_schema(bad).unwrap_err();
            assert!(e.to_string().contains("lower-case letters"), "{bad:?}: {e}");
        }
    }

    #[test]
    fn debug_and_endpoint_never_show_the_password() {
        let config = PostgresCatalogConfig::from_url("postgresql://cms:s3cr3t-pw@db.internal:6543/control").unwrap();
        let shown = format!("{config:?}");
        assert!(!shown.contains("s3cr3t"), "{shown}");
        assert!(shown.contains("db.internal:6543, database control, user cms, sslmode prefer"), "{shown}");
        assert_eq!(config.redact("auth failed for s3cr3t-pw"), "auth failed for ***");
    }

    #[test]
    fn a_bad_url_is_refused_without_echoing_it() {
        let e = PostgresCatalogConfig::from_url("postgresql://u:pw-in-url@host:notaport/db").unwrap_err();
        assert!(!e.to_string().contains("pw-in-url"), "{e}");
        assert!(matches!(e, Error::InvalidRequest { field: "catalog database URL", .. }));
    }
}
