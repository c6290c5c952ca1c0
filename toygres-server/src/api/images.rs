//! `/api/images`: create, list, get, delete.

use super::error::{ApiError, Body, ErrorBody};
use super::types::{CreateImageBody, Created, Image, ManifestSummary};
use super::{accepted, operation_of, Shared};
use axum::extract::{Path, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::Response;
use axum::Json;
use toygres_core::manifest::{Manifest, MANIFEST_NAME};
use toygres_core::{Error, ImageFilter, ImageId, ImageLocation, ImageRecord, ImageState, InstanceState, Subject};

/// Takes an image of a running instance. The backup goes on in the background.
#[utoipa::path(post, operation_id = "create_image", path = "/api/images", tag = "images", request_body = CreateImageBody,
    params(("Idempotency-Key" = Option<String>, Header, description = "Any string, bound to this body: a retry with the same key and body returns the same image as it is now; the key with another body is 422, and after the image's deletion 409")),
    responses(
        (status = 202, description = "Accepted; follow Location", body = Created,
            headers(("Location" = String, description = "URL of the new image"))),
        (status = 400, description = "Invalid body or field (named in `field`); nothing was created", body = ErrorBody),
        (status = 401, description = "Missing or wrong token", body = ErrorBody),
        (status = 404, description = "Unknown instance", body = ErrorBody),
        (status = 409, description = "The instance is not running, or the Idempotency-Key's image was deleted since; nothing was created", body = ErrorBody),
        (status = 422, description = "The Idempotency-Key was first used with another body; nothing was created", body = ErrorBody),
        (status = 429, description = "Too many images and instances are being made; retry after Retry-After seconds", body = ErrorBody,
            headers(("Retry-After" = String, description = "Seconds to wait"))),
    ))]
pub async fn create(
    State(state): State<Shared>,
    headers: HeaderMap,
    Body(body): Body<CreateImageBody>,
) -> Result<Response, ApiError> {
    body.validate()?;
    let source = state.engine.toygres().catalog.get_instance(body.instance_id.into()).await?;
    if source.state != InstanceState::Running {
        let message = format!(
            "instance {} is {}: only running instances can be imaged; wait or pick another",
            source.name, source.state
        );
        return Err(ApiError::new(StatusCode::CONFLICT, "instance_not_running", message).with_field("instance_id"));
    }
    state.admit_long_job().await?;
    let operation = operation_of(&headers);
    let record = state.engine.create_image(operation, body.into()).await?;
    Ok(accepted(format!("/api/images/{}", record.id), record.id.as_uuid(), record.state.to_string()))
}

/// Every image that is not deleted, oldest first.
#[utoipa::path(get, operation_id = "list_images", path = "/api/images", tag = "images",
    responses((status = 200, body = Vec<Image>), (status = 401, body = ErrorBody)))]
pub async fn list(State(state): State<Shared>) -> Result<Json<Vec<Image>>, ApiError> {
    let records = state.engine.toygres().catalog.list_images(&ImageFilter::default()).await?;
    let mut out = Vec::with_capacity(records.len());
    for record in records {
        out.push(view(&state, record).await);
    }
    Ok(Json(out))
}

/// One image: state, size, checksum, format, databases, progress.
#[utoipa::path(get, operation_id = "get_image", path = "/api/images/{id}", tag = "images",
    params(("id" = String, Path, description = "Image id")),
    responses((status = 200, body = Image), (status = 401, body = ErrorBody), (status = 404, body = ErrorBody)))]
pub async fn get(State(state): State<Shared>, Path(id): Path<String>) -> Result<Json<Image>, ApiError> {
    let record = state.engine.toygres().catalog.get_image(parse(&id)?).await?;
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
    state.manifests.lock().unwrap().remove(&id);
    Ok(StatusCode::NO_CONTENT)
}

fn parse(id: &str) -> Result<ImageId, ApiError> {
    id.parse().map_err(|_| {
        let message = format!("image {:?} not found: image ids are UUIDs; list images to see which exist", id);
        ApiError::new(StatusCode::NOT_FOUND, "image_not_found", message)
    })
}

async fn view(state: &Shared, record: ImageRecord) -> Image {
    let (summary, progress) = match record.state {
        ImageState::Creating => (ManifestSummary::default(), state.progress(Subject::Image(record.id)).await),
        ImageState::Ready => (manifest(state, &record).await, None),
        _ => (ManifestSummary::default(), None),
    };
    Image::new(record, summary, progress)
}

/// The databases of a ready image, from its manifest (read once, then cached).
async fn manifest(state: &Shared, record: &ImageRecord) -> ManifestSummary {
    if let Some(summary) = state.manifests.lock().unwrap().get(&record.id) {
        return summary.clone();
    }
    let read = async {
        let bytes = state.engine.toygres().blobs.read(&ImageLocation::for_image(record.id), MANIFEST_NAME).await?;
        Manifest::from_bytes(record.id, &bytes)
    };
    match read.await {
        Ok(manifest) => {
            if manifest.format != record.format {
                tracing::warn!(image = %record.id, catalog = %record.format, manifest = %manifest.format,
                    "the image's manifest and catalog record disagree on its format");
            }
            let summary = ManifestSummary { databases: manifest.databases.iter().map(|d| d.name.clone()).collect() };
            state.manifests.lock().unwrap().insert(record.id, summary.clone());
            summary
        }
        Err(e) => {
            let e: Error = e;
            tracing::warn!(image = %record.id, error = %e, "cannot read the image's manifest");
            ManifestSummary::default()
        }
    }
}
