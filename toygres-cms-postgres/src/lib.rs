//! # toygres-cms-postgres
//!
//! A [`CatalogStore`](toygres_core::CatalogStore) in PostgreSQL, for control planes that run
//! several processes against one catalog (schema `toygres_cms` by default).
//!
//! - **Migrations**: versioned, applied on [`PostgresCatalog::connect`] inside one transaction
//!   holding `pg_advisory_xact_lock`, so processes connecting at once serialize; a schema written
//!   by a newer toygres is refused with [`Error::SchemaTooNew`](toygres_core::Error::SchemaTooNew).
//! - **Concurrency**: a deadpool connection pool; every state change is one
//!   `UPDATE … WHERE id = $ AND state = $ RETURNING …`, so exactly one of any number of racing
//!   callers wins and the others get [`Error::StateConflict`](toygres_core::Error::StateConflict).
//! - **Passwords at rest**: sealed with the [`CatalogKey`](toygres_core::crypto::CatalogKey) you
//!   pass (XChaCha20-Poly1305, random nonce per value), each bound to its record
//!   ([`CatalogKey::seal_for`](toygres_core::crypto::CatalogKey::seal_for)): copied into another
//!   row it fails to open with [`Error::WrongKey`](toygres_core::Error::WrongKey). Values sealed
//!   unbound by earlier releases still open. The key never enters the database; connecting with
//!   another key fails with [`Error::WrongKey`](toygres_core::Error::WrongKey).
//! - **Image keys**: an image's wrapped data key is stored with it (`images.encryption`, `jsonb`,
//!   NULL for a plaintext image) and replaced only by the compare-and-set
//!   [`rewrap_image_key`](toygres_core::CatalogStore::rewrap_image_key).
//! - **Schedules and progress**: `schedules` rows (a deleted one keeps its row with `deleted_at`,
//!   so a retry of its operation is answered; live names are unique by a partial index), the last
//!   slot advanced by one `UPDATE … WHERE last_slot IS NOT DISTINCT FROM $expected`; byte
//!   progress in `progress`, one row per image or instance, removed when its record is deleted.
//! - **Errors** name the host, port, database and user and say what to check; never the password.
//!
//! - **TLS** with rustls (no OpenSSL): `sslmode` `disable`, `prefer` (default), `require`, `verify-ca`
//!   or `verify-full` ([`SslMode`], in the URL or [`PostgresCatalogConfig::ssl_mode`]), roots from a PEM
//!   file (`sslrootcert`, [`RootCerts::File`]) or the system store. Azure Database for PostgreSQL
//!   requires TLS (`require_secure_transport=on`): use `sslmode=verify-full`. Errors name the sslmode.
//!
//! ```no_run
//! # async fn demo() -> toygres_core::Result<()> {
//! use toygres_cms_postgres::{PostgresCatalog, PostgresCatalogConfig};
//! use toygres_core::{crypto::CatalogKey, CatalogStore, ImageFilter};
//!
//! let url = std::env::var("TOYGRES_CATALOG_URL").expect("postgresql://cms:...@db:5432/control");
//! let config = PostgresCatalogConfig::from_url(&url)?.schema("toygres_cms").max_connections(8);
//! let catalog = PostgresCatalog::connect(config, CatalogKey::from_env("TOYGRES_CATALOG_KEY")?).await?;
//! for image in catalog.list_images(&ImageFilter::default()).await? {
//!     println!("{} {} {}", image.id, image.name, image.state);
//! }
//! # Ok(())
//! # }
//! ```
#![warn(missing_docs)]

mod backend;
mod catalog;
mod codec;
mod config;
mod db;
mod errors;
mod images;
mod instances;
mod schedules;
mod schema;
mod tls;

pub use catalog::PostgresCatalog;
pub use config::{PostgresCatalogConfig, DEFAULT_SCHEMA};
pub use tls::{RootCerts, SslMode};
