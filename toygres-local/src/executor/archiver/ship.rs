//! The supervisor: keeps a receiver running and ships what it wrote into the archive.

use super::receiver::{self, SlotStart};
use super::state::State;
use super::{BACKEND, SLOT, TICK};
use crate::executor::Inner;
use chrono::{DateTime, Utc};
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::{Duration, Instant};
use tokio::sync::watch;
use toygres_core::envelope::DataKey;
use toygres_core::wal::{
    parse_history_name, parse_segment_name, ArchiveHead, Lsn, TimelineSwitch, WalArchive, WalGap, PARTIAL_SUFFIX,
    SEGMENT_SIZE,
};
use toygres_core::{BlobStore, Error, Result, WalArchiveSpec};

/// The segment being written is shipped at most this often (it is rewritten whole).
const PARTIAL_EVERY: Duration = Duration::from_millis(250);
/// The head is rewritten at least this often while the server is quiet (its time moves on).
const HEAD_EVERY: Duration = Duration::from_millis(500);
/// The server positions remembered, one per round (a few seconds' worth).
const SAMPLES: usize = 64;

/// Runs until stopped: restarts the receiver whenever it exits, ships every [`TICK`].
pub(super) async fn supervise(
    inner: Arc<Inner>,
    spec: WalArchiveSpec,
    slot_start: SlotStart,
    mut stopped: watch::Receiver<bool>,
) -> Result<()> {
    let dir = super::dir(&inner, spec.instance.id);
    let mut shipper = Shipper::open(&inner, &spec, &dir, slot_start).await?;
    let mut child: Option<tokio::process::Child> = None;
    let mut warned = Instant::now() - Duration::from_secs(60);
    loop {
        if *stopped.borrow() || dir.join("stop").exists() {
            if let Some(mut child) = child {
                let _ = child.kill().await;
            }
            return Ok(());
        }
        let cluster = inner.cluster_of(&spec.instance)?;
        let exited = match child.as_mut().map(|c| c.try_wait()) {
            Some(Ok(Some(status))) => Some(status.to_string()),
            Some(Err(e)) => Some(e.to_string()),
            _ => None,
        };
        if let Some(status) = exited {
            let log = std::fs::read_to_string(dir.join("receiver.log")).unwrap_or_default();
            let last = log.lines().rev().take(4).collect::<Vec<_>>().join(" | ");
            tracing::warn!(instance = %spec.instance.id, %status, last, "pg_receivewal exited; starting it again");
            shipper.head.receiver_restarts += 1;
            child = None;
        }
        if child.is_none() && cluster.is_running() {
            match receiver::spawn(&cluster, &spec.password, &dir) {
                Ok(c) => child = Some(c),
                Err(e) => tracing::warn!(instance = %spec.instance.id, error = %e, "cannot start pg_receivewal"),
            }
        }
        if let Err(e) = shipper.tick(&cluster, &spec).await {
            shipper.client = None;
            if warned.elapsed() > Duration::from_secs(30) {
                tracing::warn!(instance = %spec.instance.id, error = %e, "shipping WAL failed; retrying");
                warned = Instant::now();
            }
        }
        tokio::select! {
            _ = tokio::time::sleep(TICK) => {}
            _ = stopped.changed() => {}
        }
    }
}

struct Shipper {
    blobs: Arc<dyn BlobStore>,
    archive: WalArchive,
    key: Option<DataKey>,
    dir: PathBuf,
    state: State,
    head: ArchiveHead,
    head_written: Option<Instant>,
    /// The partial segment last shipped: its name, how far it covered, when.
    partial: Option<(String, Lsn, Instant)>,
    /// The server's `(position, time)` of the last rounds, oldest first.
    samples: std::collections::VecDeque<(Lsn, DateTime<Utc>)>,
    client: Option<tokio_postgres::Client>,
}

impl Shipper {
    /// The archive's head as stored, continued from `slot` (a gap when the slot was created
    /// after it: WAL was lost, or archiving was stopped in between).
    async fn open(inner: &Inner, spec: &WalArchiveSpec, dir: &Path, slot: SlotStart) -> Result<Self> {
        let archive = spec.archive();
        let blobs = inner.blobs.clone();
        let cluster = inner.cluster_of(&spec.instance)?;
        let client = cluster.connect("postgres", &spec.password).await?;
        let sql = "SELECT timeline_id::int8 FROM pg_catalog.pg_control_checkpoint()";
        let row = client.query_one(sql, &[]).await.map_err(|e| Error::backend(BACKEND, "reading the timeline", e))?;
        let timeline = row.get::<_, i64>(0) as u32;
        let now = Utc::now();
        let head = match archive.head(&*blobs, spec.data_key.as_ref()).await? {
            Some(mut head) => {
                if slot.created && slot.lsn > head.lsn {
                    head.gaps.push(WalGap { from: head.lsn, to: slot.lsn, detected_at: now });
                    head.start_lsn = slot.lsn;
                    head.lsn = slot.lsn;
                }
                head
            }
            None => ArchiveHead {
                timeline,
                start_lsn: slot.lsn,
                lsn: slot.lsn,
                time: now,
                gaps: vec![],
                timeline_switches: vec![],
                receiver_restarts: 0,
            },
        };
        let state = State::load(dir);
        Ok(Self {
            blobs,
            archive,
            key: spec.data_key.clone(),
            dir: dir.to_path_buf(),
            state,
            head,
            head_written: None,
            partial: None,
            samples: Default::default(),
            client: Some(client),
        })
    }

    async fn client(
        &mut self,
        cluster: &crate::cluster::LocalCluster,
        spec: &WalArchiveSpec,
    ) -> Result<&tokio_postgres::Client> {
        if self.client.as_ref().is_none_or(|c| c.is_closed()) {
            self.client = Some(cluster.connect("postgres", &spec.password).await?);
        }
        Ok(self.client.as_ref().expect("connected"))
    }

    /// One round: where the server is (`l0` at `t0`, remembered in [`Shipper::samples`]) and
    /// what the receiver flushed, then every completed file, then the segment being written,
    /// then the head. The head moves to the newest sample whose position the archive holds: under
    /// a steady load the receiver is always a little behind the server's position of the same
    /// instant, so the previous round's sample is the one, and the RPO stays about a round and a
    /// partial upload.
    async fn tick(&mut self, cluster: &crate::cluster::LocalCluster, spec: &WalArchiveSpec) -> Result<()> {
        let sql = "SELECT pg_catalog.pg_current_wal_lsn()::text, \
                   (extract(epoch FROM pg_catalog.clock_timestamp()) * 1000000)::int8, \
                   (SELECT max(flush_lsn)::text FROM pg_catalog.pg_stat_replication WHERE application_name = $1)";
        let row = self.client(cluster, spec).await?.query_one(sql, &[&SLOT]).await;
        let row = row.map_err(|e| Error::backend(BACKEND, "reading the WAL position", e))?;
        let (l0, micros, flush): (String, i64, Option<String>) = (row.get(0), row.get(1), row.get(2));
        let (l0, t0): (Lsn, DateTime<Utc>) = (l0.parse()?, DateTime::from_timestamp_micros(micros).unwrap_or_default());
        let flushed: Option<Lsn> = flush.map(|f| f.parse()).transpose()?;
        self.samples.push_back((l0, t0));
        if self.samples.len() > SAMPLES {
            self.samples.pop_front();
        }

        let mut archived_to = self.ship_completed().await?;
        if let Some(flushed) = flushed {
            if let Some(covered) = self.ship_partial(flushed).await? {
                archived_to = archived_to.max(covered);
            }
        }
        let Some(&(lsn, time)) = self.samples.iter().rev().find(|(l, _)| *l <= archived_to) else { return Ok(()) };
        if lsn > self.head.lsn || (time > self.head.time && self.head_written.is_none_or(|w| w.elapsed() >= HEAD_EVERY))
        {
            self.head.lsn = self.head.lsn.max(lsn);
            self.head.time = self.head.time.max(time);
            self.archive.put_head(&*self.blobs, self.key.as_ref(), &self.head).await?;
            self.head_written = Some(Instant::now());
        }
        Ok(())
    }

    /// Ships the spool's history files and completed segments, oldest first, removing each
    /// segment once archived. Returns how far the archive's completed segments reach.
    async fn ship_completed(&mut self) -> Result<Lsn> {
        let spool = self.dir.join("spool");
        let mut names: Vec<String> = std::fs::read_dir(&spool)
            .map_err(|e| crate::cluster::io_err(format!("listing {}", spool.display()), e))?
            .filter_map(|e| e.ok()?.file_name().into_string().ok())
            .collect();
        names.sort();
        for name in &names {
            if let Some(timeline) = parse_history_name(name) {
                if !self.state.histories.contains(&timeline) {
                    self.put(name, &std::fs::read(spool.join(name)).map_err(|e| read_err(name, e))?).await?;
                    self.state.histories.push(timeline);
                    self.state.save(&self.dir)?;
                }
                continue;
            }
            let Some((timeline, segment)) = parse_segment_name(name) else { continue };
            self.follow(timeline, segment);
            self.put(name, &std::fs::read(spool.join(name)).map_err(|e| read_err(name, e))?).await?;
            let partial = format!("{name}{PARTIAL_SUFFIX}");
            self.blobs.delete_objects(&self.archive.location(), &[partial]).await?;
            self.state.last_complete = Some((timeline, segment));
            self.state.save(&self.dir)?;
            let _ = std::fs::remove_file(spool.join(name));
        }
        Ok(self.state.last_complete.map(|(_, s)| Lsn::of_segment(s + 1)).unwrap_or_default())
    }

    /// Records a gap or a timeline switch that completed segment `(timeline, segment)` reveals.
    fn follow(&mut self, timeline: u32, segment: u64) {
        let now = Utc::now();
        if timeline != self.head.timeline {
            let at = Lsn::of_segment(segment);
            self.head.timeline_switches.push(TimelineSwitch {
                from: self.head.timeline,
                to: timeline,
                at,
                detected_at: now,
            });
            self.head.timeline = timeline;
        } else if let Some((t, last)) = self.state.last_complete {
            if t == timeline && segment > last + 1 {
                let (from, to) = (Lsn::of_segment(last + 1), Lsn::of_segment(segment));
                self.head.gaps.push(WalGap { from, to, detected_at: now });
                self.head.start_lsn = to;
            }
        }
    }

    /// Ships the segment being written when it covers more than what was shipped of it, at most
    /// every [`PARTIAL_EVERY`]. The receiver had flushed `flushed` before the file is read, so
    /// what is read covers it. Returns how far the shipped partial covers.
    async fn ship_partial(&mut self, flushed: Lsn) -> Result<Option<Lsn>> {
        let spool = self.dir.join("spool");
        let name = (Lsn(flushed.0.saturating_sub(1)).segment_name(self.head.timeline)) + PARTIAL_SUFFIX;
        if let Some((shipped, covered, at)) = &self.partial {
            if *shipped == name && (*covered >= flushed || at.elapsed() < PARTIAL_EVERY) {
                return Ok(Some(*covered));
            }
        }
        let raw = match std::fs::read(spool.join(&name)) {
            Ok(raw) if raw.len() as u64 == SEGMENT_SIZE => raw,
            // Completed (renamed) meanwhile, or not created yet: the next round sees it.
            _ => return Ok(None),
        };
        self.put(&name, &raw).await?;
        self.partial = Some((name, flushed, Instant::now()));
        Ok(Some(flushed))
    }

    /// Compresses and seals `raw` off the runtime's threads, then writes it as `name`.
    async fn put(&self, name: &str, raw: &[u8]) -> Result<()> {
        let (archive, key, name_owned, raw) = (self.archive, self.key.clone(), name.to_string(), raw.to_vec());
        let stored = tokio::task::spawn_blocking(move || archive.encode(key.as_ref(), &name_owned, &raw))
            .await
            .map_err(|e| Error::backend(BACKEND, "compressing WAL", e))??;
        self.blobs.write(&self.archive.location(), name, stored.into()).await
    }
}

fn read_err(name: &str, e: std::io::Error) -> Error {
    crate::cluster::io_err(format!("reading spooled WAL {name}"), e)
}
