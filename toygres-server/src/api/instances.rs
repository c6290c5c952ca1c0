//! `/api/instances`: create (fresh or restored), list, get, delete.

use super::error::{ApiError, Body, ErrorBody};
use super::listing::InstanceQuery;
use super::requests::CreateInstanceBody;
use super::responses::{next_token, Created, Instance, InstancePage};
use super::{accepted, operation_of, Shared};
use axum::extract::{Path, State};
use axum::http::{HeaderMap, StatusCode, Uri};
use axum::response::Response;
use axum::Json;
use toygres_core::{Error, InstanceId, InstanceRecord, InstanceState, Subject};

/// Creates an instance: a fresh empty one, a restore of `source_image_id` (which then uses the
/// source image's password, never the request's), or a point-in-time restore of a protected
/// instance (`point_in_time`: a time, an LSN, a restore point, or the latest moment). The work
/// goes on in the background.
#[utoipa::path(post, operation_id = "create_instance", path = "/api/instances", tag = "instances", request_body = CreateInstanceBody,
    params(("Idempotency-Key" = Option<String>, Header, description = "Any string, bound to this body: a retry with the same key and body returns the same instance as it is now; the key with another body is 422, and after the instance's deletion 409")),
    responses(
        (status = 202, description = "Accepted; follow Location", body = Created,
            headers(("Location" = String, description = "URL of the new instance"))),
        (status = 400, description = "Invalid body or field (named in `field`), or a database the image lacks; nothing was created", body = ErrorBody),
        (status = 401, description = "Missing or wrong token", body = ErrorBody),
        (status = 404, description = "Unknown source image, or unknown `point_in_time.instance_id`", body = ErrorBody),
        (status = 409, description = "Image not ready, corrupted or not restorable here, name taken, `instance_not_protected` (the `point_in_time` instance has no WAL archive), or the Idempotency-Key's instance was deleted since; nothing was created", body = ErrorBody),
        (status = 422, description = "`weak_password`: a fresh instance's password that breaks the strength rule (the rule is in the password field's description); `invalid_point_in_time`: more than one target, a time or LSN that does not parse, or `point_in_time` with `source_image_id` or `databases`; `outside_recovery_window`: the target is outside the instance's recovery window (the message has the window); `idempotency_key_reused`: the Idempotency-Key was first used with another body. Nothing was created", body = ErrorBody),
        (status = 429, description = "Too many images and instances are being made; retry after Retry-After seconds", body = ErrorBody,
            headers(("Retry-After" = String, description = "Seconds to wait"))),
    ))]
pub async fn create(
    State(state): State<Shared>,
    headers: HeaderMap,
    Body(body): Body<CreateInstanceBody>,
) -> Result<Response, ApiError> {
    state.admit_long_job().await?;
    let operation = operation_of(&headers);
    let record = state.engine.create_instance(operation, body.try_into()?).await?;
    Ok(accepted(format!("/api/instances/{}", record.id), record.id.as_uuid(), record.state.to_string()))
}

/// One page of the instances that are not deleted, oldest first, filtered by labels, state and
/// source image.
#[utoipa::path(get, operation_id = "list_instances", path = "/api/instances", tag = "instances", params(InstanceQuery),
    responses((status = 200, body = InstancePage), (status = 400, description = "A malformed query parameter (named in `field`)", body = ErrorBody),
        (status = 401, body = ErrorBody)))]
pub async fn list(State(state): State<Shared>, uri: Uri) -> Result<Json<InstancePage>, ApiError> {
    let page = state.engine.toygres().list_instances(&InstanceQuery::from_uri(&uri)?).await?;
    let next_page_token = next_token(&page);
    let mut items = Vec::with_capacity(page.items.len());
    for record in page.items {
        items.push(view(&state, record).await);
    }
    Ok(Json(InstancePage { items, next_page_token }))
}

/// One instance, by id or name.
#[utoipa::path(get, operation_id = "get_instance", path = "/api/instances/{id}", tag = "instances",
    params(("id" = String, Path, description = "Instance id (or name)")),
    responses((status = 200, body = Instance), (status = 401, body = ErrorBody), (status = 404, body = ErrorBody)))]
pub async fn get(State(state): State<Shared>, Path(id): Path<String>) -> Result<Json<Instance>, ApiError> {
    let record = lookup(&state, &id).await?;
    Ok(Json(view(&state, record).await))
}

/// Deletes an instance and everything created for it. Refused (409) while it is provisioning.
#[utoipa::path(delete, operation_id = "delete_instance", path = "/api/instances/{id}", tag = "instances",
    params(("id" = String, Path, description = "Instance id (or name)")),
    responses((status = 204, description = "Deleted"), (status = 401, body = ErrorBody),
        (status = 404, body = ErrorBody), (status = 409, description = "Still provisioning", body = ErrorBody)))]
pub async fn delete(State(state): State<Shared>, Path(id): Path<String>) -> Result<StatusCode, ApiError> {
    let record = lookup(&state, &id).await?;
    state.engine.toygres().delete_instance(record.id).await?;
    Ok(StatusCode::NO_CONTENT)
}

pub(super) async fn lookup(state: &Shared, id: &str) -> Result<InstanceRecord, ApiError> {
    let toygres = state.engine.toygres();
    Ok(match id.parse::<InstanceId>() {
        Ok(id) => toygres.get_instance(id).await?,
        Err(_) if toygres_core::request::validate_dns1123_label("id", id).is_ok() => {
            toygres.get_instance_by_name(id).await?
        }
        Err(_) => return Err(Error::InstanceNotFound(id.chars().take(80).collect()).into()),
    })
}

async fn view(state: &Shared, record: InstanceRecord) -> Instance {
    let progress = match record.state {
        InstanceState::Provisioning => state.progress(Subject::Instance(record.id)).await,
        _ => None,
    };
    Instance::new(record, progress)
}
