//! The OS user the server binaries run as, and file ownership for it.

use nix::unistd::{Gid, Uid, User};
use std::os::unix::fs::PermissionsExt;
use std::path::Path;
use toygres_core::{Error, Result};

/// The OS user that runs `initdb`, `pg_ctl` and `postgres`.
///
/// PostgreSQL's server binaries refuse to run as root. When this process is root, they run as the
/// named user (default `postgres`) through `Command::uid/gid`; otherwise as the current user.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct ServerUser {
    /// User name.
    pub name: String,
    /// Its uid.
    pub uid: u32,
    /// Its primary gid.
    pub gid: u32,
    switch: bool,
}

impl ServerUser {
    /// The user to run server binaries as: `name` when we are root, the current user otherwise.
    pub fn resolve(name: &str) -> Result<Self> {
        if !Uid::effective().is_root() {
            let (uid, gid) = (Uid::effective().as_raw(), Gid::effective().as_raw());
            let current = User::from_uid(Uid::effective()).ok().flatten().map(|u| u.name).unwrap_or_default();
            return Ok(Self { name: current, uid, gid, switch: false });
        }
        let user = User::from_name(name)
            .map_err(|e| Error::backend("local cluster", format!("looking up OS user {name:?}"), e))?
            .ok_or_else(|| {
                Error::backend_msg(
                    "local cluster",
                    format!(
                        "OS user {name:?} does not exist; PostgreSQL refuses to run as root, so create it \
                         (`useradd --system {name}`, installed with the postgresql package) or configure another"
                    ),
                )
            })?;
        Ok(Self { name: name.to_string(), uid: user.uid.as_raw(), gid: user.gid.as_raw(), switch: true })
    }

    /// Whether commands switch to this user (this process is root).
    pub fn switches(&self) -> bool {
        self.switch
    }

    /// Makes `cmd` run as this user (a no-op unless we are root).
    pub fn apply(&self, cmd: &mut tokio::process::Command) {
        if self.switch {
            cmd.uid(self.uid).gid(self.gid);
        }
    }

    /// Same as [`ServerUser::apply`] for a blocking command.
    pub fn apply_std(&self, cmd: &mut std::process::Command) {
        use std::os::unix::process::CommandExt;
        if self.switch {
            cmd.uid(self.uid).gid(self.gid);
        }
    }

    /// Creates `dir` (and parents) owned by this user with `mode`.
    pub fn create_owned_dir(&self, dir: &Path, mode: u32) -> Result<()> {
        std::fs::create_dir_all(dir).map_err(|e| io_err(format!("creating {}", dir.display()), e))?;
        self.chown(dir)?;
        set_mode(dir, mode)
    }

    /// Writes `content` to `file`, owned by this user with mode 0600.
    pub fn write_private_file(&self, file: &Path, content: &[u8]) -> Result<()> {
        use std::io::Write;
        use std::os::unix::fs::OpenOptionsExt;
        let _ = std::fs::remove_file(file);
        let mut f = std::fs::OpenOptions::new()
            .write(true)
            .create_new(true)
            .mode(0o600)
            .open(file)
            .map_err(|e| io_err(format!("creating {}", file.display()), e))?;
        f.write_all(content).map_err(|e| io_err(format!("writing {}", file.display()), e))?;
        self.chown(file)
    }

    /// Gives `path` to this user (a no-op unless we are root).
    pub fn chown(&self, path: &Path) -> Result<()> {
        if self.switch {
            nix::unistd::chown(path, Some(Uid::from_raw(self.uid)), Some(Gid::from_raw(self.gid))).map_err(|e| {
                Error::backend("local cluster", format!("chown {} to {}", path.display(), self.name), e)
            })?;
        }
        Ok(())
    }
}

impl ServerUser {
    /// Gives the tree at `root`, built by this (root) process while only root could write in it,
    /// to this user: children before their directory, and never through a link (`lchown`), so
    /// that what the user may change once it owns a directory is never acted on again.
    pub fn take_tree(&self, root: &Path) -> Result<()> {
        if !self.switch {
            return Ok(());
        }
        for entry in std::fs::read_dir(root).map_err(|e| io_err(format!("listing {}", root.display()), e))? {
            let entry = entry.map_err(|e| io_err(format!("listing {}", root.display()), e))?;
            let kind = entry.file_type().map_err(|e| io_err(format!("reading {}", entry.path().display()), e))?;
            if kind.is_dir() {
                self.take_tree(&entry.path())?;
            } else {
                self.lchown(&entry.path())?;
            }
        }
        self.lchown(root)
    }

    fn lchown(&self, path: &Path) -> Result<()> {
        std::os::unix::fs::lchown(path, Some(self.uid), Some(self.gid))
            .map_err(|e| io_err(format!("chown {} to {}", path.display(), self.name), e))
    }
}

/// Creates `dir` (and parents) that other users may traverse but not list (mode 0711), so a
/// server running as another user reaches the directories below it. Parents it creates get the
/// same mode whatever the umask; existing ones are left as they are.
pub fn create_traversable_dir(dir: &Path) -> Result<()> {
    if let Some(parent) = dir.parent().filter(|p| !p.as_os_str().is_empty() && !p.exists()) {
        create_traversable_dir(parent)?;
    }
    std::fs::create_dir_all(dir).map_err(|e| io_err(format!("creating {}", dir.display()), e))?;
    let mode =
        std::fs::metadata(dir).map_err(|e| io_err(format!("reading {}", dir.display()), e))?.permissions().mode();
    if mode & 0o111 != 0o111 {
        set_mode(dir, (mode | 0o711) & 0o7777)?;
    }
    Ok(())
}

/// Sets `path`'s permission bits.
pub fn set_mode(path: &Path, mode: u32) -> Result<()> {
    std::fs::set_permissions(path, std::fs::Permissions::from_mode(mode))
        .map_err(|e| io_err(format!("chmod {:o} {}", mode, path.display()), e))
}

/// A filesystem error of the local backends.
pub(crate) fn io_err(what: String, e: std::io::Error) -> Error {
    Error::backend("local cluster", format!("{what} failed; check the path and its permissions"), e)
}
