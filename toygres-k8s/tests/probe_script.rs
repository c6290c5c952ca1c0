//! The in-cluster connection test's script (`templates/probe.sh`) against a real PostgreSQL 15:
//! it connects only over TLS (`sslmode=require`: a server without TLS is refused), with the
//! password of the mounted file, `:` and `\` in it escaped for the pgpass file; a wrong password
//! fails with the server's error.

mod pg;

use pg::{free_port, Postgres, Side, PASSWORD, PG15};
use std::os::unix::fs::PermissionsExt;
use std::path::Path;
use std::process::Output;

/// Runs the probe against 127.0.0.1:`port` with the password in `password_file`.
fn probe(pg: &Postgres, port: u16, password_file: &Path) -> Output {
    let env = pg::vars(&[
        ("PGHOST", "127.0.0.1".into()),
        ("PGPORT", port.to_string()),
        ("PGUSER", "postgres".into()),
        ("PGDATABASE", "postgres".into()),
        ("PGSSLMODE", "require".into()),
        ("PGCONNECT_TIMEOUT", "5".into()),
        ("TOYGRES_PROBE_PASSWORD_FILE", password_file.display().to_string()),
    ]);
    let side = Side { script: toygres_k8s::render::PROBE_SH.into(), env, bin: PG15 };
    pg.pod(&side, &Side { script: "true".into(), env: vec![], bin: PG15 }).0
}

fn text(out: &Output) -> String {
    format!("{}{}", String::from_utf8_lossy(&out.stdout), String::from_utf8_lossy(&out.stderr))
}

#[test]
fn the_probe_connects_only_over_tls_with_the_password_of_its_file() {
    let Some(pg) = Postgres::find() else { return };
    let dir = tempfile::tempdir().unwrap();
    let root = pg.dir(dir.path());
    std::fs::set_permissions(&root, std::fs::Permissions::from_mode(0o755)).unwrap();
    let (data, pwfile) = (root.join("data"), root.join("pw"));
    std::fs::write(&pwfile, PASSWORD).unwrap();
    std::os::unix::fs::chown(&pwfile, Some(pg.uid), Some(pg.gid)).unwrap();
    pg.initdb(PG15, &data, &pwfile, "");
    let port = free_port();
    pg.start(PG15, &data, port);

    let weird = "Pr0be:with\\back:slash";
    let password_file = root.join("password");
    std::fs::write(&password_file, weird).unwrap();
    std::os::unix::fs::chown(&password_file, Some(pg.uid), Some(pg.gid)).unwrap();
    let plain = probe(&pg, port, &password_file);
    assert!(!plain.status.success(), "a server without TLS passed: {}", text(&plain));
    assert!(text(&plain).contains("SSL"), "{}", text(&plain));

    let cert = rcgen::generate_simple_self_signed(vec!["127.0.0.1".into()]).unwrap();
    for (name, pem) in [("server.crt", cert.cert.pem()), ("server.key", cert.signing_key.serialize_pem())] {
        let path = data.join(name);
        std::fs::write(&path, pem).unwrap();
        std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o600)).unwrap();
        std::os::unix::fs::chown(&path, Some(pg.uid), Some(pg.gid)).unwrap();
    }
    pg::psql(port, "postgres", "ALTER SYSTEM SET ssl = on");
    pg::psql(port, "postgres", "SELECT pg_reload_conf()");
    std::thread::sleep(std::time::Duration::from_millis(500));
    pg::psql(port, "postgres", &format!("ALTER ROLE postgres PASSWORD '{weird}'"));

    let tls = probe(&pg, port, &password_file);
    assert!(tls.status.success(), "{}", text(&tls));
    assert!(text(&tls).contains("over TLS; SELECT 1 answered"), "{}", text(&tls));

    std::fs::write(&password_file, "Pr0be:with\\back").unwrap();
    let wrong = probe(&pg, port, &password_file);
    assert!(!wrong.status.success());
    assert!(text(&wrong).contains("password authentication failed"), "{}", text(&wrong));
    pg.stop(PG15, &data);
}
