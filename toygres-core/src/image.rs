//! Image records as the catalog keeps them, and the image type carried to restored instances.

use crate::domain::PageToken;
use crate::envelope::WrappedKey;
use crate::ids::{ImageId, InstanceId, OperationId};
use crate::labels::{has_all, Labels};
use crate::metadata::ImageMetadata;
use crate::secret::Password;
use crate::state::ImageState;
use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};

pub use crate::domain::{ImageFormat, ImageType};
pub use crate::filter::ImageFilter;

/// What is known when an image is reserved (step 1 of the backup).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[non_exhaustive]
pub struct NewImage {
    /// The id to give it, chosen before it is recorded so that its data key can be bound to it
    /// ([`crate::envelope::key_context`]); `None`: the catalog picks one.
    #[serde(default)]
    pub id: Option<ImageId>,
    /// Validated image name (DNS-1123 label).
    pub name: String,
    /// Free text.
    pub description: Option<String>,
    /// The instance being imaged.
    pub source_instance_id: InstanceId,
    /// Logical (the default) or physical.
    #[serde(default)]
    pub format: ImageFormat,
    /// Validated labels.
    #[serde(default)]
    pub labels: Labels,
    /// The digest of the request that asked for it ([`crate::CreateImageRequest::digest`]),
    /// kept with the record: reserving again under the same operation with another digest is
    /// refused ([`crate::Error::OperationReused`]). `None` checks nothing.
    #[serde(default)]
    pub request_digest: Option<String>,
    /// The image's data key as the key provider wrapped it (`None`: a plaintext image). Set by
    /// [`crate::pipeline::Backup::reserve_image`], before anything is stored.
    #[serde(default)]
    pub encryption: Option<WrappedKey>,
    /// The clone image this physical image is exported from ([`crate::CreateImageRequest::export`]);
    /// `None`: taken from the running instance.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub from_image: Option<ImageId>,
}

impl NewImage {
    /// A logical image named `name` of `source`, without description or labels.
    pub fn new(name: impl Into<String>, source: InstanceId) -> Self {
        Self {
            id: None,
            name: name.into(),
            description: None,
            source_instance_id: source,
            format: ImageFormat::Logical,
            labels: Labels::new(),
            request_digest: None,
            encryption: None,
            from_image: None,
        }
    }

    /// In `format`.
    pub fn with_format(mut self, format: ImageFormat) -> Self {
        self.format = format;
        self
    }

    /// With `description`.
    pub fn with_description(mut self, description: impl Into<String>) -> Self {
        self.description = Some(description.into());
        self
    }

    /// With `labels`.
    pub fn with_labels(mut self, labels: Labels) -> Self {
        self.labels = labels;
        self
    }

    /// Exported from the clone image `clone` (see [`NewImage::from_image`]).
    pub fn with_from_image(mut self, clone: ImageId) -> Self {
        self.from_image = Some(clone);
        self
    }
}

/// An image as the catalog records it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[non_exhaustive]
pub struct ImageRecord {
    /// Its id; also names its blobs.
    pub id: ImageId,
    /// The operation that reserved it.
    pub operation_id: OperationId,
    /// Image name (DNS-1123 label).
    pub name: String,
    /// Free text.
    pub description: Option<String>,
    /// The instance it was taken from.
    pub source_instance_id: InstanceId,
    /// Logical or physical.
    pub format: ImageFormat,
    /// Lifecycle state.
    pub state: ImageState,
    /// PostgreSQL server version of the source (set when ready), e.g. `"15.18"`.
    pub pg_version: Option<String>,
    /// Image type of the source instance (set when ready).
    pub image_type: ImageType,
    /// Bytes stored in blob storage (set when ready).
    pub size_bytes: Option<u64>,
    /// `sha256:<hex>` of the image manifest, which lists every object's own checksum (set when ready).
    pub checksum: Option<String>,
    /// Why the image failed, with the job's log tail.
    pub failure_reason: Option<String>,
    /// Key/value labels.
    #[serde(default)]
    pub labels: Labels,
    /// What the image holds (set when ready): databases and sizes, format, backup times.
    #[serde(default)]
    pub metadata: Option<ImageMetadata>,
    /// How its objects are encrypted: the data key wrapped by a key provider, which names the
    /// key-encryption key it needs. `None`: stored unencrypted, as its creator asked (and left
    /// out of the serialized record, so records written before encryption read back the same).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub encryption: Option<WrappedKey>,
    /// The clone image it was exported from (a physical image made of a clone image's data);
    /// `None`: taken from its source instance (and left out of the serialized record).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub from_image: Option<ImageId>,
    /// When it was reserved.
    pub created_at: DateTime<Utc>,
    /// When it last changed state.
    pub updated_at: DateTime<Utc>,
}

impl ImageRecord {
    /// A just-reserved image (`creating`, nothing known yet), as catalogs build it; they then
    /// set the other fields from their rows.
    pub fn reserved(id: ImageId, operation_id: OperationId, new: &NewImage, created_at: DateTime<Utc>) -> Self {
        Self {
            id,
            operation_id,
            name: new.name.clone(),
            description: new.description.clone(),
            source_instance_id: new.source_instance_id,
            format: new.format,
            state: ImageState::Creating,
            pg_version: None,
            image_type: ImageType::Stock,
            size_bytes: None,
            checksum: None,
            failure_reason: None,
            labels: new.labels.clone(),
            metadata: None,
            encryption: new.encryption.clone(),
            from_image: new.from_image,
            created_at,
            updated_at: created_at,
        }
    }

    /// Its position in listings, for continuation tokens.
    pub fn page_token(&self) -> PageToken {
        PageToken::after(self.created_at, self.id.0)
    }
}

impl ImageFilter {
    /// Whether `record` passes every condition but the limit (in-memory catalogs and tests).
    pub fn matches(&self, record: &ImageRecord) -> bool {
        record.state != ImageState::Deleted
            && self.source_instance_id.is_none_or(|i| i == record.source_instance_id)
            && self.state.is_none_or(|s| s == record.state)
            && self.name.as_ref().is_none_or(|n| *n == record.name)
            && has_all(&record.labels, &self.labels)
            && self.page_token.is_none_or(|t| t.precedes(record.created_at, record.id.0))
    }
}

/// A state change of an image, applied by [`crate::CatalogStore::update_image`] as a
/// compare-and-set on the current state.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub enum ImageUpdate {
    /// `creating → ready`: the backup finished and was checked.
    Ready {
        /// Bytes stored.
        size_bytes: u64,
        /// `sha256:<hex>` of the manifest.
        checksum: String,
        /// Source server version.
        pg_version: String,
        /// Source image type.
        image_type: ImageType,
        /// The source instance's password, restored instances will use it. Stored sealed.
        source_password: Password,
        /// What the image holds, from its manifest.
        metadata: Option<ImageMetadata>,
    },
    /// `creating → failed`.
    Failed {
        /// What happened and what to do.
        reason: String,
    },
    /// `ready | failed → deleting`.
    Deleting,
    /// `deleting → deleted`: blobs removed; the catalog erases the source password.
    Deleted,
}

impl ImageUpdate {
    /// The state this update moves the image to.
    pub fn target_state(&self) -> ImageState {
        match self {
            ImageUpdate::Ready { .. } => ImageState::Ready,
            ImageUpdate::Failed { .. } => ImageState::Failed,
            ImageUpdate::Deleting => ImageState::Deleting,
            ImageUpdate::Deleted => ImageState::Deleted,
        }
    }
}

/// The columns an [`ImageUpdate`] writes, for SQL catalogs: `None` leaves a column as it is.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct ImageColumns<'a> {
    /// The new state.
    pub state: ImageState,
    /// Bytes stored.
    pub size_bytes: Option<u64>,
    /// Manifest checksum.
    pub checksum: Option<&'a str>,
    /// Source server version.
    pub pg_version: Option<&'a str>,
    /// Source image type, in the catalog's spelling.
    pub image_type: Option<&'static str>,
    /// Why the image failed.
    pub failure_reason: Option<&'a str>,
    /// The source password to seal and store.
    pub source_password: Option<&'a Password>,
    /// Whether the stored password must be erased (the image is deleted).
    pub erase_password: bool,
    /// What the image holds.
    pub metadata: Option<&'a ImageMetadata>,
}

impl ImageUpdate {
    /// What this update writes, column by column.
    pub fn columns(&self) -> ImageColumns<'_> {
        let mut c = ImageColumns {
            state: self.target_state(),
            size_bytes: None,
            checksum: None,
            pg_version: None,
            image_type: None,
            failure_reason: None,
            source_password: None,
            erase_password: matches!(self, ImageUpdate::Deleted),
            metadata: None,
        };
        match self {
            ImageUpdate::Ready { size_bytes, checksum, pg_version, image_type, source_password, metadata } => {
                c.metadata = metadata.as_ref();
                c.size_bytes = Some(*size_bytes);
                c.checksum = Some(checksum);
                c.pg_version = Some(pg_version);
                c.image_type = Some(image_type.as_str());
                c.source_password = Some(source_password);
            }
            ImageUpdate::Failed { reason } => c.failure_reason = Some(reason),
            ImageUpdate::Deleting | ImageUpdate::Deleted => {}
        }
        c
    }
}
