//! TLS and scram-sha-256 on a real PostgreSQL 15 configured as an instance of the Kubernetes
//! executor (the rendered ConfigMap's postgresql.conf and pg_hba.conf, a generated certificate
//! laid out as the pod's secret volume holds it): the connection test succeeds over TLS and can
//! pin the instance's certificate; plaintext connections and roles with MD5 hashes are refused;
//! a server without TLS fails the test with the reason; the restore's load gives a superuser whose
//! source hash is MD5 its password back as SCRAM, and names the other roles with MD5 hashes.

mod pg;

use pg::jobs::{self, Volume};
use pg::physical::{instance_config, Source};
use pg::{free_port, psql, succeeded, Server15, PASSWORD, PG15};
use std::time::Duration;
use toygres_core::manifest::sha256_hex;
use toygres_core::{ConnectionInfo, ImageId, Password};
use toygres_k8s::connect::{test_connection, test_connection_with, ServerTrust};
use toygres_k8s::tls::ServerCertificate;

const TIMEOUT: Duration = Duration::from_secs(5);

fn connection(port: u16, user: &str, ssl_mode: &str) -> ConnectionInfo {
    ConnectionInfo {
        host: "127.0.0.1".into(),
        port,
        user: user.into(),
        database: "postgres".into(),
        dns_name: None,
        ssl_mode: Some(ssl_mode.into()),
    }
}

async fn login(port: u16, user: &str, password: &str) -> toygres_core::Result<()> {
    test_connection(&connection(port, user, "require"), &Password::new(password), TIMEOUT).await
}

#[tokio::test]
async fn instances_accept_tls_connections_with_scram_only() {
    let Some(s) = Source::start() else { return };
    assert_eq!(psql(s.port, "postgres", "SHOW ssl"), "on");
    assert_eq!(psql(s.port, "postgres", "SHOW password_encryption"), "scram-sha-256");
    login(s.port, "postgres", PASSWORD).await.unwrap();
    login(s.port, "app", "app-pass").await.unwrap();
    let encrypted = "SELECT count(*) FROM pg_stat_ssl s JOIN pg_stat_activity a USING (pid) WHERE s.ssl AND \
                     a.application_name = 'psql' AND a.usename = 'postgres'";
    assert_eq!(psql(s.port, "postgres", encrypted), "1", "psql's own session (libpq's default sslmode) is encrypted");

    // Pinned to the instance's own certificate (the Secret's tls.crt) it passes; to another, not.
    let pem = std::fs::read_to_string(s.dir().join("config-tls/tls.crt")).unwrap();
    let own = ServerTrust::pinned_pem(&pem).unwrap();
    let as_postgres = connection(s.port, "postgres", "require");
    test_connection_with(&as_postgres, &Password::new(PASSWORD), TIMEOUT, &own).await.unwrap();
    let other = ServerCertificate::self_signed(&["localhost".to_string()]).unwrap();
    let other = ServerTrust::pinned_pem(&other.cert_pem).unwrap();
    let wrong = test_connection_with(&as_postgres, &Password::new(PASSWORD), TIMEOUT, &other).await.unwrap_err();
    assert!(wrong.to_string().contains("certificate"), "{wrong}");

    // What docs/azure-aks-tls.md tells clients: libpq's verify-full against the Secret's tls.crt.
    let conninfo = format!(
        "host=localhost port={} user=postgres dbname=postgres sslmode=verify-full sslrootcert={}",
        s.port,
        s.dir().join("config-tls/tls.crt").display()
    );
    let out = std::process::Command::new(format!("{PG15}/psql"))
        .args(["-X", "-At", "-c", "SELECT ssl FROM pg_stat_ssl WHERE pid = pg_backend_pid()", &conninfo])
        .env("PGPASSWORD", PASSWORD)
        .output()
        .unwrap();
    assert_eq!(String::from_utf8_lossy(&out.stdout).trim(), "t", "{}", String::from_utf8_lossy(&out.stderr));

    // Plaintext: no pg_hba.conf entry, whatever the password.
    let plain = test_connection(&connection(s.port, "postgres", "disable"), &Password::new(PASSWORD), TIMEOUT).await;
    let plain = plain.unwrap_err().to_string();
    assert!(plain.contains("no pg_hba.conf entry") && plain.contains("no encryption"), "{plain}");
    assert!(plain.contains("connect with sslmode=require") && !plain.contains(PASSWORD), "{plain}");
    let mut raw = tokio_postgres::Config::new();
    raw.host("127.0.0.1").port(s.port).user("postgres").dbname("postgres").password(PASSWORD);
    assert!(raw.connect(tokio_postgres::NoTls).await.is_err(), "a NoTls connection is refused");

    // MD5 hashes cannot log in (scram-sha-256 only), even with the right password.
    let hash = psql(s.port, "postgres", "SELECT left(rolpassword, 3) FROM pg_authid WHERE rolname = 'old_app'");
    assert_eq!(hash, "md5");
    let md5 = login(s.port, "old_app", "md5-pass").await.unwrap_err().to_string();
    assert!(md5.contains("password authentication failed") && !md5.contains("md5-pass"), "{md5}");
    // A SCRAM role with a wrong password fails, and the error never shows the password tried.
    let wrong = login(s.port, "app", "not-the-pass").await.unwrap_err().to_string();
    assert!(!wrong.contains("not-the-pass"), "{wrong}");
}

#[tokio::test]
async fn a_server_without_tls_fails_the_connection_test_with_the_reason() {
    let Some(s) = Server15::create(|_, _, _| ()) else { return };
    let error = login(s.port, "postgres", PASSWORD).await.unwrap_err().to_string();
    assert!(error.contains("does not support TLS") && error.contains("ssl = on"), "{error}");
    // A connection without a stated mode (a record stored before TLS) still connects, in plaintext.
    let mut unstated = connection(s.port, "postgres", "prefer");
    unstated.ssl_mode = None;
    test_connection(&unstated, &Password::new(PASSWORD), TIMEOUT).await.unwrap();
}

/// A source whose superuser (and another role) has an MD5 hash: the restored instance's
/// superuser logs in with the image's password over TLS (stored as SCRAM again), the other role
/// is named in the load's log and cannot log in.
#[tokio::test]
async fn the_load_stores_an_md5_superuser_as_scram_and_names_the_md5_roles() {
    let Some(s) = Server15::create(|_, _, data| {
        // The source accepts MD5, as an older server did.
        std::fs::write(data.join("pg_hba.conf"), "local all all trust\nhost all all 127.0.0.1/32 md5\n").unwrap();
    }) else {
        return;
    };
    psql(s.port, "postgres", &format!("SET password_encryption = 'md5'; ALTER ROLE postgres PASSWORD '{PASSWORD}'"));
    psql(s.port, "postgres", "SET password_encryption = 'md5'; CREATE ROLE old_app LOGIN PASSWORD 'md5-pass'");
    psql(s.port, "postgres", "CREATE ROLE app LOGIN PASSWORD 'app-pass'");
    psql(s.port, "postgres", "CREATE TABLE notes AS SELECT 'hello' AS t");
    let superuser = "SELECT left(rolpassword, 14) FROM pg_authid WHERE rolname = 'postgres'";
    assert_eq!(&psql(s.port, "postgres", superuser)[..3], "md5");

    let image = ImageId::new();
    let transfer = pg::fake_transfer(s.dir(), image);
    let exchange = jobs::exchange(&s.pg, s.dir(), "backup");
    succeeded(jobs::backup(&s.pg, &transfer, image, s.port, (PG15, "/nonexistent"), &exchange));
    let checksum = sha256_hex(&std::fs::read(pg::image_dir(s.dir(), image).join("manifest.json")).unwrap());
    let volume = Volume { config: instance_config(&s.pg, s.dir()), ..Volume::new(&s.pg, s.dir(), "restored") };
    let exchange = jobs::exchange(&s.pg, s.dir(), "restore");
    let (_, load_log) = jobs::restore_ok(&s.pg, &transfer, image, &checksum, &volume, PG15, &exchange);
    assert!(load_log.contains("storing the image's password as SCRAM"), "{load_log}");
    assert!(load_log.contains("WARNING: role(s) old_app came with MD5 password hashes"), "{load_log}");
    assert!(!load_log.contains(PASSWORD), "{load_log}");

    // The restored server, as the pod runs it: the instance's configuration, TLS on.
    let port = free_port();
    s.pg.start(PG15, &volume.pgdata(), port);
    let _stop = Stop(&s.pg, volume.pgdata());
    assert_eq!(psql(port, "postgres", "SHOW ssl"), "on");
    assert_eq!(psql(port, "postgres", superuser), "SCRAM-SHA-256$");
    assert_eq!(psql(port, "postgres", "SELECT t FROM notes"), "hello");
    login(port, "postgres", PASSWORD).await.unwrap();
    login(port, "app", "app-pass").await.unwrap();
    let md5 = login(port, "old_app", "md5-pass").await.unwrap_err().to_string();
    assert!(md5.contains("password authentication failed"), "{md5}");
}

/// Stops the server of a data directory when dropped, also when an assertion fails.
struct Stop<'a>(&'a pg::Postgres, std::path::PathBuf);

impl Drop for Stop<'_> {
    fn drop(&mut self) {
        self.0.stop(PG15, &self.1);
    }
}
