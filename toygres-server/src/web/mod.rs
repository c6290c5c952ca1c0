//! The web page at `/`: plain HTML, JS and CSS compiled into the binary (no build step).

use axum::http::header;
use axum::response::{Html, IntoResponse};
use axum::routing::get;
use axum::Router;

/// The page shown (with status 401) to a browser without the token: a sign-in form that stores
/// the token in a `SameSite=Strict` cookie and reloads.
pub const SIGN_IN: &str = include_str!("sign_in.html");

const SIGN_IN_JS: &str = include_str!("sign_in.js");
const SIGN_IN_CSS: &str = include_str!("sign_in.css");
const INDEX: &str = include_str!("index.html");
const APP_JS: &str = include_str!("app.js");
const PITR_JS: &str = include_str!("pitr.js");
const STYLE_CSS: &str = include_str!("style.css");

/// Paths served without the token: the sign-in page's own script and style.
pub const PUBLIC_ASSETS: &[&str] = &["/sign-in.js", "/sign-in.css"];

/// What every answer carries so that a browser runs only the page's own files: scripts, styles
/// and requests from this origin only, no framing, no MIME sniffing, no referrer.
pub const SECURITY_HEADERS: &[(&str, &str)] = &[
    (
        "content-security-policy",
        "default-src 'none'; script-src 'self'; style-src 'self'; connect-src 'self'; img-src 'self'; \
         form-action 'self'; frame-ancestors 'none'; base-uri 'none'",
    ),
    ("x-frame-options", "DENY"),
    ("x-content-type-options", "nosniff"),
    ("referrer-policy", "no-referrer"),
];

/// Adds [`SECURITY_HEADERS`] to a response (every route's, the 401 sign-in page's included).
pub async fn with_security_headers(mut response: axum::response::Response) -> axum::response::Response {
    let headers = response.headers_mut();
    for (name, value) in SECURITY_HEADERS {
        headers.insert(*name, header::HeaderValue::from_static(value));
    }
    response
}

/// Routes of the page and its assets (behind authentication like the API, but for
/// [`PUBLIC_ASSETS`]).
pub fn routes<S: Clone + Send + Sync + 'static>() -> Router<S> {
    Router::new()
        .route(
            "/sign-in.js",
            get(|| async { ([(header::CONTENT_TYPE, "text/javascript; charset=utf-8")], SIGN_IN_JS) }),
        )
        .route("/sign-in.css", get(|| async { ([(header::CONTENT_TYPE, "text/css; charset=utf-8")], SIGN_IN_CSS) }))
        .route("/", get(|| async { Html(INDEX) }))
        .route("/app.js", get(|| async { ([(header::CONTENT_TYPE, "text/javascript; charset=utf-8")], APP_JS) }))
        .route("/pitr.js", get(|| async { ([(header::CONTENT_TYPE, "text/javascript; charset=utf-8")], PITR_JS) }))
        .route("/style.css", get(|| async { ([(header::CONTENT_TYPE, "text/css; charset=utf-8")], STYLE_CSS) }))
        .route("/favicon.ico", get(|| async { axum::http::StatusCode::NO_CONTENT.into_response() }))
}
