//! What runs on this machine, read from `/proc`: which server process runs a tool, and which
//! PostgreSQL servers run under a directory (none may be left behind); and stopping a child
//! process politely, then firmly ([`terminate`]). The replica bench
//! (`examples/bench_replicas`) includes this file too.

use std::path::Path;

/// `(pid, parent pid, command name)` of every process.
pub fn processes() -> Vec<(u32, u32, String)> {
    let Ok(dir) = std::fs::read_dir("/proc") else { return Vec::new() };
    dir.filter_map(|e| e.ok()?.file_name().to_str()?.parse::<u32>().ok())
        .filter_map(|pid| {
            let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
            // `pid (comm) state ppid …`; comm may hold spaces and parentheses.
            let (head, tail) = stat.rsplit_once(')')?;
            let comm = head.split_once('(')?.1.to_string();
            let ppid = tail.split_whitespace().nth(1)?.parse().ok()?;
            Some((pid, ppid, comm))
        })
        .collect()
}

/// The index in `ancestors` of the first of them met walking up from `pid` (itself included, at
/// most 16 steps) through the process table `all`.
pub fn ancestor_in(all: &[(u32, u32, String)], pid: u32, ancestors: &[u32]) -> Option<usize> {
    let mut at = pid;
    for _ in 0..16 {
        if let Some(i) = ancestors.iter().position(|a| *a == at) {
            return Some(i);
        }
        at = all.iter().find(|p| p.0 == at).map(|p| p.1).filter(|p| *p > 1)?;
    }
    None
}

/// Which of `servers` is an ancestor of a running process named `program` (e.g. `pg_restore`).
pub fn runner_of(program: &str, servers: &[u32]) -> Option<u32> {
    let all = processes();
    all.iter().filter(|p| p.2 == program).find_map(|p| ancestor_in(&all, p.0, servers)).map(|i| servers[i])
}

/// The PostgreSQL postmasters whose command line names a path under `dir`.
pub fn postmasters_under(dir: &Path) -> Vec<u32> {
    let all = processes();
    let dir = dir.to_string_lossy().to_string();
    let is_postgres = |pid: u32| {
        let cmdline = std::fs::read(format!("/proc/{pid}/cmdline")).unwrap_or_default();
        let cmdline = String::from_utf8_lossy(&cmdline).replace('\0', " ");
        cmdline.contains(&dir) && all.iter().any(|p| p.0 == pid && p.2 == "postgres")
    };
    let postgres: Vec<u32> = all.iter().map(|p| p.0).filter(|pid| is_postgres(*pid)).collect();
    // A postmaster's children (backends, checkpointer, …) have a postmaster as parent.
    all.iter().filter(|p| postgres.contains(&p.0) && !postgres.contains(&p.1)).map(|p| p.0).collect()
}

/// Stops `child` with SIGTERM, waiting up to `patience` for it to exit, then SIGKILL; reaps it.
pub fn terminate(child: &mut std::process::Child, patience: std::time::Duration) {
    use nix::sys::signal::{kill, Signal};
    let _ = kill(nix::unistd::Pid::from_raw(child.id() as i32), Signal::SIGTERM);
    let deadline = std::time::Instant::now() + patience;
    while std::time::Instant::now() < deadline {
        if let Ok(Some(_)) = child.try_wait() {
            return;
        }
        std::thread::sleep(std::time::Duration::from_millis(50));
    }
    let _ = child.kill();
    let _ = child.wait();
}
