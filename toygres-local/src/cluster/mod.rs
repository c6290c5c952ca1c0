//! A small harness for one local PostgreSQL cluster: `initdb` with a password, start and stop it on
//! 127.0.0.1 as a non-root OS user, and build client commands that authenticate without putting
//! the password in their arguments.
//!
//! The local executor runs every instance through [`LocalCluster`]; tests of other crates get a
//! throw-away server from [`LocalCluster::start_temporary`]:
//!
//! ```no_run
//! # async fn demo() -> toygres_core::Result<()> {
//! use toygres_core::Password;
//! let password = Password::generate();
//! let pg = toygres_local::LocalCluster::start_temporary(&password).await?;
//! let client = pg.cluster().connect("postgres", &password).await?;
//! client.simple_query("SELECT 1").await.unwrap();
//! // Dropping `pg` stops the server and removes its directory.
//! # Ok(()) }
//! ```
//!
//! Layout of a cluster directory: `data/` (mode 0700, owned by the server user), `socket/`,
//! `log/postgres.log`. The directory itself is mode 0711 so the server user can reach them.

mod binaries;
mod conn;
pub mod identity;
pub(crate) mod lockfile;
mod pidfile;
pub mod ports;
pub mod process;
pub mod reflink;
pub mod script;
mod server;
mod temp;
mod user;
pub(crate) mod writeback;

pub use binaries::{major_version, PgBinaries, PG_BIN_ENV};
pub(crate) use conn::quote_ident;
pub use conn::{with_connections_allowed, ConnParams};
pub use server::{process_alive, LOAD_ONLY_SETTINGS};
pub use temp::TempCluster;
pub(crate) use user::io_err;
pub use user::{create_traversable_dir, set_mode, ServerUser};

use std::path::{Path, PathBuf};

/// The bootstrap superuser of every cluster toygres creates.
pub const SUPERUSER: &str = "postgres";

/// One local PostgreSQL cluster: its directory, port, binaries and the OS user running it.
#[derive(Debug, Clone)]
pub struct LocalCluster {
    bin: PgBinaries,
    user: ServerUser,
    dir: PathBuf,
    port: u16,
}

impl LocalCluster {
    /// A cluster living in `dir` and listening on 127.0.0.1:`port`. Nothing is created yet.
    pub fn new(bin: PgBinaries, user: ServerUser, dir: impl Into<PathBuf>, port: u16) -> Self {
        Self { bin, user, dir: dir.into(), port }
    }

    /// The cluster's directory.
    pub fn dir(&self) -> &Path {
        &self.dir
    }

    /// `dir/data`, PostgreSQL's data directory.
    pub fn data_dir(&self) -> PathBuf {
        self.dir.join("data")
    }

    /// `dir/socket`, where the Unix socket lives.
    pub fn socket_dir(&self) -> PathBuf {
        self.dir.join("socket")
    }

    /// `dir/log/postgres.log`, the server log.
    pub fn log_file(&self) -> PathBuf {
        self.dir.join("log").join("postgres.log")
    }

    /// The TCP port.
    pub fn port(&self) -> u16 {
        self.port
    }

    /// The binaries.
    pub fn binaries(&self) -> &PgBinaries {
        &self.bin
    }

    /// The OS user running the server.
    pub fn server_user(&self) -> &ServerUser {
        &self.user
    }

    /// How clients reach it (127.0.0.1, port, superuser `postgres`).
    pub fn params(&self) -> ConnParams {
        ConnParams { host: "127.0.0.1".into(), port: self.port, user: SUPERUSER.into() }
    }

    /// Whether `initdb` completed here.
    pub fn is_initialized(&self) -> bool {
        self.data_dir().join("PG_VERSION").is_file()
    }
}
