//! What runs on this machine, read from `/proc`: which server process runs a tool, and which
//! PostgreSQL servers run under a directory (none may be left behind).

use std::path::Path;

/// `(pid, parent pid, command name)` of every process.
fn processes() -> Vec<(u32, u32, String)> {
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

/// Which of `servers` is an ancestor of a running process named `program` (e.g. `pg_restore`).
pub fn runner_of(program: &str, servers: &[u32]) -> Option<u32> {
    let all = processes();
    let parent = |pid: u32| all.iter().find(|p| p.0 == pid).map(|p| p.1);
    for (pid, _, comm) in all.iter().filter(|p| p.2 == program) {
        let mut at = *pid;
        for _ in 0..16 {
            if servers.contains(&at) {
                return Some(at);
            }
            match parent(at) {
                Some(p) if p > 1 => at = p,
                _ => break,
            }
        }
        let _ = comm;
    }
    None
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
