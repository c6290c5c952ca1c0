//! A few SQLite connections shared by many tasks. Every call runs on tokio's blocking pool, so
//! the async runtime never waits on SQLite's file locks.

use crate::codec::{Ctx, BACKEND};
use rusqlite::{Connection, OpenFlags};
use std::path::Path;
use std::sync::{Arc, Mutex};
use std::time::Duration;
use tokio::sync::Semaphore;
use toygres_core::crypto::CatalogKey;
use toygres_core::{Error, Result};

/// How [`crate::SqliteCatalog`] uses its file.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SqliteOptions {
    /// Connections kept open (default 4; an in-memory catalog always uses 1). WAL mode lets
    /// readers proceed while one connection writes.
    pub connections: usize,
    /// How long a statement waits for another connection or process to release its lock before
    /// failing with a "busy" error (default 5 s).
    pub busy_timeout: Duration,
}

impl Default for SqliteOptions {
    fn default() -> Self {
        Self { connections: 4, busy_timeout: Duration::from_secs(5) }
    }
}

/// The connections, the key, and where they point (for error messages).
pub struct Pool {
    idle: Mutex<Vec<Connection>>,
    permits: Arc<Semaphore>,
    key: CatalogKey,
    location: String,
}

/// One opened connection with the catalog's settings applied.
pub fn connect(path: Option<&Path>, options: &SqliteOptions) -> Result<Connection> {
    let conn = match path {
        Some(path) => Connection::open_with_flags(
            path,
            OpenFlags::SQLITE_OPEN_READ_WRITE | OpenFlags::SQLITE_OPEN_CREATE | OpenFlags::SQLITE_OPEN_NO_MUTEX,
        ),
        None => Connection::open_in_memory(),
    }
    .ctx("open the catalog database")?;
    if let Some(path) = path {
        // Sealed passwords and every record: this process's user only. SQLite gives its -wal and
        // -shm files the database file's mode.
        use std::os::unix::fs::PermissionsExt;
        std::fs::set_permissions(path, std::fs::Permissions::from_mode(0o600))
            .map_err(|e| Error::backend(BACKEND, format!("making {} private (mode 0600)", path.display()), e))?;
    }
    conn.busy_timeout(options.busy_timeout).ctx("set the busy timeout")?;
    if path.is_some() {
        let mode = switch_to_wal(&conn, options.busy_timeout)?;
        if !mode.eq_ignore_ascii_case("wal") {
            return Err(Error::backend_msg(
                BACKEND,
                format!("the file stays in journal mode {mode:?}, not WAL; put the catalog on a local file system"),
            ));
        }
    }
    conn.pragma_update(None, "foreign_keys", true).ctx("enable foreign keys")?;
    Ok(conn)
}

/// `PRAGMA journal_mode = WAL`, retried for up to `timeout` while the file is busy: two
/// connections switching one fresh file at the same moment each hold a lock the other needs, so
/// SQLite answers one of them "database is locked" at once, without its busy handler. Returns
/// the journal mode the file ends in.
fn switch_to_wal(conn: &Connection, timeout: Duration) -> Result<String> {
    let deadline = std::time::Instant::now() + timeout;
    let mut pause = Duration::from_millis(1);
    loop {
        let switched = conn.pragma_update_and_check(None, "journal_mode", "WAL", |r| r.get::<_, String>(0));
        match switched {
            Err(rusqlite::Error::SqliteFailure(e, _))
                if e.code == rusqlite::ErrorCode::DatabaseBusy && std::time::Instant::now() < deadline =>
            {
                std::thread::sleep(pause);
                pause = (pause * 2).min(Duration::from_millis(50));
            }
            other => return other.ctx("switch to WAL mode"),
        }
    }
}

impl Pool {
    /// A pool of the given connections.
    pub fn new(connections: Vec<Connection>, key: CatalogKey, location: String) -> Self {
        let permits = Arc::new(Semaphore::new(connections.len()));
        Self { idle: Mutex::new(connections), permits, key, location }
    }

    /// Where the catalog lives, e.g. its path or `:memory:`.
    pub fn location(&self) -> &str {
        &self.location
    }

    /// Runs `f` with a connection on the blocking pool. Errors name the catalog's location.
    pub async fn run<T, F>(self: &Arc<Self>, f: F) -> Result<T>
    where
        T: Send + 'static,
        F: FnOnce(&mut Connection, &CatalogKey) -> Result<T> + Send + 'static,
    {
        let permit = self.permits.clone().acquire_owned().await.expect("the semaphore is never closed");
        let pool = self.clone();
        let joined = tokio::task::spawn_blocking(move || {
            // The permit moves here, so a cancelled caller cannot hand this connection out twice.
            let _permit = permit;
            let mut lease = Lease { pool: &pool, conn: pool.lock().pop() };
            let conn = lease.conn.as_mut().expect("a permit guarantees an idle connection");
            f(conn, &pool.key).map_err(|e| pool.locate(e))
        })
        .await;
        joined.map_err(|e| Error::backend(BACKEND, format!("{}: a catalog call panicked", self.location), e))?
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Vec<Connection>> {
        self.idle.lock().unwrap_or_else(|p| p.into_inner())
    }

    fn locate(&self, e: Error) -> Error {
        match e {
            Error::Backend { backend, class, message, source } => {
                Error::Backend { backend, class, message: format!("{}: {message}", self.location), source }
            }
            other => other,
        }
    }
}

/// Puts the connection back even if the call panics.
struct Lease<'a> {
    pool: &'a Pool,
    conn: Option<Connection>,
}

impl Drop for Lease<'_> {
    fn drop(&mut self) {
        if let Some(conn) = self.conn.take() {
            self.pool.lock().push(conn);
        }
    }
}
