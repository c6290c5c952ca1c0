//! The response bodies of the API: records as the API shows them (never a password), pages of
//! them, and progress.

use super::recovery::{Protection, Recovery};
use super::requests::ImageFormat;
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;
use toygres_core::{ImageRecord, InstanceRecord, Page};
use utoipa::ToSchema;
use uuid::Uuid;

/// The answer to a creation: its id and first state (`provisioning` or `creating`).
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
pub struct Created {
    /// The new record's id.
    pub id: Uuid,
    /// Its state now.
    pub state: String,
}

/// How far a long operation is.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, ToSchema)]
pub struct Progress {
    /// The step running now, e.g. `BackupJob`, `WaitRestoreJob`.
    pub step: Option<String>,
    /// Bytes moved so far.
    pub bytes_done: u64,
    /// Bytes to move, when known.
    pub bytes_total: Option<u64>,
    /// Seconds left at the rate seen so far, when it can be estimated.
    pub eta_seconds: Option<u64>,
}

/// How to reach a running instance (never the password).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, ToSchema)]
pub struct Connection {
    /// Host name or address.
    pub host: String,
    /// TCP port.
    pub port: u16,
    /// Superuser name.
    pub user: String,
    /// Default database.
    pub database: String,
    /// libpq's `sslmode` clients must use: `require` for an instance that accepts TLS connections
    /// only (the Kubernetes executor's). Absent: the client's default.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub ssl_mode: Option<String>,
}

/// An instance.
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
pub struct Instance {
    /// Its id.
    pub id: Uuid,
    /// Its name.
    pub name: String,
    /// `provisioning`, `running`, `failed`, `deleting`.
    pub state: String,
    /// `stock` or `pg_durable` (a restore's comes from its source image).
    pub image_type: String,
    /// PostgreSQL version, when known.
    pub pg_version: Option<String>,
    /// The image it was restored from.
    pub source_image_id: Option<Uuid>,
    /// How to reach it, once running.
    pub connection: Option<Connection>,
    /// The databases restored from the image (none: every one).
    pub databases: Option<Vec<String>>,
    /// Its labels.
    pub labels: BTreeMap<String, String>,
    /// Progress while provisioning.
    pub progress: Option<Progress>,
    /// Why it failed.
    pub failure_reason: Option<String>,
    /// Its continuous protection (WAL archiving); `null` when it was never protected.
    #[serde(default)]
    pub protection: Option<Protection>,
    /// What it replays, when it is a point-in-time restore (its `source_image_id` is then the
    /// base image).
    #[serde(default)]
    pub recovery: Option<Recovery>,
    /// When it was recorded (RFC 3339).
    pub created_at: String,
}

impl Instance {
    /// The API's view of a record, with the progress of its operation.
    pub fn new(record: InstanceRecord, progress: Option<Progress>) -> Self {
        Self {
            id: record.id.as_uuid(),
            name: record.name,
            state: record.state.to_string(),
            image_type: record.image_type.to_string(),
            pg_version: record.pg_version,
            source_image_id: record.source_image_id.map(|i| i.as_uuid()),
            connection: record.connection.map(|c| Connection {
                host: c.host,
                port: c.port,
                user: c.user,
                database: c.database,
                ssl_mode: c.ssl_mode,
            }),
            databases: record.databases,
            labels: record.labels,
            progress,
            failure_reason: record.failure_reason,
            protection: record.protection.as_ref().map(Protection::from),
            recovery: record.recovery.as_ref().map(Recovery::from),
            created_at: record.created_at.to_rfc3339(),
        }
    }
}

/// An image.
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
pub struct Image {
    /// Its id.
    pub id: Uuid,
    /// Its name.
    pub name: String,
    /// Free text.
    pub description: Option<String>,
    /// `creating`, `ready`, `failed`, `deleting`.
    pub state: String,
    /// The instance it was taken from.
    pub source_instance_id: Uuid,
    /// Bytes stored, once ready.
    pub size_bytes: Option<u64>,
    /// `sha256:<hex>` of its manifest, once ready.
    pub checksum: Option<String>,
    /// `logical`, `physical` or `clone`, as requested (known while creating too).
    pub format: ImageFormat,
    /// Names of the databases it holds, once ready. Logical images only: a physical image is the
    /// whole cluster and its manifest lists none (empty).
    pub databases: Vec<String>,
    /// Source PostgreSQL version, once ready.
    pub pg_version: Option<String>,
    /// Source image type.
    pub image_type: String,
    /// Its labels.
    pub labels: BTreeMap<String, String>,
    /// Progress while creating.
    pub progress: Option<Progress>,
    /// Why it failed.
    pub failure_reason: Option<String>,
    /// How its objects are encrypted; `null` for an image stored unencrypted, as its creator asked.
    pub encryption: Option<Encryption>,
    /// The clone image a physical image was exported from; `null` for an image taken of its
    /// instance.
    #[serde(default)]
    pub from_image: Option<Uuid>,
    /// When it was reserved (RFC 3339).
    pub created_at: String,
}

/// How an image is encrypted: its data key, wrapped by a key provider under one of its keys.
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
pub struct Encryption {
    /// The key provider: `local` or `aws-kms`.
    pub provider: String,
    /// The key-encryption key its data key is wrapped under (rotation changes it).
    pub key_id: String,
}

impl Image {
    /// The API's view of a record (its databases from the metadata it carries once ready) and
    /// its progress.
    pub fn new(record: ImageRecord, progress: Option<Progress>) -> Self {
        let databases = record.metadata.as_ref().map(|m| m.database_names().map(str::to_string).collect());
        Self {
            id: record.id.as_uuid(),
            name: record.name,
            description: record.description,
            state: record.state.to_string(),
            source_instance_id: record.source_instance_id.as_uuid(),
            size_bytes: record.size_bytes,
            checksum: record.checksum,
            format: record.format.into(),
            databases: databases.unwrap_or_default(),
            pg_version: record.pg_version,
            image_type: record.image_type.to_string(),
            labels: record.labels,
            progress,
            failure_reason: record.failure_reason,
            encryption: record.encryption.map(|w| Encryption { provider: w.provider, key_id: w.key_id }),
            from_image: record.from_image.map(|i| i.as_uuid()),
            created_at: record.created_at.to_rfc3339(),
        }
    }
}

/// One page of `GET /api/instances`, oldest first.
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
pub struct InstancePage {
    /// The instances of this page.
    pub items: Vec<Instance>,
    /// Pass it as `page_token` for the next page; absent on the last one.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub next_page_token: Option<String>,
}

/// One page of `GET /api/images`, oldest first.
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
pub struct ImagePage {
    /// The images of this page.
    pub items: Vec<Image>,
    /// Pass it as `page_token` for the next page; absent on the last one.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub next_page_token: Option<String>,
}

/// A schedule of images.
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
pub struct Schedule {
    /// Its id; its images carry it in the label `toygres.io/schedule`.
    pub id: Uuid,
    /// Its name; its images are named `<name>-<yyyymmdd>t<hhmm>`.
    pub name: String,
    /// The instance it images.
    pub instance_id: Uuid,
    /// The cron expression (5 fields, UTC).
    pub cron: String,
    /// The format of its images.
    pub format: ImageFormat,
    /// How many of its newest ready images are kept.
    pub keep_last: u32,
    /// Its images younger than this many seconds are kept too.
    pub keep_younger_than_seconds: Option<u64>,
    /// When it was created (RFC 3339); no earlier slot is taken.
    pub created_at: String,
    /// The last slot taken (RFC 3339), if any.
    pub last_slot: Option<String>,
    /// The next slot that will be taken (RFC 3339).
    pub next_run_at: Option<String>,
}

impl Schedule {
    /// The API's view of a schedule, with its next run after now.
    pub fn new(schedule: toygres_core::Schedule) -> Self {
        let next = schedule.next_run_after(chrono::Utc::now());
        Self {
            id: schedule.id.as_uuid(),
            name: schedule.name,
            instance_id: schedule.instance_id.as_uuid(),
            cron: schedule.cron,
            format: schedule.format.into(),
            keep_last: schedule.retention.keep_last,
            keep_younger_than_seconds: schedule.retention.keep_younger_than.map(|d| d.as_secs()),
            created_at: schedule.created_at.to_rfc3339(),
            last_slot: schedule.last_slot.map(toygres_core::schedule::slot_text),
            next_run_at: next.map(toygres_core::schedule::slot_text),
        }
    }
}

/// `GET /api/schedules`: every schedule, oldest first.
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
pub struct SchedulePage {
    /// The schedules.
    pub items: Vec<Schedule>,
}

/// The token of the page after `page`, as the API spells it.
pub fn next_token<T>(page: &Page<T>) -> Option<String> {
    page.next.map(|t| t.to_string())
}

/// `GET /healthz`.
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
pub struct Health {
    /// Always `ok` when the server answers.
    pub status: String,
}
