//! Continuous protection of an instance and its point-in-time restores:
//! `/api/instances/{id}/protection` (start, stop), `/api/instances/{id}/recovery-window` and
//! `/api/instances/{id}/restore-points`. The restore itself is `POST /api/instances` with
//! `point_in_time`.

use super::error::{ApiError, Body, ErrorBody};
use super::instances::lookup;
use super::recovery::{CreateRestorePointBody, Protection, ProtectionAnswer, RecoveryWindow, RestorePoint};
use super::responses::Created;
use super::{derived_operation, Shared};
use axum::extract::{Path, State};
use axum::http::{header, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::Json;
use toygres_core::{Error, InstanceRecord};

/// Starts continuous protection of a running instance: its WAL is archived, sealed, next to
/// its images. Idempotent. Until a physical image is taken after archiving starts nothing is
/// restorable; when none is usable or being taken, one is started (202, `base_image`, and
/// `Location` of the image), through the same path as `POST /api/images`.
#[utoipa::path(post, operation_id = "protect_instance", path = "/api/instances/{id}/protection", tag = "protection",
    params(("id" = String, Path, description = "Instance id (or name)")),
    responses(
        (status = 200, description = "Protected; a base image is usable or being taken already", body = ProtectionAnswer),
        (status = 202, description = "Protected, and a base image was started: follow Location", body = ProtectionAnswer,
            headers(("Location" = String, description = "URL of the base image"))),
        (status = 401, description = "Missing or wrong token", body = ErrorBody),
        (status = 404, description = "Unknown instance", body = ErrorBody),
        (status = 409, description = "`instance_not_running`: the instance is not running", body = ErrorBody),
        (status = 422, description = "`unsupported`: the executor cannot archive WAL; nothing changed", body = ErrorBody),
        (status = 429, description = "Protected, but too many images and instances are being made to start the base image; retry after Retry-After seconds", body = ErrorBody,
            headers(("Retry-After" = String, description = "Seconds to wait"))),
    ))]
pub async fn protect(State(state): State<Shared>, Path(id): Path<String>) -> Result<Response, ApiError> {
    let record = lookup(&state, &id).await?;
    let toygres = state.engine.toygres();
    let protected = toygres.protect(record.id).await?;
    let Some(request) = toygres.base_image_request(record.id).await? else {
        return Ok(Json(answer(&protected, None)).into_response());
    };
    state.admit_long_job().await?;
    // Deterministic: two requests that both found no base image in the same second start one.
    let since = protected.protection.as_ref().map(|p| p.since.timestamp_micros()).unwrap_or_default();
    let operation = derived_operation(
        "toygres-pitr-base",
        &[record.id.as_uuid().as_bytes(), &since.to_be_bytes(), request.name.as_bytes()],
    );
    let image = state.engine.create_image(operation, request).await?;
    let created = Created { id: image.id.as_uuid(), state: image.state.to_string() };
    let location = [(header::LOCATION, format!("/api/images/{}", image.id))];
    Ok((StatusCode::ACCEPTED, location, Json(answer(&protected, Some(created)))).into_response())
}

/// Stops archiving the instance's WAL. The archive and its window stay, restorable, until its
/// base images are deleted. Idempotent (an instance never protected answers `protection: null`).
#[utoipa::path(delete, operation_id = "unprotect_instance", path = "/api/instances/{id}/protection", tag = "protection",
    params(("id" = String, Path, description = "Instance id (or name)")),
    responses(
        (status = 200, description = "Archiving stopped", body = ProtectionAnswer),
        (status = 401, description = "Missing or wrong token", body = ErrorBody),
        (status = 404, description = "Unknown instance", body = ErrorBody),
    ))]
pub async fn unprotect(
    State(state): State<Shared>,
    Path(id): Path<String>,
) -> Result<Json<ProtectionAnswer>, ApiError> {
    let record = lookup(&state, &id).await?;
    let record = state.engine.toygres().unprotect(record.id).await?;
    Ok(Json(answer(&record, None)))
}

/// The moments a protected instance can be restored to: earliest and latest (time and LSN),
/// the RPO now, gaps, timeline switches and restore points.
#[utoipa::path(get, operation_id = "get_recovery_window", path = "/api/instances/{id}/recovery-window", tag = "protection",
    params(("id" = String, Path, description = "Instance id (or name)")),
    responses(
        (status = 200, body = RecoveryWindow),
        (status = 401, description = "Missing or wrong token", body = ErrorBody),
        (status = 404, description = "Unknown instance", body = ErrorBody),
        (status = 409, description = "`instance_not_protected`: it was never protected", body = ErrorBody),
    ))]
pub async fn recovery_window(
    State(state): State<Shared>,
    Path(id): Path<String>,
) -> Result<Json<RecoveryWindow>, ApiError> {
    let record = lookup(&state, &id).await?;
    let window = state.engine.toygres().recovery_window(record.id).await?;
    Ok(Json((&window).into()))
}

/// Creates a named restore point on a protected, running instance, so that a point-in-time
/// restore can stop there (`point_in_time.restore_point`).
#[utoipa::path(post, operation_id = "create_restore_point", path = "/api/instances/{id}/restore-points", tag = "protection",
    request_body = CreateRestorePointBody,
    params(("id" = String, Path, description = "Instance id (or name)")),
    responses(
        (status = 201, description = "Created", body = RestorePoint),
        (status = 400, description = "Invalid body (the field is named in `field`)", body = ErrorBody),
        (status = 401, description = "Missing or wrong token", body = ErrorBody),
        (status = 404, description = "Unknown instance", body = ErrorBody),
        (status = 409, description = "`instance_not_protected`, or `instance_not_running` (or its archiving stopped)", body = ErrorBody),
        (status = 422, description = "`invalid_restore_point`: a name PostgreSQL cannot take; `unsupported`: the executor cannot create one", body = ErrorBody),
    ))]
pub async fn create_restore_point(
    State(state): State<Shared>,
    Path(id): Path<String>,
    Body(body): Body<CreateRestorePointBody>,
) -> Result<(StatusCode, Json<RestorePoint>), ApiError> {
    let record = lookup(&state, &id).await?;
    match state.engine.toygres().create_restore_point(record.id, &body.name).await {
        Ok(point) => Ok((StatusCode::CREATED, Json((&point).into()))),
        // The name's rule (in bytes) is not all in the schema: a semantic refusal.
        Err(e @ Error::InvalidRequest { field: "name", .. }) => {
            let message = e.to_string();
            Err(ApiError::new(StatusCode::UNPROCESSABLE_ENTITY, "invalid_restore_point", message).with_field("name"))
        }
        Err(e) => Err(e.into()),
    }
}

fn answer(record: &InstanceRecord, base_image: Option<Created>) -> ProtectionAnswer {
    ProtectionAnswer {
        instance_id: record.id.as_uuid(),
        protection: record.protection.as_ref().map(Protection::from),
        base_image,
    }
}
