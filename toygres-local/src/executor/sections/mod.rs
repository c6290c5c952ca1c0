//! Loading one large database over several connections.
//!
//! `pg_restore` loads a database through one connection, so a single server backend parses every
//! row of the largest table while the other cores wait. For a large database the restore runs
//! the dump's three sections instead, each entry of the dump in exactly one of them:
//!
//! 1. the schema (`pg_restore --section=pre-data`), in one transaction;
//! 2. the data: the rows of every table, cut into chunks at row boundaries, loaded by
//!    [`COPY_CONNECTIONS`] connections at the same time, and the sequence values on one more
//!    ([`workers`]). The rows come straight from the archive ([`archive`]), or, for an archive
//!    read only by `pg_restore` (large objects, say), from `pg_restore --section=data -f -`
//!    ([`split`]);
//! 3. indexes, constraints and the rest (`--section=post-data`), in one transaction.
//!
//! The data is WAL-logged this way (a table created in the loading transaction is not, with the
//! load-only `wal_level=minimal`), which the second core more than pays for on large tables.

mod archive;
mod split;
mod workers;

use super::codec::{decompress_head_into, decompress_into};
use super::feed::feed;
use super::jobs::JobCtx;
use super::transfer::Source;
use crate::cluster::LocalCluster;
use archive::{Archive, Toc};
use bytes::Bytes;
use std::collections::HashMap;
use std::process::Stdio;
use std::sync::Arc;
use std::time::{Duration, Instant};
use tokio::io::{AsyncRead, AsyncWrite, BufReader};
use tokio::sync::{mpsc, watch};
use toygres_core::manifest::ManifestDatabase;
use toygres_core::{Error, ImageId, Password, Result, Transfer};
use workers::CopyChunk;

const BACKEND: &str = "local executor";
/// Connections loading `COPY` chunks of one database at the same time.
pub(crate) const COPY_CONNECTIONS: usize = 2;
/// Rows are handed to the connections in chunks of about this many bytes.
const CHUNK: usize = 4 << 20;

/// Where one database's dump comes from.
pub(crate) struct Dump<'a> {
    pub(crate) transfer: &'a Transfer,
    pub(crate) image: ImageId,
    pub(crate) db: &'a ManifestDatabase,
}

impl Dump<'_> {
    async fn open(&self, ctx: &JobCtx) -> Result<Source> {
        Source::open(self.transfer, self.image, &self.db.object.name, &ctx.log).await
    }
}

/// Loads `dump` into its (existing, empty) database section by section.
pub(crate) async fn load(cluster: &LocalCluster, password: &Password, dump: Dump<'_>, ctx: &JobCtx) -> Result<()> {
    let started = Instant::now();
    restore_section(cluster, password, &dump, "pre-data", ctx).await?;
    let schema = started.elapsed();
    if let Some(why) = load_data(cluster, password, &dump, ctx).await? {
        ctx.log.line(&format!("the data section loads through pg_restore: {why}"));
        load_data_through_pg_restore(cluster, password, &dump, ctx).await?;
    }
    let data = started.elapsed() - schema;
    restore_section(cluster, password, &dump, "post-data", ctx).await?;
    let post = started.elapsed() - schema - data;
    let secs = Duration::as_secs_f64;
    ctx.log.line(&format!(
        "database {:?} loaded: schema {:.2} s, data {:.2} s, indexes and constraints {:.2} s",
        dump.db.name,
        secs(&schema),
        secs(&data),
        secs(&post)
    ));
    Ok(())
}

/// `pg_restore --section=<section>` into the database, in one transaction. `pg_restore` reads
/// only the dump's table of contents for these sections and closes its input early.
async fn restore_section(
    cluster: &LocalCluster,
    password: &Password,
    dump: &Dump<'_>,
    section: &str,
    ctx: &JobCtx,
) -> Result<()> {
    let mut restore = cluster.client("pg_restore", password);
    restore.args(["--exit-on-error", "--single-transaction", "--no-password", "--section", section]);
    restore.args(["-d", &conninfo_dbname(&dump.db.name)]);
    let source = dump.open(ctx).await?;
    let what = format!("pg_restore --section={section} of {:?}", dump.db.name);
    let object = &dump.db.object;
    let sealing = ctx.sealing.as_ref();
    feed(
        restore,
        &what,
        ctx,
        |mut stdin| async move { decompress_head_into(source, &mut stdin, object, sealing).await },
    )
    .await
}

/// `dbname='…'` for a libpq connection string.
pub(crate) fn conninfo_dbname(name: &str) -> String {
    format!("dbname='{}'", name.replace('\\', "\\\\").replace('\'', "\\'"))
}

/// The data section read from the archive itself; `Some(why)` when this archive cannot be
/// (nothing was loaded then).
async fn load_data(
    cluster: &LocalCluster,
    password: &Password,
    dump: &Dump<'_>,
    ctx: &JobCtx,
) -> Result<Option<String>> {
    let source = dump.open(ctx).await?;
    let (writer, reader) = tokio::io::duplex(1 << 20);
    let fed = pour(dump, source, writer, ctx);
    let read = async {
        let (mut archive, toc) = Archive::open(reader, dump.db.object.raw_size).await?;
        let (settings, copies, statements) = match toc {
            Toc::Unsupported(why) => return Ok(Some(why)),
            Toc::Data { settings, copies, statements } => (settings, copies, statements),
        };
        let (_settings_tx, settings_rx) = watch::channel(Some(Arc::new(settings)));
        let (copies_tx, copies_rx) = mpsc::channel(2 * COPY_CONNECTIONS);
        let (sql_tx, sql_rx) = mpsc::channel(statements.len().max(1));
        for statement in statements {
            sql_tx.try_send(statement).expect("room for every statement");
        }
        drop(sql_tx);
        let blocks = send_blocks(&mut archive, &copies, copies_tx);
        let loading = workers::run(cluster, password, dump, settings_rx, copies_rx, sql_rx);
        tokio::try_join!(blocks, loading).map(|_| None)
    };
    let (fed, read) = tokio::join!(fed, read);
    match (read, fed) {
        // The reader stopped at the table of contents: the feeder's closed pipe is expected.
        (Ok(Some(why)), _) => Ok(Some(why)),
        // A checksum mismatch explains whatever the reader made of the bytes.
        (_, Err(e @ Error::ChecksumMismatch { .. })) | (Err(e), _) => Err(e),
        (Ok(None), fed) => fed.map(|_| None),
    }
}

/// Decompresses the dump into `output`, checking its size and sha256, then closes `output`.
async fn pour<W: AsyncWrite + Unpin>(dump: &Dump<'_>, source: Source, mut output: W, ctx: &JobCtx) -> Result<()> {
    decompress_into(source, &mut output, dump.image, &dump.db.object, ctx).await
}

/// The end marker pg_dump writes after a table's rows.
const END_OF_ROWS: &[u8] = b"\\.\n\n\n";

/// Sends the rows of every data block in chunks cut after whole rows.
async fn send_blocks<R: AsyncRead + Unpin>(
    archive: &mut Archive<R>,
    copies: &HashMap<i64, Arc<str>>,
    chunks: mpsc::Sender<CopyChunk>,
) -> Result<()> {
    let stopped = || Error::backend_msg(BACKEND, "the loading connections stopped early");
    let capacity = CHUNK + (64 << 10);
    while let Some(id) = archive.next_block().await? {
        let unknown =
            || Error::backend_msg(BACKEND, format!("the dump has data for entry {id}, which it does not list"));
        let statement = copies.get(&id).ok_or_else(unknown)?.clone();
        let mut rows = Vec::with_capacity(capacity);
        loop {
            let limit = CHUNK.max(rows.len() + 1);
            if !archive.read_data(&mut rows, limit).await? {
                break;
            }
            // Cut after the last whole row, holding back what may be the end marker.
            let searched = &rows[..rows.len().saturating_sub(END_OF_ROWS.len())];
            let Some(cut) = searched.iter().rposition(|b| *b == b'\n') else { continue };
            let mut rest = Vec::with_capacity(capacity);
            rest.extend_from_slice(&rows[cut + 1..]);
            rows.truncate(cut + 1);
            let full = std::mem::replace(&mut rows, rest);
            chunks
                .send(CopyChunk { statement: statement.clone(), rows: Bytes::from(full) })
                .await
                .map_err(|_| stopped())?;
        }
        let ends = rows.ends_with(END_OF_ROWS)
            && (rows.len() == END_OF_ROWS.len() || rows[rows.len() - END_OF_ROWS.len() - 1] == b'\n');
        if !ends {
            return Err(Error::backend_msg(
                BACKEND,
                format!("the rows of {statement:?} do not end with pg_dump's end marker"),
            ));
        }
        rows.truncate(rows.len() - END_OF_ROWS.len());
        if !rows.is_empty() {
            chunks.send(CopyChunk { statement, rows: Bytes::from(rows) }).await.map_err(|_| stopped())?;
        }
    }
    Ok(())
}

/// The data section through `pg_restore -f -`, its SQL split by [`split::split`].
async fn load_data_through_pg_restore(
    cluster: &LocalCluster,
    password: &Password,
    dump: &Dump<'_>,
    ctx: &JobCtx,
) -> Result<()> {
    let what = format!("pg_restore --section=data of {:?}", dump.db.name);
    let mut cmd = cluster.client("pg_restore", password);
    cmd.args(["--section=data", "-f", "-"]);
    cmd.stdin(Stdio::piped()).stdout(Stdio::piped()).stderr(Stdio::piped()).kill_on_drop(true);
    let mut child = cmd.spawn().map_err(|e| Error::backend(BACKEND, format!("{what}: cannot start it"), e))?;
    let captured = child.stderr.take().map(|e| ctx.log.capture(e, &what));
    let (stdin, stdout) = (child.stdin.take().expect("piped stdin"), child.stdout.take().expect("piped stdout"));
    let source = dump.open(ctx).await?;
    let fed = pour(dump, source, stdin, ctx);
    let (copies_tx, copies_rx) = mpsc::channel(2 * COPY_CONNECTIONS);
    let (sql_tx, sql_rx) = mpsc::channel(2);
    let (settings_tx, settings_rx) = watch::channel(None::<Arc<String>>);
    let split = split::split(BufReader::with_capacity(1 << 20, stdout), settings_tx, copies_tx, sql_tx);
    let loading = workers::run(cluster, password, dump, settings_rx, copies_rx, sql_rx);
    let loaded = tokio::try_join!(fed, split, loading).map(|_| ());
    if loaded.is_err() {
        let _ = child.start_kill();
    }
    let status = child.wait().await.map_err(|e| Error::backend(BACKEND, format!("{what}: waiting"), e))?;
    if let Some(c) = captured {
        c.done().await;
    }
    // pg_restore's own failure explains the others (a closed pipe, missing settings), except
    // a checksum mismatch, which explains pg_restore's.
    match (loaded, status.success()) {
        (Err(e @ Error::ChecksumMismatch { .. }), _) | (Err(e), true) => Err(e),
        (_, false) => Err(Error::backend_msg(BACKEND, format!("{what} failed ({status}); see the job log"))),
        (Ok(()), true) => Ok(()),
    }
}

#[cfg(test)]
mod tests;
