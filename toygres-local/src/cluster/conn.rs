//! Connection parameters and client processes that authenticate without a password in argv.

use super::{LocalCluster, PgBinaries};
use serde::{Deserialize, Serialize};
use tokio::process::Command;
use toygres_core::{Error, Password, Result};

/// Where a client reaches a cluster. Never holds the password.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ConnParams {
    /// Host, `127.0.0.1` for local clusters.
    pub host: String,
    /// TCP port.
    pub port: u16,
    /// User name.
    pub user: String,
}

impl ConnParams {
    /// A `tokio_postgres` configuration for `database` with `password`.
    pub fn pg_config(&self, database: &str, password: &Password) -> tokio_postgres::Config {
        let mut config = tokio_postgres::Config::new();
        config
            .host(&self.host)
            .port(self.port)
            .user(&self.user)
            .dbname(database)
            .password(password.expose())
            .connect_timeout(std::time::Duration::from_secs(10));
        config
    }

    /// Connects to `database` and drives the connection on a background task.
    pub async fn connect(&self, database: &str, password: &Password) -> Result<tokio_postgres::Client> {
        let (client, connection) =
            self.pg_config(database, password).connect(tokio_postgres::NoTls).await.map_err(|e| {
                Error::backend(
                    "local cluster",
                    format!("connecting to {database} on {}:{} as {}", self.host, self.port, self.user),
                    e,
                )
            })?;
        tokio::spawn(async move {
            if let Err(e) = connection.await {
                tracing::debug!(error = %e, "postgres connection ended");
            }
        });
        Ok(client)
    }

    /// A client program (`psql`, `pg_dump`, ...) from `bin` aimed at this server, with the password
    /// in the `PGPASSWORD` environment variable (never in its arguments).
    pub fn client(&self, bin: &PgBinaries, program: &str, password: &Password) -> Command {
        let mut cmd = super::process::command(bin.path(program));
        cmd.env("PGHOST", &self.host)
            .env("PGPORT", self.port.to_string())
            .env("PGUSER", &self.user)
            .env("PGDATABASE", "postgres")
            .env("PGPASSWORD", password.expose())
            .env("PGCONNECT_TIMEOUT", "10")
            .env_remove("PGPASSFILE")
            .env_remove("PGSERVICE");
        cmd
    }
}

/// `ident` quoted for SQL.
pub(crate) fn quote_ident(ident: &str) -> String {
    format!("\"{}\"", ident.replace('"', "\"\""))
}

/// `ALTER DATABASE <db> ALLOW_CONNECTIONS <allow>` (`who` names the caller in errors).
pub(crate) async fn set_allow_connections(
    client: &tokio_postgres::Client,
    db: &str,
    allow: bool,
    who: &'static str,
) -> Result<()> {
    let sql = format!("ALTER DATABASE {} ALLOW_CONNECTIONS {allow}", quote_ident(db));
    client.batch_execute(&sql).await.map_err(|e| Error::backend(who, format!("running {sql}"), e))
}

/// Runs `work` on database `db`, which refuses connections when `closed`: it is opened for the
/// time `work` takes and closed again whatever `work` returns (`client` is connected to another
/// database of the same server as a superuser; `who` names the caller in errors). This is how a
/// backup dumps a `datallowconn = false` database, and how anything else reading one must do it.
pub async fn with_connections_allowed<T>(
    client: &tokio_postgres::Client,
    db: &str,
    closed: bool,
    who: &'static str,
    work: impl std::future::Future<Output = Result<T>>,
) -> Result<T> {
    if !closed {
        return work.await;
    }
    set_allow_connections(client, db, true, who).await?;
    let done = work.await;
    let reclosed = set_allow_connections(client, db, false, who).await;
    let done = done?;
    reclosed.map(|_| done)
}

impl LocalCluster {
    /// Connects to `database` as the superuser.
    pub async fn connect(&self, database: &str, password: &Password) -> Result<tokio_postgres::Client> {
        self.params().connect(database, password).await
    }

    /// A client program aimed at this cluster as the superuser; see [`ConnParams::client`].
    pub fn client(&self, program: &str, password: &Password) -> Command {
        self.params().client(&self.bin, program, password)
    }
}
