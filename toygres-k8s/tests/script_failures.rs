//! The job scripts when something fails or the image is old, as real processes: a failing side ends
//! the other (no pod waits for its deadline), the source's database that refuses connections refuses
//! them again, and a format-1 image still restores.

mod pg;

use pg::jobs::{self, Volume};
use pg::{free_port, psql, succeeded, Server15, PG15};
use std::path::PathBuf;
use toygres_core::{CommandTransfer, ImageId, ImageLocation};

const FAKE_COPY: &str = r#"#!/bin/bash
set -euo pipefail
path() { printf '%s' "${1#fake://}"; }
case "$1" in
  up) [[ "$2" != *"$FAIL_ON"* ]] || { echo "403 AuthorizationPermissionMismatch" >&2; exit 1; }
      mkdir -p "$(dirname "$(path "$2")")"; cat >"$(path "$2")" ;;
  down) cat "$(path "$2")" ;;
esac
"#;

/// The PostgreSQL 15 source of these tests.
type Source = Server15;

impl Source {
    fn start() -> Option<Self> {
        let server = Server15::create(|_, _, _| ())?;
        psql(server.port, "postgres", "CREATE DATABASE app");
        psql(server.port, "app", "CREATE TABLE t AS SELECT g AS id FROM generate_series(1, 300) g");
        psql(server.port, "postgres", "CREATE DATABASE closed");
        psql(server.port, "postgres", "ALTER DATABASE closed ALLOW_CONNECTIONS false");
        Some(server)
    }

    fn transfer(&self, image: ImageId, fail_on: &str) -> CommandTransfer {
        let dir = self.dir();
        CommandTransfer {
            program: pg::executable(dir, "fake-copy", FAKE_COPY.as_bytes()),
            login: None,
            upload_from_stdin: vec!["up".into(), "{url}".into()],
            download_to_stdout: vec!["down".into(), "{url}".into()],
            base_url: format!("fake://{}/blobs/{}", dir.display(), ImageLocation::for_image(image).prefix),
            url_query: None,
            env: vec![("FAIL_ON".into(), fail_on.into())],
            secret_env: vec![],
        }
    }

    fn image_dir(&self, image: ImageId) -> PathBuf {
        self.dir().join("blobs").join(ImageLocation::for_image(image).prefix)
    }
}

#[test]
fn a_failed_upload_ends_the_dump_and_the_source_refuses_connections_again() {
    let Some(s) = Source::start() else { return };
    let image = ImageId::new();
    let t = s.transfer(image, "db-0001");
    let start = std::time::Instant::now();
    let (dump, upload) = jobs::backup(&s.pg, &t, image, s.port, (PG15, PG15), &jobs::exchange(&s.pg, s.dir(), "b"));
    assert!(!dump.status.success() && !upload.status.success(), "both containers fail");
    assert!(start.elapsed() < std::time::Duration::from_secs(60), "{:?}", start.elapsed());
    assert!(String::from_utf8_lossy(&upload.stderr).contains("AuthorizationPermissionMismatch"));
    assert!(String::from_utf8_lossy(&dump.stderr).contains("the upload container failed"));
    assert_eq!(psql(s.port, "postgres", "SELECT datallowconn FROM pg_database WHERE datname = 'closed'"), "f");
    assert!(!s.image_dir(image).join("manifest.json").exists(), "no manifest: the image is incomplete");
}

#[test]
fn a_format_1_image_still_restores() {
    let Some(s) = Source::start() else { return };
    let image = ImageId::new();
    let t = s.transfer(image, "never");
    succeeded(jobs::backup(&s.pg, &t, image, s.port, (PG15, PG15), &jobs::exchange(&s.pg, s.dir(), "b")));
    // The manifest as format 1 wrote it: non-template databases that accept connections, no SQL.
    let path = s.image_dir(image).join("manifest.json");
    let mut m: serde_json::Value = serde_json::from_slice(&std::fs::read(&path).unwrap()).unwrap();
    let keep = ["app", "postgres"];
    let dbs: Vec<serde_json::Value> = m["databases"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|d| keep.contains(&d["name"].as_str().unwrap()))
        .map(|d| {
            serde_json::json!({"name": d["name"], "owner": d["owner"],
            "object": {"name": d["object"]["name"], "size": d["object"]["size"], "sha256": d["object"]["sha256"]}})
        })
        .collect();
    m["databases"] = serde_json::Value::Array(dbs);
    m["format_version"] = 1.into();
    for key in ["cluster_locale", "dump_version", "format"] {
        m.as_object_mut().unwrap().remove(key);
    }
    let bytes = serde_json::to_vec(&m).unwrap();
    toygres_core::Manifest::from_bytes(image, &bytes).unwrap();
    std::fs::write(&path, &bytes).unwrap();
    let volume = Volume::new(&s.pg, s.dir(), "v1");
    let sum = toygres_core::manifest::sha256_hex(&bytes);
    jobs::restore_ok(&s.pg, &t, image, &sum, &volume, PG15, &jobs::exchange(&s.pg, s.dir(), "r"));
    let port = free_port();
    s.pg.start(PG15, &volume.pgdata(), port);
    assert_eq!(psql(port, "app", "SELECT count(*) FROM t"), "300");
    s.pg.stop(PG15, &volume.pgdata());
}

/// `RestoreJobSpec::databases`: only the chosen databases are fetched and loaded; the roles always.
#[test]
fn a_restore_of_some_databases_loads_only_those() {
    let Some(s) = Source::start() else { return };
    psql(s.port, "postgres", "CREATE ROLE reader LOGIN");
    let image = ImageId::new();
    let t = s.transfer(image, "never");
    succeeded(jobs::backup(&s.pg, &t, image, s.port, (PG15, PG15), &jobs::exchange(&s.pg, s.dir(), "b")));
    let bytes = std::fs::read(s.image_dir(image).join("manifest.json")).unwrap();
    let mut volume = Volume::new(&s.pg, s.dir(), "subset");
    volume.databases = Some(r#"["app"]"#.into());
    let sum = toygres_core::manifest::sha256_hex(&bytes);
    let (fetch, _) = jobs::restore_ok(&s.pg, &t, image, &sum, &volume, PG15, &jobs::exchange(&s.pg, s.dir(), "r"));
    assert!(fetch.contains(r#"restoring only the databases ["app"]"#), "{fetch}");
    let port = free_port();
    s.pg.start(PG15, &volume.pgdata(), port);
    assert_eq!(psql(port, "app", "SELECT count(*) FROM t"), "300");
    assert_eq!(psql(port, "postgres", "SELECT count(*) FROM pg_database WHERE datname = 'closed'"), "0");
    assert_eq!(psql(port, "postgres", "SELECT count(*) FROM pg_roles WHERE rolname = 'reader'"), "1");
    s.pg.stop(PG15, &volume.pgdata());
}
