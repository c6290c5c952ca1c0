//! What a user would run by hand, timed the same way: `pg_dump -Fc` to a file, and
//! `initdb + start + pg_restore -j2` into a new cluster.

use std::path::Path;
use std::time::{Duration, Instant};
use toygres_core::Password;
use toygres_local::cluster::{ports::free_port, process::run};
use toygres_local::{LocalCluster, PgBinaries, ServerUser};

type BoxResult<T> = Result<T, Box<dyn std::error::Error>>;

/// `pg_dump -Fc -f <file> <database>` against `source`; returns the time taken and the file size.
pub async fn pg_dump(
    source: &LocalCluster,
    password: &Password,
    database: &str,
    file: &Path,
) -> BoxResult<(Duration, u64)> {
    let started = Instant::now();
    let mut cmd = source.client("pg_dump", password);
    cmd.arg("--format=custom").arg("--file").arg(file).arg(database);
    run(cmd, "pg_dump", &[password.expose()]).await?;
    let elapsed = started.elapsed();
    Ok((elapsed, std::fs::metadata(file)?.len()))
}

/// `initdb` + `pg_ctl start` + `createdb` + `pg_restore -j2` of `file` into a brand-new cluster under
/// `dir`, ready for connections at the end (as a naive user would do it, default settings).
pub async fn pg_restore(dir: &Path, password: &Password, database: &str, file: &Path) -> BoxResult<Duration> {
    let cluster = LocalCluster::new(PgBinaries::discover(None)?, ServerUser::resolve("postgres")?, dir, free_port()?);
    let started = Instant::now();
    cluster.init(password).await?;
    cluster.start(&[]).await?;
    let mut create = cluster.client("createdb", password);
    create.arg(database);
    run(create, "createdb", &[password.expose()]).await?;
    let mut restore = cluster.client("pg_restore", password);
    restore.arg("--jobs=2").arg("--dbname").arg(database).arg(file);
    run(restore, "pg_restore", &[password.expose()]).await?;
    let elapsed = started.elapsed();
    cluster.destroy().await?;
    Ok(elapsed)
}
