//! A throw-away cluster for tests: started in a temporary directory, stopped and removed on drop.

use super::{ports::free_port, LocalCluster, PgBinaries, ServerUser};
use super::{set_mode, ConnParams};
use toygres_core::{Error, Password, Result};

/// A running cluster in a temporary directory. Dropping it stops the server and removes the
/// directory. Get one with [`LocalCluster::start_temporary`].
#[derive(Debug)]
pub struct TempCluster {
    cluster: LocalCluster,
    _dir: tempfile::TempDir,
}

impl TempCluster {
    /// The cluster.
    pub fn cluster(&self) -> &LocalCluster {
        &self.cluster
    }

    /// Where clients reach it (127.0.0.1, its port, user `postgres`).
    pub fn params(&self) -> ConnParams {
        self.cluster.params()
    }
}

impl Drop for TempCluster {
    fn drop(&mut self) {
        self.cluster.stop_blocking();
    }
}

impl LocalCluster {
    /// Starts a fresh cluster in a temporary directory whose superuser `postgres` has `password`,
    /// on a free port of 127.0.0.1, with binaries found by [`PgBinaries::discover`] and run as OS
    /// user `postgres` when we are root.
    pub async fn start_temporary(password: &Password) -> Result<TempCluster> {
        let bin = PgBinaries::discover(None)?;
        let user = ServerUser::resolve("postgres")?;
        let dir = tempfile::Builder::new()
            .prefix("toygres-pg-")
            .tempdir()
            .map_err(|e| super::io_err("creating a temporary directory".into(), e))?;
        set_mode(dir.path(), 0o711)?;
        let port = free_port()
            .map_err(|e| Error::backend("local cluster", "finding a free port on 127.0.0.1".to_string(), e))?;
        let cluster = LocalCluster::new(bin, user, dir.path().join("pg"), port);
        let temp = TempCluster { cluster, _dir: dir };
        temp.cluster.init(password).await?;
        temp.cluster.start(&[]).await?;
        Ok(temp)
    }
}
