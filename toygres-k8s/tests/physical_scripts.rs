//! Physical images through the job scripts as real processes against a real PostgreSQL 15: the
//! backup Job's `dump` container streams `pg_basebackup` over a replication connection the
//! instances' pg_hba.conf allows, the `upload` container writes an image `Manifest::verified` and
//! `verify_image` accept, the restore Job unpacks it into a new data directory, and a server started
//! on it (end of recovery) holds what the source held, roles and password hashes included; the
//! round trip's image is encrypted, and no stored byte shows a row or a password hash. Every
//! rule: a damaged archive, a restore of some databases and another major are refused before
//! anything is unpacked; a source without a replication entry or with `wal_level=minimal` fails
//! the backup with the reason; a busy source recycling WAL segments mid-backup does not fail it (a
//! temporary replication slot keeps the WAL), and a retried restore counts the space of the partial
//! data it removes as free.

mod pg;

use pg::jobs::{self, BackupPod, Volume};
use pg::{free_port, psql, succeeded, JobKey, Postgres, Server15, PASSWORD, PG15};
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::process::Output;
use toygres_core::manifest::{archive_object_name, sha256_hex, GLOBALS_NAME};
use toygres_core::{verify_image, BlobStore, ConnectionInfo, ImageFormat, ImageId, ImageLocation, ImageType};
use toygres_core::{InstanceId, InstanceSpec, Manifest, ObjectStoreBlobs, Password, VerifyMode};
use toygres_k8s::manifests::PG_HBA_CONF;
use toygres_k8s::progress::last_progress;
use toygres_local::fidelity::InstanceSnapshot;
use toygres_local::{ConnParams, PgBinaries};

/// Every role's password hash, to compare source and restored server.
const ROLE_HASHES: &str = "SELECT rolname, rolpassword FROM pg_authid ORDER BY 1";
const ITEMS: &str = "SELECT count(*), sum(hashtext(v)) FROM items";
/// A row of the source no stored byte of an encrypted image may show.
const CANARY: &str = "toygres-canary-physical-3b8e02d4-row";

/// A running PostgreSQL 15 source configured as an instance of the Kubernetes executor; `extra`
/// is the instance's ConfigMap (`/etc/toygres` in a pod).
type Source = Server15<PathBuf>;

impl Source {
    /// A source created empty (`provision_empty`) with roles (a SCRAM and an MD5 password), a database with an index and a sequence,
    /// template1 and a database that refuses connections; `None` without the tools.
    fn start() -> Option<Self> {
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
    fn config(&self) -> &Path {
        &self.extra
    }

    /// Runs the physical backup Job's two containers for a plaintext `image`.
    fn backup(&self, image: ImageId, name: &str) -> (Output, Output) {
        self.backup_with(image, name, None)
    }

    /// Runs the physical backup Job's two containers for `image`, encrypted under `key` if any.
    fn backup_with(&self, image: ImageId, name: &str, key: Option<&JobKey>) -> (Output, Output) {
        let t = pg::fake_transfer(self.dir(), image);
        let exchange = jobs::exchange(&self.pg, self.dir(), name);
        // The toolbox carries no PostgreSQL: pg_basebackup runs in the source's image.
        let pod = BackupPod::new(ImageFormat::Physical, key);
        pod.run(&self.pg, &t, image, self.port, (PG15, "/nonexistent"), &exchange)
    }

    /// A new, empty restore target whose configuration is the instance's ConfigMap.
    fn volume(&self, name: &str) -> Volume {
        Volume { config: self.config().to_path_buf(), ..Volume::new(&self.pg, self.dir(), name) }
    }

    /// Runs the restore Job's two containers of `image` (manifest checksum `checksum`) into `volume`
    /// with the server binaries `bin`.
    fn restore(&self, image: ImageId, checksum: &str, volume: &Volume, bin: &str, name: &str) -> (Output, Output) {
        let t = pg::fake_transfer(self.dir(), image);
        jobs::restore(&self.pg, &t, image, checksum, volume, bin, &jobs::exchange(&self.pg, self.dir(), name))
    }
}

fn append(path: &Path, text: &str) {
    use std::io::Write;
    std::fs::OpenOptions::new().append(true).open(path).unwrap().write_all(text.as_bytes()).unwrap();
}

/// The ConfigMap of a stock instance, written to `dir/config` with its own path for `/etc/toygres`.
fn instance_config(pg: &Postgres, dir: &Path) -> PathBuf {
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
    for (name, text) in data {
        std::fs::write(config.join(name), text.replace("/etc/toygres", &config.display().to_string())).unwrap();
    }
    config
}

async fn snapshot(port: u16) -> InstanceSnapshot {
    let bin = PgBinaries::at(PG15).unwrap();
    let params = ConnParams { host: "127.0.0.1".into(), port, user: "postgres".into() };
    InstanceSnapshot::take(&bin, &params, &Password::new(PASSWORD)).await.unwrap()
}

fn stderr(out: &Output) -> String {
    String::from_utf8_lossy(&out.stderr).into_owned()
}

/// `user` logs in to the server at `port` with `password` over TCP, through the instances' pg_hba.conf.
async fn logs_in(port: u16, user: &str, password: &str) {
    let connection =
        ConnectionInfo { host: "127.0.0.1".into(), port, user: user.into(), database: "app".into(), dns_name: None };
    let timeout = std::time::Duration::from_secs(5);
    toygres_k8s::connect::test_connection(&connection, &Password::new(password), timeout).await.unwrap();
}

/// Every file and directory under `dir` is its owner's only (0700 and 0600: what the server wants).
fn owner_only(dir: &Path) {
    for entry in std::fs::read_dir(dir).unwrap() {
        let entry = entry.unwrap();
        let mode = entry.metadata().unwrap().permissions().mode();
        assert_eq!(mode & 0o077, 0, "{} has mode {mode:o}", entry.path().display());
        if entry.file_type().unwrap().is_dir() {
            owner_only(&entry.path());
        }
    }
}

#[tokio::test]
async fn a_physical_image_round_trips_through_the_job_scripts() {
    let Some(s) = Source::start() else { return };
    // Settings the source's postgresql.auto.conf holds (read last): the instance keeps its own port.
    psql(s.port, "postgres", "ALTER SYSTEM SET port = 6543");
    psql(s.port, "postgres", "ALTER SYSTEM SET work_mem = '5MB'");
    let before = snapshot(s.port).await;
    let image = ImageId::new();
    let key = JobKey::new(&s.pg, s.dir(), "physical");
    let (dump_log, upload_log) = succeeded(s.backup_with(image, "backup", Some(&key)));
    assert!(dump_log.contains("streaming pg_basebackup"), "{dump_log}");
    assert!(upload_log.contains("(physical, encrypted) complete"), "{upload_log}");
    for log in [&dump_log, &upload_log] {
        assert!(!log.contains(PASSWORD), "{log}");
    }

    // The manifest is exactly what the Rust Manifest reads, and every object verifies.
    let dir = pg::image_dir(s.dir(), image);
    let bytes = std::fs::read(dir.join("manifest.json")).unwrap();
    let checksum = sha256_hex(&bytes);
    let manifest = Manifest::verified(image, &bytes, &checksum, Some(&key.key)).unwrap();
    assert_eq!(manifest.format, ImageFormat::Physical);
    assert_eq!(manifest.pg_version.split('.').next(), Some("15"));
    assert_eq!(manifest.dump_version.as_deref().and_then(|v| v.split('.').next()), Some("15"));
    assert!(manifest.databases.is_empty() && manifest.cluster_locale.is_some());
    assert_eq!(manifest.globals.name, GLOBALS_NAME);
    let names: Vec<&str> = manifest.archives.iter().map(|a| a.name.as_str()).collect();
    assert_eq!(names, [archive_object_name(0)]);
    let blobs = ObjectStoreBlobs::in_memory();
    let location = ImageLocation::for_image(image);
    for entry in std::fs::read_dir(&dir).unwrap() {
        let entry = entry.unwrap();
        let name = entry.file_name().into_string().unwrap();
        blobs.write(&location, &name, std::fs::read(entry.path()).unwrap().into()).await.unwrap();
    }
    let verified = verify_image(&blobs, &location, &checksum, Some(&key.key), VerifyMode::Full).await.unwrap();
    assert_eq!(verified, manifest);
    let hash = psql(s.port, "postgres", "SELECT rolpassword FROM pg_authid WHERE rolname = 'app'");
    pg::assert_sealed(&blobs, &location, &key.key, &[CANARY.to_string(), hash]).await;
    // Byte progress with a total: the last line counts every byte the dump side wrote.
    let raw: u64 = manifest.objects().map(|o| o.raw_size.unwrap()).sum();
    assert_eq!(last_progress(&upload_log), Some((raw, Some(raw))), "{upload_log}");

    let volume = Volume { key: Some(key.clone()), ..s.volume("restored") };
    let (fetch_log, load_log) = succeeded(s.restore(image, &checksum, &volume, PG15, "restore"));
    assert!(!load_log.contains(PASSWORD) && load_log.contains("1 archive(s) unpacked"), "{load_log}");
    let stored: u64 = manifest.objects().map(|o| o.size).sum::<u64>() + manifest.archives[0].size;
    assert_eq!(last_progress(&fetch_log), Some((stored, Some(stored))), "{fetch_log}");
    assert!(!format!("{upload_log}{fetch_log}").contains(" copied, "), "dd's own lines stay out of the log");
    assert_eq!(std::fs::read_to_string(volume.marker()).unwrap(), image.to_string());
    assert_eq!(std::fs::metadata(volume.pgdata()).unwrap().permissions().mode() & 0o777, 0o700);
    owner_only(&volume.pgdata());
    // The data directory includes the instance's configuration once, last.
    let conf = std::fs::read_to_string(volume.pgdata().join("postgresql.conf")).unwrap();
    let include = format!("include_if_exists = '{}/postgresql.conf'", s.config().display());
    assert_eq!(conf.matches(&include).count(), 1, "{conf}");
    assert!(conf.trim_end().ends_with(&include), "{conf}");
    let auto = std::fs::read_to_string(volume.pgdata().join("postgresql.auto.conf")).unwrap();
    assert!(auto.contains("work_mem = '5MB'") && !auto.contains("port"), "{auto}");
    assert!(load_log.contains("dropping the source's ALTER SYSTEM settings the instance configures: port"));
    // A retried job finds the marker and leaves the volume alone.
    let (_, again) = succeeded(s.restore(image, &checksum, &volume, PG15, "again"));
    assert!(again.contains("volume already holds image"), "{again}");

    // The server started on it replays the archive's WAL, then holds what the source held.
    let port = free_port();
    s.pg.start(PG15, &volume.pgdata(), port);
    assert_eq!(psql(port, "postgres", "SELECT pg_is_in_recovery()"), "f");
    let after = snapshot(port).await;
    assert!(after.diff(&before).is_empty(), "{:?}", after.diff(&before));
    assert_eq!(psql(port, "postgres", ROLE_HASHES), psql(s.port, "postgres", ROLE_HASHES));
    assert_eq!(psql(port, "app", ITEMS), psql(s.port, "app", ITEMS));
    assert_eq!(psql(port, "template1", "SELECT answer FROM t1_marker"), "42");
    assert_eq!(psql(port, "app", "SELECT t FROM canary"), CANARY);
    assert_eq!(psql(port, "postgres", "SELECT datallowconn FROM pg_database WHERE datname = 'closed'"), "f");
    logs_in(port, "app", "app-pass").await;
    logs_in(port, "old_app", "md5-pass").await;
    s.pg.stop(PG15, &volume.pgdata());
}

/// Runs a restore that must be refused: both containers end, `message` is in their logs, and the
/// volume is untouched (no data directory, no marker).
fn refused(s: &Source, image: ImageId, checksum: &str, volume: &Volume, bin: &str, message: &str) {
    let (fetch, load) = s.restore(image, checksum, volume, bin, "refused");
    assert!(!fetch.status.success() && !load.status.success(), "both containers end");
    let logs = format!("{}{}", stderr(&fetch), stderr(&load));
    assert!(logs.contains(message), "expected {message:?} in:\n{logs}");
    assert_eq!(std::fs::read_dir(&volume.root).unwrap().count(), 0, "nothing was unpacked");
}

#[test]
fn damaged_images_other_majors_and_partial_restores_are_refused_before_anything_is_unpacked() {
    let Some(s) = Source::start() else { return };
    let image = ImageId::new();
    succeeded(s.backup(image, "backup"));
    let dir = pg::image_dir(s.dir(), image);
    let manifest_path = dir.join("manifest.json");
    let manifest = std::fs::read(&manifest_path).unwrap();
    let checksum = sha256_hex(&manifest);
    let archive = dir.join(archive_object_name(0));
    let original = std::fs::read(&archive).unwrap();
    let len = original.len();

    let mut corrupted = original.clone();
    corrupted[len / 2] ^= 0xff;
    std::fs::write(&archive, &corrupted).unwrap();
    let message = "is corrupted: base-00.tar.zst has checksum";
    refused(&s, image, &checksum, &s.volume("corrupted"), PG15, message);

    std::fs::write(&archive, &original[..len / 2]).unwrap();
    let message = format!("is incomplete: base-00.tar.zst has {} bytes, the manifest says {len}", len / 2);
    refused(&s, image, &checksum, &s.volume("truncated"), PG15, &message);
    std::fs::write(&archive, &original).unwrap();

    let mut some = s.volume("some");
    some.databases = Some(r#"["app"]"#.into());
    refused(&s, image, &checksum, &some, PG15, "is physical: it restores as a whole data directory");

    // The image of a PostgreSQL 14 source, restored by a PostgreSQL 15 image.
    let mut older: serde_json::Value = serde_json::from_slice(&manifest).unwrap();
    older["pg_version"] = "14.13".into();
    let older = serde_json::to_vec(&older).unwrap();
    std::fs::write(&manifest_path, &older).unwrap();
    let message = "is a physical image of PostgreSQL 14, and physical images restore only onto the same major, \
                   but this image's server is PostgreSQL 15";
    refused(&s, image, &sha256_hex(&older), &s.volume("major14"), PG15, message);
    std::fs::write(&manifest_path, &manifest).unwrap();
    // And a real second major, when installed (`eval "$(bash .ci/pg18.sh)"`).
    if let Some(pg18) = pg::pg18() {
        let message = "this image's server is PostgreSQL 18";
        refused(&s, image, &checksum, &s.volume("major18"), &pg18, message);
    } else {
        eprintln!("SKIPPED the PostgreSQL 18 target: run `eval \"$(bash .ci/pg18.sh)\"`");
    }

    // The undamaged image still restores.
    succeeded(s.restore(image, &checksum, &s.volume("intact"), PG15, "intact"));
}

/// Runs a physical backup that must fail with `message` in the `dump` container's log, leaving no
/// manifest (the image is incomplete).
fn backup_fails(s: &Source, message: &str) {
    let image = ImageId::new();
    let (dump, upload) = s.backup(image, "failing");
    assert!(!dump.status.success() && !upload.status.success(), "both containers end");
    assert!(stderr(&dump).contains(message), "expected {message:?} in:\n{}", stderr(&dump));
    assert!(!pg::image_dir(s.dir(), image).join("manifest.json").exists());
}

#[test]
fn sources_that_cannot_be_imaged_physically_fail_the_backup_with_the_reason() {
    let Some(s) = Source::start() else { return };
    // An instance whose pg_hba.conf predates the replication entry.
    let hba = s.config().join("pg_hba.conf");
    let without: String =
        PG_HBA_CONF.lines().filter(|l| !l.contains("replication")).map(|l| format!("{l}\n")).collect();
    std::fs::write(&hba, without).unwrap();
    psql(s.port, "postgres", "SELECT pg_reload_conf()");
    backup_fails(&s, "the source's pg_hba.conf allows no replication connection for postgres");
    std::fs::write(&hba, PG_HBA_CONF).unwrap();
    psql(s.port, "postgres", "SELECT pg_reload_conf()");

    // wal_level=minimal (which needs max_wal_senders = 0).
    s.pg.stop(PG15, &s.data);
    append(&s.data.join("postgresql.conf"), "wal_level = minimal\nmax_wal_senders = 0\n");
    s.pg.start(PG15, &s.data, s.port);
    backup_fails(&s, "the source runs with wal_level=minimal, from which no physical image can be taken");
}

/// [`pg::FAKE_COPY`], but the upload of the base backup's archive waits for the file `gate` (and
/// says so with the file `paused`): pg_basebackup, writing into the pipe, stalls mid-backup.
const GATED_COPY: &str = r#"#!/bin/bash
set -euo pipefail
path() { printf '%s' "${1#fake://}"; }
case "$1" in
  up)
    if [[ "$2" == *base-00.tar.zst* ]]; then
      : >"$GATE_DIR/paused"
      until [[ -e "$GATE_DIR/gate" ]]; do sleep 0.1; done
    fi
    mkdir -p "$(dirname "$(path "$2")")"; cat >"$(path "$2")" ;;
  down) cat "$(path "$2")" ;;
esac
"#;

/// Creates the file at its path when dropped.
struct OpenOnDrop(PathBuf);

impl Drop for OpenOnDrop {
    fn drop(&mut self) {
        let _ = std::fs::write(&self.0, "");
    }
}

#[test]
fn a_physical_backup_keeps_the_wal_it_needs_while_a_busy_source_recycles_segments() {
    let Some(s) = Source::start() else { return };
    // No WAL kept for standbys, and as little as the server allows between checkpoints.
    psql(s.port, "postgres", "ALTER SYSTEM SET wal_keep_size = 0");
    psql(s.port, "postgres", "ALTER SYSTEM SET max_wal_size = '32MB'");
    psql(s.port, "postgres", "ALTER SYSTEM SET min_wal_size = '32MB'");
    psql(s.port, "postgres", "SELECT pg_reload_conf()");
    let image = ImageId::new();
    let gates = s.pg.dir(&s.dir().join("gates"));
    let mut t = pg::fake_transfer(s.dir(), image);
    t.program =
        pg::executable(s.dir(), "gated-copy", GATED_COPY.replace("$GATE_DIR", &gates.display().to_string()).as_bytes());
    let slots = "SELECT count(*) FILTER (WHERE temporary), count(*) FROM pg_replication_slots \
                 WHERE slot_name LIKE 'toygres_backup_%'";
    let (during, (dump_log, _)) = std::thread::scope(|scope| {
        // Opens the gate however this closure ends, so a failed assertion never leaves the backup waiting.
        let _gate = OpenOnDrop(gates.join("gate"));
        let backup = scope.spawn(|| {
            let exchange = jobs::exchange(&s.pg, s.dir(), "busy");
            BackupPod::new(ImageFormat::Physical, None).run(&s.pg, &t, image, s.port, (PG15, "/nonexistent"), &exchange)
        });
        // The backup has passed its start checkpoint and stalls on the full pipe.
        let started = std::time::Instant::now();
        while !(gates.join("paused").exists()
            && psql(
                s.port,
                "postgres",
                "SELECT count(*) FROM pg_stat_progress_basebackup \
                 WHERE phase = 'streaming database files'",
            ) == "1")
        {
            assert!(started.elapsed().as_secs() < 60, "the backup never reached its data files");
            assert!(!backup.is_finished(), "the backup ended early");
            std::thread::sleep(std::time::Duration::from_millis(100));
        }
        let during = psql(s.port, "postgres", slots);
        let first = psql(s.port, "postgres", "SELECT pg_walfile_name(pg_current_wal_lsn())");
        // A busy source: writes, segment switches and checkpoints recycle the WAL from the
        // backup's start but for what a slot holds.
        for round in 0..6 {
            psql(s.port, "app", &format!("UPDATE items SET v = v || '{round}' WHERE id % 7 = {round}"));
            psql(s.port, "app", "CREATE TABLE IF NOT EXISTS churn AS SELECT 0 AS g");
            psql(s.port, "app", "INSERT INTO churn SELECT g FROM generate_series(1, 20000) g");
            psql(s.port, "postgres", "SELECT pg_switch_wal()");
            psql(s.port, "postgres", "CHECKPOINT");
        }
        let last = psql(s.port, "postgres", "SELECT pg_walfile_name(pg_current_wal_lsn())");
        assert_ne!(first, last, "the source switched segments");
        std::fs::write(gates.join("gate"), "").unwrap();
        (during, succeeded(backup.join().unwrap()))
    });
    // Held by a temporary slot, which the server drops with its session.
    assert_eq!(during, "1|1", "one temporary slot while the backup ran");
    assert!(dump_log.contains("temporary replication slot toygres_backup_"), "{dump_log}");
    assert_eq!(psql(s.port, "postgres", slots), "0|0", "the slot went with its session");

    // The image holds the changes made while it was taken.
    let dir = pg::image_dir(s.dir(), image);
    let checksum = sha256_hex(&std::fs::read(dir.join("manifest.json")).unwrap());
    let volume = s.volume("busy");
    succeeded(s.restore(image, &checksum, &volume, PG15, "busy"));
    let port = free_port();
    s.pg.start(PG15, &volume.pgdata(), port);
    assert_eq!(psql(port, "app", ITEMS), psql(s.port, "app", ITEMS));
    assert_eq!(psql(port, "app", "SELECT count(*) FROM churn"), psql(s.port, "app", "SELECT count(*) FROM churn"));
    s.pg.stop(PG15, &volume.pgdata());
}

/// A directory of the `load` container's programs: PostgreSQL 15's, and a `df` reporting a volume
/// of `capacity` bytes on which what is under the directory asked about is used.
fn small_volume_bin(s: &Source, name: &str, capacity: u64) -> String {
    let bin = s.pg.dir(&s.dir().join(name));
    for entry in std::fs::read_dir(PG15).unwrap() {
        let entry = entry.unwrap();
        std::os::unix::fs::symlink(entry.path(), bin.join(entry.file_name())).unwrap();
    }
    let df = format!(
        "#!/bin/bash\nset -euo pipefail\ndir=${{!#}}\nused=$(du -sk \"$dir\" | cut -f1)\ntotal={}\n\
         printf 'Filesystem 1024-blocks Used Available Capacity Mounted on\\nfake %s %s %s 0%% %s\\n' \
         \"$total\" \"$used\" \"$((total - used))\" \"$dir\"\n",
        capacity / 1024
    );
    pg::executable(&bin, "df", df.as_bytes());
    bin.display().to_string()
}

#[test]
fn a_retried_restore_counts_the_space_of_the_partial_data_it_removes_as_free() {
    let Some(s) = Source::start() else { return };
    let image = ImageId::new();
    succeeded(s.backup(image, "backup"));
    let manifest = std::fs::read(pg::image_dir(s.dir(), image).join("manifest.json")).unwrap();
    let checksum = sha256_hex(&manifest);
    let manifest: serde_json::Value = serde_json::from_slice(&manifest).unwrap();
    let archives = manifest["archives"].as_array().unwrap().iter();
    let raw = manifest["globals"]["raw_size"].as_u64().unwrap()
        + archives.map(|a| a["raw_size"].as_u64().unwrap()).sum::<u64>();

    // A volume with room for the image, holding an earlier attempt's partial data directory that
    // would leave too little of it: the retry removes that first, then finds room.
    let mib = 1 << 20;
    let volume = s.volume("retried");
    s.pg.dir(&volume.pgdata());
    let leftover = s.pg.dir(&volume.pgdata().join("base"));
    std::fs::write(leftover.join("partial"), vec![7u8; 16 * mib]).unwrap();
    let bin = small_volume_bin(&s, "bin-retried", raw + 8 * mib as u64);
    let (_, load_log) = succeeded(s.restore(image, &checksum, &volume, &bin, "retried"));
    assert!(load_log.contains("removing the partial data directory of an earlier attempt"), "{load_log}");
    assert!(!volume.pgdata().join("base/partial").exists());
    assert_eq!(std::fs::read_to_string(volume.marker()).unwrap(), image.to_string());

    // A volume too small for the image is still refused before anything is unpacked.
    let bin = small_volume_bin(&s, "bin-small", raw - mib as u64);
    refused(&s, image, &checksum, &s.volume("small"), &bin, "bytes free but the image holds");
}
