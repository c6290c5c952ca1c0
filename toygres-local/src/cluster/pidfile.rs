//! `postmaster.pid`: which postmaster owns a data directory, when it started, and whether it
//! accepts connections yet. Waiting on it directly notices a start or a stop within milliseconds;
//! `pg_ctl -w` looks only every 100 ms (measured here: a start took 0.12 s through `pg_ctl -w`,
//! the server itself was ready after 0.015 s).

use std::os::unix::fs::MetadataExt;
use std::path::Path;
use std::time::Duration;

/// How often a wait looks at the pid file.
pub(crate) const POLL: Duration = Duration::from_millis(5);

/// What `postmaster.pid` says (PostgreSQL 10 and later).
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct PidFile {
    /// The postmaster's process id (line 1).
    pub pid: i32,
    /// When it started, seconds since the epoch (line 3).
    pub started: i64,
    /// Whether it accepts connections: status `ready` or `standby` (line 8), as `pg_ctl` reads it.
    pub ready: bool,
}

impl PidFile {
    /// Parses the file's text; `None` while it is being written or is not a postmaster's.
    pub(crate) fn parse(text: &str) -> Option<Self> {
        let lines: Vec<&str> = text.lines().collect();
        let pid = lines.first()?.trim().parse().ok()?;
        let started = lines.get(2).and_then(|l| l.trim().parse().ok()).unwrap_or(0);
        let ready = lines.get(7).is_some_and(|l| matches!(l.trim(), "ready" | "standby"));
        Some(Self { pid, started, ready })
    }

    /// Reads `<data_dir>/postmaster.pid`, if it exists, parses, and names the live postmaster of
    /// `data_dir` running as `uid` ([`is_postmaster_of`]). The file lies in a directory the
    /// server, and so whoever holds the instance's password, can write: a pid from it is never
    /// trusted before that check (a planted `-1` would make root signal every process).
    pub(crate) fn read(data_dir: &Path, uid: u32) -> Option<Self> {
        let file = Self::parse(&std::fs::read_to_string(data_dir.join("postmaster.pid")).ok()?)?;
        is_postmaster_of(file.pid, data_dir, uid).then_some(file)
    }
}

/// Whether process `pid` is the postmaster of `data_dir` running as `uid`: a pid above 1, a live
/// process owned by `uid` whose working directory is `data_dir` (a postmaster changes into its
/// data directory when it starts, before it writes `postmaster.pid`).
pub(crate) fn is_postmaster_of(pid: i32, data_dir: &Path, uid: u32) -> bool {
    if pid <= 1 {
        return false;
    }
    let proc = Path::new("/proc").join(pid.to_string());
    let owned = std::fs::metadata(&proc).is_ok_and(|m| m.uid() == uid);
    let cwd = std::fs::read_link(proc.join("cwd"));
    owned && matches!((cwd, data_dir.canonicalize()), (Ok(cwd), Ok(dir)) if cwd == dir)
}

#[cfg(test)]
mod tests {
    use super::*;

    const READY: &str = "4242\n/data\n1764600000\n5432\n/socket\n127.0.0.1\n  1234567 0\nready   \n";

    #[test]
    fn reads_pid_start_and_status() {
        assert_eq!(PidFile::parse(READY), Some(PidFile { pid: 4242, started: 1764600000, ready: true }));
        let starting = READY.replace("ready   ", "starting");
        assert!(!PidFile::parse(&starting).unwrap().ready);
        assert!(PidFile::parse(&READY.replace("ready   ", "standby ")).unwrap().ready);
    }

    #[test]
    fn only_the_data_directorys_own_postmaster_is_trusted() {
        let dir = tempfile::tempdir().unwrap();
        let uid = nix::unistd::Uid::effective().as_raw();
        for planted in [-1, 0, 1, std::process::id() as i32] {
            assert!(!is_postmaster_of(planted, dir.path(), uid), "pid {planted}");
            std::fs::write(dir.path().join("postmaster.pid"), READY.replacen("4242", &planted.to_string(), 1)).unwrap();
            assert_eq!(PidFile::read(dir.path(), uid), None, "pid {planted}");
        }
        // A process of `uid` working in the directory is its postmaster; of another uid, not.
        let mut child = std::process::Command::new("sleep").arg("30").current_dir(dir.path()).spawn().unwrap();
        let pid = child.id() as i32;
        assert!(is_postmaster_of(pid, dir.path(), uid));
        assert!(!is_postmaster_of(pid, dir.path(), uid + 1));
        assert!(!is_postmaster_of(pid, &std::env::temp_dir(), uid));
        child.kill().unwrap();
        child.wait().unwrap();
    }

    #[test]
    fn a_file_being_written_is_not_ready() {
        assert_eq!(PidFile::parse("4242\n/data\n"), Some(PidFile { pid: 4242, started: 0, ready: false }));
        assert_eq!(PidFile::parse(""), None);
        assert_eq!(PidFile::parse("not a pid\n"), None);
    }
}
