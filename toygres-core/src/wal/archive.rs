//! An instance's WAL archive in the blob store: where it lives, how each object is written
//! (zstd with its content checksum, then sealed under the archive's key), and its head.
//!
//! Layout under `wal/<instance-id>/`: one object per completed 16 MiB segment (its 24-digit
//! name), the segment being written as `<name>.partial` (replaced as it grows, so that the
//! archive is at most a second behind the server), timeline history files (`<tli>.history`),
//! and [`HEAD_NAME`], the [`ArchiveHead`].

use super::lsn::{parse_history_name, parse_segment_name, segment_name, Lsn};
use crate::blob::{BlobStore, ImageLocation};
use crate::envelope::{object, DataKey};
use crate::error::{Error, Result};
use crate::ids::{ImageId, InstanceId};
use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use std::io::Read;

/// The head object's name.
pub const HEAD_NAME: &str = "head.json";
/// The suffix of the segment being written.
pub const PARTIAL_SUFFIX: &str = ".partial";
/// zstd level of archived WAL: fast enough to follow a busy server on one core.
const LEVEL: i32 = 1;

/// The WAL archive of one instance.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub struct WalArchive {
    /// The protected instance.
    pub instance: InstanceId,
}

impl WalArchive {
    /// The archive of `instance`.
    pub fn of(instance: InstanceId) -> Self {
        Self { instance }
    }

    /// Its objects' prefix, `wal/<instance-id>`, next to the images' `images/<id>`.
    pub fn location(&self) -> ImageLocation {
        ImageLocation { image_id: self.key_id(), prefix: format!("wal/{}", self.instance) }
    }

    /// The id its data key is wrapped for and its objects are sealed under: the instance's
    /// UUID in the image id space (ids are random v4 UUIDs, so no image shares it).
    pub fn key_id(&self) -> ImageId {
        ImageId(self.instance.0)
    }

    /// `raw` (a segment, a partial segment, a history file or the head) as stored under `name`:
    /// zstd with its content checksum, then sealed under `key` when there is one (bound to the
    /// archive and the name, so a swapped or changed object fails to open).
    pub fn encode(&self, key: Option<&DataKey>, name: &str, raw: &[u8]) -> Result<Vec<u8>> {
        let mut encoder = zstd::stream::Encoder::new(Vec::with_capacity(raw.len() / 4), LEVEL)
            .map_err(|e| Error::Corrupt(format!("zstd: {e}")))?;
        encoder.include_checksum(true).map_err(|e| Error::Corrupt(format!("zstd: {e}")))?;
        std::io::Write::write_all(&mut encoder, raw).map_err(|e| Error::Corrupt(format!("zstd: {e}")))?;
        let compressed = encoder.finish().map_err(|e| Error::Corrupt(format!("zstd: {e}")))?;
        Ok(match key {
            Some(key) => object::seal_all(key, self.key_id(), name, &compressed),
            None => compressed,
        })
    }

    /// The raw bytes of object `name` as [`WalArchive::encode`] stored them. Changed, cut or
    /// swapped bytes: [`Error::Corrupt`] naming the object.
    pub fn decode(&self, key: Option<&DataKey>, name: &str, stored: &[u8]) -> Result<Vec<u8>> {
        let refused = |why: String| {
            Error::Corrupt(format!(
                "WAL object {name} of instance {}'s archive {why}; it was changed or damaged in the blob store",
                self.instance
            ))
        };
        let opened;
        let compressed = match key {
            Some(key) => {
                opened = object::open_all(key, self.key_id(), name, stored)
                    .map_err(|_| refused("fails authentication".into()))?;
                &opened[..]
            }
            None => stored,
        };
        let mut raw = Vec::new();
        zstd::stream::Decoder::new(compressed)
            .and_then(|mut d| d.read_to_end(&mut raw))
            .map_err(|e| refused(format!("does not decompress or fails its checksum ({e})")))?;
        Ok(raw)
    }

    /// Writes `raw` as object `name`.
    pub async fn put(&self, blobs: &dyn BlobStore, key: Option<&DataKey>, name: &str, raw: &[u8]) -> Result<()> {
        let stored = self.encode(key, name, raw)?;
        blobs.write(&self.location(), name, stored.into()).await
    }

    /// Reads object `name`.
    pub async fn get(&self, blobs: &dyn BlobStore, key: Option<&DataKey>, name: &str) -> Result<Vec<u8>> {
        let stored = blobs.read(&self.location(), name).await?;
        self.decode(key, name, &stored)
    }

    /// The head, or `None` when nothing was archived yet.
    pub async fn head(&self, blobs: &dyn BlobStore, key: Option<&DataKey>) -> Result<Option<ArchiveHead>> {
        let names = blobs.stat(&self.location()).await?;
        if !names.iter().any(|o| o.name == HEAD_NAME) {
            return Ok(None);
        }
        let raw = self.get(blobs, key, HEAD_NAME).await?;
        let head = serde_json::from_slice(&raw).map_err(|e| Error::Corrupt(format!("the WAL archive's head: {e}")))?;
        Ok(Some(head))
    }

    /// Writes the head.
    pub async fn put_head(&self, blobs: &dyn BlobStore, key: Option<&DataKey>, head: &ArchiveHead) -> Result<()> {
        let raw = serde_json::to_vec(head).expect("the head serializes");
        self.put(blobs, key, HEAD_NAME, &raw).await
    }

    /// What the archive holds, from a listing of its objects.
    pub async fn contents(&self, blobs: &dyn BlobStore) -> Result<ArchiveContents> {
        let mut contents = ArchiveContents::default();
        for object in blobs.stat(&self.location()).await? {
            let name = object.name.as_str();
            if let Some(found) = parse_segment_name(name) {
                contents.segments.push(found);
            } else if let Some(found) = name.strip_suffix(PARTIAL_SUFFIX).and_then(parse_segment_name) {
                contents.partials.push(found);
            } else if let Some(timeline) = parse_history_name(name) {
                contents.histories.push(timeline);
            }
        }
        contents.segments.sort_unstable();
        contents.partials.sort_unstable();
        contents.histories.sort_unstable();
        Ok(contents)
    }
}

/// The objects of an archive, by name.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ArchiveContents {
    /// Completed segments: `(timeline, segment number)`, sorted.
    pub segments: Vec<(u32, u64)>,
    /// Segments being written (`.partial`), sorted.
    pub partials: Vec<(u32, u64)>,
    /// Timelines with a history file.
    pub histories: Vec<u32>,
}

impl ArchiveContents {
    /// The objects a replay on `timeline` from `from` through `to` reads, in order: each segment
    /// whole when it is complete, the last one as it was being written otherwise. A missing one
    /// is [`Error::Corrupt`] naming it: the archive has a hole and cannot reach `to`.
    pub fn replay_objects(&self, timeline: u32, from: Lsn, to: Lsn) -> Result<Vec<String>> {
        let mut names = Vec::new();
        // `to` is the first position not needed: at a segment's start, that segment is not read.
        let last = Lsn(to.0.saturating_sub(1)).segment().max(from.segment());
        for segment in from.segment()..=last {
            let name = segment_name(timeline, segment);
            if self.segments.binary_search(&(timeline, segment)).is_ok() {
                names.push(name);
            } else if segment == last && self.partials.binary_search(&(timeline, segment)).is_ok() {
                names.push(format!("{name}{PARTIAL_SUFFIX}"));
            } else {
                return Err(Error::Corrupt(format!(
                    "WAL segment {name} is missing from the archive (needed to replay from {from} to {to})"
                )));
            }
        }
        Ok(names)
    }

    /// Completed segments and partials of `timeline` entirely before `lsn`: what no replay
    /// from `lsn` or later reads.
    pub fn before(&self, timeline: u32, lsn: Lsn) -> Vec<String> {
        let old = |(t, s): &&(u32, u64)| *t == timeline && *s < lsn.segment();
        let whole = self.segments.iter().filter(old).map(|(t, s)| segment_name(*t, *s));
        let partial =
            self.partials.iter().filter(old).map(|(t, s)| format!("{}{PARTIAL_SUFFIX}", segment_name(*t, *s)));
        whole.chain(partial).collect()
    }
}

/// Where the archive stands, written by the receiver after each upload.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ArchiveHead {
    /// The timeline being archived.
    pub timeline: u32,
    /// The first position archived since the last gap (where the replication slot started).
    pub start_lsn: Lsn,
    /// Everything the server had written by [`ArchiveHead::time`] is archived up to here.
    pub lsn: Lsn,
    /// When the server was at [`ArchiveHead::lsn`]: every transaction committed before this
    /// moment is in the archive.
    pub time: DateTime<Utc>,
    /// Holes found in the stream (the slot lost WAL): a replay cannot cross them.
    #[serde(default)]
    pub gaps: Vec<WalGap>,
    /// Timelines seen switching to ([`WalGap`]s are per timeline).
    #[serde(default)]
    pub timeline_switches: Vec<TimelineSwitch>,
    /// How many times the receiver was started again after it stopped.
    #[serde(default)]
    pub receiver_restarts: u32,
}

/// A hole in the archive: WAL from `from` to `to` never reached it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct WalGap {
    /// First missing position.
    pub from: Lsn,
    /// First position archived again.
    pub to: Lsn,
    /// When the receiver noticed.
    pub detected_at: DateTime<Utc>,
}

/// The archived server switched timelines (it was promoted or restored in place).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct TimelineSwitch {
    /// The old timeline.
    pub from: u32,
    /// The new one.
    pub to: u32,
    /// Where the new one starts.
    pub at: Lsn,
    /// When the receiver noticed.
    pub detected_at: DateTime<Utc>,
}

#[cfg(test)]
mod tests;
