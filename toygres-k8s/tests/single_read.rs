//! A restore reads the image once (issue 25), as the restore Job's real processes against a real
//! PostgreSQL 15: the `fetch` container downloads each object the load needs exactly once, hashing
//! it while it streams it into the `load` container, and no other object (a database not chosen,
//! a physical image's globals); progress counts that one pass. A changed byte in a dump or in a
//! tar fails the Job with the checksum error naming the object, both containers end (the load does
//! not hang on its FIFO) and the volume is not marked restored (a physical image's data directory
//! is not even configured). A plaintext image, whose bytes nothing authenticates, is verified whole
//! before anything is loaded: two reads of each loaded object. The copy program logs every read.

mod pg;

use pg::jobs::{self, BackupPod, Volume};
use pg::{psql, succeeded, JobKey, Server15, PG15};
use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::process::Output;
use std::time::{Duration, Instant};
use toygres_core::envelope::object;
use toygres_core::manifest::{sha256_hex, MANIFEST_NAME};
use toygres_core::{CommandTransfer, ImageFormat, ImageId, Manifest};
use toygres_k8s::progress::last_progress;

/// `pg::FAKE_COPY` that also appends the name of every object it reads to the file `$READS`.
const COUNTING_COPY: &str = r#"#!/bin/bash
set -euo pipefail
path() { printf '%s' "${1#fake://}"; }
case "$1" in
  up) mkdir -p "$(dirname "$(path "$2")")"; cat >"$(path "$2")" ;;
  down) printf '%s\n' "${2##*/}" >>"$READS"; cat "$(path "$2")" ;;
esac
"#;

/// How long a failing restore may take: both containers end, neither waits on the other.
const ENDS_WITHIN: Duration = Duration::from_secs(120);

/// Where a test keeps the read logs, its images and volumes.
struct Reads<'a> {
    pg: &'a pg::Postgres,
    dir: &'a Path,
}

impl Reads<'_> {
    /// A transfer of `image` through [`COUNTING_COPY`] logging to `log`.
    fn transfer(&self, image: ImageId, log: &Path) -> CommandTransfer {
        let mut t = pg::fake_transfer(self.dir, image);
        t.program = pg::executable(self.dir, "counting-copy", COUNTING_COPY.as_bytes());
        t.env = vec![("READS".into(), log.display().to_string())];
        t
    }

    /// Restores `image` into a new volume `name` (with `databases` and `key`) reading through the
    /// counting copy program; returns the volume, both containers' outputs, how often each object
    /// was read, and how long the pod ran.
    fn restore(&self, image: ImageId, sum: &str, name: &str, databases: Option<&str>, key: Option<&JobKey>) -> Run {
        let logs = self.pg.dir(&self.dir.join("reads"));
        let log = logs.join(name);
        let volume = Volume {
            databases: databases.map(String::from),
            key: key.cloned(),
            ..Volume::new(self.pg, self.dir, name)
        };
        let exchange = jobs::exchange(self.pg, self.dir, name);
        let start = Instant::now();
        let (fetch, load) = jobs::restore(self.pg, &self.transfer(image, &log), image, sum, &volume, PG15, &exchange);
        let mut reads = BTreeMap::new();
        for line in std::fs::read_to_string(&log).unwrap_or_default().lines() {
            *reads.entry(line.to_string()).or_insert(0) += 1;
        }
        Run { image, volume, fetch, load, reads, took: start.elapsed() }
    }
}

struct Run {
    image: ImageId,
    volume: Volume,
    fetch: Output,
    load: Output,
    reads: BTreeMap<String, usize>,
    took: Duration,
}

impl Run {
    fn logs(&self) -> (String, String) {
        (pg::physical::stderr(&self.fetch), pg::physical::stderr(&self.load))
    }

    /// Both containers succeeded and the volume is marked restored; returns the fetch's log.
    fn ok(self) -> (Self, String) {
        let (fetch, _) = succeeded((self.fetch.clone(), self.load.clone()));
        assert!(self.volume.marker().exists(), "no marker");
        (self, fetch)
    }

    /// Both containers failed, in time, with `message` in the fetch's log, and the volume is not
    /// marked restored.
    fn failed(&self, message: &str) -> (String, String) {
        let (fetch, load) = self.logs();
        assert!(!self.fetch.status.success() && !self.load.status.success(), "both containers end:\n{fetch}\n{load}");
        assert!(self.took < ENDS_WITHIN, "the pod took {:?}", self.took);
        assert!(fetch.contains(message), "expected {message:?} in:\n{fetch}");
        assert!(!self.volume.marker().exists(), "the volume was marked restored:\n{load}");
        assert!(!load.contains(&format!("image {} restored", self.image)), "{load}");
        (fetch, load)
    }
}

/// The reads `expected` (object name, count), the manifest's included once.
fn reads(expected: &[(&str, usize)]) -> BTreeMap<String, usize> {
    let mut all: BTreeMap<String, usize> = expected.iter().map(|(n, c)| (n.to_string(), *c)).collect();
    all.insert(MANIFEST_NAME.into(), 1);
    all.retain(|_, c| *c > 0);
    all
}

/// The stored manifest of `image` under `dir`, its checksum, and its opened content.
fn manifest(dir: &Path, image: ImageId, key: Option<&JobKey>) -> (String, Manifest) {
    let bytes = std::fs::read(pg::image_dir(dir, image).join(MANIFEST_NAME)).unwrap();
    let sum = sha256_hex(&bytes);
    let manifest = Manifest::verified(image, &bytes, &sum, key.map(|k| &k.key)).unwrap();
    (sum, manifest)
}

/// Flips a byte in the middle of the stored object `name` of `image`.
fn flip(dir: &Path, image: ImageId, name: &str) -> PathBuf {
    let path = pg::image_dir(dir, image).join(name);
    let mut bytes = std::fs::read(&path).unwrap();
    let middle = bytes.len() / 2;
    bytes[middle] ^= 0x01;
    std::fs::write(&path, bytes).unwrap();
    path
}

/// A PostgreSQL 15 source with the databases `app` (a few thousand rows) and `other`.
fn logical_source() -> Option<Server15> {
    let s = Server15::create(|_, _, _| ())?;
    psql(s.port, "postgres", "CREATE DATABASE app");
    psql(s.port, "app", "CREATE TABLE t AS SELECT g AS id, md5(g::text) AS v FROM generate_series(1, 20000) g");
    psql(s.port, "postgres", "CREATE DATABASE other");
    psql(s.port, "other", "CREATE TABLE o AS SELECT 1 AS one");
    Some(s)
}

/// A logical image of `s`, encrypted under `key` if any.
fn logical_image(s: &Server15, key: Option<&JobKey>) -> ImageId {
    let image = ImageId::new();
    let exchange = jobs::exchange(&s.pg, s.dir(), &format!("backup-{}", image.short()));
    let t = pg::fake_transfer(s.dir(), image);
    succeeded(BackupPod::new(ImageFormat::Logical, key).run(&s.pg, &t, image, s.port, (PG15, PG15), &exchange));
    image
}

#[test]
fn an_encrypted_restore_reads_each_object_it_loads_once_and_no_other() {
    let Some(s) = logical_source() else { return };
    let key = JobKey::new(&s.pg, s.dir(), "once");
    let image = logical_image(&s, Some(&key));
    let (sum, m) = manifest(s.dir(), image, Some(&key));
    let r = Reads { pg: &s.pg, dir: s.dir() };
    let app = m.databases.iter().find(|d| d.name == "app").unwrap();

    // Some databases: the others' dumps are not read at all.
    let (run, fetch) = r.restore(image, &sum, "some", Some(r#"["app"]"#), Some(&key)).ok();
    assert_eq!(run.reads, reads(&[(&m.globals.name, 1), (&app.object.name, 1)]));
    let once = m.globals.size + app.object.size;
    assert_eq!(last_progress(&fetch), Some((once, Some(once))), "{fetch}");
    assert!(!fetch.contains("verifying "), "{fetch}");

    // Every database: each object once.
    let (run, fetch) = r.restore(image, &sum, "all", None, Some(&key)).ok();
    let mut expected = vec![(m.globals.name.as_str(), 1)];
    expected.extend(m.databases.iter().map(|d| (d.object.name.as_str(), 1)));
    assert_eq!(run.reads, reads(&expected));
    let once: u64 = m.objects().map(|o| o.size).sum();
    assert_eq!(last_progress(&fetch), Some((once, Some(once))), "{fetch}");
    let port = pg::free_port();
    s.pg.start(PG15, &run.volume.pgdata(), port);
    assert_eq!(psql(port, "app", "SELECT count(*) FROM t"), "20000");
    assert_eq!(psql(port, "other", "SELECT one FROM o"), "1");
    s.pg.stop(PG15, &run.volume.pgdata());
}

#[test]
fn a_plaintext_image_is_verified_whole_before_anything_is_loaded() {
    let Some(s) = logical_source() else { return };
    let image = logical_image(&s, None);
    let (sum, m) = manifest(s.dir(), image, None);
    let r = Reads { pg: &s.pg, dir: s.dir() };
    let app = m.databases.iter().find(|d| d.name == "app").unwrap();
    let (run, fetch) = r.restore(image, &sum, "some", Some(r#"["app"]"#), None).ok();
    assert_eq!(run.reads, reads(&[(&m.globals.name, 2), (&app.object.name, 2)]));
    assert!(fetch.contains("before anything is loaded (a plaintext image)"), "{fetch}");
    let twice = 2 * (m.globals.size + app.object.size);
    assert_eq!(last_progress(&fetch), Some((twice, Some(twice))), "{fetch}");

    // A changed byte is refused by that first read: nothing was loaded.
    flip(s.dir(), image, &app.object.name);
    let run = r.restore(image, &sum, "changed", None, None);
    let (_, load) = run.failed(&format!("is corrupted: {} has checksum", app.object.name));
    assert!(!run.volume.pgdata().exists() && !load.contains("applying roles"), "{load}");
}

#[test]
fn a_changed_byte_in_a_dump_fails_the_restore_naming_it_and_marks_nothing() {
    let Some(s) = logical_source() else { return };
    let key = JobKey::new(&s.pg, s.dir(), "changed");
    let image = logical_image(&s, Some(&key));
    let (sum, m) = manifest(s.dir(), image, Some(&key));
    let r = Reads { pg: &s.pg, dir: s.dir() };
    let app = &m.databases.iter().find(|d| d.name == "app").unwrap().object.name;
    let path = flip(s.dir(), image, app);
    let run = r.restore(image, &sum, "changed", None, Some(&key));
    let (fetch, load) = run.failed(&format!("is corrupted: {app} has checksum"));
    // The opener refused the changed chunk: it and what follows never reached pg_restore.
    assert!(fetch.contains(&format!("opening object {app} of image {image} failed")), "{fetch}");
    assert!(load.contains(app.as_str()) || load.contains("the fetch container failed"), "{load}");
    // Read once, up to its end (its checksum is known): no second read.
    assert_eq!(run.reads.get(app.as_str()), Some(&1), "{:?}", run.reads);

    // Sealed again under the same key (as a retried backup's upload could have left it): every
    // chunk is authentic and pg_restore loads it, but the bytes are not the ones the manifest
    // lists, and the load fails on the fetch's verdict instead of marking the volume.
    flip(s.dir(), image, app);
    let opened = object::open_all(&key.key, image, app, &std::fs::read(&path).unwrap()).unwrap();
    std::fs::write(&path, object::seal_all(&key.key, image, app, &opened)).unwrap();
    let run = r.restore(image, &sum, "resealed", None, Some(&key));
    let (_, load) = run.failed(&format!("is corrupted: {app} has checksum"));
    assert!(load.contains(&format!("the fetch container refused {app}, nothing is marked restored")), "{load}");
}

/// The line `apply_instance_config` gives the data directory restored into `volume`.
fn configured(volume: &Volume) -> String {
    format!("include_if_exists = '{}/postgresql.conf'", volume.config.display())
}

#[test]
fn a_physical_image_streams_its_tar_once_and_a_changed_byte_in_it_marks_nothing() {
    let Some(s) = pg::physical::Source::start() else { return };
    let key = JobKey::new(&s.pg, s.dir(), "physical");
    let image = ImageId::new();
    succeeded(s.backup_with(image, "backup", Some(&key)));
    let (sum, m) = manifest(s.dir(), image, Some(&key));
    let archive = &m.archives[0];
    let r = Reads { pg: &s.pg, dir: s.dir() };

    // The archive once; the globals (the roles are in the data files) not at all.
    let (run, fetch) = r.restore(image, &sum, "intact", None, Some(&key)).ok();
    assert_eq!(run.reads, reads(&[(&archive.name, 1)]));
    assert_eq!(last_progress(&fetch), Some((archive.size, Some(archive.size))), "{fetch}");
    let conf = std::fs::read_to_string(run.volume.pgdata().join("postgresql.conf")).unwrap();
    assert!(conf.contains(&configured(&run.volume)), "{conf}");

    flip(s.dir(), image, &archive.name);
    let run = r.restore(image, &sum, "changed", None, Some(&key));
    run.failed(&format!("is corrupted: {} has checksum", archive.name));
    // Not configured as the instance either: the load stopped before apply_instance_config.
    let conf = std::fs::read_to_string(run.volume.pgdata().join("postgresql.conf")).unwrap_or_default();
    assert!(!conf.contains(&configured(&run.volume)), "{conf}");
}

/// A load that opens its FIFO after the fetch failed, and after the fetch's own unblocking of the
/// FIFOs ended, is not left waiting for a writer forever: `receive`'s watchdog opens the FIFO once
/// the other side has failed, and the load fails too.
#[test]
fn a_load_waiting_on_a_fifo_whose_writer_died_ends() {
    let Some(pg) = pg::Postgres::find() else { return };
    let tmp = pg::tempdir();
    let exchange = jobs::exchange(&pg, tmp.path(), "fifo");
    let env = |side: &str, peer: &str| {
        let exchange = exchange.display().to_string();
        pg::vars(&[("TOYGRES_EXCHANGE", exchange), ("TOYGRES_SIDE", side.into()), ("TOYGRES_PEER", peer.into())])
    };
    let common = toygres_k8s::render::COMMON_SH;
    // The fetch's unblocking lasts 5 s; the load opens its FIFO after 7.
    let fetch =
        pg::Side { script: format!("{common}\nfail 'the download broke'"), env: env("fetch", "load"), bin: PG15 };
    let load = format!("{common}\nsleep 7\nreceive globals.sql.zst cat >/dev/null\nlog 'loaded'");
    let load = pg::Side { script: load, env: env("load", "fetch"), bin: PG15 };
    let start = Instant::now();
    let (fetch, load) = pg.pod(&fetch, &load);
    let (fetch, load) = (pg::physical::stderr(&fetch), pg::physical::stderr(&load));
    assert!(start.elapsed() < Duration::from_secs(30), "{:?}", start.elapsed());
    assert!(fetch.contains("the download broke"), "{fetch}");
    assert!(load.contains("the fetch container failed") && !load.contains("loaded"), "{load}");
}
