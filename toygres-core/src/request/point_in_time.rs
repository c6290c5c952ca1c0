//! Requests for a point-in-time restore ([`CreateInstanceRequest::point_in_time`]).

use super::CreateInstanceRequest;
use crate::error::{Error, Result};
use crate::labels::Labels;
use crate::wal::{PointInTime, RecoveryTarget};

impl CreateInstanceRequest {
    /// A point-in-time restore request: `name` from `point`'s instance's archive.
    ///
    /// ```
    /// use toygres_core::{wal::PointInTime, CreateInstanceRequest, InstanceId};
    /// let source = InstanceId::new();
    /// let request = CreateInstanceRequest::at_point_in_time("undo", PointInTime::latest(source));
    /// assert!(request.validate_point_in_time().is_ok());
    /// ```
    pub fn at_point_in_time(name: impl Into<String>, point: PointInTime) -> Self {
        Self {
            name: name.into(),
            password: None,
            source_image_id: None,
            runtime_image_id: None,
            image_override: None,
            dns_label: None,
            labels: Labels::new(),
            databases: None,
            point_in_time: Some(point),
        }
    }

    /// Validates a point-in-time restore request; nothing is created when this fails. Returns
    /// its target. The base image is chosen by admission, and a physical replay restores every
    /// database: `source_image_id` and `databases` conflict with `point_in_time`.
    pub fn validate_point_in_time(&self) -> Result<RecoveryTarget> {
        let Some(point) = &self.point_in_time else {
            return Err(Error::InvalidRequest {
                field: "point_in_time",
                reason: "a point-in-time restore needs the protected instance and its target".into(),
            });
        };
        let conflict =
            |conflicts_with, hint| Error::ConflictingRequest { field: "point_in_time", conflicts_with, hint };
        if self.source_image_id.is_some() {
            return Err(conflict("source_image_id", "a point-in-time restore chooses its base image; leave it out"));
        }
        if self.databases.is_some() {
            return Err(conflict("databases", "a point-in-time restore replays every database; leave it out"));
        }
        self.validate_restored_fields()?;
        if let RecoveryTarget::RestorePoint { name, .. } = &point.target()? {
            if name.is_empty() || name.len() > 63 {
                return Err(Error::InvalidRequest {
                    field: "point_in_time.restore_point",
                    reason: "a restore point's name has 1 to 63 characters".into(),
                });
            }
        }
        point.target()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::ids::{ImageId, InstanceId};

    #[test]
    fn conflicting_fields_are_refused() {
        let request = CreateInstanceRequest::at_point_in_time("undo", PointInTime::latest(InstanceId::new()));
        assert_eq!(request.validate_point_in_time().unwrap(), RecoveryTarget::Latest);
        let with_image = CreateInstanceRequest { source_image_id: Some(ImageId::new()), ..request.clone() };
        assert!(matches!(
            with_image.validate_point_in_time(),
            Err(Error::ConflictingRequest { conflicts_with: "source_image_id", .. })
        ));
        assert!(matches!(with_image.validate_restore(), Err(Error::ConflictingRequest { field: "point_in_time", .. })));
        let with_databases = request.clone().with_databases(["app"]);
        assert!(matches!(
            with_databases.validate_point_in_time(),
            Err(Error::ConflictingRequest { conflicts_with: "databases", .. })
        ));
        let bad_name = CreateInstanceRequest { name: "Not A Name".into(), ..request.clone() };
        assert!(matches!(bad_name.validate_point_in_time(), Err(Error::InvalidRequest { field: "name", .. })));
        assert_ne!(request.digest(), CreateInstanceRequest::restore("undo", ImageId::new()).digest());
    }
}
