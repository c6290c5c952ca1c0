//! [`RecoveryWindow`]: the moments an instance can be restored to, and the admission of a
//! target against it (which base image, or why not).

use super::archive::{ArchiveHead, TimelineSwitch, WalGap};
use super::lsn::Lsn;
use super::protection::{Protection, RestorePoint};
use super::target::RecoveryTarget;
use super::WalRange;
use crate::error::{Error, Result};
use crate::ids::{ImageId, InstanceId};
use chrono::{DateTime, SecondsFormat, Utc};
use serde::{Deserialize, Serialize};

/// One end of a [`RecoveryWindow`].
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct RecoveryMoment {
    /// The moment.
    pub time: DateTime<Utc>,
    /// The WAL position at that moment.
    pub lsn: Lsn,
    /// The base image a restore there starts from (the earliest end only).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub image_id: Option<ImageId>,
}

/// The moments an instance can be restored to (`GET /api/instances/{id}/recovery-window`).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct RecoveryWindow {
    /// The protected instance.
    pub instance_id: InstanceId,
    /// Whether its WAL is being archived now.
    pub archiving: bool,
    /// The earliest restorable moment: the end of the oldest usable base image. `None` until
    /// a base image was taken after archiving started.
    pub earliest: Option<RecoveryMoment>,
    /// The latest restorable moment: the archive's head. `None` until something was archived.
    pub latest: Option<RecoveryMoment>,
    /// How far the archive is behind now, in seconds (while archiving).
    pub rpo_seconds: Option<f64>,
    /// The timeline archived.
    pub timeline: Option<u32>,
    /// Holes in the archive; a window starts after the last one.
    pub gaps: Vec<WalGap>,
    /// Timeline switches the receiver saw.
    pub timeline_switches: Vec<TimelineSwitch>,
    /// Named restore points inside the window.
    pub restore_points: Vec<RestorePoint>,
    /// Where the archive's current stretch starts (after its last gap): base images must start
    /// at or after it.
    #[serde(skip)]
    pub latest_start: Option<Lsn>,
    /// The usable base images, oldest first.
    #[serde(skip)]
    pub bases: Vec<(ImageId, WalRange)>,
}

impl RecoveryWindow {
    /// The window of `instance` from its `protection`, its archive's `head` and the WAL ranges
    /// of its ready physical images. A base image is usable when it was taken on the archived
    /// timeline, after archiving (re)started, and the archive already reaches its end.
    pub fn compute(
        instance: InstanceId,
        protection: &Protection,
        head: Option<&ArchiveHead>,
        images: &[(ImageId, WalRange)],
        now: DateTime<Utc>,
    ) -> Self {
        let mut bases: Vec<(ImageId, WalRange)> = match head {
            Some(h) => images
                .iter()
                .filter(|(_, r)| r.timeline == h.timeline && r.start_lsn >= h.start_lsn && r.end_lsn <= h.lsn)
                .cloned()
                .collect(),
            None => Vec::new(),
        };
        bases.sort_by_key(|(_, r)| r.end_lsn);
        let earliest =
            bases.first().map(|(id, r)| RecoveryMoment { time: r.end_time, lsn: r.end_lsn, image_id: Some(*id) });
        let latest =
            head.filter(|_| earliest.is_some()).map(|h| RecoveryMoment { time: h.time, lsn: h.lsn, image_id: None });
        let rpo_seconds =
            head.filter(|_| protection.is_active()).map(|h| ((now - h.time).num_milliseconds().max(0) as f64) / 1000.0);
        let inside = |p: &&RestorePoint| {
            earliest.as_ref().zip(latest.as_ref()).is_some_and(|(e, l)| p.lsn >= e.lsn && p.lsn <= l.lsn)
        };
        Self {
            instance_id: instance,
            archiving: protection.is_active(),
            restore_points: protection.restore_points.iter().filter(inside).cloned().collect(),
            earliest,
            latest,
            rpo_seconds,
            timeline: head.map(|h| h.timeline),
            latest_start: head.map(|h| h.start_lsn),
            gaps: head.map(|h| h.gaps.clone()).unwrap_or_default(),
            timeline_switches: head.map(|h| h.timeline_switches.clone()).unwrap_or_default(),
            bases,
        }
    }

    /// The base image a restore to `target` starts from: the newest usable one that ends at or
    /// before it. A target outside the window (or a restore point toygres did not record) is
    /// [`Error::OutsideRecoveryWindow`] with the window in its message. Returns the base and the
    /// target with a restore point's position filled in.
    pub fn admit(
        &self,
        target: &RecoveryTarget,
        points: &[RestorePoint],
    ) -> Result<(ImageId, WalRange, RecoveryTarget)> {
        let refuse = |why: String| Error::OutsideRecoveryWindow {
            instance: self.instance_id,
            target: target.to_string(),
            window: self.describe(),
            reason: why,
        };
        let (Some(_), Some(latest)) = (&self.earliest, &self.latest) else {
            return Err(refuse("nothing is restorable yet: a base image must be taken after archiving starts".into()));
        };
        let target = match target {
            RecoveryTarget::RestorePoint { name, .. } => {
                let point = points.iter().rev().find(|p| &p.name == name).ok_or_else(|| {
                    refuse(format!("no restore point {name:?} was created through toygres on this instance"))
                })?;
                RecoveryTarget::RestorePoint { name: name.clone(), lsn: point.lsn }
            }
            other => other.clone(),
        };
        let fits = |r: &WalRange| match &target {
            RecoveryTarget::Latest => true,
            RecoveryTarget::Time(t) => r.end_time <= *t,
            RecoveryTarget::Lsn(l) | RecoveryTarget::RestorePoint { lsn: l, .. } => r.end_lsn <= *l,
        };
        match &target {
            RecoveryTarget::Time(t) if *t > latest.time => return Err(refuse("it is after the archive's head".into())),
            RecoveryTarget::Lsn(l) | RecoveryTarget::RestorePoint { lsn: l, .. } if *l > latest.lsn => {
                return Err(refuse("it is after the archive's head".into()))
            }
            _ => {}
        }
        let (id, range) = self
            .bases
            .iter()
            .rev()
            .find(|(_, r)| fits(r))
            .ok_or_else(|| refuse("it is before the end of the oldest base image".into()))?;
        Ok((*id, range.clone(), target))
    }

    /// `from <time> (LSN) to <time> (LSN)`, or why nothing is restorable.
    pub fn describe(&self) -> String {
        let at =
            |m: &RecoveryMoment| format!("{} (LSN {})", m.time.to_rfc3339_opts(SecondsFormat::Millis, true), m.lsn);
        match (&self.earliest, &self.latest) {
            (Some(e), Some(l)) => format!("from {} to {}", at(e), at(l)),
            _ => "empty (no base image taken since archiving started)".into(),
        }
    }
}

#[cfg(test)]
mod tests;
