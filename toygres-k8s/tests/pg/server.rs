//! A PostgreSQL 15 server of the script tests, in a fresh temporary directory.

use super::{free_port, pwfile, tempdir, Postgres, PG15};
use std::path::{Path, PathBuf};

/// A running PostgreSQL 15 server whose temporary directory also holds the fake blob store
/// (`blobs/`), with what a test file keeps beside it (`extra`); stopped on drop. Each script test
/// file adds its own methods (`impl Server15<…>`: the type belongs to its crate).
pub struct Server15<T = ()> {
    pub pg: Postgres,
    pub tmp: tempfile::TempDir,
    pub port: u16,
    pub data: PathBuf,
    pub extra: T,
}

impl<T> Server15<T> {
    /// Creates and starts it; `prepare(pg, dir, data)` runs between `initdb` and the start and
    /// makes `extra`. `None` (after saying why) without the tools.
    pub fn create(prepare: impl FnOnce(&Postgres, &Path, &Path) -> T) -> Option<Self> {
        let Some(pg) = Postgres::find() else {
            eprintln!("SKIPPED: needs root, the postgres user, PostgreSQL 15, jq and zstd");
            return None;
        };
        let tmp = tempdir();
        pg.dir(&tmp.path().join("blobs"));
        let data = pg.dir(&tmp.path().join("source")).join("data");
        pg.initdb(PG15, &data, &pwfile(&pg, tmp.path()), "");
        let extra = prepare(&pg, tmp.path(), &data);
        let port = free_port();
        pg.start(PG15, &data, port);
        Some(Self { pg, tmp, port, data, extra })
    }

    /// Its temporary directory.
    pub fn dir(&self) -> &Path {
        self.tmp.path()
    }
}

impl<T> Drop for Server15<T> {
    fn drop(&mut self) {
        self.pg.stop(PG15, &self.data);
    }
}
