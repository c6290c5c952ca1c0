//! [`SqliteCatalog`]: the handle, how it opens, and its [`CatalogStore`] implementation.

use crate::pool::{connect, Pool, SqliteOptions};
use crate::{images, instances, progress, schedules, schema};
use async_trait::async_trait;
use chrono::{DateTime, Utc};
use std::fmt;
use std::path::Path;
use std::sync::Arc;
use toygres_core::crypto::CatalogKey;
use toygres_core::envelope::WrappedKey;
use toygres_core::wal::Protection;
use toygres_core::{
    CatalogStore, ImageFilter, ImageId, ImageRecord, ImageState, ImageUpdate, InstanceFilter, InstanceId,
    InstanceRecord, InstanceState, InstanceUpdate, Labels, NewImage, NewInstance, NewSchedule, OperationId, Password,
    Result, Schedule, ScheduleId, StoredProgress, Subject,
};

/// A [`CatalogStore`] in one SQLite file. Cheap to clone (clones share the connections); safe to
/// use from many tasks at once, and from several processes on the same file.
#[derive(Clone)]
pub struct SqliteCatalog {
    pool: Arc<Pool>,
}

impl SqliteCatalog {
    /// Opens (creating if needed) the catalog at `path` with default [`SqliteOptions`]. See
    /// [`SqliteCatalog::open_with_options`].
    pub fn open(path: impl AsRef<Path>, key: CatalogKey) -> Result<Self> {
        Self::open_with_options(path, key, SqliteOptions::default())
    }

    /// Opens (creating if needed) the catalog at `path`: WAL mode, busy timeout, pending
    /// migrations applied.
    ///
    /// Fails with [`Error::SchemaTooNew`](toygres_core::Error::SchemaTooNew) when a newer
    /// toygres wrote the file, [`Error::WrongKey`](toygres_core::Error::WrongKey) when the file
    /// was written with another key, and [`Error::Backend`](toygres_core::Error::Backend) naming
    /// the path when the file cannot be opened. This call blocks briefly (opening and migrating);
    /// call it at start-up or from `spawn_blocking`.
    pub fn open_with_options(path: impl AsRef<Path>, key: CatalogKey, options: SqliteOptions) -> Result<Self> {
        let path = path.as_ref();
        let located = |e| locate(&path.display().to_string(), e);
        let mut first = connect(Some(path), &options).map_err(located)?;
        schema::migrate(&mut first, &key).map_err(located)?;
        let mut connections = vec![first];
        for _ in 1..options.connections.max(1) {
            connections.push(connect(Some(path), &options).map_err(located)?);
        }
        tracing::debug!(path = %path.display(), connections = connections.len(), "sqlite catalog opened");
        Ok(Self { pool: Arc::new(Pool::new(connections, key, path.display().to_string())) })
    }

    /// A private catalog in memory (one connection), for tests and throw-away runs.
    pub fn open_in_memory(key: CatalogKey) -> Result<Self> {
        let mut conn = connect(None, &SqliteOptions::default())?;
        schema::migrate(&mut conn, &key)?;
        Ok(Self { pool: Arc::new(Pool::new(vec![conn], key, ":memory:".to_string())) })
    }

    /// The newest schema version this build writes.
    pub const SCHEMA_VERSION: i64 = schema::SCHEMA_VERSION;
}

fn locate(location: &str, e: toygres_core::Error) -> toygres_core::Error {
    match e {
        toygres_core::Error::Backend { backend, class, message, source } => {
            toygres_core::Error::Backend { backend, class, message: format!("{location}: {message}"), source }
        }
        other => other,
    }
}

impl fmt::Debug for SqliteCatalog {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("SqliteCatalog").field("location", &self.pool.location()).finish_non_exhaustive()
    }
}

#[async_trait]
impl CatalogStore for SqliteCatalog {
    async fn reserve_image(&self, operation: OperationId, image: &NewImage) -> Result<ImageRecord> {
        let image = image.clone();
        self.pool.run(move |c, _| images::reserve(c, operation, &image)).await
    }

    async fn get_image(&self, id: ImageId) -> Result<ImageRecord> {
        self.pool.run(move |c, _| images::get(c, id)).await
    }

    async fn list_images(&self, filter: &ImageFilter) -> Result<Vec<ImageRecord>> {
        let filter = filter.clone();
        self.pool.run(move |c, _| images::list(c, &filter)).await
    }

    async fn set_image_labels(&self, id: ImageId, labels: &Labels) -> Result<ImageRecord> {
        let labels = labels.clone();
        self.pool.run(move |c, _| images::set_labels(c, id, &labels)).await
    }

    async fn update_image(&self, id: ImageId, expected: ImageState, update: ImageUpdate) -> Result<ImageRecord> {
        self.pool.run(move |c, key| images::update(c, key, id, expected, update)).await
    }

    async fn rewrap_image_key(&self, id: ImageId, expected: &WrappedKey, new: &WrappedKey) -> Result<ImageRecord> {
        let (expected, new) = (expected.clone(), new.clone());
        self.pool.run(move |c, _| images::rewrap_key(c, id, &expected, &new)).await
    }

    async fn image_source_password(&self, id: ImageId) -> Result<Password> {
        self.pool.run(move |c, key| images::source_password(c, key, id)).await
    }

    async fn create_instance(&self, operation: OperationId, instance: &NewInstance) -> Result<InstanceRecord> {
        let instance = instance.clone();
        self.pool.run(move |c, key| instances::create(c, key, operation, &instance)).await
    }

    async fn get_instance(&self, id: InstanceId) -> Result<InstanceRecord> {
        self.pool.run(move |c, _| instances::get(c, id)).await
    }

    async fn get_instance_including_deleted(&self, id: InstanceId) -> Result<InstanceRecord> {
        self.pool.run(move |c, _| instances::get_including_deleted(c, id)).await
    }

    async fn get_instance_by_name(&self, name: &str) -> Result<InstanceRecord> {
        let name = name.to_string();
        self.pool.run(move |c, _| instances::get_by_name(c, &name)).await
    }

    async fn list_instances(&self, filter: &InstanceFilter) -> Result<Vec<InstanceRecord>> {
        let filter = filter.clone();
        self.pool.run(move |c, _| instances::list(c, &filter)).await
    }

    async fn set_instance_labels(&self, id: InstanceId, labels: &Labels) -> Result<InstanceRecord> {
        let labels = labels.clone();
        self.pool.run(move |c, _| instances::set_labels(c, id, &labels)).await
    }

    async fn update_instance(
        &self,
        id: InstanceId,
        expected: InstanceState,
        update: InstanceUpdate,
    ) -> Result<InstanceRecord> {
        self.pool.run(move |c, _| instances::update(c, id, expected, update)).await
    }

    async fn set_instance_protection(&self, id: InstanceId, protection: Option<Protection>) -> Result<InstanceRecord> {
        self.pool.run(move |c, _| instances::set_protection(c, id, protection.as_ref())).await
    }

    async fn instance_password(&self, id: InstanceId) -> Result<Password> {
        self.pool.run(move |c, key| instances::password(c, key, id)).await
    }

    async fn create_schedule(&self, operation: OperationId, schedule: &NewSchedule) -> Result<Schedule> {
        let schedule = schedule.clone();
        self.pool.run(move |c, _| schedules::create(c, operation, &schedule)).await
    }

    async fn get_schedule(&self, id: ScheduleId) -> Result<Schedule> {
        self.pool.run(move |c, _| schedules::get(c, id)).await
    }

    async fn list_schedules(&self) -> Result<Vec<Schedule>> {
        self.pool.run(move |c, _| schedules::list(c)).await
    }

    async fn delete_schedule(&self, id: ScheduleId) -> Result<()> {
        self.pool.run(move |c, _| schedules::delete(c, id)).await
    }

    async fn advance_schedule(
        &self,
        id: ScheduleId,
        expected: Option<DateTime<Utc>>,
        new: DateTime<Utc>,
    ) -> Result<Schedule> {
        self.pool.run(move |c, _| schedules::advance(c, id, expected, new)).await
    }

    async fn record_progress(&self, subject: Subject, progress: &StoredProgress) -> Result<()> {
        let progress = progress.clone();
        self.pool.run(move |c, _| progress::record(c, subject, &progress)).await
    }

    async fn get_progress(&self, subject: Subject) -> Result<Option<StoredProgress>> {
        self.pool.run(move |c, _| progress::get(c, subject)).await
    }

    async fn clear_progress(&self, subject: Subject) -> Result<()> {
        self.pool.run(move |c, _| progress::remove(c, subject)).await
    }
}
