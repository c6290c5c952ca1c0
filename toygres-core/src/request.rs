//! Requests and their validation, which runs before anything is created.

use crate::error::{Error, Result};
use crate::ids::{ImageId, InstanceId};
use crate::image::ImageFormat;
use crate::labels::{validate_labels, Labels};
use crate::secret::Password;
use crate::wal::PointInTime;
use serde::{Deserialize, Serialize};

/// Checks a Kubernetes DNS-1123 label: 1–63 characters of `a-z`, `0-9` and `-`, starting and
/// ending with an alphanumeric character.
///
/// ```
/// use toygres_core::request::validate_dns1123_label;
/// assert!(validate_dns1123_label("name", "pg-01").is_ok());
/// assert!(validate_dns1123_label("name", "Bad_Name").is_err());
/// ```
pub fn validate_dns1123_label(field: &'static str, value: &str) -> Result<()> {
    let invalid = |reason: &str| Error::InvalidRequest {
        field,
        reason: format!(
            "{value:?} is not a DNS-1123 label: {reason} (use 1-63 of a-z, 0-9, '-', starting and ending alphanumeric)"
        ),
    };
    if value.is_empty() {
        return Err(invalid("it is empty"));
    }
    if value.len() > 63 {
        return Err(invalid("it is longer than 63 characters"));
    }
    if let Some(c) = value.chars().find(|c| !(c.is_ascii_lowercase() || c.is_ascii_digit() || *c == '-')) {
        return Err(invalid(&format!("{c:?} is not allowed")));
    }
    if value.starts_with('-') || value.ends_with('-') {
        return Err(invalid("it starts or ends with '-'"));
    }
    Ok(())
}

/// Refuses, with [`Error::InvalidRequest`] on `databases`, a `wanted` list (`None`: every
/// database) that names a database `image` does not hold; the error names the unknown ones and
/// what the image has.
pub fn check_databases<'a>(
    image: ImageId,
    wanted: Option<&[String]>,
    available: impl Iterator<Item = &'a str> + Clone,
) -> Result<()> {
    let Some(wanted) = wanted else { return Ok(()) };
    let unknown: Vec<&str> =
        wanted.iter().map(String::as_str).filter(|w| !available.clone().any(|a| a == *w)).collect();
    if unknown.is_empty() {
        return Ok(());
    }
    Err(Error::InvalidRequest {
        field: "databases",
        reason: format!(
            "image {image} has no database {}; it holds {}",
            unknown.iter().map(|u| format!("{u:?}")).collect::<Vec<_>>().join(", "),
            available.map(|a| format!("{a:?}")).collect::<Vec<_>>().join(", ")
        ),
    })
}

/// Longest image description, in characters.
pub const MAX_DESCRIPTION: usize = 1024;

mod password;
mod point_in_time;
pub use password::{password_weakness, MAX_PASSWORD, MIN_PASSWORD, PASSPHRASE_LENGTH, PASSWORD_RULE, WEAK_PASSWORD};

/// What a request asks for, as a digest kept with the record it creates, so that an operation id
/// (an `Idempotency-Key`) is bound to one request: the sha256 (hex) of `kind` and the request's
/// JSON. Secrets are never part of it (a digest of a password is a copy that can be guessed
/// offline).
pub(crate) fn digest_of(kind: &str, request: &impl Serialize) -> String {
    use sha2::{Digest, Sha256};
    let json = serde_json::to_vec(request).expect("a request always serializes");
    hex::encode(Sha256::digest([format!("toygres-request/{kind}/v1:").as_bytes(), &json].concat()))
}

/// `POST /api/images`: take an image of an instance.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[non_exhaustive]
pub struct CreateImageRequest {
    /// Image name (DNS-1123 label).
    pub name: String,
    /// The instance to image.
    pub instance_id: InstanceId,
    /// Free text.
    #[serde(default)]
    pub description: Option<String>,
    /// Logical (`pg_dump`, the default: portable, restores onto newer majors) or physical
    /// (`pg_basebackup`: restores as fast as the disk, same major only).
    #[serde(default)]
    pub format: ImageFormat,
    /// Key/value labels (see [`validate_labels`]).
    #[serde(default)]
    pub labels: Labels,
    /// Export this clone image of `instance_id` as a physical image in the blob store, so that
    /// it outlives the machine that keeps the clone ([`CreateImageRequest::export`]): the data
    /// is read from the clone, not from the instance, which need not be running. Left out of the
    /// serialized request when `None`, so the digests of other requests do not change.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub from_image: Option<ImageId>,
}

impl CreateImageRequest {
    /// An image named `name` of `instance`, without description or labels.
    pub fn new(name: impl Into<String>, instance: InstanceId) -> Self {
        Self {
            name: name.into(),
            instance_id: instance,
            description: None,
            format: ImageFormat::Logical,
            labels: Labels::new(),
            from_image: None,
        }
    }

    /// A physical image named `name` exported from `clone_image`, a ready clone image of
    /// `instance` (see [`CreateImageRequest::from_image`]).
    pub fn export(name: impl Into<String>, instance: InstanceId, clone_image: ImageId) -> Self {
        Self { from_image: Some(clone_image), ..Self::new(name, instance).physical() }
    }

    /// A physical image (`pg_basebackup`) instead of a logical one.
    pub fn physical(mut self) -> Self {
        self.format = ImageFormat::Physical;
        self
    }

    /// A clone image ([`ImageFormat::Clone`]) instead of a logical one.
    pub fn clone_image(mut self) -> Self {
        self.format = ImageFormat::Clone;
        self
    }

    /// With `description`.
    pub fn with_description(mut self, description: impl Into<String>) -> Self {
        self.description = Some(description.into());
        self
    }

    /// With the label `key=value` (calls add up).
    pub fn with_label(mut self, key: impl Into<String>, value: impl Into<String>) -> Self {
        self.labels.insert(key.into(), value.into());
        self
    }

    /// The digest kept with the image it reserves ([`crate::NewImage::request_digest`]): equal
    /// for equal requests, different when any field differs.
    pub fn digest(&self) -> String {
        digest_of("image", self)
    }

    /// Validates every field; nothing is created when this fails. An export
    /// ([`CreateImageRequest::from_image`]) must be physical ([`Error::ConflictingRequest`]).
    pub fn validate(&self) -> Result<()> {
        validate_dns1123_label("name", &self.name)?;
        if self.from_image.is_some() && self.format != ImageFormat::Physical {
            return Err(Error::ConflictingRequest {
                field: "from_image",
                conflicts_with: "format",
                hint: "a clone image is exported as a physical image; set format to physical",
            });
        }
        if self.description.as_ref().is_some_and(|d| d.chars().count() > MAX_DESCRIPTION) {
            let reason = format!("longer than {MAX_DESCRIPTION} characters; shorten it");
            return Err(Error::InvalidRequest { field: "description", reason });
        }
        validate_labels(&self.labels)
    }
}

/// `POST /api/instances`: create an instance. With `source_image_id` it is restored from that
/// image, and the request's `password` is **ignored**: the instance uses the image's source password.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[non_exhaustive]
pub struct CreateInstanceRequest {
    /// Instance name (DNS-1123 label).
    pub name: String,
    /// Password for a fresh instance; ignored for a restore.
    #[serde(default)]
    pub password: Option<Password>,
    /// Restore from this image.
    #[serde(default)]
    pub source_image_id: Option<ImageId>,
    /// Runtime image for a fresh instance; not allowed with `source_image_id`.
    #[serde(default)]
    pub runtime_image_id: Option<String>,
    /// Container image override; not allowed with `source_image_id`.
    #[serde(default)]
    pub image_override: Option<String>,
    /// DNS label of the public endpoint (DNS-1123 label); defaults to none.
    #[serde(default)]
    pub dns_label: Option<String>,
    /// Key/value labels (see [`validate_labels`]).
    #[serde(default)]
    pub labels: Labels,
    /// Restore only these databases of the image (`None`: all). Every name must be in the image,
    /// or the restore is refused before anything is created.
    #[serde(default)]
    pub databases: Option<Vec<String>>,
    /// A point-in-time restore: replay this protected instance's WAL archive to a moment of its
    /// recovery window ([`crate::wal`]). The base image is chosen for it, so `source_image_id`
    /// and `databases` must be left out.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub point_in_time: Option<PointInTime>,
}

impl CreateInstanceRequest {
    /// A restore request: `name` from `image`.
    pub fn restore(name: impl Into<String>, image: ImageId) -> Self {
        Self {
            name: name.into(),
            password: None,
            source_image_id: Some(image),
            runtime_image_id: None,
            image_override: None,
            dns_label: None,
            labels: Labels::new(),
            databases: None,
            point_in_time: None,
        }
    }

    /// With the label `key=value` (calls add up).
    pub fn with_label(mut self, key: impl Into<String>, value: impl Into<String>) -> Self {
        self.labels.insert(key.into(), value.into());
        self
    }

    /// The digest kept with the instance it creates ([`crate::NewInstance::request_digest`]):
    /// every field but the password (a restore ignores it; a fresh instance's is compared with
    /// the sealed one instead, never digested).
    pub fn digest(&self) -> String {
        digest_of("instance", &Self { password: None, ..self.clone() })
    }

    /// Restores only `databases` of the image.
    pub fn with_databases<S: Into<String>>(mut self, databases: impl IntoIterator<Item = S>) -> Self {
        self.databases = Some(databases.into_iter().map(Into::into).collect());
        self
    }

    /// With the public endpoint's DNS label.
    pub fn with_dns_label(mut self, label: impl Into<String>) -> Self {
        self.dns_label = Some(label.into());
        self
    }

    /// Checks `databases` against the databases an image holds: a typed error naming the unknown
    /// ones (and what the image has) before anything is created.
    pub fn check_databases<'a>(&self, image: ImageId, available: impl Iterator<Item = &'a str> + Clone) -> Result<()> {
        check_databases(image, self.databases.as_deref(), available)
    }

    /// Validates a restore request; nothing is created when this fails. Returns the image id.
    pub fn validate_restore(&self) -> Result<ImageId> {
        let Some(image) = self.source_image_id else {
            return Err(Error::InvalidRequest {
                field: "source_image_id",
                reason: "a restore needs the id of a ready image".into(),
            });
        };
        if self.point_in_time.is_some() {
            return Err(Error::ConflictingRequest {
                field: "point_in_time",
                conflicts_with: "source_image_id",
                hint: "a point-in-time restore chooses its base image; leave source_image_id out",
            });
        }
        self.validate_restored_fields()?;
        if let Some(databases) = &self.databases {
            let mut seen = std::collections::BTreeSet::new();
            if databases.is_empty() {
                return Err(Error::InvalidRequest {
                    field: "databases",
                    reason: "an empty list restores nothing; leave it out to restore every database".into(),
                });
            }
            if let Some(dup) = databases.iter().find(|d| !seen.insert(d.as_str())) {
                return Err(Error::InvalidRequest { field: "databases", reason: format!("{dup:?} is listed twice") });
            }
        }
        if self.password.is_some() {
            tracing::debug!("request password ignored: a restore uses the source image's password");
        }
        Ok(image)
    }

    /// The rules every restore shares: no runtime of its own (it runs its image's), and a valid
    /// name, DNS label and labels.
    fn validate_restored_fields(&self) -> Result<()> {
        let hint = "a restored instance runs the source image's runtime; drop the field";
        if self.runtime_image_id.is_some() {
            return Err(Error::ConflictingRequest {
                field: "source_image_id",
                conflicts_with: "runtime_image_id",
                hint,
            });
        }
        if self.image_override.is_some() {
            return Err(Error::ConflictingRequest { field: "source_image_id", conflicts_with: "image_override", hint });
        }
        validate_dns1123_label("name", &self.name)?;
        if let Some(label) = &self.dns_label {
            validate_dns1123_label("dns_label", label)?;
        }
        validate_labels(&self.labels)?;
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn digests_differ_with_any_field_but_the_password() {
        let image = CreateImageRequest::new("nightly", InstanceId::new());
        assert_eq!(image.digest(), image.clone().digest());
        for other in [
            CreateImageRequest { name: "other".into(), ..image.clone() },
            CreateImageRequest { instance_id: InstanceId::new(), ..image.clone() },
            image.clone().physical(),
            image.clone().with_description("d"),
            image.clone().with_label("k", "v"),
            image.clone().clone_image(),
            CreateImageRequest::export("nightly", image.instance_id, ImageId::new()),
        ] {
            assert_ne!(other.digest(), image.digest(), "{other:?}");
        }
        // Requests without `from_image` serialize as before it existed: their digests stay.
        assert!(!serde_json::to_string(&image).unwrap().contains("from_image"));
        let restore = CreateInstanceRequest::restore("copy", ImageId::new());
        let with_password = CreateInstanceRequest { password: Some(Password::new("pw")), ..restore.clone() };
        assert_eq!(with_password.digest(), restore.digest(), "the password is never digested");
        for other in [
            CreateInstanceRequest::restore("copy", ImageId::new()),
            restore.clone().with_databases(["app"]),
            restore.clone().with_dns_label("copy"),
            restore.clone().with_label("k", "v"),
        ] {
            assert_ne!(other.digest(), restore.digest(), "{other:?}");
        }
    }

    #[test]
    fn an_export_is_physical() {
        let export = CreateImageRequest::export("out", InstanceId::new(), ImageId::new());
        assert_eq!(export.format, ImageFormat::Physical);
        export.validate().unwrap();
        for format in [ImageFormat::Logical, ImageFormat::Clone] {
            let refused = CreateImageRequest { format, ..export.clone() }.validate();
            assert!(
                matches!(refused, Err(Error::ConflictingRequest { field: "from_image", conflicts_with: "format", .. })),
                "{format}: {refused:?}"
            );
        }
    }

    #[test]
    fn dns1123_rules() {
        for ok in ["a", "pg-01", "0abc", &"a".repeat(63)] {
            assert!(validate_dns1123_label("name", ok).is_ok(), "{ok}");
        }
        for bad in ["", "-a", "a-", "A", "a_b", "a.b", "é", &"a".repeat(64)] {
            let err = validate_dns1123_label("name", bad).unwrap_err();
            assert!(matches!(err, Error::InvalidRequest { field: "name", .. }), "{bad}: {err}");
        }
    }

    #[test]
    fn restore_rejects_conflicting_fields() {
        let image = ImageId::new();
        let mut req = CreateInstanceRequest::restore("restored", image);
        assert_eq!(req.validate_restore().unwrap(), image);
        req.runtime_image_id = Some("pg16".into());
        assert!(matches!(
            req.validate_restore(),
            Err(Error::ConflictingRequest { conflicts_with: "runtime_image_id", .. })
        ));
        req.runtime_image_id = None;
        req.image_override = Some("my/pg:latest".into());
        assert!(matches!(
            req.validate_restore(),
            Err(Error::ConflictingRequest { conflicts_with: "image_override", .. })
        ));
    }

    #[test]
    fn restore_validates_names_and_needs_an_image() {
        let mut req = CreateInstanceRequest::restore("Bad Name", ImageId::new());
        assert!(matches!(req.validate_restore(), Err(Error::InvalidRequest { field: "name", .. })));
        req.name = "ok".into();
        req.dns_label = Some("-x".into());
        assert!(matches!(req.validate_restore(), Err(Error::InvalidRequest { field: "dns_label", .. })));
        req.source_image_id = None;
        assert!(matches!(req.validate_restore(), Err(Error::InvalidRequest { field: "source_image_id", .. })));
    }
}
