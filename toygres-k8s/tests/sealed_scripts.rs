//! Encrypted images through the job scripts as real processes (toygres-seal from cargo, the data
//! key in a file as the job's Secret mounts it): whatever is changed, swapped or forged in the blob
//! store fails the restore and marks nothing. A changed manifest, another key or no key fail it
//! before anything is loaded; a flipped byte in a dump or an object copied from another image is
//! refused by the opener as the object streams (the image is read once), so no byte of it reaches
//! the load (another image's roles are not applied); and a backup told to encrypt without a usable
//! key fails closed, uploading nothing.

mod pg;

use pg::jobs::{self, BackupPod, Volume};
use pg::{free_port, psql, succeeded, JobKey, Server15, PG15};
use std::path::{Path, PathBuf};
use std::process::Output;
use toygres_core::manifest::{sha256_hex, GLOBALS_NAME, MANIFEST_NAME};
use toygres_core::{CommandTransfer, ImageFormat, ImageId};

const CANARY: &str = "toygres-canary-sealed-41f7-row";

/// A copy program on local files, like `pg::FAKE_COPY`, that serves `SWAP_FROM` instead of object
/// `SWAP_NAME` once the file `SWAP_SEEN` exists (it creates it at the first download).
const SWAPPING_COPY: &str = r#"#!/bin/bash
set -euo pipefail
path() { printf '%s' "${1#fake://}"; }
case "$1" in
  up) mkdir -p "$(dirname "$(path "$2")")"; cat >"$(path "$2")" ;;
  down)
    p=$(path "$2")
    if [[ -n "${SWAP_NAME:-}" && "$p" == */"$SWAP_NAME" ]]; then
      if [[ -e "$SWAP_SEEN" ]]; then exec cat "$SWAP_FROM"; fi
      touch "$SWAP_SEEN"
    fi
    cat "$p" ;;
esac
"#;

/// The PostgreSQL 15 source of these tests, with a canary row.
type Source = Server15;

impl Source {
    fn start() -> Option<Self> {
        let server = Server15::create(|pg, dir, _| {
            pg.dir(&dir.join("state"));
        })?;
        let port = server.port;
        psql(port, "postgres", "CREATE ROLE app LOGIN PASSWORD 'app-pass'");
        psql(port, "postgres", "CREATE DATABASE app OWNER app");
        psql(port, "app", &format!("SET ROLE app; CREATE TABLE canary AS SELECT '{CANARY}'::text AS t"));
        Some(server)
    }

    fn image_dir(&self, image: ImageId) -> PathBuf {
        pg::image_dir(self.dir(), image)
    }

    /// Reads `image`'s objects through [`SWAPPING_COPY`] with `swap` variables, if any.
    fn transfer(&self, image: ImageId, swap: &[(&str, String)]) -> CommandTransfer {
        let mut t = pg::fake_transfer(self.dir(), image);
        t.program = pg::executable(self.dir(), "swapping-copy", SWAPPING_COPY.as_bytes());
        t.env = swap.iter().map(|(k, v)| (k.to_string(), v.clone())).collect();
        t
    }

    /// A logical backup of the source as `image`, encrypted under `key`, or the pod of a backup
    /// with `upload_env` that must fail.
    fn backup(&self, image: ImageId, key: Option<&JobKey>, upload_env: &[(&str, String)]) -> (Output, Output) {
        let pod = BackupPod { upload_env: pg::vars(upload_env), ..BackupPod::new(ImageFormat::Logical, key) };
        let exchange = jobs::exchange(&self.pg, self.dir(), "backup");
        pod.run(&self.pg, &self.transfer(image, &[]), image, self.port, (PG15, PG15), &exchange)
    }

    /// An encrypted image of the source and the checksum of its stored manifest.
    fn image(&self, key: &JobKey) -> (ImageId, String) {
        let image = ImageId::new();
        succeeded(self.backup(image, Some(key), &[]));
        let manifest = std::fs::read(self.image_dir(image).join(MANIFEST_NAME)).unwrap();
        (image, sha256_hex(&manifest))
    }

    /// Restores `image` into a new volume with `key`, reading through `transfer`.
    fn restore(
        &self,
        t: &CommandTransfer,
        image: ImageId,
        sum: &str,
        key: Option<&JobKey>,
    ) -> (Volume, Output, Output) {
        let name = format!("v{}", ImageId::new().short());
        let volume = Volume { key: key.cloned(), ..Volume::new(&self.pg, self.dir(), &name) };
        let exchange = jobs::exchange(&self.pg, self.dir(), &name);
        let (fetch, load) = jobs::restore(&self.pg, t, image, sum, &volume, PG15, &exchange);
        (volume, fetch, load)
    }

    /// A restore of `image` that must be refused with `message` before anything is loaded: both
    /// containers end, nothing was initialised on the volume, no marker.
    fn refused(&self, image: ImageId, sum: &str, key: Option<&JobKey>, message: &str) {
        let (volume, logs) = self.refused_streaming(image, sum, key, message);
        assert!(!volume.pgdata().exists(), "something was loaded:\n{logs}");
        assert!(!logs.contains("applying roles") && !logs.contains("restoring database"), "{logs}");
    }

    /// A restore of `image` that must be refused with `message` by the time the changed object has
    /// streamed (its earlier objects may have been loaded): both containers end, the opener refused
    /// the object, no marker. Returns the volume and both logs.
    fn refused_streaming(&self, image: ImageId, sum: &str, key: Option<&JobKey>, message: &str) -> (Volume, String) {
        let (volume, fetch, load) = self.restore(&self.transfer(image, &[]), image, sum, key);
        assert!(!fetch.status.success() && !load.status.success(), "both containers end");
        let logs = format!("{}{}", stderr(&fetch), stderr(&load));
        assert!(logs.contains(message), "expected {message:?} in:\n{logs}");
        assert!(!volume.marker().exists(), "the volume was marked restored:\n{logs}");
        assert!(!logs.contains(&format!("image {image} restored")), "{logs}");
        (volume, logs)
    }
}

fn stderr(out: &Output) -> String {
    String::from_utf8_lossy(&out.stderr).into_owned()
}

/// Runs `change` on the stored object `name` of `image`, then puts it back.
fn with_changed(s: &Source, image: ImageId, name: &str, change: impl FnOnce(&mut Vec<u8>), check: impl FnOnce()) {
    let path = s.image_dir(image).join(name);
    let original = std::fs::read(&path).unwrap();
    let mut changed = original.clone();
    change(&mut changed);
    std::fs::write(&path, &changed).unwrap();
    check();
    std::fs::write(&path, &original).unwrap();
}

#[test]
fn changed_foreign_or_unkeyed_images_fail_the_restore_and_mark_nothing() {
    let Some(s) = Source::start() else { return };
    let key = JobKey::new(&s.pg, s.dir(), "a");
    let (image, sum) = s.image(&key);
    // Another image of the same source under the same data key: its objects are not this one's.
    let (other, _) = s.image(&key);
    let dump = "db-0000.dump.zst"; // database app, the canary's

    // The opener refuses the object as it streams: none of its bytes reach pg_restore.
    let opener = format!("opening object {dump} of image {image} failed: image {image} is not authentic");
    let streaming = |message: String| {
        let (s, sum, key, opener) = (&s, &sum, &key, &opener);
        move || {
            let (_, logs) = s.refused_streaming(image, sum, Some(key), &message);
            assert!(logs.contains(opener.as_str()), "{logs}");
        }
    };
    let foreign = std::fs::read(s.image_dir(other).join(dump)).unwrap();
    with_changed(&s, image, dump, |b| *b = foreign, streaming(format!("{dump} has")));
    let flip = |b: &mut Vec<u8>| {
        let middle = b.len() / 2;
        b[middle] ^= 0x01;
    };
    with_changed(&s, image, dump, flip, streaming(format!("is corrupted: {dump} has checksum")));
    let manifest_changed = "is corrupted: manifest.json has checksum";
    with_changed(&s, image, MANIFEST_NAME, flip, || s.refused(image, &sum, Some(&key), manifest_changed));
    // A manifest written under another key (as a writer without this image's key could) does not open
    // even when the checksum is its own; another key does not open this one either.
    let wrong = JobKey::new(&s.pg, s.dir(), "wrong");
    s.refused(image, &sum, Some(&wrong), "its manifest.json does not open under the image's data key");
    s.refused(image, &sum, None, "is encrypted, but this job was given no data key");

    // The untouched image restores, canary included.
    let (volume, fetch, load) = s.restore(&s.transfer(image, &[]), image, &sum, Some(&key));
    succeeded((fetch, load));
    let port = free_port();
    s.pg.start(PG15, &volume.pgdata(), port);
    assert_eq!(psql(port, "app", "SELECT t FROM canary"), CANARY);
    s.pg.stop(PG15, &volume.pgdata());
}

/// The image is read once, so there is no later read to swap an object in: another image's
/// globals (under the same key), served from the first read on, are refused by the opener before a
/// byte of them reaches psql: the role only the other image holds is not on the volume.
#[test]
fn another_images_object_is_refused_by_the_opener_before_a_byte_of_it_is_loaded() {
    let Some(s) = Source::start() else { return };
    let key = JobKey::new(&s.pg, s.dir(), "a");
    let (image, sum) = s.image(&key);
    psql(s.port, "postgres", "CREATE ROLE intruder LOGIN PASSWORD 'intruder-pass'");
    let (other, _) = s.image(&key);
    let seen = s.dir().join("state/seen");
    std::fs::write(&seen, "").unwrap();
    std::os::unix::fs::chown(&seen, Some(s.pg.uid), Some(s.pg.gid)).unwrap();
    let swap = [
        ("SWAP_NAME", GLOBALS_NAME.to_string()),
        ("SWAP_FROM", s.image_dir(other).join(GLOBALS_NAME).display().to_string()),
        ("SWAP_SEEN", seen.display().to_string()),
    ];
    let (volume, fetch, load) = s.restore(&s.transfer(image, &swap), image, &sum, Some(&key));
    assert!(!fetch.status.success() && !load.status.success(), "both containers end");
    let (fetch, load) = (stderr(&fetch), stderr(&load));
    let refused =
        format!("toygres-seal: opening object {GLOBALS_NAME} of image {image} failed: image {image} is not authentic");
    assert!(fetch.contains(&refused), "{fetch}");
    assert!(fetch.contains(&format!("{GLOBALS_NAME} has")), "the object is named: {fetch}");
    assert!(!volume.marker().exists(), "the volume is not marked restored");
    assert!(!load.contains("restoring database"), "{load}");
    // The globals were being applied when the opener refused them: not one of their statements ran.
    let port = free_port();
    s.pg.start(PG15, &volume.pgdata(), port);
    assert_eq!(psql(port, "postgres", "SELECT count(*) FROM pg_roles WHERE rolname = 'intruder'"), "0");
    s.pg.stop(PG15, &volume.pgdata());
}

#[test]
fn a_backup_told_to_encrypt_without_a_usable_key_fails_closed_and_uploads_nothing() {
    let Some(s) = Source::start() else { return };
    let unreadable = s.dir().join("root-only-key");
    std::fs::write(&unreadable, "ab".repeat(32)).unwrap();
    std::fs::set_permissions(&unreadable, std::os::unix::fs::PermissionsExt::from_mode(0o600)).unwrap();
    let garbage = JobKey::new(&s.pg, s.dir(), "garbage").file;
    std::fs::set_permissions(&garbage, std::os::unix::fs::PermissionsExt::from_mode(0o600)).unwrap();
    std::fs::write(&garbage, "not a key").unwrap();
    let good = JobKey::new(&s.pg, s.dir(), "good");
    let file = |p: &Path| p.display().to_string();
    let on = || ("TOYGRES_ENCRYPTED", "1".to_string());
    let cases: Vec<(Vec<(&str, String)>, &str)> = vec![
        (vec![on()], "TOYGRES_DATA_KEY_FILE names no key file"),
        (vec![on(), ("TOYGRES_DATA_KEY_FILE", "/nonexistent/data-key".into())], "is missing or unreadable"),
        (vec![on(), ("TOYGRES_DATA_KEY_FILE", file(&unreadable))], "is missing or unreadable"),
        // A key file named without the flag still means encrypted.
        (vec![("TOYGRES_DATA_KEY_FILE", file(&garbage))], "cannot use the key file"),
        (
            vec![
                on(),
                ("TOYGRES_DATA_KEY_FILE", file(&good.file)),
                ("TOYGRES_SEAL_PROGRAM", "/nonexistent/seal".into()),
            ],
            "/nonexistent/seal is not in this container",
        ),
    ];
    for (env, message) in cases {
        let image = ImageId::new();
        let (dump, upload) = s.backup(image, None, &env);
        assert!(!dump.status.success() && !upload.status.success(), "{message}: both containers end");
        assert!(
            stderr(&upload).contains(message) && stderr(&upload).contains("nothing was moved"),
            "{}",
            stderr(&upload)
        );
        assert!(!s.image_dir(image).exists(), "{message}: something was uploaded");
    }
}
