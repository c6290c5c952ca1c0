//! `/api/images`: create, list, get, delete.

use super::error::{ApiError, Body, ErrorBody};
use super::listing::ImageQuery;
use super::requests::CreateImageBody;
use super::responses::{next_token, Created, Image, ImagePage};
use super::{accepted, operation_of, Shared};
use axum::extract::{Path, State};
use axum::http::{HeaderMap, StatusCode, Uri};
use axum::response::Response;
use axum::Json;
use toygres_core::{Error, ImageId, ImageRecord, ImageState, Subject};

/// Takes an image of a running instance, or exports a clone image as a physical image
/// (`from_image`). The backup goes on in the background.
#[utoipa::path(post, operation_id = "create_image", path = "/api/images", tag = "images", request_body = CreateImageBody,
    params(("Idempotency-Key" = Option<String>, Header, description = "Any string, bound to this body: a retry with the same key and body returns the same image as it is now; the key with another body is 422, and after the image's deletion 409")),
    responses(
        (status = 202, description = "Accepted; follow Location", body = Created,
            headers(("Location" = String, description = "URL of the new image"))),
        (status = 400, description = "Invalid body or field (named in `field`), or a source the executor cannot image in that format; nothing was created", body = ErrorBody),
        (status = 401, description = "Missing or wrong token", body = ErrorBody),
        (status = 404, description = "Unknown instance, or unknown `from_image`", body = ErrorBody),
        (status = 409, description = "The instance is not running, the `from_image` clone image is not ready or not readable here (`image_corrupted`: kept on another machine, or changed), or the Idempotency-Key's image was deleted since; nothing was created", body = ErrorBody),
        (status = 422, description = "`format_unsupported`: the executor cannot keep images in this format (a clone image where its filesystem has no reflink: the message names it); `invalid_export`: `from_image` is not a clone image of `instance_id`, or `format` is not physical; `idempotency_key_reused`: the Idempotency-Key was first used with another body. Nothing was created", body = ErrorBody),
        (status = 429, description = "Too many images and instances are being made; retry after Retry-After seconds", body = ErrorBody,
            headers(("Retry-After" = String, description = "Seconds to wait"))),
    ))]
pub async fn create(
    State(state): State<Shared>,
    headers: HeaderMap,
    Body(body): Body<CreateImageBody>,
) -> Result<Response, ApiError> {
    state.admit_long_job().await?;
    let operation = operation_of(&headers);
    let export = body.from_image.is_some();
    let record = match state.engine.create_image(operation, body.into()).await {
        Ok(record) => record,
        // An export's image is its `from_image` (a restore's is `source_image_id`).
        Err(e @ (Error::ImageNotFound(_) | Error::ImageNotReady { .. })) if export => {
            return Err(ApiError::from(e).with_field("from_image"))
        }
        Err(e) => return Err(e.into()),
    };
    Ok(accepted(format!("/api/images/{}", record.id), record.id.as_uuid(), record.state.to_string()))
}

/// One page of the images that are not deleted, oldest first, filtered by labels, state and
/// source instance.
#[utoipa::path(get, operation_id = "list_images", path = "/api/images", tag = "images", params(ImageQuery),
    responses((status = 200, body = ImagePage), (status = 400, description = "A malformed query parameter (named in `field`)", body = ErrorBody),
        (status = 401, body = ErrorBody)))]
pub async fn list(State(state): State<Shared>, uri: Uri) -> Result<Json<ImagePage>, ApiError> {
    let page = state.engine.toygres().list_images(&ImageQuery::from_uri(&uri)?).await?;
    let next_page_token = next_token(&page);
    let mut items = Vec::with_capacity(page.items.len());
    for record in page.items {
        items.push(view(&state, record).await);
    }
    Ok(Json(ImagePage { items, next_page_token }))
}

/// One image: state, size, checksum, format, databases, progress.
#[utoipa::path(get, operation_id = "get_image", path = "/api/images/{id}", tag = "images",
    params(("id" = String, Path, description = "Image id")),
    responses((status = 200, body = Image), (status = 401, body = ErrorBody), (status = 404, body = ErrorBody)))]
pub async fn get(State(state): State<Shared>, Path(id): Path<String>) -> Result<Json<Image>, ApiError> {
    let record = state.engine.toygres().get_image(parse(&id)?).await?;
    Ok(Json(view(&state, record).await))
}

/// Deletes an image and its blobs. Refused (409) while it is being created.
#[utoipa::path(delete, operation_id = "delete_image", path = "/api/images/{id}", tag = "images",
    params(("id" = String, Path, description = "Image id")),
    responses((status = 204, description = "Deleted"), (status = 401, body = ErrorBody),
        (status = 404, body = ErrorBody), (status = 409, description = "Still creating", body = ErrorBody)))]
pub async fn delete(State(state): State<Shared>, Path(id): Path<String>) -> Result<StatusCode, ApiError> {
    let id = parse(&id)?;
    state.engine.toygres().delete_image(id).await?;
    Ok(StatusCode::NO_CONTENT)
}

fn parse(id: &str) -> Result<ImageId, ApiError> {
    id.parse().map_err(|_| {
        let message = format!("image {:?} not found: image ids are UUIDs; list images to see which exist", id);
        ApiError::new(StatusCode::NOT_FOUND, "image_not_found", message)
    })
}

async fn view(state: &Shared, record: ImageRecord) -> Image {
    let progress = match record.state {
        ImageState::Creating => state.progress(Subject::Image(record.id)).await,
        _ => None,
    };
    Image::new(record, progress)
}
