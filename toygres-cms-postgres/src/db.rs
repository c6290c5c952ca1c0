//! [`Db`]: the pool, the schema and the key, with the few query helpers every operation uses.

use crate::config::PostgresCatalogConfig;
use crate::errors;
use deadpool_postgres::{Client, Pool};
use tokio_postgres::types::ToSql;
use tokio_postgres::Row;
use toygres_core::crypto::CatalogKey;
use toygres_core::{Error, Result};

/// Query parameters.
pub type Params<'a> = &'a [&'a (dyn ToSql + Sync)];

/// What every catalog operation needs.
pub struct Db {
    pub(crate) pool: Pool,
    pub(crate) config: PostgresCatalogConfig,
    /// The double-quoted schema name, substituted for `{s}` in statements.
    pub(crate) schema: String,
    pub(crate) key: CatalogKey,
}

impl Db {
    /// A pooled connection.
    pub async fn client(&self) -> Result<Client> {
        self.pool.get().await.map_err(|e| errors::pool(&self.config, e))
    }

    /// Converts a failed statement run while doing `what`.
    pub fn err<'a>(&'a self, what: &'a str) -> impl Fn(tokio_postgres::Error) -> Error + 'a {
        move |e| errors::db(&self.config, what, e)
    }

    /// `template` with `{s}` replaced by the schema.
    pub fn sql(&self, template: &str) -> String {
        template.replace("{s}", &self.schema)
    }

    /// Runs `template` (prepared once per connection) and returns at most one row.
    pub async fn query_opt(&self, what: &str, template: &str, params: Params<'_>) -> Result<Option<Row>> {
        let client = self.client().await?;
        let statement = client.prepare_cached(&self.sql(template)).await.map_err(self.err(what))?;
        client.query_opt(&statement, params).await.map_err(self.err(what))
    }

    /// [`toygres_core::Error::OperationReused`] when `table`'s record of `operation` was made for
    /// a request whose digest is not `digest` (either digest missing: nothing to compare).
    pub async fn check_request_digest(
        &self,
        table: &str,
        operation: toygres_core::OperationId,
        digest: Option<&String>,
    ) -> Result<()> {
        let Some(digest) = digest else { return Ok(()) };
        let sql = format!("SELECT request_digest FROM {{s}}.{table} WHERE operation_id = $1");
        let row = self.query_opt("read a request digest", &sql, &[&operation.0]).await?;
        let kept = row.and_then(|r| r.get::<_, Option<String>>(0));
        toygres_core::catalog::check_request_digest(operation, kept.as_deref(), Some(digest))
    }

    /// Runs `template` (prepared once per connection) and returns every row.
    pub async fn query(&self, what: &str, template: &str, params: Params<'_>) -> Result<Vec<Row>> {
        let client = self.client().await?;
        let statement = client.prepare_cached(&self.sql(template)).await.map_err(self.err(what))?;
        client.query(&statement, params).await.map_err(self.err(what))
    }
}
