//! How to reach the storage account: [`AzureAuth`], [`AzureBlobStoreBuilder`] and
//! [`AzureBlobStoreBuilder::from_env`].

use crate::azcopy::AzcopySettings;
use object_store::RetryConfig;
use toygres_core::{Error, Password, Result};

pub use crate::auth::AzureAuth;

/// The account name of the Azure Storage emulator (Azurite).
pub const EMULATOR_ACCOUNT: &str = "devstoreaccount1";
/// The well-known, public account key of the Azure Storage emulator. Not a secret.
pub const EMULATOR_ACCOUNT_KEY: &str =
    "Eby8vdM02xNOcqFlqUwJPLlmEtlCDXJ1OUzFT50uSRZ6IFsuFq2UVErCz4I6tq/K1SZFPTOtr/KBHBeksoGMGw==";
/// Default blob endpoint of a local Azurite.
pub const EMULATOR_URL: &str = "http://127.0.0.1:10000";
/// Container used when none is configured.
pub const DEFAULT_CONTAINER: &str = "images";

/// Builds an [`AzureBlobStore`](crate::AzureBlobStore).
///
/// ```
/// use toygres_azure::{AzureBlobStore, AzureAuth};
/// let store = AzureBlobStore::builder()
///     .account("mystorage")
///     .container("images")
///     .auth(AzureAuth::WorkloadIdentity {
///         client_id: "00000000-0000-0000-0000-000000000001".into(),
///         tenant_id: "00000000-0000-0000-0000-000000000002".into(),
///         federated_token_file: "/var/run/secrets/azure/tokens/azure-identity-token".into(),
///         authority_host: None,
///     })
///     .build()
///     .unwrap();
/// assert_eq!(store.container_url(), "https://mystorage.blob.core.windows.net/images");
/// ```
#[derive(Debug, Clone, Default)]
pub struct AzureBlobStoreBuilder {
    pub(crate) account: Option<String>,
    pub(crate) container: Option<String>,
    pub(crate) endpoint: Option<String>,
    pub(crate) auth: Option<AzureAuth>,
    pub(crate) retry: Option<RetryConfig>,
    pub(crate) azcopy: AzcopySettings,
}

impl AzureBlobStoreBuilder {
    /// The storage account name.
    pub fn account(mut self, account: impl Into<String>) -> Self {
        self.account = Some(account.into());
        self
    }

    /// The container holding the images (default [`DEFAULT_CONTAINER`]).
    pub fn container(mut self, container: impl Into<String>) -> Self {
        self.container = Some(container.into());
        self
    }

    /// The account's blob endpoint, e.g. `https://mystorage.blob.core.windows.net` (the default,
    /// derived from the account) or a path-style emulator endpoint `http://host:10000/devstoreaccount1`.
    pub fn endpoint(mut self, endpoint: impl Into<String>) -> Self {
        self.endpoint = Some(endpoint.into().trim_end_matches('/').to_string());
        self
    }

    /// How to authenticate.
    pub fn auth(mut self, auth: AzureAuth) -> Self {
        self.auth = Some(auth);
        self
    }

    /// The Azure Storage emulator (Azurite) at `url` (e.g. [`EMULATOR_URL`]): its well-known account
    /// and public key, path-style URLs over plain HTTP.
    pub fn emulator(self, url: &str) -> Self {
        let endpoint = format!("{}/{EMULATOR_ACCOUNT}", url.trim_end_matches('/'));
        self.account(EMULATOR_ACCOUNT)
            .endpoint(endpoint)
            .auth(AzureAuth::AccessKey(Password::new(EMULATOR_ACCOUNT_KEY)))
    }

    /// Retries of transient failures (5xx, throttling, connection errors) of control-plane calls.
    /// Default: object_store's (up to 10 retries with exponential backoff, 3 minutes in all).
    pub fn retry(mut self, retry: RetryConfig) -> Self {
        self.retry = Some(retry);
        self
    }

    /// How jobs run azcopy (program path, block size, concurrency, log directory).
    pub fn azcopy(mut self, settings: AzcopySettings) -> Self {
        self.azcopy = settings;
        self
    }

    /// The configuration in the environment, read through `var`:
    ///
    /// - `AZURE_STORAGE_ACCOUNT` (required unless the emulator is used), `AZURE_STORAGE_CONTAINER`
    ///   (default `images`), `AZURE_STORAGE_ENDPOINT` (optional);
    /// - credentials, first match wins: `AZURE_STORAGE_USE_EMULATOR=true` (with `AZURITE_BLOB_STORAGE_URL`,
    ///   default [`EMULATOR_URL`]); `AZURE_STORAGE_SAS_TOKEN`; workload identity from `AZURE_CLIENT_ID`,
    ///   `AZURE_TENANT_ID`, `AZURE_FEDERATED_TOKEN_FILE` (and `AZURE_AUTHORITY_HOST`), as the AKS
    ///   workload identity webhook injects them; `AZURE_STORAGE_ACCOUNT_KEY`;
    /// - `TOYGRES_AZCOPY`: the azcopy program jobs run (default `azcopy`).
    pub fn from_vars(var: impl Fn(&str) -> Option<String>) -> Result<Self> {
        let var = |name: &str| var(name).filter(|v| !v.trim().is_empty());
        let mut builder = Self::default();
        if let Some(container) = var("AZURE_STORAGE_CONTAINER") {
            builder = builder.container(container);
        }
        if let Some(program) = var("TOYGRES_AZCOPY") {
            builder.azcopy.program = program;
        }
        if var("AZURE_STORAGE_USE_EMULATOR").is_some_and(|v| v.eq_ignore_ascii_case("true") || v == "1") {
            return Ok(builder.emulator(&var("AZURITE_BLOB_STORAGE_URL").unwrap_or_else(|| EMULATOR_URL.into())));
        }
        if let Some(account) = var("AZURE_STORAGE_ACCOUNT") {
            builder = builder.account(account);
        }
        if let Some(endpoint) = var("AZURE_STORAGE_ENDPOINT") {
            builder = builder.endpoint(endpoint);
        }
        let workload = (var("AZURE_CLIENT_ID"), var("AZURE_TENANT_ID"), var("AZURE_FEDERATED_TOKEN_FILE"));
        let auth = if let Some(sas) = var("AZURE_STORAGE_SAS_TOKEN") {
            AzureAuth::Sas(Password::new(sas))
        } else if let (Some(client_id), Some(tenant_id), Some(file)) = workload {
            AzureAuth::WorkloadIdentity {
                client_id,
                tenant_id,
                federated_token_file: file.into(),
                authority_host: var("AZURE_AUTHORITY_HOST"),
            }
        } else if let Some(key) = var("AZURE_STORAGE_ACCOUNT_KEY") {
            AzureAuth::AccessKey(Password::new(key))
        } else {
            return Err(Error::InvalidRequest {
                field: "azure credentials",
                reason: "none found in the environment; set AZURE_CLIENT_ID, AZURE_TENANT_ID and \
                         AZURE_FEDERATED_TOKEN_FILE (AKS workload identity: label the pod \
                         azure.workload.identity/use=true), or AZURE_STORAGE_SAS_TOKEN, or \
                         AZURE_STORAGE_USE_EMULATOR=true"
                    .into(),
            });
        };
        Ok(builder.auth(auth))
    }

    /// [`AzureBlobStoreBuilder::from_vars`] over the process environment.
    pub fn from_env() -> Result<Self> {
        Self::from_vars(|name| std::env::var(name).ok())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::HashMap;

    fn vars(pairs: &[(&str, &str)]) -> impl Fn(&str) -> Option<String> {
        let map: HashMap<String, String> = pairs.iter().map(|(k, v)| (k.to_string(), v.to_string())).collect();
        move |name| map.get(name).cloned()
    }

    #[test]
    fn workload_identity_from_the_webhook_variables() {
        let b = AzureBlobStoreBuilder::from_vars(vars(&[
            ("AZURE_STORAGE_ACCOUNT", "acct"),
            ("AZURE_CLIENT_ID", "cid"),
            ("AZURE_TENANT_ID", "tid"),
            ("AZURE_FEDERATED_TOKEN_FILE", "/var/run/secrets/azure/tokens/azure-identity-token"),
        ]))
        .unwrap();
        assert_eq!(b.account.as_deref(), Some("acct"));
        assert!(matches!(&b.auth, Some(AzureAuth::WorkloadIdentity { client_id, .. }) if client_id == "cid"));
        assert_eq!(b.build().unwrap().container_url(), "https://acct.blob.core.windows.net/images");
    }

    #[test]
    fn sas_wins_and_never_shows_in_debug() {
        let b = AzureBlobStoreBuilder::from_vars(vars(&[
            ("AZURE_STORAGE_ACCOUNT", "acct"),
            ("AZURE_STORAGE_CONTAINER", "imgs"),
            ("AZURE_STORAGE_SAS_TOKEN", "sv=2022&sig=SECRETSIG"),
            ("AZURE_CLIENT_ID", "cid"),
        ]))
        .unwrap();
        assert!(matches!(b.auth, Some(AzureAuth::Sas(_))));
        let store = b.build().unwrap();
        assert!(!format!("{store:?}").contains("SECRETSIG"), "{store:?}");
    }

    #[test]
    fn emulator_and_missing_credentials() {
        let b = AzureBlobStoreBuilder::from_vars(vars(&[("AZURE_STORAGE_USE_EMULATOR", "true")])).unwrap();
        assert_eq!(b.build().unwrap().container_url(), "http://127.0.0.1:10000/devstoreaccount1/images");
        let err = AzureBlobStoreBuilder::from_vars(vars(&[("AZURE_STORAGE_ACCOUNT", "acct")])).unwrap_err();
        assert!(err.to_string().contains("AZURE_FEDERATED_TOKEN_FILE"), "{err}");
    }
}
