//! The backup and restore Jobs as their containers' real processes.

use super::{job_env, succeeded, toolbox_path, vars, JobKey, Postgres, Side, PASSWORD};
use std::path::{Path, PathBuf};
use std::process::Output;
use toygres_core::{CommandTransfer, ImageFormat, ImageId};
use toygres_k8s::render;

/// Where a job pod's containers meet: a fresh exchange directory (the pod's emptyDir).
pub fn exchange(pg: &Postgres, dir: &Path, name: &str) -> PathBuf {
    let path = dir.join(format!("exchange-{name}"));
    let _ = std::fs::remove_dir_all(&path);
    pg.dir(&path)
}

fn pod_env(exchange: &Path, side: &str, peer: &str) -> Vec<(String, String)> {
    vars(&[
        ("TOYGRES_EXCHANGE", exchange.display().to_string()),
        ("TOYGRES_SIDE", side.into()),
        ("TOYGRES_PEER", peer.into()),
    ])
}

/// The backup job's two containers of a plaintext logical image: `dump` with `bins.0` (the
/// source's image), `upload` with `bins.1` on PATH (the toolbox); [`BackupPod`] for the others.
pub fn backup(
    pg: &Postgres,
    transfer: &CommandTransfer,
    image: ImageId,
    source_port: u16,
    bins: (&str, &str),
    exchange: &Path,
) -> (Output, Output) {
    BackupPod::new(ImageFormat::Logical, None).run(pg, transfer, image, source_port, bins, exchange)
}

/// The backup job's pod: its format, the data key of an encrypted image, and variables a test
/// adds to (or changes in) the `upload` container's environment.
pub struct BackupPod<'a> {
    pub format: ImageFormat,
    pub key: Option<&'a JobKey>,
    pub upload_env: Vec<(String, String)>,
}

impl<'a> BackupPod<'a> {
    pub fn new(format: ImageFormat, key: Option<&'a JobKey>) -> Self {
        Self { format, key, upload_env: vec![] }
    }

    /// Runs the two containers: `dump` with `bins.0` (the source's image), `upload` with `bins.1`
    /// (the toolbox, with toygres-seal) on PATH.
    pub fn run(
        &self,
        pg: &Postgres,
        transfer: &CommandTransfer,
        image: ImageId,
        source_port: u16,
        bins: (&str, &str),
        exchange: &Path,
    ) -> (Output, Output) {
        let dump_script = match self.format {
            ImageFormat::Logical => render::backup_dump_script(),
            ImageFormat::Physical => render::backup_basebackup_script(),
            ImageFormat::Clone => panic!("clone images have no backup scripts"),
        };
        let mut dump = pod_env(exchange, "dump", "upload");
        dump.extend(vars(&[
            ("PGHOST", "127.0.0.1".into()),
            ("PGPORT", source_port.to_string()),
            ("PGUSER", "postgres".into()),
            ("PGPASSWORD", PASSWORD.into()),
        ]));
        let mut upload = job_env(transfer.clone());
        upload.extend(pod_env(exchange, "upload", "dump"));
        upload.extend(vars(&[
            ("TOYGRES_IMAGE_ID", image.to_string()),
            ("TOYGRES_IMAGE_TYPE", "pg_durable".into()),
            // As the executor sets it from the container's CPU (resources.rs).
            ("TOYGRES_THREADS", "2".into()),
        ]));
        upload.push(toolbox_path(bins.1));
        upload.extend(self.key.iter().flat_map(|k| k.env()));
        upload.extend(self.upload_env.iter().cloned());
        pg.pod(
            &Side { script: dump_script, env: dump, bin: bins.0 },
            &Side { script: render::backup_upload_script(), env: upload, bin: bins.1 },
        )
    }
}

/// A restore target: its volume (PGDATA under it), marker and config directory.
pub struct Volume {
    pub root: PathBuf,
    pub config: PathBuf,
    /// `TOYGRES_DATABASES` of the restore job (a JSON list), if any.
    pub databases: Option<String>,
    /// The data key the restore job gets (an encrypted image), if any.
    pub key: Option<JobKey>,
}

impl Volume {
    pub fn new(pg: &Postgres, dir: &Path, name: &str) -> Self {
        let root = pg.dir(&dir.join(format!("volume-{name}")));
        let config = pg.dir(&dir.join(format!("config-{name}")));
        std::fs::write(config.join("postgresql.conf"), "# test config\n").unwrap();
        Self { root, config, databases: None, key: None }
    }

    pub fn pgdata(&self) -> PathBuf {
        self.root.join("pgdata")
    }

    pub fn marker(&self) -> PathBuf {
        self.root.join("toygres-restored")
    }
}

/// The restore job's two containers: `fetch` (toolbox) and `load` with `load_bin` (the instance's image).
pub fn restore(
    pg: &Postgres,
    transfer: &CommandTransfer,
    image: ImageId,
    checksum: &str,
    volume: &Volume,
    load_bin: &str,
    exchange: &Path,
) -> (Output, Output) {
    let common =
        vars(&[("TOYGRES_IMAGE_ID", image.to_string()), ("TOYGRES_MARKER", volume.marker().display().to_string())]);
    let mut fetch = job_env(transfer.clone());
    fetch.extend(pod_env(exchange, "fetch", "load"));
    fetch.extend(common.clone());
    fetch.extend(vars(&[("TOYGRES_IMAGE_CHECKSUM", checksum.to_string())]));
    fetch.extend(volume.databases.iter().map(|d| ("TOYGRES_DATABASES".to_string(), d.clone())));
    fetch.push(toolbox_path("/nonexistent"));
    fetch.extend(volume.key.iter().flat_map(|k| k.env()));
    let mut load = pod_env(exchange, "load", "fetch");
    load.extend(common);
    load.extend(vars(&[
        ("PGDATA", volume.pgdata().display().to_string()),
        ("TOYGRES_PASSWORD", PASSWORD.to_string()),
        ("TOYGRES_CONFIG_DIR", volume.config.display().to_string()),
        // As the executor sets it from the container's memory limit (resources.rs).
        ("TOYGRES_MAINTENANCE_WORK_MEM", "96MB".into()),
    ]));
    pg.pod(
        &Side { script: render::restore_fetch_script(), env: fetch, bin: "/nonexistent" },
        &Side { script: render::restore_load_script(), env: load, bin: load_bin },
    )
}

/// [`restore`], asserting both containers succeed; returns their logs.
pub fn restore_ok(
    pg: &Postgres,
    transfer: &CommandTransfer,
    image: ImageId,
    checksum: &str,
    volume: &Volume,
    load_bin: &str,
    exchange: &Path,
) -> (String, String) {
    succeeded(restore(pg, transfer, image, checksum, volume, load_bin, exchange))
}
