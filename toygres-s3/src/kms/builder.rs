//! [`AwsKmsBuilder`]: where the KMS is, which key, and whose credentials.

use super::client::{Client, Credentials};
use super::{AwsKms, Inner};
use std::sync::{Arc, Mutex};
use std::time::Duration;
use toygres_core::{Error, Password, Result};

/// The default time limit of one KMS request.
pub const DEFAULT_TIMEOUT: Duration = Duration::from_secs(30);
/// The longest wait for a connection (within the request's time limit).
const CONNECT_TIMEOUT: Duration = Duration::from_secs(10);
/// The region when neither the builder, the environment nor a key ARN names one.
const DEFAULT_REGION: &str = "us-east-1";

/// Settings of an [`AwsKms`]. Secrets are kept as [`Password`]s: never in `Debug` or errors.
///
/// Settings given on the builder win over the environment ([`AwsKmsBuilder::with_env`]), in
/// whichever order they are given.
#[derive(Debug, Clone)]
pub struct AwsKmsBuilder {
    key_id: String,
    region: Option<String>,
    endpoint: Option<String>,
    credentials: Option<(String, Password)>,
    session_token: Option<Password>,
    timeout: Duration,
}

fn invalid(field: &'static str, reason: String) -> Error {
    Error::InvalidRequest { field, reason }
}

/// The region in a key or alias ARN (`arn:aws:kms:eu-west-1:111122223333:key/…`).
fn region_of_arn(key_id: &str) -> Option<String> {
    let mut parts = key_id.strip_prefix("arn:")?.split(':');
    let (_partition, service, region) = (parts.next()?, parts.next()?, parts.next()?);
    (service == "kms" && !region.is_empty()).then(|| region.to_string())
}

/// The public KMS endpoint of `region`.
fn default_endpoint(region: &str) -> String {
    let domain = if region.starts_with("cn-") { "amazonaws.com.cn" } else { "amazonaws.com" };
    format!("https://kms.{region}.{domain}/")
}

impl AwsKmsBuilder {
    pub(super) fn new(key_id: String) -> Self {
        Self { key_id, region: None, endpoint: None, credentials: None, session_token: None, timeout: DEFAULT_TIMEOUT }
    }

    /// The AWS region of the key (default: the region of a key ARN, else `us-east-1`).
    pub fn region(mut self, region: impl Into<String>) -> Self {
        self.region = Some(region.into());
        self
    }

    /// A KMS-compatible server at `url` instead of `https://kms.<region>.amazonaws.com` (an
    /// emulator such as moto: `http://127.0.0.1:5000`, or a VPC endpoint).
    pub fn endpoint(mut self, url: impl Into<String>) -> Self {
        self.endpoint = Some(url.into());
        self
    }

    /// Static credentials: an access key id and its secret access key.
    pub fn credentials(mut self, access_key_id: impl Into<String>, secret_access_key: impl Into<String>) -> Self {
        self.credentials = Some((access_key_id.into(), Password::new(secret_access_key.into())));
        self
    }

    /// The session token of temporary credentials (with [`AwsKmsBuilder::credentials`]).
    pub fn session_token(mut self, token: impl Into<String>) -> Self {
        self.session_token = Some(Password::new(token.into()));
        self
    }

    /// The time limit of one request (default [`DEFAULT_TIMEOUT`], 30 s); a call retries
    /// transient failures twice, so it may take about three times as long.
    pub fn timeout(mut self, timeout: Duration) -> Self {
        self.timeout = timeout;
        self
    }

    /// Fills what the builder was not given from the standard variables: `AWS_ACCESS_KEY_ID`,
    /// `AWS_SECRET_ACCESS_KEY` and `AWS_SESSION_TOKEN`; `AWS_REGION` (or `AWS_DEFAULT_REGION`);
    /// the endpoint from `AWS_ENDPOINT_URL_KMS` (or `AWS_ENDPOINT_URL`). Empty variables count
    /// as unset. Only static keys are read: no profiles, instance roles or web identity.
    pub fn with_env(self) -> Self {
        self.with_lookup(&|name| std::env::var(name).ok())
    }

    pub(crate) fn with_lookup(mut self, lookup: &dyn Fn(&str) -> Option<String>) -> Self {
        let var = |name: &str| lookup(name).filter(|v| !v.trim().is_empty());
        if self.credentials.is_none() {
            if let (Some(id), Some(secret)) = (var("AWS_ACCESS_KEY_ID"), var("AWS_SECRET_ACCESS_KEY")) {
                self.credentials = Some((id, Password::new(secret)));
                // A token belongs to the keys it came with: only with keys from the environment.
                if self.session_token.is_none() {
                    self.session_token = var("AWS_SESSION_TOKEN").map(Password::new);
                }
            }
        }
        self.region = self.region.or_else(|| var("AWS_REGION")).or_else(|| var("AWS_DEFAULT_REGION"));
        self.endpoint = self.endpoint.or_else(|| var("AWS_ENDPOINT_URL_KMS")).or_else(|| var("AWS_ENDPOINT_URL"));
        self
    }

    /// The provider. Fails with [`Error::InvalidRequest`] without a key id or credentials, or
    /// on a malformed region or endpoint. Nothing is sent to KMS yet.
    pub fn build(self) -> Result<AwsKms> {
        let key_id = self.key_id.trim().to_string();
        if key_id.is_empty() {
            return Err(invalid("kms_key", "no KMS key given: name it by key ARN, key id or alias/<name>".into()));
        }
        let Some((access_key_id, secret_access_key)) =
            self.credentials.filter(|(id, s)| !id.is_empty() && !s.is_empty())
        else {
            return Err(invalid(
                "aws_credentials",
                "no AWS credentials: give credentials(access key id, secret access key), or set \
                 AWS_ACCESS_KEY_ID and AWS_SECRET_ACCESS_KEY and use with_env()"
                    .into(),
            ));
        };
        let region = self.region.or_else(|| region_of_arn(&key_id)).unwrap_or_else(|| DEFAULT_REGION.into());
        if region.is_empty() || !region.chars().all(|c| c.is_ascii_alphanumeric() || c == '-') {
            return Err(invalid("aws_region", format!("{region:?} is not an AWS region, e.g. \"eu-west-1\"")));
        }
        let custom_endpoint = self.endpoint.is_some();
        let url = self.endpoint.unwrap_or_else(|| default_endpoint(&region));
        let endpoint = reqwest::Url::parse(&url)
            .ok()
            .filter(|u| matches!(u.scheme(), "http" | "https") && u.has_host() && u.query().is_none())
            .ok_or_else(|| {
                invalid("kms_endpoint", format!("{url:?} is not an http(s) URL such as \"http://127.0.0.1:5000\""))
            })?;
        let http = reqwest::Client::builder()
            .timeout(self.timeout)
            .connect_timeout(self.timeout.min(CONNECT_TIMEOUT))
            .build()
            .map_err(|e| invalid("kms_endpoint", format!("cannot set up the HTTPS client: {e}")))?;
        let credentials = Credentials { access_key_id, secret_access_key, session_token: self.session_token };
        let client = Client { http, endpoint, region, credentials };
        Ok(AwsKms { inner: Arc::new(Inner { key_id, client, custom_endpoint, arn: Mutex::new(None) }) })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::HashMap;

    fn env(vars: &[(&str, &str)]) -> impl Fn(&str) -> Option<String> {
        let vars: HashMap<String, String> = vars.iter().map(|(k, v)| (k.to_string(), v.to_string())).collect();
        move |name| vars.get(name).cloned()
    }

    #[test]
    fn the_environment_fills_what_the_builder_lacks() {
        let vars = env(&[
            ("AWS_ACCESS_KEY_ID", "AKIDENV"),
            ("AWS_SECRET_ACCESS_KEY", "env-secret-Zx1"),
            ("AWS_SESSION_TOKEN", "env-token-Qy2"),
            ("AWS_DEFAULT_REGION", "eu-west-1"),
            ("AWS_ENDPOINT_URL", "http://127.0.0.1:4566"),
            ("AWS_ENDPOINT_URL_KMS", "http://127.0.0.1:5000"),
        ]);
        let kms = AwsKms::builder("alias/toygres").with_lookup(&vars).build().unwrap();
        assert_eq!(kms.key_id(), "alias/toygres");
        assert_eq!((kms.region(), kms.endpoint()), ("eu-west-1", "http://127.0.0.1:5000/"));
        let debug = format!("{kms:?}");
        assert!(debug.contains("AKIDENV") && !debug.contains("env-secret") && !debug.contains("env-token"), "{debug}");
        assert!(kms.inner.client.credentials.session_token.is_some());

        // Given settings win; the environment's token does not join keys given explicitly.
        let kms = AwsKms::builder("k")
            .credentials("AKIDGIVEN", "given")
            .region("ap-south-1")
            .with_lookup(&vars)
            .build()
            .unwrap();
        assert_eq!(kms.region(), "ap-south-1");
        assert_eq!(kms.inner.client.credentials.access_key_id, "AKIDGIVEN");
        assert!(kms.inner.client.credentials.session_token.is_none());
    }

    #[test]
    fn from_env_needs_the_key_id_variable() {
        let vars = [("AWS_ACCESS_KEY_ID", "AKIDENV"), ("AWS_SECRET_ACCESS_KEY", "env-secret-Zx1")];
        match AwsKms::from_lookup(env(&vars)) {
            Err(Error::InvalidRequest { field: "kms_key", reason }) => assert!(reason.contains("TOYGRES_KMS_KEY_ID")),
            other => panic!("{other:?}"),
        }
        let kms = AwsKms::from_lookup(env(&[vars[0], vars[1], ("TOYGRES_KMS_KEY_ID", "alias/env-key")])).unwrap();
        assert_eq!((kms.key_id(), kms.region()), ("alias/env-key", "us-east-1"));
        assert!(matches!(
            AwsKms::from_lookup(env(&[("TOYGRES_KMS_KEY_ID", "k")])),
            Err(Error::InvalidRequest { field: "aws_credentials", .. })
        ));
    }

    #[test]
    fn region_and_endpoint_defaults() {
        let arn = "arn:aws:kms:eu-central-1:111122223333:key/1234abcd-12ab-34cd-56ef-1234567890ab";
        let kms = AwsKms::builder(arn).credentials("a", "s").build().unwrap();
        assert_eq!((kms.region(), kms.endpoint()), ("eu-central-1", "https://kms.eu-central-1.amazonaws.com/"));
        let kms = AwsKms::builder("alias/x").credentials("a", "s").build().unwrap();
        assert_eq!((kms.region(), kms.endpoint()), ("us-east-1", "https://kms.us-east-1.amazonaws.com/"));
        let kms = AwsKms::builder("alias/x").credentials("a", "s").region("cn-north-1").build().unwrap();
        assert_eq!(kms.endpoint(), "https://kms.cn-north-1.amazonaws.com.cn/");
    }

    #[test]
    fn bad_settings_are_refused_clearly() {
        let field = |b: AwsKmsBuilder| match b.build() {
            Err(Error::InvalidRequest { field, .. }) => field,
            other => panic!("{other:?}"),
        };
        assert_eq!(field(AwsKms::builder(" ").credentials("a", "s")), "kms_key");
        assert_eq!(field(AwsKms::builder("k")), "aws_credentials");
        assert_eq!(field(AwsKms::builder("k").credentials("a", "")), "aws_credentials");
        assert_eq!(field(AwsKms::builder("k").credentials("a", "s").region("eu west")), "aws_region");
        assert_eq!(field(AwsKms::builder("k").credentials("a", "s").endpoint("127.0.0.1:5000")), "kms_endpoint");
        assert_eq!(field(AwsKms::builder("k").credentials("a", "s").endpoint("ftp://h/")), "kms_endpoint");
    }
}
