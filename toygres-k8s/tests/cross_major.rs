//! Defect 1, with two PostgreSQL majors on one machine (Debian's 15, 18 from `.ci/pg18.sh`): an
//! archive of a newer pg_dump cannot be read by an older pg_restore, so the backup job dumps with the
//! source's own binaries (the `dump` container runs the source's image) whatever client the toolbox
//! carries, a restore onto a newer major works, and one onto an older major is refused up front.

mod pg;

use pg::jobs::{self, Volume};
use pg::{free_port, psql, succeeded, JobKey, Postgres, PG15};
use std::path::Path;
use std::process::Command;
use toygres_core::ImageId;

/// A started server of `bin` with a table of 300 rows in database `app`.
fn source(pg: &Postgres, dir: &Path, bin: &str, name: &str) -> (u16, std::path::PathBuf) {
    let data = pg.dir(&dir.join(name)).join("data");
    pg.initdb(bin, &data, &pg::pwfile(pg, dir), "");
    let port = free_port();
    pg.start(bin, &data, port);
    psql(port, "postgres", "CREATE DATABASE app");
    psql(port, "app", "CREATE TABLE t AS SELECT g AS id FROM generate_series(1, 300) g");
    (port, data)
}

fn checksum(dir: &Path, image: ImageId) -> String {
    let manifest = pg::image_dir(dir, image).join("manifest.json");
    toygres_core::manifest::sha256_hex(&std::fs::read(manifest).unwrap())
}

#[tokio::test]
async fn dumps_use_the_sources_major_and_restores_refuse_an_older_one() {
    let (Some(pg), Some(pg18)) = (Postgres::find(), pg::pg18()) else {
        eprintln!("SKIPPED: needs the postgres user, PostgreSQL 15 and 18 (`eval \"$(bash .ci/pg18.sh)\"`)");
        return;
    };
    let tmp = pg::tempdir();
    let dir = tmp.path();
    pg.dir(&dir.join("blobs"));
    let (port15, data15) = source(&pg, dir, PG15, "source15");

    // What the jobs did before: the toolbox's newer pg_dump; the target's pg_restore 15 refuses it.
    let archive = dir.join("newer.dump");
    let dumped = Command::new(format!("{pg18}/pg_dump"))
        .args(["-Fc", "-h", "127.0.0.1", "-p", &port15.to_string(), "-U", "postgres", "-d", "app", "-f"])
        .arg(&archive)
        .env("PGPASSWORD", pg::PASSWORD)
        .output()
        .unwrap();
    assert!(dumped.status.success(), "{}", String::from_utf8_lossy(&dumped.stderr));
    let listed = Command::new(format!("{PG15}/pg_restore")).arg("-l").arg(&archive).output().unwrap();
    assert!(!listed.status.success());
    assert!(String::from_utf8_lossy(&listed.stderr).contains("unsupported version"), "{listed:?}");

    // The backup job: `dump` with the source's binaries (15), the toolbox with 18 first on PATH.
    // Encrypted, as images are by default: the 18 restore opens what a 15 source's job sealed.
    let image = ImageId::new();
    let t = pg::fake_transfer(dir, image);
    let key = JobKey::new(&pg, dir, "cross");
    let pod = jobs::BackupPod::new(toygres_core::ImageFormat::Logical, Some(&key));
    succeeded(pod.run(&pg, &t, image, port15, (PG15, &pg18), &jobs::exchange(&pg, dir, "b15")));
    let sum = checksum(dir, image);
    let manifest = std::fs::read(pg::image_dir(dir, image).join("manifest.json")).unwrap();
    assert!(manifest.starts_with(toygres_core::envelope::object::MAGIC), "the manifest is stored sealed");
    // Restored by 15 (the same major) and by 18 (a newer one).
    for (name, bin) in [("on15", PG15), ("on18", pg18.as_str())] {
        let mut volume = Volume::new(&pg, dir, name);
        volume.key = Some(key.clone());
        jobs::restore_ok(&pg, &t, image, &sum, &volume, bin, &jobs::exchange(&pg, dir, name));
        let port = free_port();
        pg.start(bin, &volume.pgdata(), port);
        assert_eq!(psql(port, "app", "SELECT count(*) FROM t"), "300", "{name}");
        pg.stop(bin, &volume.pgdata());
    }
    pg.stop(PG15, &data15);

    // An image of an 18 source, dumped with 18, is refused by a 15 load before anything is initialised.
    let (port18, data18) = source(&pg, dir, &pg18, "source18");
    let image = ImageId::new();
    let t = pg::fake_transfer(dir, image);
    succeeded(jobs::backup(&pg, &t, image, port18, (&pg18, PG15), &jobs::exchange(&pg, dir, "b18")));
    pg.stop(&pg18, &data18);
    let volume = Volume::new(&pg, dir, "refused");
    let (fetch, load) =
        jobs::restore(&pg, &t, image, &checksum(dir, image), &volume, PG15, &jobs::exchange(&pg, dir, "r"));
    assert!(!fetch.status.success() && !load.status.success());
    let log = String::from_utf8_lossy(&load.stderr);
    assert!(log.contains("dumped by PostgreSQL 18, newer than this image's pg_restore (15)"), "{log}");
    assert!(!volume.pgdata().exists());
}
