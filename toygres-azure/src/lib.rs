//! # toygres-azure
//!
//! toygres images in Azure Blob Storage.
//!
//! - [`AzureBlobStore`] is the [`toygres_core::BlobStore`]: the control plane stats, lists, reads and
//!   deletes an image's blobs through object_store (with retries of transient failures), and
//!   [`AzureBlobStore::ensure_container`] creates the container if it is missing.
//! - Jobs move the bytes with **azcopy**: [`toygres_core::BlobStore::transfer`] returns a
//!   [`toygres_core::Transfer::Command`] that streams a dump from standard input
//!   (`azcopy copy "{url}" --from-to PipeBlob`) and back to standard output (`--from-to BlobPipe`).
//! - On AKS the jobs authenticate with **workload identity** (`AZCOPY_AUTO_LOGIN_TYPE=WORKLOAD`, no `azcopy login`,
//!   never `--identity`); no secret exists anywhere. The emulator (Azurite) and SAS modes are for
//!   development; see [`azcopy`] for what that implies. `docs/azure-aks.md` describes the AKS set-up.
//!
//! ```
//! use toygres_azure::AzureBlobStore;
//! use toygres_core::{BlobStore, ImageId, ImageLocation, Transfer};
//! let store = AzureBlobStore::builder().emulator("http://127.0.0.1:10000").container("images").build().unwrap();
//! let Transfer::Command(azcopy) = store.transfer(&ImageLocation::for_image(ImageId::new())) else { panic!() };
//! assert_eq!(azcopy.upload_from_stdin[..4], ["copy", "{url}", "--from-to", "PipeBlob"]);
//! assert!(azcopy.login.is_none()); // the emulator uses a SAS, not a login
//! ```
#![warn(missing_docs)]

mod auth;
pub mod azcopy;
pub mod config;
mod container;
mod sas;
mod store;

pub use azcopy::AzcopySettings;
pub use config::{AzureAuth, AzureBlobStoreBuilder, EMULATOR_ACCOUNT, EMULATOR_URL};
pub use object_store::RetryConfig;
pub use store::AzureBlobStore;

#[cfg(test)]
mod transfer_tests;
