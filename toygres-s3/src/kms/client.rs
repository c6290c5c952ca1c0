//! One KMS JSON API call: signed, timed out, retried on transient failures, its answer parsed.

use super::sigv4::Signer;
use reqwest::header::{HeaderMap, HeaderValue};
use serde::de::DeserializeOwned;
use serde::{Deserialize, Serialize};
use std::fmt;
use std::time::Duration;
use toygres_core::Password;
use zeroize::Zeroizing;

/// Attempts per call: transient failures (no connection, 5xx, throttling) are retried twice.
const ATTEMPTS: u32 = 3;
/// The first pause between attempts; it doubles.
const BACKOFF: Duration = Duration::from_millis(200);
/// The longest error text kept from an answer.
const MAX_TEXT: usize = 300;
/// Secrets shorter than this are not scrubbed from texts (it would garble them; AWS secret keys
/// have 40 characters and never come back in answers anyway).
const MIN_SCRUBBED: usize = 8;

/// Static AWS credentials. `Debug` shows the access key id only.
#[derive(Clone)]
pub(crate) struct Credentials {
    pub access_key_id: String,
    pub secret_access_key: Password,
    pub session_token: Option<Password>,
}

impl fmt::Debug for Credentials {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Credentials")
            .field("access_key_id", &self.access_key_id)
            .field("secret_access_key", &self.secret_access_key)
            .field("session_token", &self.session_token)
            .finish()
    }
}

/// Why a call failed. Texts are scrubbed of the secret key and session token.
#[derive(Debug)]
pub(crate) enum Failure {
    /// No answer: connection refused, DNS, TLS, timeout.
    Transport { text: String, timed_out: bool },
    /// KMS answered with an error, e.g. `AccessDeniedException`.
    Service { status: u16, code: String, message: String },
    /// An answer that is not what the API promises.
    BadResponse(String),
}

impl Failure {
    /// Worth another attempt: the request may not have reached KMS, or KMS said "later".
    fn is_transient(&self) -> bool {
        match self {
            Failure::Transport { timed_out, .. } => !timed_out,
            Failure::Service { status, code, .. } => {
                *status >= 500 || matches!(code.as_str(), "ThrottlingException" | "LimitExceededException")
            }
            Failure::BadResponse(_) => false,
        }
    }
}

/// The `{"__type": …, "message": …}` body of a KMS error.
#[derive(Deserialize)]
struct ErrorBody {
    #[serde(rename = "__type")]
    kind: Option<String>,
    #[serde(alias = "Message")]
    message: Option<String>,
}

/// A KMS endpoint with the credentials that sign for it.
#[derive(Debug, Clone)]
pub(crate) struct Client {
    pub http: reqwest::Client,
    pub endpoint: reqwest::Url,
    pub region: String,
    pub credentials: Credentials,
}

/// The `Host` header reqwest sends for `url`: the port only when it is not the scheme's default.
pub(crate) fn host_header(url: &reqwest::Url) -> String {
    let host = url.host_str().unwrap_or_default();
    match url.port() {
        Some(port) => format!("{host}:{port}"),
        None => host.to_string(),
    }
}

/// The text of a reqwest error with its causes ("error sending request…: connection refused").
fn error_chain(e: &reqwest::Error) -> String {
    let mut text = e.to_string();
    let mut source = std::error::Error::source(e);
    while let Some(cause) = source {
        text.push_str(": ");
        text.push_str(&cause.to_string());
        source = cause.source();
    }
    text
}

fn truncate(mut text: String) -> String {
    if text.len() > MAX_TEXT {
        let mut end = MAX_TEXT;
        while !text.is_char_boundary(end) {
            end -= 1;
        }
        text.truncate(end);
        text.push('…');
    }
    text
}

impl Client {
    /// `text` without the secret key or session token, should anything ever echo them.
    fn scrub(&self, text: String) -> String {
        let mut text = text;
        let secrets = [Some(&self.credentials.secret_access_key), self.credentials.session_token.as_ref()];
        for secret in secrets.into_iter().flatten().filter(|s| s.expose().len() >= MIN_SCRUBBED) {
            text = text.replace(secret.expose(), "***");
        }
        truncate(text)
    }

    /// Calls `TrentService.<action>` with `request`, retrying transient failures.
    pub(crate) async fn call<Req: Serialize, Resp: DeserializeOwned>(
        &self,
        action: &str,
        request: &Req,
    ) -> Result<Resp, Failure> {
        let payload = Zeroizing::new(serde_json::to_vec(request).expect("KMS requests serialize"));
        let mut attempt = 1;
        loop {
            match self.once(action, &payload).await {
                Err(failure) if attempt < ATTEMPTS && failure.is_transient() => {
                    tracing::warn!(action, attempt, ?failure, "AWS KMS call failed; retrying");
                    tokio::time::sleep(BACKOFF * 2u32.pow(attempt - 1)).await;
                    attempt += 1;
                }
                result => return result,
            }
        }
    }

    async fn once<Resp: DeserializeOwned>(&self, action: &str, payload: &[u8]) -> Result<Resp, Failure> {
        let amz_date = chrono::Utc::now().format("%Y%m%dT%H%M%SZ").to_string();
        let host = host_header(&self.endpoint);
        let target = format!("TrentService.{action}");
        let mut signed = vec![
            ("content-type", "application/x-amz-json-1.1"),
            ("host", host.as_str()),
            ("x-amz-date", amz_date.as_str()),
            ("x-amz-target", target.as_str()),
        ];
        if let Some(token) = &self.credentials.session_token {
            signed.push(("x-amz-security-token", token.expose()));
        }
        let signer = Signer {
            access_key_id: &self.credentials.access_key_id,
            secret_access_key: self.credentials.secret_access_key.expose(),
            region: &self.region,
            service: "kms",
        };
        let authorization = signer.authorization("POST", self.endpoint.path(), "", &signed, payload, &amz_date);
        let mut headers = HeaderMap::new();
        for (name, value) in signed.iter().filter(|(name, _)| *name != "host") {
            let mut value = HeaderValue::from_str(value)
                .map_err(|_| Failure::BadResponse(format!("header {name} holds characters HTTP does not allow")))?;
            value.set_sensitive(*name == "x-amz-security-token");
            headers.insert(*name, value);
        }
        let mut authorization = HeaderValue::from_str(&authorization)
            .map_err(|_| Failure::BadResponse("the access key id holds characters HTTP does not allow".into()))?;
        authorization.set_sensitive(true);
        headers.insert(reqwest::header::AUTHORIZATION, authorization);

        let transport = |e: reqwest::Error| Failure::Transport { timed_out: e.is_timeout(), text: error_chain(&e) };
        let response = self
            .http
            .post(self.endpoint.clone())
            .headers(headers)
            .body(payload.to_vec())
            .send()
            .await
            .map_err(|e| self.scrub_failure(transport(e)))?;
        let status = response.status();
        // Into a Vec (no copy when the buffer is not shared) so that a plaintext key is wiped.
        let body = Zeroizing::new(Vec::from(response.bytes().await.map_err(|e| self.scrub_failure(transport(e)))?));
        if status.is_success() {
            return serde_json::from_slice(&body).map_err(|e| {
                Failure::BadResponse(format!("HTTP {status} with a body that is not a {action} answer ({e})"))
            });
        }
        let text = String::from_utf8_lossy(&body).into_owned();
        let failure = match serde_json::from_slice::<ErrorBody>(&body) {
            Ok(ErrorBody { kind: Some(kind), message }) => Failure::Service {
                status: status.as_u16(),
                // `com.amazonaws.kms#NotFoundException` and `NotFoundException` alike.
                code: kind.rsplit('#').next().unwrap_or_default().to_string(),
                message: message.unwrap_or_default(),
            },
            _ => Failure::Service { status: status.as_u16(), code: format!("HTTP {}", status.as_u16()), message: text },
        };
        Err(self.scrub_failure(failure))
    }

    fn scrub_failure(&self, failure: Failure) -> Failure {
        match failure {
            Failure::Transport { text, timed_out } => Failure::Transport { text: self.scrub(text), timed_out },
            Failure::Service { status, code, message } => {
                Failure::Service { status, code: self.scrub(code), message: self.scrub(message) }
            }
            Failure::BadResponse(text) => Failure::BadResponse(self.scrub(text)),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn host_header_has_the_port_only_when_needed() {
        let host = |url: &str| host_header(&reqwest::Url::parse(url).unwrap());
        assert_eq!(host("https://kms.eu-west-1.amazonaws.com/"), "kms.eu-west-1.amazonaws.com");
        assert_eq!(host("https://kms.eu-west-1.amazonaws.com:443/"), "kms.eu-west-1.amazonaws.com");
        assert_eq!(host("http://127.0.0.1:5000"), "127.0.0.1:5000");
        assert_eq!(host("http://[::1]:5000/"), "[::1]:5000");
    }

    #[test]
    fn transient_failures_are_retried_and_others_not() {
        let service = |status, code: &str| Failure::Service { status, code: code.into(), message: String::new() };
        assert!(service(500, "KMSInternalException").is_transient());
        assert!(service(400, "ThrottlingException").is_transient());
        assert!(!service(400, "AccessDeniedException").is_transient());
        assert!(!service(400, "InvalidCiphertextException").is_transient());
        assert!(Failure::Transport { text: "refused".into(), timed_out: false }.is_transient());
        assert!(!Failure::Transport { text: "timed out".into(), timed_out: true }.is_transient());
        assert!(!Failure::BadResponse("html".into()).is_transient());
    }

    #[test]
    fn texts_are_scrubbed_and_truncated() {
        let client = Client {
            http: reqwest::Client::new(),
            endpoint: reqwest::Url::parse("http://127.0.0.1:1/").unwrap(),
            region: "us-east-1".into(),
            credentials: Credentials {
                access_key_id: "AKID".into(),
                // Long enough to be scrubbed; "s" would not be.
                secret_access_key: Password::new("very-secret"),
                session_token: Some(Password::new("the-token")),
            },
        };
        let text = client.scrub("echo very-secret and the-token".into());
        assert_eq!(text, "echo *** and ***");
        assert!(client.scrub("x".repeat(1000)).chars().count() <= MAX_TEXT + 1);
        let short = Client {
            credentials: Credentials { secret_access_key: Password::new("s"), ..client.credentials.clone() },
            ..client.clone()
        };
        assert_eq!(short.scrub("answers stay readable".into()), "answers stay readable");
        assert!(!format!("{client:?}").contains("very-secret"));
        assert!(!format!("{client:?}").contains("the-token"));
    }
}
