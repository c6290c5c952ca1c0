//! `initdb`, `pg_ctl start/stop` and liveness of a [`LocalCluster`].

use super::pidfile::{PidFile, POLL};
use super::process::{self, run};
use super::{create_traversable_dir, io_err, LocalCluster, SUPERUSER};
use nix::sys::signal::{kill, Signal};
use nix::unistd::Pid;
use std::path::Path;
use std::time::{Duration, Instant};
use tokio::process::Command;
use toygres_core::manifest::ClusterLocale;
use toygres_core::{Error, Password, Result};

/// Settings that make a brand-new cluster load a dump fast. Only safe while nothing but the load
/// uses it and a crash means starting over on a fresh volume (the restore job does exactly that).
pub const LOAD_ONLY_SETTINGS: &[(&str, &str)] = &[
    ("fsync", "off"),
    ("full_page_writes", "off"),
    ("wal_level", "minimal"),
    ("max_wal_senders", "0"),
    ("maintenance_work_mem", "1GB"),
    ("synchronous_commit", "off"),
    ("autovacuum", "off"),
];

/// How long a clean stop may take before the postmaster is killed.
const STOP_TIMEOUT: Duration = Duration::from_secs(60);

/// Seconds since the epoch, as `postmaster.pid` records a start.
fn unix_now() -> i64 {
    std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map_or(0, |d| d.as_secs() as i64)
}

/// Waits until process `pid` has exited, or `Err(Timeout)` after `timeout`.
async fn wait_exit(pid: i32, timeout: Duration) -> Result<()> {
    let deadline = Instant::now() + timeout;
    while process_alive(pid) {
        if Instant::now() >= deadline {
            return Err(Error::Timeout { step: format!("postmaster {pid} to exit"), after: timeout });
        }
        tokio::time::sleep(POLL).await;
    }
    Ok(())
}

/// Whether process `pid` exists and is not a zombie waiting to be reaped.
pub fn process_alive(pid: i32) -> bool {
    if kill(Pid::from_raw(pid), None).is_err() {
        return false;
    }
    match std::fs::read_to_string(format!("/proc/{pid}/stat")) {
        // The state follows the command name, which is in parentheses.
        Ok(stat) => stat.rsplit_once(')').is_none_or(|(_, rest)| !rest.trim_start().starts_with('Z')),
        Err(_) => true,
    }
}

impl LocalCluster {
    fn server_cmd(&self, program: &str) -> Command {
        let mut cmd = process::command(self.bin.path(program));
        self.user.apply(&mut cmd);
        cmd.env("LC_ALL", "C.UTF-8").current_dir(&self.dir);
        cmd
    }

    /// Creates the directories and runs `initdb` with `password` for the superuser `postgres`
    /// (scram-sha-256 for every connection, UTF8), then configures 127.0.0.1:`port` and the socket
    /// directory. The password reaches initdb through a 0600 file that is deleted afterwards.
    /// A no-op when the cluster is already initialised. The new files are durable when it returns.
    pub async fn init(&self, password: &Password) -> Result<()> {
        self.init_with_locale(password, None).await?;
        self.sync_data()
    }

    /// [`LocalCluster::init`] with the encoding, collation and locale provider of `locale` (an
    /// image's source cluster) instead of UTF8 and `C.UTF-8`, and without making the new files
    /// durable: for a restore, which loads the image, stops the server, then calls
    /// [`LocalCluster::sync_data`] once.
    pub async fn init_with_locale(&self, password: &Password, locale: Option<&ClusterLocale>) -> Result<()> {
        if self.is_initialized() {
            return Ok(());
        }
        self.create_empty_data_dir()?;
        let data = self.data_dir();
        let pwfile = self.dir.join(".initdb-pwfile");
        self.user.write_private_file(&pwfile, password.expose().as_bytes())?;
        let mut cmd = self.server_cmd("initdb");
        cmd.arg("-D").arg(&data).args(["-U", SUPERUSER, "--auth=scram-sha-256", "-N"]);
        match locale {
            Some(locale) => cmd.args(locale.initdb_args()),
            None => cmd.args(["-E", "UTF8", "--locale=C.UTF-8"]),
        };
        cmd.arg(format!("--pwfile={}", pwfile.display()));
        let result = run(cmd, "initdb", &[password.expose()]).await;
        let _ = std::fs::remove_file(&pwfile);
        result?;
        self.write_conf()
    }

    /// Makes everything written to the data directory's filesystem durable (`syncfs`).
    pub fn sync_data(&self) -> Result<()> {
        let data = self.data_dir();
        let dir = std::fs::File::open(&data).map_err(|e| io_err(format!("opening {}", data.display()), e))?;
        nix::unistd::syncfs(&dir).map_err(|e| Error::backend("local cluster", format!("syncing {}", data.display()), e))
    }

    /// Creates the cluster's directories with an empty data directory (mode 0700, owned by the
    /// server user), removing a partial one: for `initdb`.
    pub fn create_empty_data_dir(&self) -> Result<()> {
        self.create_data_dir()?;
        self.user.chown(&self.data_dir())
    }

    /// [`LocalCluster::create_empty_data_dir`] for a physical image to unpack into: the data
    /// directory stays this process's (0700) until [`LocalCluster::take_data_dir`], so nobody
    /// else, in particular a process of the server user (which any tenant can run), can plant a
    /// link in it while this process writes there.
    pub fn create_private_data_dir(&self) -> Result<()> {
        self.create_data_dir()
    }

    /// Makes the (new) data directory a reflink clone of the stopped data directory `src`, given
    /// to the server user ([`super::reflink::clone_tree`]: no byte copied), with the socket and
    /// log directories as [`LocalCluster::create_empty_data_dir`] makes them. On any error no
    /// data directory is left.
    pub fn clone_data_from(&self, src: &Path) -> Result<super::reflink::CloneStats> {
        self.create_data_dir()?;
        let data = self.data_dir();
        std::fs::remove_dir(&data).map_err(|e| io_err(format!("removing {}", data.display()), e))?;
        let owner = self.user.switches().then_some((self.user.uid, self.user.gid));
        super::reflink::clone_tree(src, &data, owner)
    }

    /// Gives the data directory filled by this process to the server user
    /// ([`ServerUser::take_tree`](super::ServerUser::take_tree): children first, never through a
    /// link).
    pub fn take_data_dir(&self) -> Result<()> {
        self.user.take_tree(&self.data_dir())
    }

    fn create_data_dir(&self) -> Result<()> {
        create_traversable_dir(&self.dir)?;
        let data = self.data_dir();
        if data.exists() {
            std::fs::remove_dir_all(&data).map_err(|e| io_err(format!("removing partial {}", data.display()), e))?;
        }
        std::fs::create_dir(&data).map_err(|e| io_err(format!("creating {}", data.display()), e))?;
        super::set_mode(&data, 0o700)?;
        self.user.create_owned_dir(&self.socket_dir(), 0o700)?;
        self.user.create_owned_dir(self.log_file().parent().expect("log dir"), 0o700)
    }

    /// A command running `program` (from `PATH`) as the server user in the cluster's directory.
    pub fn command_as_server_user(&self, program: &str) -> Command {
        let mut cmd = process::command(program);
        self.user.apply(&mut cmd);
        cmd.current_dir(&self.dir);
        cmd
    }

    /// Writes the listen address, port and socket directory into `postgresql.conf` (appended: the
    /// last setting wins, so this also moves an initialised cluster to [`LocalCluster::port`]).
    pub fn write_conf(&self) -> Result<()> {
        use std::io::Write;
        let conf = self.data_dir().join("postgresql.conf");
        let socket = self.socket_setting().replace('\'', "''");
        let text = format!(
            "\n# toygres\nlisten_addresses = '127.0.0.1'\nport = {}\nunix_socket_directories = '{socket}'\n",
            self.port
        );
        let mut f = std::fs::OpenOptions::new()
            .append(true)
            .open(&conf)
            .map_err(|e| io_err(format!("opening {}", conf.display()), e))?;
        f.write_all(text.as_bytes()).map_err(|e| io_err(format!("writing {}", conf.display()), e))
    }

    /// The `unix_socket_directories` value: the socket directory, or none at all (TCP only) when
    /// the socket's path would pass the kernel's limit of 107 bytes (deep base directories).
    /// toygres's own clients always connect over TCP to 127.0.0.1.
    pub fn socket_setting(&self) -> String {
        const MAX_SOCKET_PATH: usize = 107;
        let dir = self.socket_dir().display().to_string();
        if dir.len() + "/.s.PGSQL.65535".len() <= MAX_SOCKET_PATH {
            dir
        } else {
            tracing::debug!(dir, "socket path too long; the server listens on TCP only");
            String::new()
        }
    }

    /// Starts the server with extra `-c` `settings` for this run only and returns as soon as it
    /// accepts connections. A no-op when it already runs.
    ///
    /// `pg_ctl -w start` launches it and reports a failed start (with the server log's tail); the
    /// pid file says "ready" first (`PidFile`), and `pg_ctl` then finishes on its own.
    pub async fn start(&self, settings: &[(&str, &str)]) -> Result<()> {
        if self.is_running() {
            return Ok(());
        }
        let opts: Vec<String> = settings.iter().map(|(k, v)| format!("-c {k}={v}")).collect();
        let mut cmd = self.server_cmd("pg_ctl");
        cmd.args(["start", "-w", "-t", "120", "-D"]).arg(self.data_dir()).arg("-l").arg(self.log_file());
        if !opts.is_empty() {
            cmd.arg("-o").arg(opts.join(" "));
        }
        let asked = unix_now();
        let mut pg_ctl = tokio::spawn(run(cmd, "starting PostgreSQL", &[]));
        loop {
            tokio::select! {
                done = &mut pg_ctl => {
                    let done = done.map_err(|e| Error::backend("local cluster", "waiting for pg_ctl start", e))?;
                    return done.map_err(|e| self.with_log_tail(e)).map(|_| ());
                }
                _ = tokio::time::sleep(POLL) => {
                    let pid_file = PidFile::read(&self.data_dir(), self.user.uid);
                    if pid_file.is_some_and(|f| f.ready && f.started >= asked) {
                        return Ok(());
                    }
                }
            }
        }
    }

    /// Stops the server cleanly (`pg_ctl -m fast stop`: shutdown checkpoint), killing a postmaster
    /// that does not stop. A no-op when it is not running.
    pub async fn stop(&self) -> Result<()> {
        self.stop_mode("fast").await
    }

    /// Stops the server without a shutdown checkpoint (`pg_ctl -m immediate`), for a cluster
    /// about to be removed. A no-op when it is not running.
    pub async fn stop_immediate(&self) -> Result<()> {
        self.stop_mode("immediate").await
    }

    /// Signals the postmaster (`pg_ctl stop -W -m <mode>`) and waits for it to exit, killing one
    /// that does not within [`STOP_TIMEOUT`].
    async fn stop_mode(&self, mode: &str) -> Result<()> {
        let Some(pid) = self.postmaster_pid().filter(|pid| process_alive(*pid)) else {
            return Ok(());
        };
        let mut cmd = self.server_cmd("pg_ctl");
        cmd.args(["stop", "-W", "-m", mode, "-D"]).arg(self.data_dir());
        let stopped = match run(cmd, "stopping PostgreSQL", &[]).await {
            Ok(_) => wait_exit(pid, STOP_TIMEOUT).await,
            Err(e) => Err(e),
        };
        if let Err(e) = stopped {
            tracing::warn!(error = %e, "pg_ctl stop failed; killing the postmaster");
            self.kill_postmaster();
        }
        Ok(())
    }

    /// The pid of this data directory's live postmaster, from `postmaster.pid`: only a pid that
    /// really is that postmaster, running as the server user (see `pidfile::is_postmaster_of`),
    /// never whatever the file says.
    pub fn postmaster_pid(&self) -> Option<i32> {
        PidFile::read(&self.data_dir(), self.user.uid).map(|f| f.pid)
    }

    /// Whether a postmaster for this data directory is alive.
    pub fn is_running(&self) -> bool {
        self.postmaster_pid().is_some_and(process_alive)
    }

    /// Sends SIGKILL to a leftover postmaster (its backends exit when they notice). Best effort.
    pub fn kill_postmaster(&self) {
        if let Some(pid) = self.postmaster_pid() {
            let _ = kill(Pid::from_raw(pid), Signal::SIGKILL);
            let deadline = Instant::now() + Duration::from_secs(10);
            while process_alive(pid) && Instant::now() < deadline {
                std::thread::sleep(Duration::from_millis(20));
            }
        }
    }

    /// Stops the server synchronously (`pg_ctl -m immediate`), for `Drop`. Best effort.
    pub fn stop_blocking(&self) {
        if !self.is_running() {
            return;
        }
        let mut cmd = process::std_command(self.bin.path("pg_ctl"));
        self.user.apply_std(&mut cmd);
        cmd.args(["stop", "-w", "-t", "30", "-m", "immediate", "-D"]).arg(self.data_dir());
        cmd.stdout(std::process::Stdio::null()).stderr(std::process::Stdio::null());
        if !cmd.status().is_ok_and(|s| s.success()) {
            self.kill_postmaster();
        }
    }

    /// Waits until `pg_isready` reports the server accepting connections, or `Err(Timeout)`.
    pub async fn wait_ready(&self, timeout: Duration) -> Result<()> {
        let deadline = Instant::now() + timeout;
        let mut delay = Duration::from_millis(20);
        loop {
            let mut cmd = process::command(self.bin.path("pg_isready"));
            cmd.args(["-q", "-h", "127.0.0.1", "-p", &self.port.to_string(), "-t", "5"]);
            if run(cmd, "pg_isready", &[]).await.is_ok() {
                return Ok(());
            }
            if Instant::now() >= deadline {
                return Err(Error::Timeout {
                    step: format!("PostgreSQL on port {} to accept", self.port),
                    after: timeout,
                });
            }
            tokio::time::sleep(delay).await;
            delay = (delay * 2).min(Duration::from_millis(500));
        }
    }

    /// `e` with the tail of the server log appended (server start failures are explained there).
    fn with_log_tail(&self, e: Error) -> Error {
        let log = std::fs::read_to_string(self.log_file()).unwrap_or_default();
        let log = super::process::tail(log.trim());
        Error::backend_msg("local cluster", format!("{e}\n--- server log ({}) ---\n{log}", self.log_file().display()))
    }

    /// Stops the server and removes its data directory (to start over with [`LocalCluster::init`]).
    pub async fn destroy_data(&self) -> Result<()> {
        self.stop_immediate().await?;
        let data = self.data_dir();
        match std::fs::remove_dir_all(&data) {
            Err(e) if e.kind() != std::io::ErrorKind::NotFound => {
                Err(io_err(format!("removing {}", data.display()), e))
            }
            _ => Ok(()),
        }
    }

    /// Stops the server and removes its directory. Idempotent.
    pub async fn destroy(&self) -> Result<()> {
        self.stop_immediate().await?;
        match std::fs::remove_dir_all(&self.dir) {
            Err(e) if e.kind() != std::io::ErrorKind::NotFound => {
                Err(io_err(format!("removing {}", self.dir.display()), e))
            }
            _ => Ok(()),
        }
    }
}
