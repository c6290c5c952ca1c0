//! The one error type of toygres. Every variant says what happened and what to do; none
//! ever contains a password (backends redact secrets before building one).

use crate::ids::{ImageId, InstanceId, OperationId, ScheduleId};
use std::time::Duration;

/// Boxed source error from a backend.
pub type BoxError = Box<dyn std::error::Error + Send + Sync + 'static>;

/// Result alias used across toygres.
pub type Result<T, E = Error> = std::result::Result<T, E>;

/// Everything that can go wrong in toygres.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum Error {
    /// A request field is invalid. Nothing was created.
    #[error("invalid {field}: {reason}")]
    InvalidRequest {
        /// The offending field.
        field: &'static str,
        /// Why, and what is accepted.
        reason: String,
    },

    /// Two request fields cannot be used together. Nothing was created.
    #[error("`{field}` cannot be combined with `{conflicts_with}`: {hint}")]
    ConflictingRequest {
        /// The field that was set.
        field: &'static str,
        /// The field it conflicts with.
        conflicts_with: &'static str,
        /// What to do instead.
        hint: &'static str,
    },

    /// No image with that id exists (or it was deleted).
    #[error("image {0} not found; list images to see which exist")]
    ImageNotFound(ImageId),

    /// No instance with that id or name exists (or it was deleted).
    #[error("instance {0} not found; check the id or name")]
    InstanceNotFound(String),

    /// No schedule with that id exists (or it was deleted).
    #[error("schedule {0} not found; list schedules to see which exist")]
    ScheduleNotFound(ScheduleId),

    /// A schedule with that name already exists for another operation.
    #[error("a schedule named {0:?} already exists; choose another name or delete it first")]
    ScheduleNameTaken(String),

    /// The image cannot be restored in its current state.
    #[error("image {id} is {state}, not ready; wait for its backup to finish or pick a ready image")]
    ImageNotReady {
        /// The image.
        id: ImageId,
        /// Its state.
        state: String,
    },

    /// Only a running instance can be imaged. Nothing was created.
    #[error("instance {name} is {state}: only running instances can be imaged; wait for it or pick another")]
    InstanceNotRunning {
        /// The instance.
        id: InstanceId,
        /// Its name.
        name: String,
        /// Its state.
        state: String,
    },

    /// An instance with that name already exists for another operation.
    #[error("an instance named {0:?} already exists; choose another name or delete it first")]
    NameTaken(String),

    /// The operation id (over REST: the `Idempotency-Key`) was first used with another request.
    /// Nothing was created or changed.
    #[error(
        "operation {operation} was first used with another request; send a new operation id (Idempotency-Key) for a different request, or repeat the first request exactly"
    )]
    OperationReused {
        /// The operation id.
        operation: OperationId,
    },

    /// The record the operation created has been deleted since, so the operation cannot be
    /// answered with it again. Nothing was created.
    #[error(
        "operation {operation} created {entity} {id}, which has been deleted since; send a new operation id (Idempotency-Key) to create another"
    )]
    OperationSpent {
        /// The operation id.
        operation: OperationId,
        /// `"image"`, `"instance"` or `"schedule"`.
        entity: &'static str,
        /// The deleted record's id.
        id: String,
    },

    /// The lifecycle does not allow this state change.
    #[error("{entity} cannot go from {from} to {to}")]
    InvalidTransition {
        /// `"image"` or `"instance"`.
        entity: &'static str,
        /// Current state.
        from: String,
        /// Requested state.
        to: String,
    },

    /// A compare-and-set lost: the record was not in the expected state (another task moved it).
    #[error("{entity} {id} is {actual}, expected {expected}: another task changed it; re-read and retry")]
    StateConflict {
        /// `"image"`, `"instance"` or `"schedule"` (whose "state" is its last slot).
        entity: &'static str,
        /// Its id.
        id: String,
        /// The state the caller expected.
        expected: String,
        /// The state it is in.
        actual: String,
    },

    /// An object's content does not match its recorded checksum: the image is corrupted.
    #[error(
        "image {image} is corrupted: {object} has checksum {actual}, expected {expected}; restore from another image"
    )]
    ChecksumMismatch {
        /// The image.
        image: ImageId,
        /// The object whose bytes differ.
        object: String,
        /// Recorded checksum.
        expected: String,
        /// Computed checksum.
        actual: String,
    },

    /// An encrypted object failed authentication: its bytes were changed, cut off, or moved from
    /// another object or image. Only authenticated bytes are ever loaded; nothing was created (or
    /// what a restore had created is removed).
    #[error("image {image} is not authentic: {object} {detail}; restore from another image")]
    ImageNotAuthentic {
        /// The image.
        image: ImageId,
        /// The object refused.
        object: String,
        /// What failed.
        detail: String,
    },

    /// An image key cannot be used: none configured, the key-encryption key is missing or
    /// unreachable, or a wrapped key does not unwrap. Nothing was created.
    #[error("image key unavailable: {reason}")]
    KeyUnavailable {
        /// Why, and what to configure.
        reason: String,
    },

    /// An image's object is missing or unreadable in blob storage.
    #[error("image {image} is incomplete: {detail}; the image cannot be restored, delete it")]
    ImageIncomplete {
        /// The image.
        image: ImageId,
        /// What is missing.
        detail: String,
    },

    /// The image is sound but this executor cannot restore it (a newer PostgreSQL major than its
    /// binaries, a physical image of another major, a locale provider it lacks). Nothing was created.
    #[error("image {image} cannot be restored here: {reason}")]
    UnsupportedImage {
        /// The image.
        image: ImageId,
        /// Why, and what would restore it.
        reason: String,
    },

    /// This executor cannot take images in `format` where it keeps its data (a clone image on a
    /// filesystem without reflink, or an executor that keeps no clones). Nothing was recorded.
    #[error("this executor cannot take {format} images: {reason}")]
    UnsupportedFormat {
        /// The format asked for.
        format: crate::domain::ImageFormat,
        /// Why (naming the filesystem), and what to do instead.
        reason: String,
    },

    /// A point-in-time restore names an instance that is not protected
    /// ([`crate::Toygres::protect`]): it has no WAL archive. Nothing was created.
    #[error("instance {instance} is not protected: it has no WAL archive to restore from; protect it first (POST /api/instances/{instance}/protection), then restore to a moment after its first base image")]
    NotProtected {
        /// The instance.
        instance: InstanceId,
    },

    /// A point-in-time target outside the instance's recovery window. Nothing was created.
    #[error("{target} is outside the recovery window of instance {instance} ({window}): {reason}")]
    OutsideRecoveryWindow {
        /// The protected instance.
        instance: InstanceId,
        /// The target asked for.
        target: String,
        /// The window, `from <time> (LSN) to <time> (LSN)`.
        window: String,
        /// Which end it misses, and what to do.
        reason: String,
    },

    /// A job (backup or restore) failed. `logs` is the tail of its output.
    #[error("{job} failed: {reason}\n--- job log (tail) ---\n{logs}")]
    JobFailed {
        /// Job name.
        job: String,
        /// Why.
        reason: String,
        /// Tail of its logs (secrets already redacted).
        logs: String,
    },

    /// A step did not finish in time.
    #[error("{step} did not finish within {after:?}; check the executor's logs, then resume")]
    Timeout {
        /// The step.
        step: String,
        /// The limit.
        after: Duration,
    },

    /// The connection test failed on every attempt.
    #[error("instance {instance} refused connections after {attempts} attempts: {last_error}")]
    ConnectionTest {
        /// The instance.
        instance: InstanceId,
        /// How many attempts were made.
        attempts: u32,
        /// The last attempt's error.
        last_error: String,
    },

    /// The operation was cancelled by a caller; what it had created was removed.
    #[error("{what} was cancelled; what it had created was removed")]
    Cancelled {
        /// What was cancelled, e.g. `"backup of image <id>"`.
        what: String,
    },

    /// A sealed secret could not be opened: wrong key or tampered value.
    #[error("cannot decrypt a stored secret: wrong catalog key or tampered value; configure the key the catalog was written with")]
    WrongKey,

    /// The catalog's schema is newer than this build understands.
    #[error("catalog schema version {found} is newer than this toygres ({supported}); upgrade toygres")]
    SchemaTooNew {
        /// Version found in the database.
        found: i64,
        /// Newest version this build knows.
        supported: i64,
    },

    /// Stored data is malformed.
    #[error("corrupt catalog or image data: {0}")]
    Corrupt(String),

    /// A backend (catalog, blob store or executor) failed.
    #[error("{backend}: {message}")]
    Backend {
        /// Which backend, e.g. `"sqlite catalog"`, `"local executor"`.
        backend: &'static str,
        /// What kind of failure it was; decides [`Error::is_transient`]. The constructors
        /// [`Error::backend`] and [`Error::backend_msg`] use [`ErrorClass::Unavailable`].
        class: ErrorClass,
        /// What it was doing and what to do.
        message: String,
        /// The underlying error.
        #[source]
        source: Option<BoxError>,
    },
}

impl Error {
    /// A backend error with a source, of class [`ErrorClass::Unavailable`] (retryable).
    pub fn backend(backend: &'static str, message: impl Into<String>, source: impl Into<BoxError>) -> Self {
        Error::Backend { backend, class: ErrorClass::Unavailable, message: message.into(), source: Some(source.into()) }
    }

    /// A backend error without a source, of class [`ErrorClass::Unavailable`] (retryable).
    pub fn backend_msg(backend: &'static str, message: impl Into<String>) -> Self {
        Error::Backend { backend, class: ErrorClass::Unavailable, message: message.into(), source: None }
    }

    /// A backend error of an explicit `class`, with an optional source.
    pub fn backend_class(
        class: ErrorClass,
        backend: &'static str,
        message: impl Into<String>,
        source: Option<BoxError>,
    ) -> Self {
        Error::Backend { backend, class, message: message.into(), source }
    }

    /// This error with its [`ErrorClass`] replaced when it is an [`Error::Backend`] (other
    /// variants carry their class in their kind and are returned unchanged).
    pub fn with_class(self, new: ErrorClass) -> Self {
        match self {
            Error::Backend { backend, message, source, .. } => Error::Backend { backend, class: new, message, source },
            other => other,
        }
    }

    /// The instance id as text, for [`Error::InstanceNotFound`].
    pub fn instance_not_found(id: InstanceId) -> Self {
        Error::InstanceNotFound(id.to_string())
    }

    /// What kind of failure this is.
    pub fn class(&self) -> ErrorClass {
        match self {
            Error::InvalidRequest { .. } | Error::ConflictingRequest { .. } => ErrorClass::Invalid,
            Error::ImageNotFound(_) | Error::InstanceNotFound(_) | Error::ScheduleNotFound(_) => ErrorClass::NotFound,
            Error::ImageNotReady { .. }
            | Error::InstanceNotRunning { .. }
            | Error::NameTaken(_)
            | Error::ScheduleNameTaken(_)
            | Error::InvalidTransition { .. }
            | Error::StateConflict { .. }
            | Error::OperationReused { .. }
            | Error::OperationSpent { .. }
            | Error::NotProtected { .. }
            | Error::OutsideRecoveryWindow { .. } => ErrorClass::Conflict,
            Error::ChecksumMismatch { .. }
            | Error::ImageNotAuthentic { .. }
            | Error::ImageIncomplete { .. }
            | Error::Corrupt(_) => ErrorClass::Corrupt,
            Error::JobFailed { .. } => ErrorClass::Failed,
            Error::Timeout { .. } => ErrorClass::Timeout,
            Error::ConnectionTest { .. } => ErrorClass::Unavailable,
            Error::Cancelled { .. } => ErrorClass::Cancelled,
            Error::WrongKey | Error::KeyUnavailable { .. } => ErrorClass::Unauthorized,
            Error::SchemaTooNew { .. } | Error::UnsupportedImage { .. } | Error::UnsupportedFormat { .. } => {
                ErrorClass::Unsupported
            }
            Error::Backend { class, .. } => *class,
        }
    }

    /// Whether retrying the same call may succeed: derived from [`Error::class`]
    /// ([`ErrorClass::is_transient`]).
    pub fn is_transient(&self) -> bool {
        self.class().is_transient()
    }
}

/// The cause class of an [`Error`]: what a caller (or a retry loop) should do about it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "snake_case")]
#[non_exhaustive]
pub enum ErrorClass {
    /// The request is malformed; fix it. Never retryable.
    Invalid,
    /// What it names does not exist.
    NotFound,
    /// The record is not in a state that allows this, or another caller got there first.
    Conflict,
    /// Credentials or the catalog key are wrong or lack a permission.
    Unauthorized,
    /// A backend could not be reached or was busy. Retryable.
    Unavailable,
    /// A step ran out of time. Retryable (after checking the executor).
    Timeout,
    /// Stored data (image bytes, catalog rows) is damaged or malformed.
    Corrupt,
    /// A job ran and failed (its log tail is in the error).
    Failed,
    /// A caller cancelled the operation.
    Cancelled,
    /// This build does not support what it found (e.g. a newer catalog schema).
    Unsupported,
}

impl ErrorClass {
    /// Whether retrying the same call may succeed: only [`ErrorClass::Unavailable`] and
    /// [`ErrorClass::Timeout`].
    pub fn is_transient(self) -> bool {
        matches!(self, ErrorClass::Unavailable | ErrorClass::Timeout)
    }

    /// The class of an `object_store` error (any blob backend built on it).
    pub fn of_object_store(e: &object_store::Error) -> Self {
        use object_store::Error as E;
        match e {
            E::NotFound { .. } => ErrorClass::NotFound,
            E::AlreadyExists { .. } | E::Precondition { .. } | E::NotModified { .. } => ErrorClass::Conflict,
            E::PermissionDenied { .. } | E::Unauthenticated { .. } => ErrorClass::Unauthorized,
            E::InvalidPath { .. } | E::UnknownConfigurationKey { .. } => ErrorClass::Invalid,
            E::NotSupported { .. } | E::NotImplemented { .. } => ErrorClass::Unsupported,
            _ => ErrorClass::Unavailable,
        }
    }
}

impl std::fmt::Display for ErrorClass {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let text = match self {
            ErrorClass::Invalid => "invalid",
            ErrorClass::NotFound => "not_found",
            ErrorClass::Conflict => "conflict",
            ErrorClass::Unauthorized => "unauthorized",
            ErrorClass::Unavailable => "unavailable",
            ErrorClass::Timeout => "timeout",
            ErrorClass::Corrupt => "corrupt",
            ErrorClass::Failed => "failed",
            ErrorClass::Cancelled => "cancelled",
            ErrorClass::Unsupported => "unsupported",
        };
        f.write_str(text)
    }
}

/// Removes every occurrence of `secret` from `text` (for job logs and backend messages).
pub fn redact(text: &str, secret: &str) -> String {
    if secret.is_empty() {
        text.to_string()
    } else {
        text.replace(secret, "***")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn retryability_follows_the_class() {
        let not_found = Error::ImageNotFound(ImageId::new());
        assert_eq!((not_found.class(), not_found.is_transient()), (ErrorClass::NotFound, false));
        let busy = Error::backend_msg("sqlite catalog", "busy");
        assert_eq!((busy.class(), busy.is_transient()), (ErrorClass::Unavailable, true));
        let denied = Error::backend_msg("blob store", "403").with_class(ErrorClass::Unauthorized);
        assert_eq!((denied.class(), denied.is_transient()), (ErrorClass::Unauthorized, false));
        let timeout = Error::Timeout { step: "backup".into(), after: Duration::from_secs(1) };
        assert!(timeout.is_transient());
        assert_eq!(Error::Cancelled { what: "x".into() }.class(), ErrorClass::Cancelled);
        assert!(!Error::Corrupt("x".into()).is_transient());
        let missing = object_store::Error::NotFound { path: "p".into(), source: "gone".into() };
        assert_eq!(ErrorClass::of_object_store(&missing), ErrorClass::NotFound);
    }
}
