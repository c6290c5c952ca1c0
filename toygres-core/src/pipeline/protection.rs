//! Continuous protection ([`Toygres::protect`]): the WAL archive's record, its receiver, its
//! window and its retention. The point-in-time restore itself is admitted in [`super::pitr`].

use super::Toygres;
use crate::envelope::DataKey;
use crate::error::{Error, Result};
use crate::executor::WalArchiveSpec;
use crate::ids::{ImageId, InstanceId};
use crate::image::{ImageFilter, ImageFormat, ImageRecord};
use crate::instance::InstanceRecord;
use crate::request::CreateImageRequest;
use crate::state::{ImageState, InstanceState};
use crate::wal::{Protection, ProtectionState, RecoveryWindow, RestorePoint, WalArchive, WalRange};
use chrono::Utc;

/// The label of the base images [`Toygres::base_image_request`] asks for.
pub const BASE_IMAGE_LABEL: &str = "toygres.io/pitr-base";

impl Toygres {
    /// Starts continuous protection of the running instance `instance`: its WAL is archived into
    /// the blob store next to its images (compressed, checksummed, sealed under a data key of
    /// its own when images are encrypted) by a receiver the executor runs
    /// ([`crate::ClusterExecutor::start_wal_archiving`]). Idempotent: protecting a protected
    /// instance makes sure its receiver runs. When the executor cannot archive, nothing is
    /// recorded. A restore needs a physical image taken after archiving starts:
    /// [`Toygres::base_image_request`] says whether one is needed and asks for it.
    pub async fn protect(&self, instance: InstanceId) -> Result<InstanceRecord> {
        let record = self.catalog.get_instance(instance).await?;
        if record.state != InstanceState::Running {
            return Err(Error::InstanceNotRunning { id: instance, name: record.name, state: record.state.to_string() });
        }
        let archive = WalArchive::of(instance);
        let protection = match &record.protection {
            Some(p) if p.is_active() => p.clone(),
            Some(p) => Protection { state: ProtectionState::Active, since: Utc::now(), ..p.clone() },
            None => Protection::started(self.keys.new_data_key(archive.key_id()).await?),
        };
        let recorded = self.catalog.set_instance_protection(instance, Some(protection.clone())).await?;
        if let Err(error) = self.start_archiving(&recorded, &protection).await {
            // Nothing changes when the receiver cannot start (an executor that cannot archive).
            self.catalog.set_instance_protection(instance, record.protection.clone()).await?;
            return Err(error);
        }
        Ok(recorded)
    }

    /// Stops archiving `instance`'s WAL (its receiver and replication slot go). The archive and
    /// its window stay, restorable, until its base images are deleted. Idempotent.
    pub async fn unprotect(&self, instance: InstanceId) -> Result<InstanceRecord> {
        let record = self.catalog.get_instance(instance).await?;
        let Some(protection) = record.protection.clone().filter(Protection::is_active) else {
            return Ok(record);
        };
        self.executor.stop_wal_archiving(&record.spec()).await?;
        let stopped = Protection { state: ProtectionState::Stopped, ..protection };
        self.catalog.set_instance_protection(instance, Some(stopped)).await
    }

    /// Makes sure every protected running instance's receiver runs (after a restart of the
    /// control plane, or when the process that ran one died). Returns how many were started or
    /// found running. A control plane calls it at start and then every few seconds.
    pub async fn resume_protection(&self) -> Result<usize> {
        let mut started = 0;
        for record in self.catalog.list_instances(&Default::default()).await? {
            let Some(protection) = record.protection.clone().filter(Protection::is_active) else { continue };
            if record.state != InstanceState::Running {
                continue;
            }
            match self.start_archiving(&record, &protection).await {
                Ok(()) => started += 1,
                Err(e) => tracing::warn!(instance = %record.id, error = %e, "could not resume WAL archiving"),
            }
        }
        Ok(started)
    }

    async fn start_archiving(&self, record: &InstanceRecord, protection: &Protection) -> Result<()> {
        let spec = WalArchiveSpec {
            instance: record.spec(),
            password: self.catalog.instance_password(record.id).await?,
            data_key: self.archive_key(record.id, protection).await?,
        };
        self.executor.start_wal_archiving(&spec).await
    }

    /// The archive's data key of `instance` (`None`: unencrypted).
    pub(super) async fn archive_key(&self, instance: InstanceId, protection: &Protection) -> Result<Option<DataKey>> {
        self.keys.data_key(WalArchive::of(instance).key_id(), protection.key.as_ref()).await
    }

    /// The protection of `instance` (deleted or not), or [`Error::NotProtected`].
    pub(super) async fn protection_of(&self, instance: InstanceId) -> Result<(InstanceRecord, Protection)> {
        let record = self.catalog.get_instance_including_deleted(instance).await?;
        let protection = record.protection.clone().ok_or(Error::NotProtected { instance })?;
        Ok((record, protection))
    }

    /// The moments `instance` can be restored to: from the end of its oldest usable base image
    /// to its archive's head, with the RPO now, gaps, timeline switches and restore points.
    pub async fn recovery_window(&self, instance: InstanceId) -> Result<RecoveryWindow> {
        let (_, protection) = self.protection_of(instance).await?;
        let key = self.archive_key(instance, &protection).await?;
        let head = WalArchive::of(instance).head(&*self.blobs, key.as_ref()).await?;
        let bases = self.base_images(instance).await?;
        let ranges: Vec<(ImageId, WalRange)> =
            bases.iter().filter_map(|i| Some((i.id, i.metadata.as_ref()?.wal.clone()?))).collect();
        Ok(RecoveryWindow::compute(instance, &protection, head.as_ref(), &ranges, Utc::now()))
    }

    /// The ready physical images of `instance` that record the WAL they span.
    async fn base_images(&self, instance: InstanceId) -> Result<Vec<ImageRecord>> {
        let filter = ImageFilter { state: Some(ImageState::Ready), ..ImageFilter::default().source(instance) };
        let images = self.catalog.list_images(&filter).await?;
        Ok(images
            .into_iter()
            .filter(|i| i.format == ImageFormat::Physical && i.metadata.as_ref().is_some_and(|m| m.wal.is_some()))
            .collect())
    }

    /// The physical image a protected instance needs before anything is restorable, when its
    /// window is empty and none is being taken; `None` otherwise. Take it with
    /// [`Toygres::create_image`] (or a durable engine).
    pub async fn base_image_request(&self, instance: InstanceId) -> Result<Option<CreateImageRequest>> {
        let window = self.recovery_window(instance).await?;
        if window.earliest.is_some() || !window.archiving {
            return Ok(None);
        }
        // A physical image being taken, or taken since protection started and after the
        // archive's last gap (the head reaches its end within a second), will do.
        let (_, protection) = self.protection_of(instance).await?;
        let start = window.latest_start;
        let all = self.catalog.list_images(&ImageFilter::default().source(instance)).await?;
        let usable = |i: &ImageRecord| match i.state {
            ImageState::Creating => true,
            ImageState::Ready => {
                let range = i.metadata.as_ref().and_then(|m| m.wal.as_ref());
                let after_gap = |r: &WalRange| start.is_none_or(|start| r.start_lsn >= start);
                i.created_at >= protection.since && range.is_some_and(after_gap)
            }
            _ => false,
        };
        if all.iter().any(|i| i.format == ImageFormat::Physical && usable(i)) {
            return Ok(None);
        }
        let name = format!("pitr-base-{}-{}", instance.short(), Utc::now().format("%Y%m%d%H%M%S"));
        Ok(Some(CreateImageRequest::new(name, instance).physical().with_label(BASE_IMAGE_LABEL, "true")))
    }

    /// Creates the restore point `name` on the protected, running `instance` and records it, so
    /// that a restore can stop there ([`crate::wal::PointInTime::restore_point`]).
    pub async fn create_restore_point(&self, instance: InstanceId, name: &str) -> Result<RestorePoint> {
        if name.is_empty() || name.len() > 63 || name.chars().any(char::is_control) {
            return Err(Error::InvalidRequest {
                field: "name",
                reason: "a restore point's name has 1 to 63 printable characters".into(),
            });
        }
        let (record, mut protection) = self.protection_of(instance).await?;
        if record.state != InstanceState::Running || !protection.is_active() {
            return Err(Error::InstanceNotRunning { id: instance, name: record.name, state: record.state.to_string() });
        }
        let password = self.catalog.instance_password(instance).await?;
        let lsn = self.executor.create_restore_point(&record.spec(), &password, name).await?;
        let point = RestorePoint { name: name.to_string(), lsn, time: Utc::now() };
        protection.restore_points.push(point.clone());
        self.catalog.set_instance_protection(instance, Some(protection.clone())).await?;
        Ok(point)
    }

    /// Retention of `instance`'s archive: removes the WAL no remaining base image needs (before
    /// the oldest one's start). Once the instance is deleted and no base image is left, the
    /// whole archive and its record go. Returns how many objects were removed.
    pub async fn prune_archive(&self, instance: InstanceId) -> Result<usize> {
        let (record, _) = self.protection_of(instance).await?;
        let archive = WalArchive::of(instance);
        let bases = self.base_images(instance).await?;
        let oldest = bases.iter().filter_map(|i| i.metadata.as_ref()?.wal.clone()).min_by_key(|r| r.start_lsn);
        match oldest {
            None if record.state == InstanceState::Deleted => {
                let count = self.blobs.stat(&archive.location()).await?.len();
                self.blobs.delete(&archive.location()).await?;
                self.catalog.set_instance_protection(instance, None).await?;
                Ok(count)
            }
            None => Ok(0),
            Some(range) => {
                let contents = archive.contents(&*self.blobs).await?;
                let old = contents.before(range.timeline, range.start_lsn);
                self.blobs.delete_objects(&archive.location(), &old).await?;
                Ok(old.len())
            }
        }
    }
}
