//! A clone image's data directory as its manifest lists it: every directory, and every regular
//! file with its size, mode and sha256 ([`inventory`]); and the check a restore makes before it
//! clones the directory ([`verify`]), which reads no file and so does not grow with the data.

use std::fs;
use std::io::Read;
use std::os::unix::fs::{MetadataExt, OpenOptionsExt};
use std::path::Path;
use std::sync::atomic::{AtomicUsize, Ordering};
use toygres_core::manifest::{format_sha256, ClonedFile, ManifestClone};
use toygres_core::{Error, ImageId, Result};

const BACKEND: &str = "local executor";
/// Threads hashing files while an image is taken.
const HASHERS: usize = 2;

/// What a data directory holds: its directories and files, sorted by path.
#[derive(Debug, Default, PartialEq, Eq)]
pub(crate) struct Tree {
    /// Relative, `/`-separated paths (`""` is the root).
    pub(crate) dirs: Vec<String>,
    /// Regular files (their `sha256` empty when not hashed).
    pub(crate) files: Vec<ClonedFile>,
}

impl Tree {
    /// Bytes the files hold.
    pub(crate) fn size(&self) -> u64 {
        self.files.iter().map(|f| f.size).sum()
    }
}

/// Lists `root` and hashes every file ([`HASHERS`] at a time). Refuses a symbolic link, FIFO,
/// socket or device anywhere in it: a clone image holds only directories and regular files, so
/// nothing in it can point outside it.
pub(crate) fn inventory(root: &Path) -> Result<Tree> {
    let mut tree = list(root)?;
    let next = AtomicUsize::new(0);
    let hashes: Vec<Result<Vec<(usize, String)>>> = std::thread::scope(|scope| {
        let workers: Vec<_> = (0..HASHERS)
            .map(|_| {
                scope.spawn(|| {
                    let mut done = Vec::new();
                    loop {
                        let i = next.fetch_add(1, Ordering::Relaxed);
                        let Some(file) = tree.files.get(i) else { return Ok(done) };
                        done.push((i, hash(&root.join(&file.path))?));
                    }
                })
            })
            .collect();
        workers.into_iter().map(|w| w.join().expect("hashing thread")).collect()
    });
    for result in hashes {
        for (i, sha) in result? {
            tree.files[i].sha256 = sha;
        }
    }
    Ok(tree)
}

/// Checks that `root` holds exactly the directories and files `clone` lists, with their sizes and
/// modes; reads no file. Any difference is [`Error::ImageIncomplete`] naming the first one.
pub(crate) fn verify(image: ImageId, root: &Path, clone: &ManifestClone) -> Result<()> {
    let found = list(root).map_err(|e| Error::ImageIncomplete { image, detail: format!("its clone data: {e}") })?;
    let differ = |detail: String| Error::ImageIncomplete {
        image,
        detail: format!("its clone data at {} differs from its manifest: {detail}", root.display()),
    };
    if found.dirs != clone.dirs {
        let odd =
            found.dirs.iter().find(|d| !clone.dirs.contains(d)).or(clone.dirs.iter().find(|d| !found.dirs.contains(d)));
        return Err(differ(format!("directory {:?} is not as listed", odd.map_or("?", |d| d.as_str()))));
    }
    let listed: std::collections::HashSet<&str> = clone.files.iter().map(|f| f.path.as_str()).collect();
    let present: std::collections::HashSet<&str> = found.files.iter().map(|f| f.path.as_str()).collect();
    if let Some(extra) = found.files.iter().find(|f| !listed.contains(f.path.as_str())) {
        return Err(differ(format!("it holds {:?}, which the manifest does not list", extra.path)));
    }
    if let Some(missing) = clone.files.iter().find(|f| !present.contains(f.path.as_str())) {
        return Err(differ(format!("{:?} is missing", missing.path)));
    }
    for (have, want) in found.files.iter().zip(&clone.files) {
        if (&have.path, have.size, have.mode) != (&want.path, want.size, want.mode) {
            return Err(differ(format!(
                "{:?} ({} bytes, mode {:o}) where the manifest lists {:?} ({} bytes, mode {:o})",
                have.path, have.size, have.mode, want.path, want.size, want.mode
            )));
        }
    }
    Ok(())
}

/// Bytes the regular files under `root` hold (0 while it does not exist); links are not followed.
pub(crate) fn bytes_under(root: &Path) -> std::io::Result<u64> {
    let mut total = 0;
    let mut dirs = vec![root.to_path_buf()];
    while let Some(dir) = dirs.pop() {
        let Ok(entries) = fs::read_dir(&dir) else { continue };
        for entry in entries.flatten() {
            let Ok(meta) = entry.metadata() else { continue };
            if meta.is_dir() {
                dirs.push(entry.path());
            } else if meta.is_file() {
                total += meta.len();
            }
        }
    }
    Ok(total)
}

/// Every directory and regular file under `root`, sorted, unhashed.
fn list(root: &Path) -> Result<Tree> {
    let mut tree = Tree::default();
    walk(root, "", &mut tree)?;
    tree.dirs.sort();
    tree.files.sort_by(|a, b| a.path.cmp(&b.path));
    Ok(tree)
}

fn walk(dir: &Path, rel: &str, tree: &mut Tree) -> Result<()> {
    tree.dirs.push(rel.to_string());
    let entries = fs::read_dir(dir).map_err(|e| io_err(format!("listing {}", dir.display()), e))?;
    for entry in entries {
        let entry = entry.map_err(|e| io_err(format!("listing {}", dir.display()), e))?;
        let path = entry.path();
        let name = entry
            .file_name()
            .into_string()
            .map_err(|n| refuse(&path, &format!("has a name that is not UTF-8 ({n:?})")))?;
        let child = if rel.is_empty() { name } else { format!("{rel}/{name}") };
        let meta = fs::symlink_metadata(&path).map_err(|e| io_err(format!("reading {}", path.display()), e))?;
        if meta.is_dir() {
            walk(&path, &child, tree)?;
        } else if meta.is_file() {
            tree.files.push(ClonedFile {
                path: child,
                size: meta.len(),
                mode: meta.mode() & 0o7777,
                sha256: String::new(),
            });
        } else {
            return Err(refuse(
                &path,
                "is a symbolic link, FIFO, socket or device; a clone image holds only directories and files",
            ));
        }
    }
    Ok(())
}

/// `sha256:<hex>` of the file at `path`, opened without following a link.
pub(crate) fn hash(path: &Path) -> Result<String> {
    use sha2::{Digest, Sha256};
    let mut file = fs::OpenOptions::new()
        .read(true)
        .custom_flags(libc::O_NOFOLLOW | libc::O_CLOEXEC)
        .open(path)
        .map_err(|e| io_err(format!("opening {}", path.display()), e))?;
    let (mut sha, mut buf) = (Sha256::new(), vec![0u8; 1 << 20]);
    loop {
        let n = file.read(&mut buf).map_err(|e| io_err(format!("reading {}", path.display()), e))?;
        if n == 0 {
            return Ok(format_sha256(sha.finalize().into()));
        }
        sha.update(&buf[..n]);
    }
}

fn refuse(path: &Path, why: &str) -> Error {
    Error::backend_msg(BACKEND, format!("cannot keep {} in a clone image: it {why}", path.display()))
}

fn io_err(what: String, e: std::io::Error) -> Error {
    crate::cluster::io_err(what, e)
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::os::unix::fs::PermissionsExt;
    use toygres_core::manifest::CloneKind;

    fn sample() -> tempfile::TempDir {
        let dir = tempfile::tempdir().unwrap();
        fs::create_dir_all(dir.path().join("base/1")).unwrap();
        fs::write(dir.path().join("PG_VERSION"), "18\n").unwrap();
        fs::write(dir.path().join("base/1/1259"), vec![7u8; 3 << 20]).unwrap();
        fs::set_permissions(dir.path().join("PG_VERSION"), fs::Permissions::from_mode(0o600)).unwrap();
        dir
    }

    fn manifest_of(tree: Tree) -> ManifestClone {
        let size = tree.size();
        ManifestClone { kind: CloneKind::Reflink, name: "x".into(), size, files: tree.files, dirs: tree.dirs }
    }

    #[test]
    fn inventory_lists_sorted_and_hashes_every_file() {
        let dir = sample();
        let tree = inventory(dir.path()).unwrap();
        assert_eq!(tree.dirs, vec!["", "base", "base/1"]);
        let paths: Vec<_> = tree.files.iter().map(|f| f.path.as_str()).collect();
        assert_eq!(paths, vec!["PG_VERSION", "base/1/1259"]);
        assert_eq!(tree.files[0].mode, 0o600);
        assert_eq!(tree.files[0].sha256, toygres_core::manifest::sha256_hex(b"18\n"));
        assert_eq!(tree.size(), 3 + (3 << 20));
    }

    #[test]
    fn verify_names_what_changed() {
        let dir = sample();
        let clone = manifest_of(inventory(dir.path()).unwrap());
        let image = ImageId::new();
        verify(image, dir.path(), &clone).unwrap();
        fs::write(dir.path().join("base/1/1259"), b"shorter").unwrap();
        let err = verify(image, dir.path(), &clone).unwrap_err();
        assert!(matches!(&err, Error::ImageIncomplete { .. }) && err.to_string().contains("base/1/1259"), "{err}");
        fs::write(dir.path().join("base/1/1259"), vec![7u8; 3 << 20]).unwrap();
        fs::write(dir.path().join("planted"), b"x").unwrap();
        assert!(matches!(verify(image, dir.path(), &clone), Err(Error::ImageIncomplete { .. })));
        fs::remove_file(dir.path().join("planted")).unwrap();
        fs::create_dir(dir.path().join("extra")).unwrap();
        let err = verify(image, dir.path(), &clone).unwrap_err();
        assert!(err.to_string().contains("extra"), "{err}");
    }

    #[test]
    fn links_and_fifos_are_refused() {
        let dir = sample();
        std::os::unix::fs::symlink("/etc/passwd", dir.path().join("base/link")).unwrap();
        let err = inventory(dir.path()).unwrap_err();
        assert!(err.to_string().contains("symbolic link"), "{err}");
    }
}
