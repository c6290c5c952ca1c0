//! A restore's objects, copied into private storage while they are verified, so that it loads
//! exactly the bytes it authenticated: the only read of the blob store is the checked one. A
//! blob writer who changes an object after that check (between the control plane's verification
//! and the load, or during the load) changes nothing the restore uses.
//!
//! The copy lives in `<instance dir>/staged/` (0700, this process's; the instance's server and
//! so its tenant cannot reach it) and is removed when the job ends, whatever the outcome. It costs
//! a write of the compressed objects, which the load then reads back from the page cache.

use super::codec::Checked;
use super::jobs::JobCtx;
use super::transfer::Source;
use object_store::local::LocalFileSystem;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use tokio::io::AsyncWriteExt;
use toygres_core::{Error, Manifest, Result, Transfer};

const BACKEND: &str = "local executor";
/// Where the objects go inside the staging directory (object_store wants a prefix).
const PREFIX: &str = "objects";

/// The verified copies of an image's objects; removed on drop.
pub(crate) struct Staged {
    dir: PathBuf,
    /// Reads the copies (every object of the manifest, by its name).
    pub(crate) transfer: Transfer,
}

impl Staged {
    /// Copies every object of `manifest` from `transfer` into `dir` (emptied first), checking
    /// each one's size and sha256 on the bytes written; a mismatch is
    /// [`Error::ChecksumMismatch`] and nothing of the image is kept.
    pub(crate) async fn copy(transfer: &Transfer, manifest: &Manifest, dir: &Path, ctx: &JobCtx) -> Result<Self> {
        let io = |what: &str, path: &Path, e| crate::cluster::io_err(format!("{what} {}", path.display()), e);
        let _ = std::fs::remove_dir_all(dir);
        std::fs::create_dir(dir).map_err(|e| io("creating", dir, e))?;
        let staged = Self { dir: dir.to_path_buf(), transfer: reader(dir)? };
        crate::cluster::set_mode(dir, 0o700)?;
        std::fs::create_dir(dir.join(PREFIX)).map_err(|e| io("creating", dir, e))?;
        for object in manifest.objects() {
            let path = dir.join(PREFIX).join(&object.name);
            let file = private_file(&path).map_err(|e| io("creating", &path, e))?;
            let mut file = tokio::fs::File::from_std(file);
            let source = Source::open(transfer, manifest.image_id, &object.name, &ctx.log).await?;
            let mut checked = Checked::new(source, manifest.image_id, object, None);
            while let Some(chunk) = checked.next().await? {
                file.write_all(&chunk).await.map_err(|e| io("writing", &path, e))?;
            }
            checked.finish().await?;
            file.flush().await.map_err(|e| io("writing", &path, e))?;
            ctx.progress.add(object.size);
        }
        Ok(staged)
    }
}

impl Drop for Staged {
    fn drop(&mut self) {
        if let Err(e) = std::fs::remove_dir_all(&self.dir) {
            tracing::warn!(dir = %self.dir.display(), error = %e, "leaving a restore's staged objects behind");
        }
    }
}

/// A transfer reading the staged copies.
fn reader(dir: &Path) -> Result<Transfer> {
    let store = LocalFileSystem::new_with_prefix(dir)
        .map_err(|e| Error::backend(BACKEND, format!("opening {}", dir.display()), e))?;
    Ok(Transfer::ObjectStore { store: Arc::new(store), prefix: PREFIX.into() })
}

/// A new file only this process's user can read (0600), never through a link.
fn private_file(path: &Path) -> std::io::Result<std::fs::File> {
    use std::os::unix::fs::OpenOptionsExt;
    std::fs::OpenOptions::new().write(true).create_new(true).mode(0o600).custom_flags(libc::O_NOFOLLOW).open(path)
}
