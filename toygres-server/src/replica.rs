//! How this process shares the work with the other replicas on the same store: its id, how often
//! it polls, how many jobs of each kind it runs, how long its leases last, and the sweeper's
//! settings. With the `postgres` feature and `TOYGRES_CATALOG_URL`, several `toygres serve`
//! processes on one PostgreSQL database (the catalog and the durable store) and one data directory
//! split the work; see `docs/replicas.md`.

use std::time::Duration;
use toygres_duroxide::{RuntimeBuilder, SweepSettings};

/// Options of `toygres serve` for running beside other replicas.
#[derive(Debug, Clone, clap::Args)]
pub struct ReplicaArgs {
    /// This process's name in logs and in `/healthz` (default: `<hostname>-<pid>`).
    #[arg(long, env = "TOYGRES_REPLICA_ID")]
    pub replica_id: Option<String>,
    /// How often each idle orchestration and short-step slot polls the durable store, in
    /// milliseconds (the store has no long polling: each replica's idle load on the database grows
    /// as this shrinks; job slots poll at least 100 ms apart).
    #[arg(long, env = "TOYGRES_POLL_INTERVAL_MS", default_value_t = 20, value_parser = clap::value_parser!(u64).range(1..=10_000))]
    pub poll_interval_ms: u64,
    /// Backup jobs this process runs at once (its own slots: backups never hold up restores).
    #[arg(long, env = "TOYGRES_BACKUP_SLOTS", default_value_t = 2, value_parser = clap::value_parser!(u32).range(1..=64))]
    pub backup_slots: u32,
    /// Restore jobs this process runs at once.
    #[arg(long, env = "TOYGRES_RESTORE_SLOTS", default_value_t = 2, value_parser = clap::value_parser!(u32).range(1..=64))]
    pub restore_slots: u32,
    /// Seconds a step's lease lasts: a replica that dies (or stops) holding a step loses it to
    /// another after this long; live leases are renewed at half of it.
    #[arg(long, env = "TOYGRES_LEASE_SECONDS", default_value_t = 10, value_parser = clap::value_parser!(u64).range(2..=3600))]
    pub lease_seconds: u64,
    /// Seconds between two sweeps (stuck records healed, old histories pruned, schedules taken).
    #[arg(long, env = "TOYGRES_SWEEP_INTERVAL_SECONDS", default_value_t = 15, value_parser = clap::value_parser!(u64).range(1..=3600))]
    pub sweep_interval_seconds: u64,
    /// Hours the durable history of a finished image or instance is kept (its record stays).
    #[arg(long, env = "TOYGRES_HISTORY_HOURS", default_value_t = 168, value_parser = clap::value_parser!(u64).range(1..))]
    pub history_hours: u64,
}

impl Default for ReplicaArgs {
    fn default() -> Self {
        Self {
            replica_id: None,
            poll_interval_ms: 20,
            backup_slots: 2,
            restore_slots: 2,
            lease_seconds: 10,
            sweep_interval_seconds: 15,
            history_hours: 168,
        }
    }
}

/// How long a dead replica's orchestration turn stays locked before another takes it.
const ORCHESTRATION_LOCK: Duration = Duration::from_secs(5);

impl ReplicaArgs {
    /// The replica's id: as given, or `<hostname>-<pid>`.
    pub fn id(&self) -> String {
        self.replica_id.clone().unwrap_or_else(|| {
            let host = std::fs::read_to_string("/proc/sys/kernel/hostname").unwrap_or_default();
            format!("{}-{}", host.trim(), std::process::id())
        })
    }

    /// Applies the settings to a durable runtime's builder.
    pub fn configure(&self, builder: RuntimeBuilder) -> RuntimeBuilder {
        let sweep =
            SweepSettings { history_age: Duration::from_secs(self.history_hours * 3600), ..SweepSettings::default() };
        builder
            .poll_interval(Duration::from_millis(self.poll_interval_ms))
            .job_capacity(self.backup_slots as usize, self.restore_slots as usize)
            .lock_timeouts(ORCHESTRATION_LOCK, Duration::from_secs(self.lease_seconds))
            .sweeper(Duration::from_secs(self.sweep_interval_seconds), sweep)
    }
}
