//! [`AwsKms`]: a [`KeyProvider`] whose key-encryption key lives in AWS KMS.
//!
//! Each image's data key is sent to KMS `Encrypt` under the configured key, with the encryption
//! context `{"toygres-image": "<image id>"}`: KMS authenticates the context with the blob, so a
//! wrapped key only unwraps for its own image. `Decrypt` names the key recorded with the wrapped
//! key, so a blob made under another key is refused, and after a rotation (a provider configured
//! with a new key) images wrapped under the old key still unwrap as long as the credentials may
//! use it. The client speaks the KMS JSON API over HTTPS (reqwest, rustls), signed with AWS
//! Signature Version 4; every failure is [`Error::KeyUnavailable`] saying what to fix.
//!
//! [`AwsKms::from_env`] takes everything from the environment: `TOYGRES_KMS_KEY_ID` and the
//! standard `AWS_*` variables.
//!
//! The credentials need `kms:DescribeKey` and `kms:Encrypt` on the current key and
//! `kms:Decrypt` on every key images were wrapped under.
//!
//! ```no_run
//! # async fn demo() -> toygres_core::Result<()> {
//! use toygres_core::envelope::{DataKey, KeyProvider};
//! use toygres_core::ImageId;
//! use toygres_s3::kms::AwsKms;
//! let kms = AwsKms::builder("alias/toygres-images")
//!     .region("eu-west-1")
//!     .credentials("AKIA…", "secret")
//!     .build()?;
//! let (image, key) = (ImageId::new(), DataKey::generate());
//! let wrapped = kms.wrap(image, &key).await?;
//! assert_eq!(kms.unwrap(image, &wrapped).await?, key);
//! # Ok(()) }
//! ```

mod builder;
mod client;
mod sigv4;

pub use builder::{AwsKmsBuilder, DEFAULT_TIMEOUT};

use async_trait::async_trait;
use base64::engine::general_purpose::STANDARD as BASE64;
use base64::Engine;
use client::{Client, Failure};
use serde::de::DeserializeOwned;
use serde::{Deserialize, Serialize};
use std::fmt;
use std::sync::{Arc, Mutex};
use toygres_core::envelope::{DataKey, KeyProvider, WrappedKey};
use toygres_core::{Error, ImageId, Result};
use zeroize::{Zeroize, Zeroizing};

/// The provider name recorded in [`WrappedKey::provider`].
pub const PROVIDER: &str = "aws-kms";
/// The encryption context key whose value is the image id.
pub const CONTEXT_KEY: &str = "toygres-image";
/// The variable [`AwsKms::from_env`] reads the key id from.
pub const KEY_ID_ENV: &str = "TOYGRES_KMS_KEY_ID";

/// A [`KeyProvider`] over AWS KMS (see the [module docs](self)). Cheap to clone.
///
/// `Debug` shows the key, region, endpoint and access key id, never the secret key or token.
#[derive(Clone)]
pub struct AwsKms {
    inner: Arc<Inner>,
}

struct Inner {
    /// The key as configured: ARN, key id or alias.
    key_id: String,
    client: Client,
    custom_endpoint: bool,
    /// The configured key's ARN, once KMS told it.
    arn: Mutex<Option<String>>,
}

impl fmt::Debug for AwsKms {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let client = &self.inner.client;
        f.debug_struct("AwsKms")
            .field("key_id", &self.inner.key_id)
            .field("region", &client.region)
            .field("endpoint", &client.endpoint.as_str())
            .field("credentials", &client.credentials)
            .finish()
    }
}

#[derive(Serialize)]
struct Context {
    #[serde(rename = "toygres-image")]
    image: String,
}

fn context(image: ImageId) -> Context {
    Context { image: image.to_string() }
}

#[derive(Serialize)]
#[serde(rename_all = "PascalCase")]
struct KeyRequest<'a> {
    key_id: &'a str,
}

#[derive(Serialize)]
#[serde(rename_all = "PascalCase")]
struct EncryptRequest<'a> {
    key_id: &'a str,
    plaintext: &'a str,
    encryption_context: Context,
}

#[derive(Serialize)]
#[serde(rename_all = "PascalCase")]
struct DecryptRequest<'a> {
    key_id: &'a str,
    ciphertext_blob: String,
    encryption_context: Context,
}

#[derive(Deserialize)]
#[serde(rename_all = "PascalCase")]
struct DescribeKeyResponse {
    key_metadata: KeyMetadata,
}

#[derive(Deserialize)]
#[serde(rename_all = "PascalCase")]
struct KeyMetadata {
    arn: String,
    key_state: Option<String>,
    enabled: Option<bool>,
    key_spec: Option<String>,
}

#[derive(Deserialize)]
#[serde(rename_all = "PascalCase")]
struct EncryptResponse {
    ciphertext_blob: String,
    key_id: String,
}

#[derive(Deserialize)]
#[serde(rename_all = "PascalCase")]
struct DecryptResponse {
    plaintext: String,
    key_id: Option<String>,
}

impl Drop for DecryptResponse {
    fn drop(&mut self) {
        self.plaintext.zeroize();
    }
}

fn unavailable(reason: String) -> Error {
    Error::KeyUnavailable { reason }
}

/// What to do about a KMS error code when using `key` for `action`.
fn hint(action: &str, key: &str, region: &str, status: u16, code: &str) -> String {
    match code {
        "NotFoundException" => {
            format!("KMS key {key} does not exist in region {region}; check the key id or alias and the region")
        }
        "AccessDeniedException" if action == "Decrypt" => format!(
            "access was denied, or the wrapped key was made under another key than {key}: check that the \
             credentials may use kms:Decrypt on {key} and that the image's key record is intact"
        ),
        "AccessDeniedException" => {
            format!("the credentials may not use key {key}: allow kms:{action} on it in the key policy or IAM policy")
        }
        "IncorrectKeyException" => format!("the wrapped key was not made under key {key}; its key record is wrong"),
        "InvalidCiphertextException" => "the wrapped key does not decrypt: its bytes were changed, or it was \
                                         wrapped for another image (the encryption context names another image)"
            .into(),
        "DisabledException" => {
            format!("key {key} is disabled; enable it (aws kms enable-key) or configure another key")
        }
        "KMSInvalidStateException" => format!(
            "key {key} is not usable in its current state (e.g. pending deletion); cancel the deletion \
             (aws kms cancel-key-deletion, then enable-key) or configure another key"
        ),
        "UnrecognizedClientException"
        | "InvalidSignatureException"
        | "IncompleteSignatureException"
        | "MissingAuthenticationTokenException"
        | "InvalidClientTokenId"
        | "SignatureDoesNotMatch" => "AWS refused the credentials: check AWS_ACCESS_KEY_ID, AWS_SECRET_ACCESS_KEY \
                                      and AWS_SESSION_TOKEN, the region, and this machine's clock"
            .into(),
        "ExpiredTokenException" | "ExpiredToken" => "the session token has expired; refresh the credentials".into(),
        "ThrottlingException" | "LimitExceededException" => {
            "AWS KMS is throttling requests; retry later or raise the account's KMS request quota".into()
        }
        _ if status >= 500 => "AWS KMS failed; retry later".into(),
        _ => "AWS KMS refused the request".into(),
    }
}

impl AwsKms {
    /// A builder for a provider wrapping new data keys under `key_id`: a key ARN, a key id, an
    /// alias (`alias/toygres-images`) or an alias ARN.
    pub fn builder(key_id: impl Into<String>) -> AwsKmsBuilder {
        AwsKmsBuilder::new(key_id.into())
    }

    /// The provider configured by the environment: the key from [`KEY_ID_ENV`]
    /// (`TOYGRES_KMS_KEY_ID`), region, credentials and endpoint from the `AWS_*` variables
    /// ([`AwsKmsBuilder::with_env`]). Unset key or credentials: [`Error::InvalidRequest`].
    pub fn from_env() -> Result<Self> {
        Self::from_lookup(|name| std::env::var(name).ok())
    }

    pub(crate) fn from_lookup(lookup: impl Fn(&str) -> Option<String>) -> Result<Self> {
        let key_id = lookup(KEY_ID_ENV).unwrap_or_default();
        if key_id.trim().is_empty() {
            return Err(Error::InvalidRequest {
                field: "kms_key",
                reason: format!(
                    "{KEY_ID_ENV} is not set: name the KMS key new image keys are wrapped under (key ARN, \
                     key id or alias/<name>)"
                ),
            });
        }
        Self::builder(key_id).with_lookup(&lookup).build()
    }

    /// The key new data keys are wrapped under, as configured.
    pub fn key_id(&self) -> &str {
        &self.inner.key_id
    }

    /// The AWS region requests are signed for.
    pub fn region(&self) -> &str {
        &self.inner.client.region
    }

    /// The KMS endpoint URL.
    pub fn endpoint(&self) -> &str {
        self.inner.client.endpoint.as_str()
    }

    /// Calls `action`; a failure becomes [`Error::KeyUnavailable`] saying what failed while
    /// `doing` what with `key`, and what to fix.
    async fn call<Req: Serialize, Resp: DeserializeOwned>(
        &self,
        action: &str,
        request: &Req,
        doing: &str,
        key: &str,
    ) -> Result<Resp> {
        let client = &self.inner.client;
        client.call(action, request).await.map_err(|failure| {
            let endpoint = client.endpoint.as_str();
            unavailable(match failure {
                Failure::Transport { text, timed_out: true } => format!(
                    "{doing}: AWS KMS at {endpoint} did not answer in time ({text}); check the network path \
                     to it, or raise the timeout"
                ),
                Failure::Transport { text, timed_out: false } => format!(
                    "{doing}: cannot reach AWS KMS at {endpoint} ({text}); check the network, the region and \
                     the endpoint"
                ),
                Failure::BadResponse(text) => format!(
                    "{doing}: AWS KMS at {endpoint} answered unexpectedly: {text}; check that the endpoint is KMS"
                ),
                Failure::Service { status, code, message } => {
                    let hint = hint(action, key, &client.region, status, &code);
                    let detail = if message.is_empty() { code } else { format!("{code}: {message}") };
                    format!("{doing}: {hint} ({detail})")
                }
            })
        })
    }

    /// DescribeKey of the configured key: its ARN, refused unless it is an enabled symmetric
    /// encryption key. Refreshes the cached ARN.
    async fn usable_key(&self) -> Result<String> {
        let key = &self.inner.key_id;
        let doing = format!("looking up KMS key {key}");
        let answer: DescribeKeyResponse = self.call("DescribeKey", &KeyRequest { key_id: key }, &doing, key).await?;
        let meta = answer.key_metadata;
        let enabled = if meta.enabled == Some(false) { "Disabled" } else { "Enabled" };
        let state = meta.key_state.as_deref().unwrap_or(enabled);
        let arn = &meta.arn;
        let advice = match state {
            "Enabled" => None,
            "Disabled" => Some("enable it (aws kms enable-key) or configure another key"),
            "PendingDeletion" => Some(
                "it is scheduled for deletion: cancel that (aws kms cancel-key-deletion, then enable-key) \
                 or configure another key",
            ),
            _ => Some("wait until it is Enabled or configure another key"),
        };
        if let Some(advice) = advice {
            return Err(unavailable(format!(
                "KMS key {key} ({arn}) is {state}: new data keys cannot be wrapped; {advice}"
            )));
        }
        if let Some(spec) = meta.key_spec.as_deref().filter(|s| *s != "SYMMETRIC_DEFAULT") {
            return Err(unavailable(format!(
                "KMS key {key} ({arn}) is a {spec} key; configure a symmetric encryption key (SYMMETRIC_DEFAULT)"
            )));
        }
        if !arn.starts_with("arn:") {
            return Err(unavailable(format!(
                "{doing}: KMS answered {arn:?} as its ARN; check that the endpoint is KMS"
            )));
        }
        *self.inner.arn.lock().expect("the ARN cache is never poisoned") = Some(arn.clone());
        Ok(meta.arn)
    }
}

#[async_trait]
impl KeyProvider for AwsKms {
    fn describe(&self) -> String {
        let mut text = format!("AWS KMS key {} in {}", self.inner.key_id, self.region());
        if self.inner.custom_endpoint {
            text.push_str(&format!(" at {}", self.endpoint()));
        }
        text
    }

    /// The configured key's ARN (DescribeKey on the first call; cached after).
    async fn current_key_id(&self) -> Result<String> {
        if let Some(arn) = self.inner.arn.lock().expect("the ARN cache is never poisoned").clone() {
            return Ok(arn);
        }
        self.usable_key().await
    }

    /// DescribeKey (the key must be enabled), then Encrypt under its ARN with the image's context.
    async fn wrap(&self, image: ImageId, key: &DataKey) -> Result<WrappedKey> {
        let arn = self.usable_key().await?;
        let doing = format!("wrapping image {image}'s data key under KMS key {arn}");
        let plaintext = Zeroizing::new(BASE64.encode(key.expose()));
        let request = EncryptRequest { key_id: &arn, plaintext: &plaintext, encryption_context: context(image) };
        let answer: EncryptResponse = self.call("Encrypt", &request, &doing, &arn).await?;
        let ciphertext = BASE64
            .decode(&answer.ciphertext_blob)
            .ok()
            .filter(|c| !c.is_empty())
            .ok_or_else(|| unavailable(format!("{doing}: KMS answered a CiphertextBlob that is not base64")))?;
        if answer.key_id != arn {
            return Err(unavailable(format!("{doing}: KMS encrypted under {} instead", answer.key_id)));
        }
        Ok(WrappedKey { provider: PROVIDER.into(), key_id: answer.key_id, ciphertext })
    }

    /// Decrypt with the recorded key id and the image's context.
    async fn unwrap(&self, image: ImageId, wrapped: &WrappedKey) -> Result<DataKey> {
        if wrapped.provider != PROVIDER {
            return Err(unavailable(format!(
                "image {image}'s key was wrapped by the {:?} provider, but {} is configured; configure the \
                 provider it was wrapped with",
                wrapped.provider,
                self.describe()
            )));
        }
        let key = &wrapped.key_id;
        if key.is_empty() || wrapped.ciphertext.is_empty() {
            return Err(unavailable(format!("image {image}'s wrapped key record is incomplete (no key id or bytes)")));
        }
        let doing = format!("unwrapping image {image}'s data key under KMS key {key}");
        let request = DecryptRequest {
            key_id: key,
            ciphertext_blob: BASE64.encode(&wrapped.ciphertext),
            encryption_context: context(image),
        };
        let answer: DecryptResponse = self.call("Decrypt", &request, &doing, key).await?;
        if let Some(used) = answer.key_id.as_deref() {
            if key.starts_with("arn:") && used != key {
                return Err(unavailable(format!("{doing}: KMS decrypted under {used} instead")));
            }
        }
        let plain = Zeroizing::new(
            BASE64
                .decode(&answer.plaintext)
                .map_err(|_| unavailable(format!("{doing}: KMS answered a Plaintext that is not base64")))?,
        );
        DataKey::from_bytes(&plain)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn hints_say_what_to_fix() {
        let h = |action, code| hint(action, "alias/k", "eu-west-1", 400, code);
        assert!(h("Encrypt", "NotFoundException").contains("region eu-west-1"));
        assert!(h("Encrypt", "AccessDeniedException").contains("kms:Encrypt"));
        assert!(h("Decrypt", "AccessDeniedException").contains("another key"));
        assert!(h("Decrypt", "InvalidCiphertextException").contains("another image"));
        assert!(h("Encrypt", "DisabledException").contains("enable-key"));
        assert!(h("Encrypt", "KMSInvalidStateException").contains("cancel-key-deletion"));
        assert!(h("Encrypt", "UnrecognizedClientException").contains("AWS_SECRET_ACCESS_KEY"));
        assert_eq!(hint("Encrypt", "k", "r", 503, "Whatever"), "AWS KMS failed; retry later");
    }

    #[test]
    fn requests_carry_the_image_context() {
        let image = ImageId::new();
        let request = EncryptRequest { key_id: "arn:k", plaintext: "AAAA", encryption_context: context(image) };
        let json = serde_json::to_value(&request).unwrap();
        assert_eq!(
            json,
            serde_json::json!({"KeyId": "arn:k", "Plaintext": "AAAA", "EncryptionContext": {CONTEXT_KEY: image.to_string()}})
        );
    }
}
