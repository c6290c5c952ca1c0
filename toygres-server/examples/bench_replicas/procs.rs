//! What the replicas do during a burst, read from `/proc`: how many backup jobs each one runs at
//! once (its `pg_dump` of the bench database, one per job), the CPU time each one and its
//! children used, and how busy the machine's cores were.

use super::proc_tree::{ancestor_in, processes};

/// Whether `pid` is a job's data dump of `database`: `pg_dump --format=custom` with
/// `PGDATABASE=<database>` (a job's other `pg_dump` and `pg_dumpall` runs are not counted).
fn dumps(pid: u32, database: &str) -> bool {
    let read = |what: &str| std::fs::read(format!("/proc/{pid}/{what}")).unwrap_or_default();
    let has = |bytes: Vec<u8>, arg: &str| bytes.split(|b| *b == 0).any(|a| a == arg.as_bytes());
    has(read("cmdline"), "--format=custom") && has(read("environ"), &format!("PGDATABASE={database}"))
}

/// How many data dumps of `database` run under each of `ancestors` (same order).
pub fn dumping_under(database: &str, ancestors: &[u32]) -> Vec<usize> {
    let all = processes();
    let mut counts = vec![0; ancestors.len()];
    for (pid, _, _) in all.iter().filter(|p| p.2 == "pg_dump" && dumps(p.0, database)) {
        if let Some(i) = ancestor_in(&all, *pid, ancestors) {
            counts[i] += 1;
        }
    }
    counts
}

/// The largest count seen per replica over several samples.
#[derive(Debug, Clone, Default)]
pub struct Peaks(pub Vec<usize>);

impl Peaks {
    /// Takes one sample of the data dumps of `database` under `ancestors`.
    pub fn sample(&mut self, database: &str, ancestors: &[u32]) {
        let counts = dumping_under(database, ancestors);
        self.0.resize(counts.len().max(self.0.len()), 0);
        for (peak, count) in self.0.iter_mut().zip(counts) {
            *peak = (*peak).max(count);
        }
    }

    /// `4+4+3`.
    pub fn show(&self) -> String {
        self.0.iter().map(usize::to_string).collect::<Vec<_>>().join("+")
    }
}

/// Clock ticks per second of `/proc`'s times.
fn ticks_per_second() -> f64 {
    // SAFETY: sysconf(3) only reads a configuration value.
    let ticks = unsafe { libc::sysconf(libc::_SC_CLK_TCK) };
    if ticks > 0 {
        ticks as f64
    } else {
        100.0
    }
}

/// CPU seconds used by `pid` and its children it has waited for (its `pg_dump` runs):
/// utime + stime + cutime + cstime.
pub fn cpu_seconds(pid: u32) -> f64 {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).unwrap_or_default();
    let Some((_, tail)) = stat.rsplit_once(')') else { return 0.0 };
    // After `)`: state ppid pgrp session tty tpgid flags minflt cminflt majflt cmajflt utime …
    let ticks: u64 = tail.split_whitespace().skip(11).take(4).filter_map(|v| v.parse::<u64>().ok()).sum();
    ticks as f64 / ticks_per_second()
}

/// The machine's `(busy, total)` CPU ticks since boot, all cores (`/proc/stat`; iowait counts
/// as idle).
pub fn machine_ticks() -> (u64, u64) {
    let stat = std::fs::read_to_string("/proc/stat").unwrap_or_default();
    let Some(line) = stat.lines().next() else { return (0, 0) };
    let values: Vec<u64> = line.split_whitespace().skip(1).filter_map(|v| v.parse().ok()).collect();
    // user nice system idle iowait irq softirq steal guest guest_nice (guests are in user).
    let total: u64 = values.iter().take(8).sum();
    let idle = values.get(3).copied().unwrap_or(0) + values.get(4).copied().unwrap_or(0);
    (total - idle, total)
}

/// How busy the cores were between two [`machine_ticks`] readings, in percent.
pub fn busy_percent(before: (u64, u64), after: (u64, u64)) -> f64 {
    let total = after.1.saturating_sub(before.1).max(1);
    100.0 * after.0.saturating_sub(before.0) as f64 / total as f64
}
