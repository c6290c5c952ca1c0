//! Errors as the API answers them: `{"error": {"code", "message", "field"}}` with a status that
//! follows from the typed [`toygres_core::Error`].

use axum::extract::rejection::JsonRejection;
use axum::extract::{FromRequest, Json, Request};
use axum::http::{header, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use serde::de::DeserializeOwned;
use serde::{Deserialize, Serialize};
use toygres_core::Error;
use utoipa::ToSchema;

/// The body of every error response.
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
pub struct ErrorBody {
    /// What went wrong.
    pub error: ErrorDetail,
}

/// What went wrong, for programs (`code`, `field`) and for people (`message`).
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
pub struct ErrorDetail {
    /// Stable machine-readable code, e.g. `invalid_request`, `image_not_found`, `name_taken`.
    pub code: String,
    /// What happened and what to do.
    pub message: String,
    /// The request field at fault, when one is.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub field: Option<String>,
}

/// An error response.
#[derive(Debug, Clone)]
pub struct ApiError {
    /// HTTP status.
    pub status: StatusCode,
    /// Its body.
    pub detail: ErrorDetail,
}

impl ApiError {
    /// An error with `status`, `code` and `message`.
    pub fn new(status: StatusCode, code: &str, message: impl Into<String>) -> Self {
        Self { status, detail: ErrorDetail { code: code.into(), message: message.into(), field: None } }
    }

    /// The same, naming the field at fault.
    pub fn with_field(mut self, field: impl Into<String>) -> Self {
        self.detail.field = Some(field.into());
        self
    }

    /// 401: no or a wrong bearer token.
    pub fn unauthorized() -> Self {
        Self::new(
            StatusCode::UNAUTHORIZED,
            "unauthorized",
            "missing or wrong bearer token: send `Authorization: Bearer <TOYGRES_TOKEN>`",
        )
    }

    /// 404 for a path no route serves.
    pub fn no_route() -> Self {
        Self::new(StatusCode::NOT_FOUND, "not_found", "no such route; see /api/openapi.json")
    }

    /// 400 for a body that is not the expected JSON.
    fn body(rejection: JsonRejection) -> Self {
        let text = rejection.body_text();
        let field = field_of(&text);
        let message = match &field {
            Some(field) => format!("invalid request body: field `{field}`: {text}"),
            None => format!("invalid request body: {text}"),
        };
        let error = Self::new(StatusCode::BAD_REQUEST, "invalid_body", message);
        match field {
            Some(field) => error.with_field(field),
            None => error,
        }
    }
}

/// The field a serde error names: `missing field `x`` or a `x: ...` path prefix (serde_json
/// reports some wrong types, e.g. a number for an enum, as syntax errors, with the path too).
fn field_of(text: &str) -> Option<String> {
    if let Some(rest) = text.split("missing field `").nth(1) {
        return rest.split('`').next().map(str::to_string);
    }
    if let Some(rest) = text.split("unknown field `").nth(1) {
        return rest.split('`').next().map(str::to_string);
    }
    let detail = text.split("target type: ").nth(1).or_else(|| text.split("as JSON: ").nth(1))?;
    let (path, _) = detail.split_once(": ")?;
    let valid = !path.is_empty() && path.chars().all(|c| c.is_ascii_alphanumeric() || "_.[]".contains(c));
    valid.then(|| path.to_string())
}

impl From<Error> for ApiError {
    fn from(error: Error) -> Self {
        use StatusCode as S;
        let message = error.to_string();
        let (status, code, field): (S, &str, Option<&str>) = match &error {
            // A cron expression's grammar is not in the OpenAPI schema (a string): one that fits
            // the schema but does not parse, or never fires, is a semantic refusal.
            Error::InvalidRequest { field: "cron", .. } => (S::UNPROCESSABLE_ENTITY, "invalid_cron", Some("cron")),
            // Whether `from_image` names a clone image of the instance, and `format` suits it,
            // is not in the schema either: an export that cannot be is a semantic refusal.
            Error::InvalidRequest { field: "from_image", .. }
            | Error::ConflictingRequest { field: "from_image", .. } => {
                (S::UNPROCESSABLE_ENTITY, "invalid_export", Some("from_image"))
            }
            // Nor is the password's strength rule (character classes, common passwords,
            // repetition, runs; its length is in the schema): a password that fits the schema but
            // is too weak is a semantic refusal.
            Error::InvalidRequest { field: "password", reason }
                if reason.starts_with(toygres_core::request::WEAK_PASSWORD) =>
            {
                (S::UNPROCESSABLE_ENTITY, "weak_password", Some("password"))
            }
            // A point-in-time restore's target is checked against the instance's archive, and
            // its shape (one target at most, a WAL position's spelling) partly: semantic refusals.
            Error::InvalidRequest { field, .. } | Error::ConflictingRequest { field, .. }
                if field.starts_with("point_in_time") =>
            {
                (S::UNPROCESSABLE_ENTITY, "invalid_point_in_time", Some(field))
            }
            Error::InvalidRequest { field: "lsn", .. } => {
                (S::UNPROCESSABLE_ENTITY, "invalid_point_in_time", Some("point_in_time.lsn"))
            }
            Error::OutsideRecoveryWindow { .. } => {
                (S::UNPROCESSABLE_ENTITY, "outside_recovery_window", Some("point_in_time"))
            }
            Error::NotProtected { .. } => (S::CONFLICT, "instance_not_protected", None),
            Error::Backend { class: toygres_core::ErrorClass::Unsupported, .. } => {
                (S::UNPROCESSABLE_ENTITY, "unsupported", None)
            }
            Error::InvalidRequest { field, .. } => (S::BAD_REQUEST, "invalid_request", Some(field)),
            Error::ConflictingRequest { field, .. } => (S::BAD_REQUEST, "conflicting_request", Some(field)),
            Error::ImageNotFound(_) => (S::NOT_FOUND, "image_not_found", None),
            Error::InstanceNotFound(_) => (S::NOT_FOUND, "instance_not_found", None),
            Error::ScheduleNotFound(_) => (S::NOT_FOUND, "schedule_not_found", None),
            Error::ImageNotReady { .. } => (S::CONFLICT, "image_not_ready", Some("source_image_id")),
            Error::InstanceNotRunning { .. } => (S::CONFLICT, "instance_not_running", Some("instance_id")),
            Error::UnsupportedImage { .. } => (S::CONFLICT, "image_unsupported", Some("source_image_id")),
            Error::UnsupportedFormat { .. } => (S::UNPROCESSABLE_ENTITY, "format_unsupported", Some("format")),
            Error::NameTaken(_) | Error::ScheduleNameTaken(_) => (S::CONFLICT, "name_taken", Some("name")),
            Error::OperationReused { .. } => (S::UNPROCESSABLE_ENTITY, "idempotency_key_reused", None),
            Error::OperationSpent { .. } => (S::CONFLICT, "idempotency_key_spent", None),
            Error::InvalidTransition { .. } | Error::StateConflict { .. } => (S::CONFLICT, "state_conflict", None),
            Error::ChecksumMismatch { .. } | Error::ImageIncomplete { .. } | Error::ImageNotAuthentic { .. } => {
                (S::CONFLICT, "image_corrupted", None)
            }
            Error::KeyUnavailable { .. } => (S::CONFLICT, "image_key_unavailable", None),
            Error::Cancelled { .. } => (S::CONFLICT, "cancelled", None),
            Error::Timeout { .. } => (S::GATEWAY_TIMEOUT, "timeout", None),
            Error::Backend { .. } => (S::SERVICE_UNAVAILABLE, "backend_unavailable", None),
            _ => (S::INTERNAL_SERVER_ERROR, "internal", None),
        };
        if status.is_server_error() {
            tracing::warn!(%status, error = %message, "request failed");
        }
        let api = ApiError::new(status, code, message);
        match field {
            Some(field) => api.with_field(field),
            None => api,
        }
    }
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        let status = self.status;
        let mut response = (status, Json(ErrorBody { error: self.detail })).into_response();
        if status == StatusCode::UNAUTHORIZED {
            response.headers_mut().insert(header::WWW_AUTHENTICATE, HeaderValue::from_static("Bearer"));
        }
        if status == StatusCode::TOO_MANY_REQUESTS {
            response.headers_mut().insert(header::RETRY_AFTER, HeaderValue::from_static(RETRY_AFTER_SECONDS));
        }
        response
    }
}

/// The `Retry-After` of a 429: how long a client waits before it asks again.
pub const RETRY_AFTER_SECONDS: &str = "10";

/// A JSON body whose rejections are [`ApiError`]s (400 naming the field) instead of axum's text.
pub struct Body<T>(pub T);

impl<S: Send + Sync, T: DeserializeOwned> FromRequest<S> for Body<T> {
    type Rejection = ApiError;

    async fn from_request(req: Request, state: &S) -> Result<Self, Self::Rejection> {
        match Json::<T>::from_request(req, state).await {
            Ok(Json(value)) => Ok(Body(value)),
            Err(rejection) => Err(ApiError::body(rejection)),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_the_field_of_serde_errors() {
        assert_eq!(field_of("Failed to deserialize: missing field `name` at line 1").as_deref(), Some("name"));
        let typed = "Failed to deserialize the JSON body into the target type: instance_id: UUID parsing failed";
        assert_eq!(field_of(typed).as_deref(), Some("instance_id"));
        assert_eq!(field_of("Failed to parse the request body as JSON: EOF at line 1"), None);
        assert_eq!(field_of("Failed to parse the request body as JSON: key must be a string at line 1 column 2"), None);
        let syntax = "Failed to parse the request body as JSON: format: expected value at line 1 column 11";
        assert_eq!(field_of(syntax).as_deref(), Some("format"));
    }

    #[test]
    fn maps_core_errors_to_statuses() {
        let e: ApiError = Error::InvalidRequest { field: "name", reason: "bad".into() }.into();
        assert_eq!((e.status, e.detail.field.as_deref()), (StatusCode::BAD_REQUEST, Some("name")));
        let e: ApiError = Error::NameTaken("x".into()).into();
        assert_eq!((e.status, e.detail.code.as_str()), (StatusCode::CONFLICT, "name_taken"));
        let e: ApiError = Error::ScheduleNameTaken("x".into()).into();
        assert_eq!(
            (e.status, e.detail.code.as_str(), e.detail.field.as_deref()),
            (StatusCode::CONFLICT, "name_taken", Some("name"))
        );
        let e: ApiError = Error::ScheduleNotFound(toygres_core::ScheduleId::new()).into();
        assert_eq!((e.status, e.detail.code.as_str()), (StatusCode::NOT_FOUND, "schedule_not_found"));
        let e: ApiError = Error::ImageNotFound(toygres_core::ImageId::new()).into();
        assert_eq!(e.status, StatusCode::NOT_FOUND);
        let id = toygres_core::InstanceId::new();
        let e: ApiError = Error::InstanceNotRunning { id, name: "n".into(), state: "failed".into() }.into();
        let found = (e.status, e.detail.code.as_str(), e.detail.field.as_deref());
        assert_eq!(found, (StatusCode::CONFLICT, "instance_not_running", Some("instance_id")));
        let e: ApiError =
            Error::UnsupportedImage { image: toygres_core::ImageId::new(), reason: "newer".into() }.into();
        let found = (e.status, e.detail.code.as_str(), e.detail.field.as_deref());
        assert_eq!(found, (StatusCode::CONFLICT, "image_unsupported", Some("source_image_id")));
        // A schema-valid export that cannot be is 422, never 400.
        for e in [
            Error::InvalidRequest { field: "from_image", reason: "a physical image".into() },
            Error::ConflictingRequest { field: "from_image", conflicts_with: "format", hint: "physical" },
        ] {
            let e: ApiError = e.into();
            let found = (e.status, e.detail.code.as_str(), e.detail.field.as_deref());
            assert_eq!(found, (StatusCode::UNPROCESSABLE_ENTITY, "invalid_export", Some("from_image")));
        }
    }

    #[test]
    fn point_in_time_refusals_are_semantic() {
        let found = |e: Error| {
            let e = ApiError::from(e);
            (e.status, e.detail.code, e.detail.field)
        };
        let unprocessable = |code: &str, field: Option<&str>| {
            (StatusCode::UNPROCESSABLE_ENTITY, code.to_string(), field.map(str::to_string))
        };
        let hint = "one target";
        let e = Error::ConflictingRequest { field: "point_in_time.time", conflicts_with: "point_in_time.lsn", hint };
        assert_eq!(found(e), unprocessable("invalid_point_in_time", Some("point_in_time.time")));
        let e = Error::ConflictingRequest { field: "point_in_time", conflicts_with: "source_image_id", hint };
        assert_eq!(found(e), unprocessable("invalid_point_in_time", Some("point_in_time")));
        let e = Error::InvalidRequest { field: "point_in_time.restore_point", reason: "long".into() };
        assert_eq!(found(e), unprocessable("invalid_point_in_time", Some("point_in_time.restore_point")));
        let e = Error::InvalidRequest { field: "lsn", reason: "x".into() };
        assert_eq!(found(e), unprocessable("invalid_point_in_time", Some("point_in_time.lsn")));
        let instance = toygres_core::InstanceId::new();
        let e = Error::OutsideRecoveryWindow { instance, target: "t".into(), window: "w".into(), reason: "r".into() };
        assert_eq!(found(e), unprocessable("outside_recovery_window", Some("point_in_time")));
        assert_eq!(
            found(Error::NotProtected { instance }),
            (StatusCode::CONFLICT, "instance_not_protected".into(), None)
        );
        let e = Error::backend_msg("local", "no archiver").with_class(toygres_core::ErrorClass::Unsupported);
        assert_eq!(found(e), unprocessable("unsupported", None));
        assert_eq!(found(Error::backend_msg("local", "down")).0, StatusCode::SERVICE_UNAVAILABLE);
    }
}
