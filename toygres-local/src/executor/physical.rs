//! Physical images: `pg_basebackup`'s tar of the whole data directory (WAL included), streamed
//! through zstd and sha256 into the blob store, never staged on disk; restored by unpacking it
//! into a fresh data directory. The server deployed on it replays the WAL the tar holds (end of
//! recovery) before it accepts connections. Roles and password hashes are in the data files, so a
//! restored instance takes the source's password by construction.

use super::codec::Checked;
use super::dump::{dump, Output};
use super::jobs::JobCtx;
use super::transfer::Source;
use super::{untar, Inner};
use crate::cluster::{major_version, LocalCluster};
use toygres_core::manifest::{archive_object_name, ManifestObject};
use toygres_core::wal::WalRange;
use toygres_core::{Error, ImageFormat, InstanceSpec, Manifest, Password, Result, Transfer};

const BACKEND: &str = "local executor";
/// Stored chunks queued for the unpacking thread.
const CHANNEL_CHUNKS: usize = 8;

/// Streams `pg_basebackup -Ft -X fetch` of `cluster` into the image: one archive holding the data
/// directory and the WAL written while it was copied (`-c fast`: an immediate checkpoint).
///
/// When the server can (PostgreSQL 15 and later, built with zstd) it compresses
/// (`--compress=server-zstd`, with the executor's level and workers) and this process only hashes
/// and stores, with pg_basebackup's own progress report and total. Measured here on pgbench scale
/// 200 (3.2 GB, 2 cores): 2.4-5.7 s, against 10.0-11.6 s for the uncompressed stream compressed
/// here, which is what other servers get.
///
/// Returns the archives and the WAL the backup spans ([`WalRange`], for point-in-time
/// restores): the server's WAL position before it started (at or before its checkpoint's redo
/// position), and its position, time and timeline once it ended.
pub(crate) async fn base_backup(
    cluster: &LocalCluster,
    password: &Password,
    client: &tokio_postgres::Client,
    transfer: &Transfer,
    inner: &Inner,
    ctx: &JobCtx,
) -> Result<(Vec<ManifestObject>, WalRange)> {
    let start: String = super::backup::query_one(client, "SELECT pg_catalog.pg_current_wal_lsn()::text").await?;
    let mut cmd = cluster.client("pg_basebackup", password);
    cmd.args(["-D", "-", "-Ft", "-X", "fetch", "-c", "fast", "--no-manifest", "--no-sync"]);
    let output = if server_compresses(client).await? {
        let c = inner.compression;
        cmd.arg("--progress").arg(format!("--compress=server-zstd:level={},workers={}", c.level, c.workers));
        ctx.log.line("streaming pg_basebackup of the data directory, compressed by the server");
        Output::Zstd { report: basebackup_progress }
    } else {
        ctx.log.line("streaming pg_basebackup of the data directory (the server cannot compress it)");
        Output::Raw
    };
    let archive = dump(cmd, output, transfer, &archive_object_name(0), inner, ctx).await?;
    let sql =
        "SELECT pg_catalog.pg_current_wal_lsn()::text, (SELECT timeline_id FROM pg_catalog.pg_control_checkpoint()), \
               (extract(epoch FROM pg_catalog.now()) * 1000000)::int8";
    let row = client.query_one(sql, &[]).await.map_err(|e| Error::backend(BACKEND, "reading the WAL position", e))?;
    let (end, timeline, micros): (String, i32, i64) = (row.get(0), row.get(1), row.get(2));
    let end_time = chrono::DateTime::from_timestamp_micros(micros).unwrap_or_default();
    let wal = WalRange { timeline: timeline as u32, start_lsn: start.parse()?, end_lsn: end.parse()?, end_time };
    ctx.log.line(&format!("the backup spans WAL {}..{} on timeline {}", wal.start_lsn, wal.end_lsn, wal.timeline));
    Ok((vec![archive], wal))
}

/// Whether the server can compress a base backup with zstd: PostgreSQL 15 or later, configured
/// `--with-zstd` (what its `pg_config` view says).
async fn server_compresses(client: &tokio_postgres::Client) -> Result<bool> {
    let sql = "SELECT current_setting('server_version_num')::int >= 150000 AND EXISTS \
               (SELECT FROM pg_config WHERE name = 'CONFIGURE' AND setting LIKE '%--with-zstd%')";
    let row =
        client.query_one(sql, &[]).await.map_err(|e| Error::backend(BACKEND, "asking the source about zstd", e))?;
    Ok(row.get(0))
}

/// `(done, total)` bytes from a pg_basebackup `--progress` line (`123/4567 kB (2%), 0/1 tablespace`).
fn basebackup_progress(line: &str) -> Option<(u64, u64)> {
    let (counts, _) = line.trim().split_once(" kB")?;
    let (done, total) = counts.split_once('/')?;
    Some((done.trim().parse::<u64>().ok()? * 1024, total.trim().parse::<u64>().ok()? * 1024))
}

/// Unpacks every archive of a verified physical `manifest` into `cluster`'s new, empty data
/// directory (this process's while it unpacks, then the server user's, with the modes the tar
/// holds; see [`untar`]), points the
/// configuration at this cluster's port and socket, and makes it durable. The WAL replay happens
/// when the server is started.
pub(crate) async fn unpack(
    cluster: &LocalCluster,
    transfer: &Transfer,
    manifest: &Manifest,
    ctx: &JobCtx,
) -> Result<()> {
    // Root's until every archive is in: nothing can be planted in it meanwhile.
    cluster.create_private_data_dir()?;
    for archive in &manifest.archives {
        ctx.log.line(&format!("unpacking {} ({} bytes)", archive.name, archive.size));
        let source = Source::open(transfer, manifest.image_id, &archive.name, &ctx.log).await?;
        let (tx, rx) = tokio::sync::mpsc::channel(CHANNEL_CHUNKS);
        let (root, image) = (cluster.data_dir(), manifest.image_id);
        let unpacked = tokio::task::spawn_blocking(move || {
            let tar = zstd::stream::read::Decoder::new(untar::ChannelReader::new(rx))
                .map_err(|e| Error::backend(BACKEND, "zstd init", e))?;
            untar::unpack(tar, &root, image)
        });
        let mut checked = Checked::new(source, image, archive, Some(&ctx.progress)).opened(ctx.sealing.as_ref());
        let fed = async {
            while let Some(chunk) = checked.next().await? {
                if tx.send(chunk).await.is_err() {
                    return Ok(()); // the unpacker stopped: its error says why
                }
            }
            drop(tx);
            checked.finish().await
        }
        .await;
        let unpacked = unpacked.await.map_err(|e| Error::backend(BACKEND, "the unpacking thread", e))?;
        fed?;
        let bytes = unpacked?;
        ctx.log.line(&format!("unpacked {} bytes from {}", bytes, archive.name));
    }
    // The source's own settings stay (postgresql.conf, postgresql.auto.conf, pg_hba.conf); the
    // appended listen address, port and socket directory win, and the source's ALTER SYSTEM
    // (read after them) loses the settings the instance owns.
    cluster.write_conf()?;
    drop_instance_owned_settings(&cluster.data_dir(), &ctx.log)?;
    cluster.take_data_dir()?;
    cluster.sync_data()
}

/// Settings the instance owns: where it listens and how it authenticates. A physical image
/// carries its source's `postgresql.auto.conf` (`ALTER SYSTEM`), which PostgreSQL reads after
/// `postgresql.conf`: left there, one of these would move the restored server off its address or
/// port, or swap its `pg_hba.conf`.
pub(crate) const INSTANCE_OWNED_SETTINGS: &[&str] = &[
    "listen_addresses",
    "port",
    "unix_socket_directories",
    "unix_socket_group",
    "unix_socket_permissions",
    "hba_file",
    "ident_file",
];

/// Removes the [`INSTANCE_OWNED_SETTINGS`] from the data directory's `postgresql.auto.conf`,
/// keeping every other `ALTER SYSTEM` setting. The file is opened without following links (it
/// comes from the image).
pub(crate) fn drop_instance_owned_settings(data_dir: &std::path::Path, log: &super::joblog::JobLog) -> Result<()> {
    use std::io::{Read, Write};
    use std::os::unix::fs::OpenOptionsExt;
    let path = data_dir.join("postgresql.auto.conf");
    let io = |what: &str, e| crate::cluster::io_err(format!("{what} {}", path.display()), e);
    let mut text = String::new();
    match std::fs::OpenOptions::new().read(true).custom_flags(libc::O_NOFOLLOW).open(&path) {
        Ok(mut file) => file.read_to_string(&mut text).map_err(|e| io("reading", e))?,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(()),
        Err(e) => return Err(io("opening", e)),
    };
    let owned = |line: &&str| {
        let name = line.split('=').next().unwrap_or("").trim();
        INSTANCE_OWNED_SETTINGS.iter().any(|s| s.eq_ignore_ascii_case(name))
    };
    let dropped: Vec<&str> = text.lines().filter(owned).collect();
    if dropped.is_empty() {
        return Ok(());
    }
    let names: Vec<&str> = dropped.iter().map(|l| l.split('=').next().unwrap_or("").trim()).collect();
    log.line(&format!("dropping the source's ALTER SYSTEM settings the instance owns: {}", names.join(" ")));
    let kept: String = text.lines().filter(|l| !owned(l)).map(|l| format!("{l}\n")).collect();
    let mut file = std::fs::OpenOptions::new()
        .write(true)
        .truncate(true)
        .custom_flags(libc::O_NOFOLLOW)
        .open(&path)
        .map_err(|e| io("opening", e))?;
    file.write_all(kept.as_bytes()).map_err(|e| io("writing", e))
}

/// Refuses a physical or clone image of another major than the local binaries (data files are
/// only readable by the major that wrote them).
pub(crate) fn check_major(manifest: &Manifest, local: &str) -> Result<()> {
    if manifest.format == ImageFormat::Logical {
        return Ok(());
    }
    match (major_version(&manifest.pg_version), major_version(local)) {
        (Some(image), Some(here)) if image != here => Err(Error::UnsupportedImage {
            image: manifest.image_id,
            reason: format!(
                "it is a {} image of PostgreSQL {}, and {0} images restore only onto the same \
                 major (the local binaries are {local}); restore it with PostgreSQL {image} binaries, or take a \
                 logical image to move to another major",
                manifest.format, manifest.pg_version
            ),
        }),
        _ => Ok(()),
    }
}

/// Refuses a source that cannot be imaged physically: `wal_level=minimal`, no WAL senders, or
/// tablespaces besides the default ones (they cannot share pg_basebackup's single tar stream).
pub(crate) async fn check_source(inner: &Inner, source: &InstanceSpec, password: &Password) -> Result<()> {
    let client = inner.cluster_of(source)?.connect("postgres", password).await?;
    let row = client
        .query_one(
            "SELECT current_setting('wal_level'), current_setting('max_wal_senders')::int, \
             (SELECT count(*) FROM pg_tablespace WHERE spcname NOT IN ('pg_default', 'pg_global'))",
            &[],
        )
        .await
        .map_err(|e| Error::backend(BACKEND, "reading the source's WAL settings", e))?;
    let (wal_level, senders, tablespaces): (String, i32, i64) = (row.get(0), row.get(1), row.get(2));
    let refuse = |reason: String| Err(Error::InvalidRequest { field: "format", reason });
    if wal_level == "minimal" {
        return refuse(format!(
            "instance {} runs with wal_level=minimal, which a physical image cannot be taken from; set \
             wal_level = replica and restart it, or take a logical image",
            source.name
        ));
    }
    if senders < 1 {
        return refuse(format!("instance {} has max_wal_senders = 0; raise it to at least 1", source.name));
    }
    if tablespaces > 0 {
        return refuse(format!(
            "instance {} has {tablespaces} tablespace(s) besides pg_default; the local executor images only \
             the default tablespace physically: take a logical image",
            source.name
        ));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_pg_basebackups_progress_lines() {
        assert_eq!(basebackup_progress("12/3117 kB (0%), 0/1 tablespace"), Some((12 * 1024, 3117 * 1024)));
        assert_eq!(basebackup_progress("  3117/3117 kB (100%), 1/1 tablespace"), Some((3117 * 1024, 3117 * 1024)));
        assert_eq!(basebackup_progress("pg_basebackup: error: connection failed"), None);
        assert_eq!(basebackup_progress("WARNING: 12/ kB"), None);
    }
}
