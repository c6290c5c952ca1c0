//! The backup job: `pg_dumpall --globals-only` and one `pg_dump -Fc -Z0` per database (every one but
//! `template0`), each streamed through zstd and sha256 straight into the blob store, each database's
//! own SQL and the cluster's locale ([`super::source`]), then the manifest, last (image format 2).

use super::dump::{dump, Output};
use super::jobs::JobCtx;
use super::source::{self, SourceDatabase};
use super::transfer;
use super::Inner;
use crate::cluster::{with_connections_allowed, LocalCluster};
use futures::{StreamExt, TryStreamExt};
use std::sync::Arc;
use toygres_core::manifest::{database_object_name, ManifestDatabase, FORMAT_VERSION};
use toygres_core::manifest::{GLOBALS_NAME, MANIFEST_NAME};
use toygres_core::{BackupJobSpec, Error, ImageFormat, Manifest, Password, Result, Transfer};

const BACKEND: &str = "local executor";
/// Databases dumped at the same time.
const PARALLEL_DUMPS: usize = 2;

/// Runs the backup job of `spec`: an export of a clone image ([`BackupJobSpec::from_image`])
/// reads the clone, never the source ([`super::export`]).
pub(crate) async fn run(inner: Arc<Inner>, spec: BackupJobSpec, ctx: JobCtx) -> Result<()> {
    if let Some(clone) = &spec.from_image {
        return super::export::run(&inner, &spec, clone, &ctx).await;
    }
    let cluster = inner.cluster_of(&spec.source)?;
    let password = &spec.source_password;
    let transfer = inner.blobs.transfer(&spec.location);
    ctx.log.line(&format!(
        "backup of instance {} (port {}) into {} at {}",
        spec.source.name,
        cluster.port(),
        inner.blobs.describe(),
        spec.location.prefix
    ));
    inner.blobs.delete(&spec.location).await?;
    transfer::login(&transfer, &ctx.log).await?;

    let client = cluster.connect("postgres", password).await?;
    let version: String = query_one(&client, "SELECT current_setting('server_version')").await?;
    let pg_version = version.split_whitespace().next().unwrap_or(&version).to_string();
    let databases = source::databases(&client).await?;
    // Byte progress counts what the dump programs write; the databases' size estimates the total.
    ctx.progress.set_total(source::total_size(&databases));
    let cluster_locale = source::cluster_locale(&client).await?;
    ctx.log.line(&format!(
        "PostgreSQL {pg_version}, databases: {:?}",
        databases.iter().map(|d| &d.name).collect::<Vec<_>>()
    ));

    let mut globals = cluster.client("pg_dumpall", password);
    globals.arg("--globals-only");
    let (cluster, ctx, transfer, inner, client) = (&cluster, &ctx, &transfer, &inner, &client);
    let globals = dump(globals, Output::Raw, transfer, GLOBALS_NAME, inner, ctx);
    let contents = async {
        match spec.format {
            ImageFormat::Logical => {
                let dumps = dump_databases(cluster, password, databases, transfer, inner, client, ctx).await?;
                Ok((dumps, vec![], None, None))
            }
            ImageFormat::Physical => {
                let (archives, wal) =
                    super::physical::base_backup(cluster, password, client, transfer, inner, ctx).await?;
                Ok((vec![], archives, None, Some(wal)))
            }
            ImageFormat::Clone => {
                let clone = super::clone::take(inner, spec.image_id, cluster, password, ctx).await?;
                Ok((vec![], vec![], Some(clone), None))
            }
        }
    };
    let (globals, (dumps, archives, clone, wal)) = tokio::try_join!(globals, contents)?;

    let manifest = Manifest {
        format_version: FORMAT_VERSION,
        image_id: spec.image_id,
        pg_version,
        image_type: spec.image_type,
        format: spec.format,
        compression: "zstd".into(),
        globals,
        databases: dumps,
        archives,
        created_at: chrono::Utc::now(),
        cluster_locale: Some(cluster_locale),
        dump_version: Some(inner.bin.version().await?),
        clone,
        wal,
    };
    let stored = manifest.stored_bytes(ctx.sealing.as_ref().map(|s| s.key()));
    transfer::write_all(transfer, MANIFEST_NAME, &stored, &ctx.log).await?;
    ctx.log.line(&format!("manifest written: {} bytes stored", manifest.total_size(0)));
    ctx.progress.complete();
    Ok(())
}

/// Dumps every database, two at a time, the largest first (it is the critical path); one that
/// refuses connections is opened while it is dumped. The result is in `databases`' order.
async fn dump_databases(
    cluster: &LocalCluster,
    password: &Password,
    databases: Vec<SourceDatabase>,
    transfer: &Transfer,
    inner: &Inner,
    client: &tokio_postgres::Client,
    ctx: &JobCtx,
) -> Result<Vec<ManifestDatabase>> {
    let mut order: Vec<_> = databases.into_iter().enumerate().collect();
    order.sort_by_key(|(_, db)| std::cmp::Reverse(db.size));
    let mut dumped = futures::stream::iter(order)
        .map(|(i, db)| async move {
            if !db.allow_connections {
                ctx.log.line(&format!("database {:?} refuses connections: allowing them while it is dumped", db.name));
            }
            let dump = dump_database(cluster, password, &db, i, transfer, inner, ctx);
            let dumped = with_connections_allowed(client, &db.name, !db.allow_connections, BACKEND, dump).await?;
            Ok::<_, Error>((i, dumped))
        })
        .buffer_unordered(PARALLEL_DUMPS)
        .try_collect::<Vec<_>>()
        .await?;
    dumped.sort_by_key(|(i, _)| *i);
    Ok(dumped.into_iter().map(|(_, db)| db).collect())
}

pub(super) async fn query_one(client: &tokio_postgres::Client, sql: &str) -> Result<String> {
    let row = client.query_one(sql, &[]).await.map_err(|e| Error::backend(BACKEND, format!("running {sql}"), e))?;
    Ok(row.get(0))
}

/// Dumps `db`'s own SQL and, at the same time, its contents (object `db-<index>`).
async fn dump_database(
    cluster: &LocalCluster,
    password: &Password,
    db: &SourceDatabase,
    index: usize,
    transfer: &Transfer,
    inner: &Inner,
    ctx: &JobCtx,
) -> Result<ManifestDatabase> {
    let mut cmd = cluster.client("pg_dump", password);
    cmd.env("PGDATABASE", &db.name).args(["--format=custom", "--compress=0", "--no-sync"]);
    ctx.log.line(&format!("dumping database {:?}", db.name));
    let name = database_object_name(index);
    let contents = dump(cmd, Output::Raw, transfer, &name, inner, ctx);
    let (sql, object) = tokio::try_join!(source::database_sql(cluster, password, db), contents)?;
    Ok(ManifestDatabase {
        name: db.name.clone(),
        owner: db.owner.clone(),
        object,
        sql,
        allow_connections: db.allow_connections,
    })
}
