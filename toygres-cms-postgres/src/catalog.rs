//! [`PostgresCatalog`]: connecting (pool, migrations, key check) and the [`CatalogStore`] impl.

use crate::backend::BACKEND;
use crate::config::{quoted_schema, PostgresCatalogConfig};
use crate::db::Db;
use crate::errors;
use crate::schema;
use crate::tls::{client_config, SslMode};
use async_trait::async_trait;
use chrono::{DateTime, Utc};
use deadpool_postgres::{Manager, ManagerConfig, Pool, RecyclingMethod, Runtime};
use std::fmt;
use std::sync::Arc;
use tokio_postgres_rustls::MakeRustlsConnect;
use toygres_core::crypto::CatalogKey;
use toygres_core::envelope::WrappedKey;
use toygres_core::wal::Protection;
use toygres_core::{
    CatalogStore, Error, ImageFilter, ImageId, ImageRecord, ImageState, ImageUpdate, InstanceFilter, InstanceId,
    InstanceRecord, InstanceState, InstanceUpdate, Labels, NewImage, NewInstance, NewSchedule, OperationId, Password,
    Result, Schedule, ScheduleId, StoredProgress, Subject,
};

/// A [`CatalogStore`] in a PostgreSQL schema, shared safely by several control-plane processes.
/// Cheap to clone (clones share the pool).
#[derive(Clone)]
pub struct PostgresCatalog {
    db: Arc<Db>,
}

impl PostgresCatalog {
    /// The newest schema version this build writes.
    pub const SCHEMA_VERSION: i64 = schema::SCHEMA_VERSION;

    /// Connects, creates the schema and applies pending migrations (under an advisory lock, so
    /// processes connecting at once serialize), and checks `key` against the catalog.
    ///
    /// Errors: [`Error::InvalidRequest`] for a bad schema name; [`Error::Backend`] naming the
    /// host, port, database and user (never the password) when the server cannot be reached or
    /// refuses the login; [`Error::SchemaTooNew`] when a newer toygres migrated the schema;
    /// [`Error::WrongKey`] when the catalog was written with another key.
    pub async fn connect(config: PostgresCatalogConfig, key: CatalogKey) -> Result<Self> {
        let schema = quoted_schema(&config.schema)?;
        let manager_config = ManagerConfig { recycling_method: RecyclingMethod::Fast };
        let mut pg = config.pg.clone();
        let manager = match config.ssl_mode {
            SslMode::Disable => {
                pg.ssl_mode(tokio_postgres::config::SslMode::Disable);
                Manager::from_config(pg, tokio_postgres::NoTls, manager_config)
            }
            mode => {
                let tls = MakeRustlsConnect::new(client_config(mode, &config.root_certs)?);
                pg.ssl_mode(match mode {
                    SslMode::Prefer => tokio_postgres::config::SslMode::Prefer,
                    _ => tokio_postgres::config::SslMode::Require,
                });
                Manager::from_config(pg, tls, manager_config)
            }
        };
        let pool = Pool::builder(manager)
            .max_size(config.max_connections)
            .runtime(Runtime::Tokio1)
            .wait_timeout(Some(config.wait_timeout))
            .create_timeout(config.pg.get_connect_timeout().copied())
            .build()
            .map_err(|e| Error::backend(BACKEND, "cannot build the connection pool", e))?;
        let mut client = pool.get().await.map_err(|e| errors::pool(&config, e))?;
        schema::migrate(&mut client, &config, &schema, &key).await?;
        drop(client);
        tracing::debug!(endpoint = %config.endpoint(), schema = %config.schema, "postgres catalog connected");
        Ok(Self { db: Arc::new(Db { pool, config, schema, key }) })
    }

    /// Connects with a URL and the default schema `toygres_cms`; see [`PostgresCatalog::connect`].
    pub async fn connect_url(url: &str, key: CatalogKey) -> Result<Self> {
        Self::connect(PostgresCatalogConfig::from_url(url)?, key).await
    }

    /// The schema holding the catalog's tables.
    pub fn schema(&self) -> &str {
        self.db.config.schema_name()
    }
}

impl fmt::Debug for PostgresCatalog {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("PostgresCatalog").field("config", &self.db.config).finish_non_exhaustive()
    }
}

#[async_trait]
impl CatalogStore for PostgresCatalog {
    async fn reserve_image(&self, operation: OperationId, image: &NewImage) -> Result<ImageRecord> {
        self.db.reserve_image(operation, image).await
    }

    async fn get_image(&self, id: ImageId) -> Result<ImageRecord> {
        self.db.get_image(id).await
    }

    async fn list_images(&self, filter: &ImageFilter) -> Result<Vec<ImageRecord>> {
        self.db.list_images(filter).await
    }

    async fn set_image_labels(&self, id: ImageId, labels: &Labels) -> Result<ImageRecord> {
        self.db.set_image_labels(id, labels).await
    }

    async fn update_image(&self, id: ImageId, expected: ImageState, update: ImageUpdate) -> Result<ImageRecord> {
        self.db.update_image(id, expected, update).await
    }

    async fn rewrap_image_key(&self, id: ImageId, expected: &WrappedKey, new: &WrappedKey) -> Result<ImageRecord> {
        self.db.rewrap_image_key(id, expected, new).await
    }

    async fn image_source_password(&self, id: ImageId) -> Result<Password> {
        self.db.image_source_password(id).await
    }

    async fn create_instance(&self, operation: OperationId, instance: &NewInstance) -> Result<InstanceRecord> {
        self.db.create_instance(operation, instance).await
    }

    async fn get_instance(&self, id: InstanceId) -> Result<InstanceRecord> {
        self.db.get_instance(id).await
    }

    async fn get_instance_including_deleted(&self, id: InstanceId) -> Result<InstanceRecord> {
        self.db.get_instance_including_deleted(id).await
    }

    async fn get_instance_by_name(&self, name: &str) -> Result<InstanceRecord> {
        self.db.get_instance_by_name(name).await
    }

    async fn list_instances(&self, filter: &InstanceFilter) -> Result<Vec<InstanceRecord>> {
        self.db.list_instances(filter).await
    }

    async fn set_instance_labels(&self, id: InstanceId, labels: &Labels) -> Result<InstanceRecord> {
        self.db.set_instance_labels(id, labels).await
    }

    async fn update_instance(
        &self,
        id: InstanceId,
        expected: InstanceState,
        update: InstanceUpdate,
    ) -> Result<InstanceRecord> {
        self.db.update_instance(id, expected, update).await
    }

    async fn set_instance_protection(&self, id: InstanceId, protection: Option<Protection>) -> Result<InstanceRecord> {
        self.db.set_instance_protection(id, protection.as_ref()).await
    }

    async fn instance_password(&self, id: InstanceId) -> Result<Password> {
        self.db.instance_password(id).await
    }

    async fn create_schedule(&self, operation: OperationId, schedule: &NewSchedule) -> Result<Schedule> {
        self.db.create_schedule(operation, schedule).await
    }

    async fn get_schedule(&self, id: ScheduleId) -> Result<Schedule> {
        self.db.get_schedule(id).await
    }

    async fn list_schedules(&self) -> Result<Vec<Schedule>> {
        self.db.list_schedules().await
    }

    async fn delete_schedule(&self, id: ScheduleId) -> Result<()> {
        self.db.delete_schedule(id).await
    }

    async fn advance_schedule(
        &self,
        id: ScheduleId,
        expected: Option<DateTime<Utc>>,
        new: DateTime<Utc>,
    ) -> Result<Schedule> {
        self.db.advance_schedule(id, expected, new).await
    }

    async fn record_progress(&self, subject: Subject, progress: &StoredProgress) -> Result<()> {
        self.db.record_progress(subject, progress).await
    }

    async fn get_progress(&self, subject: Subject) -> Result<Option<StoredProgress>> {
        self.db.get_progress(subject).await
    }

    async fn clear_progress(&self, subject: Subject) -> Result<()> {
        self.db.clear_progress(subject).await
    }
}
