//! Unpacking a physical image's tar into a data directory, in this process: one thread
//! decompresses and parses the tar, [`WRITERS`] threads create and write the files (a file's
//! creation costs about a millisecond on some filesystems, and writes in 1 MiB pieces instead of
//! tar's 10 KiB records). Measured here on pgbench scale 50 (794 MiB, 1,300 files, 2 cores):
//! `zstd -d | tar -x` 2.3-2.7 s; this 0.6 s (scale 200, 3.2 GB: 3.4-4.9 s, bound by the disk). Each
//! piece written is handed to the kernel's writeback at once (`sync_file_range`), so the final sync
//! finds little left.
//!
//! Only directories and regular files are accepted, at relative paths without `..`: a physical
//! image of a default-tablespace instance holds nothing else. The caller makes the data directory
//! durable once everything is in it.

use bytes::Bytes;
use std::fs::{DirBuilder, File, OpenOptions};
use std::io::{Read, Write};
use std::os::unix::fs::{DirBuilderExt, OpenOptionsExt};
use std::path::{Component, Path, PathBuf};
use std::sync::mpsc::{channel, sync_channel, Receiver, Sender, SyncSender};
use toygres_core::{Error, ImageId, Result};

const BACKEND: &str = "local executor";
/// Threads creating and writing files.
pub(crate) const WRITERS: usize = 2;
/// Largest write handed to a writer.
const PIECE: usize = 1 << 20;
/// Pieces queued per writer.
const QUEUE: usize = 8;

/// Reads the chunks a channel delivers, as one byte stream (ends when the sender is dropped).
pub(crate) struct ChannelReader {
    rx: tokio::sync::mpsc::Receiver<Bytes>,
    current: Bytes,
}

impl ChannelReader {
    pub(crate) fn new(rx: tokio::sync::mpsc::Receiver<Bytes>) -> Self {
        Self { rx, current: Bytes::new() }
    }
}

impl Read for ChannelReader {
    fn read(&mut self, buf: &mut [u8]) -> std::io::Result<usize> {
        while self.current.is_empty() {
            match self.rx.blocking_recv() {
                Some(chunk) => self.current = chunk,
                None => return Ok(0),
            }
        }
        let n = buf.len().min(self.current.len());
        buf[..n].copy_from_slice(&self.current.split_to(n));
        Ok(n)
    }
}

enum Op {
    Open { path: PathBuf, mode: u32 },
    Data(Vec<u8>),
    Close,
}

fn io(what: String, e: std::io::Error) -> Error {
    Error::backend(BACKEND, what, e)
}

fn invalid(image: ImageId, detail: String) -> Error {
    Error::ImageIncomplete { image, detail }
}

/// Unpacks the tar read from `tar` (decompressed) into the existing, empty directory `root`,
/// with the modes the tar holds (`& 0o777`), owned by this process: the caller makes `root`
/// writable by nobody else while this runs (nothing is ever followed or chowned by path here),
/// then gives the tree away. Returns the number of bytes unpacked into files.
pub(crate) fn unpack(tar: impl Read, root: &Path, image: ImageId) -> Result<u64> {
    let mut archive = tar::Archive::new(tar);
    // Pieces go back to the parser once written: a few buffers reused, not 1 MiB allocated and
    // freed per piece (each free an munmap, whose TLB shootdowns cost dearly in a VM).
    let (free_tx, free_rx) = channel::<Vec<u8>>();
    let bytes = std::thread::scope(|scope| {
        let (senders, workers): (Vec<_>, Vec<_>) = (0..WRITERS)
            .map(|_| {
                let (tx, rx) = sync_channel::<Op>(QUEUE);
                let free = free_tx.clone();
                (tx, scope.spawn(move || write_files(rx, free)))
            })
            .unzip();
        let parsed = parse(&mut archive, root, image, &senders, &free_rx);
        drop(senders);
        let written = workers.into_iter().try_for_each(|w| w.join().expect("writer thread panicked"));
        // A writer's error explains a parser that could not hand it more work.
        written.and(parsed)
    })?;
    Ok(bytes)
}

/// Reads the entries: directories are created here (before anything inside them), files are
/// handed to the writers in turn.
fn parse(
    archive: &mut tar::Archive<impl Read>,
    root: &Path,
    image: ImageId,
    writers: &[SyncSender<Op>],
    free: &Receiver<Vec<u8>>,
) -> Result<u64> {
    let gone = || Error::backend_msg(BACKEND, "a file writer stopped");
    let entries = archive.entries().map_err(|e| invalid(image, format!("reading the tar: {e}")))?;
    let (mut bytes, mut next) = (0u64, 0usize);
    for entry in entries {
        let mut entry = entry.map_err(|e| invalid(image, format!("reading the tar: {e}")))?;
        let name = entry.path().map_err(|e| invalid(image, format!("a tar entry's name: {e}")))?.into_owned();
        let path = root.join(checked_path(&name, image)?);
        let kind = entry.header().entry_type();
        let mode = match kind {
            tar::EntryType::Directory | tar::EntryType::Regular | tar::EntryType::Continuous => {
                entry.header().mode().map_err(|e| invalid(image, format!("{}: mode: {e}", name.display())))? & 0o777
            }
            _ => 0,
        };
        match kind {
            tar::EntryType::Directory => create_dir(&path, mode)?,
            tar::EntryType::Regular | tar::EntryType::Continuous => {
                let writer = &writers[next % writers.len()];
                next += 1;
                writer.send(Op::Open { path: path.clone(), mode }).map_err(|_| gone())?;
                loop {
                    let mut piece = free.try_recv().unwrap_or_else(|_| Vec::with_capacity(PIECE));
                    piece.clear();
                    let n = (&mut entry)
                        .take(PIECE as u64)
                        .read_to_end(&mut piece)
                        .map_err(|e| invalid(image, format!("reading {} from the tar: {e}", name.display())))?;
                    if n == 0 {
                        break;
                    }
                    bytes += n as u64;
                    writer.send(Op::Data(piece)).map_err(|_| gone())?;
                }
                writer.send(Op::Close).map_err(|_| gone())?;
            }
            other => {
                return Err(invalid(
                    image,
                    format!(
                        "tar entry {} is a {other:?}; a physical image holds only directories and regular files \
                         (tablespaces are not supported)",
                        name.display()
                    ),
                ))
            }
        }
    }
    Ok(bytes)
}

/// `name` if it stays inside the root: relative, no `..`.
fn checked_path(name: &Path, image: ImageId) -> Result<PathBuf> {
    let mut out = PathBuf::new();
    for part in name.components() {
        match part {
            Component::Normal(p) => out.push(p),
            Component::CurDir => {}
            _ => return Err(invalid(image, format!("tar entry {} leaves the data directory", name.display()))),
        }
    }
    Ok(out)
}

fn create_dir(path: &Path, mode: u32) -> Result<()> {
    if path.is_dir() {
        return Ok(());
    }
    DirBuilder::new().mode(mode).create(path).map_err(|e| io(format!("creating {}", path.display()), e))
}

/// A writer: opens, fills and closes the files it is handed, in order. Stops at its first error.
fn write_files(rx: Receiver<Op>, free: Sender<Vec<u8>>) -> Result<()> {
    let mut current: Option<(File, PathBuf, u64)> = None;
    for op in rx {
        match op {
            Op::Open { path, mode } => {
                let file = OpenOptions::new()
                    .write(true)
                    .create_new(true)
                    .mode(mode)
                    .open(&path)
                    .map_err(|e| io(format!("creating {}", path.display()), e))?;
                current = Some((file, path, 0u64));
            }
            Op::Data(piece) => {
                let (file, path, offset) = current.as_mut().expect("data follows an open");
                file.write_all(&piece).map_err(|e| io(format!("writing {}", path.display()), e))?;
                crate::cluster::writeback::start(file, *offset, piece.len() as u64);
                *offset += piece.len() as u64;
                let _ = free.send(piece);
            }
            Op::Close => current = None,
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn tar_of(entries: &[(&str, Option<&[u8]>)]) -> Vec<u8> {
        let mut b = tar::Builder::new(Vec::new());
        for (name, data) in entries {
            let mut h = tar::Header::new_ustar();
            match data {
                Some(d) => {
                    h.set_entry_type(tar::EntryType::Regular);
                    h.set_size(d.len() as u64);
                    h.set_mode(0o600);
                    b.append_data(&mut h, name, *d).unwrap();
                }
                None => {
                    h.set_entry_type(tar::EntryType::Directory);
                    h.set_size(0);
                    h.set_mode(0o700);
                    b.append_data(&mut h, name, std::io::empty()).unwrap();
                }
            }
        }
        b.into_inner().unwrap()
    }

    #[test]
    fn unpacks_directories_and_files_with_their_modes() {
        let big: Vec<u8> = (0..3 * PIECE + 17).map(|i| (i % 251) as u8).collect();
        let tar =
            tar_of(&[("base", None), ("base/1", None), ("base/1/big", Some(&big)), ("PG_VERSION", Some(b"15\n"))]);
        let root = tempfile::tempdir().unwrap();
        let n = unpack(&tar[..], root.path(), ImageId::new()).unwrap();
        assert_eq!(n, big.len() as u64 + 3);
        assert_eq!(std::fs::read(root.path().join("base/1/big")).unwrap(), big);
        assert_eq!(std::fs::read(root.path().join("PG_VERSION")).unwrap(), b"15\n");
        use std::os::unix::fs::PermissionsExt;
        let mode = |p: &str| std::fs::metadata(root.path().join(p)).unwrap().permissions().mode() & 0o777;
        assert_eq!((mode("base/1"), mode("PG_VERSION")), (0o700, 0o600));
    }

    #[test]
    fn refuses_paths_leaving_the_root_and_links() {
        let root = tempfile::tempdir().unwrap();
        // A header written by hand: the builder refuses `..` itself.
        let mut h = tar::Header::new_ustar();
        h.set_entry_type(tar::EntryType::Regular);
        h.set_size(1);
        h.set_mode(0o600);
        h.as_old_mut().name[..7].copy_from_slice(b"../evil");
        h.set_cksum();
        let mut raw = h.as_bytes().to_vec();
        raw.push(b'x');
        raw.resize(512 * 4, 0);
        let err = unpack(&raw[..], root.path(), ImageId::new()).unwrap_err();
        assert!(err.to_string().contains("leaves the data directory"), "{err}");
        assert!(!root.path().parent().unwrap().join("evil").exists());

        let mut b = tar::Builder::new(Vec::new());
        let mut h = tar::Header::new_ustar();
        h.set_entry_type(tar::EntryType::Symlink);
        h.set_size(0);
        b.append_link(&mut h, "pg_tblspc/16400", "/elsewhere").unwrap();
        let err = unpack(&b.into_inner().unwrap()[..], root.path(), ImageId::new()).unwrap_err();
        assert!(err.to_string().contains("tablespaces are not supported"), "{err}");
    }
}
