//! Exports ([`BackupJobSpec::from_image`]): a clone image made into a physical image in the blob
//! store, so that it outlives the machine that keeps the clone. The source instance is not
//! contacted (it may be stopped or gone): everything comes from the clone image.
//!
//! The clone image's manifest is read and verified against its recorded checksum (and opened
//! under its data key); its kept data directory is checked as a restore checks it
//! ([`super::clone::check_restorable`]: names, sizes, modes), then streamed as one tar of exactly
//! the directories and files the manifest lists, zstd-compressed and sealed like any object
//! ([`compress_into`] into an [`ObjectSink`]) as `base-00.tar.zst`, what a physical restore
//! unpacks ([`super::physical::unpack`]). The data directory was recovered and cleanly shut down
//! when the clone was taken, so it needs no `backup_label`. Every file's sha256 is computed as
//! it is read and checked against the clone's manifest: the first that differs fails the export
//! with [`Error::ChecksumMismatch`], and nothing of it is kept. The globals object is copied
//! (authenticated, then sealed again under the export's own key), and the manifest is written
//! last, with the clone image's version, locale and dump version.

use super::codec::{compress_into, Checked};
use super::jobs::JobCtx;
use super::stored::{ObjectSink, Sealing};
use super::transfer::{self, Source};
use super::Inner;
use sha2::{Digest, Sha256};
use std::io::{Read, Write};
use std::os::unix::fs::{MetadataExt, OpenOptionsExt};
use std::path::{Path, PathBuf};
use tokio::io::AsyncWriteExt;
use toygres_core::manifest::{archive_object_name, format_sha256, ManifestClone, ManifestObject};
use toygres_core::manifest::{FORMAT_VERSION, MANIFEST_NAME};
use toygres_core::{
    BackupJobSpec, CloneSource, Error, ImageFormat, ImageId, ImageLocation, Manifest, Result, Transfer,
};

const BACKEND: &str = "local executor";
/// Bytes buffered between the thread writing the tar and the compressor.
const PIPE: usize = 1 << 20;
/// A tar header or padding block.
const BLOCK: u64 = 512;

/// Runs the export of `from` described by `spec` (see the module docs).
pub(crate) async fn run(inner: &Inner, spec: &BackupJobSpec, from: &CloneSource, ctx: &JobCtx) -> Result<()> {
    let clone_id = from.image_id;
    let transfer = inner.blobs.transfer(&spec.location);
    let clone_transfer = inner.blobs.transfer(&ImageLocation::for_image(clone_id));
    ctx.log.line(&format!(
        "export of clone image {clone_id} as a physical image into {} at {}",
        inner.blobs.describe(),
        spec.location.prefix
    ));
    inner.blobs.delete(&spec.location).await?;
    transfer::login(&transfer, &ctx.log).await?;

    let stored = transfer::read_all(&clone_transfer, clone_id, MANIFEST_NAME, &ctx.log).await?;
    let source = Manifest::verified(clone_id, &stored, &from.checksum, from.data_key.as_ref())?;
    let data = super::clone::check_restorable(inner, &source).await?;
    let clone = source.clone.clone().expect("check_restorable found its clone");
    ctx.progress.set_total(tar_size(&clone));
    ctx.log.line(&format!(
        "{} files ({} bytes) of PostgreSQL {} to archive",
        clone.files.len(),
        clone.size,
        source.pg_version
    ));

    let opening = Sealing::of(from.data_key.as_ref(), clone_id);
    let globals = copy_object(&clone_transfer, clone_id, &source.globals, opening.as_ref(), &transfer, ctx);
    let archive = archive(data, clone, clone_id, &transfer, inner, ctx);
    let (globals, archive) = tokio::try_join!(globals, archive)?;

    let manifest = Manifest {
        format_version: FORMAT_VERSION,
        image_id: spec.image_id,
        pg_version: source.pg_version,
        image_type: spec.image_type,
        format: ImageFormat::Physical,
        compression: "zstd".into(),
        globals,
        databases: vec![],
        archives: vec![archive],
        // The data is the clone's, as of when it was taken.
        created_at: source.created_at,
        cluster_locale: source.cluster_locale,
        dump_version: source.dump_version,
        clone: None,
        wal: None,
    };
    let stored = manifest.stored_bytes(ctx.sealing.as_ref().map(|s| s.key()));
    transfer::write_all(&transfer, MANIFEST_NAME, &stored, &ctx.log).await?;
    ctx.log.line(&format!("manifest written: {} bytes stored", manifest.total_size(0)));
    ctx.progress.complete();
    Ok(())
}

/// Copies object `object` of image `image` (opened under `opening`, checked against its size
/// and sha256) into the same name under `to`, sealed under the job's key.
async fn copy_object(
    from: &Transfer,
    image: ImageId,
    object: &ManifestObject,
    opening: Option<&Sealing>,
    to: &Transfer,
    ctx: &JobCtx,
) -> Result<ManifestObject> {
    let source = Source::open(from, image, &object.name, &ctx.log).await?;
    let mut checked = Checked::new(source, image, object, None).opened(opening);
    let mut sink = ObjectSink::open(to, &object.name, ctx)?;
    let copied = async {
        while let Some(chunk) = checked.next().await? {
            sink.write(&chunk).await?;
        }
        checked.finish().await
    }
    .await;
    match copied {
        Ok(()) => sink.finish(object.raw_size).await,
        Err(e) => {
            sink.abort().await;
            Err(e)
        }
    }
}

/// Streams the tar of `clone`'s data directory `data` (written by a blocking thread, see
/// [`write_tar`]) through zstd into the image's first archive.
async fn archive(
    data: PathBuf,
    clone: ManifestClone,
    image: ImageId,
    transfer: &Transfer,
    inner: &Inner,
    ctx: &JobCtx,
) -> Result<ManifestObject> {
    let (reader, writer) = tokio::io::duplex(PIPE);
    let out = PipeWriter { handle: tokio::runtime::Handle::current(), pipe: writer };
    let writing = tokio::task::spawn_blocking(move || write_tar(&data, &clone, image, out));
    let name = archive_object_name(0);
    let mut sink = ObjectSink::open(transfer, &name, ctx)?;
    let streamed = compress_into(reader, &mut sink, inner.compression, &ctx.progress).await;
    let written = writing.await.map_err(|e| Error::backend(BACKEND, "the tar thread", e))?;
    let raw_size = match (streamed, written) {
        (Ok(raw_size), Ok(())) => raw_size,
        // What the tar found in the clone explains a stream cut short; else the store's error.
        (_, Err(e @ (Error::ChecksumMismatch { .. } | Error::ImageIncomplete { .. }))) | (Err(e), _) | (_, Err(e)) => {
            sink.abort().await;
            return Err(e);
        }
    };
    let object = sink.finish(Some(raw_size)).await?;
    ctx.log.line(&format!("stored {name}: {} bytes, {}", object.size, object.sha256));
    Ok(object)
}

/// Bytes of the tar of `clone`: a header per directory (but the root) and per file, each file
/// padded to whole blocks, and the two closing blocks (progress's total).
fn tar_size(clone: &ManifestClone) -> u64 {
    let dirs = clone.dirs.iter().filter(|d| !d.is_empty()).count() as u64 * BLOCK;
    let files: u64 = clone.files.iter().map(|f| BLOCK + f.size.div_ceil(BLOCK) * BLOCK).sum();
    dirs + files + 2 * BLOCK
}

/// Writes to `out` the tar of the directories, then the files, that `clone` lists under `root`
/// (the root itself is the archive's root), with their modes. Files are opened without
/// following links and must have the listed size; each one's sha256 is checked once read.
fn write_tar(root: &Path, clone: &ManifestClone, image: ImageId, out: impl Write) -> Result<()> {
    let mut tar = tar::Builder::new(out);
    let io = |what: String| move |e: std::io::Error| crate::cluster::io_err(what, e);
    for dir in clone.dirs.iter().filter(|d| !d.is_empty()) {
        let path = root.join(dir);
        let meta = std::fs::symlink_metadata(&path).map_err(io(format!("reading {}", path.display())))?;
        if !meta.is_dir() {
            return Err(differs(image, format!("{dir:?} is not a directory any more")));
        }
        let mut header = header(tar::EntryType::Directory, 0, meta.mode() & 0o7777, meta.mtime());
        tar.append_data(&mut header, dir, std::io::empty()).map_err(io(format!("archiving {dir}")))?;
    }
    for file in &clone.files {
        let path = root.join(&file.path);
        let opened = std::fs::OpenOptions::new()
            .read(true)
            .custom_flags(libc::O_NOFOLLOW | libc::O_CLOEXEC)
            .open(&path)
            .map_err(|e| differs(image, format!("{:?} cannot be opened: {e}", file.path)))?;
        let meta = opened.metadata().map_err(io(format!("reading {}", path.display())))?;
        if !meta.is_file() || meta.len() != file.size {
            return Err(differs(
                image,
                format!("{:?} has {} bytes, the manifest lists {}", file.path, meta.len(), file.size),
            ));
        }
        let mut header = header(tar::EntryType::Regular, file.size, file.mode, meta.mtime());
        let mut reader = Hashing { inner: opened.take(file.size), sha: Sha256::new(), read: 0 };
        tar.append_data(&mut header, &file.path, &mut reader).map_err(io(format!("archiving {}", file.path)))?;
        if reader.read != file.size {
            return Err(differs(image, format!("{:?} ended after {} of {} bytes", file.path, reader.read, file.size)));
        }
        let actual = format_sha256(reader.sha.finalize().into());
        if actual != file.sha256 {
            let (object, expected) = (format!("clone file {}", file.path), file.sha256.clone());
            return Err(Error::ChecksumMismatch { image, object, expected, actual });
        }
    }
    // Dropping the pipe's end is the end of the stream.
    tar.into_inner().map(drop).map_err(io("finishing the tar".into()))
}

fn header(kind: tar::EntryType, size: u64, mode: u32, mtime: i64) -> tar::Header {
    let mut header = tar::Header::new_gnu();
    header.set_entry_type(kind);
    header.set_size(size);
    header.set_mode(mode);
    header.set_mtime(mtime.max(0) as u64);
    header
}

fn differs(image: ImageId, detail: String) -> Error {
    Error::ImageIncomplete { image, detail: format!("its clone data differs from its manifest: {detail}") }
}

/// A reader hashing and counting what it hands on.
struct Hashing<R> {
    inner: R,
    sha: Sha256,
    read: u64,
}

impl<R: Read> Read for Hashing<R> {
    fn read(&mut self, buf: &mut [u8]) -> std::io::Result<usize> {
        let n = self.inner.read(buf)?;
        self.sha.update(&buf[..n]);
        self.read += n as u64;
        Ok(n)
    }
}

/// The blocking side of the pipe into the compressor (a closed reader is a broken pipe); every
/// write is handed on at once, and dropping it ends the stream.
struct PipeWriter {
    handle: tokio::runtime::Handle,
    pipe: tokio::io::DuplexStream,
}

impl Write for PipeWriter {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        self.handle.block_on(self.pipe.write_all(buf)).map(|()| buf.len())
    }

    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

#[cfg(test)]
mod tests;
