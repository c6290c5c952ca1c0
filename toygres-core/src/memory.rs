//! [`MemoryCatalog`]: a small, real, in-memory [`CatalogStore`] — the reference implementation
//! the conformance suite checks first, and the catalog of pipeline unit tests.

use crate::catalog::CatalogStore;
use crate::envelope::WrappedKey;
use crate::error::{Error, Result};
use crate::filter::{sort_and_limit, InstanceFilter};
use crate::ids::{ImageId, InstanceId, OperationId, ScheduleId};
use crate::image::{ImageFilter, ImageRecord, ImageUpdate, NewImage};
use crate::instance::{InstanceRecord, InstanceUpdate, NewInstance};
use crate::labels::Labels;
use crate::progress::{StoredProgress, Subject};
use crate::schedule::{NewSchedule, Schedule};
use crate::secret::Password;
use crate::state::{ImageState, InstanceState};
use crate::wal::Protection;
use async_trait::async_trait;
use chrono::{DateTime, Utc};
use std::collections::HashMap;
use std::sync::Mutex;

#[derive(Default)]
struct State {
    images: HashMap<ImageId, (ImageRecord, Option<Password>)>,
    instances: HashMap<InstanceId, (InstanceRecord, Option<Password>)>,
    /// The request digest each operation was first used with, if it had one.
    digests: HashMap<OperationId, String>,
    /// Schedules (deleted ones too) with their request digests.
    schedules: HashMap<ScheduleId, (Schedule, Option<String>)>,
    /// Byte progress by subject.
    progress: HashMap<Subject, StoredProgress>,
}

impl State {
    /// `OperationReused` when `operation` was first used with a digest other than `digest`.
    fn check_digest(&self, operation: OperationId, digest: Option<&String>) -> Result<()> {
        let kept = self.digests.get(&operation).map(String::as_str);
        crate::catalog::check_request_digest(operation, kept, digest.map(String::as_str))
    }

    fn keep_digest(&mut self, operation: OperationId, digest: Option<&String>) {
        if let Some(digest) = digest {
            self.digests.insert(operation, digest.clone());
        }
    }
}

/// An in-memory catalog. Cheap to create; state is lost on drop.
#[derive(Default)]
pub struct MemoryCatalog {
    state: Mutex<State>,
}

impl MemoryCatalog {
    /// An empty catalog.
    pub fn new() -> Self {
        Self::default()
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, State> {
        self.state.lock().unwrap_or_else(|p| p.into_inner())
    }
}

fn conflict(entity: &'static str, id: impl ToString, expected: impl ToString, actual: impl ToString) -> Error {
    Error::StateConflict { entity, id: id.to_string(), expected: expected.to_string(), actual: actual.to_string() }
}

#[async_trait]
impl CatalogStore for MemoryCatalog {
    async fn reserve_image(&self, operation: OperationId, image: &NewImage) -> Result<ImageRecord> {
        let mut s = self.lock();
        if let Some((r, _)) = s.images.values().find(|(r, _)| r.operation_id == operation) {
            let found = r.clone();
            s.check_digest(operation, image.request_digest.as_ref())?;
            return Ok(found);
        }
        let id = image.id.unwrap_or_default();
        if s.images.contains_key(&id) {
            return Err(Error::InvalidRequest {
                field: "image id",
                reason: format!("image {id} already exists under another operation; choose a new id"),
            });
        }
        let record = ImageRecord::reserved(id, operation, image, Utc::now());
        s.images.insert(record.id, (record.clone(), None));
        s.keep_digest(operation, image.request_digest.as_ref());
        Ok(record)
    }

    async fn get_image(&self, id: ImageId) -> Result<ImageRecord> {
        match self.lock().images.get(&id) {
            Some((r, _)) if r.state != ImageState::Deleted => Ok(r.clone()),
            _ => Err(Error::ImageNotFound(id)),
        }
    }

    async fn list_images(&self, filter: &ImageFilter) -> Result<Vec<ImageRecord>> {
        let out: Vec<_> = self.lock().images.values().map(|(r, _)| r.clone()).filter(|r| filter.matches(r)).collect();
        Ok(sort_and_limit(out, filter.limit, ImageRecord::page_token))
    }

    async fn set_image_labels(&self, id: ImageId, labels: &Labels) -> Result<ImageRecord> {
        match self.lock().images.get_mut(&id) {
            Some((r, _)) if r.state != ImageState::Deleted => {
                r.labels = labels.clone();
                Ok(r.clone())
            }
            _ => Err(Error::ImageNotFound(id)),
        }
    }

    async fn rewrap_image_key(&self, id: ImageId, expected: &WrappedKey, new: &WrappedKey) -> Result<ImageRecord> {
        match self.lock().images.get_mut(&id) {
            Some((r, _)) if r.state != ImageState::Deleted => {
                WrappedKey::check_rewrap(id, r.encryption.as_ref(), expected)?;
                r.encryption = Some(new.clone());
                Ok(r.clone())
            }
            _ => Err(Error::ImageNotFound(id)),
        }
    }

    async fn update_image(&self, id: ImageId, expected: ImageState, update: ImageUpdate) -> Result<ImageRecord> {
        expected.check_transition(update.target_state())?;
        let mut s = self.lock();
        let (record, password) = s.images.get_mut(&id).ok_or(Error::ImageNotFound(id))?;
        if record.state != expected {
            return Err(conflict("image", id, expected, record.state));
        }
        record.state = update.target_state();
        record.updated_at = Utc::now();
        match update {
            ImageUpdate::Ready { size_bytes, checksum, pg_version, image_type, source_password, metadata } => {
                record.metadata = metadata;
                record.size_bytes = Some(size_bytes);
                record.checksum = Some(checksum);
                record.pg_version = Some(pg_version);
                record.image_type = image_type;
                *password = Some(source_password);
            }
            ImageUpdate::Failed { reason } => record.failure_reason = Some(reason),
            ImageUpdate::Deleting => {}
            ImageUpdate::Deleted => *password = None,
        }
        let record = record.clone();
        if record.state == ImageState::Deleted {
            s.progress.remove(&Subject::Image(id));
        }
        Ok(record)
    }

    async fn image_source_password(&self, id: ImageId) -> Result<Password> {
        match self.lock().images.get(&id) {
            None => Err(Error::ImageNotFound(id)),
            Some((r, None)) => Err(Error::ImageNotReady { id, state: r.state.to_string() }),
            Some((_, Some(p))) => Ok(p.clone()),
        }
    }

    async fn create_instance(&self, operation: OperationId, new: &NewInstance) -> Result<InstanceRecord> {
        let mut s = self.lock();
        if let Some((r, _)) = s.instances.values().find(|(r, _)| r.operation_id == operation) {
            let found = r.clone();
            s.check_digest(operation, new.request_digest.as_ref())?;
            return Ok(found);
        }
        if s.instances.values().any(|(r, _)| r.name == new.name && r.state != InstanceState::Deleted) {
            return Err(Error::NameTaken(new.name.clone()));
        }
        let record = InstanceRecord::created(InstanceId::new(), operation, new, Utc::now());
        s.instances.insert(record.id, (record.clone(), Some(new.password.clone())));
        s.keep_digest(operation, new.request_digest.as_ref());
        Ok(record)
    }

    async fn get_instance(&self, id: InstanceId) -> Result<InstanceRecord> {
        match self.lock().instances.get(&id) {
            Some((r, _)) if r.state != InstanceState::Deleted => Ok(r.clone()),
            _ => Err(Error::instance_not_found(id)),
        }
    }

    async fn get_instance_including_deleted(&self, id: InstanceId) -> Result<InstanceRecord> {
        self.lock().instances.get(&id).map(|(r, _)| r.clone()).ok_or_else(|| Error::instance_not_found(id))
    }

    async fn get_instance_by_name(&self, name: &str) -> Result<InstanceRecord> {
        let s = self.lock();
        let found = s.instances.values().find(|(r, _)| r.name == name && r.state != InstanceState::Deleted);
        found.map(|(r, _)| r.clone()).ok_or_else(|| Error::InstanceNotFound(name.to_string()))
    }

    async fn list_instances(&self, filter: &InstanceFilter) -> Result<Vec<InstanceRecord>> {
        let s = self.lock();
        let out: Vec<_> = s.instances.values().map(|(r, _)| r.clone()).filter(|r| filter.matches(r)).collect();
        Ok(sort_and_limit(out, filter.limit, InstanceRecord::page_token))
    }

    async fn set_instance_labels(&self, id: InstanceId, labels: &Labels) -> Result<InstanceRecord> {
        match self.lock().instances.get_mut(&id) {
            Some((r, _)) if r.state != InstanceState::Deleted => {
                r.labels = labels.clone();
                Ok(r.clone())
            }
            _ => Err(Error::instance_not_found(id)),
        }
    }

    async fn update_instance(
        &self,
        id: InstanceId,
        expected: InstanceState,
        update: InstanceUpdate,
    ) -> Result<InstanceRecord> {
        expected.check_transition(update.target_state())?;
        let mut s = self.lock();
        let (record, password) = s.instances.get_mut(&id).ok_or_else(|| Error::instance_not_found(id))?;
        if record.state != expected {
            return Err(conflict("instance", id, expected, record.state));
        }
        record.state = update.target_state();
        record.updated_at = Utc::now();
        match update {
            InstanceUpdate::Running { connection, pg_version } => {
                record.connection = Some(connection);
                record.pg_version = pg_version.or(record.pg_version.take());
            }
            InstanceUpdate::Failed { reason } => record.failure_reason = Some(reason),
            InstanceUpdate::Deleting => {}
            InstanceUpdate::Deleted => *password = None,
        }
        let record = record.clone();
        if record.state == InstanceState::Deleted {
            s.progress.remove(&Subject::Instance(id));
        }
        Ok(record)
    }

    async fn set_instance_protection(&self, id: InstanceId, protection: Option<Protection>) -> Result<InstanceRecord> {
        let mut s = self.lock();
        let (record, _) = s.instances.get_mut(&id).ok_or_else(|| Error::instance_not_found(id))?;
        record.protection = protection;
        record.updated_at = Utc::now();
        Ok(record.clone())
    }

    async fn instance_password(&self, id: InstanceId) -> Result<Password> {
        match self.lock().instances.get(&id) {
            Some((_, Some(p))) => Ok(p.clone()),
            _ => Err(Error::instance_not_found(id)),
        }
    }

    async fn create_schedule(&self, operation: OperationId, new: &NewSchedule) -> Result<Schedule> {
        let mut s = self.lock();
        if let Some((found, kept)) = s.schedules.values().find(|(r, _)| r.operation_id == operation) {
            crate::catalog::check_request_digest(operation, kept.as_deref(), new.request_digest.as_deref())?;
            return Ok(found.clone());
        }
        if s.schedules.values().any(|(r, _)| r.name == new.name && r.deleted_at.is_none()) {
            return Err(Error::ScheduleNameTaken(new.name.clone()));
        }
        let record = Schedule::created(ScheduleId::new(), operation, new, Utc::now());
        s.schedules.insert(record.id, (record.clone(), new.request_digest.clone()));
        Ok(record)
    }

    async fn get_schedule(&self, id: ScheduleId) -> Result<Schedule> {
        match self.lock().schedules.get(&id) {
            Some((r, _)) if r.deleted_at.is_none() => Ok(r.clone()),
            _ => Err(Error::ScheduleNotFound(id)),
        }
    }

    async fn list_schedules(&self) -> Result<Vec<Schedule>> {
        let s = self.lock();
        let live = s.schedules.values().map(|(r, _)| r.clone()).filter(|r| r.deleted_at.is_none()).collect();
        Ok(sort_and_limit(live, None, Schedule::page_token))
    }

    async fn delete_schedule(&self, id: ScheduleId) -> Result<()> {
        match self.lock().schedules.get_mut(&id) {
            Some((r, _)) if r.deleted_at.is_none() => {
                r.deleted_at = Some(Utc::now());
                Ok(())
            }
            _ => Err(Error::ScheduleNotFound(id)),
        }
    }

    async fn advance_schedule(
        &self,
        id: ScheduleId,
        expected: Option<DateTime<Utc>>,
        new: DateTime<Utc>,
    ) -> Result<Schedule> {
        match self.lock().schedules.get_mut(&id) {
            Some((r, _)) if r.deleted_at.is_none() => {
                if r.last_slot != expected {
                    return Err(crate::catalog::schedule_conflict(id, expected, r.last_slot));
                }
                r.last_slot = Some(new);
                Ok(r.clone())
            }
            _ => Err(Error::ScheduleNotFound(id)),
        }
    }

    async fn record_progress(&self, subject: Subject, progress: &StoredProgress) -> Result<()> {
        let mut s = self.lock();
        let live = match subject {
            Subject::Image(id) => s.images.get(&id).is_some_and(|(r, _)| r.state != ImageState::Deleted),
            Subject::Instance(id) => s.instances.get(&id).is_some_and(|(r, _)| r.state != InstanceState::Deleted),
        };
        if !live {
            return Err(match subject {
                Subject::Image(id) => Error::ImageNotFound(id),
                Subject::Instance(id) => Error::instance_not_found(id),
            });
        }
        s.progress.insert(subject, progress.clone());
        Ok(())
    }

    async fn get_progress(&self, subject: Subject) -> Result<Option<StoredProgress>> {
        Ok(self.lock().progress.get(&subject).cloned())
    }

    async fn clear_progress(&self, subject: Subject) -> Result<()> {
        self.lock().progress.remove(&subject);
        Ok(())
    }
}
