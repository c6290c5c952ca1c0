//! Several real `toygres serve` processes on loopback sharing one PostgreSQL (the catalog and the
//! durable store, feature `postgres`) and one data directory, as replicas of one control plane.

use super::{Api, DataDir, Server, TOKEN};
use nix::sys::signal::Signal;
use toygres_core::Password;
use toygres_local::{LocalCluster, TempCluster};

/// The replicas' settings in the tests: short leases and sweeps so that take-overs and healing
/// happen within seconds.
pub const ARGS: &[&str] = &["--lease-seconds", "4", "--sweep-interval-seconds", "2", "--poll-interval-ms", "20"];

/// The PostgreSQL server the replicas share.
pub struct Store {
    pg: TempCluster,
    password: Password,
}

impl Store {
    /// A throw-away PostgreSQL on a free port.
    pub async fn start() -> Self {
        let password = Password::generate();
        let pg = LocalCluster::start_temporary(&password).await.expect("start the store's PostgreSQL");
        Self { pg, password }
    }

    /// `TOYGRES_CATALOG_URL` for the replicas.
    pub fn url(&self) -> String {
        let p = self.pg.params();
        format!("postgres://postgres:{}@{}:{}/postgres", self.password.expose(), p.host, p.port)
    }

    /// Stops the server (fast shutdown: every connection is closed) and starts it again.
    pub async fn restart(&self) {
        self.pg.cluster().stop().await.expect("stop the store");
        self.pg.cluster().start(&[]).await.expect("start the store again");
    }

    /// A client of the store's database (to read the durable tables).
    pub async fn connect(&self) -> tokio_postgres::Client {
        self.pg.cluster().connect("postgres", &self.password).await.expect("connect to the store")
    }
}

/// `n` replicas on one store and one data directory.
pub struct Replicas {
    /// The shared PostgreSQL.
    pub store: Store,
    /// The shared data directory.
    pub data: DataDir,
    servers: Vec<Option<Server>>,
}

impl Replicas {
    /// Starts a store and `n` replicas, one after the other.
    pub async fn start(n: usize) -> Self {
        let store = Store::start().await;
        let mut replicas = Self { store, data: DataDir::new(), servers: Vec::new() };
        for i in 0..n {
            let server = replicas.spawn(i);
            replicas.servers.push(Some(server));
        }
        replicas
    }

    fn spawn(&self, i: usize) -> Server {
        let url = self.store.url();
        let id = format!("replica-{i}");
        let env = [("TOYGRES_CATALOG_URL", url.as_str()), ("TOYGRES_REPLICA_ID", id.as_str())];
        Server::start_env(&self.data, ARGS, Some(TOKEN), &env)
    }

    /// The running replica `i`.
    pub fn server(&self, i: usize) -> &Server {
        self.servers[i].as_ref().expect("replica is running")
    }

    /// A client of replica `i`.
    pub fn api(&self, i: usize) -> Api {
        self.server(i).client()
    }

    /// The process ids of the running replicas.
    pub fn pids(&self) -> Vec<u32> {
        self.servers.iter().flatten().map(Server::pid).collect()
    }

    /// The index of the replica with process id `pid`.
    pub fn index_of(&self, pid: u32) -> usize {
        self.servers.iter().position(|s| s.as_ref().is_some_and(|s| s.pid() == pid)).expect("a replica's pid")
    }

    /// Kills replica `i` with SIGKILL.
    pub fn kill9(&mut self, i: usize) {
        self.servers[i].take().expect("replica is running").kill9();
    }

    /// Stops replica `i` cleanly (SIGTERM) and waits for it.
    pub fn stop(&mut self, i: usize) {
        drop(self.servers[i].take());
    }

    /// Starts replica `i` again.
    pub fn restart(&mut self, i: usize) {
        assert!(self.servers[i].is_none(), "replica {i} still runs");
        let server = self.spawn(i);
        self.servers[i] = Some(server);
    }

    /// Sends `signal` to replica `i`.
    pub fn signal(&self, i: usize, signal: Signal) {
        self.server(i).signal(signal);
    }

    /// Every replica's log, for a failing assertion.
    pub fn logs(&self) -> String {
        let tail = |s: &Server| {
            let text = s.log_text();
            text.lines().rev().take(40).collect::<Vec<_>>().into_iter().rev().collect::<Vec<_>>().join("\n")
        };
        self.servers.iter().flatten().map(|s| format!("--- replica {} ---\n{}", s.pid(), tail(s))).collect()
    }
}
