//! Finding PostgreSQL's binaries.

use std::path::{Path, PathBuf};
use toygres_core::{Error, Result};

/// Environment variable naming the directory of the server binaries (`initdb`, `pg_ctl`, ...).
pub const PG_BIN_ENV: &str = "TOYGRES_PG_BIN";

/// The directory holding PostgreSQL's binaries (`initdb`, `pg_ctl`, `pg_dump`, `psql`, ...).
///
/// ```no_run
/// let bin = toygres_local::PgBinaries::discover(None).unwrap();
/// println!("{}", bin.path("initdb").display());
/// ```
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PgBinaries {
    dir: PathBuf,
}

impl PgBinaries {
    /// Uses `dir` as it is (it must contain `initdb`).
    pub fn at(dir: impl Into<PathBuf>) -> Result<Self> {
        let dir = dir.into();
        if !dir.join("initdb").is_file() {
            return Err(Error::backend_msg(
                "local cluster",
                format!("{} has no initdb; point it at PostgreSQL's server bin directory", dir.display()),
            ));
        }
        Ok(Self { dir })
    }

    /// Finds the bin dir: `explicit` if given, else `$TOYGRES_PG_BIN`, else `pg_config --bindir`
    /// (when it holds `initdb`), else the newest `/usr/lib/postgresql/*/bin`.
    pub fn discover(explicit: Option<&Path>) -> Result<Self> {
        if let Some(dir) = explicit {
            return Self::at(dir);
        }
        if let Some(dir) = std::env::var_os(PG_BIN_ENV) {
            return Self::at(PathBuf::from(dir));
        }
        if let Some(dir) = pg_config_bindir().filter(|d| d.join("initdb").is_file()) {
            return Ok(Self { dir });
        }
        if let Some(dir) = newest_debian_bindir(Path::new("/usr/lib/postgresql")) {
            return Ok(Self { dir });
        }
        Err(Error::backend_msg(
            "local cluster",
            format!(
                "cannot find PostgreSQL's server binaries (initdb); install PostgreSQL \
                 (`apt-get install postgresql`) or set {PG_BIN_ENV} to its bin directory"
            ),
        ))
    }

    /// The directory.
    pub fn dir(&self) -> &Path {
        &self.dir
    }

    /// Path of binary `name` (e.g. `"pg_dump"`).
    pub fn path(&self, name: &str) -> PathBuf {
        self.dir.join(name)
    }

    /// The server's version, e.g. `"15.14"` (from `postgres --version`).
    pub async fn version(&self) -> Result<String> {
        let mut cmd = super::process::command(self.path("postgres"));
        cmd.arg("--version");
        let out = super::process::run(cmd, "postgres --version", &[]).await?;
        // "postgres (PostgreSQL) 15.14 (Debian 15.14-1.pgdg120+1)"
        out.split_whitespace().nth(2).map(str::to_string).ok_or_else(|| {
            Error::backend_msg("local cluster", format!("cannot read a version from `postgres --version`: {out:?}"))
        })
    }
}

impl PgBinaries {
    /// Whether these binaries are built with ICU (`pg_config --configure` lists `--with-icu`).
    /// Without `pg_config` beside them, assumed yes: the server then reports a missing provider
    /// itself.
    pub async fn has_icu(&self) -> bool {
        let mut cmd = super::process::command(self.path("pg_config"));
        cmd.arg("--configure");
        match super::process::run(cmd, "pg_config --configure", &[]).await {
            Ok(flags) => flags.contains("--with-icu"),
            Err(_) => true,
        }
    }
}

/// The major version of a PostgreSQL version string (`"15.14"` → 15, `"9.6.24"` → 9).
pub fn major_version(version: &str) -> Option<u32> {
    version.split(|c: char| !c.is_ascii_digit()).next()?.parse().ok()
}

fn pg_config_bindir() -> Option<PathBuf> {
    let out = super::process::std_command("pg_config").arg("--bindir").output().ok()?;
    out.status.success().then(|| PathBuf::from(String::from_utf8_lossy(&out.stdout).trim()))
}

/// The `<root>/<major>/bin` with the highest numeric major that holds `initdb`.
fn newest_debian_bindir(root: &Path) -> Option<PathBuf> {
    std::fs::read_dir(root)
        .ok()?
        .filter_map(|e| e.ok())
        .filter_map(|e| {
            let major: f64 = e.file_name().to_str()?.parse().ok()?;
            let bin = e.path().join("bin");
            bin.join("initdb").is_file().then_some((major, bin))
        })
        .max_by(|a, b| a.0.total_cmp(&b.0))
        .map(|(_, bin)| bin)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn picks_the_newest_major_with_initdb() {
        let root = tempfile::tempdir().unwrap();
        for (major, with_initdb) in [("9.6", true), ("15", true), ("16", false)] {
            let bin = root.path().join(major).join("bin");
            std::fs::create_dir_all(&bin).unwrap();
            if with_initdb {
                std::fs::write(bin.join("initdb"), "").unwrap();
            }
        }
        assert_eq!(newest_debian_bindir(root.path()), Some(root.path().join("15/bin")));
        assert!(PgBinaries::at(root.path().join("16/bin")).is_err());
    }

    #[test]
    fn major_versions() {
        assert_eq!(major_version("15.14"), Some(15));
        assert_eq!(major_version("16beta1"), Some(16));
        assert_eq!(major_version("x"), None);
    }
}
