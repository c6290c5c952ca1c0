//! The web page at `/`: plain HTML, JS and CSS compiled into the binary (no build step).

use axum::http::header;
use axum::response::{Html, IntoResponse};
use axum::routing::get;
use axum::Router;

/// The page shown (with status 401) to a browser without the token: a sign-in form that stores
/// the token in a `SameSite=Strict` cookie and reloads.
pub const SIGN_IN: &str = include_str!("sign_in.html");

const INDEX: &str = include_str!("index.html");
const APP_JS: &str = include_str!("app.js");
const STYLE_CSS: &str = include_str!("style.css");

/// Routes of the page and its assets (behind authentication like the API).
pub fn routes<S: Clone + Send + Sync + 'static>() -> Router<S> {
    Router::new()
        .route("/", get(|| async { Html(INDEX) }))
        .route("/app.js", get(|| async { ([(header::CONTENT_TYPE, "text/javascript; charset=utf-8")], APP_JS) }))
        .route("/style.css", get(|| async { ([(header::CONTENT_TYPE, "text/css; charset=utf-8")], STYLE_CSS) }))
        .route("/favicon.ico", get(|| async { axum::http::StatusCode::NO_CONTENT.into_response() }))
}
