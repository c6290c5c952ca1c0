//! What the backup job reads about its source besides the dumps: which databases there are, each
//! database's own SQL (image format 2) and the cluster's default locale.

use crate::cluster::{quote_ident, LocalCluster};
use tokio_postgres::Client;
use toygres_core::manifest::{ClusterLocale, DatabaseSql};
use toygres_core::{Error, Password, Result};

const BACKEND: &str = "local executor";

/// One database of the source.
#[derive(Debug, Clone)]
pub(crate) struct SourceDatabase {
    pub(crate) name: String,
    pub(crate) owner: String,
    /// `datallowconn`: the backup opens a database that refuses connections while it dumps it.
    pub(crate) allow_connections: bool,
    /// `pg_database_size`: the backup dumps the largest databases first.
    pub(crate) size: i64,
}

/// Every database but `template0` (which is never changed and which `initdb` recreates).
pub(crate) async fn databases(client: &Client) -> Result<Vec<SourceDatabase>> {
    let rows = client
        .query(
            "SELECT datname, pg_get_userbyid(datdba), datallowconn, pg_database_size(oid) FROM pg_database \
             WHERE datname <> 'template0' ORDER BY datname",
            &[],
        )
        .await
        .map_err(|e| Error::backend(BACKEND, "listing the source's databases", e))?;
    let database = |r: &tokio_postgres::Row| SourceDatabase {
        name: r.get(0),
        owner: r.get(1),
        allow_connections: r.get(2),
        size: r.get(3),
    };
    Ok(rows.iter().map(database).collect())
}

/// The size of the databases that allow connections, in bytes: the estimated total of a
/// backup's byte progress.
pub(crate) fn total_size(databases: &[SourceDatabase]) -> u64 {
    databases.iter().filter(|d| d.allow_connections).map(|d| d.size.max(0) as u64).sum()
}

/// The source's default locale (its `template1`'s).
pub(crate) async fn cluster_locale(client: &Client) -> Result<ClusterLocale> {
    let r = client
        .query_one(ClusterLocale::QUERY, &[])
        .await
        .map_err(|e| Error::backend(BACKEND, "reading the source's default locale", e))?;
    Ok(ClusterLocale::from_row(r.get(0), r.get(1), r.get(2), r.get(3), r.get(4)))
}

/// The database's own SQL: `pg_dump --create --schema-only --exclude-schema='*'` split by
/// [`DatabaseSql::from_pg_dump`], ending by refusing connections again when the source did.
pub(crate) async fn database_sql(
    cluster: &LocalCluster,
    password: &Password,
    db: &SourceDatabase,
) -> Result<DatabaseSql> {
    let mut cmd = cluster.client("pg_dump", password);
    cmd.env("PGDATABASE", &db.name).args(["--create", "--schema-only", "--exclude-schema=*", "--no-sync"]);
    let what = format!("dumping the properties of database {:?}", db.name);
    let out = crate::cluster::process::run(cmd, &what, &[password.expose()]).await?;
    let mut sql = DatabaseSql::from_pg_dump(&out);
    if !db.allow_connections {
        sql.properties.push_str(&format!("ALTER DATABASE {} ALLOW_CONNECTIONS false;\n", quote_ident(&db.name)));
    }
    Ok(sql)
}
