//! The restore job: verify the manifest and every object, then initialise a fresh volume with the
//! instance's password and the source's default locale, load the globals, and per database run its
//! own SQL (`CREATE DATABASE` with the source's locale), stream its dump into `pg_restore` on a
//! server started with load-only settings and apply its properties (settings, ACL, comment, …);
//! then stop it cleanly and mark the volume restored.
//!
//! Loading streams `zstd -d | pg_restore --single-transaction` per database (databases in
//! parallel) instead of decompressing to a file for `pg_restore -j2`. Measured here on pgbench
//! scale 30 into a fresh cluster with the load-only settings (2 cores, shared machine): streamed
//! with `--single-transaction` 4.0-5.0 s, streamed without it 5.8 s, decompressed to a file then
//! `pg_restore -j2` 7.7-8.4 s. The single transaction with `wal_level=minimal` lets `COPY` into
//! the tables it creates skip WAL, and nothing is staged on disk. A large database (see
//! [`LocalExecutorBuilder::split_load_from`](super::LocalExecutorBuilder::split_load_from))
//! loads in sections instead, its rows over several connections ([`sections`]): one backend
//! parsing every row of the largest table was the critical path.

use super::codec::decompress_into;
use super::feed::feed;
use super::jobs::JobCtx;
use super::sections;
use super::staging::Staged;
use super::transfer::{self, Source};
use super::Inner;
use crate::cluster::writeback::Writeback;
use crate::cluster::{quote_ident, script, LocalCluster, LOAD_ONLY_SETTINGS, SUPERUSER};
use futures::{StreamExt, TryStreamExt};
use std::sync::Arc;
use toygres_core::manifest::{exists_in_fresh_cluster, ManifestDatabase, GLOBALS_NAME, MANIFEST_NAME};
use toygres_core::{Error, ImageFormat, Manifest, Password, RestoreJobSpec, Result, Transfer};

const BACKEND: &str = "local executor";
/// Databases loaded at the same time.
const PARALLEL_LOADS: usize = 2;

/// Runs the restore job of `spec`.
pub(crate) async fn run(inner: Arc<Inner>, spec: RestoreJobSpec, ctx: JobCtx) -> Result<()> {
    let dir = inner.dir(&spec.instance);
    let cluster = inner.cluster_of(&spec.instance)?;
    if dir.restored().as_deref() == Some(spec.checksum.as_str()) {
        ctx.log.line("the volume already holds this image; nothing to do");
        return Ok(());
    }
    let password = dir.password()?;
    let image = spec.image_id;
    let transfer = inner.blobs.transfer(&spec.location);
    transfer::login(&transfer, &ctx.log).await?;

    let bytes = transfer::read_all(&transfer, image, MANIFEST_NAME, &ctx.log).await?;
    let manifest = Manifest::verified(image, &bytes, &spec.checksum, spec.data_key.as_ref())?;
    spec.check_databases(&manifest)?;
    let total: u64 = manifest.objects().map(|o| o.size).sum();
    // Every object is read once to verify it, then what is loaded (physical: the archives only).
    let loaded: u64 = match manifest.format {
        ImageFormat::Physical => manifest.archives.iter().map(|o| o.size).sum(),
        ImageFormat::Logical | ImageFormat::Clone => total,
    };
    ctx.progress.set_total(total + loaded);
    ctx.log.line(&format!("verifying {} objects ({total} bytes) into private storage", manifest.objects().count()));
    // From here on every byte comes from the verified copies, never from the blob store again.
    let staged = Staged::copy(&transfer, &manifest, &dir.staging_dir(), &ctx).await?;
    let transfer = staged.transfer.clone();

    super::compat::check(cluster.binaries(), &manifest).await?;
    if spec.recovery.is_some() && manifest.format != ImageFormat::Physical {
        return Err(Error::UnsupportedImage {
            image,
            reason: "a point-in-time restore replays WAL onto a physical image only".into(),
        });
    }
    ctx.log.line("image verified; initialising a fresh volume");
    dir.clear_restored()?;
    cluster.destroy_data().await?;
    let cluster = inner.cluster_on_free_port(&spec.instance).await?;
    if manifest.format == ImageFormat::Clone {
        super::clone::restore(&inner, &cluster, &manifest, &ctx).await?;
        dir.mark_restored(&spec.checksum)?;
        ctx.log.line("clone image cloned; the server starts on it as after a clean shutdown");
        return Ok(());
    }
    if manifest.format == ImageFormat::Physical {
        super::physical::unpack(&cluster, &transfer, &manifest, &ctx).await?;
        if let Some(recovery) = &spec.recovery {
            super::replay::run(&inner, &cluster, &password, recovery, &dir.path, &ctx).await?;
            dir.mark_restored(&spec.checksum)?;
            ctx.log.line("physical image unpacked and its instance's WAL replayed; the server runs, promoted");
            return Ok(());
        }
        dir.mark_restored(&spec.checksum)?;
        ctx.log.line("physical image unpacked; the server replays its WAL when it starts");
        return Ok(());
    }
    cluster.init_with_locale(&password, manifest.cluster_locale.as_ref()).await?;
    ctx.log.line("volume initialised; starting the server with load-only settings");
    let cluster = inner.start_on_free_port(&spec.instance, LOAD_ONLY_SETTINGS).await?;
    // The disk writes what is loaded while the CPUs load more: the final sync then takes 0.07 s
    // instead of 0.42 s (pgbench scale 50 here).
    let writeback = Writeback::every(cluster.data_dir());
    let (cluster_ref, password_ref, transfer_ref, manifest_ref, ctx_ref) =
        (&cluster, &password, &transfer, &manifest, &ctx);
    let split_from = inner.split_load_from;
    let loaded = async {
        apply_globals(cluster_ref, password_ref, transfer_ref, &manifest, ctx_ref).await?;
        let mut wanted: Vec<_> = manifest.databases.iter().filter(|d| spec.includes(&d.name)).cloned().collect();
        // The largest first: it is the critical path, and must not wait behind small ones.
        wanted.sort_by_key(|d| std::cmp::Reverse(d.object.raw_size.unwrap_or(d.object.size)));
        futures::stream::iter(wanted)
            .map(|db| async move {
                load_database(cluster_ref, password_ref, transfer_ref, manifest_ref, &db, split_from, ctx_ref).await
            })
            .buffer_unordered(PARALLEL_LOADS)
            .try_collect::<Vec<()>>()
            .await
    }
    .await;
    if let Err(e) = loaded {
        // The half-loaded volume is worthless (a re-run starts over): don't leave its server running.
        let _ = cluster.stop_immediate().await;
        return Err(e);
    }
    drop(writeback);
    cluster.stop().await?;
    cluster.sync_data()?;
    dir.mark_restored(&spec.checksum)?;
    ctx.log.line("restore complete; server stopped cleanly");
    Ok(())
}

/// The globals without the bootstrap superuser's `CREATE ROLE` (it exists already); its `ALTER
/// ROLE` stays, so it ends up with the source's password hash and attributes.
fn filter_globals(sql: &str) -> String {
    let skip = format!("CREATE ROLE {SUPERUSER};");
    sql.lines().filter(|l| l.trim() != skip).map(|l| format!("{l}\n")).collect()
}

async fn apply_globals(
    cluster: &LocalCluster,
    password: &Password,
    transfer: &Transfer,
    manifest: &Manifest,
    ctx: &JobCtx,
) -> Result<()> {
    let mut sql = Vec::new();
    let source = Source::open(transfer, manifest.image_id, GLOBALS_NAME, &ctx.log).await?;
    decompress_into(source, &mut sql, manifest.image_id, &manifest.globals, ctx).await?;
    let sql = filter_globals(&String::from_utf8_lossy(&sql));
    ctx.log.line("applying globals (roles and memberships)");
    run_sql(cluster, password, &sql, "psql (globals)", ctx).await
}

/// Loads one database: its `CREATE DATABASE` (format 2: the source's, with its locale), its dump
/// (in sections over several connections when it has `split_from` bytes or more, see
/// [`sections`]), then its properties (which may refuse connections or make it a template, so
/// they come last).
async fn load_database(
    cluster: &LocalCluster,
    password: &Password,
    transfer: &Transfer,
    manifest: &Manifest,
    db: &ManifestDatabase,
    split_from: u64,
    ctx: &JobCtx,
) -> Result<()> {
    let image = manifest.image_id;
    let name = quote_ident(&db.name);
    let create = match (manifest.format_version, exists_in_fresh_cluster(&db.name)) {
        (1, true) => format!("ALTER DATABASE {name} OWNER TO {};\n", quote_ident(&db.owner)),
        (1, false) => format!("CREATE DATABASE {name} OWNER {} TEMPLATE template0;\n", quote_ident(&db.owner)),
        (_, true) => db.sql.create_for_existing(),
        (_, false) => db.sql.create.clone(),
    };
    run_sql(cluster, password, &create, &format!("creating database {name}"), ctx).await?;
    let dump_size = db.object.raw_size.unwrap_or(db.object.size);
    if dump_size >= split_from && is_utf8(cluster, password, &db.name).await? {
        let n = sections::COPY_CONNECTIONS;
        ctx.log.line(&format!("loading database {name} from {} in sections, {n} connections", db.object.name));
        sections::load(cluster, password, sections::Dump { transfer, image, db }, ctx).await?;
    } else {
        ctx.log.line(&format!("loading database {name} from {}", db.object.name));
        let mut restore = cluster.client("pg_restore", password);
        restore.args(["--exit-on-error", "--single-transaction", "--no-password", "-d"]);
        restore.arg(sections::conninfo_dbname(&db.name));
        let source = Source::open(transfer, image, &db.object.name, &ctx.log).await?;
        let what = format!("pg_restore of {name}");
        feed(restore, &what, ctx, |mut stdin| async move {
            decompress_into(source, &mut stdin, image, &db.object, ctx).await
        })
        .await?;
    }
    run_sql(cluster, password, &db.sql.properties, &format!("applying the properties of database {name}"), ctx).await
}

/// Whether database `name` is UTF-8 encoded: the only encoding the loading connections of
/// [`sections`] speak (others load through one `pg_restore`).
async fn is_utf8(cluster: &LocalCluster, password: &Password, name: &str) -> Result<bool> {
    let client = cluster.connect("postgres", password).await?;
    let sql = "SELECT pg_encoding_to_char(encoding) = 'UTF8' FROM pg_database WHERE datname = $1";
    let row = client.query_one(sql, &[&name]).await.map_err(|e| Error::backend(BACKEND, "reading an encoding", e))?;
    Ok(row.get(0))
}

/// Runs the image's `sql` on the `postgres` database, statement by statement over a connection
/// (never through psql: see [`script`]), stopping at the first error. Empty `sql` runs nothing.
async fn run_sql(cluster: &LocalCluster, password: &Password, sql: &str, what: &str, ctx: &JobCtx) -> Result<()> {
    script::run_script(&cluster.params(), password, "postgres", sql).await.map_err(|e| {
        ctx.log.line(&format!("{what}: {e}"));
        match e {
            Error::Backend { message, .. } => Error::backend_msg(BACKEND, format!("{what}: {message}")),
            other => other,
        }
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn globals_keep_the_superusers_password_but_not_its_create() {
        let sql = "CREATE ROLE postgres;\nALTER ROLE postgres WITH SUPERUSER PASSWORD 'SCRAM';\nCREATE ROLE app;\n";
        assert_eq!(filter_globals(sql), "ALTER ROLE postgres WITH SUPERUSER PASSWORD 'SCRAM';\nCREATE ROLE app;\n");
        assert_eq!(quote_ident("a\"b"), "\"a\"\"b\"");
    }
}
