//! Physical images: `pg_basebackup`'s tar of the whole data directory (WAL included), streamed
//! through zstd and sha256 into the blob store, never staged on disk; restored by unpacking it
//! into a fresh data directory. The server deployed on it replays the WAL the tar holds (end of
//! recovery) before it accepts connections. Roles and password hashes are in the data files, so a
//! restored instance takes the source's password by construction.

use super::backup::dump;
use super::codec::Checked;
use super::jobs::JobCtx;
use super::transfer::Source;
use super::{untar, Inner};
use crate::cluster::{major_version, LocalCluster};
use toygres_core::manifest::{archive_object_name, ManifestObject};
use toygres_core::{Error, ImageFormat, InstanceSpec, Manifest, Password, Result, Transfer};

const BACKEND: &str = "local executor";
/// Stored chunks queued for the unpacking thread.
const CHANNEL_CHUNKS: usize = 8;

/// Streams `pg_basebackup -Ft -X fetch` of `cluster` into the image: one archive holding the data
/// directory and the WAL written while it was copied (`-c fast`: an immediate checkpoint).
pub(crate) async fn base_backup(
    cluster: &LocalCluster,
    password: &Password,
    transfer: &Transfer,
    inner: &Inner,
    ctx: &JobCtx,
) -> Result<Vec<ManifestObject>> {
    let mut cmd = cluster.client("pg_basebackup", password);
    cmd.args(["-D", "-", "-Ft", "-X", "fetch", "-c", "fast", "--no-manifest", "--no-sync"]);
    ctx.log.line("streaming pg_basebackup of the data directory");
    Ok(vec![dump(cmd, transfer, &archive_object_name(0), inner, ctx).await?])
}

/// Unpacks every archive of a verified physical `manifest` into `cluster`'s new, empty data
/// directory (owned by the server user, with the modes the tar holds; see [`untar`]), points the
/// configuration at this cluster's port and socket, and makes it durable. The WAL replay happens
/// when the server is started.
pub(crate) async fn unpack(
    cluster: &LocalCluster,
    transfer: &Transfer,
    manifest: &Manifest,
    ctx: &JobCtx,
) -> Result<()> {
    cluster.create_empty_data_dir()?;
    let user = cluster.server_user();
    let owner = Some(untar::Owner { uid: user.uid, gid: user.gid });
    for archive in &manifest.archives {
        ctx.log.line(&format!("unpacking {} ({} bytes)", archive.name, archive.size));
        let source = Source::open(transfer, manifest.image_id, &archive.name, &ctx.log).await?;
        let (tx, rx) = tokio::sync::mpsc::channel(CHANNEL_CHUNKS);
        let (root, image) = (cluster.data_dir(), manifest.image_id);
        let unpacked = tokio::task::spawn_blocking(move || {
            let tar = zstd::stream::read::Decoder::new(untar::ChannelReader::new(rx))
                .map_err(|e| Error::backend(BACKEND, "zstd init", e))?;
            untar::unpack(tar, &root, owner, image)
        });
        let mut checked = Checked::new(source, image, archive, Some(&ctx.progress));
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
    // appended listen address, port and socket directory win.
    cluster.write_conf()?;
    cluster.sync_data()
}

/// Refuses a physical image of another major than the local binaries (data files are only
/// readable by the major that wrote them).
pub(crate) fn check_major(manifest: &Manifest, local: &str) -> Result<()> {
    if manifest.format != ImageFormat::Physical {
        return Ok(());
    }
    match (major_version(&manifest.pg_version), major_version(local)) {
        (Some(image), Some(here)) if image != here => Err(Error::UnsupportedImage {
            image: manifest.image_id,
            reason: format!(
                "it is a physical image of PostgreSQL {}, and physical images restore only onto the same \
                 major (the local binaries are {local}); restore it with PostgreSQL {image} binaries, or take a \
                 logical image to move to another major",
                manifest.pg_version
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
