//! What a point-in-time restore asks for ([`PointInTime`]) and what the control plane decided
//! for it ([`RecoveryPlan`]), as the new instance's record keeps it.

use super::lsn::Lsn;
use crate::error::{Error, Result};
use crate::ids::{ImageId, InstanceId};
use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use std::fmt;

/// A point-in-time restore's source and target, in
/// [`CreateInstanceRequest::point_in_time`](crate::CreateInstanceRequest::point_in_time): the
/// protected instance whose archive is replayed, and at most one of `time`, `lsn` and
/// `restore_point` (none: the latest moment the archive holds).
///
/// ```
/// use toygres_core::wal::{PointInTime, RecoveryTarget};
/// let latest = PointInTime::latest(toygres_core::InstanceId::new());
/// assert_eq!(latest.target().unwrap(), RecoveryTarget::Latest);
/// ```
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct PointInTime {
    /// The protected instance (it may since have been deleted: its archive outlives it).
    pub instance_id: InstanceId,
    /// Replay every transaction committed at or before this moment.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub time: Option<DateTime<Utc>>,
    /// Replay the WAL up to and including the record at this position.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub lsn: Option<Lsn>,
    /// Replay up to the restore point of this name ([`crate::Toygres::create_restore_point`]).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub restore_point: Option<String>,
}

impl PointInTime {
    /// The latest moment `instance`'s archive holds.
    pub fn latest(instance: InstanceId) -> Self {
        Self { instance_id: instance, time: None, lsn: None, restore_point: None }
    }

    /// Every transaction of `instance` committed at or before `time`.
    pub fn at(instance: InstanceId, time: DateTime<Utc>) -> Self {
        Self { time: Some(time), ..Self::latest(instance) }
    }

    /// The target asked for; more than one of `time`, `lsn` and `restore_point` is
    /// [`Error::ConflictingRequest`].
    pub fn target(&self) -> Result<RecoveryTarget> {
        let conflict = |field, conflicts_with| Error::ConflictingRequest {
            field,
            conflicts_with,
            hint: "a point-in-time restore has one target: a time, an LSN or a restore point (none: the latest)",
        };
        match (&self.time, &self.lsn, &self.restore_point) {
            (Some(_), Some(_), _) => Err(conflict("point_in_time.time", "point_in_time.lsn")),
            (Some(_), _, Some(_)) => Err(conflict("point_in_time.time", "point_in_time.restore_point")),
            (_, Some(_), Some(_)) => Err(conflict("point_in_time.lsn", "point_in_time.restore_point")),
            (Some(t), None, None) => Ok(RecoveryTarget::Time(*t)),
            (None, Some(l), None) => Ok(RecoveryTarget::Lsn(*l)),
            (None, None, Some(n)) => Ok(RecoveryTarget::RestorePoint { name: n.clone(), lsn: Lsn::default() }),
            (None, None, None) => Ok(RecoveryTarget::Latest),
        }
    }
}

/// Where recovery stops. The new instance is promoted there, on a new timeline.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "kind", content = "at", rename_all = "snake_case")]
pub enum RecoveryTarget {
    /// Everything the archive holds (at least everything committed before the request).
    Latest,
    /// Every transaction committed at or before this moment (`recovery_target_time`).
    Time(DateTime<Utc>),
    /// Up to and including the WAL record at this position (`recovery_target_lsn`).
    Lsn(Lsn),
    /// The restore point `name`, recorded at `lsn` (`recovery_target_name`).
    RestorePoint {
        /// Its name.
        name: String,
        /// Where it was created (resolved at admission).
        lsn: Lsn,
    },
}

impl fmt::Display for RecoveryTarget {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            RecoveryTarget::Latest => f.write_str("the latest archived moment"),
            RecoveryTarget::Time(t) => write!(f, "{}", t.to_rfc3339_opts(chrono::SecondsFormat::Micros, true)),
            RecoveryTarget::Lsn(l) => write!(f, "LSN {l}"),
            RecoveryTarget::RestorePoint { name, .. } => write!(f, "restore point {name:?}"),
        }
    }
}

/// What admission decided for a point-in-time restore, kept in the new instance's record
/// ([`crate::InstanceRecord::recovery`]) so that every later step (and a re-run after a crash)
/// replays the same WAL from the same base image.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct RecoveryPlan {
    /// The protected instance whose archive is replayed.
    pub source_instance_id: InstanceId,
    /// Where recovery stops.
    pub target: RecoveryTarget,
    /// The physical image the new instance starts from (also its `source_image_id`).
    pub base_image_id: ImageId,
    /// The base image's timeline.
    pub timeline: u32,
    /// The first WAL position the replay may need (the base image's start).
    pub from_lsn: Lsn,
    /// The archive's head at admission: every transaction committed before the request is
    /// before it.
    pub head_lsn: Lsn,
    /// When the request was admitted.
    pub requested_at: DateTime<Utc>,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn one_target_at_most() {
        let id = InstanceId::new();
        let lsn: Lsn = "0/3000000".parse().unwrap();
        let mut p = PointInTime { lsn: Some(lsn), ..PointInTime::latest(id) };
        assert_eq!(p.target().unwrap(), RecoveryTarget::Lsn(lsn));
        p.time = Some(Utc::now());
        assert!(matches!(p.target(), Err(Error::ConflictingRequest { field: "point_in_time.time", .. })));
        p.time = None;
        p.restore_point = Some("x".into());
        assert!(matches!(p.target(), Err(Error::ConflictingRequest { field: "point_in_time.lsn", .. })));
    }

    #[test]
    fn targets_round_trip_through_json_as_catalogs_store_them() {
        let lsn: Lsn = "0/3000148".parse().unwrap();
        let time = DateTime::from_timestamp_micros(1_764_931_200_123_456).unwrap();
        for target in [
            RecoveryTarget::Latest,
            RecoveryTarget::Time(time),
            RecoveryTarget::Lsn(lsn),
            RecoveryTarget::RestorePoint { name: "before".into(), lsn },
        ] {
            let json = serde_json::to_string(&target).unwrap();
            assert_eq!(serde_json::from_str::<RecoveryTarget>(&json).unwrap(), target, "{json}");
        }
        let json = serde_json::to_string(&RecoveryTarget::Lsn(lsn)).unwrap();
        assert_eq!(json, r#"{"kind":"lsn","at":"0/3000148"}"#);
    }

    #[test]
    fn the_wire_shape_is_flat() {
        let id = InstanceId::new();
        let json = format!(r#"{{"instance_id":"{id}","time":"2026-12-05T10:00:00Z"}}"#);
        let p: PointInTime = serde_json::from_str(&json).unwrap();
        assert!(matches!(p.target().unwrap(), RecoveryTarget::Time(_)));
        let latest: PointInTime = serde_json::from_str(&format!(r#"{{"instance_id":"{id}"}}"#)).unwrap();
        assert_eq!(latest.target().unwrap(), RecoveryTarget::Latest);
    }
}
