//! The WAL after the base: pgbench (TPC-B-like, `--no-vacuum`) runs on the source until
//! `pg_current_wal_lsn()` has moved by the size asked for, while the toygres archive's RPO
//! (`recovery_window(..).rpo_seconds`: how far its head is behind now) is sampled every 250 ms.
//! Then every archive is brought to the end of it: the source's last segment switched, the
//! plain and pgBackRest archives waited for (`pg_stat_archiver`), and the toygres archive's head
//! waited for until it passes the last record the load wrote.

use crate::BoxResult;
use std::time::{Duration, Instant};
use toygres_core::{InstanceId, Password, Toygres};
use toygres_local::LocalCluster;

/// How often the RPO (and the WAL position) is sampled during the load.
const SAMPLE: Duration = Duration::from_millis(250);
/// How long the archives may take to catch up with the end of the load.
const CATCH_UP: Duration = Duration::from_secs(300);

/// One load: the WAL it wrote, its time, pgbench's transactions, and the RPO samples (s).
pub struct Load {
    pub wal_bytes: u64,
    pub took: Duration,
    pub transactions: i64,
    pub rpo: Vec<f64>,
}

/// `X/Y` as a number.
fn parse_lsn(text: &str) -> BoxResult<u64> {
    let (hi, lo) = text.split_once('/').ok_or_else(|| format!("not an LSN: {text}"))?;
    Ok((u64::from_str_radix(hi, 16)? << 32) | u64::from_str_radix(lo, 16)?)
}

/// The server's WAL position (a macro: the client's type comes from a crate not named here).
macro_rules! current_lsn {
    ($client:expr) => {
        parse_lsn(&$client.query_one("SELECT pg_current_wal_lsn()::text", &[]).await?.get::<_, String>(0))
    };
}

/// The pgbench history rows (one per committed transaction).
macro_rules! history {
    ($client:expr) => {
        $client.query_one("SELECT count(*) FROM pgbench_history", &[]).await?.get::<_, i64>(0)
    };
}

/// Runs pgbench with `clients` clients on `database` of `source` (the instance `id`) until it has
/// written `wal_bytes` of WAL, sampling the RPO; stops it and waits for its backends to go.
pub async fn run(
    t: &Toygres,
    id: InstanceId,
    source: &LocalCluster,
    password: &Password,
    database: &str,
    wal_bytes: u64,
    clients: u32,
) -> BoxResult<Load> {
    let client = source.connect(database, password).await?;
    let (start, before) = (current_lsn!(client)?, history!(client));
    let mut cmd = source.client("pgbench", password);
    let c = clients.to_string();
    cmd.args(["--no-vacuum", "--client", &c, "--jobs", &c, "--time", "86400", database]);
    cmd.stdout(std::process::Stdio::null()).stderr(std::process::Stdio::null()).kill_on_drop(true);
    let mut pgbench = cmd.spawn().map_err(|e| format!("starting pgbench: {e}"))?;
    let started = Instant::now();
    let mut tick = tokio::time::interval(SAMPLE);
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    let (mut rpo, mut shown) = (Vec::new(), 0u64);
    let result = async {
        loop {
            tick.tick().await;
            if let Some(status) = pgbench.try_wait()? {
                return Err(format!("pgbench exited early ({status})").into());
            }
            if let Some(seconds) = t.recovery_window(id).await?.rpo_seconds {
                rpo.push(seconds);
            }
            let written = current_lsn!(client)?.saturating_sub(start);
            if written >= wal_bytes {
                return Ok::<_, Box<dyn std::error::Error>>(written);
            }
            if written >= shown + (256 << 20) {
                shown = written / (256 << 20) * (256 << 20);
                println!(
                    "    {:.0} MiB of WAL after {:.0} s, RPO now {:.2} s",
                    written as f64 / 1048576.0,
                    started.elapsed().as_secs_f64(),
                    rpo.last().copied().unwrap_or(f64::NAN)
                );
            }
        }
    }
    .await;
    let _ = pgbench.start_kill();
    let _ = pgbench.wait().await;
    let took = started.elapsed();
    let written = result?;
    // The killed client's backends end their transactions (a commit already sent still commits).
    let sql = "SELECT count(*) FROM pg_stat_activity WHERE datname = $1 AND pid <> pg_backend_pid() AND \
               backend_type = 'client backend'";
    let deadline = Instant::now() + Duration::from_secs(30);
    while client.query_one(sql, &[&database]).await?.get::<_, i64>(0) > 0 {
        if Instant::now() >= deadline {
            return Err("pgbench's backends did not end within 30 s".into());
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    Ok(Load { wal_bytes: written, took, transactions: history!(client) - before, rpo })
}

/// Brings every archive to the end of the load: returns the source's pgbench history rows (what
/// each restore must hold) and how long the plain/pgBackRest archiver and the toygres archive
/// took to catch up after the load ended.
pub async fn seal(
    t: &Toygres,
    id: InstanceId,
    source: &LocalCluster,
    password: &Password,
    database: &str,
) -> BoxResult<(i64, Duration, Duration)> {
    let client = source.connect(database, password).await?;
    let rows = history!(client);
    let end = current_lsn!(client)?;
    let started = Instant::now();
    let toygres = async {
        loop {
            let window = t.recovery_window(id).await?;
            let head = match &window.latest {
                Some(latest) => parse_lsn(&latest.lsn.to_string())?,
                None => 0,
            };
            if head >= end {
                return Ok::<_, Box<dyn std::error::Error>>(started.elapsed());
            }
            if started.elapsed() >= CATCH_UP {
                return Err(format!("the toygres archive's head stayed at {head:X}, before {end:X}").into());
            }
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    };
    let archiver = async {
        let switched: String = client.query_one("SELECT pg_walfile_name(pg_switch_wal())", &[]).await?.get(0);
        loop {
            let row = client
                .query_one("SELECT coalesce(last_archived_wal, ''), failed_count FROM pg_stat_archiver", &[])
                .await?;
            let (last, failed): (String, i64) = (row.get(0), row.get(1));
            if last.len() == switched.len() && last >= switched {
                return Ok::<_, Box<dyn std::error::Error>>(started.elapsed());
            }
            if started.elapsed() >= CATCH_UP {
                return Err(format!("the archiver stayed at {last:?} ({failed} failures), before {switched}").into());
            }
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    };
    let (toygres, archiver) = tokio::join!(toygres, archiver);
    Ok((rows, archiver?, toygres?))
}
