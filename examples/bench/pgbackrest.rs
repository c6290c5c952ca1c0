//! pgBackRest, the physical backup tool a user would pick instead of toygres, timed on the same
//! source: a full backup (zst, `process-max=2`) into a repository on the local disk, and a restore
//! of the latest backup into a new data directory, started and recovered until it accepts writes.
//!
//! Needs the `pgbackrest` binary (Debian: `apt-get install pgbackrest`). Every pgBackRest command
//! runs as the server's OS user with the superuser's password in `PGPASSWORD` (never in argv).
//! Shared by the benches (`examples/bench` and, through `#[path]`, `examples/bench_clones`).

use std::path::{Path, PathBuf};
use std::sync::Mutex;
use std::time::{Duration, Instant};
use toygres_core::Password;
use toygres_local::cluster::{create_traversable_dir, ports::free_port, process::run};
use toygres_local::{LocalCluster, ServerUser};

type BoxResult<T> = Result<T, Box<dyn std::error::Error>>;

/// The stanza (pgBackRest's name for one cluster's backups).
const STANZA: &str = "bench";
/// How long a restored server may take to finish recovery and accept writes.
const READY_TIMEOUT: Duration = Duration::from_secs(600);

/// Whether a `pgbackrest` executable is on `PATH`.
pub fn installed() -> bool {
    std::env::var_os("PATH")
        .is_some_and(|path| std::env::split_paths(&path).any(|dir| dir.join("pgbackrest").is_file()))
}

/// pgBackRest configured for one source cluster, its repository and logs under one directory.
pub struct PgBackRest {
    source: LocalCluster,
    password: Password,
    dir: PathBuf,
    /// The pgbench (accounts, branches) rows of the database the last backup was checked on.
    backed_up: Mutex<Option<(String, (i64, i64))>>,
}

impl PgBackRest {
    /// Configures pgBackRest for `source` under `dir` (created, owned by the server user): writes
    /// the config, turns WAL archiving on in `source` (a restart), creates the stanza and runs
    /// `pgbackrest check`, which fails unless archiving and the connection work.
    pub async fn setup(source: &LocalCluster, password: &Password, dir: &Path) -> BoxResult<Self> {
        if source.socket_setting().is_empty() {
            return Err(format!(
                "pgBackRest connects over the Unix socket, but {} is too long for one; run the bench \
                 from a shorter temporary directory",
                source.socket_dir().display()
            )
            .into());
        }
        let user = source.server_user();
        let this = Self {
            source: source.clone(),
            password: password.clone(),
            dir: dir.to_path_buf(),
            backed_up: Mutex::new(None),
        };
        // Everything under `dir`, owned by the source's OS user (Debian's default spool directory
        // belongs to `postgres`, and each toygres instance runs as a user of its own).
        for sub in ["", "repo", "lock", "log", "spool"] {
            user.create_owned_dir(&dir.join(sub), 0o700)?;
        }
        user.write_private_file(&this.config(), this.config_text().as_bytes())?;

        let archive = format!("pgbackrest --config={} --stanza={STANZA} archive-push %p", this.config().display());
        let client = source.connect("postgres", password).await?;
        client.batch_execute("ALTER SYSTEM SET archive_mode = on").await?;
        client.batch_execute(&format!("ALTER SYSTEM SET archive_command = '{}'", archive.replace('\'', "''"))).await?;
        drop(client);
        source.stop().await?;
        source.start(&[]).await?;

        this.pgbackrest("stanza-create", &[]).await?;
        this.pgbackrest("check", &[]).await?;
        Ok(this)
    }

    fn config(&self) -> PathBuf {
        self.dir.join("pgbackrest.conf")
    }

    fn config_text(&self) -> String {
        let d = self.dir.display();
        let s = &self.source;
        format!(
            "[global]\nrepo1-path={d}/repo\nrepo1-retention-full=9999\ncompress-type=zst\nprocess-max=2\n\
             start-fast=y\nlog-level-console=warn\nlock-path={d}/lock\nlog-path={d}/log\nspool-path={d}/spool\n\n\
             [{STANZA}]\npg1-path={}\npg1-port={}\npg1-socket-path={}\npg1-user=postgres\n",
            s.data_dir().display(),
            s.port(),
            s.socket_dir().display()
        )
    }

    /// Runs `pgbackrest <command>` with this config and stanza, plus `extra` options.
    async fn pgbackrest(&self, command: &str, extra: &[String]) -> BoxResult<String> {
        let mut cmd = tokio::process::Command::new("pgbackrest");
        self.source.server_user().apply(&mut cmd);
        cmd.current_dir(&self.dir).env("PGPASSWORD", self.password.expose()).env_remove("PGPASSFILE");
        cmd.arg(format!("--config={}", self.config().display())).arg(format!("--stanza={STANZA}"));
        cmd.args(extra).arg(command);
        let what = format!("pgbackrest {command} (log in {}/log)", self.dir.display());
        Ok(run(cmd, &what, &[self.password.expose()]).await?)
    }

    /// One full backup: its time and the size of what it stored in the repository. Then,
    /// untimed, counts the pgbench rows of `database` in the source, which the restores of this
    /// backup must hold (so they need not the source any more).
    pub async fn backup(&self, database: &str) -> BoxResult<(Duration, u64)> {
        let started = Instant::now();
        self.pgbackrest("backup", &["--type=full".into()]).await?;
        let elapsed = started.elapsed();
        let source = rows(&self.source, &self.password, database).await?;
        *self.backed_up.lock().expect("backed-up rows") = Some((database.to_string(), source));
        Ok((elapsed, crate::level::dir_size(&self.latest_backup()?)?))
    }

    /// The newest full backup's directory in the repository.
    fn latest_backup(&self) -> BoxResult<PathBuf> {
        let backups = self.dir.join("repo/backup").join(STANZA);
        let mut labels: Vec<PathBuf> = std::fs::read_dir(&backups)
            .map_err(|e| format!("listing {}: {e}", backups.display()))?
            .filter_map(|e| e.ok())
            .filter(|e| e.file_type().is_ok_and(|t| t.is_dir()) && e.file_name().to_string_lossy().ends_with('F'))
            .map(|e| e.path())
            .collect();
        labels.sort();
        labels.pop().ok_or_else(|| format!("pgbackrest backup left no full backup in {}", backups.display()).into())
    }

    /// Restores the latest backup into a new cluster under `dir`, starts it on a free port and
    /// waits until recovery has ended and it accepts writes; returns that time after checking
    /// (untimed) that `database` holds as many pgbench rows as the source did at the last
    /// [`PgBackRest::backup`], then removes it. It runs the server as the source's OS user, but
    /// reads nothing of the source: its data directory may be gone.
    pub async fn restore(&self, dir: &Path, database: &str) -> BoxResult<Duration> {
        let expected = match self.backed_up.lock().expect("backed-up rows").clone() {
            Some((db, rows)) if db == database => rows,
            _ => return Err(format!("no pgBackRest backup was checked on database {database}").into()),
        };
        let user: &ServerUser = self.source.server_user();
        let cluster = LocalCluster::new(self.source.binaries().clone(), user.clone(), dir, free_port()?);
        let started = Instant::now();
        create_traversable_dir(cluster.dir())?;
        user.create_owned_dir(&cluster.data_dir(), 0o700)?;
        user.create_owned_dir(&cluster.socket_dir(), 0o700)?;
        user.create_owned_dir(cluster.log_file().parent().ok_or("log file has no directory")?, 0o700)?;
        // archive-mode=off: the restored server must not push its new timeline into the repository.
        let extra = [format!("--pg1-path={}", cluster.data_dir().display()), "--archive-mode=off".into()];
        let result = async {
            self.pgbackrest("restore", &extra).await?;
            cluster.write_conf()?;
            cluster.start(&[]).await?;
            wait_writable(&cluster, &self.password, "pgBackRest").await?;
            let elapsed = started.elapsed();
            let restored = rows(&cluster, &self.password, database).await?;
            if restored != expected {
                return Err(
                    format!("pgBackRest restored {restored:?} pgbench rows, the source had {expected:?}").into()
                );
            }
            Ok(elapsed)
        }
        .await;
        cluster.destroy().await?;
        result
    }
}

/// (accounts, branches) rows of the pgbench tables in `database`.
async fn rows(cluster: &LocalCluster, password: &Password, database: &str) -> BoxResult<(i64, i64)> {
    let client = cluster.connect(database, password).await?;
    let sql = "SELECT (SELECT count(*) FROM pgbench_accounts), (SELECT count(*) FROM pgbench_branches)";
    let row = client.query_one(sql, &[]).await?;
    Ok((row.get(0), row.get(1)))
}

/// Waits until `cluster` accepts connections and is out of recovery (`pg_is_in_recovery()` false).
pub async fn wait_writable(cluster: &LocalCluster, password: &Password, who: &str) -> BoxResult<()> {
    let deadline = Instant::now() + READY_TIMEOUT;
    let mut delay = Duration::from_millis(10);
    loop {
        let last = match cluster.connect("postgres", password).await {
            Ok(client) => match client.query_one("SELECT pg_is_in_recovery()", &[]).await {
                Ok(row) if !row.get::<_, bool>(0) => return Ok(()),
                Ok(_) => "still in recovery".to_string(),
                Err(e) => e.to_string(),
            },
            Err(e) => e.to_string(),
        };
        if !cluster.is_running() || Instant::now() >= deadline {
            return Err(format!(
                "the server of the {who} restore on port {} is not writable ({last}) and {}; see {}",
                cluster.port(),
                if cluster.is_running() { format!("timed out after {READY_TIMEOUT:?}") } else { "exited".into() },
                cluster.log_file().display()
            )
            .into());
        }
        tokio::time::sleep(delay).await;
        delay = (delay * 2).min(Duration::from_millis(100));
    }
}
