//! A PostgreSQL 15 source configured as an instance of the Kubernetes executor, and what the
//! physical-image script tests (`physical_scripts.rs`, `physical_wal.rs`) share: its backup and
//! restore Jobs run as real processes, snapshots, log-ins, modes.

use super::jobs::{self, BackupPod, Volume};
use super::{psql, JobKey, Postgres, Server15, PASSWORD, PG15};
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::process::Output;
use toygres_core::{ConnectionInfo, ImageFormat, ImageId, ImageType, InstanceId, InstanceSpec, Password};
use toygres_local::fidelity::InstanceSnapshot;
use toygres_local::{ConnParams, PgBinaries};

/// Every role's password hash, to compare source and restored server.
pub const ROLE_HASHES: &str = "SELECT rolname, rolpassword FROM pg_authid ORDER BY 1";
pub const ITEMS: &str = "SELECT count(*), sum(hashtext(v)) FROM items";
/// A row of the source no stored byte of an encrypted image may show.
pub const CANARY: &str = "toygres-canary-physical-3b8e02d4-row";

/// A running PostgreSQL 15 source configured as an instance of the Kubernetes executor; `extra`
/// is the instance's ConfigMap (`/etc/toygres` in a pod).
pub type Source = Server15<PathBuf>;

impl Source {
    /// A source created empty (`provision_empty`) with roles (a SCRAM and an MD5 password), a database with an index and a sequence,
    /// template1 and a database that refuses connections; `None` without the tools.
    pub fn start() -> Option<Self> {
        let server = Server15::create(|pg, dir, data| {
            let config = instance_config(pg, dir);
            // As the image's entrypoint does for an empty instance: initdb, then the ConfigMap's
            // initdb.sh, so the server uses the ConfigMap's settings (its pg_hba.conf).
            let init = format!("export PGDATA='{}'; source '{}/initdb.sh'", data.display(), config.display());
            pg.bash(&init, PG15);
            config
        })?;
        let port = server.port;
        for sql in [
            "CREATE ROLE app LOGIN PASSWORD 'app-pass'",
            "SET password_encryption = 'md5'; CREATE ROLE old_app LOGIN PASSWORD 'md5-pass'",
            "CREATE DATABASE app OWNER app",
            "CREATE TABLE notes AS SELECT 'hello' AS t",
            "CREATE DATABASE closed",
        ] {
            psql(port, "postgres", sql);
        }
        psql(
            port,
            "app",
            "SET ROLE app; CREATE TABLE items AS SELECT g AS id, md5(g::text) AS v FROM generate_series(1, 5000) g",
        );
        psql(
            port,
            "app",
            "SET ROLE app; CREATE INDEX ON items (v); CREATE SEQUENCE s; SELECT nextval('s'), nextval('s')",
        );
        psql(port, "template1", "CREATE TABLE t1_marker AS SELECT 42 AS answer");
        psql(port, "app", &format!("SET ROLE app; CREATE TABLE canary AS SELECT '{CANARY}'::text AS t"));
        psql(port, "closed", "CREATE TABLE kept AS SELECT 'closed rows' AS t");
        psql(port, "postgres", "ALTER DATABASE closed ALLOW_CONNECTIONS false");
        Some(server)
    }

    /// The instance's ConfigMap.
    pub fn config(&self) -> &Path {
        &self.extra
    }

    /// Runs the physical backup Job's two containers for a plaintext `image`.
    pub fn backup(&self, image: ImageId, name: &str) -> (Output, Output) {
        self.backup_with(image, name, None)
    }

    /// Runs the physical backup Job's two containers for `image`, encrypted under `key` if any.
    pub fn backup_with(&self, image: ImageId, name: &str, key: Option<&JobKey>) -> (Output, Output) {
        let t = super::fake_transfer(self.dir(), image);
        let exchange = jobs::exchange(&self.pg, self.dir(), name);
        // The toolbox carries no PostgreSQL: pg_basebackup runs in the source's image.
        let pod = BackupPod::new(ImageFormat::Physical, key);
        pod.run(&self.pg, &t, image, self.port, (PG15, "/nonexistent"), &exchange)
    }

    /// A new, empty restore target whose configuration is the instance's ConfigMap.
    pub fn volume(&self, name: &str) -> Volume {
        Volume { config: self.config().to_path_buf(), ..Volume::new(&self.pg, self.dir(), name) }
    }

    /// Runs the restore Job's two containers of `image` (manifest checksum `checksum`) into `volume`
    /// with the server binaries `bin`.
    pub fn restore(&self, image: ImageId, checksum: &str, volume: &Volume, bin: &str, name: &str) -> (Output, Output) {
        let t = super::fake_transfer(self.dir(), image);
        jobs::restore(&self.pg, &t, image, checksum, volume, bin, &jobs::exchange(&self.pg, self.dir(), name))
    }
}

pub fn append(path: &Path, text: &str) {
    use std::io::Write;
    std::fs::OpenOptions::new().append(true).open(path).unwrap().write_all(text.as_bytes()).unwrap();
}

/// The ConfigMap of a stock instance, written to `dir/config` with its own path for `/etc/toygres`,
/// and a server certificate in `dir/config-tls` for `/etc/toygres-tls` (the secret volume).
pub fn instance_config(pg: &Postgres, dir: &Path) -> PathBuf {
    let config = pg.dir(&dir.join("config"));
    let k8s = toygres_k8s::K8sConfig::default();
    let instance = InstanceSpec {
        id: InstanceId::new(),
        name: "source".into(),
        image_type: ImageType::Stock,
        pg_version: Some("15".into()),
        dns_label: None,
    };
    let data = toygres_k8s::Manifests::new(&k8s).config_map(&instance).unwrap().data.unwrap();
    let tls = dir.join("config-tls");
    super::tls::install_cert(pg, &tls);
    for (name, text) in data {
        let text = text.replace(toygres_k8s::tls::MOUNT_PATH, &tls.display().to_string());
        std::fs::write(config.join(name), text.replace("/etc/toygres", &config.display().to_string())).unwrap();
    }
    config
}

/// The snapshot of the server at `port`, read over its Unix socket in /tmp: the instances accept
/// TCP connections over TLS only, which the snapshot's client does not speak (`local` is trusted).
pub async fn snapshot(port: u16) -> InstanceSnapshot {
    let bin = PgBinaries::at(PG15).unwrap();
    let params = ConnParams { host: "/tmp".into(), port, user: "postgres".into() };
    InstanceSnapshot::take(&bin, &params, &Password::new(PASSWORD)).await.unwrap()
}

pub fn stderr(out: &Output) -> String {
    String::from_utf8_lossy(&out.stderr).into_owned()
}

/// `user` logs in to the server at `port` with `password` over TLS (`sslmode=require`), through
/// the instances' pg_hba.conf.
pub async fn logs_in(port: u16, user: &str, password: &str) {
    login(port, user, password).await.unwrap();
}

/// Why `user` cannot log in to the server at `port` with `password` over TLS.
pub async fn login_error(port: u16, user: &str, password: &str) -> String {
    login(port, user, password).await.unwrap_err().to_string()
}

async fn login(port: u16, user: &str, password: &str) -> toygres_core::Result<()> {
    let connection = ConnectionInfo {
        host: "127.0.0.1".into(),
        port,
        user: user.into(),
        database: "app".into(),
        dns_name: None,
        ssl_mode: Some("require".into()),
    };
    let timeout = std::time::Duration::from_secs(5);
    toygres_k8s::connect::test_connection(&connection, &Password::new(password), timeout).await
}

/// Every file and directory under `dir` is its owner's only (0700 and 0600: what the server wants).
pub fn owner_only(dir: &Path) {
    for entry in std::fs::read_dir(dir).unwrap() {
        let entry = entry.unwrap();
        let mode = entry.metadata().unwrap().permissions().mode();
        assert_eq!(mode & 0o077, 0, "{} has mode {mode:o}", entry.path().display());
        if entry.file_type().unwrap().is_dir() {
            owner_only(&entry.path());
        }
    }
}

/// Runs a restore that must be refused: both containers end, `message` is in their logs, and the
/// volume is untouched (no data directory, no marker).
pub fn refused(s: &Source, image: ImageId, checksum: &str, volume: &Volume, bin: &str, message: &str) {
    let (fetch, load) = s.restore(image, checksum, volume, bin, "refused");
    assert!(!fetch.status.success() && !load.status.success(), "both containers end");
    let logs = format!("{}{}", stderr(&fetch), stderr(&load));
    assert!(logs.contains(message), "expected {message:?} in:\n{logs}");
    assert_eq!(std::fs::read_dir(&volume.root).unwrap().count(), 0, "nothing was unpacked");
}
