//! [`AzureAuth`]: how toygres and its azcopy jobs authenticate. Its own module, below both the
//! builder ([`crate::config`]) that holds it and the azcopy command lines ([`crate::azcopy`]) that
//! follow it, so that neither imports the other for it; re-exported as
//! `toygres_azure::config::AzureAuth` and `toygres_azure::AzureAuth`.

use std::path::PathBuf;
use toygres_core::Password;

/// How toygres and its azcopy jobs authenticate to the storage account. `Debug` never shows a secret.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum AzureAuth {
    /// AKS workload identity (production): a federated token file projected into the pod, exchanged
    /// for an Entra ID token. No secret is stored anywhere; copies authenticate with `AZCOPY_AUTO_LOGIN_TYPE=WORKLOAD`.
    WorkloadIdentity {
        /// `AZURE_CLIENT_ID`: client id of the user-assigned identity (or app registration).
        client_id: String,
        /// `AZURE_TENANT_ID`.
        tenant_id: String,
        /// `AZURE_FEDERATED_TOKEN_FILE`, e.g. `/var/run/secrets/azure/tokens/azure-identity-token`.
        federated_token_file: PathBuf,
        /// `AZURE_AUTHORITY_HOST`, when not the public cloud's.
        authority_host: Option<String>,
    },
    /// A SAS token for the container (needs read, create, write, delete and list). Used by object_store
    /// and appended to azcopy's URLs, which puts it in azcopy's arguments: development only.
    Sas(Password),
    /// The account's shared key. object_store signs with it; azcopy gets a short-lived container SAS
    /// derived from it (in its arguments, see [`AzureAuth::Sas`]). The emulator uses its public key.
    AccessKey(Password),
}

impl AzureAuth {
    /// Short name for messages.
    pub fn kind(&self) -> &'static str {
        match self {
            AzureAuth::WorkloadIdentity { .. } => "workload identity",
            AzureAuth::Sas(_) => "SAS token",
            AzureAuth::AccessKey(_) => "account key",
        }
    }
}
