//! Instance records as the catalog keeps them.

use crate::domain::{ImageType, InstanceSpec, PageToken};
use crate::filter::InstanceFilter;
use crate::ids::{ImageId, InstanceId, OperationId};
use crate::image::ImageRecord;
use crate::labels::{has_all, Labels};
use crate::secret::Password;
use crate::state::InstanceState;
use crate::wal::{Protection, RecoveryPlan};
use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};

pub use crate::domain::ConnectionInfo;

/// What is known when an instance record is created.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[non_exhaustive]
pub struct NewInstance {
    /// Instance name (DNS-1123 label); unique among instances that are not deleted.
    pub name: String,
    /// DNS label of its public endpoint, if any.
    pub dns_label: Option<String>,
    /// Its image type (for a restore: the source image's).
    pub image_type: ImageType,
    /// PostgreSQL major/minor version it runs, e.g. `"15.18"`.
    pub pg_version: Option<String>,
    /// The image it is restored from, if any.
    pub source_image_id: Option<ImageId>,
    /// The superuser password (for a restore: the source image's). Stored sealed.
    pub password: Password,
    /// The state it starts in: `provisioning` for a restore, `running` when registering an
    /// instance that already exists.
    pub state: InstanceState,
    /// Validated labels.
    #[serde(default)]
    pub labels: Labels,
    /// For a restore: the databases to restore (`None`: all of the image's).
    #[serde(default)]
    pub databases: Option<Vec<String>>,
    /// The digest of the request that asked for it ([`crate::CreateInstanceRequest::digest`]),
    /// kept with the record: creating again under the same operation with another digest is
    /// refused ([`crate::Error::OperationReused`]). `None` checks nothing.
    #[serde(default)]
    pub request_digest: Option<String>,
    /// A point-in-time restore: the WAL replay admission decided ([`crate::wal::RecoveryPlan`]).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub recovery: Option<RecoveryPlan>,
}

impl NewInstance {
    /// An instance that already runs (stock, no source image), to record with
    /// [`crate::Toygres::register_instance`] so that it can be imaged.
    pub fn existing(name: impl Into<String>, password: Password) -> Self {
        Self {
            name: name.into(),
            dns_label: None,
            image_type: ImageType::Stock,
            pg_version: None,
            source_image_id: None,
            password,
            state: InstanceState::Running,
            labels: Labels::new(),
            databases: None,
            request_digest: None,
            recovery: None,
        }
    }

    /// An instance being restored (`provisioning`) from `image`, whose type and version it takes.
    pub fn restored(name: impl Into<String>, image: &ImageRecord, password: Password) -> Self {
        Self {
            name: name.into(),
            dns_label: None,
            image_type: image.image_type,
            pg_version: image.pg_version.clone(),
            source_image_id: Some(image.id),
            password,
            state: InstanceState::Provisioning,
            labels: Labels::new(),
            databases: None,
            request_digest: None,
            recovery: None,
        }
    }

    /// With `labels`.
    pub fn with_labels(mut self, labels: Labels) -> Self {
        self.labels = labels;
        self
    }
}

/// An instance as the catalog records it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[non_exhaustive]
pub struct InstanceRecord {
    /// Its id; also names its resources.
    pub id: InstanceId,
    /// The operation that created it.
    pub operation_id: OperationId,
    /// Instance name (DNS-1123 label).
    pub name: String,
    /// DNS label of its public endpoint.
    pub dns_label: Option<String>,
    /// Lifecycle state.
    pub state: InstanceState,
    /// Image type (from the source image for restored instances).
    pub image_type: ImageType,
    /// PostgreSQL version.
    pub pg_version: Option<String>,
    /// The image it was restored from.
    pub source_image_id: Option<ImageId>,
    /// How to reach it, once running.
    pub connection: Option<ConnectionInfo>,
    /// Why provisioning failed.
    pub failure_reason: Option<String>,
    /// Key/value labels.
    #[serde(default)]
    pub labels: Labels,
    /// The databases restored into it (`None`: all of its image's).
    #[serde(default)]
    pub databases: Option<Vec<String>>,
    /// A point-in-time restore: what it replays ([`crate::wal::RecoveryPlan`]).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub recovery: Option<RecoveryPlan>,
    /// Continuous WAL archiving of this instance ([`crate::Toygres::protect`]); kept after the
    /// instance is deleted, while its archive is.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub protection: Option<Protection>,
    /// When it was created.
    pub created_at: DateTime<Utc>,
    /// When it last changed state.
    pub updated_at: DateTime<Utc>,
}

impl InstanceRecord {
    /// A just-created record of `new`, as catalogs build it; they then set the other fields
    /// from their rows.
    pub fn created(id: InstanceId, operation_id: OperationId, new: &NewInstance, created_at: DateTime<Utc>) -> Self {
        Self {
            id,
            operation_id,
            name: new.name.clone(),
            dns_label: new.dns_label.clone(),
            state: new.state,
            image_type: new.image_type,
            pg_version: new.pg_version.clone(),
            source_image_id: new.source_image_id,
            connection: None,
            failure_reason: None,
            labels: new.labels.clone(),
            databases: new.databases.clone(),
            recovery: new.recovery.clone(),
            protection: None,
            created_at,
            updated_at: created_at,
        }
    }

    /// Its position in listings, for continuation tokens.
    pub fn page_token(&self) -> PageToken {
        PageToken::after(self.created_at, self.id.0)
    }

    /// The executor's view of this instance.
    pub fn spec(&self) -> InstanceSpec {
        InstanceSpec {
            id: self.id,
            name: self.name.clone(),
            image_type: self.image_type,
            pg_version: self.pg_version.clone(),
            dns_label: self.dns_label.clone(),
        }
    }
}

impl InstanceFilter {
    /// Whether `record` passes every condition but the limit (in-memory catalogs and tests).
    pub fn matches(&self, record: &InstanceRecord) -> bool {
        record.state != InstanceState::Deleted
            && self.source_image_id.is_none_or(|i| Some(i) == record.source_image_id)
            && self.state.is_none_or(|s| s == record.state)
            && self.name.as_ref().is_none_or(|n| *n == record.name)
            && has_all(&record.labels, &self.labels)
            && self.page_token.is_none_or(|t| t.precedes(record.created_at, record.id.0))
    }
}

/// A state change of an instance, applied by [`crate::CatalogStore::update_instance`] as a
/// compare-and-set on the current state.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub enum InstanceUpdate {
    /// `provisioning → running`.
    Running {
        /// Where clients connect.
        connection: ConnectionInfo,
        /// The version the server runs, when the executor reports it (replaces the image's).
        pg_version: Option<String>,
    },
    /// `provisioning → failed`.
    Failed {
        /// What happened and what to do.
        reason: String,
    },
    /// `running | failed → deleting`.
    Deleting,
    /// `deleting → deleted`: resources removed; the catalog erases the password.
    Deleted,
}

impl InstanceUpdate {
    /// The state this update moves the instance to.
    pub fn target_state(&self) -> InstanceState {
        match self {
            InstanceUpdate::Running { .. } => InstanceState::Running,
            InstanceUpdate::Failed { .. } => InstanceState::Failed,
            InstanceUpdate::Deleting => InstanceState::Deleting,
            InstanceUpdate::Deleted => InstanceState::Deleted,
        }
    }
}

/// The columns an [`InstanceUpdate`] writes, for SQL catalogs: `None` leaves a column as it is.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct InstanceColumns<'a> {
    /// The new state.
    pub state: InstanceState,
    /// Where clients connect.
    pub connection: Option<&'a ConnectionInfo>,
    /// The version the server runs.
    pub pg_version: Option<&'a str>,
    /// Why provisioning failed.
    pub failure_reason: Option<&'a str>,
    /// Whether the stored password must be erased (the instance is deleted).
    pub erase_password: bool,
}

impl InstanceUpdate {
    /// What this update writes, column by column.
    pub fn columns(&self) -> InstanceColumns<'_> {
        InstanceColumns {
            state: self.target_state(),
            connection: match self {
                InstanceUpdate::Running { connection, .. } => Some(connection),
                _ => None,
            },
            pg_version: match self {
                InstanceUpdate::Running { pg_version, .. } => pg_version.as_deref(),
                _ => None,
            },
            failure_reason: match self {
                InstanceUpdate::Failed { reason } => Some(reason),
                _ => None,
            },
            erase_password: matches!(self, InstanceUpdate::Deleted),
        }
    }
}
