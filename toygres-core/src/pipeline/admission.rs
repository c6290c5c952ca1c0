//! Admission: every refusal that must happen before anything is created, in one place per
//! pipeline. [`Backup::admit`], [`Restore::admit`] and [`Provision::admit`] only read; `begin`
//! admits and then creates the record. The library's `run`, the durable client and the REST
//! server all start a pipeline through `begin`, so each rule is enforced once, the same way.
//!
//! | refusal | error | over REST |
//! |---|---|---|
//! | invalid name, label, description, password | [`Error::InvalidRequest`] | 400 |
//! | fresh instance's password that is guessable: too few character classes, a common password, one repeated character or run ([`PASSWORD_RULE`](crate::request::PASSWORD_RULE)) | [`Error::InvalidRequest`] on `password` | 422 |
//! | `source_image_id` with `runtime_image_id` / `image_override` | [`Error::ConflictingRequest`] | 400 |
//! | unknown instance or image | [`Error::InstanceNotFound`], [`Error::ImageNotFound`] | 404 |
//! | source instance not running | [`Error::InstanceNotRunning`] | 409 |
//! | source the executor cannot image in that format | [`Error::InvalidRequest`] on `format` | 400 |
//! | format the executor cannot keep (clone images without reflink) | [`Error::UnsupportedFormat`] | 422 |
//! | image not ready | [`Error::ImageNotReady`] | 409 |
//! | no usable image key (new image), or an image's key that does not unwrap | [`Error::KeyUnavailable`] | 409 |
//! | image corrupted, incomplete or not authentic | [`Error::ChecksumMismatch`], [`Error::ImageIncomplete`], [`Error::ImageNotAuthentic`] | 409 |
//! | image the executor cannot restore | [`Error::UnsupportedImage`] | 409 |
//! | database the image lacks | [`Error::InvalidRequest`] on `databases` | 400 |
//! | `point_in_time` with `source_image_id` or `databases`, or two targets | [`Error::ConflictingRequest`] | 400 |
//! | point-in-time restore of an unprotected instance | [`Error::NotProtected`] | 409 |
//! | point-in-time target before the first base image or after the archive's head | [`Error::OutsideRecoveryWindow`] | 422 |
//! | export ([`CreateImageRequest::export`]) not physical | [`Error::ConflictingRequest`] on `from_image` | 422 |
//! | export of an unknown or unready image | [`Error::ImageNotFound`], [`Error::ImageNotReady`] | 404, 409 |
//! | export of an image that is not a clone image | [`Error::InvalidRequest`] on `from_image` | 422 |
//! | export of a clone image of another instance | [`Error::ConflictingRequest`] on `from_image` | 422 |
//! | export of a clone image not readable here (corrupted, kept on another machine) | as for a restore | 409 |

use super::{Backup, Provision, Restore};
use crate::error::{Error, Result};
use crate::ids::{ImageId, OperationId};
use crate::image::{ImageFormat, ImageRecord};
use crate::instance::InstanceRecord;
use crate::labels::validate_labels;
use crate::request::{
    password_weakness, validate_dns1123_label, CreateImageRequest, CreateInstanceRequest, MAX_PASSWORD,
};
use crate::secret::Password;
use crate::state::{ImageState, InstanceState};

/// What [`Restore::admit`] found: the ready, verified image and its source password, which the
/// new instance takes.
#[derive(Debug, Clone)]
pub struct RestoreAdmission {
    /// The image (`ready`, verified against its checksum, restorable by the executor).
    pub image: ImageRecord,
    /// Its source instance's password.
    pub password: Password,
}

impl Backup {
    /// Refuses, before anything is recorded, a request that cannot make an image: an invalid
    /// request, an unknown source, a source that is not running ([`Error::InstanceNotRunning`]),
    /// or one the executor cannot image in the requested format
    /// ([`crate::ClusterExecutor::check_source`]). An export is admitted by
    /// [`Backup::admit_export`] instead: it reads the clone, not the instance.
    pub async fn admit(&self, request: &CreateImageRequest) -> Result<()> {
        request.validate()?;
        if let Some(clone) = request.from_image {
            return self.admit_export(request, clone).await.map(|_| ());
        }
        let source = self.t.catalog.get_instance(request.instance_id).await?;
        if source.state != InstanceState::Running {
            return Err(Error::InstanceNotRunning {
                id: source.id,
                name: source.name,
                state: source.state.to_string(),
            });
        }
        let password = self.t.catalog.instance_password(source.id).await?;
        self.t.executor.check_source(&source.spec(), &password, request.format).await
    }

    /// Refuses an export of `clone` that cannot succeed and returns the clone image: it must be
    /// recorded ([`Error::ImageNotFound`]), `ready` ([`Error::ImageNotReady`]), a clone image
    /// ([`Error::InvalidRequest`] on `from_image`) of the request's instance
    /// ([`Error::ConflictingRequest`] on `from_image`), and readable as a restore reads it
    /// ([`Restore::verify_image`]: its manifest verified, and the executor's
    /// [`crate::ClusterExecutor::check_restorable`], e.g. its data kept on this machine), by an
    /// executor that can export ([`crate::ClusterExecutor::check_export`]). The
    /// instance need not be running, nor still recorded: the export reads the clone.
    pub async fn admit_export(&self, request: &CreateImageRequest, clone: ImageId) -> Result<ImageRecord> {
        let image = self.t.catalog.get_image(clone).await?;
        if image.state != ImageState::Ready {
            return Err(Error::ImageNotReady { id: clone, state: image.state.to_string() });
        }
        if image.format != ImageFormat::Clone {
            return Err(Error::InvalidRequest {
                field: "from_image",
                reason: format!(
                    "image {clone} is a {} image, already in the blob store; only a clone image is exported",
                    image.format
                ),
            });
        }
        if image.source_instance_id != request.instance_id {
            return Err(Error::ConflictingRequest {
                field: "from_image",
                conflicts_with: "instance_id",
                hint: "the clone image was taken of another instance; set instance_id to its source_instance_id",
            });
        }
        self.t.restore().verify_image(&image).await?;
        self.t.executor.check_export(clone).await?;
        Ok(image)
    }

    /// [`Backup::admit`], then [`Backup::reserve_image`]: the image exists (`creating`) only
    /// when every rule passed. Idempotent on `operation`.
    pub async fn begin(&self, operation: OperationId, request: &CreateImageRequest) -> Result<ImageRecord> {
        self.admit(request).await?;
        self.reserve_image(operation, request).await
    }
}

impl Restore {
    /// Refuses, before anything is created, a restore that cannot succeed: an invalid or
    /// conflicting request, an unknown or unready image, an image that fails verification
    /// ([`crate::VerifyMode`]) or that the executor cannot restore, and databases the image
    /// lacks. Returns the image and its source password.
    pub async fn admit(&self, request: &CreateInstanceRequest) -> Result<RestoreAdmission> {
        let image_id = request.validate_restore()?;
        let image = self.fetch_image(image_id).await?;
        let password = self.source_password(image_id).await?;
        self.verify_image(&image).await?;
        self.check_databases(request, &image).await?;
        Ok(RestoreAdmission { image, password })
    }

    /// [`Restore::admit`], then [`Restore::create_record`]: the instance exists
    /// (`provisioning`, the image's password and type) only when every rule passed.
    /// Idempotent on `operation`.
    pub async fn begin(&self, operation: OperationId, request: &CreateInstanceRequest) -> Result<InstanceRecord> {
        let admitted = self.admit(request).await?;
        self.create_record(operation, request, &admitted.image, &admitted.password).await
    }
}

impl Provision {
    /// Refuses, before anything is created, a fresh-instance request that cannot succeed: a
    /// `source_image_id` (that is a restore), an invalid name, DNS label or labels, and a
    /// missing, empty, over-long (> [`MAX_PASSWORD`] characters) or multi-line password
    /// (`initdb` reads it as one line), or one too weak for
    /// [`PASSWORD_RULE`](crate::request::PASSWORD_RULE) ([`password_weakness`]). Returns the password.
    pub fn admit(request: &CreateInstanceRequest) -> Result<Password> {
        if request.point_in_time.is_some() {
            return Err(Error::InvalidRequest {
                field: "point_in_time",
                reason: "a fresh instance replays no WAL; use the restore pipeline".into(),
            });
        }
        if request.source_image_id.is_some() {
            return Err(Error::InvalidRequest {
                field: "source_image_id",
                reason: "a fresh instance has no source image; use the restore pipeline".into(),
            });
        }
        validate_dns1123_label("name", &request.name)?;
        if let Some(label) = &request.dns_label {
            validate_dns1123_label("dns_label", label)?;
        }
        validate_labels(&request.labels)?;
        let invalid = |reason: String| Error::InvalidRequest { field: "password", reason };
        let password = match &request.password {
            Some(p) if !p.is_empty() => p,
            _ => return Err(invalid("a fresh instance needs the superuser password it is created with".into())),
        };
        let secret = password.expose();
        if secret.chars().count() > MAX_PASSWORD {
            return Err(invalid(format!("longer than {MAX_PASSWORD} characters")));
        }
        if secret.chars().any(char::is_control) {
            return Err(invalid("contains control characters (newlines, tabs, NUL); use printable ones".into()));
        }
        if let Some(reason) = password_weakness(secret) {
            return Err(invalid(reason));
        }
        Ok(password.clone())
    }

    /// [`Provision::admit`], then [`Provision::create_record`]. Idempotent on `operation`.
    pub async fn begin(&self, operation: OperationId, request: &CreateInstanceRequest) -> Result<InstanceRecord> {
        self.create_record(operation, request).await
    }
}

impl super::Toygres {
    /// Admits `request` and creates its instance record: a point-in-time restore with
    /// `point_in_time` ([`Restore::begin_point_in_time`]), a restore with `source_image_id`
    /// ([`Restore::begin`]), otherwise a fresh instance ([`Provision::begin`]). Nothing exists
    /// when this fails. A durable engine calls this, then runs the rest of the pipeline.
    pub async fn begin_instance(
        &self,
        operation: OperationId,
        request: &CreateInstanceRequest,
    ) -> Result<InstanceRecord> {
        match (&request.point_in_time, request.source_image_id) {
            (Some(_), _) => self.restore().begin_point_in_time(operation, request).await,
            (None, Some(_)) => self.restore().begin(operation, request).await,
            (None, None) => self.provision().begin(operation, request).await,
        }
    }
}
