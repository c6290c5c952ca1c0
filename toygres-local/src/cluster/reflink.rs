//! Copy-on-write (reflink) clones of files and directory trees, the building block of instant
//! clones: a new instance's data directory that shares every block with a consistent source until
//! either side writes.
//!
//! A reflink clone copies no byte: the kernel's `FICLONE` ioctl makes the new file point at the
//! source's extents, so cloning a 1 GiB file costs about what a 1 MiB one does (metadata only).
//! It needs a filesystem that supports it: XFS made with `reflink=1` (mkfs.xfs's default today)
//! or btrfs. On any other (ext4, tmpfs, overlayfs, ...) the clone fails with an error of class
//! [`ErrorClass::Unsupported`] that names the filesystem; nothing is ever copied instead.
//!
//! ```no_run
//! use toygres_local::cluster::reflink;
//! # fn demo() -> toygres_core::Result<()> {
//! let base = std::path::Path::new("/mnt/toygres-xfs");
//! println!("{} is {}", base.display(), reflink::filesystem_of(base)?);
//! if reflink::supports_reflink(base)? {
//!     // A stopped cluster's data directory, given to the server's OS user (uid 105, gid 110).
//!     let stats = reflink::clone_tree(base.join("source/data"), base.join("clone/data"), Some((105, 110)))?;
//!     println!("{} files and {} directories, {} bytes shared", stats.files, stats.dirs, stats.bytes);
//! }
//! # Ok(()) }
//! ```
//!
//! Every function blocks (system calls only, no async): call them from `spawn_blocking` in async
//! code.

use std::fs::{self, File, OpenOptions};
use std::os::fd::AsRawFd;
use std::os::unix::fs::{MetadataExt, OpenOptionsExt, PermissionsExt};
use std::path::Path;
use toygres_core::{Error, ErrorClass, Result};

const BACKEND: &str = "reflink";

/// The filesystem a path lives on, from `statfs(2)`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FilesystemInfo {
    /// A short name: `"xfs"`, `"btrfs"`, `"ext4"` (also ext2 and ext3, which share its magic),
    /// `"tmpfs"`, `"overlayfs"`, ... or the magic number in hex (`"0x12345678"`) when unknown.
    pub name: String,
    /// The filesystem's magic number (`f_type`).
    pub magic: u64,
}

impl std::fmt::Display for FilesystemInfo {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.name)
    }
}

/// Magic numbers of `statfs(2)`'s `f_type` (linux/magic.h) and their names.
const MAGICS: &[(u64, &str)] = &[
    (0x5846_5342, "xfs"),
    (0x9123_683e, "btrfs"),
    (0xca45_1a4e, "bcachefs"),
    (0x7461_636f, "ocfs2"),
    (0xef53, "ext4"),
    (0x0102_1994, "tmpfs"),
    (0x8584_58f6, "ramfs"),
    (0x794c_7630, "overlayfs"),
    (0x2fc1_2fc1, "zfs"),
    (0xf2f5_2010, "f2fs"),
    (0x6969, "nfs"),
    (0xfe53_4d42, "smb2"),
    (0xff53_4d42, "cifs"),
    (0x0102_1997, "9p"),
    (0x6573_5546, "fuse"),
    (0x7371_7368, "squashfs"),
    (0x9fa0, "proc"),
    (0x6265_6572, "sysfs"),
    (0x4d44, "vfat"),
    (0x5346_544e, "ntfs"),
];

/// The filesystem `path` is on (following a final symlink).
pub fn filesystem_of(path: impl AsRef<Path>) -> Result<FilesystemInfo> {
    let path = path.as_ref();
    let st = nix::sys::statfs::statfs(path)
        .map_err(|e| io_err(format!("statfs {}", path.display()), std::io::Error::from(e)))?;
    // `f_type` is a signed word on some targets; the magic is its low 32 bits.
    let magic = (st.filesystem_type().0 as u64) & 0xffff_ffff;
    let name = MAGICS.iter().find(|(m, _)| *m == magic).map_or_else(|| format!("{magic:#x}"), |(_, n)| n.to_string());
    Ok(FilesystemInfo { name, magic })
}

/// What [`clone_tree`] made.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct CloneStats {
    /// Regular files cloned.
    pub files: u64,
    /// Directories created, the destination itself included.
    pub dirs: u64,
    /// Symbolic links recreated.
    pub symlinks: u64,
    /// Bytes the clones share with their sources (the sum of the files' lengths); none was copied.
    pub bytes: u64,
}

/// Makes `dst`, which must not exist, a reflink clone of the regular file `src`: same content,
/// no byte copied, blocks shared until either is written. `dst` gets mode 0600 (the caller sets
/// its own). Fails with an error of class [`ErrorClass::Unsupported`] naming the filesystem when
/// it cannot clone (not a reflink filesystem, or `src` and `dst` on different ones); then `dst`
/// does not exist.
pub fn clone_file(src: impl AsRef<Path>, dst: impl AsRef<Path>) -> Result<()> {
    let (src, dst) = (src.as_ref(), dst.as_ref());
    let from = File::open(src).map_err(|e| io_err(format!("opening {}", src.display()), e))?;
    if !from.metadata().is_ok_and(|m| m.is_file()) {
        let reason = format!("{} is not a regular file; clone a directory with clone_tree", src.display());
        return Err(Error::InvalidRequest { field: "src", reason });
    }
    clone_open(&from, src, dst).map(drop)
}

/// Opens `dst` (new, 0600, not through a link) and clones `from` into it; removes it on failure.
fn clone_open(from: &File, src: &Path, dst: &Path) -> Result<File> {
    let to = OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode(0o600)
        .custom_flags(libc::O_NOFOLLOW | libc::O_CLOEXEC)
        .open(dst)
        .map_err(|e| io_err(format!("creating {}", dst.display()), e))?;
    // SAFETY: FICLONE takes the source descriptor as its argument; both descriptors are open.
    let rc = unsafe { libc::ioctl(to.as_raw_fd(), libc::FICLONE, from.as_raw_fd()) };
    if rc == 0 {
        return Ok(to);
    }
    let e = std::io::Error::last_os_error();
    drop(to);
    let _ = fs::remove_file(dst);
    Err(clone_err(src, dst, e))
}

/// The error of a failed `FICLONE`: [`ErrorClass::Unsupported`] when the filesystem cannot do it.
fn clone_err(src: &Path, dst: &Path, e: std::io::Error) -> Error {
    let fs_name = |p: &Path| {
        let p = p.parent().filter(|p| !p.as_os_str().is_empty()).unwrap_or(Path::new("."));
        filesystem_of(p).map_or_else(|_| "an unknown filesystem".to_string(), |f| f.name)
    };
    let (from, to) = (fs_name(src), fs_name(dst));
    let what = format!("reflink clone of {} to {}", src.display(), dst.display());
    match e.raw_os_error() {
        Some(libc::EXDEV) => unsupported(
            format!("{what}: they are on different filesystems ({from} and {to}); a clone stays on one filesystem"),
            e,
        ),
        Some(libc::EOPNOTSUPP | libc::ENOTTY | libc::EINVAL | libc::ENOSYS) => unsupported(
            format!("{what}: {to} does not support reflink clones; use XFS made with reflink=1, or btrfs"),
            e,
        ),
        _ => io_err(what, e),
    }
}

/// Whether files in `dir` can be reflink-cloned: clones a small temporary file there (both are
/// removed). `Ok(false)` when the filesystem cannot; an error when the probe itself cannot run
/// (no such directory, no permission to write in it).
pub fn supports_reflink(dir: impl AsRef<Path>) -> Result<bool> {
    use std::io::Write;
    let dir = dir.as_ref();
    let mut probe = tempfile::Builder::new()
        .prefix(".toygres-reflink-probe.")
        .tempfile_in(dir)
        .map_err(|e| io_err(format!("creating a probe file in {}", dir.display()), e))?;
    probe.write_all(b"toygres reflink probe\n").map_err(|e| io_err("writing the probe file".into(), e))?;
    let mut clone = probe.path().as_os_str().to_owned();
    clone.push(".clone");
    let clone = std::path::PathBuf::from(clone);
    match clone_file(probe.path(), &clone) {
        Ok(()) => {
            fs::remove_file(&clone).map_err(|e| io_err(format!("removing {}", clone.display()), e))?;
            Ok(true)
        }
        Err(e) if e.class() == ErrorClass::Unsupported => Ok(false),
        Err(e) => Err(e),
    }
}

/// Recreates the tree `src_dir` at `dst_dir` with reflink clones of its regular files: nothing is
/// read or copied, so the time it takes depends on the number of files and extents, not on their
/// size.
///
/// - Directories are recreated, files cloned, each with its source's permission bits (setuid,
///   setgid and sticky included); symbolic links are recreated with the same target, never
///   followed. Hard links become separate clones. Timestamps, ACLs and extended attributes are
///   not carried over.
/// - With `owner = Some((uid, gid))`, everything created is given to it (`lchown`, not following
///   links); this needs root (`CAP_CHOWN`).
/// - Refused: FIFOs, sockets and device files, anything on another filesystem than `src_dir`
///   (a mount point inside the tree, or `dst_dir` elsewhere; by device number, so a btrfs
///   subvolume counts as another filesystem), and `dst_dir` inside `src_dir`.
/// - The directories stay mode 0700 and root's (the caller's) until they are filled, then get
///   their owner and mode; files are given theirs through their open descriptor. So the new
///   owner never holds a directory that this call still writes into.
/// - `dst_dir` must not exist; its parent must. On any error `dst_dir` is removed entirely:
///   nothing is left behind.
///
/// Errors: [`Error::InvalidRequest`] when `src_dir` is not a directory or `dst_dir` exists or is
/// inside it; an [`Error::Backend`] of class [`ErrorClass::Unsupported`], naming the filesystem,
/// when the filesystem cannot clone or the tree holds what cannot be cloned; other filesystem
/// errors as [`Error::Backend`].
pub fn clone_tree(
    src_dir: impl AsRef<Path>,
    dst_dir: impl AsRef<Path>,
    owner: Option<(u32, u32)>,
) -> Result<CloneStats> {
    let (src, dst) = (src_dir.as_ref(), dst_dir.as_ref());
    let meta = fs::symlink_metadata(src).map_err(|e| io_err(format!("reading {}", src.display()), e))?;
    if !meta.is_dir() {
        let reason = format!("{} is not a directory (a symbolic link is not followed)", src.display());
        return Err(Error::InvalidRequest { field: "src_dir", reason });
    }
    if fs::symlink_metadata(dst).is_ok() {
        let reason = format!("{} exists; a clone is made into a new directory", dst.display());
        return Err(Error::InvalidRequest { field: "dst_dir", reason });
    }
    let parent = dst.parent().filter(|p| !p.as_os_str().is_empty()).unwrap_or(Path::new("."));
    let parent = fs::canonicalize(parent).map_err(|e| io_err(format!("resolving {}", parent.display()), e))?;
    let src_real = fs::canonicalize(src).map_err(|e| io_err(format!("resolving {}", src.display()), e))?;
    if parent.starts_with(&src_real) {
        let reason = format!("{} is inside the tree it would clone, {}", dst.display(), src.display());
        return Err(Error::InvalidRequest { field: "dst_dir", reason });
    }
    let parent_dev = fs::metadata(&parent).map_err(|e| io_err(format!("reading {}", parent.display()), e))?.dev();
    if parent_dev != meta.dev() {
        let (from, to) = (filesystem_of(src)?, filesystem_of(&parent)?);
        let message = format!(
            "cannot clone {} into {}: they are on different filesystems ({from} and {to}); a clone stays on one filesystem",
            src.display(),
            dst.display()
        );
        return Err(Error::backend_class(ErrorClass::Unsupported, BACKEND, message, None));
    }
    fs::create_dir(dst).map_err(|e| io_err(format!("creating {}", dst.display()), e))?;
    let mut walk = Walk { dev: meta.dev(), owner, stats: CloneStats::default() };
    match walk.dir(src, dst, &meta) {
        Ok(()) => Ok(walk.stats),
        Err(e) => {
            // Everything below dst_dir was made by this call (create_dir above failed if it existed).
            if let Err(rm) = remove_tree(dst) {
                tracing::warn!(dir = %dst.display(), error = %rm, "could not remove a failed clone");
            }
            Err(e)
        }
    }
}

struct Walk {
    dev: u64,
    owner: Option<(u32, u32)>,
    stats: CloneStats,
}

impl Walk {
    /// Fills the directory `dst` (already created, mode 0700) from `src`, then gives it its owner
    /// and mode: last, so that a read-only source directory can still be filled.
    fn dir(&mut self, src: &Path, dst: &Path, meta: &fs::Metadata) -> Result<()> {
        self.stats.dirs += 1;
        set_mode(dst, 0o700)?;
        let entries = fs::read_dir(src).map_err(|e| io_err(format!("listing {}", src.display()), e))?;
        for entry in entries {
            let entry = entry.map_err(|e| io_err(format!("listing {}", src.display()), e))?;
            let (from, to) = (entry.path(), dst.join(entry.file_name()));
            let m = fs::symlink_metadata(&from).map_err(|e| io_err(format!("reading {}", from.display()), e))?;
            if m.dev() != self.dev {
                return Err(refuse(&from, "is on another filesystem (a mount point inside the tree)"));
            }
            let kind = m.file_type();
            if kind.is_dir() {
                fs::create_dir(&to).map_err(|e| io_err(format!("creating {}", to.display()), e))?;
                self.dir(&from, &to, &m)?;
            } else if kind.is_file() {
                self.file(&from, &to, &m)?;
            } else if kind.is_symlink() {
                let target = fs::read_link(&from).map_err(|e| io_err(format!("reading {}", from.display()), e))?;
                std::os::unix::fs::symlink(&target, &to)
                    .map_err(|e| io_err(format!("creating the link {}", to.display()), e))?;
                self.chown(&to)?;
                self.stats.symlinks += 1;
            } else {
                return Err(refuse(
                    &from,
                    "is a FIFO, socket or device file; only directories, files and links are cloned",
                ));
            }
        }
        self.chown(dst)?;
        set_mode(dst, meta.mode() & 0o7777)
    }

    fn file(&mut self, src: &Path, dst: &Path, meta: &fs::Metadata) -> Result<()> {
        let from = OpenOptions::new()
            .read(true)
            .custom_flags(libc::O_NOFOLLOW | libc::O_CLOEXEC)
            .open(src)
            .map_err(|e| io_err(format!("opening {}", src.display()), e))?;
        let to = clone_open(&from, src, dst)?;
        // Owner first: a chown clears the setuid and setgid bits that the mode then sets.
        if let Some((uid, gid)) = self.owner {
            std::os::unix::fs::fchown(&to, Some(uid), Some(gid))
                .map_err(|e| io_err(format!("chown {} to {uid}:{gid}", dst.display()), e))?;
        }
        to.set_permissions(fs::Permissions::from_mode(meta.mode() & 0o7777))
            .map_err(|e| io_err(format!("chmod {}", dst.display()), e))?;
        self.stats.files += 1;
        self.stats.bytes += meta.len();
        Ok(())
    }

    fn chown(&self, path: &Path) -> Result<()> {
        match self.owner {
            Some((uid, gid)) => std::os::unix::fs::lchown(path, Some(uid), Some(gid))
                .map_err(|e| io_err(format!("chown {} to {uid}:{gid}", path.display()), e)),
            None => Ok(()),
        }
    }
}

/// Removes the tree at `dir`, making its directories writable first: a clone of a read-only
/// directory is read-only too, which would stop a non-root caller from emptying it.
fn remove_tree(dir: &Path) -> std::io::Result<()> {
    fn writable(dir: &Path) -> std::io::Result<()> {
        fs::set_permissions(dir, fs::Permissions::from_mode(0o700))?;
        for entry in fs::read_dir(dir)? {
            let entry = entry?;
            if entry.file_type()?.is_dir() {
                writable(&entry.path())?;
            }
        }
        Ok(())
    }
    let _ = writable(dir);
    fs::remove_dir_all(dir)
}

fn set_mode(path: &Path, mode: u32) -> Result<()> {
    fs::set_permissions(path, fs::Permissions::from_mode(mode))
        .map_err(|e| io_err(format!("chmod {mode:o} {}", path.display()), e))
}

fn refuse(path: &Path, why: &str) -> Error {
    let fs = filesystem_of(path.parent().unwrap_or(path)).map_or_else(|_| "?".into(), |f| f.name);
    let message = format!("cannot clone {} (on {fs}): it {why}", path.display());
    Error::backend_class(ErrorClass::Unsupported, BACKEND, message, None)
}

fn unsupported(message: String, e: std::io::Error) -> Error {
    Error::backend_class(ErrorClass::Unsupported, BACKEND, message, Some(e.into()))
}

fn io_err(what: String, e: std::io::Error) -> Error {
    Error::backend(BACKEND, format!("{what} failed; check the path and its permissions"), e)
}
