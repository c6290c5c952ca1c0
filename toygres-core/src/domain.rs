//! The small domain words the records share: an image's [`ImageType`] and [`ImageFormat`], the
//! executor's view of an instance ([`InstanceSpec`]), how to reach one ([`ConnectionInfo`]) and a
//! listing's position ([`PageToken`]).
//!
//! They sit below the records and the traits that use them ([`crate::image`], [`crate::instance`],
//! [`crate::executor`], [`crate::filter`], [`crate::catalog`]) and import none of those; each is
//! re-exported where it was first defined, so `toygres_core::image::ImageType` and
//! `toygres_core::ImageType` name the same type.

use crate::error::{Error, Result};
use crate::ids::InstanceId;
use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use std::fmt;
use uuid::Uuid;

/// The flavour of PostgreSQL an instance runs. A restored instance always takes the image
/// type of its **source image**, never the one a request asks for.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ImageType {
    /// Stock PostgreSQL.
    #[default]
    Stock,
    /// PostgreSQL with the pg_durable extension.
    PgDurable,
}

impl ImageType {
    /// The catalog's spelling.
    pub fn as_str(&self) -> &'static str {
        match self {
            ImageType::Stock => "stock",
            ImageType::PgDurable => "pg_durable",
        }
    }

    /// Parses the catalog's spelling. An unknown value falls back to [`ImageType::Stock`] with
    /// a warning, as the original control plane does, so an old or hand-edited record still restores.
    ///
    /// ```
    /// use toygres_core::ImageType;
    /// assert_eq!(ImageType::from_catalog("pg_durable"), ImageType::PgDurable);
    /// assert_eq!(ImageType::from_catalog("something-else"), ImageType::Stock);
    /// ```
    pub fn from_catalog(value: &str) -> Self {
        match value {
            "stock" => ImageType::Stock,
            "pg_durable" => ImageType::PgDurable,
            other => {
                tracing::warn!(image_type = other, "unknown image_type in the catalog; using stock");
                ImageType::Stock
            }
        }
    }
}

impl fmt::Display for ImageType {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// How an image holds its data.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ImageFormat {
    /// `pg_dump` of every database plus the globals: portable across executors and onto newer
    /// majors. The default.
    #[default]
    Logical,
    /// `pg_basebackup` of the data files: restores as fast as the disk, same major only.
    Physical,
    /// A copy-on-write clone kept by the executor next to its instances (a reflink copy of a
    /// recovered data directory on the embedded default, a CSI `VolumeSnapshot` on Kubernetes):
    /// a restore shares its blocks instead of copying them, so it takes about a second whatever
    /// the size. Same major and same executor only; its blob-store prefix holds the manifest and
    /// the roles. Export it as a physical image ([`crate::CreateImageRequest::export`]) to keep it
    /// elsewhere. Executors that cannot keep clones refuse it with a typed error
    /// ([`crate::ErrorClass::Unsupported`]).
    Clone,
}

impl ImageFormat {
    /// The catalog's spelling.
    pub fn as_str(&self) -> &'static str {
        match self {
            ImageFormat::Logical => "logical",
            ImageFormat::Physical => "physical",
            ImageFormat::Clone => "clone",
        }
    }
}

impl std::str::FromStr for ImageFormat {
    type Err = crate::Error;

    fn from_str(s: &str) -> crate::Result<Self> {
        match s {
            "logical" => Ok(ImageFormat::Logical),
            "physical" => Ok(ImageFormat::Physical),
            "clone" => Ok(ImageFormat::Clone),
            other => Err(crate::Error::InvalidRequest {
                field: "format",
                reason: format!("{other:?} is not an image format; use \"logical\", \"physical\" or \"clone\""),
            }),
        }
    }
}

impl fmt::Display for ImageFormat {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// What an executor needs to know about an instance. Resource names derive from `id` only
/// (see [`InstanceSpec::resource_name`]), so every step is idempotent across re-runs.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct InstanceSpec {
    /// The instance.
    pub id: InstanceId,
    /// Its name (DNS-1123 label), for labels and humans.
    pub name: String,
    /// Its image type (decides runtime configuration).
    pub image_type: ImageType,
    /// PostgreSQL version to run, e.g. `"15.18"` (the source image's, for a restore).
    pub pg_version: Option<String>,
    /// DNS label of its public endpoint.
    pub dns_label: Option<String>,
}

impl InstanceSpec {
    /// Deterministic name of the instance's resources: `pg-<id>` (39 characters, a DNS-1123 label).
    pub fn resource_name(&self) -> String {
        format!("pg-{}", self.id)
    }
}

/// How to reach a running instance. Connection strings never contain the password.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ConnectionInfo {
    /// Host name or address clients use.
    pub host: String,
    /// TCP port.
    pub port: u16,
    /// Superuser name.
    pub user: String,
    /// Database to connect to by default.
    pub database: String,
    /// Public DNS name, e.g. `<label>.<region>.cloudapp.azure.com`, when the executor has one.
    pub dns_name: Option<String>,
    /// libpq's `sslmode` clients must use, e.g. `require` for an instance that accepts TLS
    /// connections only (the Kubernetes executor's); `None`: the client's default (the local
    /// executor's instances). Absent from records stored before it existed, and not serialized
    /// when `None`, so those records and the wire format stay as they were.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub ssl_mode: Option<String>,
}

impl ConnectionInfo {
    /// `postgresql://user@host:port/database`, without the password; with
    /// `?sslmode=<mode>` when [`ConnectionInfo::ssl_mode`] is set.
    pub fn connection_string(&self) -> String {
        self.url(&self.host)
    }

    /// The same, on the public DNS name when there is one.
    pub fn external_connection_string(&self) -> Option<String> {
        self.dns_name.as_ref().map(|dns| self.url(dns))
    }

    fn url(&self, host: &str) -> String {
        let base = format!("postgresql://{}@{}:{}/{}", self.user, host, self.port, self.database);
        match &self.ssl_mode {
            Some(mode) => format!("{base}?sslmode={mode}"),
            None => base,
        }
    }
}

/// Where a listing continues: after the record created at `created_at` with id `id`.
/// Opaque to callers (its text form is `<microseconds>.<uuid>`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(try_from = "String", into = "String")]
pub struct PageToken {
    /// `created_at` of the last record returned, in microseconds since the epoch.
    pub created_micros: i64,
    /// Its id.
    pub id: Uuid,
}

impl PageToken {
    /// The token that continues after a record created at `created_at` with id `id`.
    pub fn after(created_at: DateTime<Utc>, id: Uuid) -> Self {
        Self { created_micros: created_at.timestamp_micros(), id }
    }

    /// `created_at` of the last record returned.
    pub fn created_at(&self) -> DateTime<Utc> {
        DateTime::from_timestamp_micros(self.created_micros).unwrap_or_default()
    }

    /// Whether a record created at `created_at` with id `id` comes after this token.
    pub fn precedes(&self, created_at: DateTime<Utc>, id: Uuid) -> bool {
        (created_at.timestamp_micros(), id) > (self.created_micros, self.id)
    }
}

impl std::fmt::Display for PageToken {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}.{}", self.created_micros, self.id.simple())
    }
}

impl std::str::FromStr for PageToken {
    type Err = Error;
    fn from_str(s: &str) -> Result<Self> {
        let invalid = || Error::InvalidRequest {
            field: "page_token",
            reason: format!("{s:?} is not a token a listing returned; pass `next` of the previous page unchanged"),
        };
        let (micros, id) = s.split_once('.').ok_or_else(invalid)?;
        Ok(Self { created_micros: micros.parse().map_err(|_| invalid())?, id: id.parse().map_err(|_| invalid())? })
    }
}

impl TryFrom<String> for PageToken {
    type Error = Error;
    fn try_from(s: String) -> Result<Self> {
        s.parse()
    }
}

impl From<PageToken> for String {
    fn from(t: PageToken) -> String {
        t.to_string()
    }
}

#[cfg(test)]
mod tests {
    use super::ConnectionInfo;

    fn info(ssl_mode: Option<&str>) -> ConnectionInfo {
        ConnectionInfo {
            host: "10.0.0.7".into(),
            port: 5432,
            user: "postgres".into(),
            database: "postgres".into(),
            dns_name: Some("db.westus2.cloudapp.azure.com".into()),
            ssl_mode: ssl_mode.map(String::from),
        }
    }

    #[test]
    fn connection_strings_carry_the_ssl_mode_when_set() {
        assert_eq!(info(None).connection_string(), "postgresql://postgres@10.0.0.7:5432/postgres");
        let tls = info(Some("require"));
        assert_eq!(tls.connection_string(), "postgresql://postgres@10.0.0.7:5432/postgres?sslmode=require");
        assert_eq!(
            tls.external_connection_string().as_deref(),
            Some("postgresql://postgres@db.westus2.cloudapp.azure.com:5432/postgres?sslmode=require")
        );
    }

    /// Records stored before `ssl_mode` existed read back as `None`, and `None` is not written.
    #[test]
    fn ssl_mode_is_optional_on_the_wire() {
        let old = r#"{"host":"h","port":5432,"user":"postgres","database":"postgres","dns_name":null}"#;
        let parsed: ConnectionInfo = serde_json::from_str(old).unwrap();
        assert_eq!(parsed.ssl_mode, None);
        assert_eq!(serde_json::to_string(&parsed).unwrap(), old);
        let tls = info(Some("require"));
        assert_eq!(serde_json::from_str::<ConnectionInfo>(&serde_json::to_string(&tls).unwrap()).unwrap(), tls);
    }
}
