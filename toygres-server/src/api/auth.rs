//! Bearer-token authentication. Every route but `/healthz` needs the token, either as
//! `Authorization: Bearer <token>` (programs, the CLI) or as the `toygres_token` cookie that the
//! sign-in form of the web page sets (`SameSite=Strict`, so other sites cannot use it).
//! The token itself is never logged; only its sha256 is kept in memory.

use crate::api::error::ApiError;
use axum::extract::{Request, State};
use axum::http::{header, HeaderMap, StatusCode};
use axum::middleware::Next;
use axum::response::{Html, IntoResponse, Response};
use sha2::{Digest, Sha256};
use std::sync::Arc;

/// Name of the cookie the web page's sign-in form sets.
pub const COOKIE: &str = "toygres_token";

/// The expected token, as its digest.
#[derive(Clone)]
pub struct Auth {
    digest: Option<[u8; 32]>,
}

impl std::fmt::Debug for Auth {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Auth").field("required", &self.digest.is_some()).finish()
    }
}

impl Auth {
    /// Requests must carry `token`.
    pub fn token(token: &str) -> Self {
        Self { digest: Some(digest(token)) }
    }

    /// No authentication at all (`--insecure-no-auth`).
    pub fn disabled() -> Self {
        Self { digest: None }
    }

    /// Whether `headers` carry the token (always true when authentication is disabled).
    pub fn allows(&self, headers: &HeaderMap) -> bool {
        let Some(expected) = &self.digest else { return true };
        presented(headers).any(|token| constant_time_eq(&digest(token), expected))
    }
}

fn digest(token: &str) -> [u8; 32] {
    Sha256::digest(token.as_bytes()).into()
}

fn constant_time_eq(a: &[u8; 32], b: &[u8; 32]) -> bool {
    a.iter().zip(b).fold(0u8, |acc, (x, y)| acc | (x ^ y)) == 0
}

/// Every token the request presents: the bearer header and the cookie.
fn presented(headers: &HeaderMap) -> impl Iterator<Item = &str> {
    let bearer = headers
        .get_all(header::AUTHORIZATION)
        .into_iter()
        .filter_map(|v| v.to_str().ok())
        .filter_map(|v| v.strip_prefix("Bearer ").or_else(|| v.strip_prefix("bearer ")))
        .map(str::trim);
    let cookies = headers
        .get_all(header::COOKIE)
        .into_iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(';'))
        .filter_map(|pair| pair.trim().strip_prefix(COOKIE)?.strip_prefix('='));
    bearer.chain(cookies)
}

/// Middleware: 401 unless the request is for `/healthz`, the sign-in page's assets
/// ([`crate::web::PUBLIC_ASSETS`]), or carries the token. A browser asking for HTML gets the 401
/// as the sign-in page.
pub async fn require(State(auth): State<Arc<Auth>>, request: Request, next: Next) -> Response {
    let path = request.uri().path();
    if path == "/healthz" || crate::web::PUBLIC_ASSETS.contains(&path) || auth.allows(request.headers()) {
        return next.run(request).await;
    }
    let wants_html =
        request.headers().get(header::ACCEPT).and_then(|v| v.to_str().ok()).is_some_and(|v| v.contains("text/html"));
    if wants_html {
        return (StatusCode::UNAUTHORIZED, Html(crate::web::SIGN_IN)).into_response();
    }
    ApiError::unauthorized().into_response()
}

#[cfg(test)]
mod tests {
    use super::*;
    use axum::http::HeaderValue;

    #[test]
    fn accepts_the_bearer_header_or_the_cookie_only_with_the_right_token() {
        let auth = Auth::token("s3cret");
        let mut headers = HeaderMap::new();
        assert!(!auth.allows(&headers));
        headers.insert(header::AUTHORIZATION, HeaderValue::from_static("Bearer wrong"));
        assert!(!auth.allows(&headers));
        headers.insert(header::AUTHORIZATION, HeaderValue::from_static("Bearer s3cret"));
        assert!(auth.allows(&headers));
        let mut headers = HeaderMap::new();
        headers.insert(header::COOKIE, HeaderValue::from_static("a=b; toygres_token=s3cret"));
        assert!(auth.allows(&headers));
        assert!(Auth::disabled().allows(&HeaderMap::new()));
        assert!(!format!("{auth:?}").contains("s3cret"));
    }
}
