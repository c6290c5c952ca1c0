//! Point-in-time restore as the API shows it: an instance's protection (never its archive's
//! key), the plan of a restored instance, the recovery window and restore points. Core's
//! [`toygres_core::wal`] types, with WAL positions as PostgreSQL writes them (`0/3000148`) and
//! times in RFC 3339.

use super::responses::Created;
use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use toygres_core::wal;
use utoipa::ToSchema;
use uuid::Uuid;

/// An instance's continuous protection (`POST /api/instances/{id}/protection`).
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
pub struct Protection {
    /// `active` (its WAL is being archived) or `stopped` (the archive is kept, and restorable,
    /// until its base images are deleted).
    #[schema(pattern = "^(active|stopped)$")]
    pub state: String,
    /// When protection (last) started.
    pub since: DateTime<Utc>,
    /// The restore points created through toygres, oldest first.
    pub restore_points: Vec<RestorePoint>,
}

impl From<&wal::Protection> for Protection {
    fn from(p: &wal::Protection) -> Self {
        let state = match p.state {
            wal::ProtectionState::Active => "active",
            wal::ProtectionState::Stopped => "stopped",
        };
        Self { state: state.into(), since: p.since, restore_points: p.restore_points.iter().map(Into::into).collect() }
    }
}

/// A named restore point, where a point-in-time restore may stop.
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
pub struct RestorePoint {
    /// Its name.
    pub name: String,
    /// The WAL position of its record, e.g. `0/3000148`.
    #[schema(example = "0/3000148")]
    pub lsn: String,
    /// When it was created.
    pub time: DateTime<Utc>,
}

impl From<&wal::RestorePoint> for RestorePoint {
    fn from(p: &wal::RestorePoint) -> Self {
        Self { name: p.name.clone(), lsn: p.lsn.to_string(), time: p.time }
    }
}

/// What a point-in-time restored instance replays: the protected instance's archive from a
/// base image to a target.
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
pub struct Recovery {
    /// The protected instance whose WAL archive is replayed.
    pub source_instance_id: Uuid,
    /// Where recovery stops.
    pub target: RecoveryTarget,
    /// The physical image it starts from.
    pub base_image_id: Uuid,
    /// The base image's timeline.
    pub timeline: u32,
    /// When the restore was admitted.
    pub requested_at: DateTime<Utc>,
}

impl From<&wal::RecoveryPlan> for Recovery {
    fn from(p: &wal::RecoveryPlan) -> Self {
        Self {
            source_instance_id: p.source_instance_id.as_uuid(),
            target: (&p.target).into(),
            base_image_id: p.base_image_id.as_uuid(),
            timeline: p.timeline,
            requested_at: p.requested_at,
        }
    }
}

/// Where a point-in-time recovery stops.
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
pub struct RecoveryTarget {
    /// `latest`, `time`, `lsn` or `restore_point`.
    #[schema(pattern = "^(latest|time|lsn|restore_point)$")]
    pub kind: String,
    /// The moment (kind `time`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub time: Option<DateTime<Utc>>,
    /// The WAL position (kind `lsn`, and the restore point's).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub lsn: Option<String>,
    /// The restore point's name (kind `restore_point`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub name: Option<String>,
}

impl From<&wal::RecoveryTarget> for RecoveryTarget {
    fn from(t: &wal::RecoveryTarget) -> Self {
        let of = |kind: &str| Self { kind: kind.into(), time: None, lsn: None, name: None };
        match t {
            wal::RecoveryTarget::Latest => of("latest"),
            wal::RecoveryTarget::Time(time) => Self { time: Some(*time), ..of("time") },
            wal::RecoveryTarget::Lsn(lsn) => Self { lsn: Some(lsn.to_string()), ..of("lsn") },
            wal::RecoveryTarget::RestorePoint { name, lsn } => {
                Self { name: Some(name.clone()), lsn: Some(lsn.to_string()), ..of("restore_point") }
            }
        }
    }
}

/// `GET /api/instances/{id}/recovery-window`: the moments an instance can be restored to.
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
pub struct RecoveryWindow {
    /// The protected instance.
    pub instance_id: Uuid,
    /// Whether its WAL is being archived now.
    pub archiving: bool,
    /// The earliest restorable moment (the end of the oldest usable base image); `null` until a
    /// base image was taken after archiving started.
    pub earliest: Option<RecoveryMoment>,
    /// The latest restorable moment (the archive's head); `null` while nothing is restorable.
    pub latest: Option<RecoveryMoment>,
    /// How far the archive is behind now, in seconds (while archiving).
    pub rpo_seconds: Option<f64>,
    /// The timeline archived.
    pub timeline: Option<u32>,
    /// Holes in the archive; the window starts after the last one.
    pub gaps: Vec<WalGap>,
    /// Timeline switches the archive saw.
    pub timeline_switches: Vec<TimelineSwitch>,
    /// Restore points inside the window.
    pub restore_points: Vec<RestorePoint>,
}

impl From<&wal::RecoveryWindow> for RecoveryWindow {
    fn from(w: &wal::RecoveryWindow) -> Self {
        let moment = |m: &wal::RecoveryMoment| RecoveryMoment {
            time: m.time,
            lsn: m.lsn.to_string(),
            image_id: m.image_id.map(|i| i.as_uuid()),
        };
        Self {
            instance_id: w.instance_id.as_uuid(),
            archiving: w.archiving,
            earliest: w.earliest.as_ref().map(moment),
            latest: w.latest.as_ref().map(moment),
            rpo_seconds: w.rpo_seconds,
            timeline: w.timeline,
            gaps: w
                .gaps
                .iter()
                .map(|g| WalGap { from: g.from.to_string(), to: g.to.to_string(), detected_at: g.detected_at })
                .collect(),
            timeline_switches: w
                .timeline_switches
                .iter()
                .map(|s| TimelineSwitch { from: s.from, to: s.to, at: s.at.to_string(), detected_at: s.detected_at })
                .collect(),
            restore_points: w.restore_points.iter().map(Into::into).collect(),
        }
    }
}

/// One end of a recovery window.
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
pub struct RecoveryMoment {
    /// The moment.
    pub time: DateTime<Utc>,
    /// The WAL position then.
    pub lsn: String,
    /// The base image a restore there starts from (the earliest end only).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub image_id: Option<Uuid>,
}

/// WAL that never reached the archive.
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
pub struct WalGap {
    /// First missing position.
    pub from: String,
    /// First position archived again.
    pub to: String,
    /// When it was noticed.
    pub detected_at: DateTime<Utc>,
}

/// The archived server switched timelines.
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
pub struct TimelineSwitch {
    /// The old timeline.
    pub from: u32,
    /// The new one.
    pub to: u32,
    /// Where the new one starts.
    pub at: String,
    /// When it was noticed.
    pub detected_at: DateTime<Utc>,
}

/// The answer of `POST` and `DELETE /api/instances/{id}/protection`.
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
pub struct ProtectionAnswer {
    /// The instance.
    pub instance_id: Uuid,
    /// Its protection now (`null`: it was never protected).
    pub protection: Option<Protection>,
    /// The physical base image started because none was usable yet (follow it at
    /// `/api/images/{id}`); `null` when none was needed or one is being taken already.
    pub base_image: Option<Created>,
}

/// `POST /api/instances/{id}/restore-points`.
#[derive(Debug, Clone, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct CreateRestorePointBody {
    /// Its name: 1-63 printable ASCII characters.
    #[schema(example = "before-migration", pattern = r"^[\x20-\x7e]{1,63}$", min_length = 1, max_length = 63)]
    pub name: String,
}
