//! The toygres side of the point-in-time bench: a restore of a protected instance to its latest
//! moment, timed until `create_instance` returns (the server runs, promoted, and its connection
//! test passed), and the restore job's own account of its WAL fetch and replay, read from its log
//! ([`joblog`]) line `WAL fetched: <bytes> bytes in <s> s (<MB/s> MB/s, 4 files in parallel);
//! replayed and promoted in <s> s`.

use crate::joblog;
use crate::BoxResult;
use std::path::Path;
use std::time::{Duration, Instant};
use toygres_core::wal::PointInTime;
use toygres_core::{CreateInstanceRequest, InstanceId, OperationId, Password};
use toygres_local::LocalExecutor;

/// What the restore job says of its WAL: the bytes placed, the fetch's time, and the time from
/// the server's start in recovery to its promotion, checkpoint and stop (which the fetch overlaps).
#[derive(Clone, Copy, Debug)]
pub struct Replay {
    pub bytes: u64,
    pub fetch_s: f64,
    pub replay_s: f64,
    /// Of `replay_s`, the time from the job's `replaying ` line to its `promoted after` line
    /// (server start and the replay itself; the rest is what the job does after the promotion), when both
    /// lines are in the log.
    pub to_promotion_s: Option<f64>,
}

impl Replay {
    /// Megabytes (10^6 bytes, as the job log counts them) replayed.
    pub fn mb(&self) -> f64 {
        self.bytes as f64 / 1e6
    }

    /// The fetch rate in MB/s.
    pub fn fetch_rate(&self) -> f64 {
        self.mb() / self.fetch_s.max(1e-3)
    }

    /// The replay rate in MB/s: every byte over the whole replay (start, replay, promotion,
    /// checkpoint, stop), so a lower bound of the server's own replay speed.
    pub fn replay_rate(&self) -> f64 {
        self.mb() / self.replay_s.max(1e-3)
    }
}

/// One timed restore: its time, the job's WAL figures, its job segments and the new instance.
pub struct Restored {
    pub time: Duration,
    pub replay: Replay,
    pub segments: Vec<(String, Duration)>,
    pub id: InstanceId,
}

/// Restores `source` to its latest moment as `name` under the executor whose base directory is
/// `base`, timed; then, untimed, checks that database `database` holds `history` pgbench history
/// rows (deleting the instance when it does not).
pub async fn restore(
    t: &toygres_core::Toygres,
    executor: &LocalExecutor,
    base: &Path,
    source: InstanceId,
    name: String,
    password: &Password,
    (database, history): (&str, i64),
) -> BoxResult<Restored> {
    let tail = joblog::Tail::start(base.join("jobs"), base.join("kept-job-logs"));
    let request = CreateInstanceRequest::at_point_in_time(name, PointInTime::latest(source));
    let started = Instant::now();
    let restored = t.create_instance(OperationId::new(), request).await;
    let time = started.elapsed();
    let log = tail.stop().await;
    let restored = restored?;
    let checked = async {
        let replay = parse(&log).ok_or_else(|| format!("no `WAL fetched:` line in the restore job's log:\n{log}"))?;
        let client = executor.cluster(&restored.spec())?.connect(database, password).await?;
        let rows: i64 = client.query_one("SELECT count(*) FROM pgbench_history", &[]).await?.get(0);
        if rows != history {
            return Err(format!("toygres restored {rows} pgbench_history rows, the source had {history}").into());
        }
        Ok::<_, Box<dyn std::error::Error>>(replay)
    }
    .await;
    match checked {
        Ok(replay) => Ok(Restored { time, replay, segments: joblog::segments(&log), id: restored.id }),
        Err(e) => {
            t.delete_instance(restored.id).await?;
            Err(e)
        }
    }
}

/// The `WAL fetched:` line of a restore job's log.
pub fn parse(log: &str) -> Option<Replay> {
    let line = log.lines().find_map(|l| l.split_once("WAL fetched: ").map(|(_, rest)| rest))?;
    let (bytes, rest) = line.split_once(" bytes in ")?;
    let (fetch_s, rest) = rest.split_once(" s (")?;
    let replay_s = rest.split_once("replayed and promoted in ")?.1.trim().trim_end_matches(" s");
    let to_promotion_s = match (stamp(log, "replaying "), stamp(log, "promoted after ")) {
        (Some(from), Some(to)) => Some((to - from).rem_euclid(86_400.0)),
        _ => None,
    };
    Some(Replay {
        bytes: bytes.trim().parse().ok()?,
        fetch_s: fetch_s.parse().ok()?,
        replay_s: replay_s.parse().ok()?,
        to_promotion_s,
    })
}

/// The time (seconds since midnight) of the first line of `log` whose text starts with `prefix`.
fn stamp(log: &str, prefix: &str) -> Option<f64> {
    let (at, _) = log.lines().filter_map(|l| l.split_once(' ')).find(|(_, text)| text.starts_with(prefix))?;
    let mut parts = at.split(':').map(|p| p.parse::<f64>().ok());
    Some(parts.next()?? * 3600.0 + parts.next()?? * 60.0 + parts.next()??)
}

#[cfg(test)]
mod tests {
    #[test]
    fn parses_the_job_line() {
        let log = "12:00:00.000 job started\n12:00:00.250 replaying 64 WAL segments of x\n12:00:08.000 promoted after \
                   replaying to 0/1\n12:00:09.000 WAL fetched: 1073741824 bytes in 2.50 s (429.5 MB/s, 4 \
                   files in parallel); replayed and promoted in 9.75 s\n";
        let r = super::parse(log).unwrap();
        assert_eq!(r.bytes, 1_073_741_824);
        assert_eq!((r.fetch_s, r.replay_s, r.to_promotion_s), (2.5, 9.75, Some(7.75)));
    }
}
