//! A real `toygres serve` process on loopback for the tests, and a small HTTP client of it.
#![allow(dead_code)]

pub mod procs;
#[path = "../../../toygres-local/tests/support/reflink_dir.rs"]
mod reflink_dir;
pub mod replicas;
pub mod webdriver;

use reqwest::{Method, StatusCode};
use serde_json::Value;
use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::Arc;
use std::time::{Duration, Instant};
use toygres_local::{ConnParams, LocalBlobStore, LocalExecutor, PgBinaries};

/// The token the test servers require.
pub const TOKEN: &str = "test-token-4c1f0e7a";

/// A data directory that outlives server restarts; its instances are stopped on drop.
pub struct DataDir {
    temp: tempfile::TempDir,
}

impl DataDir {
    /// A new temporary data directory that the `postgres` OS user can traverse.
    pub fn new() -> Self {
        let temp = tempfile::Builder::new().prefix("toygres-server-test-").tempdir().unwrap();
        toygres_local::cluster::create_traversable_dir(temp.path()).unwrap();
        Self { temp }
    }

    /// A new temporary data directory on the reflink filesystem `TOYGRES_REFLINK_DIR` names
    /// (`bash .ci/xfs.sh` mounts one), or `None` (test skipped) outside CI when it is unset.
    pub fn on_reflink() -> Option<Self> {
        let dir = reflink_dir::reflink_dir()?;
        let temp = tempfile::Builder::new().prefix("toygres-server-test-").tempdir_in(dir).unwrap();
        toygres_local::cluster::create_traversable_dir(temp.path()).unwrap();
        Some(Self { temp })
    }

    /// The server's `--data-dir`.
    pub fn path(&self) -> PathBuf {
        self.temp.path().join("data")
    }

    /// How many instance volumes exist under the data directory.
    pub fn instance_volumes(&self) -> usize {
        std::fs::read_dir(self.path().join("local/instances")).map(|d| d.count()).unwrap_or(0)
    }

    /// How many image prefixes hold objects in the blob store.
    pub fn image_dirs(&self) -> usize {
        let Ok(dirs) = std::fs::read_dir(self.path().join("images/images")) else { return 0 };
        dirs.filter_map(|d| d.ok())
            .filter(|d| std::fs::read_dir(d.path()).map(|mut f| f.next().is_some()).unwrap_or(false))
            .count()
    }
}

impl Drop for DataDir {
    fn drop(&mut self) {
        let Ok(blobs) = LocalBlobStore::open(self.path().join("images")) else { return };
        if let Ok(executor) = LocalExecutor::builder(self.path().join("local"), Arc::new(blobs)).build() {
            executor.discard_blocking();
        }
    }
}

/// A running `toygres serve`.
pub struct Server {
    child: Child,
    /// `http://127.0.0.1:PORT`.
    pub url: String,
    /// Where its stderr goes.
    pub log: PathBuf,
}

impl Server {
    /// Starts the server on `data` with [`TOKEN`], on a free port.
    pub fn start(data: &DataDir) -> Self {
        Self::start_with(data, &[], Some(TOKEN))
    }

    /// Starts it with extra arguments and an optional token.
    pub fn start_with(data: &DataDir, extra: &[&str], token: Option<&str>) -> Self {
        Self::start_env(data, extra, token, &[])
    }

    /// Starts it with extra arguments, an optional token and extra environment variables.
    pub fn start_env(data: &DataDir, extra: &[&str], token: Option<&str>, env: &[(&str, &str)]) -> Self {
        let log = data.temp.path().join(format!("server-{}.log", uuid::Uuid::new_v4().simple()));
        let mut cmd = Command::new(env!("CARGO_BIN_EXE_toygres"));
        cmd.args(["serve", "--listen", "127.0.0.1:0", "--data-dir"]).arg(data.path()).args(extra);
        cmd.env_remove("TOYGRES_TOKEN").env("TOYGRES_LOG", "info,toygres=debug").envs(env.iter().copied());
        if let Some(token) = token {
            cmd.env("TOYGRES_TOKEN", token);
        }
        cmd.stdout(Stdio::piped()).stderr(std::fs::File::create(&log).unwrap());
        let mut child = cmd.spawn().expect("spawning toygres serve");
        let mut line = String::new();
        BufReader::new(child.stdout.take().unwrap()).read_line(&mut line).unwrap();
        let url = line.trim().strip_prefix("toygres listening on ").unwrap_or_else(|| {
            let _ = child.kill();
            panic!("server did not start: {line:?}\n{}", std::fs::read_to_string(&log).unwrap_or_default())
        });
        Self { url: url.to_string(), child, log }
    }

    /// Kills the process with SIGKILL (no clean-up of any kind) and reaps it.
    pub fn kill9(mut self) {
        use nix::sys::signal::{kill, Signal};
        kill(nix::unistd::Pid::from_raw(self.child.id() as i32), Signal::SIGKILL).unwrap();
        self.child.wait().unwrap();
    }

    /// The server process's id.
    pub fn pid(&self) -> u32 {
        self.child.id()
    }

    /// Sends `signal` to the server process (SIGSTOP / SIGCONT to pause it past its leases).
    pub fn signal(&self, signal: nix::sys::signal::Signal) {
        nix::sys::signal::kill(nix::unistd::Pid::from_raw(self.child.id() as i32), signal).unwrap();
    }

    /// A client with the right token.
    pub fn client(&self) -> Api {
        Api::new(&self.url, Some(TOKEN))
    }

    /// What the server wrote to stderr.
    pub fn log_text(&self) -> String {
        std::fs::read_to_string(&self.log).unwrap_or_default()
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        procs::terminate(&mut self.child, Duration::from_secs(10));
    }
}

/// An answer: status, `Location` header, JSON body.
#[derive(Debug)]
pub struct Answer {
    /// HTTP status.
    pub status: StatusCode,
    /// The `Location` header, if any.
    pub location: Option<String>,
    /// The body (`Null` when empty).
    pub body: Value,
}

/// A JSON client of the API.
#[derive(Clone)]
pub struct Api {
    http: reqwest::Client,
    base: String,
    token: Option<String>,
}

impl Api {
    /// A client of `base` sending `token`.
    pub fn new(base: &str, token: Option<&str>) -> Self {
        Self { http: reqwest::Client::new(), base: base.to_string(), token: token.map(str::to_string) }
    }

    /// Sends a request with an optional JSON body.
    pub async fn send(&self, method: Method, path: &str, body: Option<&Value>) -> Answer {
        self.send_keyed(method, path, body, None).await
    }

    /// `POST path` with an `Idempotency-Key`.
    pub async fn post_keyed(&self, path: &str, key: &str, body: &Value) -> Answer {
        self.send_keyed(Method::POST, path, Some(body), Some(key)).await
    }

    /// Sends a request with an optional JSON body and an optional `Idempotency-Key`.
    pub async fn send_keyed(&self, method: Method, path: &str, body: Option<&Value>, key: Option<&str>) -> Answer {
        let mut request = self.http.request(method, format!("{}{path}", self.base));
        if let Some(token) = &self.token {
            request = request.bearer_auth(token);
        }
        if let Some(key) = key {
            request = request.header("idempotency-key", key);
        }
        if let Some(body) = body {
            request = request.json(body);
        }
        let response = request.send().await.expect("request");
        let status = response.status();
        let location = response.headers().get("location").map(|v| v.to_str().unwrap().to_string());
        let text = response.text().await.unwrap();
        let body =
            if text.is_empty() { Value::Null } else { serde_json::from_str(&text).unwrap_or(Value::String(text)) };
        Answer { status, location, body }
    }

    /// `GET path`.
    pub async fn get(&self, path: &str) -> Answer {
        self.send(Method::GET, path, None).await
    }

    /// `POST path`.
    pub async fn post(&self, path: &str, body: Value) -> Answer {
        self.send(Method::POST, path, Some(&body)).await
    }

    /// `DELETE path`.
    pub async fn delete(&self, path: &str) -> Answer {
        self.send(Method::DELETE, path, None).await
    }

    /// Creates an instance (expects 202) and returns its id.
    pub async fn create(&self, path: &str, body: Value) -> String {
        let answer = self.post(path, body).await;
        assert_eq!(answer.status, StatusCode::ACCEPTED, "{answer:?}");
        let id = answer.body["id"].as_str().unwrap().to_string();
        assert_eq!(answer.location.as_deref(), Some(format!("{path}/{id}").as_str()));
        id
    }

    /// Polls `path` until its `state` is no longer `busy`; returns the record.
    pub async fn settle(&self, path: &str, busy: &str, timeout: Duration) -> Value {
        let deadline = Instant::now() + timeout;
        loop {
            let answer = self.get(path).await;
            assert_eq!(answer.status, StatusCode::OK, "{answer:?}");
            if answer.body["state"] != busy {
                return answer.body;
            }
            assert!(Instant::now() < deadline, "{path} still {busy} after {timeout:?}: {}", answer.body);
            tokio::time::sleep(Duration::from_millis(200)).await;
        }
    }

    /// Creates a fresh instance with `password` and waits until it runs.
    pub async fn running_instance(&self, name: &str, password: &str) -> Value {
        let id = self.create("/api/instances", serde_json::json!({ "name": name, "password": password })).await;
        let record = self.settle(&format!("/api/instances/{id}"), "provisioning", Duration::from_secs(120)).await;
        assert_eq!(record["state"], "running", "{record}");
        record
    }
}

/// Connection parameters of an instance as the API reports it.
pub fn params(record: &Value) -> ConnParams {
    let c = &record["connection"];
    ConnParams {
        host: c["host"].as_str().unwrap().to_string(),
        port: c["port"].as_u64().unwrap() as u16,
        user: c["user"].as_str().unwrap().to_string(),
    }
}

/// PostgreSQL's binaries on this machine.
pub fn binaries() -> PgBinaries {
    PgBinaries::discover(None).expect("PostgreSQL binaries (run scripts/setup.sh)")
}

/// Adds `rows` bulk rows to the sample data so that images and restores take a moment.
pub async fn load_bulk(params: &ConnParams, password: &toygres_core::Password, rows: u64) {
    let client = params.connect("appdb", password).await.unwrap();
    let sql = format!(
        "SET ROLE app_owner; CREATE TABLE billing.ledger AS SELECT g AS id, md5(g::text) AS digest, \
         repeat(md5((g * 7)::text), 4) AS memo FROM generate_series(1, {rows}) g; \
         ALTER TABLE billing.ledger ADD PRIMARY KEY (id)"
    );
    client.batch_execute(&sql).await.unwrap();
}

/// Path of the data directory's catalog file.
pub fn catalog_file(data: &Path) -> PathBuf {
    data.join("catalog.sqlite")
}
