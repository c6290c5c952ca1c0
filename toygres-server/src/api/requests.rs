//! The request bodies of the API, as the OpenAPI document describes them. They only carry the
//! request to the library: every rule on it is core's (`toygres_core`'s admission).

use serde::{Deserialize, Serialize};
use toygres_core::wal::{Lsn, PointInTime};
use toygres_core::{CreateImageRequest, CreateInstanceRequest, CreateScheduleRequest, Labels, Password};
use utoipa::ToSchema;
use uuid::Uuid;

/// `POST /api/instances`: a fresh empty instance (`name`, `password`), a restore
/// (`name`, `source_image_id`, optional `dns_label`; `password` is then ignored: the restored
/// instance uses the source image's password), or a point-in-time restore (`name`,
/// `point_in_time`; its password is the protected instance's).
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
    /// Restore only these databases of the image (default: every one); each must be in it.
    #[serde(default)]
    pub databases: Option<Vec<String>>,
    /// Labels to find the instance by (`GET /api/instances?labels=k=v`).
    #[serde(default)]
    pub labels: Labels,
    /// A point-in-time restore: a moment of a protected instance's WAL archive.
    #[serde(default)]
    pub point_in_time: Option<PointInTimeBody>,
}

/// `point_in_time` of `POST /api/instances`: the protected instance and at most one target
/// (none: the latest moment its archive holds). The time and the WAL position are read here, so
/// that one that fits the schema's string but not its format is a 422, never a 400.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PointInTimeBody {
    /// The protected instance.
    pub instance_id: Uuid,
    /// Every transaction committed at or before this moment (RFC 3339).
    #[serde(default)]
    pub time: Option<String>,
    /// Up to and including the WAL record at this position, e.g. `0/3000148`.
    #[serde(default)]
    pub lsn: Option<String>,
    /// Up to this restore point.
    #[serde(default)]
    pub restore_point: Option<String>,
}

impl TryFrom<PointInTimeBody> for PointInTime {
    type Error = toygres_core::Error;

    fn try_from(body: PointInTimeBody) -> Result<Self, Self::Error> {
        let time = body
            .time
            .map(|t| {
                chrono::DateTime::parse_from_rfc3339(&t).map(|t| t.with_timezone(&chrono::Utc)).map_err(|e| {
                    toygres_core::Error::InvalidRequest {
                        field: "point_in_time.time",
                        reason: format!("{t:?} is not an RFC 3339 time ({e}), e.g. 2026-12-05T10:00:00Z"),
                    }
                })
            })
            .transpose()?;
        let lsn = body
            .lsn
            .map(|l| {
                l.parse::<Lsn>().map_err(|e| toygres_core::Error::InvalidRequest {
                    field: "point_in_time.lsn",
                    reason: e.to_string(),
                })
            })
            .transpose()?;
        Ok(PointInTime { instance_id: body.instance_id.into(), time, lsn, restore_point: body.restore_point })
    }
}

impl TryFrom<CreateInstanceBody> for CreateInstanceRequest {
    type Error = toygres_core::Error;

    fn try_from(body: CreateInstanceBody) -> Result<Self, Self::Error> {
        // Starts from the constructor and sets the fields, as the request is `non_exhaustive`.
        let mut request = CreateInstanceRequest::restore(body.name, toygres_core::ImageId::new());
        request.source_image_id = body.source_image_id.map(Into::into);
        request.password = body.password;
        request.runtime_image_id = body.runtime_image_id;
        request.image_override = body.image_override;
        request.dns_label = body.dns_label;
        request.databases = body.databases;
        request.labels = body.labels;
        request.point_in_time = body.point_in_time.map(PointInTime::try_from).transpose()?;
        Ok(request)
    }
}

/// `POST /api/images`: take an image of a running instance, or (`from_image`) export a clone
/// image of it as a physical image.
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
    /// `logical` (the default), `physical` or `clone`; any other value is refused (400, `field`
    /// `format`). With `from_image` the default is `physical`, the only format an export has.
    #[schema(default = "logical", value_type = ImageFormat)]
    #[serde(default, deserialize_with = "present")]
    pub format: Option<ImageFormat>,
    /// Labels to find the image by (`GET /api/images?labels=k=v`): at most 64, keys of 1-63
    /// characters, values of at most 256.
    #[serde(default)]
    #[schema(schema_with = super::fields::labels)]
    pub labels: Labels,
    /// Export this ready clone image of `instance_id` as a physical image in the blob store, so
    /// that it outlives the machine keeping the clone (the instance need not be running).
    /// Refused, with nothing created: an unknown image (404), one not ready (409), not a clone
    /// image, of another instance, or with another `format` (422, `field` `from_image`).
    #[serde(default)]
    pub from_image: Option<Uuid>,
}

impl From<CreateImageBody> for CreateImageRequest {
    fn from(body: CreateImageBody) -> Self {
        let mut request = match body.from_image {
            Some(clone) => CreateImageRequest::export(body.name, body.instance_id.into(), clone.into()),
            None => CreateImageRequest::new(body.name, body.instance_id.into()),
        };
        request.description = body.description;
        if let Some(format) = body.format {
            request.format = format.into();
        }
        request.labels = body.labels;
        request
    }
}

/// A field that may be left out but is never `null` (`None`: left out).
fn present<'de, D: serde::Deserializer<'de>, T: Deserialize<'de>>(deserializer: D) -> Result<Option<T>, D::Error> {
    T::deserialize(deserializer).map(Some)
}

/// `POST /api/schedules`: take images of an instance on a cron schedule, with retention.
#[derive(Debug, Clone, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct CreateScheduleBody {
    /// Schedule name: a DNS-1123 label of at most 49 characters (its images are named
    /// `<name>-<yyyymmdd>t<hhmm>` after their slot).
    #[schema(example = "nightly", pattern = r"^[a-z0-9]([-a-z0-9]*[a-z0-9])?$", min_length = 1, max_length = 49)]
    pub name: String,
    /// The instance to image (it must exist; it must be running when a slot comes).
    pub instance_id: Uuid,
    /// When: 5 cron fields `minute hour day-of-month month day-of-week`, in UTC (no daylight
    /// saving time), e.g. `0 3 * * *`; an invalid one is refused (422 `invalid_cron`, `field` `cron`).
    #[schema(example = "0 3 * * *", max_length = 256)]
    pub cron: String,
    /// The format of its images: `logical` (the default) or `physical`.
    #[schema(default = "logical")]
    #[serde(default)]
    pub format: ImageFormat,
    /// Keep the newest N ready images of the schedule (default 7).
    #[schema(minimum = 1, maximum = 10000, default = 7)]
    #[serde(default, deserialize_with = "super::fields::whole_number")]
    pub keep_last: Option<u32>,
    /// Also keep every image of the schedule younger than this many seconds.
    #[schema(minimum = 0, maximum = 3162240000_u64)]
    #[serde(default, deserialize_with = "super::fields::whole_number")]
    pub keep_younger_than_seconds: Option<u64>,
}

impl From<CreateScheduleBody> for CreateScheduleRequest {
    fn from(body: CreateScheduleBody) -> Self {
        let mut request =
            CreateScheduleRequest::new(body.name, body.instance_id.into(), body.cron).with_format(body.format.into());
        if let Some(keep_last) = body.keep_last {
            request = request.with_keep_last(keep_last);
        }
        if let Some(seconds) = body.keep_younger_than_seconds {
            request = request.with_keep_younger_than(std::time::Duration::from_secs(seconds));
        }
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
    /// A copy-on-write clone kept next to the instances (reflink or volume snapshot): restores in
    /// about a second whatever the size; same major and same executor only. 422
    /// `format_unsupported` where the executor cannot keep clones (a filesystem without reflink).
    Clone,
}

impl From<ImageFormat> for toygres_core::ImageFormat {
    fn from(format: ImageFormat) -> Self {
        match format {
            ImageFormat::Logical => toygres_core::ImageFormat::Logical,
            ImageFormat::Physical => toygres_core::ImageFormat::Physical,
            ImageFormat::Clone => toygres_core::ImageFormat::Clone,
        }
    }
}

impl From<toygres_core::ImageFormat> for ImageFormat {
    fn from(format: toygres_core::ImageFormat) -> Self {
        match format {
            toygres_core::ImageFormat::Logical => ImageFormat::Logical,
            toygres_core::ImageFormat::Physical => ImageFormat::Physical,
            toygres_core::ImageFormat::Clone => ImageFormat::Clone,
        }
    }
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
    async fn an_export_is_physical_unless_the_body_says_otherwise() {
        let (id, clone) = (Uuid::new_v4(), Uuid::new_v4());
        let body = parse(json!({ "name": "n", "instance_id": id, "from_image": clone })).await.unwrap();
        let request = CreateImageRequest::from(body);
        assert_eq!(request, CreateImageRequest::export("n", id.into(), clone.into()));
        let body = parse(json!({ "name": "n", "instance_id": id, "from_image": clone, "format": "logical" }));
        let request = CreateImageRequest::from(body.await.unwrap());
        assert_eq!(request.format, toygres_core::ImageFormat::Logical, "kept, for core to refuse");
        let body = parse(json!({ "name": "n", "instance_id": id, "from_image": null })).await.unwrap();
        assert_eq!(CreateImageRequest::from(body).from_image, None);
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
        for format in
            [toygres_core::ImageFormat::Logical, toygres_core::ImageFormat::Physical, toygres_core::ImageFormat::Clone]
        {
            let api = ImageFormat::from(format);
            assert_eq!(serde_json::to_value(api).unwrap(), json!(format.as_str()));
            assert_eq!(toygres_core::ImageFormat::from(api), format);
        }
    }
}
