//! Point-in-time restore: continuous WAL archiving of protected instances
//! ([`crate::Toygres::protect`]) and new instances at any moment of their
//! [`RecoveryWindow`] ([`crate::CreateInstanceRequest::point_in_time`]).
//!
//! The rules live here, whatever the executor: the archive's layout and object format
//! ([`WalArchive`]: zstd with its checksum, sealed under the archive's key), which moments are
//! restorable and which base image serves a target ([`RecoveryWindow::admit`]), and which objects
//! a replay reads ([`ArchiveContents::replay_objects`]). Executors run the receiver
//! ([`crate::ClusterExecutor::start_wal_archiving`]) and the replay
//! ([`crate::RestoreJobSpec::recovery`]).

mod archive;
mod lsn;
mod protection;
mod target;
mod window;

pub use archive::{ArchiveContents, ArchiveHead, TimelineSwitch, WalArchive, WalGap, HEAD_NAME, PARTIAL_SUFFIX};
pub use lsn::{parse_history_name, parse_segment_name, segment_name, Lsn, SEGMENT_SIZE};
pub use protection::{Protection, ProtectionState, RestorePoint};
pub use target::{PointInTime, RecoveryPlan, RecoveryTarget};
pub use window::{RecoveryMoment, RecoveryWindow};

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};

/// The WAL a physical image spans, recorded in its manifest and metadata: a point-in-time restore
/// from it replays the archive from `start_lsn`, and can stop no earlier than `end_lsn` and
/// `end_time` (when the copy became consistent).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct WalRange {
    /// The timeline the source was on.
    pub timeline: u32,
    /// At or before the backup's start (its checkpoint's redo position).
    pub start_lsn: Lsn,
    /// At or after the backup's end.
    pub end_lsn: Lsn,
    /// When the backup had ended.
    pub end_time: DateTime<Utc>,
}
