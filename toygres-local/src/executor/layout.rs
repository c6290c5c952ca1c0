//! Where an instance lives on disk: `<base>/instances/pg-<id>/` with `config.json` (port, image
//! type), `secret` (the superuser password, 0600), `restored` (marker with the image checksum),
//! and the cluster itself (`data/`, `socket/`, `log/`).

use crate::cluster::{io_err, LocalCluster, PgBinaries, ServerUser};
use serde::{Deserialize, Serialize};
use std::path::{Path, PathBuf};
use toygres_core::{Error, ImageType, InstanceSpec, Password, Result};

/// An instance's recorded configuration.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct InstanceConfig {
    /// Its port on 127.0.0.1.
    pub port: u16,
    /// Its image type.
    pub image_type: ImageType,
    /// Its name, for humans.
    pub name: String,
    /// The OS user its server runs as, when it has one of its own
    /// ([`crate::cluster::identity`]); otherwise the executor's.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub os_user: Option<ServerUser>,
}

/// The directory of one instance.
#[derive(Debug, Clone)]
pub(crate) struct InstanceDir {
    pub(crate) path: PathBuf,
}

impl InstanceDir {
    pub(crate) fn new(base: &Path, spec: &InstanceSpec) -> Self {
        Self { path: base.join("instances").join(spec.resource_name()) }
    }

    fn config_path(&self) -> PathBuf {
        self.path.join("config.json")
    }

    fn secret_path(&self) -> PathBuf {
        self.path.join("secret")
    }

    /// Where a restore keeps the verified copies of its image's objects while it loads them.
    pub(crate) fn staging_dir(&self) -> PathBuf {
        self.path.join("staged")
    }

    fn marker_path(&self) -> PathBuf {
        self.path.join("restored")
    }

    /// The config, if the volume exists.
    pub(crate) fn config(&self) -> Result<Option<InstanceConfig>> {
        match std::fs::read(self.config_path()) {
            Ok(bytes) => serde_json::from_slice(&bytes).map(Some).map_err(|e| {
                Error::Corrupt(format!("{} is not valid ({e}); delete the instance", self.config_path().display()))
            }),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(None),
            Err(e) => Err(io_err(format!("reading {}", self.config_path().display()), e)),
        }
    }

    /// The config, or an error saying the volume does not exist.
    pub(crate) fn require_config(&self) -> Result<InstanceConfig> {
        self.config()?.ok_or_else(|| {
            Error::backend_msg(
                "local executor",
                format!("no instance volume at {}; create its volume first (or provision it)", self.path.display()),
            )
        })
    }

    /// Writes the config and the secret (0600, readable by this process only).
    pub(crate) fn write(&self, config: &InstanceConfig, password: &Password) -> Result<()> {
        crate::cluster::create_traversable_dir(&self.path)?;
        write_private(&self.secret_path(), password.expose().as_bytes())?;
        self.write_config(config)
    }

    /// Replaces the config.
    pub(crate) fn write_config(&self, config: &InstanceConfig) -> Result<()> {
        let json = serde_json::to_vec_pretty(config).expect("config serializes");
        let tmp = self.path.join("config.json.tmp");
        std::fs::write(&tmp, json).map_err(|e| io_err(format!("writing {}", tmp.display()), e))?;
        std::fs::rename(&tmp, self.config_path()).map_err(|e| io_err(format!("writing {}", tmp.display()), e))
    }

    /// The password stored by [`InstanceDir::write`].
    pub(crate) fn password(&self) -> Result<Password> {
        std::fs::read_to_string(self.secret_path())
            .map(Password::new)
            .map_err(|e| io_err(format!("reading the instance secret {}", self.secret_path().display()), e))
    }

    /// The cluster on this volume, run by the instance's own OS user if it has one, else `user`.
    pub(crate) fn cluster(&self, bin: &PgBinaries, user: &ServerUser, config: &InstanceConfig) -> LocalCluster {
        let user = config.os_user.as_ref().unwrap_or(user);
        LocalCluster::new(bin.clone(), user.clone(), self.path.join("pg"), config.port)
    }

    /// The checksum of the image restored here, if a restore completed.
    pub(crate) fn restored(&self) -> Option<String> {
        std::fs::read_to_string(self.marker_path()).ok().map(|s| s.trim().to_string())
    }

    /// Records that the image with `checksum` was restored here.
    pub(crate) fn mark_restored(&self, checksum: &str) -> Result<()> {
        std::fs::write(self.marker_path(), checksum)
            .map_err(|e| io_err(format!("writing {}", self.marker_path().display()), e))
    }

    /// Forgets a restore (before starting one over).
    pub(crate) fn clear_restored(&self) -> Result<()> {
        match std::fs::remove_file(self.marker_path()) {
            Err(e) if e.kind() != std::io::ErrorKind::NotFound => {
                Err(io_err(format!("removing {}", self.marker_path().display()), e))
            }
            _ => Ok(()),
        }
    }
}

fn write_private(path: &Path, content: &[u8]) -> Result<()> {
    use std::io::Write;
    use std::os::unix::fs::OpenOptionsExt;
    let _ = std::fs::remove_file(path);
    let mut f = std::fs::OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode(0o600)
        .open(path)
        .map_err(|e| io_err(format!("creating {}", path.display()), e))?;
    f.write_all(content).map_err(|e| io_err(format!("writing {}", path.display()), e))
}
