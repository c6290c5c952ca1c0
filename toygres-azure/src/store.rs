//! [`AzureBlobStore`]: the [`BlobStore`] on an Azure Blob container.

use crate::auth::AzureAuth;
use crate::azcopy::AzcopySettings;
use crate::config::{AzureBlobStoreBuilder, DEFAULT_CONTAINER};
use async_trait::async_trait;
use bytes::Bytes;
use futures::TryStreamExt;
use object_store::azure::{MicrosoftAzure, MicrosoftAzureBuilder};
use object_store::RetryConfig;
use std::sync::Arc;
use std::time::Duration;
use toygres_core::blob::ByteStream;
use toygres_core::error::redact;
use toygres_core::{
    BlobStore, Error, ImageId, ImageLocation, ObjectStoreBlobs, Password, Result, StoredObject, Transfer,
};

/// How long the SAS handed to azcopy in account-key mode stays valid.
const JOB_SAS_VALIDITY: Duration = Duration::from_secs(12 * 3600);

/// Images in an Azure Blob container.
///
/// Control-plane calls (stat, list, read, write, delete) go through object_store, with its retries of
/// transient failures. Jobs move the bytes with azcopy ([`BlobStore::transfer`] returns
/// [`Transfer::Command`]). `Debug` never shows a key or SAS.
///
/// ```no_run
/// # async fn demo() -> toygres_core::Result<()> {
/// use toygres_azure::AzureBlobStore;
/// let store = AzureBlobStore::from_env()?; // e.g. AKS workload identity
/// store.ensure_container().await?;
/// # Ok(()) }
/// ```
#[derive(Clone)]
pub struct AzureBlobStore {
    pub(crate) account: String,
    container: String,
    /// Account endpoint without trailing slash.
    pub(crate) endpoint: String,
    pub(crate) auth: AzureAuth,
    pub(crate) azure: Arc<MicrosoftAzure>,
    blobs: ObjectStoreBlobs,
    azcopy: AzcopySettings,
    pub(crate) retry: RetryConfig,
}

/// Written by hand: object_store's own `Debug` prints SAS tokens and keys.
impl std::fmt::Debug for AzureBlobStore {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("AzureBlobStore")
            .field("container_url", &self.container_url())
            .field("auth", &self.auth)
            .field("azcopy", &self.azcopy)
            .finish_non_exhaustive()
    }
}

// The builder builds here, beside the store, so that `config` does not import `store`.
impl AzureBlobStoreBuilder {
    /// Checks the configuration and builds the store. Makes no network call (see
    /// [`AzureBlobStore::ensure_container`]).
    pub fn build(self) -> Result<AzureBlobStore> {
        AzureBlobStore::from_builder(self)
    }
}

impl AzureBlobStore {
    /// A builder; see [`AzureBlobStoreBuilder`].
    pub fn builder() -> AzureBlobStoreBuilder {
        AzureBlobStoreBuilder::default()
    }

    /// The store configured by the environment; see [`AzureBlobStoreBuilder::from_vars`].
    pub fn from_env() -> Result<Self> {
        AzureBlobStoreBuilder::from_env()?.build()
    }

    fn from_builder(b: AzureBlobStoreBuilder) -> Result<Self> {
        let invalid = |field, reason: &str| Error::InvalidRequest { field, reason: reason.into() };
        let account = b.account.ok_or_else(|| invalid("azure account", "is missing; set AZURE_STORAGE_ACCOUNT"))?;
        let container = b.container.unwrap_or_else(|| DEFAULT_CONTAINER.into());
        if !valid_container_name(&container) {
            return Err(invalid(
                "azure container",
                "must be 3-63 lowercase letters, digits and single hyphens, starting with a letter or digit",
            ));
        }
        let auth = b.auth.ok_or_else(|| invalid("azure credentials", "are missing; call auth() or emulator()"))?;
        let endpoint = b.endpoint.unwrap_or_else(|| format!("https://{account}.blob.core.windows.net"));
        let mut azure = MicrosoftAzureBuilder::new()
            .with_account(&account)
            .with_container_name(&container)
            .with_endpoint(endpoint.clone())
            .with_allow_http(endpoint.starts_with("http://"))
            .with_retry(b.retry.clone().unwrap_or_default());
        azure = match &auth {
            AzureAuth::WorkloadIdentity { client_id, tenant_id, federated_token_file, authority_host } => {
                let mut w = azure
                    .with_client_id(client_id)
                    .with_tenant_id(tenant_id)
                    .with_federated_token_file(federated_token_file.display().to_string())
                    .with_credential_type("workload_identity");
                if let Some(host) = authority_host {
                    w = w.with_authority_host(host);
                }
                w
            }
            AzureAuth::Sas(sas) => {
                let pairs = object_store::azure::split_sas(sas.expose())
                    .map_err(|_| invalid("azure SAS token", "is malformed; expected `sv=...&sig=...`"))?;
                azure.with_sas_authorization(pairs)
            }
            AzureAuth::AccessKey(key) => azure.with_access_key(key.expose()),
        };
        // object_store's errors may quote configuration; report only what failed.
        let azure = azure.build().map_err(|e| {
            Error::backend_msg(
                "azure blob store",
                format!("cannot configure {account}/{container} with {}: {}", auth.kind(), first_line(&e.to_string())),
            )
        })?;
        let azure = Arc::new(azure);
        let description = format!("azure blob container {endpoint}/{container}");
        let blobs = ObjectStoreBlobs::new(azure.clone(), description);
        Ok(Self {
            account,
            container,
            endpoint,
            auth,
            azure,
            blobs,
            azcopy: b.azcopy,
            retry: b.retry.unwrap_or_default(),
        })
    }

    /// The container's URL, e.g. `https://mystorage.blob.core.windows.net/images`.
    pub fn container_url(&self) -> String {
        format!("{}/{}", self.endpoint, self.container)
    }

    /// How it authenticates.
    pub fn auth(&self) -> &AzureAuth {
        &self.auth
    }

    /// The object_store handle (for tools and tests).
    pub fn object_store(&self) -> Arc<MicrosoftAzure> {
        self.azure.clone()
    }

    /// `error` without the SAS: object_store signs requests by adding the SAS to their URLs, and HTTP
    /// errors quote their URL.
    fn scrub(&self, error: Error) -> Error {
        let AzureAuth::Sas(sas) = &self.auth else { return error };
        let secret = sas.expose().trim_start_matches('?');
        match error {
            Error::Backend { backend, class, message, source } => {
                let source = source.map(|s| {
                    let mut chain = s.to_string();
                    let mut next = s.source();
                    while let Some(cause) = next {
                        chain = format!("{chain}: {cause}");
                        next = cause.source();
                    }
                    let signature = object_store::azure::split_sas(secret)
                        .ok()
                        .and_then(|pairs| pairs.into_iter().find(|(k, _)| k == "sig").map(|(_, v)| v));
                    let mut text = redact(&chain, secret);
                    if let Some(sig) = signature {
                        text = redact(&redact(&text, &sig), &sig.replace('+', "%2B").replace('/', "%2F"));
                    }
                    text.into()
                });
                Error::Backend { backend, class, message: redact(&message, secret), source }
            }
            other => other,
        }
    }

    /// The SAS jobs use, if the mode has one.
    fn job_sas(&self) -> Option<Password> {
        match &self.auth {
            AzureAuth::WorkloadIdentity { .. } => None,
            AzureAuth::Sas(sas) => Some(Password::new(sas.expose().trim_start_matches('?'))),
            AzureAuth::AccessKey(key) => {
                let expiry = chrono::Utc::now() + JOB_SAS_VALIDITY;
                // The key was accepted by object_store's builder, so it is valid base64.
                crate::sas::container_sas(&self.account, &self.container, key, expiry).ok()
            }
        }
    }
}

/// Azure's container naming rule.
fn valid_container_name(name: &str) -> bool {
    (3..=63).contains(&name.len())
        && name.chars().all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '-')
        && !name.starts_with('-')
        && !name.ends_with('-')
        && !name.contains("--")
}

pub(crate) fn first_line(text: &str) -> String {
    text.lines().next().unwrap_or_default().to_string()
}

#[async_trait]
impl BlobStore for AzureBlobStore {
    fn describe(&self) -> String {
        self.blobs.describe()
    }

    async fn stat(&self, location: &ImageLocation) -> Result<Vec<StoredObject>> {
        self.blobs.stat(location).await.map_err(|e| self.scrub(e))
    }

    async fn read(&self, location: &ImageLocation, name: &str) -> Result<Bytes> {
        self.blobs.read(location, name).await.map_err(|e| self.scrub(e))
    }

    async fn read_stream(&self, location: &ImageLocation, name: &str) -> Result<ByteStream> {
        let stream = self.blobs.read_stream(location, name).await.map_err(|e| self.scrub(e))?;
        let this = self.clone();
        Ok(Box::pin(stream.map_err(move |e| this.scrub(e))))
    }

    async fn write(&self, location: &ImageLocation, name: &str, bytes: Bytes) -> Result<()> {
        self.blobs.write(location, name, bytes).await.map_err(|e| self.scrub(e))
    }

    async fn delete(&self, location: &ImageLocation) -> Result<()> {
        self.blobs.delete(location).await.map_err(|e| self.scrub(e))
    }

    async fn delete_objects(&self, location: &ImageLocation, names: &[String]) -> Result<()> {
        self.blobs.delete_objects(location, names).await.map_err(|e| self.scrub(e))
    }

    async fn list_images(&self) -> Result<Vec<ImageId>> {
        self.blobs.list_images().await.map_err(|e| self.scrub(e))
    }

    fn transfer(&self, location: &ImageLocation) -> Transfer {
        let base_url = format!("{}/{}", self.container_url(), location.prefix);
        Transfer::Command(self.azcopy.transfer(base_url, &self.auth, self.job_sas()))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn container_names_follow_azure_rules() {
        for ok in ["images", "abc", "a-b-1"] {
            assert!(valid_container_name(ok), "{ok}");
        }
        for bad in ["ab", "Images", "-abc", "abc-", "a--b", "a_b"] {
            assert!(!valid_container_name(bad), "{bad}");
        }
        let err = AzureBlobStore::builder().emulator("http://127.0.0.1:1").container("Bad_Name").build().unwrap_err();
        assert!(matches!(err, Error::InvalidRequest { field: "azure container", .. }), "{err}");
    }
}
