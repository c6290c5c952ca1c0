//! The raw PostgreSQL side of the point-in-time bench, what a user would set up by hand: a plain
//! WAL archive (`archive_command` copying each segment into a local directory, uncompressed), a
//! `pg_basebackup -Ft -X fetch` of the source taken next to toygres's base image, and a restore
//! that untars it into a new data directory with `recovery.signal` and
//! `restore_command = 'cp <archive>/%f %p'`, starts it with `pg_ctl` and waits until recovery
//! has replayed the whole archive and the server accepts writes.
//!
//! Only one `archive_command` can be set, so the source's runs a small script that copies the
//! segment for this side and then hands it to `pgbackrest archive-push` for the pgBackRest side
//! (named so: `pgbackrest backup` refuses an `archive_command` without "pgbackrest" in it).
//! Also: the pgBackRest restore, which needs the same wait and check ([`pgbackrest_restore`]).

use crate::BoxResult;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};
use toygres_core::Password;
use toygres_local::cluster::{create_traversable_dir, ports::free_port, process::run};
use toygres_local::{LocalCluster, ServerUser};

/// pgBackRest's stanza in `examples/bench/pgbackrest.rs`.
const STANZA: &str = "bench";

/// The plain archive and base backup of one source, under one directory its server user owns.
pub struct Plain {
    source: LocalCluster,
    password: Password,
    dir: PathBuf,
}

impl Plain {
    /// Creates `dir` (owned by the source's server user) with the archive in `dir/wal`, and sets
    /// the source's `archive_command` (archiving is already on: pgBackRest's setup restarted it)
    /// to a script copying each segment there, then pushing it with pgBackRest's config
    /// `pgbackrest_conf`; reloads the source.
    pub async fn setup(
        source: &LocalCluster,
        password: &Password,
        dir: &Path,
        pgbackrest_conf: &Path,
    ) -> BoxResult<Self> {
        let user = source.server_user();
        user.create_owned_dir(dir, 0o700)?;
        user.create_owned_dir(&dir.join("wal"), 0o700)?;
        let script = dir.join("cp-then-pgbackrest-archive-push.sh");
        let wal = dir.join("wal");
        let text = format!(
            "#!/bin/sh\n# archive_command: $1 = %p, $2 = %f\nset -e\ncp \"$1\" '{w}/'\"$2\".tmp\nmv '{w}/'\"$2\".tmp \
             '{w}/'\"$2\"\nexec pgbackrest --config='{c}' --stanza={STANZA} archive-push \"$1\"\n",
            w = wal.display(),
            c = pgbackrest_conf.display()
        );
        user.write_private_file(&script, text.as_bytes())?;
        toygres_local::cluster::set_mode(&script, 0o700)?;
        let client = source.connect("postgres", password).await?;
        let command = format!("{} %p %f", script.display()).replace('\'', "''");
        client.batch_execute(&format!("ALTER SYSTEM SET archive_command = '{command}'")).await?;
        client.batch_execute("SELECT pg_reload_conf()").await?;
        Ok(Self { source: source.clone(), password: password.clone(), dir: dir.to_path_buf() })
    }

    /// `pg_basebackup -Ft -X fetch -c fast` of the source into `dir/base` (as its server user);
    /// its time and size.
    pub async fn base_backup(&self) -> BoxResult<(Duration, u64)> {
        let base = self.dir.join("base");
        let mut cmd = self.source.client("pg_basebackup", &self.password);
        self.source.server_user().apply(&mut cmd);
        cmd.current_dir(&self.dir).args(["-Ft", "-X", "fetch", "-c", "fast", "--no-sync", "-D"]).arg(&base);
        let started = Instant::now();
        run(cmd, "pg_basebackup", &[self.password.expose()]).await?;
        let elapsed = started.elapsed();
        Ok((elapsed, crate::level::dir_size(&base)?))
    }

    /// The archive's segments and their bytes.
    pub fn archived(&self) -> BoxResult<(usize, u64)> {
        let wal = self.dir.join("wal");
        let files: Vec<_> = std::fs::read_dir(&wal)?.filter_map(|e| e.ok()).collect();
        Ok((files.len(), crate::level::dir_size(&wal)?))
    }

    /// Untars the base backup into a new cluster under `dir`, recovers it from the archive until
    /// it accepts writes, timed; then, untimed, checks `database` holds `history` pgbench history
    /// rows, and removes it.
    pub async fn restore(&self, dir: &Path, (database, history): (&str, i64)) -> BoxResult<Duration> {
        let user = self.source.server_user();
        let cluster = LocalCluster::new(self.source.binaries().clone(), user.clone(), dir, free_port()?);
        let started = Instant::now();
        create_dirs(&cluster, user)?;
        let result = async {
            let data = cluster.data_dir();
            let mut untar = cluster.command_as_server_user("tar");
            untar.arg("-xf").arg(self.dir.join("base/base.tar")).arg("-C").arg(&data);
            run(untar, "tar -x base.tar", &[]).await?;
            append(
                &data.join("postgresql.auto.conf"),
                &format!(
                    "\n# plain point-in-time restore\narchive_mode = off\nrestore_command = 'cp \"{}/%f\" \"%p\"'\n",
                    self.dir.join("wal").display()
                ),
            )?;
            user.write_private_file(&data.join("recovery.signal"), b"")?;
            cluster.write_conf()?;
            cluster.start(&[]).await?;
            crate::pgbackrest::wait_writable(&cluster, &self.password, "raw").await?;
            let elapsed = started.elapsed();
            check(&cluster, &self.password, database, history, "the raw restore").await?;
            Ok(elapsed)
        }
        .await;
        cluster.destroy().await?;
        result
    }
}

/// `pgbackrest restore` (default type: replay to the end of the archive, then promote) of the
/// latest backup into a new cluster under `dir`, started and waited for until it accepts writes,
/// timed like [`Plain::restore`] and checked the same way. `conf` is the config the bench's
/// pgBackRest setup wrote for `source` (whose server user runs everything).
pub async fn pgbackrest_restore(
    source: &LocalCluster,
    password: &Password,
    conf: &Path,
    dir: &Path,
    (database, history): (&str, i64),
) -> BoxResult<Duration> {
    let user = source.server_user();
    let cluster = LocalCluster::new(source.binaries().clone(), user.clone(), dir, free_port()?);
    let started = Instant::now();
    create_dirs(&cluster, user)?;
    let result = async {
        let mut cmd = tokio::process::Command::new("pgbackrest");
        user.apply(&mut cmd);
        cmd.current_dir(conf.parent().ok_or("config has no directory")?);
        cmd.env("PGPASSWORD", password.expose()).env_remove("PGPASSFILE");
        cmd.arg(format!("--config={}", conf.display())).arg(format!("--stanza={STANZA}"));
        // archive-mode=off: the restored server must not push its new timeline into the repository.
        cmd.arg(format!("--pg1-path={}", cluster.data_dir().display())).arg("--archive-mode=off").arg("restore");
        run(cmd, "pgbackrest restore", &[password.expose()]).await?;
        cluster.write_conf()?;
        cluster.start(&[]).await?;
        crate::pgbackrest::wait_writable(&cluster, password, "pgBackRest").await?;
        let elapsed = started.elapsed();
        check(&cluster, password, database, history, "pgBackRest's restore").await?;
        Ok(elapsed)
    }
    .await;
    cluster.destroy().await?;
    result
}

/// The directories of a new cluster, owned by `user`, its data directory empty.
fn create_dirs(cluster: &LocalCluster, user: &ServerUser) -> BoxResult<()> {
    create_traversable_dir(cluster.dir())?;
    user.create_owned_dir(&cluster.data_dir(), 0o700)?;
    user.create_owned_dir(&cluster.socket_dir(), 0o700)?;
    user.create_owned_dir(cluster.log_file().parent().ok_or("log file has no directory")?, 0o700)?;
    Ok(())
}

fn append(file: &Path, text: &str) -> BoxResult<()> {
    use std::io::Write;
    let mut f = std::fs::OpenOptions::new().append(true).open(file).map_err(|e| format!("{}: {e}", file.display()))?;
    Ok(f.write_all(text.as_bytes())?)
}

/// `SELECT count(*) FROM pgbench_history` in `database` of `cluster`.
pub async fn history(cluster: &LocalCluster, password: &Password, database: &str) -> BoxResult<i64> {
    let client = cluster.connect(database, password).await?;
    Ok(client.query_one("SELECT count(*) FROM pgbench_history", &[]).await?.get(0))
}

async fn check(cluster: &LocalCluster, password: &Password, database: &str, want: i64, who: &str) -> BoxResult<()> {
    let rows = history(cluster, password, database).await?;
    if rows != want {
        return Err(format!("{who} holds {rows} pgbench_history rows, the source had {want}").into());
    }
    Ok(())
}
