//! [`AzureBlobStore::ensure_container`]: object_store cannot create a container, so toygres sends the
//! signed `PUT {container}?restype=container` itself (signed by object_store's `AzureAuthorizer`).

use crate::store::{first_line, AzureBlobStore};
use object_store::client::{HttpClient, HttpConnector, HttpRequestBody, ReqwestConnector};
use object_store::ClientOptions;
use std::time::{Duration, Instant};
use toygres_core::{Error, Result};

/// One attempt's outcome.
enum Attempt {
    Done,
    /// Worth retrying (unreachable, throttled, 5xx), with what happened.
    Transient(String),
    Failed(Error),
}

impl AzureBlobStore {
    /// Creates the container if it does not exist (HTTP 201, or 409 when it exists: both success).
    /// Transient failures are retried with the store's [`object_store::RetryConfig`].
    ///
    /// Needs a role that may create containers (Storage Blob Data Contributor on the account) or an
    /// account SAS; with a grant on the container only, create it once by hand and skip this call.
    pub async fn ensure_container(&self) -> Result<()> {
        let options = ClientOptions::new().with_allow_http(self.endpoint.starts_with("http://"));
        let client =
            ReqwestConnector::default().connect(&options).map_err(|e| self.failure(first_line(&e.to_string())))?;
        let deadline = Instant::now() + self.retry.retry_timeout;
        let mut delay = self.retry.backoff.init_backoff;
        let mut attempt = 0;
        loop {
            match self.create_once(&client).await {
                Attempt::Done => return Ok(()),
                Attempt::Failed(e) => return Err(e),
                Attempt::Transient(what) if attempt >= self.retry.max_retries || Instant::now() + delay > deadline => {
                    return Err(self.failure(format!("{what} (after {} attempts)", attempt + 1)));
                }
                Attempt::Transient(what) => tracing::debug!(attempt, %what, "retrying container creation"),
            }
            attempt += 1;
            tokio::time::sleep(delay).await;
            delay = (delay * 2).min(self.retry.backoff.max_backoff).max(Duration::from_millis(1));
        }
    }

    async fn create_once(&self, client: &HttpClient) -> Attempt {
        let credential = match self.azure.credentials().get_credential().await {
            Ok(c) => c,
            Err(e) => {
                // object_store already retried the token request; what is left is configuration.
                let what = first_line(&e.to_string());
                return Attempt::Failed(self.failure(format!("cannot get a credential ({what}); check the identity")));
            }
        };
        let request = http::Request::builder()
            .method(http::Method::PUT)
            .uri(format!("{}?restype=container", self.container_url()))
            .header(http::header::CONTENT_LENGTH, "0")
            .body(HttpRequestBody::empty());
        let mut request = match request {
            Ok(r) => r,
            Err(e) => return Attempt::Failed(self.failure(e.to_string())),
        };
        let signed = object_store::azure::AzureAuthorizer::new(&credential, &self.account).try_authorize(&mut request);
        if let Err(e) = signed {
            return Attempt::Failed(self.failure(first_line(&e.to_string())));
        }
        match client.execute(request).await.map(|r| r.status().as_u16()) {
            Ok(201 | 409) => Attempt::Done,
            Ok(403) => {
                Attempt::Failed(self.failure(
                    "HTTP 403 Forbidden; grant the identity Storage Blob Data Contributor on the account".into(),
                ))
            }
            Ok(status @ (408 | 429 | 500..)) => Attempt::Transient(format!("the service answered HTTP {status}")),
            Ok(status) => Attempt::Failed(self.failure(format!("the service answered HTTP {status}"))),
            // No URL in this message: with a SAS, the request URL carries it.
            Err(_) => Attempt::Transient("the service is unreachable; check the endpoint and network".into()),
        }
    }

    fn failure(&self, what: String) -> Error {
        Error::backend_msg(
            "azure blob store",
            format!("creating container {} with {}: {what}", self.container_url(), self.auth.kind()),
        )
    }
}

#[cfg(test)]
mod tests {
    use crate::{AzureBlobStore, RetryConfig};
    use object_store::BackoffConfig;
    use std::time::Duration;

    #[tokio::test]
    async fn unreachable_service_is_retried_then_reported() {
        let backoff =
            BackoffConfig { init_backoff: Duration::from_millis(5), max_backoff: Duration::from_millis(10), base: 2.0 };
        let retry = RetryConfig { backoff, max_retries: 2, retry_timeout: Duration::from_secs(5) };
        let store = AzureBlobStore::builder().emulator("http://127.0.0.1:1").retry(retry).build().unwrap();
        let err = store.ensure_container().await.unwrap_err().to_string();
        assert!(err.contains("unreachable") && err.contains("after 3 attempts"), "{err}");
        assert!(err.contains("http://127.0.0.1:1/devstoreaccount1/images"), "{err}");
    }
}
