//! Admission of a point-in-time restore ([`crate::CreateInstanceRequest::point_in_time`]):
//! every refusal happens before anything is created, and the decision is recorded in the new
//! instance ([`RecoveryPlan`]) so that every later step replays the same WAL.

use super::admission::RestoreAdmission;
use super::restore::Restore;
use crate::error::{Error, Result};
use crate::executor::RecoverySpec;
use crate::ids::{InstanceId, OperationId};
use crate::instance::InstanceRecord;
use crate::request::CreateInstanceRequest;
use crate::wal::{RecoveryPlan, RecoveryTarget, RecoveryWindow, RestorePoint};
use chrono::{DateTime, Utc};
use std::time::Duration;

/// How long admission waits for a running receiver to archive what a target needs (a moment of
/// the last second, or "latest": everything committed before the request).
const CATCH_UP: Duration = Duration::from_secs(30);
const POLL: Duration = Duration::from_millis(100);

impl Restore {
    /// Refuses, before anything is created, a point-in-time restore that cannot succeed: an
    /// invalid or conflicting request, an instance that is not protected
    /// ([`Error::NotProtected`]), a target outside its window ([`Error::OutsideRecoveryWindow`],
    /// the window in the message), or a base image that fails verification. "Latest" and a
    /// moment of the last seconds wait (up to 30 s) for the receiver to archive it. Returns the
    /// base image, its password and the plan.
    pub async fn admit_point_in_time(
        &self,
        request: &CreateInstanceRequest,
    ) -> Result<(RestoreAdmission, RecoveryPlan)> {
        let target = request.validate_point_in_time()?;
        let source = request.point_in_time.as_ref().map(|p| p.instance_id).expect("validated");
        let requested_at = Utc::now();
        let (_, protection) = self.t.protection_of(source).await?;
        let window = self.caught_up(source, &target, &protection.restore_points, requested_at).await?;
        let (base, range, target) = window.admit(&target, &protection.restore_points)?;
        let image = self.fetch_image(base).await?;
        let password = self.source_password(base).await?;
        self.verify_image(&image).await?;
        let head = window.latest.as_ref().map(|l| l.lsn).unwrap_or_default();
        let plan = RecoveryPlan {
            source_instance_id: source,
            target,
            base_image_id: base,
            timeline: range.timeline,
            from_lsn: range.start_lsn,
            head_lsn: head,
            requested_at,
        };
        Ok((RestoreAdmission { image, password }, plan))
    }

    /// The window once the archive holds what `target` needs, or as it is after [`CATCH_UP`]
    /// (or at once when archiving stopped: the head will not move).
    async fn caught_up(
        &self,
        source: InstanceId,
        target: &RecoveryTarget,
        points: &[RestorePoint],
        now: DateTime<Utc>,
    ) -> Result<RecoveryWindow> {
        let deadline = tokio::time::Instant::now() + CATCH_UP;
        loop {
            let window = self.t.recovery_window(source).await?;
            let head = window.latest.as_ref();
            let reached = match target {
                RecoveryTarget::Latest => head.is_some_and(|h| h.time >= now),
                RecoveryTarget::Time(t) if *t > now => true, // in the future: refused at once
                RecoveryTarget::Time(t) => head.is_some_and(|h| h.time >= *t),
                RecoveryTarget::Lsn(l) => head.is_some_and(|h| h.lsn >= *l),
                RecoveryTarget::RestorePoint { name, .. } => match points.iter().rev().find(|p| &p.name == name) {
                    Some(point) => head.is_some_and(|h| h.lsn >= point.lsn),
                    None => true, // unknown: refused at once
                },
            };
            let ready = reached && window.earliest.is_some();
            if ready || !window.archiving || tokio::time::Instant::now() >= deadline {
                if matches!(target, RecoveryTarget::Latest) && !ready && window.archiving && window.earliest.is_some() {
                    return Err(Error::backend_msg(
                        "point-in-time restore",
                        format!(
                            "the WAL archive of instance {source} has not caught up with the request within {}s \
                             (its RPO now: {:?} s); check that its receiver runs, then retry",
                            CATCH_UP.as_secs(),
                            window.rpo_seconds
                        ),
                    ));
                }
                return Ok(window);
            }
            tokio::time::sleep(POLL).await;
        }
    }

    /// [`Restore::admit_point_in_time`], then the record (`provisioning`, the base image's
    /// password and type, the plan). Idempotent on `operation`.
    pub async fn begin_point_in_time(
        &self,
        operation: OperationId,
        request: &CreateInstanceRequest,
    ) -> Result<InstanceRecord> {
        let (admitted, plan) = self.admit_point_in_time(request).await?;
        self.create_record_with(operation, request, &admitted.image, &admitted.password, Some(plan)).await
    }

    /// The replay of `plan` for the restore job: the plan and its archive's key.
    pub(super) async fn recovery_spec(&self, plan: &RecoveryPlan) -> Result<RecoverySpec> {
        let (_, protection) = self.t.protection_of(plan.source_instance_id).await?;
        let data_key = self.t.archive_key(plan.source_instance_id, &protection).await?;
        Ok(RecoverySpec { plan: plan.clone(), data_key })
    }
}
