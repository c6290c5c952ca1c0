//! The replicas under test: a throw-away PostgreSQL shared by every replica (catalog and durable
//! store), one shared data directory, and `toygres serve` processes started and stopped on it,
//! with a small JSON client of their API. Everything is stopped and removed on drop, also after
//! an error or a panic.

use crate::BoxResult;
use reqwest::{Method, StatusCode};
use serde_json::Value;
use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};
use std::process::{Child, ChildStdout, Command, Stdio};
use std::sync::Arc;
use std::time::{Duration, Instant};
use toygres_core::Password;
use toygres_local::{LocalBlobStore, LocalCluster, LocalExecutor, TempCluster};

/// The bearer token of the bench's replicas.
pub const TOKEN: &str = "bench-replicas-token-5d2e";

/// The throw-away PostgreSQL the replicas share (stopped and removed on drop).
pub struct Store {
    pg: TempCluster,
    password: Password,
}

impl Store {
    /// Starts one on a free port of 127.0.0.1.
    pub async fn start() -> BoxResult<Self> {
        let password = Password::generate();
        let pg = LocalCluster::start_temporary(&password).await?;
        Ok(Self { pg, password })
    }

    /// Its URL: `TOYGRES_CATALOG_URL` of the replicas, and the duroxide-pg store of the
    /// in-process comparison.
    pub fn url(&self) -> String {
        let p = self.pg.params();
        format!("postgres://postgres:{}@{}:{}/postgres", self.password.expose(), p.host, p.port)
    }
}

/// A data directory the `postgres` OS user can traverse, under `/var/tmp`. On drop, the servers
/// of the instances under it are stopped and their OS users removed, then it is removed.
pub struct DataDir {
    temp: tempfile::TempDir,
}

impl DataDir {
    /// A new one whose name starts with `prefix`.
    pub fn new(prefix: &str) -> BoxResult<Self> {
        let temp = tempfile::Builder::new().prefix(prefix).tempdir_in("/var/tmp")?;
        toygres_local::cluster::create_traversable_dir(temp.path())?;
        Ok(Self { temp })
    }

    /// The directory itself (logs, files of the bench).
    pub fn root(&self) -> &Path {
        self.temp.path()
    }

    /// The replicas' `--data-dir`.
    pub fn data(&self) -> PathBuf {
        self.temp.path().join("data")
    }
}

impl Drop for DataDir {
    fn drop(&mut self) {
        let Ok(blobs) = LocalBlobStore::open(self.data().join("images")) else { return };
        if let Ok(executor) = LocalExecutor::builder(self.data().join("local"), Arc::new(blobs)).build() {
            executor.discard_blocking();
        }
    }
}

/// A running `toygres serve` (SIGTERM on drop, SIGKILL after 20 s).
pub struct Replica {
    child: Child,
    /// Kept open: the server's stdout stays a live pipe.
    _stdout: BufReader<ChildStdout>,
    /// `http://127.0.0.1:PORT`.
    pub url: String,
    /// Where its stderr goes.
    pub log: PathBuf,
}

impl Replica {
    /// The process id.
    pub fn pid(&self) -> u32 {
        self.child.id()
    }
}

impl Drop for Replica {
    fn drop(&mut self) {
        crate::proc_tree::terminate(&mut self.child, Duration::from_secs(20));
    }
}

/// Replicas on one store and one data directory. Drop order: the replicas, then the data
/// directory's instances, then the store.
pub struct Fleet {
    replicas: Vec<Replica>,
    /// The shared data directory.
    pub dir: DataDir,
    bin: PathBuf,
    url: String,
    backup_slots: u32,
}

impl Fleet {
    /// A fleet of no replica yet, of the `toygres` binary `bin` on `store`, each replica running
    /// `backup_slots` backup jobs at once.
    pub fn new(bin: &Path, store: &Store, backup_slots: u32) -> BoxResult<Self> {
        let dir = DataDir::new("tgr-")?;
        Ok(Self { replicas: Vec::new(), dir, bin: bin.to_path_buf(), url: store.url(), backup_slots })
    }

    /// Starts or stops replicas (the newest first, SIGTERM, waited for) until `n` run.
    pub fn scale_to(&mut self, n: usize) -> BoxResult<()> {
        while self.replicas.len() > n {
            self.replicas.pop();
        }
        while self.replicas.len() < n {
            let replica = self.spawn(self.replicas.len())?;
            self.replicas.push(replica);
        }
        Ok(())
    }

    /// The process ids of the running replicas, in order.
    pub fn pids(&self) -> Vec<u32> {
        self.replicas.iter().map(Replica::pid).collect()
    }

    /// The last lines of every running replica's log (for an error).
    pub fn log_tails(&self) -> String {
        let mut out = String::new();
        for (i, replica) in self.replicas.iter().enumerate() {
            let text = std::fs::read_to_string(&replica.log).unwrap_or_default();
            let lines: Vec<&str> = text.lines().collect();
            out += &format!("--- replica {i} (pid {}) ---\n", replica.pid());
            out += &lines[lines.len().saturating_sub(30)..].join("\n");
            out.push('\n');
        }
        out
    }

    /// A client of replica `i`.
    pub fn api(&self, i: usize) -> Api {
        Api::new(&self.replicas[i].url)
    }

    fn spawn(&self, i: usize) -> BoxResult<Replica> {
        let log = self.dir.root().join(format!("replica-{i}-{}.log", uuid::Uuid::new_v4().simple()));
        let mut cmd = Command::new(&self.bin);
        cmd.args(["serve", "--listen", "127.0.0.1:0", "--data-dir"]).arg(self.dir.data());
        cmd.args(["--backup-slots", &self.backup_slots.to_string(), "--restore-slots", "2"]);
        cmd.args(["--replica-id", &format!("bench-replica-{i}")]);
        // The embedded default for everything but the catalog and the durable store.
        for var in ["TOYGRES_BLOBS", "TOYGRES_EXECUTOR", "TOYGRES_CATALOG_KEY", "TOYGRES_IMAGE_KEYS", "TOYGRES_LISTEN"]
        {
            cmd.env_remove(var);
        }
        cmd.env("TOYGRES_CATALOG_URL", &self.url).env("TOYGRES_TOKEN", TOKEN).env("TOYGRES_LOG", "info");
        cmd.env("NO_COLOR", "1");
        cmd.stdout(Stdio::piped()).stderr(std::fs::File::create(&log)?);
        let mut child = cmd.spawn().map_err(|e| format!("starting {}: {e}", self.bin.display()))?;
        let mut stdout = BufReader::new(child.stdout.take().expect("piped stdout"));
        let mut line = String::new();
        let read = stdout.read_line(&mut line);
        let Some(url) = line.trim().strip_prefix("toygres listening on ").map(str::to_string) else {
            let _ = child.kill();
            let _ = child.wait();
            let text = std::fs::read_to_string(&log).unwrap_or_default();
            return Err(format!(
                "replica {i} did not start ({read:?}, {line:?}); was {} built with `--features postgres`?\n{text}",
                self.bin.display()
            )
            .into());
        };
        Ok(Replica { child, _stdout: stdout, url, log })
    }
}

/// A JSON client of one replica's API, with the bench's token.
#[derive(Clone)]
pub struct Api {
    http: reqwest::Client,
    base: String,
}

impl Api {
    /// A client of `base` (`http://127.0.0.1:PORT`).
    pub fn new(base: &str) -> Self {
        Self { http: reqwest::Client::new(), base: base.to_string() }
    }

    /// Sends a request; returns the status and the JSON body (`Null` when empty).
    pub async fn send(&self, method: Method, path: &str, body: Option<&Value>) -> BoxResult<(StatusCode, Value)> {
        let mut request = self.http.request(method, format!("{}{path}", self.base)).bearer_auth(TOKEN);
        if let Some(body) = body {
            request = request.json(body);
        }
        let response = request.send().await?;
        let status = response.status();
        let text = response.text().await?;
        let body =
            if text.is_empty() { Value::Null } else { serde_json::from_str(&text).unwrap_or(Value::String(text)) };
        Ok((status, body))
    }

    /// `GET path`, expecting 200.
    pub async fn get(&self, path: &str) -> BoxResult<Value> {
        match self.send(Method::GET, path, None).await? {
            (StatusCode::OK, body) => Ok(body),
            (status, body) => Err(format!("GET {path}: {status} {body}").into()),
        }
    }

    /// `POST path` of a creation, expecting 202; returns the new id.
    pub async fn create(&self, path: &str, body: Value) -> BoxResult<String> {
        match self.send(Method::POST, path, Some(&body)).await? {
            (StatusCode::ACCEPTED, answer) => Ok(answer["id"].as_str().ok_or("no id in the answer")?.to_string()),
            (status, answer) => Err(format!("POST {path} {body}: {status} {answer}").into()),
        }
    }

    /// `DELETE path`, expecting 204.
    pub async fn delete(&self, path: &str) -> BoxResult<()> {
        match self.send(Method::DELETE, path, None).await? {
            (StatusCode::NO_CONTENT, _) => Ok(()),
            (status, body) => Err(format!("DELETE {path}: {status} {body}").into()),
        }
    }

    /// Polls `path` every 100 ms until its `state` is no longer `busy`; returns the record.
    pub async fn settle(&self, path: &str, busy: &str, timeout: Duration) -> BoxResult<Value> {
        let deadline = Instant::now() + timeout;
        loop {
            let record = self.get(path).await?;
            if record["state"] != busy {
                return Ok(record);
            }
            if Instant::now() > deadline {
                return Err(format!("{path} still {busy} after {timeout:?}: {record}").into());
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }
}
