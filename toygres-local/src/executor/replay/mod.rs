//! The replay of a point-in-time restore ([`RestoreJobSpec::recovery`](toygres_core::RestoreJobSpec::recovery)),
//! after the base image is unpacked: the archive's WAL is fetched in parallel ahead of the
//! server's replay ([`fetch`]) and placed atomically (written aside, then renamed: the server
//! never sees part of a file) into a spool only the instance's server user may read. The server
//! starts in recovery with a `restore_command` that hands it each file once it is placed
//! ([`script`]), stops at the target and promotes onto a new timeline; the spool is removed and
//! the server keeps running (the deploy finds it up).
//!
//! A target is replayed in standby mode (`standby.signal`): at the end of the WAL fetched the
//! server waits instead of failing with "recovery ended before configured recovery target was
//! reached". When it waits there, no transaction after the target exists in the archive (the
//! target was admitted inside the window), so the state is the target's: the server is started
//! again without a target and promotes at the end of the WAL. "Latest" replays everything
//! fetched (`recovery.signal`) and promotes.

mod fetch;
mod script;

use super::jobs::JobCtx;
use super::Inner;
use crate::cluster::LocalCluster;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};
use toygres_core::wal::{Lsn, RecoveryTarget, PARTIAL_SUFFIX};
use toygres_core::{Error, Password, RecoverySpec, Result};

const BACKEND: &str = "local executor";
/// How often the job looks at the server's replay.
const POLL: Duration = Duration::from_millis(200);
/// A standby whose replay has not moved for this long after every file was placed has replayed
/// all of them.
const STALL: Duration = Duration::from_secs(3);

/// Replays `spec` on `cluster` (its data directory holds the unpacked base image, not running)
/// and promotes it. The spool is `<instance dir>/wal-replay`.
pub(crate) async fn run(
    inner: &Inner,
    cluster: &LocalCluster,
    password: &Password,
    spec: &RecoverySpec,
    instance_dir: &Path,
    ctx: &JobCtx,
) -> Result<()> {
    let plan = &spec.plan;
    let archive = spec.archive();
    let contents = archive.contents(&*inner.blobs).await?;
    let objects = contents.replay_objects(plan.timeline, plan.from_lsn, plan.head_lsn)?;
    let histories: Vec<String> = contents.histories.iter().map(|t| format!("{t:08X}.history")).collect();
    let spool = Spool::create(instance_dir.join("wal-replay"), cluster.server_user().gid)?;
    let placed: Vec<String> = objects.iter().map(|o| o.trim_end_matches(PARTIAL_SUFFIX).to_string()).collect();
    spool.write_plan(histories.iter().chain(&placed))?;
    let command = script::write(&spool)?;
    ctx.log.line(&format!(
        "replaying {} WAL segments of instance {} on timeline {} from {} to {} ({})",
        objects.len(),
        plan.source_instance_id,
        plan.timeline,
        plan.from_lsn,
        plan.head_lsn,
        plan.target
    ));
    let fetcher = fetch::Fetcher::new(inner.blobs.clone(), archive, spec.data_key.clone(), spool.clone());
    fetcher.clone().all(histories.clone()).await?;
    // A failed fetch makes the restore_command abort the server at once (it must never take
    // the missing file for the archive's end and promote early).
    let failing = spool.clone();
    let fetching = tokio::spawn(async move {
        let fetched = fetcher.all(objects).await;
        if fetched.is_err() {
            failing.fail();
        }
        fetched
    });
    let started = Instant::now();
    let replayed = replay(cluster, password, &plan.target, &command, &fetching, &spool, ctx).await;
    if let Err(replay_error) = replayed {
        spool.fail();
        fetching.abort();
        let fetched = fetching.await;
        cluster.stop_immediate().await?;
        // The fetch's error (a changed object, a store down) says more than the server's.
        return Err(match fetched {
            Ok(Err(fetch_error)) => fetch_error,
            _ => replay_error,
        });
    }
    let stats = fetching.await.map_err(|e| Error::backend(BACKEND, "the WAL fetch task", e))??;
    let took = started.elapsed().as_secs_f64();
    ctx.log.line(&format!(
        "WAL fetched: {} bytes in {:.2} s ({:.1} MB/s, {} files in parallel); replayed and promoted in {took:.2} s",
        stats.bytes,
        stats.seconds,
        stats.bytes as f64 / 1e6 / stats.seconds.max(1e-3),
        fetch::PARALLEL
    ));
    spool.remove()
}

/// Starts the server in recovery and waits for its promotion; a standby waiting at the end of
/// the fetched WAL is started again without its target (see the module docs).
async fn replay(
    cluster: &LocalCluster,
    password: &Password,
    target: &RecoveryTarget,
    command: &str,
    fetching: &tokio::task::JoinHandle<Result<fetch::Stats>>,
    spool: &Spool,
    ctx: &JobCtx,
) -> Result<()> {
    let data = cluster.data_dir();
    let mut targeted = !matches!(target, RecoveryTarget::Latest);
    signal(&data, targeted)?;
    start(cluster, command, targeted.then_some(target)).await?;
    let mut last: Option<(Lsn, Instant)> = None;
    loop {
        tokio::time::sleep(POLL).await;
        if fetching.is_finished() && spool.failed() {
            return Err(Error::backend_msg(BACKEND, "fetching the WAL failed"));
        }
        let Some((recovering, replayed)) = status(cluster, password).await else { continue };
        if !recovering {
            // It keeps running: the deploy finds it up (a stop would cost a shutdown checkpoint
            // and a start; its recovery settings were for this run and no longer apply).
            ctx.log.line(&format!("promoted after replaying to {replayed}"));
            return Ok(());
        }
        let moved = last.is_none_or(|(lsn, _)| lsn != replayed);
        if moved {
            last = Some((replayed, Instant::now()));
        } else if targeted && fetching.is_finished() && last.is_some_and(|(_, at)| at.elapsed() >= STALL) {
            ctx.log.line(&format!(
                "replayed every archived file to {replayed} without passing the target: nothing after it was \
                 committed; promoting there"
            ));
            cluster.stop().await?;
            targeted = false;
            signal(&data, false)?;
            start(cluster, command, None).await?;
            last = None;
        }
    }
}

async fn start(cluster: &LocalCluster, command: &str, target: Option<&RecoveryTarget>) -> Result<()> {
    let owned = settings(command, target);
    let settings: Vec<(&str, &str)> = owned.iter().map(|(k, v)| (*k, v.as_str())).collect();
    cluster.start(&settings).await
}

/// `(in recovery, replayed up to)`, or `None` while the server does not answer yet.
async fn status(cluster: &LocalCluster, password: &Password) -> Option<(bool, Lsn)> {
    let client = cluster.connect("postgres", password).await.ok()?;
    let sql = "SELECT pg_catalog.pg_is_in_recovery(), coalesce(pg_catalog.pg_last_wal_replay_lsn(), '0/0')::text";
    let row = client.query_one(sql, &[]).await.ok()?;
    Some((row.get(0), row.get::<_, String>(1).parse().ok()?))
}

/// `standby.signal` for a targeted replay, `recovery.signal` otherwise (the other removed).
fn signal(data: &Path, standby: bool) -> Result<()> {
    let (write, remove) =
        if standby { ("standby.signal", "recovery.signal") } else { ("recovery.signal", "standby.signal") };
    let _ = std::fs::remove_file(data.join(remove));
    std::fs::write(data.join(write), b"").map_err(|e| crate::cluster::io_err(format!("writing {write}"), e))
}

/// The settings of the replay run, quoted for `pg_ctl -o` (a shell line).
fn settings(command: &str, target: Option<&RecoveryTarget>) -> Vec<(&'static str, String)> {
    let mut s = vec![
        ("restore_command", shell_quote(command)),
        ("recovery_target_timeline", "current".to_string()),
        ("recovery_target_action", "promote".to_string()),
        ("archive_mode", "off".to_string()),
    ];
    match target {
        Some(RecoveryTarget::Time(t)) => {
            // PostgreSQL's own spelling: its check refuses ISO 8601's `T` and `Z`.
            s.push(("recovery_target_time", shell_quote(&t.format("%Y-%m-%d %H:%M:%S%.6f+00").to_string())))
        }
        Some(RecoveryTarget::Lsn(l)) => s.push(("recovery_target_lsn", shell_quote(&l.to_string()))),
        Some(RecoveryTarget::RestorePoint { name, .. }) => s.push(("recovery_target_name", shell_quote(name))),
        Some(RecoveryTarget::Latest) | None => {}
    }
    s
}

/// `text` as one shell word.
fn shell_quote(text: &str) -> String {
    format!("'{}'", text.replace('\'', "'\\''"))
}

/// The directory the fetched WAL is placed in: root's, readable by the server user's group only.
#[derive(Debug, Clone)]
pub(crate) struct Spool {
    pub(crate) dir: PathBuf,
    gid: u32,
}

impl Spool {
    fn create(dir: PathBuf, gid: u32) -> Result<Self> {
        let io = |what: &str, e| crate::cluster::io_err(format!("{what} {}", dir.display()), e);
        match std::fs::remove_dir_all(&dir) {
            Err(e) if e.kind() != std::io::ErrorKind::NotFound => return Err(io("removing", e)),
            _ => {}
        }
        std::fs::create_dir(&dir).map_err(|e| io("creating", e))?;
        std::os::unix::fs::chown(&dir, Some(0), Some(gid)).map_err(|e| io("chown", e))?;
        crate::cluster::set_mode(&dir, 0o750)?;
        Ok(Self { dir, gid })
    }

    /// Writes `name` atomically (aside, then renamed), mode `mode`, group the server user's.
    pub(crate) fn place(&self, name: &str, content: &[u8], mode: u32) -> Result<()> {
        use std::io::Write;
        use std::os::unix::fs::OpenOptionsExt;
        let (tmp, path) = (self.dir.join(format!(".{name}.tmp")), self.dir.join(name));
        let io = |e| crate::cluster::io_err(format!("placing {}", path.display()), e);
        let mut file =
            std::fs::OpenOptions::new().write(true).create(true).truncate(true).mode(mode).open(&tmp).map_err(io)?;
        file.write_all(content).map_err(io)?;
        std::os::unix::fs::fchown(&file, Some(0), Some(self.gid)).map_err(io)?;
        // Whatever the umask (`toygres serve` runs with 077): the server's group reads it.
        file.set_permissions(std::os::unix::fs::PermissionsExt::from_mode(mode)).map_err(io)?;
        drop(file);
        std::fs::rename(&tmp, &path).map_err(io)
    }

    fn write_plan<'a>(&self, names: impl Iterator<Item = &'a String>) -> Result<()> {
        let text: String = names.map(|n| format!("{n}\n")).collect();
        self.place("PLAN", text.as_bytes(), 0o640)
    }

    /// Makes the `restore_command` give up (the replay failed).
    fn fail(&self) {
        let _ = self.place("FAILED", b"", 0o640);
    }

    fn failed(&self) -> bool {
        self.dir.join("FAILED").exists()
    }

    fn remove(&self) -> Result<()> {
        std::fs::remove_dir_all(&self.dir)
            .map_err(|e| crate::cluster::io_err(format!("removing {}", self.dir.display()), e))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::os::unix::fs::MetadataExt;

    #[test]
    fn the_spool_is_roots_and_readable_by_the_server_group_only() {
        let dir = tempfile::tempdir().unwrap();
        let gid = nix::unistd::Gid::effective().as_raw();
        let spool = Spool::create(dir.path().join("wal-replay"), gid).unwrap();
        spool.place("000000010000000000000003", b"wal", 0o640).unwrap();
        let command = script::write(&spool).unwrap();
        assert!(command.ends_with("restore-wal.sh %f %p"), "{command}");
        let uid = nix::unistd::Uid::effective().as_raw();
        for (name, mode) in [("", 0o750), ("000000010000000000000003", 0o640), ("restore-wal.sh", 0o750)] {
            let meta = std::fs::metadata(spool.dir.join(name)).unwrap();
            assert_eq!((meta.uid(), meta.gid(), meta.mode() & 0o777), (uid, gid, mode), "{name:?}");
        }
        let left: Vec<_> = std::fs::read_dir(&spool.dir).unwrap().map(|e| e.unwrap().file_name()).collect();
        assert!(left.iter().all(|n| !n.to_string_lossy().ends_with(".tmp")), "placed atomically: {left:?}");
        assert!(!spool.failed());
        spool.fail();
        assert!(spool.failed());
    }

    #[test]
    fn settings_are_single_shell_words() {
        let target = RecoveryTarget::RestorePoint { name: "it's; rm -rf /".into(), lsn: Lsn(1) };
        let named = settings("/d/restore-wal.sh %f %p", Some(&target));
        let name = named.iter().find(|(k, _)| *k == "recovery_target_name").unwrap();
        assert_eq!(name.1, r"'it'\''s; rm -rf /'");
        let time = RecoveryTarget::Time(chrono::DateTime::from_timestamp_micros(1_764_931_200_123_456).unwrap());
        let timed = settings("/d/x %f %p", Some(&time));
        let time = timed.iter().find(|(k, _)| *k == "recovery_target_time").unwrap();
        assert_eq!(time.1, "'2025-12-05 10:40:00.123456+00'", "PostgreSQL's spelling, not ISO 8601's T and Z");
    }
}
