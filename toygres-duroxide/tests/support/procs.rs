//! Processes through /proc: which run a program against a port, which belong to a base directory.

use std::path::Path;

fn read(pid: u32, file: &str) -> Vec<u8> {
    std::fs::read(format!("/proc/{pid}/{file}")).unwrap_or_default()
}

fn pids() -> Vec<u32> {
    std::fs::read_dir("/proc").unwrap().filter_map(|e| e.ok()?.file_name().to_str()?.parse().ok()).collect()
}

fn alive(pid: u32) -> bool {
    std::fs::read_to_string(format!("/proc/{pid}/stat"))
        .map(|s| s.rsplit_once(')').is_some_and(|(_, rest)| !rest.trim_start().starts_with('Z')))
        .unwrap_or(false)
}

/// Live processes running `program` (its command name) with `PGPORT=<port>` in their environment.
pub fn clients_of(program: &str, port: u16) -> Vec<u32> {
    let needle = format!("PGPORT={port}");
    pids()
        .into_iter()
        .filter(|&pid| String::from_utf8_lossy(&read(pid, "comm")).trim() == program)
        .filter(|&pid| read(pid, "environ").split(|b| *b == 0).any(|v| v == needle.as_bytes()))
        .filter(|&pid| alive(pid))
        .collect()
}

/// Live processes whose command line mentions `dir` (servers started on volumes under it).
pub fn under(dir: &Path) -> Vec<u32> {
    let needle = dir.display().to_string();
    let me = std::process::id();
    pids()
        .into_iter()
        .filter(|&pid| pid != me)
        .filter(|&pid| String::from_utf8_lossy(&read(pid, "cmdline")).replace('\0', " ").contains(&needle))
        .filter(|&pid| alive(pid))
        .collect()
}

/// SIGKILLs every process under `dir` (test teardown).
pub fn kill_servers_under(dir: &Path) {
    for pid in under(dir) {
        let _ = nix::sys::signal::kill(nix::unistd::Pid::from_raw(pid as i32), nix::sys::signal::Signal::SIGKILL);
    }
}
