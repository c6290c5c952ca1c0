//! The connection test: one `SELECT 1` as the superuser, over TCP without TLS.

use std::time::Duration;
use toygres_core::{ConnectionInfo, Error, Password, Result};

/// One connection attempt to `connection` (on its public DNS name when it has one, so the test also
/// proves the name resolves) with `password`; the pipeline's `RetryPolicy` retries it.
pub async fn test_connection(connection: &ConnectionInfo, password: &Password, timeout: Duration) -> Result<()> {
    let host = connection.dns_name.as_deref().unwrap_or(&connection.host);
    let mut config = tokio_postgres::Config::new();
    config
        .host(host)
        .port(connection.port)
        .user(&connection.user)
        .dbname(&connection.database)
        .password(password.expose())
        .connect_timeout(timeout)
        .application_name("toygres-connection-test");
    let fail = |what: &str, e: tokio_postgres::Error| {
        let message = toygres_core::error::redact(&e.to_string(), password.expose());
        Error::backend_msg(
            crate::api::BACKEND,
            format!("{what} {host}:{} failed: {message}; check the Service and the instance's logs", connection.port),
        )
    };
    let (client, conn) = config.connect(tokio_postgres::NoTls).await.map_err(|e| fail("connecting to", e))?;
    let driver = tokio::spawn(conn);
    let result = client.simple_query("SELECT 1").await.map_err(|e| fail("SELECT 1 on", e));
    drop(client);
    let _ = driver.await;
    result.map(|_| ())
}
