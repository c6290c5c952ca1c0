//! [`MemoryCatalog`]: a small, real, in-memory [`CatalogStore`] — the reference implementation
//! the conformance suite checks first, and the catalog of pipeline unit tests.

use crate::catalog::CatalogStore;
use crate::error::{Error, Result};
use crate::ids::{ImageId, InstanceId, OperationId};
use crate::image::{ImageFilter, ImageRecord, ImageType, ImageUpdate, NewImage};
use crate::instance::{InstanceRecord, InstanceUpdate, NewInstance};
use crate::secret::Password;
use crate::state::{ImageState, InstanceState};
use async_trait::async_trait;
use chrono::Utc;
use std::collections::HashMap;
use std::sync::Mutex;

#[derive(Default)]
struct State {
    images: HashMap<ImageId, (ImageRecord, Option<Password>)>,
    instances: HashMap<InstanceId, (InstanceRecord, Option<Password>)>,
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
            return Ok(r.clone());
        }
        let now = Utc::now();
        let record = ImageRecord {
            id: ImageId::new(),
            operation_id: operation,
            name: image.name.clone(),
            description: image.description.clone(),
            source_instance_id: image.source_instance_id,
            format: image.format,
            state: ImageState::Creating,
            pg_version: None,
            image_type: ImageType::Stock,
            size_bytes: None,
            checksum: None,
            failure_reason: None,
            created_at: now,
            updated_at: now,
        };
        s.images.insert(record.id, (record.clone(), None));
        Ok(record)
    }

    async fn get_image(&self, id: ImageId) -> Result<ImageRecord> {
        match self.lock().images.get(&id) {
            Some((r, _)) if r.state != ImageState::Deleted => Ok(r.clone()),
            _ => Err(Error::ImageNotFound(id)),
        }
    }

    async fn list_images(&self, filter: &ImageFilter) -> Result<Vec<ImageRecord>> {
        let mut out: Vec<_> =
            self.lock().images.values().map(|(r, _)| r.clone()).filter(|r| filter.matches(r)).collect();
        out.sort_by_key(|r| (r.created_at, r.id));
        Ok(out)
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
            ImageUpdate::Ready { size_bytes, checksum, pg_version, image_type, source_password } => {
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
        Ok(record.clone())
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
            return Ok(r.clone());
        }
        if s.instances.values().any(|(r, _)| r.name == new.name && r.state != InstanceState::Deleted) {
            return Err(Error::NameTaken(new.name.clone()));
        }
        let now = Utc::now();
        let record = InstanceRecord {
            id: InstanceId::new(),
            operation_id: operation,
            name: new.name.clone(),
            dns_label: new.dns_label.clone(),
            state: new.state,
            image_type: new.image_type,
            pg_version: new.pg_version.clone(),
            source_image_id: new.source_image_id,
            connection: None,
            failure_reason: None,
            created_at: now,
            updated_at: now,
        };
        s.instances.insert(record.id, (record.clone(), Some(new.password.clone())));
        Ok(record)
    }

    async fn get_instance(&self, id: InstanceId) -> Result<InstanceRecord> {
        match self.lock().instances.get(&id) {
            Some((r, _)) if r.state != InstanceState::Deleted => Ok(r.clone()),
            _ => Err(Error::instance_not_found(id)),
        }
    }

    async fn get_instance_by_name(&self, name: &str) -> Result<InstanceRecord> {
        let s = self.lock();
        let found = s.instances.values().find(|(r, _)| r.name == name && r.state != InstanceState::Deleted);
        found.map(|(r, _)| r.clone()).ok_or_else(|| Error::InstanceNotFound(name.to_string()))
    }

    async fn list_instances(&self) -> Result<Vec<InstanceRecord>> {
        let s = self.lock();
        let mut out: Vec<_> =
            s.instances.values().map(|(r, _)| r.clone()).filter(|r| r.state != InstanceState::Deleted).collect();
        out.sort_by_key(|r| (r.created_at, r.id));
        Ok(out)
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
        Ok(record.clone())
    }

    async fn instance_password(&self, id: InstanceId) -> Result<Password> {
        match self.lock().instances.get(&id) {
            Some((_, Some(p))) => Ok(p.clone()),
            _ => Err(Error::instance_not_found(id)),
        }
    }
}
