//! `/api/schedules`: images of an instance on a cron schedule (UTC), with retention. Create,
//! list, get, delete. The slots themselves are taken by the server's sweeper.

use super::error::{ApiError, Body, ErrorBody};
use super::operation_of;
use super::requests::CreateScheduleBody;
use super::responses::{Schedule, SchedulePage};
use super::Shared;
use axum::extract::{Path, State};
use axum::http::{header, HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::Json;
use toygres_core::ScheduleId;

/// Creates a schedule: an image of `instance_id` at every slot of `cron` (5 fields, UTC), the
/// newest `keep_last` kept (and, with `keep_younger_than_seconds`, every younger one too).
#[utoipa::path(post, operation_id = "create_schedule", path = "/api/schedules", tag = "schedules", request_body = CreateScheduleBody,
    params(("Idempotency-Key" = Option<String>, Header, description = "Any string, bound to this body: a retry with the same key and body returns the same schedule; the key with another body is 422, and after the schedule's deletion 409")),
    responses(
        (status = 201, description = "Created", body = Schedule,
            headers(("Location" = String, description = "URL of the schedule"))),
        (status = 400, description = "Invalid body or field (named in `field`); nothing was created", body = ErrorBody),
        (status = 401, description = "Missing or wrong token", body = ErrorBody),
        (status = 404, description = "Unknown instance", body = ErrorBody),
        (status = 409, description = "A schedule of that name exists, or the Idempotency-Key's schedule was deleted since; nothing was created", body = ErrorBody),
        (status = 422, description = "`invalid_cron`: the cron expression does not parse or never fires (`field` `cron`, the message says what is wrong); `idempotency_key_reused`: the Idempotency-Key was first used with another body. Nothing was created", body = ErrorBody),
    ))]
pub async fn create(
    State(state): State<Shared>,
    headers: HeaderMap,
    Body(body): Body<CreateScheduleBody>,
) -> Result<Response, ApiError> {
    let operation = operation_of(&headers);
    let schedule = state.engine.toygres().create_schedule(operation, body.into()).await?;
    let location = format!("/api/schedules/{}", schedule.id);
    Ok((StatusCode::CREATED, [(header::LOCATION, location)], Json(Schedule::new(schedule))).into_response())
}

/// Every schedule, oldest first, with its next run.
#[utoipa::path(get, operation_id = "list_schedules", path = "/api/schedules", tag = "schedules",
    responses((status = 200, body = SchedulePage), (status = 401, body = ErrorBody)))]
pub async fn list(State(state): State<Shared>) -> Result<Json<SchedulePage>, ApiError> {
    let schedules = state.engine.toygres().list_schedules().await?;
    Ok(Json(SchedulePage { items: schedules.into_iter().map(Schedule::new).collect() }))
}

/// One schedule: its cron expression, retention, last slot taken and next run.
#[utoipa::path(get, operation_id = "get_schedule", path = "/api/schedules/{id}", tag = "schedules",
    params(("id" = String, Path, description = "Schedule id")),
    responses((status = 200, body = Schedule), (status = 401, body = ErrorBody), (status = 404, body = ErrorBody)))]
pub async fn get(State(state): State<Shared>, Path(id): Path<String>) -> Result<Json<Schedule>, ApiError> {
    Ok(Json(Schedule::new(state.engine.toygres().get_schedule(parse(&id)?).await?)))
}

/// Deletes a schedule: no more slots are taken. The images it made are kept.
#[utoipa::path(delete, operation_id = "delete_schedule", path = "/api/schedules/{id}", tag = "schedules",
    params(("id" = String, Path, description = "Schedule id")),
    responses((status = 204, description = "Deleted; its images are kept"), (status = 401, body = ErrorBody),
        (status = 404, body = ErrorBody)))]
pub async fn delete(State(state): State<Shared>, Path(id): Path<String>) -> Result<StatusCode, ApiError> {
    state.engine.toygres().delete_schedule(parse(&id)?).await?;
    Ok(StatusCode::NO_CONTENT)
}

fn parse(id: &str) -> Result<ScheduleId, ApiError> {
    id.parse().map_err(|_| {
        let message = format!("schedule {id:?} not found: schedule ids are UUIDs; list schedules to see which exist");
        ApiError::new(StatusCode::NOT_FOUND, "schedule_not_found", message)
    })
}
