//! The REST API (instances, images, schedules): routes, shared state, authentication, errors and the OpenAPI document.

pub mod auth;
pub mod error;
mod fields;
mod images;
mod instances;
pub mod listing;
pub mod openapi;
pub mod progress;
mod protection;
pub mod recovery;
pub mod requests;
pub mod responses;
mod schedules;
mod schema;

use crate::engine::Engine;
use axum::http::{HeaderMap, StatusCode};
use axum::routing::{get, post};
use axum::{Json, Router};
use error::ApiError;
use progress::EtaTracker;
use responses::{Health, Progress};
use std::sync::Arc;
use toygres_core::{ImageFilter, OperationId, Subject};

/// What every handler shares.
pub struct AppState {
    /// Where long work runs; also holds the library handle.
    pub engine: Engine,
    /// ETA estimates of running operations.
    pub eta: EtaTracker,
    /// How many images and instances may be in the making at once; a creation beyond it is 429.
    pub max_running: usize,
}

/// Shared state of the handlers.
pub type Shared = Arc<AppState>;

impl AppState {
    /// State over `engine`, with at most `max_running` images and instances in the making.
    pub fn new(engine: Engine, max_running: usize) -> Shared {
        Arc::new(Self { engine, eta: EtaTracker::default(), max_running })
    }

    /// 429 when [`AppState::max_running`] images and instances are being made already: each is a
    /// long job (a dump, a load) that holds disk and CPU, and one client could otherwise start
    /// thousands. Checked before a creation; a creation admitted here is not counted twice.
    async fn admit_long_job(&self) -> Result<(), ApiError> {
        use toygres_core::{ImageState, InstanceFilter, InstanceState};
        let toygres = self.engine.toygres();
        let images =
            toygres.list_images(&ImageFilter::new().state(ImageState::Creating).limit(self.max_running)).await?;
        let filter = InstanceFilter::new().state(InstanceState::Provisioning).limit(self.max_running);
        let running = images.items.len() + toygres.list_instances(&filter).await?.items.len();
        if running < self.max_running {
            return Ok(());
        }
        Err(ApiError::new(
            StatusCode::TOO_MANY_REQUESTS,
            "too_many_operations",
            format!(
                "{running} images and instances are being made (at most {} at once); retry after {} s",
                self.max_running,
                error::RETRY_AFTER_SECONDS
            ),
        ))
    }

    /// The progress of the operation on `subject`, if one runs.
    async fn progress(&self, subject: Subject) -> Option<Progress> {
        match self.engine.status(subject).await {
            Ok(status) => self.eta.progress(&status),
            Err(e) => {
                tracing::warn!(?subject, error = %e, "cannot read the operation's status");
                None
            }
        }
    }
}

/// The whole application: API, web page and health check, behind authentication.
pub fn router(state: Shared, auth: auth::Auth) -> Router {
    Router::new()
        .route("/healthz", get(healthz))
        .route("/api/openapi.json", get(openapi::document))
        .route("/api/instances", get(instances::list).post(instances::create))
        .route("/api/instances/{id}", get(instances::get).delete(instances::delete))
        .route("/api/instances/{id}/protection", post(protection::protect).delete(protection::unprotect))
        .route("/api/instances/{id}/recovery-window", get(protection::recovery_window))
        .route("/api/instances/{id}/restore-points", post(protection::create_restore_point))
        .route("/api/images", get(images::list).post(images::create))
        .route("/api/images/{id}", get(images::get).delete(images::delete))
        .route("/api/schedules", get(schedules::list).post(schedules::create))
        .route("/api/schedules/{id}", get(schedules::get).delete(schedules::delete))
        .merge(crate::web::routes())
        .fallback(|| async { ApiError::no_route() })
        .method_not_allowed_fallback(|| async {
            ApiError::new(axum::http::StatusCode::METHOD_NOT_ALLOWED, "method_not_allowed", "method not allowed here")
        })
        .with_state(state)
        .layer(axum::middleware::from_fn_with_state(Arc::new(auth), auth::require))
        .layer(tower_http::timeout::TimeoutLayer::with_status_code(StatusCode::REQUEST_TIMEOUT, REQUEST_TIMEOUT))
        .layer(axum::middleware::map_response(crate::web::with_security_headers))
}

/// How long one request may take before it is answered 408 (long work runs as orchestrations;
/// every request only starts, reads or deletes, so a hung backend never holds a connection).
pub const REQUEST_TIMEOUT: std::time::Duration = std::time::Duration::from_secs(60);

/// Liveness: answers without authentication.
#[utoipa::path(get, path = "/healthz", tag = "health", security(()),
    responses((status = 200, description = "The server answers", body = Health)))]
async fn healthz() -> Json<Health> {
    Json(Health { status: "ok".into() })
}

/// The operation id of a creation: derived from the `Idempotency-Key` header when given (any
/// string; a retried request with the same key returns the same record), otherwise a new one.
fn operation_of(headers: &HeaderMap) -> OperationId {
    let Some(key) = headers.get("idempotency-key") else { return OperationId::new() };
    derived_operation("toygres-idempotency-key", &[key.as_bytes()])
}

/// A deterministic operation id: the first 16 bytes of sha256 over `domain`, `:` and `parts`.
fn derived_operation(domain: &str, parts: &[&[u8]]) -> OperationId {
    use sha2::{Digest, Sha256};
    let mut hasher = Sha256::new();
    hasher.update(domain.as_bytes());
    hasher.update(b":");
    for part in parts {
        hasher.update(part);
    }
    let digest = hasher.finalize();
    let mut bytes = [0u8; 16];
    bytes.copy_from_slice(&digest[..16]);
    OperationId(uuid::Builder::from_custom_bytes(bytes).into_uuid())
}

/// 202 with `Location` and `{"id", "state"}`.
fn accepted(location: String, id: uuid::Uuid, state: String) -> axum::response::Response {
    use axum::response::IntoResponse;
    let headers = [(axum::http::header::LOCATION, location)];
    (axum::http::StatusCode::ACCEPTED, headers, Json(responses::Created { id, state })).into_response()
}
