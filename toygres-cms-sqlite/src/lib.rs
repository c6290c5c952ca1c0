//! # toygres-cms-sqlite
//!
//! A [`CatalogStore`](toygres_core::CatalogStore) in one SQLite file: the catalog of the
//! embedded default, and a good one for any single-machine control plane.
//!
//! - **Migrations**: versioned, applied on open inside one `BEGIN IMMEDIATE` transaction (two
//!   processes opening one file at once serialize); a file written by a newer toygres is refused
//!   with [`Error::SchemaTooNew`](toygres_core::Error::SchemaTooNew).
//! - **Concurrency**: WAL mode, a busy timeout, a few connections; every call runs on tokio's
//!   blocking pool; every state change is one `UPDATE … WHERE id = ? AND state = ?` whose
//!   affected-row count decides between success and
//!   [`Error::StateConflict`](toygres_core::Error::StateConflict).
//! - **Passwords at rest**: sealed with the [`CatalogKey`](toygres_core::crypto::CatalogKey) you
//!   pass (XChaCha20-Poly1305, random nonce per value), each bound to its record
//!   ([`CatalogKey::seal_for`](toygres_core::crypto::CatalogKey::seal_for)): copied into another
//!   row it fails to open with [`Error::WrongKey`](toygres_core::Error::WrongKey). Values sealed
//!   unbound by earlier releases still open. The key is never stored; opening a file with another
//!   key fails with [`Error::WrongKey`](toygres_core::Error::WrongKey).
//! - **Image keys**: an image's wrapped data key is stored with it (JSON in `images.encryption`,
//!   NULL for a plaintext image) and replaced only by the compare-and-set
//!   [`rewrap_image_key`](toygres_core::CatalogStore::rewrap_image_key).
//!
//! - **Schedules and progress**: `schedules` rows (a deleted one keeps its row with `deleted_at`,
//!   so a retry of its operation is answered; live names are unique by a partial index), the last
//!   slot advanced by `UPDATE … WHERE last_slot IS ?` ([`advance_schedule`](toygres_core::CatalogStore::advance_schedule));
//!   byte progress in `progress`, one row per image or instance, removed with its record.
//!
//! ```
//! # #[tokio::main(flavor = "current_thread")]
//! # async fn main() -> toygres_core::Result<()> {
//! use toygres_cms_sqlite::SqliteCatalog;
//! use toygres_core::{crypto::CatalogKey, CatalogStore, ImageState, InstanceId, NewImage, OperationId};
//!
//! let dir = tempfile::tempdir().unwrap();
//! let key = CatalogKey::generate(); // in production: CatalogKey::from_env("TOYGRES_CATALOG_KEY")?
//! let catalog = SqliteCatalog::open(dir.path().join("catalog.db"), key)?;
//!
//! let new = NewImage::new("nightly", InstanceId::new());
//! let operation = OperationId::new();
//! let image = catalog.reserve_image(operation, &new).await?;
//! assert_eq!(image.state, ImageState::Creating);
//! // Retrying the same operation returns the same record.
//! assert_eq!(catalog.reserve_image(operation, &new).await?.id, image.id);
//! # Ok(())
//! # }
//! ```
#![warn(missing_docs)]

mod catalog;
mod codec;
mod images;
mod instances;
mod listing;
mod pool;
mod progress;
mod schedules;
mod schema;

pub use catalog::SqliteCatalog;
pub use pool::SqliteOptions;
