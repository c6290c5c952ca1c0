//! The JSON bodies of the API, as the OpenAPI document describes them.

use serde::{Deserialize, Serialize};
use toygres_core::{CreateImageRequest, CreateInstanceRequest, ImageRecord, InstanceRecord, Password};
use utoipa::ToSchema;
use uuid::Uuid;

/// `POST /api/instances`: a fresh empty instance (`name`, `password`), or a restore
/// (`name`, `source_image_id`, optional `dns_label`; `password` is then ignored: the restored
/// instance uses the source image's password).
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct CreateInstanceBody {
    /// Instance name: a DNS-1123 label (1-63 of `a-z`, `0-9`, `-`).
    pub name: String,
    /// Superuser password of a fresh instance; ignored for a restore.
    #[serde(default)]
    pub password: Option<Password>,
    /// Restore from this ready image.
    #[serde(default)]
    pub source_image_id: Option<Uuid>,
    /// DNS label of the public endpoint (DNS-1123 label).
    #[serde(default)]
    pub dns_label: Option<String>,
    /// Runtime image of a fresh instance; refused with `source_image_id`.
    #[serde(default)]
    pub runtime_image_id: Option<String>,
    /// Container image override; refused with `source_image_id`.
    #[serde(default)]
    pub image_override: Option<String>,
}

/// Longest password the API accepts.
pub const MAX_PASSWORD: usize = 1024;
/// Longest description (in characters) the API accepts.
pub const MAX_DESCRIPTION: usize = 1024;

fn invalid(field: &'static str, reason: &str) -> toygres_core::Error {
    toygres_core::Error::InvalidRequest { field, reason: reason.into() }
}

impl CreateInstanceBody {
    /// What the API checks beyond the library: the password of a fresh instance must be 1-1024
    /// characters without control characters (initdb reads it as one line).
    pub fn validate(&self) -> toygres_core::Result<()> {
        let (Some(password), None) = (&self.password, self.source_image_id) else { return Ok(()) };
        let secret = password.expose();
        if secret.chars().count() > MAX_PASSWORD {
            return Err(invalid("password", "longer than 1024 characters"));
        }
        if secret.chars().any(char::is_control) {
            return Err(invalid("password", "contains control characters (newlines, tabs, NUL); use printable ones"));
        }
        Ok(())
    }
}

impl CreateImageBody {
    /// What the API checks beyond the library: a description of at most 1024 characters.
    pub fn validate(&self) -> toygres_core::Result<()> {
        if self.description.as_ref().is_some_and(|d| d.chars().count() > MAX_DESCRIPTION) {
            return Err(invalid("description", "longer than 1024 characters"));
        }
        Ok(())
    }
}

impl From<CreateInstanceBody> for CreateInstanceRequest {
    fn from(body: CreateInstanceBody) -> Self {
        // Starts from the constructor and sets the fields, as the request is `non_exhaustive`.
        let mut request = CreateInstanceRequest::restore(body.name, toygres_core::ImageId::new());
        request.source_image_id = body.source_image_id.map(Into::into);
        request.password = body.password;
        request.runtime_image_id = body.runtime_image_id;
        request.image_override = body.image_override;
        request.dns_label = body.dns_label;
        request
    }
}

/// `POST /api/images`: take an image of a running instance.
#[derive(Debug, Clone, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct CreateImageBody {
    /// Image name: a DNS-1123 label.
    #[schema(example = "nightly", pattern = r"^[a-z0-9]([-a-z0-9]*[a-z0-9])?$", min_length = 1, max_length = 63)]
    pub name: String,
    /// The running instance to image.
    pub instance_id: Uuid,
    /// Free text (at most 1024 characters).
    #[schema(max_length = 1024)]
    #[serde(default)]
    pub description: Option<String>,
    /// `logical` (the default) or `physical`; any other value is refused (400, `field` `format`).
    #[schema(default = "logical")]
    #[serde(default)]
    pub format: ImageFormat,
}

impl From<CreateImageBody> for CreateImageRequest {
    fn from(body: CreateImageBody) -> Self {
        let mut request = CreateImageRequest::new(body.name, body.instance_id.into());
        request.description = body.description;
        request.format = body.format.into();
        request
    }
}

/// How an image holds its data, as the API spells it (`toygres_core::ImageFormat`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum ImageFormat {
    /// `pg_dump` of every database plus the globals: portable across executors and onto newer
    /// PostgreSQL majors. The default.
    #[default]
    Logical,
    /// `pg_basebackup` of the data files: restores as fast as the disk, onto the same major only.
    Physical,
}

impl From<ImageFormat> for toygres_core::ImageFormat {
    fn from(format: ImageFormat) -> Self {
        match format {
            ImageFormat::Logical => toygres_core::ImageFormat::Logical,
            ImageFormat::Physical => toygres_core::ImageFormat::Physical,
        }
    }
}

impl From<toygres_core::ImageFormat> for ImageFormat {
    fn from(format: toygres_core::ImageFormat) -> Self {
        match format {
            toygres_core::ImageFormat::Logical => ImageFormat::Logical,
            toygres_core::ImageFormat::Physical => ImageFormat::Physical,
        }
    }
}

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
    /// Progress while provisioning.
    pub progress: Option<Progress>,
    /// Why it failed.
    pub failure_reason: Option<String>,
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
            }),
            progress,
            failure_reason: record.failure_reason,
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
    /// `logical` or `physical`, as requested (known while creating too).
    pub format: ImageFormat,
    /// Names of the databases it holds, once ready. Logical images only: a physical image is the
    /// whole cluster and its manifest lists none (empty).
    pub databases: Vec<String>,
    /// Source PostgreSQL version, once ready.
    pub pg_version: Option<String>,
    /// Source image type.
    pub image_type: String,
    /// Progress while creating.
    pub progress: Option<Progress>,
    /// Why it failed.
    pub failure_reason: Option<String>,
    /// When it was reserved (RFC 3339).
    pub created_at: String,
}

/// What an image's manifest adds to its record.
#[derive(Debug, Clone, Default)]
pub struct ManifestSummary {
    /// Database names.
    pub databases: Vec<String>,
}

impl Image {
    /// The API's view of a record, its manifest and its progress.
    pub fn new(record: ImageRecord, manifest: ManifestSummary, progress: Option<Progress>) -> Self {
        Self {
            id: record.id.as_uuid(),
            name: record.name,
            description: record.description,
            state: record.state.to_string(),
            source_instance_id: record.source_instance_id.as_uuid(),
            size_bytes: record.size_bytes,
            checksum: record.checksum,
            format: record.format.into(),
            databases: manifest.databases,
            pg_version: record.pg_version,
            image_type: record.image_type.to_string(),
            progress,
            failure_reason: record.failure_reason,
            created_at: record.created_at.to_rfc3339(),
        }
    }
}

/// `GET /healthz`.
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
pub struct Health {
    /// Always `ok` when the server answers.
    pub status: String,
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::api::error::{ApiError, Body};
    use axum::extract::FromRequest;
    use serde_json::json;

    async fn parse(body: serde_json::Value) -> Result<CreateImageBody, ApiError> {
        let request = axum::http::Request::builder()
            .method("POST")
            .header("content-type", "application/json")
            .body(axum::body::Body::from(body.to_string()))
            .unwrap();
        Body::<CreateImageBody>::from_request(request, &()).await.map(|Body(body)| body)
    }

    #[tokio::test]
    async fn the_image_format_defaults_to_logical_and_reaches_the_request() {
        let id = Uuid::new_v4();
        let body = parse(json!({ "name": "n", "instance_id": id })).await.unwrap();
        assert_eq!(CreateImageRequest::from(body).format, toygres_core::ImageFormat::Logical);
        let body = parse(json!({ "name": "n", "instance_id": id, "format": "physical" })).await.unwrap();
        assert_eq!(CreateImageRequest::from(body).format, toygres_core::ImageFormat::Physical);
        let body = parse(json!({ "name": "n", "instance_id": id, "format": "logical" })).await.unwrap();
        assert_eq!(CreateImageRequest::from(body).format, toygres_core::ImageFormat::Logical);
    }

    #[tokio::test]
    async fn an_unknown_image_format_is_refused_naming_the_field() {
        let id = Uuid::new_v4();
        for format in [json!("Physical"), json!("incremental"), json!(1), json!(null)] {
            let error = parse(json!({ "name": "n", "instance_id": id, "format": format })).await.unwrap_err();
            assert_eq!(error.status, axum::http::StatusCode::BAD_REQUEST, "{format}");
            let detail = &error.detail;
            assert_eq!(
                (detail.code.as_str(), detail.field.as_deref()),
                ("invalid_body", Some("format")),
                "{}",
                detail.message
            );
            assert!(error.detail.message.contains("`format`"), "{}", error.detail.message);
        }
    }

    #[test]
    fn formats_match_the_libraries() {
        for format in [toygres_core::ImageFormat::Logical, toygres_core::ImageFormat::Physical] {
            let api = ImageFormat::from(format);
            assert_eq!(serde_json::to_value(api).unwrap(), json!(format.as_str()));
            assert_eq!(toygres_core::ImageFormat::from(api), format);
        }
    }
}
