//! The job scripts as real processes against a real PostgreSQL: the backup job's two containers
//! (`dump` with the source's PostgreSQL binaries, `upload` with the toolbox's) write image format 2
//! (checked by `toygres_core::verify_image`), and the restore job's two (`fetch`, `load`) load it into
//! a new data directory that then holds what the source held (`InstanceSnapshot`), database
//! properties, template1 and a database that refuses connections included. The transfer is
//! configured exactly as a Job's environment would be: a fake copy program on local files, or the
//! real azcopy against Azurite (whose login fails, as it does under RuntimeDefault seccomp). Images
//! are encrypted (toygres-seal, the data key in a file as the job's Secret mounts it): no stored
//! byte shows a row or a password hash of the source; a plaintext image still round trips.

mod pg;

use pg::jobs::{self, BackupPod, Volume};
use pg::{free_port, psql, succeeded, JobKey, Postgres, PASSWORD, PG15};
use std::path::Path;
use toygres_core::manifest::DatabaseSql;
use toygres_core::{verify_image, BlobStore, CommandTransfer, ConnectionInfo, ImageId, ImageLocation, Manifest};
use toygres_core::{ImageFormat, ObjectStoreBlobs, Password, Transfer, VerifyMode};
use toygres_local::fidelity::InstanceSnapshot;
use toygres_local::{ConnParams, PgBinaries};

const SAS: &str = "sig=fake-sas";
const WEIRD_DB: &str = "we\"ird db";
/// A row of the source no stored byte of an encrypted image may show.
const CANARY: &str = "toygres-canary-5d0c9a71-row-that-must-not-leak";

const FAKE_COPY: &str = r#"#!/bin/bash
set -euo pipefail
path() { local p="${1%%\?*}"; printf '%s' "${p#fake://}"; }
case "$1" in
  login) touch "$FAKE_ROOT/logged-in" ;;
  up) mkdir -p "$(dirname "$(path "$2")")"; cat >"$(path "$2")"; printf '%s' "${2#*\?}" >"$FAKE_ROOT/last-query" ;;
  down) cat "$(path "$2")" ;;
esac
"#;

/// Database-level properties of every database, to compare source and restored server.
const DATABASE_PROPERTIES: &str = "SELECT d.datname, pg_get_userbyid(d.datdba), d.datconnlimit, d.datistemplate, \
    d.datallowconn, (SELECT array_agg(a::text ORDER BY a::text) FROM unnest(d.datacl) a), shobj_description(d.oid, 'pg_database'), pg_encoding_to_char(d.encoding), \
    d.datcollate, (SELECT s.setconfig::text FROM pg_db_role_setting s WHERE s.setdatabase = d.oid AND s.setrole = 0) \
    FROM pg_database d ORDER BY 1";

pub struct Fixture {
    pub pg: Postgres,
    pub tmp: tempfile::TempDir,
    pub source_port: u16,
}

impl Fixture {
    /// A PostgreSQL 15 source with roles, an awkwardly named database, template1 and database
    /// properties; `None` without the tools.
    pub fn start() -> Option<Self> {
        let Some(pg) = Postgres::find() else {
            eprintln!("SKIPPED: needs root, the postgres user, PostgreSQL 15, jq and zstd");
            return None;
        };
        let tmp = pg::tempdir();
        let source = pg.dir(&tmp.path().join("source"));
        pg.initdb(PG15, &source.join("data"), &pg::pwfile(&pg, tmp.path()), "");
        let source_port = free_port();
        pg.start(PG15, &source.join("data"), source_port);
        let port = source_port;
        psql(port, "postgres", "CREATE ROLE app LOGIN PASSWORD 'app-pass'");
        psql(port, "postgres", &format!("CREATE DATABASE \"{}\" OWNER app", WEIRD_DB.replace('"', "\"\"")));
        let table =
            "SET ROLE app; CREATE TABLE items AS SELECT g AS id, md5(g::text) AS v FROM generate_series(1, 500) g";
        psql(port, WEIRD_DB, table);
        psql(port, "postgres", "CREATE TABLE notes (t text); INSERT INTO notes VALUES ('hello')");
        psql(port, WEIRD_DB, &format!("SET ROLE app; CREATE TABLE canary AS SELECT '{CANARY}'::text AS t"));
        psql(port, "template1", "CREATE TABLE t1_marker AS SELECT 42 AS answer");
        for sql in [
            "CREATE DATABASE described OWNER app",
            "COMMENT ON DATABASE described IS 'it''s described'",
            "ALTER DATABASE described CONNECTION LIMIT 7",
            "ALTER DATABASE described SET work_mem = '3MB'",
            "REVOKE CONNECT ON DATABASE described FROM PUBLIC",
            "GRANT CONNECT ON DATABASE described TO app",
            "CREATE DATABASE tmpl IS_TEMPLATE true",
            "CREATE DATABASE closed",
        ] {
            psql(port, "postgres", sql);
        }
        psql(port, "closed", "CREATE TABLE kept AS SELECT 'closed rows' AS t");
        psql(port, "postgres", "ALTER DATABASE closed ALLOW_CONNECTIONS false");
        Some(Self { pg, tmp, source_port })
    }

    fn executable(&self, name: &str, content: &[u8]) -> String {
        pg::executable(self.tmp.path(), name, content)
    }

    /// The source's snapshot, with `closed` open for the time it is read.
    async fn snapshot(&self, port: u16) -> InstanceSnapshot {
        psql(port, "postgres", "ALTER DATABASE closed ALLOW_CONNECTIONS true");
        let bin = PgBinaries::at(PG15).unwrap();
        let params = ConnParams { host: "127.0.0.1".into(), port, user: "postgres".into() };
        let snapshot = InstanceSnapshot::take(&bin, &params, &Password::new(PASSWORD)).await.unwrap();
        psql(port, "postgres", "ALTER DATABASE closed ALLOW_CONNECTIONS false");
        snapshot
    }
}

impl Drop for Fixture {
    fn drop(&mut self) {
        self.pg.stop(PG15, &self.tmp.path().join("source/data"));
    }
}

/// Checks the format-2 manifest of the fixture's image.
fn check_manifest(manifest: &Manifest) {
    assert_eq!(manifest.format_version, 2);
    assert_eq!(manifest.pg_version.split('.').next(), Some("15"));
    assert_eq!(manifest.dump_version.as_deref().and_then(|v| v.split('.').next()), Some("15"), "{manifest:?}");
    assert!(manifest.cluster_locale.is_some());
    let names: Vec<&str> = manifest.databases.iter().map(|d| d.name.as_str()).collect();
    assert_eq!(names, ["closed", "described", "postgres", "template1", "tmpl", WEIRD_DB]);
    for object in manifest.objects() {
        assert!(object.raw_size.is_some_and(|r| r > 0), "{object:?}");
    }
    let closed = &manifest.databases[0];
    assert!(!closed.allow_connections);
    assert!(closed.sql.properties.ends_with("ALTER DATABASE closed ALLOW_CONNECTIONS false;\n"), "{:?}", closed.sql);
    let described = &manifest.databases[1];
    assert!(described.sql.create.starts_with("CREATE DATABASE described "), "{:?}", described.sql);
    assert!(described.sql.properties.contains("COMMENT ON DATABASE described IS 'it''s described';"));
}

/// Backs the source up with `transfer` (encrypted under `key`, if any), verifies the image in
/// `blobs` (after `sync` copies it there), restores it into a new data directory and compares the
/// restored server with the source.
async fn round_trip<F, Fut>(
    f: &Fixture,
    image: ImageId,
    transfer: CommandTransfer,
    blobs: &dyn BlobStore,
    sync: F,
    key: Option<&JobKey>,
) where
    F: FnOnce() -> Fut,
    Fut: std::future::Future<Output = ()>,
{
    let (pg, location, dir) = (&f.pg, ImageLocation::for_image(image), f.tmp.path());
    let before = f.snapshot(f.source_port).await;
    // The toolbox may carry any client (here PostgreSQL 18 when installed): the dump runs with the source's.
    let toolbox_bin = pg::pg18().unwrap_or_else(|| "/nonexistent".into());
    let exchange = jobs::exchange(pg, dir, "backup");
    let pod = BackupPod::new(ImageFormat::Logical, key);
    let (dump_log, upload_log) =
        succeeded(pod.run(pg, &transfer, image, f.source_port, (PG15, &toolbox_bin), &exchange));
    let sealed = if key.is_some() { "encrypted" } else { "unencrypted" };
    assert!(upload_log.contains(&format!("(logical, {sealed}) complete")), "{upload_log}");
    let sas = transfer.url_query.as_ref().map(|q| q.expose().to_string()).unwrap_or_else(|| PASSWORD.into());
    for log in [&dump_log, &upload_log] {
        assert!(!log.contains(PASSWORD) && !log.contains(&sas), "{log}");
    }
    assert!(upload_log.contains("toygres-progress: "), "{upload_log}");
    let allow = "SELECT datallowconn FROM pg_database WHERE datname = 'closed'";
    assert_eq!(psql(f.source_port, "postgres", allow), "f", "the source's database refuses connections again");
    sync().await;

    // The image is exactly toygres_core's format: verify it as the control plane does.
    let manifest_bytes = blobs.read(&location, "manifest.json").await.unwrap();
    let checksum = toygres_core::manifest::sha256_hex(&manifest_bytes);
    let data_key = key.map(|k| &k.key);
    let manifest: Manifest = verify_image(blobs, &location, &checksum, data_key, VerifyMode::Full).await.unwrap();
    check_manifest(&manifest);
    if let Some(data_key) = data_key {
        let hash = psql(f.source_port, "postgres", "SELECT rolpassword FROM pg_authid WHERE rolname = 'app'");
        assert!(hash.starts_with("SCRAM-SHA-256$"), "{hash}");
        pg::assert_sealed(blobs, &location, data_key, &[CANARY.to_string(), hash]).await;
    }

    // A wrong checksum is refused before anything is loaded.
    let volume = Volume { key: key.cloned(), ..Volume::new(pg, dir, &image.to_string()) };
    let wrong = format!("sha256:{}", "0".repeat(64));
    let (fetch, load) = jobs::restore(pg, &transfer, image, &wrong, &volume, PG15, &jobs::exchange(pg, dir, "bad"));
    assert!(!fetch.status.success() && !load.status.success(), "both containers end");
    assert!(String::from_utf8_lossy(&fetch.stderr).contains("is corrupted: manifest.json has checksum"));
    assert!(!volume.pgdata().exists());

    let exchange = jobs::exchange(pg, dir, "restore");
    let (fetch_log, load_log) = jobs::restore_ok(pg, &transfer, image, &checksum, &volume, PG15, &exchange);
    assert!(!load_log.contains(PASSWORD) && !fetch_log.contains(&sas));
    assert!(fetch_log.contains("toygres-progress: "), "{fetch_log}");
    assert_eq!(std::fs::read_to_string(volume.marker()).unwrap(), image.to_string());
    use std::os::unix::fs::PermissionsExt;
    assert_eq!(std::fs::metadata(volume.pgdata()).unwrap().permissions().mode() & 0o777, 0o700);
    // A retried job finds the marker and leaves the volume alone.
    jobs::restore_ok(pg, &transfer, image, &checksum, &volume, PG15, &jobs::exchange(pg, dir, "again"));

    let port = free_port();
    pg.start(PG15, &volume.pgdata(), port);
    check_restored(f, port, &before).await;
    pg.stop(PG15, &volume.pgdata());
}

/// The restored server at `port` holds what the source held.
async fn check_restored(f: &Fixture, port: u16, before: &InstanceSnapshot) {
    assert_eq!(psql(port, "postgres", DATABASE_PROPERTIES), psql(f.source_port, "postgres", DATABASE_PROPERTIES));
    let after = f.snapshot(port).await;
    assert!(after.diff(before).is_empty(), "{:?}", after.diff(before));
    assert_eq!(psql(port, "template1", "SELECT answer FROM t1_marker"), "42");
    assert_eq!(psql(port, WEIRD_DB, "SELECT t FROM canary"), CANARY);
    let connection = ConnectionInfo {
        host: "127.0.0.1".into(),
        port,
        user: "app".into(),
        database: WEIRD_DB.into(),
        dns_name: None,
        ssl_mode: None,
    };
    let timeout = std::time::Duration::from_secs(5);
    toygres_k8s::connect::test_connection(&connection, &Password::new("app-pass"), timeout).await.unwrap();
}

/// A fake copy program storing objects under `root`, and a blob store the test copies them into.
fn fake_transfer(f: &Fixture, root: &Path, image: ImageId) -> CommandTransfer {
    CommandTransfer {
        program: f.executable("fake-copy", FAKE_COPY.as_bytes()),
        login: Some(vec!["login".into()]),
        upload_from_stdin: vec!["up".into(), "{url}".into()],
        download_to_stdout: vec!["down".into(), "{url}".into()],
        base_url: format!("fake://{}/{}", root.display(), ImageLocation::for_image(image).prefix),
        url_query: Some(Password::new(SAS)),
        env: vec![("FAKE_ROOT".into(), root.display().to_string())],
        secret_env: vec![],
    }
}

async fn copy_into(blobs: &ObjectStoreBlobs, dir: &Path, location: &ImageLocation) {
    for entry in std::fs::read_dir(dir).unwrap() {
        let entry = entry.unwrap();
        let name = entry.file_name().into_string().unwrap();
        blobs.write(location, &name, std::fs::read(entry.path()).unwrap().into()).await.unwrap();
    }
}

/// An encrypted image (the default) through the fake copy program.
#[tokio::test]
async fn round_trip_with_a_fake_copy_program() {
    let Some(f) = Fixture::start() else { return };
    let key = JobKey::new(&f.pg, f.tmp.path(), "fake");
    fake_round_trip(&f, Some(&key)).await;
}

/// A plaintext image, as images were stored before encryption and still may be: it round trips.
#[tokio::test]
async fn a_plaintext_image_still_round_trips() {
    let Some(f) = Fixture::start() else { return };
    fake_round_trip(&f, None).await;
}

async fn fake_round_trip(f: &Fixture, key: Option<&JobKey>) {
    let root = f.pg.dir(&f.tmp.path().join("blobs"));
    let image = ImageId::new();
    let location = ImageLocation::for_image(image);
    let blobs = ObjectStoreBlobs::in_memory();
    let dir = root.join(&location.prefix);
    let sync = || copy_into(&blobs, &dir, &location);
    round_trip(f, image, fake_transfer(f, &root, image), &blobs, sync, key).await;
    assert!(root.join("logged-in").exists(), "the login step ran");
    assert_eq!(std::fs::read_to_string(root.join("last-query")).unwrap(), SAS);
}

#[tokio::test]
async fn round_trip_with_azcopy_and_azurite() {
    let (Some(url), Some(azcopy)) = azure_tools() else {
        assert_ne!(std::env::var("CI").as_deref(), Ok("true"), "CI needs Azurite and azcopy (.ci/azure.sh)");
        eprintln!("SKIPPED: run `eval \"$(bash .ci/azure.sh)\"` to test the job scripts with azcopy and Azurite");
        return;
    };
    let Some(f) = Fixture::start() else { return };
    let real = f.executable("azcopy-real", &std::fs::read(&azcopy).unwrap());
    // Defect 2: `azcopy login` exits 1 where keyctl is blocked (RuntimeDefault seccomp), while the
    // copies themselves authenticate. This azcopy fails its login exactly so; the jobs must go on.
    let failing_login = format!(
        "#!/bin/bash\nif [[ $1 == login ]]; then echo 'failed to perform login command: keyctl: operation not permitted' >&2; exit 1; fi\nexec '{real}' \"$@\"\n"
    );
    let program = f.executable("azcopy", failing_login.as_bytes());
    let container = format!("k8s-scripts-{}", &ImageId::new().to_string()[..8]);
    let settings = toygres_azure::AzcopySettings { program, ..Default::default() };
    let store = toygres_azure::AzureBlobStore::builder().emulator(&url).container(&container).azcopy(settings);
    let store = store.build().unwrap();
    store.ensure_container().await.unwrap();
    let image = ImageId::new();
    let Transfer::Command(mut transfer) = store.transfer(&ImageLocation::for_image(image)) else { panic!("command") };
    transfer.login = Some(vec!["login".into(), "--login-type=workload".into()]);
    let key = JobKey::new(&f.pg, f.tmp.path(), "azure");
    round_trip(&f, image, transfer, &store, || async {}, Some(&key)).await;
}

/// The script's splitter (awk, in the PostgreSQL image) and `DatabaseSql::from_pg_dump` split the same
/// real `pg_dump --create --schema-only --exclude-schema='*'` output identically.
#[test]
fn the_scripts_splitter_is_database_sql_from_pg_dump() {
    let Some(f) = Fixture::start() else { return };
    psql(f.source_port, "postgres", "COMMENT ON DATABASE described IS 'multi\n-- line\nSET comment'");
    for db in ["described", WEIRD_DB, "postgres", "template1"] {
        let dir = f.pg.dir(&f.tmp.path().join(format!("split-{}", db.len())));
        let script = format!(
            "{}\n{}\nPGDATABASE=\"$DB\" pg_dump -h 127.0.0.1 -p {} -U postgres --create --schema-only --exclude-schema='*' \
             | tee '{d}/dump.sql' | split_database_sql '{d}/create' '{d}/properties'",
            "set -euo pipefail",
            toygres_k8s::render::DATABASE_SQL_SH,
            f.source_port,
            d = dir.display()
        );
        let env = pg::vars(&[("DB", db.to_string()), ("PGPASSWORD", PASSWORD.to_string())]);
        let side = pg::Side { script, env, bin: PG15 };
        let out = succeeded(f.pg.pod(&side, &pg::Side { script: "true".into(), env: vec![], bin: PG15 }));
        drop(out);
        let dump = std::fs::read_to_string(dir.join("dump.sql")).unwrap();
        let rust = DatabaseSql::from_pg_dump(&dump);
        let script = DatabaseSql {
            create: std::fs::read_to_string(dir.join("create")).unwrap(),
            properties: std::fs::read_to_string(dir.join("properties")).unwrap(),
        };
        assert!(!rust.create.is_empty(), "{db}: {dump}");
        assert_eq!(script, rust, "{db}");
    }
}

/// Azurite's URL and azcopy from the environment or the file `.ci/azure.sh` writes, when Azurite answers.
fn azure_tools() -> (Option<String>, Option<String>) {
    let file =
        std::fs::read_to_string(format!("{}/.cache/toygres-azure/env", std::env::var("HOME").unwrap_or_default()))
            .unwrap_or_default();
    let get = |name: &str| {
        std::env::var(name).ok().or_else(|| {
            file.lines()
                .find_map(|l| l.trim().strip_prefix("export ")?.strip_prefix(name)?.strip_prefix('=').map(String::from))
        })
    };
    let url = get("TOYGRES_AZURITE_URL").filter(|u| {
        let host = u.trim_start_matches("http://").trim_end_matches('/').to_string();
        std::net::TcpStream::connect(host).is_ok()
    });
    (url, get("TOYGRES_AZCOPY").filter(|p| Path::new(p).is_file()))
}
