//! Physical images through the job scripts against a real PostgreSQL 15, continued from
//! `physical_scripts.rs`: a busy source recycling WAL segments mid-backup does not fail it (a
//! temporary replication slot keeps the WAL), and a retried restore counts the space of the
//! partial data it removes as free.

mod pg;

use pg::jobs::{self, BackupPod};
use pg::physical::*;
use pg::{free_port, psql, succeeded, PG15};
use std::path::PathBuf;
use toygres_core::manifest::sha256_hex;
use toygres_core::{ImageFormat, ImageId};

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
